"""The daily customer scores: RFM and LTV per one_id, from silver to silver (Spark).

`score_customers` (the `score_customers` task of cdp_daily, after One-ID, before dbt) reads
every paid order One-ID gave a customer, scores it with the SQL `cdp rfm` and `cdp ltv` run on
files (jobs/marts/rfm.py, ltv.py), and replaces:

- ``silver.customer_rfm``: one row per one_id with a paid order in the RFM window;
- ``silver.customer_ltv``: one row per one_id with a paid order, its buy-till-you-die summary,
  the models' predictions and the churn warning;
- ``ops.ltv_fits``: one row per run, appended: the fitted parameters, or why nothing was fitted.

dbt publishes them as gold.customer_rfm, gold.customer_ltv and in gold.customer_360.

Which orders count: paid, shipped or completed, neither test nor fake (silver flags them and
keeps them), with a one_id (an order One-ID could give no one scores no one). The amount is the
order's (refunded orders are left out whole; a partial refund is not netted yet).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from jobs.common import lake
from jobs.common.progress import step
from jobs.common.settings import Settings, get_settings
from jobs.common.spark import small_data
from jobs.marts import ltv, rfm
from jobs.marts.sql import SPARK

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

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


def paid_orders_sql() -> str:
    """customer_id (one_id), order_id, order_date, amount of every order that counts."""
    paid = ", ".join(f"'{s}'" for s in rfm.PAID_STATUSES)
    return f"""
        select r.one_id as customer_id, concat_ws('|', o.source, o.order_id) as order_id,
               cast(o.order_date as date) as order_date, cast(o.amount as decimal(18, 2)) as amount
        from silver.orders o
        join silver.identity_records r
          on r.rule = 'order_buyer' and r.record_key = concat_ws('|', o.source, o.order_id)
        where lower(o.status) in ({paid})
          and not coalesce(o.is_test, false) and not coalesce(o.is_fake, false)
    """


def rfm_scores(spark: SparkSession, as_of: date) -> DataFrame:
    """RFM per one_id as of `as_of` over the `scored_orders` view."""
    from pyspark.sql import functions as F

    values = spark.sql(rfm.values_sql(ORDERS_VIEW, as_of, SPARK)).cache()
    values.createOrReplaceTempView("customer_values")
    scored = spark.sql(rfm.scores_sql("customer_values"))
    return scored.withColumnRenamed("customer_id", "one_id").withColumn(
        "as_of", F.lit(as_of).cast("date")
    )


def ltv_scores(spark: SparkSession, as_of: date):
    """(LTV per one_id as of `as_of` as pandas, Fit). The summary has a row per customer:
    bounded by customers, it is what the models are fitted on."""
    summary = spark.sql(ltv.summary_sql(ORDERS_VIEW, as_of, SPARK)).toPandas()
    scores, fit = ltv.predict(summary.sort_values("customer_id", ignore_index=True), as_of)
    scores = scores.rename(columns={"customer_id": "one_id"})
    scores.insert(1, "as_of", as_of)
    return scores, fit


def score_customers(logical_date: date, as_of: date, settings: Settings | None = None) -> dict:
    import pyarrow as pa

    from jobs.common.spark import get_spark

    settings = settings or get_settings()
    spark = get_spark("cdp-scores", settings)
    lake.register_tables(spark, settings)
    started = time.monotonic()
    if not spark.catalog.tableExists("silver.identity_records"):
        return {"skipped": "silver.identity_records does not exist yet: run One-ID first"}
    orders = lake.table_rows([lake.table_path("silver", "orders", settings)])
    with small_data(spark, orders <= settings.silver.arrow_max_rows):
        spark.sql(paid_orders_sql()).createOrReplaceTempView(ORDERS_VIEW)
        # Both results have a row per customer, like the summary the models are fitted on:
        # collected as Arrow and written by delta-rs (no Spark write job per table).
        with step("RFM"):
            rfm_table = rfm_scores(spark, as_of).toArrow()
            lake.overwrite_arrow(rfm_table, lake.table_path("silver", "customer_rfm", settings))
        with step("LTV (BG/NBD, Gamma-Gamma)"):
            scores, fit = ltv_scores(spark, as_of)
            lake.overwrite_arrow(
                pa.Table.from_pandas(scores, schema=_ltv_schema(), preserve_index=False),
                lake.table_path("silver", "customer_ltv", settings),
            )
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
        "rfm_customers": rfm_table.num_rows,
        "ltv_customers": fit.customers,
        "ltv_skipped": fit.skipped,
    }
