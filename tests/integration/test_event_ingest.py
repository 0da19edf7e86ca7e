"""Browse events, WeCom and Official Account pushes -> bronze + quarantine on real Spark and Delta,
reconciled, with quarantine reasons naming file, line and field, and the bronze suites passing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.common import lake as lake_io
from jobs.ingest.bronze import ingest
from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.spec import get_spec
from jobs.quality import bronze_checks, gate
from jobs.simulator import events, simulate, wecom

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY = date(2026, 11, 22)
KEYS = sorted({**events.WRITERS, **wecom.WRITERS})


def test_one_day_of_each_engagement_source_reconciles(spark, lake):
    landing = Path(lake.landing_root)
    simulate(landing, customers=1500, days=1, seed=6, end=DAY, bad_rate=0.2, only=set(KEYS))
    quarantine_path = lake_io.table_path("quarantine", "records", lake)
    for key in KEYS:
        spec = get_spec(key)
        [path] = sorted((landing / spec.source / spec.dataset / f"dt={DAY}").glob("*.jsonl"))
        parsed = list(parse_file(path, spec))
        expected_bad = {i.line: i for i in parsed if isinstance(i, Rejected)}
        assert expected_bad, f"{key}: the simulator spoiled no line"

        result = ingest(key, DAY, settings=lake)

        assert result.reconciled, key
        assert result.rows_read == len(path.read_text(encoding="utf-8").splitlines())
        assert result.rows_bronze == sum(isinstance(i, Record) for i in parsed)
        assert result.rows_quarantined == len(expected_bad)
        bronze = spark.read.format("delta").load(
            lake_io.table_path("bronze", spec.bronze_table, lake)
        )
        assert bronze.where(F.col("_source") != spec.source).count() == 0
        # Leaves the spec does not map are kept, as JSON, on the rows that had them.
        with_extra = sum(isinstance(i, Record) and bool(i.extra) for i in parsed)
        assert bronze.where(F.col("_extra").isNotNull()).count() == with_extra

        rows = (
            spark.read.format("delta")
            .load(quarantine_path)
            .where((F.col("source") == spec.source) & (F.col("dataset") == spec.dataset))
            .collect()
        )
        assert {r.line for r in rows} == set(expected_bad)
        for r in rows:
            assert r.reason.startswith(f"{spec.source}/{spec.dataset}/dt={DAY}/{path.name} line ")
            assert r.field == expected_bad[r.line].field
            assert r.raw == expected_bad[r.line].raw
            if r.field is not None:
                assert repr(r.field) in r.reason

        # The bronze gate as check_bronze runs it: the day through delta-rs, GX on pandas.
        report = gate.validate(
            bronze_checks.read_day(lake_io.table_path("bronze", spec.bronze_table, lake), DAY),
            f"bronze.{spec.bronze_table}",
            run_id=f"test:{key}:{DAY}",
            parameters=bronze_checks.parameters({}, DAY, lake.quality, lake.timezone),
        )
        assert report.success_blocking, (key, report.failed_blocking)
        fresh = [r for r in report.results if r.expectation == "expect_column_max_to_be_between"]
        assert [r.success for r in fresh] == [True], key


def test_event_times_land_as_timestamps_and_unix_times_as_numbers(spark, lake):
    landing = Path(lake.landing_root)
    only = {"web.events", "wecom.messages"}
    simulate(landing, customers=600, days=1, seed=2, end=DAY, bad_rate=0.0, only=only)
    ingest("web.events", DAY, settings=lake)
    ingest("wecom.messages", DAY, settings=lake)
    web = spark.read.format("delta").load(lake_io.table_path("bronze", "web_events", lake))
    types = dict(web.dtypes)
    assert types["received_at"] == "timestamp"
    assert types["dwell_ms"] == "bigint"
    # Wall time in the session zone: a received_at on the simulated day (or just after midnight).
    days = {r.d for r in web.select(F.to_date("received_at").alias("d")).distinct().collect()}
    assert DAY in days
    messages = spark.read.format("delta").load(lake_io.table_path("bronze", "wecom_messages", lake))
    assert dict(messages.dtypes)["msgtime_ms"] == "bigint"
