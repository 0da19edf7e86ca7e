"""Landing files -> bronze + quarantine on real Spark and Delta: nothing lost, reruns idempotent."""

from datetime import date, timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from jobs.common import lake as lake_io
from jobs.common.errors import CdpError
from jobs.ingest.bronze import days_to_recompute, ingest
from jobs.ingest.records import Record, parse_file
from jobs.ingest.replay import replay
from jobs.ingest.spec import get_spec
from jobs.simulator import simulate

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY = date(2026, 11, 22)


def test_ingest_reconciles_quarantines_and_is_idempotent(spark, lake):
    world = simulate(Path(lake.landing_root), customers=300, days=2, seed=3, end=DAY, bad_rate=0.2)
    spec = get_spec("tmall.orders")
    files = sorted((Path(lake.landing_root) / "tmall" / "orders" / f"dt={DAY}").glob("*.csv"))
    expected_good = sum(isinstance(i, Record) for f in files for i in parse_file(f, spec))

    first = ingest("tmall.orders", DAY, settings=lake)
    assert first.reconciled
    assert first.rows_bronze == expected_good
    assert first.rows_quarantined > 0
    assert first.rows_read == first.rows_bronze + first.rows_quarantined

    bronze = spark.read.format("delta").load(lake_io.table_path("bronze", "tmall_orders", lake))
    meta = bronze.select("_source", "_file", "_batch_id", "_schema_version", "_logical_date")
    assert meta.distinct().count() == 1
    row = meta.first()
    assert row._source == "tmall"
    assert row._schema_version == spec.schema_version == "2-0-0"
    assert row._file == f"tmall/orders/dt={DAY}/orders_{DAY:%Y%m%d}.csv"
    assert bronze.where(F.col("_line").isNull()).count() == 0

    quarantine = spark.read.format("delta").load(lake_io.table_path("quarantine", "records", lake))
    reasons = [r.reason for r in quarantine.collect()]
    assert all(f"orders_{DAY:%Y%m%d}.csv line " in r for r in reasons)
    assert all(r.raw for r in quarantine.collect())

    again = ingest("tmall.orders", DAY, settings=lake)
    assert (again.rows_bronze, again.rows_quarantined) == (
        first.rows_bronze,
        first.rows_quarantined,
    )
    assert again.batch_id == first.batch_id
    assert bronze.count() == first.rows_bronze

    # One row per run: the rerun replaced the first run's row instead of adding one.
    log = spark.read.format("delta").load(lake_io.table_path("ops", "ingestion_log", lake))
    assert log.where("status = 'ok'").count() == 1
    assert world.orders > 0


def test_day_without_files_is_an_empty_reconciled_batch(lake):
    result = ingest("tmall.orders", date(2020, 1, 1), settings=lake)
    assert (result.files, result.rows_read, result.rows_bronze) == (0, 0, 0)
    assert result.reconciled


def _landing_file(lake, day):
    folder = Path(lake.landing_root) / "tmall" / "orders" / f"dt={day}"
    return next(folder.glob("*.csv"))


def test_same_file_under_another_date_is_skipped(lake):
    simulate(Path(lake.landing_root), customers=100, days=1, seed=4, end=DAY, bad_rate=0.0)
    first = ingest("tmall.orders", DAY, settings=lake)
    assert first.rows_bronze > 0
    other_day = date(2026, 11, 23)
    copy = Path(lake.landing_root) / "tmall" / "orders" / f"dt={other_day}" / "resent.csv"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(_landing_file(lake, DAY).read_bytes())

    again = ingest("tmall.orders", other_day, settings=lake)
    assert (again.files, again.rows_read, again.rows_bronze) == (0, 0, 0)
    assert len(again.files_skipped) == 1
    assert str(DAY) in again.files_skipped[0]
    assert "resent.csv" in again.files_skipped[0]
    # rerunning the original day is still a plain replace, not a skip
    assert ingest("tmall.orders", DAY, settings=lake).rows_bronze == first.rows_bronze


def test_missing_landing_files_never_erase_bronze(spark, lake):
    simulate(Path(lake.landing_root), customers=100, days=1, seed=4, end=DAY, bad_rate=0.0)
    first = ingest("tmall.orders", DAY, settings=lake)
    _landing_file(lake, DAY).unlink()
    again = ingest("tmall.orders", DAY, settings=lake)  # no file: nothing to replace
    assert (again.files, again.rows_read) == (0, 0)
    bronze = spark.read.format("delta").load(lake_io.table_path("bronze", "tmall_orders", lake))
    assert bronze.count() == first.rows_bronze


def test_an_empty_resend_is_refused_unless_allowed(lake):
    simulate(Path(lake.landing_root), customers=100, days=1, seed=4, end=DAY, bad_rate=0.0)
    first = ingest("tmall.orders", DAY, settings=lake)
    path = _landing_file(lake, DAY)
    data = path.read_bytes()
    path.write_bytes(data.split(b"\r\n", 1)[0] + b"\r\n")  # header only
    with pytest.raises(CdpError, match="--allow-shrink"):
        ingest("tmall.orders", DAY, settings=lake)
    table = lake_io.table_path("bronze", "tmall_orders", lake)
    assert DeltaTable(table).to_pyarrow_dataset().count_rows() == first.rows_bronze
    emptied = ingest("tmall.orders", DAY, settings=lake, allow_shrink=True)
    assert (emptied.rows_read, emptied.rows_bronze) == (0, 0)
    assert DeltaTable(table).to_pyarrow_dataset().count_rows() == 0


def test_replay_releases_fixed_rows_from_quarantine(lake):
    simulate(Path(lake.landing_root), customers=300, days=1, seed=8, end=DAY, bad_rate=0.0)
    path = _landing_file(lake, DAY)
    data = path.read_bytes()
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "gb18030"
    lines = data.decode(encoding).split("\r\n")
    broken = [lines[0]] + [ln.replace(",交易成功,", ",交易状态未知,") for ln in lines[1:]]
    path.write_bytes("\r\n".join(broken).encode(encoding))
    before = ingest("tmall.orders", DAY, settings=lake)
    assert before.rows_quarantined > 0

    path.write_bytes(data)  # the platform re-exports the day correctly
    [result] = replay("tmall.orders", settings=lake)
    assert result.logical_date == DAY
    assert result.quarantined_before == before.rows_quarantined
    assert result.quarantined_after == 0
    assert result.released == before.rows_quarantined
    assert result.bronze_after == before.rows_bronze + before.rows_quarantined
    assert replay("tmall.orders", settings=lake) == []


def test_empty_exports_of_quiet_days_are_never_taken_for_duplicates(lake):
    header = ",".join(c.header for c in get_spec("tmall.orders").columns) + "\r\n"
    days = [date(2026, 11, 20), date(2026, 11, 21)]
    for day in days:
        folder = Path(lake.landing_root) / "tmall" / "orders" / f"dt={day}"
        folder.mkdir(parents=True)
        (folder / "orders.csv").write_bytes(header.encode("utf-8"))
    results = [ingest("tmall.orders", day, settings=lake) for day in days]
    assert [(r.files, r.files_skipped, r.rows_read) for r in results] == [(1, (), 0)] * 2


def test_late_records_land_and_mark_their_days_for_recompute(lake):
    spec = get_spec("tmall.orders")
    header = ",".join(c.header for c in spec.columns)
    created = {
        "3101": DAY,
        "3102": DAY - timedelta(days=3),
        "3103": DAY - timedelta(days=3),
    }
    created["3104"] = DAY - timedelta(days=lake.ingest.lookback_days + 2)  # beyond the lookback
    lines = [header] + [
        f"2026112200{oid},AAGbuyer{oid},99.00,交易成功,王芳,138****0000,上海市,{day} 10:00:00,"
        f"{day} 10:01:00,精华液,1,0.00"
        for oid, day in created.items()
    ]
    folder = Path(lake.landing_root) / "tmall" / "orders" / f"dt={DAY}"
    folder.mkdir(parents=True)
    (folder / "orders.csv").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")

    for _ in range(2):  # a rerun replaces the marks instead of adding to them
        result = ingest("tmall.orders", DAY, settings=lake)
        assert (result.rows_bronze, result.rows_quarantined) == (4, 0)  # late rows still land
        marks = DeltaTable(lake_io.table_path("ops", "recompute_days", lake)).to_pyarrow_table()
        assert sorted(
            (r["affected_date"], r["rows"], r["within_lookback"]) for r in marks.to_pylist()
        ) == [(created["3104"], 1, False), (created["3102"], 2, True)]
    assert days_to_recompute(DAY, lake) == [created["3102"]]
    assert days_to_recompute(DAY - timedelta(days=1), lake) == []


def test_a_landing_uri_ingests_the_same_rows(lake):
    simulate(Path(lake.landing_root), customers=300, days=1, seed=12, end=DAY, bad_rate=0.1)
    local = ingest("jd.orders", DAY, settings=lake)
    remote_settings = lake.model_copy(update={"landing_root": f"file://{lake.landing_root}"})
    remote = ingest("jd.orders", DAY, settings=remote_settings)
    assert remote.rows_read > 0
    assert (remote.rows_bronze, remote.rows_quarantined, remote.batch_id) == (
        local.rows_bronze,
        local.rows_quarantined,
        local.batch_id,
    )
    bronze = DeltaTable(lake_io.table_path("bronze", "jd_orders", lake)).to_pyarrow_table()
    assert set(bronze.column("_file").to_pylist()) == {
        f"jd/orders/dt={DAY}/orders_{DAY:%Y%m%d}.csv"
    }
