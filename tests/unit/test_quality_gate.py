"""The quality gate on tiny Spark frames: real GX 1.x, real suites from expectations/."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.common.errors import CdpError, QualityGateFailed
from jobs.quality import gate

BRONZE_SCHEMA = (
    "order_id string, buyer_open_uid string, receiver_mobile string, order_status string, "
    "payment decimal(12,2), created timestamp, _source string, _file string, "
    "_ingested_at timestamp, _batch_id string"
)
STATUSES = ["TRADE_FINISHED", "WAIT_SELLER_SEND_GOODS", "TRADE_CLOSED"]


def bronze_row(i: int, **overrides: object) -> tuple:
    row = {
        "order_id": f"T{i:06d}",
        "buyer_open_uid": f"AAHk{i}",
        "receiver_mobile": [f"138****{i:04d}", f"1390000{i:04d}", None][i % 3],
        "order_status": STATUSES[i % len(STATUSES)],
        "payment": Decimal(f"{i}.50"),
        "created": datetime(2026, 11, 1, 10, i % 60),
        "_source": "tmall",
        "_file": "tmall_orders_2026-11-01.jsonl",
        "_ingested_at": datetime(2026, 11, 2, 1, 0),
        "_batch_id": "batch-1",
    }
    row.update(overrides)
    return tuple(row.values())


@pytest.fixture(scope="module")
def good_report(spark):
    df = spark.createDataFrame([bronze_row(i) for i in range(6)], BRONZE_SCHEMA)
    return gate.validate(df, "bronze.tmall_orders", run_id="test-good")


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


def test_null_order_id_blocks_with_message_naming_it(spark):
    rows = [bronze_row(i) for i in range(4)] + [bronze_row(4, order_id=None)]
    report = gate.validate(
        spark.createDataFrame(rows, BRONZE_SCHEMA), "bronze.tmall_orders", run_id="test-null"
    )
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


def test_warn_level_failure_does_not_block(spark):
    rows = [bronze_row(i) for i in range(4)] + [bronze_row(4, receiver_mobile="0755-1234")]
    report = gate.validate(
        spark.createDataFrame(rows, BRONZE_SCHEMA), "bronze.tmall_orders", run_id="test-warn"
    )
    assert report.success_blocking
    assert [(r.expectation, r.column) for r in report.failed_warnings] == [
        ("expect_column_values_to_match_regex", "receiver_mobile")
    ]
    assert "0755-1234" in report.failed_warnings[0].details
    gate.enforce(report)  # warnings are recorded, not raised
    assert "WARN" in gate.render_text(report)


def test_results_frame_rows(spark, good_report):
    frame = gate.results_frame(spark, good_report)
    assert frame.columns == [
        "suite",
        "run_id",
        "validated_at",
        "expectation",
        "column",
        "level",
        "success",
        "details",
    ]
    assert dict(frame.dtypes)["validated_at"] == "timestamp"
    rows = frame.collect()
    assert len(rows) == len(good_report.results)
    assert {r.suite for r in rows} == {"bronze.tmall_orders"}
    assert all(r.success for r in rows)


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


def test_unknown_expectation_type_names_the_file(spark, tmp_path: Path):
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
    df = spark.createDataFrame([bronze_row(0)], BRONZE_SCHEMA)
    with pytest.raises(CdpError, match=r"bronze\.typo\.json.*expectations\[0\]"):
        gate.validate(df, "bronze.typo", run_id="test-typo", expectations_dir=tmp_path)
