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
    "_batch_id",
    "updated_at",
]


def _status_map(mapping: dict[str, str]) -> F.Column:
    return F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv])


def latest_per_order(bronze: DataFrame) -> DataFrame:
    """Keep each order's most recent sync (re-syncs carry changed statuses)."""
    w = Window.partitionBy("order_id").orderBy(
        F.col("_ingested_at").desc(), F.col("_file").desc(), F.col("_line").desc()
    )
    return bronze.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def to_silver(bronze: DataFrame, source: str, silver: dict, hmac_key: bytes) -> DataFrame:
    """Map one platform's bronze orders to the silver order model, as its spec's `silver:` says.

    Pure: DataFrame -> DataFrame. `silver` keys: status (bronze code -> pending|paid|shipped|
    completed|refunded|closed), buyer_id_field and id_namespace (the platform's own buyer id,
    used as the key when no usable phone is shared), refund_field and refunded_when_refund
    (statuses that mean refunded when the refund amount is > 0), fields (renames of the
    standard bronze fields: order_id, order_status, receiver_mobile, payment, created, pay_time,
    item_quantity). An order with neither a usable phone nor a buyer id keeps a null
    customer_key (key_type `unidentified`) until One-ID can match it on other evidence.
    """
    renames = silver.get("fields") or {}
    present = set(bronze.columns)

    def field(name: str | None) -> F.Column:
        name = renames.get(name, name) if name else None
        return F.col(name) if name and name in present else F.lit(None)

    phone = normalize_cn_mobile(field("receiver_mobile").cast("string"))
    phone_token = hmac_sha256_hex(phone, hmac_key, namespace="phone:")
    buyer_id = field(silver.get("buyer_id_field")).cast("string")
    namespace = silver.get("id_namespace") or f"{source}_buyer_id"
    id_token = hmac_sha256_hex(buyer_id, hmac_key, namespace=f"{namespace}:")
    refund = F.coalesce(field(silver.get("refund_field")).cast("decimal(18,2)"), F.lit(0))
    status_code = field("order_status")
    refunded = status_code.isin(*(silver.get("refunded_when_refund") or [])) & (refund > 0)
    status = F.when(refunded, F.lit("refunded")).otherwise(
        _status_map(silver.get("status") or {})[status_code]
    )
    created = field("created")
    key_type = (
        F.when(phone_token.isNotNull(), F.lit("phone"))
        .when(id_token.isNotNull(), F.lit(namespace))
        .otherwise(F.lit("unidentified"))
    )
    return latest_per_order(bronze).select(
        field("order_id").cast("string").alias("order_id"),
        F.lit(source).alias("source"),
        F.coalesce(phone_token, id_token).alias("customer_key"),
        key_type.alias("key_type"),
        phone_token.alias("phone_token"),
        created.cast("timestamp").alias("order_ts"),
        F.to_date(created).alias("order_date"),
        field("pay_time").cast("timestamp").alias("paid_ts"),
        field("payment").cast("decimal(18,2)").alias("amount"),
        refund.cast("decimal(18,2)").alias("refund_amount"),
        status.alias("status"),
        field("item_quantity").cast("long").alias("item_quantity"),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )
