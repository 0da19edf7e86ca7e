"""The quality gate with real GX 1.x and the real suites from expectations/: bronze suites on
Arrow-backed pandas frames (what check_bronze reads through delta-rs), others on Spark."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from jobs.common.errors import CdpError, QualityGateFailed
from jobs.ingest.bronze import bronze_schema
from jobs.ingest.spec import get_spec
from jobs.quality import gate

STATUSES = ["TRADE_FINISHED", "WAIT_SELLER_SEND_GOODS", "TRADE_CLOSED"]
DAY_END = datetime(2026, 11, 1, 16, 0, tzinfo=UTC)  # midnight in Shanghai
# Run-time parameters as check_bronze computes them: no volume history, fresh since the day.
PARAMS = {
    "volume_min": 0,
    "volume_max": None,
    "freshness_min": datetime(2026, 10, 31, 16, 0, tzinfo=UTC),
}


def bronze_row(i: int, **overrides: object) -> dict:
    row = {
        "order_id": f"T{i:06d}",
        "buyer_nick": f"tb{i:010d}",
        "receiver_mobile": [f"138****{i:04d}", f"1390000{i:04d}", None][i % 3],
        "order_status": STATUSES[i % len(STATUSES)],
        "payment": Decimal(f"{i}.50"),
        "refund_fee": Decimal("0.00"),
        "item_quantity": 1,
        "created": datetime(2026, 11, 1, 2, i % 60, tzinfo=UTC),
        "_source": "tmall",
        "_file": "tmall/orders/dt=2026-11-01/orders_20261101.csv",
        "_line": i + 2,
        "_batch_id": "batch-1",
        "_schema_version": "1-0-0",
        "_ingested_at": datetime(2026, 11, 2, 1, 0, tzinfo=UTC),
        "_logical_date": datetime(2026, 11, 1).date(),
    }
    row.update(overrides)
    return row


def bronze_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows in the real bronze schema of tmall.orders, as check_bronze hands them to GX."""
    table = pa.Table.from_pylist(rows, schema=bronze_schema(get_spec("tmall.orders")))
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def validate(rows: list[dict], run_id: str, **params: object) -> gate.QualityReport:
    return gate.validate(
        bronze_frame(rows), "bronze.tmall_orders", run_id=run_id, parameters={**PARAMS, **params}
    )


@pytest.fixture(scope="module")
def good_report():
    return validate([bronze_row(i) for i in range(6)], "test-good")


def test_good_frame_passes(good_report):
    assert good_report.suite == "bronze.tmall_orders"
    assert good_report.run_id == "test-good"
    assert good_report.success_blocking
    assert all(r.success for r in good_report.results), gate.render_text(good_report)
    assert {r.level for r in good_report.results} == {"block", "warn"}
    gate.enforce(good_report)  # does not raise


def test_report_holds_no_gx_objects(good_report):
    for r in good_report.results:
        assert type(r) is gate.ExpectationResult
        assert isinstance(r.details, str)
        assert r.column is None or isinstance(r.column, str)


def test_results_follow_suite_order(good_report):
    suite = gate.load_suite("bronze.tmall_orders")
    assert [r.expectation for r in good_report.results] == [
        e["type"] for e in suite["expectations"]
    ]


def test_null_order_id_blocks_with_message_naming_it():
    rows = [bronze_row(i) for i in range(4)] + [bronze_row(4, order_id=None)]
    report = validate(rows, "test-null")
    assert not report.success_blocking
    failed = [(r.expectation, r.column) for r in report.failed_blocking]
    assert failed == [("expect_column_values_to_not_be_null", "order_id")]
    with pytest.raises(QualityGateFailed) as excinfo:
        gate.enforce(report)
    message = str(excinfo.value)
    assert "\n" not in message
    assert "bronze.tmall_orders" in message
    assert "expect_column_values_to_not_be_null(order_id)" in message
    assert "unexpected 1 of 5" in message


def test_warn_level_failure_does_not_block():
    rows = [bronze_row(i) for i in range(4)] + [bronze_row(4, receiver_mobile="0755-1234")]
    report = validate(rows, "test-warn")
    assert report.success_blocking
    assert [(r.expectation, r.column) for r in report.failed_warnings] == [
        ("expect_column_values_to_match_regex", "receiver_mobile")
    ]
    # receiver_mobile is personal data: its samples are hidden entirely, not just masked
    assert "e.g. [***]" in report.failed_warnings[0].details
    assert "0755-1234" not in report.failed_warnings[0].details
    gate.enforce(report)  # warnings are recorded, not raised
    assert "WARN" in gate.render_text(report)


def test_volume_outside_the_trailing_bounds_warns():
    rows = [bronze_row(i) for i in range(6)]
    report = validate(rows, "test-volume", volume_min=10, volume_max=20)
    assert report.success_blocking
    assert [r.expectation for r in report.failed_warnings] == [
        "expect_table_row_count_to_be_between"
    ]
    assert "observed 6" in report.failed_warnings[0].details
    assert validate(rows, "test-volume-ok", volume_min=4, volume_max=8).failed_warnings == []


def test_stale_export_fails_freshness():
    rows = [bronze_row(i) for i in range(6)]
    report = validate(rows, "test-stale", freshness_min=DAY_END)
    assert [(r.expectation, r.column) for r in report.failed_warnings] == [
        ("expect_column_max_to_be_between", "created")
    ]


def test_missing_runtime_parameter_is_a_clear_error():
    with pytest.raises(CdpError, match=r"needs run-time parameter\(s\) \['freshness_min'\]"):
        gate.validate(
            bronze_frame([bronze_row(1)]),
            "bronze.tmall_orders",
            run_id="test-params",
            parameters={"volume_min": 0, "volume_max": None},
        )


def test_spark_frames_run_on_the_spark_engine(spark, tmp_path: Path):
    suite = {
        "name": "silver.tiny",
        "expectations": [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "k"},
                "meta": {"level": "block"},
            }
        ],
    }
    (tmp_path / "silver.tiny.json").write_text(json.dumps(suite), encoding="utf-8")
    df = spark.createDataFrame([("a",), (None,)], "k string")
    report = gate.validate(df, "silver.tiny", run_id="spark", expectations_dir=tmp_path)
    assert [r.details.split(",")[0] for r in report.failed_blocking] == ["unexpected 1 of 2"]
    assert not df.is_cached  # the gate's own cache is released


def test_results_table_rows(good_report):
    table = gate.results_table(good_report)
    assert table.column_names == list(gate.RESULTS_COLUMNS)
    assert str(table.schema.field("validated_at").type) == "timestamp[us, tz=UTC]"
    rows = table.to_pylist()
    assert len(rows) == len(good_report.results)
    assert {r["suite"] for r in rows} == {"bronze.tmall_orders"}
    assert all(r["success"] for r in rows)


def test_enforce_all_names_every_blocking_suite():
    bad = validate([bronze_row(1, order_id=None)], "a")
    good = validate([bronze_row(2)], "b")
    with pytest.raises(QualityGateFailed) as excinfo:
        gate.enforce_all([good, bad, bad])
    assert str(excinfo.value).count("quality gate bronze.tmall_orders failed") == 2
    gate.enforce_all([good])


def test_write_report(good_report, tmp_path: Path):
    path = gate.write_report(good_report, tmp_path / "dt=2026-11-01")
    assert path.name == "bronze.tmall_orders.txt"
    assert path.read_text(encoding="utf-8").startswith("quality bronze.tmall_orders")


def test_render_text(good_report):
    text = gate.render_text(good_report)
    assert text.splitlines()[0].startswith("quality bronze.tmall_orders")
    assert "PASS" in text


def test_load_suite_missing_file_names_the_path(tmp_path: Path):
    with pytest.raises(CdpError) as excinfo:
        gate.load_suite("bronze.nope", tmp_path)
    assert str(tmp_path / "bronze.nope.json") in str(excinfo.value)


def test_load_suite_rejects_bad_json_and_bad_level(tmp_path: Path):
    (tmp_path / "bronze.broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CdpError, match=r"bronze\.broken\.json.*line 1"):
        gate.load_suite("bronze.broken", tmp_path)

    suite = {
        "name": "bronze.lvl",
        "expectations": [
            {"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "meta": {"level": "x"}}
        ],
    }
    (tmp_path / "bronze.lvl.json").write_text(json.dumps(suite), encoding="utf-8")
    with pytest.raises(CdpError, match=r"bronze\.lvl\.json.*meta\.level"):
        gate.load_suite("bronze.lvl", tmp_path)


@pytest.mark.parametrize("name", ["bronze.tmall_orders", "silver.orders"])
def test_repo_suites_load(name: str):
    suite = gate.load_suite(name)
    assert suite["name"] == name


def test_unknown_expectation_type_names_the_file(tmp_path: Path):
    suite = {
        "name": "bronze.typo",
        "expectations": [
            {
                "type": "expect_column_values_to_be_nul",
                "kwargs": {"column": "order_id"},
                "meta": {"level": "block"},
            }
        ],
    }
    (tmp_path / "bronze.typo.json").write_text(json.dumps(suite), encoding="utf-8")
    df = bronze_frame([bronze_row(0)])
    with pytest.raises(CdpError, match=r"bronze\.typo\.json.*expectations\[0\]"):
        gate.validate(df, "bronze.typo", run_id="test-typo", expectations_dir=tmp_path)


def test_samples_of_failing_rows_never_carry_raw_phones():
    phone, wide = "13912345678", "１５６０１８８１６７７"
    rows = [bronze_row(i) for i in range(4)]
    rows += [bronze_row(4, receiver_mobile=f"+86 {phone}"), bronze_row(5, receiver_mobile=wide)]
    report = validate(rows, "test-mask")
    [warning] = report.failed_warnings
    assert "unexpected 2 of" in warning.details
    assert phone not in warning.details
    assert wide not in warning.details
    assert "e.g. [***, ***]" in warning.details
    assert phone not in gate.render_text(report)


SPELLINGS = ["+86 138 0000 1111", "138-0000-1111", "0086 13800001111", "１３８ ００００ １１１１"]


@pytest.mark.parametrize("phone", SPELLINGS)
def test_phones_quoted_by_any_column_are_masked_in_every_output(phone, tmp_path: Path):
    """A phone in a column that is not personal data (here a status a broken export shifted)
    is still masked wherever the results go: details, ops rows, report file, gate error."""
    rows = [bronze_row(i) for i in range(4)] + [bronze_row(4, order_status=phone)]
    report = validate(rows, "test-spelling")
    [failed] = report.failed_blocking
    assert failed.column == "order_status"
    outputs = {
        "details": failed.details,
        "ops row": str(gate.results_table(report).to_pylist()),
        "report file": gate.write_report(report, tmp_path).read_text(encoding="utf-8"),
    }
    with pytest.raises(QualityGateFailed) as excinfo:
        gate.enforce(report)
    outputs["gate error"] = str(excinfo.value)
    for where, text in outputs.items():
        assert phone not in text, where
        assert "0000" not in text.replace(" ", ""), where
        assert "００００" not in text, where
        assert "******" in text, where


def test_results_of_a_rerun_replace_the_run_rows(good_report, tmp_path: Path):
    from deltalake import DeltaTable

    path = str(tmp_path / "ops" / "quality_results")
    other = validate([bronze_row(i) for i in range(3)], "bronze.tmall_orders:2026-10-31")
    rerun = gate.QualityReport(
        suite=good_report.suite,
        run_id="bronze.tmall_orders:2026-11-01",
        validated_at=good_report.validated_at,
        results=good_report.results,
    )
    gate.write_results(other, path)
    for _ in range(3):
        gate.write_results(rerun, path)
    rows = DeltaTable(path).to_pyarrow_table().to_pylist()
    per_run = {run: sum(r["run_id"] == run for r in rows) for run in {r["run_id"] for r in rows}}
    assert per_run == {other.run_id: len(other.results), rerun.run_id: len(rerun.results)}


def test_run_ids_with_quotes_are_escaped_in_the_replace_predicate(good_report, tmp_path: Path):
    from dataclasses import replace

    from deltalake import DeltaTable

    path = str(tmp_path / "quality_results")
    tricky = replace(good_report, run_id="it's' OR '1'='1")
    gate.write_results(replace(good_report, run_id="plain"), path)
    gate.write_results(tricky, path)
    gate.write_results(tricky, path)
    runs = [r["run_id"] for r in DeltaTable(path).to_pyarrow_table().to_pylist()]
    assert runs.count("plain") == len(good_report.results)
    assert runs.count(tricky.run_id) == len(good_report.results)


def test_counts_in_details_are_readable_and_samples_still_masked():
    """Row counts are ours, not data: 1,287,171 reads as a number, not as a masked phone; the
    samples of a failing column are masked as before."""
    from jobs.quality.gate import _details

    assert _details({"unexpected_count": 0, "element_count": 1287171}, {}) == (
        "unexpected 0 of 1,287,171"
    )
    assert _details({"observed_value": 12871710}, {}, "row_count") == "observed 12,871,710"
    failing = {
        "unexpected_count": 1,
        "element_count": 2,
        "partial_unexpected_list": ["13912345678"],
    }
    assert "13912345678" not in _details(failing, {}, "note")
