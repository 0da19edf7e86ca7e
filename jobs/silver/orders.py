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

TMALL_STATUS = {
    "WAIT_BUYER_PAY": "pending",
    "WAIT_SELLER_SEND_GOODS": "paid",
    "WAIT_BUYER_CONFIRM_GOODS": "shipped",
    "TRADE_FINISHED": "completed",
    "TRADE_CLOSED_BY_TAOBAO": "closed",
}


def _status_map(mapping: dict[str, str]) -> F.Column:
    return F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv])


def latest_per_order(bronze: DataFrame) -> DataFrame:
    """Keep each order's most recent sync (re-syncs carry changed statuses)."""
    w = Window.partitionBy("order_id").orderBy(
        F.col("_ingested_at").desc(), F.col("_file").desc(), F.col("_line").desc()
    )
    return bronze.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def tmall_to_silver(bronze: DataFrame, hmac_key: bytes) -> DataFrame:
    """Map Tmall bronze orders to the silver order model. Pure: DataFrame -> DataFrame."""
    phone = normalize_cn_mobile(F.col("receiver_mobile"))
    phone_token = hmac_sha256_hex(phone, hmac_key, namespace="phone:")
    uid_token = hmac_sha256_hex(F.col("buyer_open_uid"), hmac_key, namespace="tmall_open_uid:")
    refunded = (F.col("order_status") == "TRADE_CLOSED") & (F.coalesce("refund_fee", F.lit(0)) > 0)
    status = (
        F.when(refunded, F.lit("refunded"))
        .when(F.col("order_status") == "TRADE_CLOSED", F.lit("closed"))
        .otherwise(_status_map(TMALL_STATUS)[F.col("order_status")])
    )
    return latest_per_order(bronze).select(
        F.col("order_id"),
        F.lit("tmall").alias("source"),
        F.coalesce(phone_token, uid_token).alias("customer_key"),
        F.when(phone_token.isNotNull(), F.lit("phone"))
        .otherwise(F.lit("tmall_open_uid"))
        .alias("key_type"),
        phone_token.alias("phone_token"),
        F.col("created").alias("order_ts"),
        F.to_date("created").alias("order_date"),
        F.col("pay_time").alias("paid_ts"),
        F.col("payment").cast("decimal(18,2)").alias("amount"),
        F.coalesce("refund_fee", F.lit(0)).cast("decimal(18,2)").alias("refund_amount"),
        status.alias("status"),
        F.col("item_quantity"),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )
