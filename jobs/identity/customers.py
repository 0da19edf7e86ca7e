"""Silver orders -> silver customers: the first customer table, one row per customer_key.

This is the seed of One-ID: today a customer is a normalized phone (or, without one, a platform
buyer id). The identity graph will later map many keys to one stable One-ID; downstream models
already join on `customer_key` so that swap stays local.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def customers_from_orders(orders: DataFrame) -> DataFrame:
    """One row per identified customer; unidentified orders (no usable phone or buyer id) wait
    for One-ID. Test orders and 刷单 (silver's `is_test`, `is_fake`) make no customer."""
    for flag in ("is_test", "is_fake"):
        if flag in orders.columns:
            orders = orders.where(~F.coalesce(F.col(flag), F.lit(False)))
    return (
        orders.where(F.col("customer_key").isNotNull())
        .groupBy("customer_key")
        .agg(
            F.first("key_type", ignorenulls=True).alias("key_type"),
            F.max("phone_token").alias("phone_token"),
            F.min("order_date").alias("first_order_date"),
            F.max("order_date").alias("last_order_date"),
            F.sort_array(F.collect_set("source")).alias("sources"),
            F.max("updated_at").alias("updated_at"),
        )
    )
