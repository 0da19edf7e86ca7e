"""The daily batch, one function per step. The `cdp_daily` DAG calls these as tasks; `cdp run daily`
calls them in a row. Every step is keyed on the logical date and idempotent: rerunning a day
replaces that day's output.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from jobs.common import lake
from jobs.common.settings import Settings, get_settings

SOURCES = ("tmall.orders",)


def ingest(logical_date: date, settings: Settings | None = None) -> dict:
    """Landing files of every source -> bronze (+ quarantine, + ingestion log)."""
    from jobs.ingest.bronze import ingest as ingest_source

    results = [ingest_source(key, logical_date, settings=settings) for key in SOURCES]
    return {
        f"{r.source}.{r.dataset}": {
            "read": r.rows_read,
            "bronze": r.rows_bronze,
            "quarantined": r.rows_quarantined,
        }
        for r in results
    }


def _gate(df, suite: str, logical_date: date, settings: Settings) -> dict:
    """Validate, keep the results in ops.quality_results, then block on a failed expectation."""
    from jobs.quality import gate

    report = gate.validate(
        df,
        suite,
        run_id=f"{suite}:{logical_date}",
        expectations_dir=Path(settings.expectations_dir),
    )
    lake.append(
        gate.results_frame(df.sparkSession, report),
        lake.table_path("ops", "quality_results", settings),
    )
    gate.enforce(report)
    return {
        "suite": suite,
        "passed": report.success_blocking,
        "failed": [r.expectation for r in report.results if not r.success],
    }


def check_bronze(logical_date: date, settings: Settings | None = None) -> dict:
    """Great Expectations on the day's bronze rows: a blocking failure stops the DAG here."""
    from pyspark.sql import functions as F

    from jobs.common.spark import get_spark
    from jobs.ingest.spec import get_spec

    settings = settings or get_settings()
    spark = get_spark()
    spec = get_spec("tmall.orders")
    bronze = (
        spark.read.format("delta")
        .load(lake.table_path("bronze", spec.bronze_table, settings))
        .where(F.col("_logical_date") == F.lit(logical_date))
    )
    return _gate(bronze, f"bronze.{spec.bronze_table}", logical_date, settings)


def build_silver(logical_date: date, settings: Settings | None = None) -> dict:
    """Bronze orders of the day -> validated -> merged into silver.orders; customers rebuilt."""
    from pyspark.sql import functions as F

    from jobs.common.spark import get_spark
    from jobs.identity.customers import customers_from_orders
    from jobs.silver.orders import tmall_to_silver

    settings = settings or get_settings()
    spark = get_spark()
    bronze = (
        spark.read.format("delta")
        .load(lake.table_path("bronze", "tmall_orders", settings))
        .where(F.col("_logical_date") == F.lit(logical_date))
    )
    orders = tmall_to_silver(bronze, settings.hmac_key()).cache()
    gate = _gate(orders, "silver.orders", logical_date, settings)
    orders_path = lake.table_path("silver", "orders", settings)
    lake.merge_upsert(orders, orders_path, keys=["source", "order_id"])
    orders.unpersist()
    customers = customers_from_orders(spark.read.format("delta").load(orders_path))
    lake.overwrite(customers, lake.table_path("silver", "customers", settings))
    return {"quality": gate, "orders": spark.read.format("delta").load(orders_path).count()}


def publish_marts(logical_date: date, settings: Settings | None = None) -> dict:
    """dbt build: staging -> intermediate -> gold.customer_360 (contracts and tests)."""
    from jobs.profiles.dbt_runner import build

    build(as_of=logical_date, settings=settings)
    return {"dbt": "ok"}


def export_segments(logical_date: date, settings: Settings | None = None) -> dict:
    from jobs.segments.export import export_segment, load_segments

    return {name: export_segment(name, logical_date, settings).members for name in load_segments()}


STEPS = (ingest, check_bronze, build_silver, publish_marts, export_segments)


def run_all(logical_date: date, settings: Settings | None = None) -> dict:
    """All steps in order, in this process (what the DAG does, without Airflow)."""
    return {step.__name__: step(logical_date, settings) for step in STEPS}
