"""Refunds and returns (silver.refunds): one row per (source, refund_id), linked to its order
and, where the platform says which, to the order's lines in silver.order_items.

Why this shape:
- Two kinds of evidence. A platform's refund report (Tmall's 退款报表, `tmall_refund_report`)
  has a refund id, its state, amount, reason and whether the goods went back (a return). Order
  exports of platforms without a refund report here say a refund went through only in an
  after-sale cell or status (抖店 售后状态, 拼多多 REFUNDED_* / 售后状态, Youzan refund_state, the
  mini-program's REFUNDED or its refund amount): `after_sale_refunds` gives each such order one
  refund `<order_id>:after_sale`, its amount null unless the export has one. It reads the lines
  and orders the same run merged into silver.order_items and silver.orders (`depends_on`), not
  bronze again: the lines' after-sale states and the orders' amounts are already conformed
  there.
- Linking to a line needs the order's lines: the report names the refunded products by title
  (宝贝标题, several joined by '，'), matched against silver.order_items, which is built earlier
  in the same run (`depends_on`), so the day's own lines are there. `line_ids` are every matched
  line, `line_id` the line when exactly one matched, `linked_item` true when every title found a
  line. A refund whose lines are not in silver yet stays unlinked (null line_id) until the
  platform exports it again. After-sale refunds are linked to the lines whose cells said so.
- States are one vocabulary (`REFUND_STATES` in jobs/silver/items.py: requested, agreed,
  awaiting_return, returned, refused, closed, succeeded). The reason is the platform's reason
  code text (七天无理由退换货), not the buyer's own words: kept.
- `exceeds_paid` flags a refund larger than what the buyer paid (never deleted; the suite
  blocks on it: a refund above the payment is a misread amount, and would overstate refunds).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.clean.money import MONEY, to_money
from jobs.silver.common import latest_stored
from jobs.silver.items import (
    REFUND_CODES,
    REFUND_STATES,
    clean_text,
    code_map,
    item_sources,
)
from jobs.silver.table import Batch, SilverTable

__all__ = ["REFUND_COLUMNS", "REFUND_STATES", "TABLES"]

REFUND_COLUMNS = [
    "source",
    "refund_id",
    "order_id",
    "line_id",
    "line_ids",
    "linked_item",
    "item_title",
    "status",
    "status_code",
    "reason",
    "goods_returned",
    "applied_at",
    "refund_amount",
    "paid_amount",
    "currency",
    "exceeds_paid",
    "origin",
    "lateness_days",
    "source_file",
    "source_line",
    "_batch_id",
    "updated_at",
]
TITLE_SEPARATOR = "，"  # how a report joins the titles of a refund's products
YES = ("Y", "YES", "TRUE", "1", "是")
NO = ("N", "NO", "FALSE", "0", "否")


def yes_no(col: Column) -> Column:
    """是/否, Y/N, true/false, 1/0 -> boolean; anything else null."""
    s = F.upper(clean_text(col))
    return F.when(s.isin(*YES), F.lit(True)).when(s.isin(*NO), F.lit(False))


def tmall_refund_report(bronze: DataFrame, logical_date: date) -> DataFrame:
    """Tmall's 退款报表 rows (tmall__refunds.yaml fields) -> refunds, not yet linked to lines."""
    applied = F.col("applied").cast("timestamp")
    code = clean_text(F.col("refund_status"))
    refunds = bronze.select(
        F.lit("tmall").alias("source"),
        clean_text(F.col("refund_id")).alias("refund_id"),
        clean_text(F.col("order_id")).alias("order_id"),
        clean_text(F.col("item_title")).alias("item_title"),
        code_map(REFUND_CODES["tmall"], code).alias("status"),
        code.alias("status_code"),
        clean_text(F.col("reason")).alias("reason"),
        yes_no(F.col("goods_returned")).alias("goods_returned"),
        applied.alias("applied_at"),
        to_money(F.col("refund_fee")).alias("refund_amount"),
        to_money(F.col("payment")).alias("paid_amount"),
        F.lit("CNY").alias("currency"),
        F.lit("refund_report").alias("origin"),
        F.datediff(F.lit(logical_date), F.to_date(applied)).alias("lateness_days"),
        F.col("_file").alias("source_file"),
        F.col("_line").alias("source_line"),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    ).where(F.col("refund_id").isNotNull())
    return latest_stored(refunds, ["source", "refund_id"])  # re-exported: its latest state


# bronze table -> its report reader
REPORTS: dict[str, Callable[[DataFrame, date], DataFrame]] = {
    "tmall_refunds": tmall_refund_report,
}


def link_items(refunds: DataFrame, items: DataFrame | None) -> DataFrame:
    """Each refund's lines: the order's lines in silver.order_items whose title is one of the
    refund's titles. Adds line_ids (sorted), line_id (when exactly one) and linked_item (every
    title found a line)."""
    no_lines = F.array().cast("array<string>")
    if items is None:
        return refunds.withColumns(
            {
                "line_ids": no_lines,
                "line_id": F.lit(None).cast("string"),
                "linked_item": F.lit(False),
            }
        )
    titles = refunds.select(
        "source",
        "refund_id",
        "order_id",
        F.explode(F.split(F.coalesce(F.col("item_title"), F.lit("")), TITLE_SEPARATOR)).alias("t"),
    ).withColumn("t", clean_text(F.col("t")))
    lines = items.select(
        "source", "order_id", clean_text(F.col("title")).alias("t"), F.col("line_id").alias("_lid")
    )
    matched = (
        titles.where(F.col("t").isNotNull())
        .join(lines, on=["source", "order_id", "t"], how="left")
        .groupBy("source", "refund_id")
        .agg(
            F.sort_array(F.collect_set("_lid")).alias("line_ids"),
            F.count_distinct("t").alias("_titles"),
            F.count_distinct(F.when(F.col("_lid").isNotNull(), F.col("t"))).alias("_found"),
        )
    )
    out = refunds.join(matched, on=["source", "refund_id"], how="left")
    line_ids = F.coalesce(F.col("line_ids"), no_lines)
    return out.withColumns(
        {
            "line_ids": line_ids,
            "line_id": F.when(F.size(line_ids) == 1, line_ids[0]),
            "linked_item": F.coalesce(
                (F.col("_titles") > 0) & (F.col("_found") == F.col("_titles")), F.lit(False)
            ),
        }
    ).drop("_titles", "_found")


def after_sale_refunds(items: DataFrame, orders: DataFrame | None) -> DataFrame:
    """The day's silver order lines and orders of platforms without a refund report -> one
    refund per order whose lines say a refund went through (refund state succeeded, or state
    refunded) or whose order does (state refunded, or a refund amount > 0: the mini-program's
    partial refunds): refund_id `<order_id>:after_sale`, state succeeded, the order's refund
    amount (null when the export has none), what the order paid, linked to the lines that said
    so."""
    said = (F.col("refund_status") == "succeeded") | (F.col("status") == "refunded")
    last = F.max(F.struct("updated_at", "source_file", "source_line", "_batch_id"))
    lines = (
        items.where(said)
        .groupBy("source", "order_id")
        .agg(
            F.sort_array(F.collect_set("line_id")).alias("line_ids"),
            F.array_join(F.sort_array(F.collect_set("title")), TITLE_SEPARATOR).alias("item_title"),
            F.max("status_code").alias("status_code"),
            F.max("currency").alias("_line_currency"),
            last.alias("_last"),
        )
    )
    keys = lines.select("source", "order_id")
    if orders is not None:
        refund = F.col("refund_amount").cast(MONEY)
        orders = orders.select(
            "source",
            "order_id",
            F.col("amount").cast(MONEY).alias("paid_amount"),
            F.when(refund > 0, refund).alias("refund_amount"),
            (F.col("currency") if "currency" in orders.columns else F.lit(None))
            .cast("string")
            .alias("_order_currency"),
            ((F.col("status") == "refunded") | (refund > 0)).alias("_refunded"),
        )
        keys = keys.unionByName(orders.where("_refunded").select("source", "order_id")).distinct()
        out = keys.join(lines, on=["source", "order_id"], how="left").join(
            orders, on=["source", "order_id"], how="left"
        )
    else:
        out = lines.withColumns(
            {
                "paid_amount": F.lit(None).cast(MONEY),
                "refund_amount": F.lit(None).cast(MONEY),
                "_order_currency": F.lit(None).cast("string"),
            }
        )
    line_ids = F.coalesce(F.col("line_ids"), F.array().cast("array<string>"))
    return out.select(
        "source",
        F.concat(F.col("order_id"), F.lit(":after_sale")).alias("refund_id"),
        "order_id",
        F.when(F.size(line_ids) == 1, line_ids[0]).alias("line_id"),
        line_ids.alias("line_ids"),
        (F.size(line_ids) > 0).alias("linked_item"),
        F.when(F.col("item_title") != "", F.col("item_title")).alias("item_title"),
        F.lit("succeeded").alias("status"),
        "status_code",
        F.lit(None).cast("string").alias("reason"),
        F.lit(None).cast("boolean").alias("goods_returned"),
        F.lit(None).cast("timestamp").alias("applied_at"),
        "refund_amount",
        "paid_amount",
        F.coalesce("_order_currency", "_line_currency", F.lit("CNY")).alias("currency"),
        F.lit("after_sale_status").alias("origin"),
        F.lit(None).cast("int").alias("lateness_days"),
        F.col("_last.source_file").alias("source_file"),
        F.col("_last.source_line").alias("source_line"),
        F.col("_last._batch_id").alias("_batch_id"),
        F.col("_last.updated_at").alias("updated_at"),
    )


def flag_exceeds_paid(refunds: DataFrame) -> DataFrame:
    """exceeds_paid: the refund is larger than what the buyer paid (false when either is
    unknown)."""
    over = F.col("refund_amount") > F.col("paid_amount")
    return refunds.withColumn("exceeds_paid", F.coalesce(over, F.lit(False)))


def after_sale_platforms() -> tuple[str, ...]:
    """Platforms whose order exports give lines but that have no refund report here: their
    refunds are what the orders' after-sale cells say."""
    return tuple(sorted({s.source for s in item_sources() if not s.refund_report}))


def of_day(df: DataFrame | None, day: date) -> DataFrame | None:
    """The rows of a silver table that the day's run merged (all rows of a frame without the
    build's `_logical_date`)."""
    if df is None or "_logical_date" not in df.columns:
        return df
    return df.where(F.col("_logical_date") == F.lit(day))


def build_refunds(batch: Batch) -> DataFrame | None:
    items = batch.silver("order_items")
    parts = [
        link_items(read(batch.bronze[table], batch.logical_date), items)
        for table, read in REPORTS.items()
        if batch.bronze.get(table) is not None
    ]
    platforms = after_sale_platforms()
    if items is not None and platforms:
        orders = of_day(batch.silver("orders"), batch.logical_date)
        parts.append(
            after_sale_refunds(
                of_day(items, batch.logical_date).where(F.col("source").isin(*platforms)),
                None if orders is None else orders.where(F.col("source").isin(*platforms)),
            )
        )
    if not parts:
        return None
    columns = [c for c in REFUND_COLUMNS if c != "exceeds_paid"]
    union = reduce(DataFrame.unionByName, (p.select(*columns) for p in parts))
    return flag_exceeds_paid(union).select(*REFUND_COLUMNS)


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="refunds",
        build=build_refunds,
        keys=("source", "refund_id"),
        inputs=tuple(REPORTS),
        depends_on=("order_items", "orders"),
    ),
)
