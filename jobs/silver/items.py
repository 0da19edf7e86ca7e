"""Order lines (silver.order_items): one row per (source, order_id, line_id) across platforms.

Why this shape:
- Platforms show an order's lines in four shapes, and a spec's `silver.items` mapping (standard
  item field -> bronze field, jobs/common/silver_mapping.py `ItemsMapping`) says which one a
  dataset has:
  - sub-order rows (Tmall's item export): one row per line with the platform's own line id
    (子订单编号, `line_id` mapped) -> `suborder_lines`;
  - product-line rows (JD's and 抖店's order exports, `silver.lines: true`): one row per product
    line, the order-level cells repeated; the line id is the product's id (`line_id: sku_id`),
    or the line's position within the order in the file when there is none -> `product_lines`;
  - an order row holding its lines as a JSON list (Tmall's TOP trades `orders[]`, Youzan's
    `full_order_info.orders[]`, the mini-program's `items[]`): the spec maps the first element's
    title (and Youzan's count) and ingestion keeps every other leaf in `_extra` under its path
    (`orders.1.oid`), so an items field written as a path with `*` (`orders.*.oid`) reads element
    n of the list from the mapped column (n = 0) or from `_extra` -> `nested_lines`;
  - one order row, one product (POS receipts, Pinduoduo): the line is the order, line id "1"
    -> `order_lines`.
  Tmall's TOP sub-order ids are the item export's 子订单编号, so a brand pulling both gets each
  line once (the dataset with the higher `silver.priority` wins a tie within a day).
- ERP rows are re-exports of other platforms' orders, not lines: erp.orders has no `items`.
- A re-synced line collapses to its latest state (the platform's modification time where the
  spec names one, else ingestion time, file and line), as orders do.
- A line's `status` is the order state machine's (jobs/common/order_states.py) through the dataset's
  item status map (default: its order status map); a line closed with a succeeded refund is
  `refunded` (Tmall's TRADE_CLOSED sub-order after 退款成功, an 抖店 line closed after 售后完成).
  `refund_status` is the refund vocabulary of silver.refunds (`REFUND_STATES`; "none" when the
  platform says there is none, null when it does not say).
- `category`: no export the brand receives names one, so it comes from title keywords in
  jobs/silver/categories.yaml (a source that has one maps the items field `category`).
- Money is decimal(18,2) with its `currency`; a line without an amount is unit price x quantity,
  a line without a unit price is amount / quantity. `order_item_totals` sums an order's lines so
  that `order amount = sum of line amounts` can be checked (`items_vs_orders`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache, reduce
from operator import or_
from pathlib import Path

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.clean.money import MONEY, to_money
from jobs.common.errors import CdpError
from jobs.common.silver_mapping import ItemsMapping, SilverMapping
from jobs.common.yamlio import load_yaml
from jobs.silver.common import latest_stored
from jobs.silver.table import Batch, SilverTable

CATEGORIES_FILE = Path(__file__).with_name("categories.yaml")

# The refund vocabulary (silver.refunds.status, silver.order_items.refund_status): "none" is a
# platform saying no refund was asked for.
REFUND_STATES: tuple[str, ...] = (
    "none",
    "requested",  # asked for, waiting for the seller
    "agreed",  # the seller agreed, money not back yet
    "awaiting_return",  # the seller agreed to a return: waiting for the buyer's parcel
    "returned",  # the buyer sent the goods back: waiting for the seller to confirm
    "refused",  # the seller refused
    "closed",  # withdrawn by the buyer, or closed by the platform
    "succeeded",  # the money went back
)

# Each platform's refund / after-sale codes -> REFUND_STATES. Tmall: the open platform's Refund
# status codes (the item export's 退款状态 and the refund report map their texts to them; TOP
# sub-orders carry them as `refund_status`). 抖店 and 拼多多: the export's 售后状态 texts (售后完成,
# 退款成功 and 无售后或售后取消 seen in public report parsers; the others ❓ unconfirmed). Youzan:
# `refund_state` of the order (0 none, 1/11 under way, 2 partly, 12 fully refunded).
REFUND_CODES: dict[str, dict[str, str]] = {
    "tmall": {
        "NO_REFUND": "none",
        "WAIT_SELLER_AGREE": "requested",
        "WAIT_BUYER_RETURN_GOODS": "awaiting_return",
        "WAIT_SELLER_CONFIRM_GOODS": "returned",
        "SELLER_REFUSE_BUYER": "refused",
        "CLOSED": "closed",
        "SUCCESS": "succeeded",
    },
    "douyin": {
        "无售后": "none",
        "售后中": "requested",
        "待商家处理": "requested",
        "待买家退货": "awaiting_return",
        "待商家收货": "returned",
        "售后关闭": "closed",
        "售后完成": "succeeded",
        "退款成功": "succeeded",
    },
    "pdd": {
        "无售后或售后取消": "none",
        "退款中": "requested",
        "退款成功": "succeeded",
    },
    "youzan": {
        "0": "none",
        "1": "requested",
        "11": "requested",
        "2": "succeeded",
        "12": "succeeded",
    },
}

# An items mapping's standard fields (ItemsMapping.fields keys) of a line; order_id too.
LINE_FIELDS = (
    "line_id",
    "sku",
    "sku_id",
    "title",
    "category",
    "quantity",
    "unit_price",
    "line_amount",
    "status",
    "refund_status",
)
# The order-level fields a line carries along (from the dataset's order mapping).
ORDER_FIELDS = ("order_id", "order_ts", "modified_ts")
BOOKKEEPING = {
    "_batch_id": "string",
    "_ingested_at": "timestamp",
    "_file": "string",
    "_line": "long",
}
# What every shape function returns (all line fields as text; `conform_lines` types them).
RAW_COLUMNS = (*ORDER_FIELDS, *LINE_FIELDS, *BOOKKEEPING)

ITEM_COLUMNS = [
    "source",
    "order_id",
    "line_id",
    "sku",
    "sku_id",
    "title",
    "category",
    "quantity",
    "unit_price",
    "line_amount",
    "currency",
    "free_line",
    "status",
    "status_code",
    "refund_status",
    "order_ts",
    "order_date",
    "lateness_days",
    "dataset",
    "source_file",
    "source_line",
    "_batch_id",
    "updated_at",
]

SHAPES = ("suborder", "product", "nested", "order")


@dataclass(frozen=True)
class ItemSource:
    """One dataset that gives order lines, resolved from its spec: `fields` maps each standard
    line field and order-level field (ORDER_FIELDS) to a bronze field, or to a list path with
    `*` for the nested shape; `paths` is the spec's JSON path -> bronze field (the nested
    lists' first element is mapped to fields)."""

    dataset: str  # the spec key, e.g. tmall.order_items
    source: str
    bronze_table: str
    shape: str
    fields: dict[str, str]
    status: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    currency: str = "CNY"
    paths: dict[str, str] = field(default_factory=dict)
    # The platform has its own refund report (tmall.refunds): silver.refunds takes refunds from
    # it, not from these rows' after-sale cells.
    refund_report: bool = False


def _silver_view(raw: SilverMapping | dict | None) -> dict:
    """A spec's `silver:` section as a plain dict, whether the spec loader already typed it."""
    if isinstance(raw, SilverMapping):
        return raw.model_dump()
    return dict(raw or {})


def item_source(spec, refund_report: bool = False) -> ItemSource | None:
    """The ItemSource of a spec whose `silver:` section has `items:` (None otherwise). Only the
    `items` block is validated here (ItemsMapping); the rest is the orders mapping's."""
    view = _silver_view(spec.silver)
    if not view.get("items"):
        return None
    try:
        items = ItemsMapping.model_validate(view["items"])
    except ValueError as exc:
        raise CdpError(f"{spec.key}: invalid silver.items mapping: {exc}") from exc
    renames = view.get("fields") or {}

    def order_field(name: str) -> str:
        return renames.get(name, name)

    given = dict(items.fields)
    bad = sorted(set(given) - set(LINE_FIELDS) - {"order_id"})
    if bad:
        raise CdpError(f"{spec.key}: silver.items.fields: unknown field(s) {', '.join(bad)}")
    if any("*" in path for path in given.values()):
        shape = "nested"
    elif view.get("lines"):
        shape = "product"
    elif "line_id" in given:
        shape = "suborder"
    else:
        shape = "order"
    fields = {
        "status": order_field("order_status"),
        "order_ts": order_field("created"),
        "modified_ts": view.get("modified_field") or "",
        "order_id": order_field("order_id"),
    }
    if shape == "order":  # the order row is the line
        fields |= {
            "title": order_field("item_title"),
            "quantity": order_field("item_quantity"),
            "line_amount": order_field("payment"),
        }
    fields |= given
    return ItemSource(
        dataset=spec.key,
        source=spec.source,
        bronze_table=spec.bronze_table,
        shape=shape,
        fields={k: v for k, v in fields.items() if v},
        status=dict(items.status or view.get("status") or {}),
        priority=int(view.get("priority") or 0),
        currency=view.get("currency") or "CNY",
        paths={c.header: c.field for c in spec.columns},
        refund_report=refund_report,
    )


@cache
def item_sources() -> tuple[ItemSource, ...]:
    """Every spec's ItemSource, in spec order."""
    from jobs.ingest.spec import load_specs

    specs = load_specs()
    with_reports = {s.source for s in specs.values() if s.dataset == "refunds"}
    found = (item_source(s, s.source in with_reports) for s in specs.values())
    return tuple(s for s in found if s is not None)


# --- the four shapes ----------------------------------------------------------------------------


def _col(df: DataFrame, name: str | None) -> Column:
    return F.col(name) if name and name in df.columns else F.lit(None)


def _order_columns(df: DataFrame, fields: dict[str, str]) -> list[Column]:
    return [
        _col(df, fields.get("order_id")).cast("string").alias("order_id"),
        _col(df, fields.get("order_ts")).cast("timestamp").alias("order_ts"),
        _col(df, fields.get("modified_ts")).cast("timestamp").alias("modified_ts"),
    ]


def _bookkeeping(df: DataFrame) -> list[Column]:
    return [_col(df, c).cast(t).alias(c) for c, t in BOOKKEEPING.items()]


def _line_columns(df: DataFrame, fields: dict[str, str], line_id: Column) -> list[Column]:
    rest = [_col(df, fields.get(f)).cast("string").alias(f) for f in LINE_FIELDS[1:]]
    return [line_id.cast("string").alias("line_id"), *rest]


def suborder_lines(bronze: DataFrame, fields: dict[str, str]) -> DataFrame:
    """One bronze row per line with the platform's own line id (Tmall's 子订单编号)."""
    line_id = _col(bronze, fields.get("line_id"))
    return bronze.select(
        *_order_columns(bronze, fields),
        *_line_columns(bronze, fields, line_id),
        *_bookkeeping(bronze),
    )


def order_lines(bronze: DataFrame, fields: dict[str, str]) -> DataFrame:
    """One order row is one line (a POS receipt, a Pinduoduo order): line id "1"."""
    return bronze.select(
        *_order_columns(bronze, fields),
        *_line_columns(bronze, fields, F.lit("1")),
        *_bookkeeping(bronze),
    )


def product_lines(bronze: DataFrame, fields: dict[str, str]) -> DataFrame:
    """One bronze row per product line of an order, the order's cells repeated (JD, 抖店): the
    line id is the product id (a second line of the same product in one order's export gets
    `<id>#2`), or, without one, the line's position among the order's lines in its file."""
    order = _col(bronze, fields.get("order_id")).cast("string")
    given = clean_text(_col(bronze, fields.get("line_id")).cast("string"))
    same_product = Window.partitionBy(order, F.col("_file"), given).orderBy(F.col("_line"))
    in_order = Window.partitionBy(order, F.col("_file")).orderBy(F.col("_line"))
    nth = F.row_number().over(same_product)
    line_id = (
        F.when(given.isNull(), F.row_number().over(in_order).cast("string"))
        .when(nth == 1, given)
        .otherwise(F.concat(given, F.lit("#"), nth.cast("string")))
    )
    return bronze.select(
        *_order_columns(bronze, fields),
        *_line_columns(bronze, fields, line_id),
        *_bookkeeping(bronze),
    )


def _list_prefix(fields: dict[str, str]) -> str:
    prefixes = {p.split(".*.", 1)[0] for p in fields.values() if "*" in p}
    if len(prefixes) != 1 or any(".*." not in p for p in fields.values() if "*" in p):
        raise CdpError(f"items fields must name one list as <path>.*.<leaf>: {sorted(prefixes)}")
    return prefixes.pop()


def nested_lines(bronze: DataFrame, fields: dict[str, str], paths: dict[str, str]) -> DataFrame:
    """An order row holding its lines as a JSON list: a field `<list>.*.<leaf>` reads element
    n's leaf from the column the spec maps `<list>.0.<leaf>` to (n = 0) or from `_extra`, where
    ingestion keeps unmapped leaves under their path (`orders.1.title`). A field without `*` is
    an order-level cell repeated on each line (Youzan's refund_state). Elements are numbered from
    0; without a line id field the line id is n + 1."""
    line_paths = {f: p for f, p in fields.items() if f in LINE_FIELDS}
    prefix = _list_prefix(line_paths)
    pattern = "^" + re.escape(prefix) + r"\.([0-9]+)\."
    no_ints = F.array().cast("array<int>")
    extra = (
        F.from_json(F.col("_extra"), "map<string,string>")
        if "_extra" in bronze.columns
        else F.lit(None).cast("map<string,string>")
    )
    firsts = [
        paths[f"{prefix}.0.{p.split('.*.', 1)[1]}"]
        for p in line_paths.values()
        if "*" in p and paths.get(f"{prefix}.0.{p.split('.*.', 1)[1]}") in bronze.columns
    ]
    has_first = reduce(or_, (F.col(c).isNotNull() for c in firsts), F.lit(False))
    df = bronze.withColumn("_x", F.coalesce(extra, F.create_map().cast("map<string,string>")))
    listed = F.transform(
        F.filter(F.map_keys(F.col("_x")), lambda k: k.rlike(pattern)),
        lambda k: F.regexp_extract(k, pattern, 1).cast("int"),
    )
    first = F.when(has_first, F.array(F.lit(0))).otherwise(no_ints)
    df = df.withColumn("_n", F.explode(F.array_sort(F.array_distinct(F.concat(listed, first)))))
    n = F.col("_n")

    def value(name: str) -> Column:
        path = fields.get(name)
        if not path or "*" not in path:
            return _col(df, path).cast("string")
        leaf = path.split(".*.", 1)[1]
        from_extra = F.col("_x")[F.concat(F.lit(f"{prefix}."), n.cast("string"), F.lit(f".{leaf}"))]
        mapped = paths.get(f"{prefix}.0.{leaf}")
        if mapped in df.columns:
            return F.coalesce(F.when(n == 0, F.col(mapped).cast("string")), from_extra)
        return from_extra

    line_id = F.coalesce(clean_text(value("line_id")), (n + 1).cast("string"))
    return df.select(
        *_order_columns(df, fields),
        line_id.alias("line_id"),
        *(value(f).alias(f) for f in LINE_FIELDS[1:]),
        *_bookkeeping(df),
    )


def raw_lines(src: ItemSource, bronze: DataFrame) -> DataFrame:
    """The dataset's lines in its shape, as text (RAW_COLUMNS)."""
    if src.shape == "nested":
        df = nested_lines(bronze, src.fields, src.paths)
    elif src.shape == "product":
        df = product_lines(bronze, src.fields)
    elif src.shape == "suborder":
        df = suborder_lines(bronze, src.fields)
    else:
        df = order_lines(bronze, src.fields)
    return df.select(*RAW_COLUMNS)


# --- rules --------------------------------------------------------------------------------------


def clean_text(col: Column) -> Column:
    """Trimmed (spaces, tabs: 抖店's cells carry a leading tab), blank -> null."""
    s = F.regexp_replace(col, r"^[\s\u3000]+|[\s\u3000]+$", "")
    return F.when(s != "", s)


def code_map(mapping: dict[str, str], key: Column) -> Column:
    if not mapping:
        return F.lit(None).cast("string")
    return F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv])[key]


@cache
def load_categories(path: Path = CATEGORIES_FILE) -> dict[str, tuple[str, ...]]:
    """category -> its title keywords, in the file's order (jobs/silver/categories.yaml)."""
    raw = load_yaml(path)
    cats = raw.get("categories") if isinstance(raw, dict) else None
    if not isinstance(cats, dict) or not all(
        isinstance(v, list) and v and all(isinstance(w, str) and w for w in v)
        for v in cats.values()
    ):
        raise CdpError(f"{path}: expected `categories:` mapping each category to keywords")
    return {str(c): tuple(words) for c, words in cats.items()}


def category_of(title: Column, categories: dict[str, tuple[str, ...]]) -> Column:
    """The first category (in order) with a keyword in the title; null when none matches."""
    out = None
    for category, words in categories.items():
        hit = reduce(or_, (title.contains(w) for w in words))
        out = F.when(hit, F.lit(category)) if out is None else out.when(hit, F.lit(category))
    return out if out is not None else F.lit(None).cast("string")


def line_state(order_state: Column, refund_state: Column) -> Column:
    """A line closed after a refund went through is `refunded`; otherwise its order state."""
    refunded = (order_state == "closed") & (refund_state == "succeeded")
    return F.when(refunded, F.lit("refunded")).otherwise(order_state)


def _quantity(col: Column) -> Column:
    digits = F.translate(col, "０１２３４５６７８９", "0123456789")
    return clean_text(digits).cast("long")


def conform_lines(
    raw: DataFrame, src: ItemSource, logical_date: date, categories: dict | None = None
) -> DataFrame:
    """Typed, mapped lines of one dataset (ITEM_COLUMNS plus the order's modified_ts and the
    dataset's `_priority`, which `latest_per_line` orders by)."""
    categories = load_categories() if categories is None else categories
    quantity = _quantity(F.col("quantity"))
    unit = to_money(clean_text(F.col("unit_price")))
    amount = to_money(clean_text(F.col("line_amount")))
    line_amount = F.coalesce(amount, (unit * quantity).cast(MONEY))
    unit_price = F.coalesce(unit, F.when(quantity > 0, (amount / quantity).cast(MONEY)))
    status_code = clean_text(F.col("status"))
    refund_state = code_map(REFUND_CODES.get(src.source, {}), clean_text(F.col("refund_status")))
    title = clean_text(F.col("title"))
    order_date = F.to_date(F.col("order_ts"))
    return raw.select(
        F.lit(src.source).alias("source"),
        clean_text(F.col("order_id")).alias("order_id"),
        clean_text(F.col("line_id")).alias("line_id"),
        clean_text(F.col("sku")).alias("sku"),
        clean_text(F.col("sku_id")).alias("sku_id"),
        title.alias("title"),
        F.coalesce(clean_text(F.col("category")), category_of(title, categories)).alias("category"),
        quantity.alias("quantity"),
        unit_price.alias("unit_price"),
        line_amount.alias("line_amount"),
        F.lit(src.currency).alias("currency"),
        (line_amount == 0).alias("free_line"),
        line_state(code_map(src.status, status_code), refund_state).alias("status"),
        status_code.alias("status_code"),
        refund_state.alias("refund_status"),
        F.col("order_ts"),
        order_date.alias("order_date"),
        F.datediff(F.lit(logical_date), order_date).alias("lateness_days"),
        F.lit(src.dataset).alias("dataset"),
        F.col("_file").alias("source_file"),
        F.col("_line").alias("source_line"),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
        F.col("modified_ts"),
        F.lit(src.priority).alias("_priority"),
    )


def lines_of(
    src: ItemSource, bronze: DataFrame, logical_date: date, categories: dict | None = None
) -> DataFrame:
    """One dataset's bronze rows -> its conformed lines (not yet collapsed)."""
    lines = conform_lines(raw_lines(src, bronze), src, logical_date, categories)
    return lines.where(F.col("order_id").isNotNull())


def latest_per_line(lines: DataFrame) -> DataFrame:
    """One row per (source, order_id, line_id): the dataset with the higher priority, then the
    latest by the platform's modification time, ingestion time, file and line."""
    first = (F.col("_priority").desc(), F.col("modified_ts").desc_nulls_last())
    return latest_stored(lines, ["source", "order_id", "line_id"], *first)


def day_lines(batch: Batch, sources: tuple[ItemSource, ...]) -> DataFrame | None:
    """The conformed lines of the day's bronze rows of `sources` (None when none has a table)."""
    parts = [
        lines_of(src, batch.bronze[src.bronze_table], batch.logical_date)
        for src in sources
        if batch.bronze.get(src.bronze_table) is not None
    ]
    return reduce(DataFrame.unionByName, parts) if parts else None


def build_items(batch: Batch) -> DataFrame | None:
    lines = day_lines(batch, item_sources())
    return None if lines is None else latest_per_line(lines).select(*ITEM_COLUMNS)


# --- amount consistency -------------------------------------------------------------------------


def order_item_totals(items: DataFrame) -> DataFrame:
    """(source, order_id, items_amount, items_quantity, lines): what an order's lines add up to,
    to hold against the order's amount (`items_vs_orders`)."""
    return items.groupBy("source", "order_id").agg(
        F.sum("line_amount").cast(MONEY).alias("items_amount"),
        F.sum("quantity").alias("items_quantity"),
        F.count(F.lit(1)).alias("lines"),
    )


def items_vs_orders(
    orders: DataFrame,
    totals: DataFrame,
    tolerance: Decimal = Decimal("0.01"),
    relative: float = 0.0,
) -> DataFrame:
    """Orders that have lines, with `difference` = amount - items_amount and `consistent` when
    it is within `tolerance` yuan or `relative` x amount (freight and order-level discounts are
    not on the lines of every platform: JD's 京东价 is a list price)."""
    joined = orders.select("source", "order_id", "amount").join(
        totals, on=["source", "order_id"], how="inner"
    )
    diff = (F.col("amount") - F.col("items_amount")).cast(MONEY)
    allowed = F.greatest(F.lit(tolerance).cast(MONEY), F.abs(F.col("amount")) * F.lit(relative))
    return joined.withColumn("difference", diff).withColumn(
        "consistent", F.coalesce(F.abs(diff) <= allowed, F.lit(False))
    )


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="order_items",
        build=build_items,
        keys=("source", "order_id", "line_id"),
        inputs=tuple(dict.fromkeys(s.bronze_table for s in item_sources())),
    ),
)
