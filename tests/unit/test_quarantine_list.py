"""`cdp quarantine list`: where rejected rows came from and why, reasons masked, raw on request."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from jobs import cli
from jobs.common.lake import table_path
from jobs.quality.quarantine import list_quarantined

PHONE = "+86 139 1234 5678"
runner = CliRunner()


def _row(source, dataset, day, line, field, reason, raw, **extra):
    return {
        "source": source,
        "dataset": dataset,
        "file": f"{source}/{dataset}/dt={day}/export.csv",
        "line": line,
        "field": field,
        "reason": f"{source}/{dataset}/dt={day}/export.csv line {line}: {reason}",
        "raw": raw,
        "_batch_id": f"b-{source}-{day}",
        "_ingested_at": datetime(2026, 1, 7, tzinfo=UTC),
        "_logical_date": date.fromisoformat(day),
        **extra,
    }


@pytest.fixture
def quarantine(lake):
    rows = [
        _row("tmall", "orders", "2026-01-05", 3, "receiver_mobile",
             f"receiver_mobile {PHONE!r} is not a mobile", f"T1,张三,{PHONE}"),
        _row("tmall", "orders", "2026-01-06", 7, "payment", "payment 'abc' is not a decimal",
             "T2,李四,abc"),
        _row("jd", "orders", "2026-01-06", 2, "created", "created '2026-13-01' is not a date",
             "J1,王五,2026-13-01"),
        _row("tmall", "refunds", "2026-01-06", 4, None, "invalid JSON", "{broken",
             rule="json"),  # a column others may add later
    ]  # fmt: skip
    write_deltalake(
        table_path("quarantine", "records", lake),
        pa.Table.from_pylist(rows),
        partition_by=["_logical_date"],
    )
    return lake


def test_lists_newest_first_with_masked_reasons(quarantine):
    rows = list_quarantined(quarantine)
    assert [(str(r.logical_date), r.source, r.line) for r in rows] == [
        ("2026-01-06", "jd.orders", 2),
        ("2026-01-06", "tmall.orders", 7),
        ("2026-01-06", "tmall.refunds", 4),
        ("2026-01-05", "tmall.orders", 3),
    ]
    oldest = rows[-1]
    assert oldest.file == "tmall/orders/dt=2026-01-05/export.csv"
    assert oldest.field == "receiver_mobile"
    assert oldest.reason == "receiver_mobile '+86 139******78' is not a mobile"
    assert PHONE not in oldest.reason
    assert "+86 139******78" in oldest.reason
    assert all(r.raw is None for r in rows)


def test_filters_by_source_dataset_date_and_limit(quarantine):
    assert {r.source for r in list_quarantined(quarantine, source="tmall")} == {
        "tmall.orders",
        "tmall.refunds",
    }
    assert {r.source for r in list_quarantined(quarantine, source="tmall.orders")} == {
        "tmall.orders"
    }
    on_day = list_quarantined(quarantine, day=date(2026, 1, 5))
    assert [(r.source, r.line) for r in on_day] == [("tmall.orders", 3)]
    assert len(list_quarantined(quarantine, limit=2)) == 2
    assert list_quarantined(quarantine, source="nope") == []


def test_raw_payload_only_when_asked(quarantine):
    [row] = list_quarantined(quarantine, day=date(2026, 1, 5), raw=True)
    assert row.raw == f"T1,张三,{PHONE}"


def test_the_command_shows_masked_reasons_and_raw_only_with_raw(quarantine, monkeypatch):
    monkeypatch.setattr(cli.console, "width", 400)
    out = runner.invoke(cli.app, ["quarantine", "list", "--date", "2026-01-05"])
    assert out.exit_code == 0, out.exception
    assert "tmall.orders" in out.output
    assert "receiver_mobile" in out.output
    assert "+86 139******78" in out.output
    assert PHONE not in out.output
    assert "张三" not in out.output

    raw = runner.invoke(
        cli.app, ["quarantine", "list", "--raw", "--source", "tmall.orders", "--limit", "5"]
    )
    assert raw.exit_code == 0, raw.exception
    assert f"T1,张三,{PHONE}" in raw.output


def test_empty_or_missing_quarantine_is_not_an_error(lake):
    out = runner.invoke(cli.app, ["quarantine", "list"])
    assert out.exit_code == 0, out.exception
    assert "nothing in quarantine" in out.output
