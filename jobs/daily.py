"""The daily batch, one function per step. The `cdp_daily` DAG calls these as tasks; `cdp run daily`
calls them in a row. Every step is keyed on the logical date and idempotent: rerunning a day
replaces that day's output.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from jobs.common import lake
from jobs.common.settings import Settings, get_settings


def source_keys() -> list[str]:
    """Every source dataset with a spec in jobs/ingest/sources/ (cheap: YAML only)."""
    from jobs.ingest.spec import load_specs

    return sorted(load_specs())


def pull(logical_date: date, settings: Settings | None = None) -> dict:
    """Pull the API sources into landing (today: Youzan, when its app is configured)."""
    from jobs.ingest.youzan import pull_orders

    settings = settings or get_settings()
    if not (settings.youzan.client_id and settings.youzan.kdt_id):
        return {"youzan.orders": "not configured (CDP_YOUZAN__CLIENT_ID, ..._KDT_ID)"}
    return {"youzan.orders": str(pull_orders(logical_date, settings))}


def ingest(logical_date: date, settings: Settings | None = None) -> dict:
    """Landing files of every source -> bronze (+ quarantine, + ingestion log)."""
    from jobs.ingest.bronze import ingest as ingest_source

    results = [ingest_source(key, logical_date, settings=settings) for key in source_keys()]
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


def _bronze_of_day(spark, table: str, logical_date: date, settings: Settings):
    from pyspark.sql import functions as F

    path = lake.table_path("bronze", table, settings)
    if not lake.table_exists(spark, path):
        return None
    return (
        spark.read.format("delta").load(path).where(F.col("_logical_date") == F.lit(logical_date))
    )


def check_bronze(logical_date: date, settings: Settings | None = None) -> dict:
    """Great Expectations on each source's bronze rows of the day; a blocking failure stops here.

    A dataset without a suite is reported as such (its rows were still JSON-Schema-validated on
    ingestion); every suite in expectations/ that matches a bronze table runs.
    """
    from jobs.common.spark import get_spark
    from jobs.ingest.spec import load_specs

    settings = settings or get_settings()
    spark = get_spark()
    results = {}
    for spec in load_specs().values():
        suite = f"bronze.{spec.bronze_table}"
        if not (Path(settings.expectations_dir) / f"{suite}.json").is_file():
            results[suite] = "no suite"
            continue
        bronze = _bronze_of_day(spark, spec.bronze_table, logical_date, settings)
        if bronze is not None:
            results[suite] = _gate(bronze, suite, logical_date, settings)
    return results


def build_silver(logical_date: date, settings: Settings | None = None) -> dict:
    """Every source's bronze orders of the day -> silver model -> validated -> merged into
    silver.orders; silver.customers rebuilt."""
    from functools import reduce

    from jobs.common.spark import get_spark
    from jobs.identity.customers import customers_from_orders
    from jobs.ingest.spec import load_specs
    from jobs.silver.orders import to_silver

    settings = settings or get_settings()
    spark = get_spark()
    key = settings.hmac_key()
    parts = []
    for spec in load_specs().values():
        if spec.dataset != "orders" or not spec.silver:
            continue
        bronze = _bronze_of_day(spark, spec.bronze_table, logical_date, settings)
        if bronze is not None:
            parts.append(to_silver(bronze, spec.source, spec.silver, key))
    if not parts:
        return {"orders": 0}
    orders = reduce(lambda a, b: a.unionByName(b), parts).cache()
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


STEPS = (pull, ingest, check_bronze, build_silver, publish_marts, export_segments)


def run_all(logical_date: date, settings: Settings | None = None) -> dict:
    """All steps in order, in this process (what the DAG does, without Airflow)."""
    return {step.__name__: step(logical_date, settings) for step in STEPS}
