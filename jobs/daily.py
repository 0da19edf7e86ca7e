"""The daily batch, one function per step. The `cdp_daily` DAG calls these as tasks; `cdp run daily`
calls them in a row. Every step is keyed on the logical date and idempotent: rerunning a day
replaces that day's output.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from jobs.common import lake
from jobs.common.settings import Settings, get_settings

# Source families: the sources one team runs and one landing schedule serves. Each family has
# its own sensor and mapped ingestion in the DAG, so a late marketplace export doesn't hold the
# tracking events back. A source not listed is its own family.
FAMILIES = {
    "marketplaces": ("tmall", "jd", "douyin", "pdd"),
    "own_channels": ("youzan", "miniprogram", "pos", "erp", "crm"),
    "tracking": ("web", "app"),
    "social": ("wecom", "oa"),
}


def source_keys(settings: Settings | None = None) -> list[str]:
    """Every enabled source dataset with a spec in jobs/ingest/sources/ (cheap: YAML only)."""
    from jobs.ingest.spec import load_specs

    enabled = set((settings or get_settings()).ingest.sources)
    return sorted(
        k for k in load_specs() if not enabled or k in enabled or k.split(".")[0] in enabled
    )


def family_of(source_key: str) -> str:
    source = source_key.split(".")[0]
    return next((f for f, members in FAMILIES.items() if source in members), source)


def source_families(settings: Settings | None = None) -> dict[str, list[str]]:
    """family -> its enabled source keys, in a stable order."""
    families: dict[str, list[str]] = {}
    for key in source_keys(settings):
        families.setdefault(family_of(key), []).append(key)
    return dict(sorted(families.items()))


def landed(family: str, logical_date: date, settings: Settings | None = None) -> list[str]:
    """Source keys of `family` whose landing folder holds a file for the date (the sensor)."""
    from jobs.ingest.landing import list_files
    from jobs.ingest.spec import get_spec

    settings = settings or get_settings()
    keys = source_families(settings).get(family, [])
    return [key for key in keys if list_files(get_spec(key), logical_date, settings)]


def ingest_source(source_key: str, logical_date: date, settings: Settings | None = None) -> dict:
    """One source dataset's landing files of the day -> bronze (+ quarantine, log, manifest)."""
    from jobs.ingest.bronze import ingest as ingest_one

    r = ingest_one(source_key, logical_date, settings=settings)
    return {
        "source": source_key,
        "files": r.files,
        "read": r.rows_read,
        "bronze": r.rows_bronze,
        "quarantined": r.rows_quarantined,
        "skipped": list(r.files_skipped),
    }


def pull(logical_date: date, settings: Settings | None = None) -> dict:
    """Pull the API sources into landing (today: Youzan, when its app is configured)."""
    from jobs.ingest.youzan import pull_orders

    settings = settings or get_settings()
    if not (settings.youzan.client_id and settings.youzan.kdt_id):
        return {"youzan.orders": "not configured (CDP_YOUZAN__CLIENT_ID, ..._KDT_ID)"}
    return {"youzan.orders": str(pull_orders(logical_date, settings))}


def ingest(logical_date: date, settings: Settings | None = None) -> dict:
    """Landing files of every enabled source -> bronze (the DAG maps `ingest_source` instead)."""
    return {key: ingest_source(key, logical_date, settings) for key in source_keys(settings)}


def _validate(df, suite: str, logical_date: date, settings: Settings, parameters=None):
    """Validate, then keep the results in ops.quality_results and a readable report file."""
    from jobs.quality import gate

    report = gate.validate(
        df,
        suite,
        run_id=f"{suite}:{logical_date}",
        expectations_dir=Path(settings.expectations_dir),
        parameters=parameters,
    )
    lake.append_arrow(
        gate.results_table(report), lake.table_path("ops", "quality_results", settings)
    )
    gate.write_report(report, Path(settings.quality.reports_dir) / f"dt={logical_date}")
    return report


def _summary(report) -> dict:
    return {
        "suite": report.suite,
        "passed": report.success_blocking,
        "failed": [r.expectation for r in report.results if not r.success],
    }


def _gate(df, suite: str, logical_date: date, settings: Settings) -> dict:
    """Validate and record, then block on a failed blocking expectation."""
    from jobs.quality import gate

    report = _validate(df, suite, logical_date, settings)
    gate.enforce(report)
    return _summary(report)


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

    Every suite runs and is recorded before the gate decides, so one failing source doesn't
    hide another's results. Runs on pandas through delta-rs (no Spark): see
    jobs/quality/bronze_checks.py, which also computes the volume and freshness parameters.
    A dataset without a suite is reported as such (its rows were still JSON-Schema-validated).
    """
    from jobs.ingest.spec import load_specs
    from jobs.quality import bronze_checks, gate

    settings = settings or get_settings()
    results: dict[str, object] = {}
    reports = []
    for table in sorted({spec.bronze_table for spec in load_specs().values()}):
        suite = f"bronze.{table}"
        path = lake.table_path("bronze", table, settings)
        if not (Path(settings.expectations_dir) / f"{suite}.json").is_file():
            results[suite] = "no suite"
            continue
        if not lake.is_delta(path):
            results[suite] = "no bronze table yet"
            continue
        params = bronze_checks.parameters(
            bronze_checks.rows_per_day(path), logical_date, settings.quality, settings.timezone
        )
        report = _validate(
            bronze_checks.read_day(path, logical_date), suite, logical_date, settings, params
        )
        reports.append(report)
        results[suite] = _summary(report)
    gate.enforce_all(reports)
    return results


def build_silver(logical_date: date, settings: Settings | None = None) -> dict:
    """Every source's bronze orders of the day -> silver model -> validated -> merged into
    silver.orders; silver.customers rebuilt."""
    from functools import reduce

    from jobs.common.spark import get_spark
    from jobs.identity.customers import customers_from_orders
    from jobs.ingest.bronze import days_to_recompute
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
    return {
        "quality": gate,
        "orders": spark.read.format("delta").load(orders_path).count(),
        # Late records of this day's files touched these earlier days: silver.orders is merged
        # by key, so it is already right; day-grained marts recompute them.
        "recompute": [str(d) for d in days_to_recompute(logical_date, settings)],
    }


def publish_marts(logical_date: date, settings: Settings | None = None) -> dict:
    """dbt build: staging -> intermediate -> gold.customer_360 (contracts and tests)."""
    from jobs.profiles.dbt_runner import build

    build(as_of=logical_date, settings=settings)
    return {"dbt": "ok"}


def export_segments(logical_date: date, settings: Settings | None = None) -> dict:
    from jobs.segments.export import export_segment, load_segments

    return {name: export_segment(name, logical_date, settings).members for name in load_segments()}


def maintain_lake(logical_date: date, settings: Settings | None = None) -> dict:
    """Compact the day's small files of the tables every source writes to (no Spark)."""
    from jobs.ingest.bronze import (
        INGESTION_LOG_TABLE,
        MANIFEST_TABLE,
        QUARANTINE_TABLE,
        RECOMPUTE_TABLE,
    )

    settings = settings or get_settings()
    day_partitioned = [("quarantine", QUARANTINE_TABLE)]
    whole = [
        ("ops", MANIFEST_TABLE),
        ("ops", INGESTION_LOG_TABLE),
        ("ops", RECOMPUTE_TABLE),
        ("ops", "quality_results"),
    ]
    removed = {
        f"{layer}.{name}": lake.compact(lake.table_path(layer, name, settings), logical_date)
        for layer, name in day_partitioned
    }
    removed |= {
        f"{layer}.{name}": lake.compact(lake.table_path(layer, name, settings))
        for layer, name in whole
    }
    return {"files_compacted": removed}


STEPS = (
    pull,
    ingest,
    check_bronze,
    build_silver,
    publish_marts,
    export_segments,
    maintain_lake,
)


def run_all(logical_date: date, settings: Settings | None = None) -> dict:
    """All steps in order, in this process (what the DAG does, without Airflow)."""
    return {step.__name__: step(logical_date, settings) for step in STEPS}
