"""Landing files -> bronze + quarantine on real Spark and Delta: nothing lost, reruns idempotent."""

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.common import lake as lake_io
from jobs.ingest.bronze import ingest
from jobs.ingest.records import Record, parse_file
from jobs.ingest.simulate import simulate
from jobs.ingest.spec import get_spec

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY = date(2026, 11, 22)


def test_ingest_reconciles_quarantines_and_is_idempotent(spark, lake):
    world = simulate(Path(lake.landing_root), customers=300, days=2, seed=3, end=DAY, bad_rate=0.2)
    spec = get_spec("tmall.orders")
    files = sorted((Path(lake.landing_root) / "tmall" / "orders" / f"dt={DAY}").glob("*.csv"))
    expected_good = sum(isinstance(i, Record) for f in files for i in parse_file(f, spec))

    first = ingest("tmall.orders", DAY, spark=spark, settings=lake)
    assert first.reconciled
    assert first.rows_bronze == expected_good
    assert first.rows_quarantined > 0
    assert first.rows_read == first.rows_bronze + first.rows_quarantined

    bronze = spark.read.format("delta").load(lake_io.table_path("bronze", "tmall_orders", lake))
    meta = bronze.select("_source", "_file", "_batch_id", "_schema_version", "_logical_date")
    assert meta.distinct().count() == 1
    row = meta.first()
    assert row._source == "tmall"
    assert row._schema_version == "1-0-0"
    assert row._file == f"tmall/orders/dt={DAY}/orders_{DAY:%Y%m%d}.csv"
    assert bronze.where(F.col("_line").isNull()).count() == 0

    quarantine = spark.read.format("delta").load(lake_io.table_path("quarantine", "records", lake))
    reasons = [r.reason for r in quarantine.collect()]
    assert all(f"orders_{DAY:%Y%m%d}.csv line " in r for r in reasons)
    assert all(r.raw for r in quarantine.collect())

    again = ingest("tmall.orders", DAY, spark=spark, settings=lake)
    assert (again.rows_bronze, again.rows_quarantined) == (
        first.rows_bronze,
        first.rows_quarantined,
    )
    assert again.batch_id == first.batch_id
    assert bronze.count() == first.rows_bronze

    log = spark.read.format("delta").load(lake_io.table_path("ops", "ingestion_log", lake))
    assert log.where("status = 'ok'").count() == 2
    assert world.orders > 0


def test_day_without_files_is_an_empty_reconciled_batch(spark, lake):
    result = ingest("tmall.orders", date(2020, 1, 1), spark=spark, settings=lake)
    assert (result.files, result.rows_read, result.rows_bronze) == (0, 0, 0)
    assert result.reconciled
