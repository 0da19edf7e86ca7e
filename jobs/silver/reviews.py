"""Buyer reviews (silver.reviews): one row per reviewed order line, (source, order_id, line_id).

Why this shape:
- Tmall's TradeRate (taobao.traderates.get) carries the order (tid) and the sub-order (oid) it
  rates: `line_id` is the oid, which is the line id of silver.order_items (子订单编号), so a
  review joins its line on (source, order_id, line_id).
- Only buyers' reviews (`role` buyer): a TradeRate of role seller is the shop's own rating of
  the buyer, which says nothing of what the buyer thought, and averaging it into ratings would
  mislead. The shop's answer to a review is its `reply`, kept as `has_reply`.
- `rating` puts Taobao's three-level `result` (good / neutral / bad, kept) on a 5-point scale
  (5 / 3 / 1) beside other platforms' stars.
- The review's words stay in bronze: silver keeps whether there are any (`has_text`, a
  platform's placeholder such as 此用户没有填写评价 or 系统默认好评 is no text, `default_text`),
  their length in characters, and whether a follow-up review (追评) and a reply exist. The
  buyer's `buyer_open_uid` and the platform's masked `nick` are platform ids: in clear.
- A review pulled again (a follow-up review added) keeps its latest row.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.clean.money import to_money
from jobs.silver.common import latest_stored
from jobs.silver.items import clean_text
from jobs.silver.table import Batch, SilverTable

RESULTS: dict[str, int] = {"good": 5, "neutral": 3, "bad": 1}
# What a platform writes when the buyer wrote nothing (an automatic good review after the rating
# period, or a rating without words); texts as review scrapers list them.
DEFAULT_TEXT = (
    r"^(此用户(没有|未)填写评价(内容)?|用户未填写评价内容|评价方未及时做出评价.*|"
    r"(系统)?默认好评|买家未及时作出评价.*)[。！!.]?$"
)

REVIEW_COLUMNS = [
    "source",
    "order_id",
    "line_id",
    "buyer_open_uid",
    "nick",
    "result",
    "rating",
    "has_text",
    "default_text",
    "text_length",
    "has_append",
    "appended_at",
    "has_reply",
    "created_at",
    "review_date",
    "lateness_days",
    "item_title",
    "item_price",
    "currency",
    "source_file",
    "source_line",
    "_batch_id",
    "updated_at",
]


def buyer_reviews(bronze: DataFrame) -> DataFrame:
    """Only the buyers' reviews (a missing role is read as the buyer's: traderates.get is
    asked for the rates buyers gave)."""
    role = F.lower(clean_text(F.col("role")))
    return bronze.where(role.isNull() | (role == "buyer"))


def text_metadata(text: Column) -> dict[str, Column]:
    """has_text, default_text and text_length (characters) of a review's words, without them."""
    words = clean_text(text)
    default = F.coalesce(words.rlike(DEFAULT_TEXT), F.lit(False))
    has_text = words.isNotNull() & ~default
    return {
        "has_text": has_text,
        "default_text": default,
        "text_length": F.when(has_text, F.length(words)).otherwise(F.lit(0)),
    }


def rating(result: Column) -> Column:
    """good/neutral/bad -> 5/3/1; anything else null."""
    return F.create_map(*[F.lit(x) for kv in RESULTS.items() for x in kv])[result]


def tmall_reviews(bronze: DataFrame, logical_date: date) -> DataFrame:
    """Tmall TradeRate rows (tmall__reviews.yaml fields) -> silver reviews."""
    text = text_metadata(F.col("content"))
    result = F.lower(clean_text(F.col("result")))
    created = F.col("created").cast("timestamp")
    review_date = F.to_date(created)
    order_id = clean_text(F.col("order_id"))
    reviews = (
        buyer_reviews(bronze)
        .select(
            F.lit("tmall").alias("source"),
            order_id.alias("order_id"),
            F.coalesce(clean_text(F.col("sub_order_id")), order_id).alias("line_id"),
            clean_text(F.col("buyer_open_uid")).alias("buyer_open_uid"),
            clean_text(F.col("nick")).alias("nick"),
            result.alias("result"),
            rating(result).alias("rating"),
            text["has_text"].alias("has_text"),
            text["default_text"].alias("default_text"),
            text["text_length"].alias("text_length"),
            (
                clean_text(F.col("append_content")).isNotNull()
                | F.col("append_created").isNotNull()
            ).alias("has_append"),
            F.col("append_created").cast("timestamp").alias("appended_at"),
            clean_text(F.col("reply")).isNotNull().alias("has_reply"),
            created.alias("created_at"),
            review_date.alias("review_date"),
            F.datediff(F.lit(logical_date), review_date).alias("lateness_days"),
            clean_text(F.col("item_title")).alias("item_title"),
            to_money(F.col("item_price")).alias("item_price"),
            F.lit("CNY").alias("currency"),
            F.col("_file").alias("source_file"),
            F.col("_line").alias("source_line"),
            F.col("_batch_id"),
            F.col("_ingested_at").alias("updated_at"),
        )
        .where(F.col("order_id").isNotNull())
    )
    return latest_stored(reviews, ["source", "order_id", "line_id"]).select(*REVIEW_COLUMNS)


def build_reviews(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("tmall_reviews")
    return None if bronze is None else tmall_reviews(bronze, batch.logical_date)


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="reviews",
        build=build_reviews,
        keys=("source", "order_id", "line_id"),
        inputs=("tmall_reviews",),
    ),
)
