"""The daily customer scores: features, RFM and LTV per one_id, from silver to silver (Spark).

`score_customers` (the `score_customers` task of cdp_daily, after One-ID, before dbt) reads
every paid order One-ID gave a customer, scores it with the SQL `cdp rfm` and `cdp ltv` run on
files (jobs/marts/rfm.py, ltv.py), computes the features (jobs/marts/features.py), and replaces:

- ``silver.customer_features``: one row per one_id of silver.customers;
- ``silver.customer_rfm``: one row per one_id with a paid order in the RFM window;
- ``silver.customer_ltv``: one row per one_id with a paid order, its buy-till-you-die summary,
  the models' predictions and the churn warning;
- ``silver.customer_tag_days``: the partition of the run's business date, each customer's
  lifecycle stage and tags (jobs/marts/tags.py), scored as of that date;
- ``ops.ltv_fits``: one row per run, appended: the fitted parameters, or why nothing was fitted.

dbt publishes them as gold.customer_rfm, gold.customer_ltv, gold.customer_tags,
gold.customer_tag_history and in gold.customer_360.

Which orders count: paid, shipped or completed, neither test nor fake (silver flags them and
keeps them), with a one_id (an order One-ID could give no one scores no one). The amount is the
order's (refunded orders are left out whole; a partial refund is not netted yet).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from jobs.common import lake
from jobs.common.progress import step
from jobs.common.settings import Settings, get_settings
from jobs.common.spark import small_data
from jobs.marts import features, ltv, rfm, tags
from jobs.marts.sql import SPARK

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ORDERS_VIEW = "scored_orders"


def _ltv_schema():
    import pyarrow as pa

    number = pa.float64()
    return pa.schema(
        [("one_id", pa.string()), ("as_of", pa.date32())]
        + [(c, number) for c in ("frequency", "recency", "T", "monetary_value")]
        + [("first_order_date", pa.date32()), ("last_order_date", pa.date32())]
        + [(c, number) for c in ltv.PREDICTIONS]
        + [("churn_risk", pa.bool_()), ("churn_reason", pa.string())]
    )


def read_inputs(spark: SparkSession) -> features.Inputs:
    """Silver's tables, each record with its customer's one_id: from One-ID's records (orders,
    browse events) or, for tables no rule keeps, from identity_map by their customer id."""
    from pyspark.sql import functions as F

    def table(name: str):
        return (
            spark.table(f"silver.{name}") if spark.catalog.tableExists(f"silver.{name}") else None
        )

    records = spark.table("silver.identity_records")
    id_map = table("identity_map")

    def by_record(df, rule: str, key):
        if df is None:
            return None
        kept = records.where(F.col("rule") == rule).select("record_key", "one_id")
        return df.join(kept, key == F.col("record_key"), "left").drop("record_key")

    def by_id(df, lookups):
        if df is None or id_map is None:
            return None
        return features.attach_one_id(df, id_map, lookups)

    card_or_phone = [("member_card", "member_card"), ("phone", "phone_token")]
    customers = table("customers")
    if customers is None:  # One-ID writes it with its records; a lake from before it did not
        customers = records.select("one_id").where("one_id is not null")
    return features.Inputs(
        customers=customers,
        orders=by_record(table("orders"), "order_buyer", F.concat_ws("|", "source", "order_id")),
        items=table("order_items"),
        events=by_record(table("events"), "event", F.col("event_id").cast("string")),
        relationships=by_id(
            table("wecom_relationships"),
            [("wecom_external_userid", "external_userid"), ("wechat_unionid", "unionid")],
        ),
        messages=by_id(table("wecom_messages"), [("wecom_external_userid", "external_userid")]),
        followers=by_id(
            table("oa_followers"), [("wechat_openid", "openid"), ("wechat_unionid", "unionid")]
        ),
        tiers=by_id(table("tier_history"), card_or_phone),
        points=by_id(table("points_ledger"), card_or_phone),
        coupons=by_id(table("coupons"), card_or_phone),
    )


def rfm_scores(spark: SparkSession, as_of: date):
    """RFM per one_id as of `as_of` over the `scored_orders` view, as Arrow."""
    from pyspark.sql import functions as F

    values = spark.sql(rfm.values_sql(ORDERS_VIEW, as_of, SPARK)).cache()  # scored thrice
    values.createOrReplaceTempView("customer_values")
    try:
        scored = spark.sql(rfm.scores_sql("customer_values"))
        return (
            scored.withColumnRenamed("customer_id", "one_id")
            .withColumn("as_of", F.lit(as_of).cast("date"))
            .toArrow()
        )
    finally:  # the session may outlive the run (a test run, a notebook)
        spark.catalog.dropTempView("customer_values")
        values.unpersist()


def ltv_scores(spark: SparkSession, as_of: date):
    """(LTV per one_id as of `as_of` as pandas, Fit). The summary has a row per customer:
    bounded by customers, it is what the models are fitted on."""
    summary = spark.sql(ltv.summary_sql(ORDERS_VIEW, as_of, SPARK)).toPandas()
    scores, fit = ltv.predict(summary.sort_values("customer_id", ignore_index=True), as_of)
    scores = scores.rename(columns={"customer_id": "one_id"})
    scores.insert(1, "as_of", as_of)
    return scores, fit


@dataclass
class Scores:
    """Everything scored as of one date: Arrow tables (a row per customer) and the LTV fit."""

    as_of: date
    features: object
    rfm: object
    ltv: object
    fit: ltv.Fit


def compute(spark: SparkSession, as_of: date) -> Scores:
    """Features, RFM and LTV as of `as_of` (the `scored_orders` view must exist). All three
    have a row per customer, like the summary the models are fitted on: collected as Arrow."""
    import pyarrow as pa

    with step(f"RFM as of {as_of}"):
        rfm_table = rfm_scores(spark, as_of)
    with step(f"features as of {as_of}"):
        feature_table = features.customer_features(read_inputs(spark), as_of).toArrow()
    with step(f"LTV as of {as_of} (BG/NBD, Gamma-Gamma)"):
        frame, fit = ltv_scores(spark, as_of)
        ltv_table = pa.Table.from_pandas(frame, schema=_ltv_schema(), preserve_index=False)
    return Scores(as_of, feature_table, rfm_table, ltv_table, fit)


def tag_days(spark: SparkSession, scored: Scores):
    """The day's stage and tags per customer (jobs/marts/tags.py) from its scores."""
    inputs = tags.tag_inputs(
        spark.createDataFrame(scored.features),
        spark.createDataFrame(scored.rfm),
        spark.createDataFrame(scored.ltv),
        scored.as_of,
    )
    return tags.memberships(inputs, tags.load_rules(), scored.as_of).toArrow()


@contextmanager
def _orders_view(spark: SparkSession) -> Iterator[None]:
    """The `scored_orders` view while the scores are computed."""
    spark.sql(rfm.paid_orders_sql()).createOrReplaceTempView(ORDERS_VIEW)
    try:
        yield
    finally:
        spark.catalog.dropTempView(ORDERS_VIEW)


def score_customers(logical_date: date, as_of: date, settings: Settings | None = None) -> dict:
    """Features, RFM and LTV as of `as_of` (the marts' date) replace the current tables; the
    stages and tags of `logical_date` replace that date's partition of
    silver.customer_tag_days (a backfill rebuilds its own date, scored as of it)."""
    import pyarrow as pa

    from jobs.common.spark import get_spark

    settings = settings or get_settings()
    spark = get_spark("cdp-scores", settings)
    lake.register_tables(spark, settings)
    started = time.monotonic()
    if not spark.catalog.tableExists("silver.identity_records"):
        return {"skipped": "silver.identity_records does not exist yet: run One-ID first"}
    with small_data(spark, lake.small_silver(settings)), _orders_view(spark):
        now = compute(spark, as_of)
        for name, table in (
            ("customer_rfm", now.rfm),
            ("customer_features", now.features),
            ("customer_ltv", now.ltv),
        ):
            lake.overwrite_arrow(table, lake.table_path("silver", name, settings))
        day = now if logical_date == as_of else compute(spark, logical_date)
        with step(f"stages and tags of {logical_date}"):
            held = tag_days(spark, day)
            lake.replace_day_arrow(
                held,
                lake.table_path("silver", "customer_tag_days", settings),
                f"as_of = '{logical_date.isoformat()}'",
                partition=True,
                day_column="as_of",
            )
    fit = now.fit
    run = {
        "logical_date": logical_date,
        "as_of": as_of,
        "finished_at": datetime.now(UTC),
        "customers": fit.customers,
        "repeat_customers": fit.repeat_customers,
        "bgnbd": json.dumps(fit.bgnbd),
        "gamma_gamma": json.dumps(fit.gamma_gamma),
        "skipped": fit.skipped,
        "seconds": round(time.monotonic() - started, 1),
    }
    lake.append_arrow(pa.Table.from_pylist([run]), lake.table_path("ops", "ltv_fits", settings))
    return {
        "as_of": str(as_of),
        "rfm_customers": now.rfm.num_rows,
        "feature_customers": now.features.num_rows,
        "ltv_customers": fit.customers,
        "ltv_skipped": fit.skipped,
        "tag_rows": held.num_rows,
    }
