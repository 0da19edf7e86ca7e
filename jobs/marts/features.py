"""Per-customer features: pure Spark transforms over silver, one row per one_id.

Each `*_features` function takes DataFrames that already carry a `one_id` and returns one row per
one_id. They read no table: `read_inputs` (jobs/marts/scores.py) does the I/O and gives each
record its customer. Orders and browse events get it from `silver.identity_records` (One-ID
keeps each such record's one_id, so an anonymous browse session belongs to the customer it was
stitched to); WeCom relationships and messages, Official Account followers and the CRM's
coupons, points and tiers from `silver.identity_map`, by their customer id (`attach_one_id`).
The settings are in features.yaml.

Test and fake (刷单) orders never count in value figures: silver flags them, and every order
feature starts from `paid_orders` / `bought_orders`, which leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from jobs.marts.config import Strict, load_config
from jobs.marts.rfm import PAID_STATUSES

SETTINGS = Path(__file__).parent / "features.yaml"
BOUGHT_STATUSES = (*PAID_STATUSES, "refunded")


class FeatureSettings(Strict):
    activity_days: int = Field(default=30, ge=1)
    session_gap_minutes: int = Field(default=30, ge=1)
    cart_hours: int = Field(default=24, ge=1)
    price_bands: tuple[str, ...] = Field(default=("low", "mid", "high"), min_length=2)
    offline_sources: tuple[str, ...] = ("pos",)


@lru_cache(maxsize=4)
def load_settings(path: Path = SETTINGS) -> FeatureSettings:
    return load_config(path, FeatureSettings)


def _f():
    from pyspark.sql import functions as F

    return F


def _window():
    from pyspark.sql import Window

    return Window


def _lit_date(day: date):
    return _f().lit(day.isoformat()).cast("date")


def _real(orders):
    F = _f()
    return orders.where(
        F.col("one_id").isNotNull()
        & ~F.coalesce(F.col("is_test"), F.lit(False))
        & ~F.coalesce(F.col("is_fake"), F.lit(False))
    )


def paid_orders(orders, as_of: date):
    """Orders that brought money in: paid, shipped or completed, real, identified, by as_of."""
    F = _f()
    return _real(orders).where(
        F.lower("status").isin(*PAID_STATUSES) & (F.col("order_date") <= _lit_date(as_of))
    )


def bought_orders(orders, as_of: date):
    """Orders that were paid at some point (the paid ones and the refunded ones)."""
    F = _f()
    return _real(orders).where(
        F.lower("status").isin(*BOUGHT_STATUSES) & (F.col("order_date") <= _lit_date(as_of))
    )


def order_features(orders, items, as_of: date, settings: FeatureSettings):
    """first/last order, orders, GMV, AOV, refund rate, purchase cycle, platforms, channels,
    top category and its share of spend (the price band compares customers: `price_bands_sql`)."""
    F = _f()
    paid = paid_orders(orders, as_of)
    offline = F.lower("source").isin(*settings.offline_sources)
    base = paid.groupBy("one_id").agg(
        F.min("order_date").alias("first_order_date"),
        F.max("order_date").alias("last_order_date"),
        F.count("*").alias("orders"),
        F.sum("amount").cast("decimal(18,2)").alias("gmv"),
        F.countDistinct("order_date").alias("purchase_days"),
        F.array_sort(F.collect_set("order_date")).alias("days"),
        F.array_sort(F.collect_set(F.lower("source"))).alias("platforms"),
        F.array_sort(
            F.collect_set(F.when(offline, F.lit("offline")).otherwise(F.lit("online")))
        ).alias("channels"),
    )
    base = base.withColumn("aov", (F.col("gmv") / F.col("orders")).cast("decimal(18,2)"))
    base = base.withColumn(
        "purchase_cycle_days",
        F.when(
            F.col("purchase_days") > 1,
            F.datediff("last_order_date", "first_order_date") / (F.col("purchase_days") - 1),
        ).cast("double"),
    )
    # days between the last two purchase days: a long one marks a customer won back
    base = base.withColumn(
        "last_gap_days",
        F.when(
            F.size("days") > 1,
            F.datediff(F.element_at("days", -1), F.element_at("days", -2)),
        ),
    ).drop("days")
    refunds = (
        bought_orders(orders, as_of)
        .groupBy("one_id")
        .agg(
            F.count("*").alias("bought"),
            F.count_if(
                (F.lower("status") == "refunded") | (F.coalesce("refund_amount", F.lit(0)) > 0)
            ).alias("refunded"),
        )
        .select("one_id", (F.col("refunded") / F.col("bought")).alias("refund_rate"))
    )
    out = base.join(refunds, "one_id", "left").drop("purchase_days")
    if items is not None:  # no item export yet: no category preference
        out = out.join(category_features(paid, items), "one_id", "left")
    return out


def price_bands_sql(table: str, settings: FeatureSettings | None = None) -> str:
    """DuckDB SQL: the rows of `table` (customer features) with each buyer's price band, the
    bands of AOV among all buyers (tertiles by default); equal AOVs share a band, with no row
    tie-break. It compares every customer with every other, so the daily scores set it over
    the whole table once the customers' own features are in (jobs/marts/scores.py), in a full
    run and in the day's delta alike."""
    settings = settings or load_settings()
    names = ", ".join("'" + b.replace("'", "''") + "'" for b in settings.price_bands)
    bands = len(settings.price_bands)
    return f"""
        select * replace (
            case when aov is not null then list_value({names})[1 + cast(floor(
                {bands} * (rank() over (order by aov) - 1) / count(aov) over ()) as integer)]
            end as price_band)
        from {table}
    """


def category_features(paid, items):
    """The category a customer spends most on (ties: the first by name) and its share."""
    F, W = _f(), _window()
    lines = items.where(~F.coalesce(F.col("free_line"), F.lit(False))).join(
        paid.select("source", "order_id", "one_id"), ["source", "order_id"]
    )
    spend = lines.groupBy("one_id", "category").agg(F.sum("line_amount").alias("spend"))
    ranked = spend.withColumn(
        "n", F.row_number().over(W.partitionBy("one_id").orderBy(F.desc("spend"), "category"))
    ).withColumn("total", F.sum("spend").over(W.partitionBy("one_id")))
    return ranked.where("n = 1").select(
        "one_id",
        F.col("category").alias("top_category"),
        F.when(F.col("total") > 0, F.col("spend") / F.col("total"))
        .cast("double")
        .alias("top_category_share"),
    )


def browse_features(events, orders, as_of: date, settings: FeatureSettings):
    """Sessions (a new one after `session_gap_minutes` without an event), dwell, searches,
    product views, add-to-carts and abandoned carts in the last `activity_days`; the last event
    ever."""
    F, W = _f(), _window()
    start = as_of - timedelta(days=settings.activity_days - 1)
    known = events.where(F.col("one_id").isNotNull() & (F.col("event_date") <= _lit_date(as_of)))
    last = known.groupBy("one_id").agg(F.max("event_ts").alias("last_event_at"))
    recent = known.where(F.col("event_date") >= _lit_date(start))
    gap = settings.session_gap_minutes * 60
    previous = F.lag("event_ts").over(W.partitionBy("one_id").orderBy("event_ts", "event_id"))
    starts = recent.withColumn(
        "new_session",
        (previous.isNull() | (F.unix_timestamp("event_ts") - F.unix_timestamp(previous) > gap)),
    )
    kind = F.lower("event_type")
    activity = starts.groupBy("one_id").agg(
        F.count_if("new_session").alias("sessions_30d"),
        (F.coalesce(F.sum("dwell_ms"), F.lit(0)) / 1000).cast("double").alias("dwell_seconds_30d"),
        F.count_if(kind == "search").alias("searches_30d"),
        F.count_if(kind == "product_view").alias("product_views_30d"),
        F.count_if(kind == "add_to_cart").alias("cart_adds_30d"),
    )
    return last.join(activity, "one_id", "left").join(
        abandoned_carts(recent, orders, as_of, settings), "one_id", "left"
    )


def abandoned_carts(events, orders, as_of: date, settings: FeatureSettings):
    """Add-to-carts with no paid order of the customer within `cart_hours` after, counted once
    those hours have passed by the end of `as_of`."""
    F = _f()
    end = F.lit((as_of + timedelta(days=1)).isoformat()).cast("timestamp")
    hours = settings.cart_hours * 3600
    carts = events.where(
        (F.lower("event_type") == "add_to_cart")
        & (F.unix_timestamp("event_ts") + hours <= F.unix_timestamp(end))
    ).select("one_id", "event_id", "event_ts")
    paid = paid_orders(orders, as_of + timedelta(days=1)).select(
        "one_id", F.col("order_ts").alias("paid_ts")
    )
    followed = carts.join(paid, "one_id").where(
        (F.col("paid_ts") >= F.col("event_ts"))
        & (F.unix_timestamp("paid_ts") <= F.unix_timestamp("event_ts") + hours)
    )
    left = carts.join(followed.select("event_id").distinct(), "event_id", "left_anti")
    return left.groupBy("one_id").agg(F.count("*").alias("abandoned_carts_30d"))


def wecom_features(relationships, messages, as_of: date):
    """How the customer came in (the live-code `state` of their first WeCom add), who owns them
    (the guide of their latest active relationship), whether they are a friend now, and the
    last chat message either way."""
    F, W = _f(), _window()
    rel = relationships.where(F.col("one_id").isNotNull())
    first = rel.withColumn(
        "n",
        F.row_number().over(
            W.partitionBy("one_id").orderBy(F.asc_nulls_last("first_added_at"), "guide_user_id")
        ),
    ).where("n = 1")
    acquired = first.select(
        "one_id",
        F.col("first_state").alias("acquisition_state"),
        F.col("first_added_at").alias("wecom_first_added_at"),
    )
    active = rel.where(F.lower("status") == "active")
    owner = (
        active.withColumn(
            "n",
            F.row_number().over(
                W.partitionBy("one_id").orderBy(F.desc_nulls_last("added_at"), "guide_user_id")
            ),
        )
        .where("n = 1")
        .select("one_id", F.col("guide_user_id").alias("owner_guide"))
    )
    friends = rel.groupBy("one_id").agg(
        F.bool_or(F.lower("status") == "active").alias("is_wecom_friend")
    )
    chats = (
        messages.where(F.col("one_id").isNotNull() & (F.to_date("msg_ts") <= _lit_date(as_of)))
        .groupBy("one_id")
        .agg(F.max("msg_ts").alias("last_interaction_at"))
    )
    return (
        friends.join(acquired, "one_id", "left")
        .join(owner, "one_id", "left")
        .join(chats, "one_id", "full")
    )


def oa_features(followers):
    """Whether the customer follows an Official Account of the brand now, and since when."""
    F = _f()
    return (
        followers.where(F.col("one_id").isNotNull())
        .groupBy("one_id")
        .agg(
            F.bool_or("following").alias("oa_following"),
            F.min(F.when(F.col("following"), F.col("followed_at"))).alias("oa_followed_at"),
        )
    )


def tier_features(tiers):
    """The member tier: the current one (a person holding two cards: the latest change)."""
    F, W = _f(), _window()
    return (
        tiers.where(F.col("one_id").isNotNull() & F.coalesce("is_current", F.lit(False)))
        .withColumn(
            "n",
            F.row_number().over(W.partitionBy("one_id").orderBy(F.desc("changed_at"), "change_id")),
        )
        .where("n = 1")
        .select("one_id", F.col("new_tier").alias("member_tier"))
    )


def points_features(points, as_of: date):
    """The points balance: the latest ledger balance of each of the customer's cards, added."""
    F, W = _f(), _window()
    return (
        points.where(F.col("one_id").isNotNull() & (F.to_date("occurred_at") <= _lit_date(as_of)))
        .withColumn(
            "n",
            F.row_number().over(
                W.partitionBy("one_id", "member_card").orderBy(
                    F.desc("occurred_at"), F.desc("ledger_id")
                )
            ),
        )
        .where("n = 1")
        .groupBy("one_id")
        .agg(F.sum("running_balance").cast("bigint").alias("points_balance"))
    )


def coupon_features(coupons, paid, as_of: date):
    """Coupons redeemed and their share of paid orders (at most 1): price sensitivity. A
    customer who paid and redeemed none has a share of 0; one who never paid has none."""
    F = _f()
    redeemed = (
        coupons.where(
            F.col("one_id").isNotNull()
            & F.col("redeemed_at").isNotNull()
            & (F.to_date("redeemed_at") <= _lit_date(as_of))
        )
        .groupBy("one_id")
        .agg(F.count("*").alias("coupons_redeemed"))
    )
    orders = (
        paid.where(F.col("one_id").isNotNull()).groupBy("one_id").agg(F.count("*").alias("paid"))
    )
    used = F.coalesce(F.col("coupons_redeemed"), F.lit(0))
    return redeemed.join(orders, "one_id", "full").select(
        "one_id",
        used.alias("coupons_redeemed"),
        F.when(F.col("paid") > 0, F.least(F.lit(1.0), used / F.col("paid"))).alias(
            "coupon_order_share"
        ),
    )


def attach_one_id(df, id_map, lookups: list[tuple[str, str]]):
    """`df` with the `one_id` of the first of `lookups` (identifier type, column) that
    silver.identity_map knows (null when none does)."""
    F = _f()
    found = []
    for i, (kind, column) in enumerate(lookups):
        ids = id_map.where(F.col("identifier_type") == kind).select(
            F.col("identifier").alias(f"__id{i}"), F.col("one_id").alias(f"__one{i}")
        )
        df = df.join(ids, df[column] == F.col(f"__id{i}"), "left").drop(f"__id{i}")
        found.append(F.col(f"__one{i}"))
    one_id = F.coalesce(*found) if len(found) > 1 else found[0]
    return df.withColumn("one_id", one_id).drop(*(f"__one{i}" for i in range(len(lookups))))


# Every feature, in the order silver.customer_features holds them (a source a brand does not
# have leaves its features null: the table's shape never depends on the data).
FEATURE_COLUMNS = (
    ("first_order_date", "date"),
    ("last_order_date", "date"),
    ("orders", "bigint"),
    ("gmv", "decimal(18,2)"),
    ("aov", "decimal(18,2)"),
    ("refund_rate", "double"),
    ("purchase_cycle_days", "double"),
    ("last_gap_days", "int"),
    ("platforms", "array<string>"),
    ("channels", "array<string>"),
    ("top_category", "string"),
    ("top_category_share", "double"),
    ("price_band", "string"),
    ("coupons_redeemed", "bigint"),
    ("coupon_order_share", "double"),
    ("last_event_at", "timestamp"),
    ("sessions_30d", "bigint"),
    ("dwell_seconds_30d", "double"),
    ("searches_30d", "bigint"),
    ("product_views_30d", "bigint"),
    ("cart_adds_30d", "bigint"),
    ("abandoned_carts_30d", "bigint"),
    ("acquisition_state", "string"),
    ("wecom_first_added_at", "timestamp"),
    ("is_wecom_friend", "boolean"),
    ("owner_guide", "string"),
    ("last_interaction_at", "timestamp"),
    ("oa_following", "boolean"),
    ("oa_followed_at", "timestamp"),
    ("member_tier", "string"),
    ("points_balance", "bigint"),
)
# Counts and flags: 0 and false when the customer has none (a count of nothing is zero).
_ZERO_WHEN_NONE = {"coupons_redeemed", "is_wecom_friend", "oa_following"} | {
    c for c, _ in FEATURE_COLUMNS if c.endswith("_30d") and c != "dwell_seconds_30d"
}


@dataclass
class Inputs:
    """Silver tables, each with a `one_id` (None: the brand has no such source yet)."""

    customers: object
    orders: object = None
    items: object = None
    events: object = None
    relationships: object = None
    messages: object = None
    followers: object = None
    tiers: object = None
    points: object = None
    coupons: object = None


def customer_features(inputs: Inputs, as_of: date, settings: FeatureSettings | None = None):
    """One row per one_id of silver.customers with every feature (null where none applies)."""
    F = _f()
    settings = settings or load_settings()
    parts = []
    paid = None
    if inputs.orders is not None:
        paid = paid_orders(inputs.orders, as_of)
        parts.append(order_features(inputs.orders, inputs.items, as_of, settings))
        if inputs.events is not None:
            parts.append(browse_features(inputs.events, inputs.orders, as_of, settings))
        if inputs.coupons is not None:
            parts.append(coupon_features(inputs.coupons, paid, as_of))
    if inputs.relationships is not None and inputs.messages is not None:
        parts.append(wecom_features(inputs.relationships, inputs.messages, as_of))
    if inputs.followers is not None:
        parts.append(oa_features(inputs.followers))
    if inputs.tiers is not None:
        parts.append(tier_features(inputs.tiers))
    if inputs.points is not None:
        parts.append(points_features(inputs.points, as_of))
    out = inputs.customers.select("one_id").distinct()
    for part in parts:
        out = out.join(part, "one_id", "left")
    columns = [F.col("one_id"), _lit_date(as_of).alias("as_of")]
    for name, kind in FEATURE_COLUMNS:
        value = F.col(name) if name in out.columns else F.lit(None)
        if name in _ZERO_WHEN_NONE:
            value = F.coalesce(value, F.lit(False if kind == "boolean" else 0))
        columns.append(value.cast(kind).alias(name))
    return out.select(*columns)
