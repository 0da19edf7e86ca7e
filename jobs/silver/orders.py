"""Bronze platform orders -> silver orders: one row per (source, order_id), PII tokenized.

Each order keeps its latest state.

Silver holds no raw PII: the buyer's phone becomes `phone_token` (keyed HMAC of the normalized
mobile) and the customer is keyed by `customer_key`: the phone token when the platform shared a
usable phone, else a token of the platform's own buyer id (`key_type` says which). One-ID will
later merge these keys; keeping the namespace in the token keeps them from colliding.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.pii import hmac_sha256_hex, normalize_cn_mobile

SILVER_ORDER_COLUMNS = [
    "order_id",
    "source",
    "customer_key",
    "key_type",
    "phone_token",
    "order_ts",
    "order_date",
    "paid_ts",
    "amount",
    "refund_amount",
    "status",
    "item_quantity",
    "linked_order_ref",
    "_batch_id",
    "updated_at",
]


def _status_map(mapping: dict[str, str]) -> F.Column:
    return F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv])


def latest_per_order(bronze: DataFrame, order_id: str = "order_id") -> DataFrame:
    """Keep each order's most recent sync (re-syncs carry changed statuses)."""
    w = Window.partitionBy(order_id).orderBy(
        F.col("_ingested_at").desc(), F.col("_file").desc(), F.col("_line").desc()
    )
    return bronze.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def buyer_ids(silver: dict) -> list[dict]:
    """The spec's buyer ids in priority order: `buyer_ids` (a list of {field, namespace,
    qualifier_field}), or the single `buyer_id_field` + `id_namespace` of the older specs."""
    if silver.get("buyer_ids"):
        return list(silver["buyer_ids"])
    if silver.get("buyer_id_field"):
        return [{"field": silver["buyer_id_field"], "namespace": silver.get("id_namespace")}]
    return []


def to_silver(bronze: DataFrame, source: str, silver: dict, hmac_key: bytes) -> DataFrame:
    """Map one platform's bronze orders to the silver order model, as its spec's `silver:` says.

    Pure: DataFrame -> DataFrame. `silver` keys: status (bronze code -> pending|paid|shipped|
    completed|refunded|closed), buyer_ids (the platform's own buyer ids in priority order, each
    {field, namespace, qualifier_field}: the token of the first present one is the key when no
    usable phone is shared; a qualifier such as the mini-program appid scopes the id, giving
    ``openid:<appid>:<openid>``), or the older buyer_id_field and id_namespace (one id),
    refund_field and refunded_when_refund (statuses that mean refunded when the refund amount is
    > 0), fields (renames of the standard bronze fields: order_id, order_status,
    receiver_mobile, payment, created, pay_time, item_quantity), linked_order (for re-exports
    such as an ERP's: platform_field and order_id_field give `linked_order_ref`
    ``<platform>:<platform order id>``; rows of platforms in `ingested_directly` are left out,
    since that platform's own export already brings the order), lines (true for exports with one
    row per product line, JD's and 抖店's: the order-level cells repeat on every line and the
    order's quantity is the sum of its lines' in one file). An order with neither a usable
    phone nor a buyer id keeps a null customer_key (key_type `unidentified`) until One-ID can
    match it on other evidence.
    """
    renames = silver.get("fields") or {}
    present = set(bronze.columns)

    def field(name: str | None) -> F.Column:
        name = renames.get(name, name) if name else None
        return F.col(name) if name and name in present else F.lit(None)

    phone = normalize_cn_mobile(field("receiver_mobile").cast("string"))
    phone_token = hmac_sha256_hex(phone, hmac_key, namespace="phone:")
    ids = []  # (token, key_type) in priority order
    for spec in buyer_ids(silver):
        namespace = spec.get("namespace") or f"{source}_buyer_id"
        value = field(spec["field"]).cast("string")
        if spec.get("qualifier_field"):
            value = F.concat(field(spec["qualifier_field"]).cast("string"), F.lit(":"), value)
        ids.append((hmac_sha256_hex(value, hmac_key, namespace=f"{namespace}:"), namespace))
    refund = F.coalesce(field(silver.get("refund_field")).cast("decimal(18,2)"), F.lit(0))
    status_code = field("order_status")
    refunded = status_code.isin(*(silver.get("refunded_when_refund") or [])) & (refund > 0)
    status = F.when(refunded, F.lit("refunded")).otherwise(
        _status_map(silver.get("status") or {})[status_code]
    )
    created = field("created")
    key_type = F.when(phone_token.isNotNull(), F.lit("phone"))
    for token, namespace in ids:
        key_type = key_type.when(token.isNotNull(), F.lit(namespace))
    key_type = key_type.otherwise(F.lit("unidentified"))
    linked = silver.get("linked_order") or {}
    linked_ref = F.lit(None).cast("string")
    if linked:
        platform = F.col(linked["platform_field"]).cast("string")
        linked_ref = F.concat(platform, F.lit(":"), F.col(linked["order_id_field"]).cast("string"))
        direct = linked.get("ingested_directly") or []
        if direct:
            bronze = bronze.where(platform.isNull() | ~platform.isin(*direct))
    order_id = renames.get("order_id", "order_id")
    quantity = renames.get("item_quantity", "item_quantity")
    if silver.get("lines") and quantity in present:
        lines = Window.partitionBy(order_id, "_file")  # one export of the order: all its lines
        bronze = bronze.withColumn(quantity, F.sum(quantity).over(lines))
    return latest_per_order(bronze, order_id).select(
        field("order_id").cast("string").alias("order_id"),
        F.lit(source).alias("source"),
        F.coalesce(phone_token, *(t for t, _ in ids)).alias("customer_key"),
        key_type.alias("key_type"),
        phone_token.alias("phone_token"),
        created.cast("timestamp").alias("order_ts"),
        F.to_date(created).alias("order_date"),
        field("pay_time").cast("timestamp").alias("paid_ts"),
        field("payment").cast("decimal(18,2)").alias("amount"),
        refund.cast("decimal(18,2)").alias("refund_amount"),
        status.alias("status"),
        field("item_quantity").cast("long").alias("item_quantity"),
        linked_ref.alias("linked_order_ref"),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )


def one_row_per_order(parts: list[tuple[DataFrame, int]]) -> DataFrame:
    """Silver orders of several datasets (each with its spec's `priority`, default 0) as one
    frame with one row per (source, order_id): a brand pulling both Tmall's export and its API
    gets each order twice under one order id; the higher priority wins, then the latest."""
    from functools import reduce

    frames = [df.withColumn("_priority", F.lit(priority)) for df, priority in parts]
    union = reduce(lambda a, b: a.unionByName(b), frames)
    w = Window.partitionBy("source", "order_id").orderBy(
        F.col("_priority").desc(), F.col("updated_at").desc()
    )
    return (
        union.withColumn("_rank", F.row_number().over(w))
        .where("_rank = 1")
        .drop("_rank", "_priority")
    )
