"""The `cdp` command line as a user meets it: help, one-line errors, traces only with --debug."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [
    "simulate",
    "ingest",
    "pull-youzan",
    "dag-test",
    "query",
    "tables",
    "demo",
    "run",
    "kafka",
    "segments",
    "stream",
    "quarantine",
    "import",
    "retract",
    "airflow",
    "rfm",
    "ltv",
    "report",
]


def cdp(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
        check=False,
    )


def test_help_lists_every_command_with_a_description():
    out = cdp("--help")
    assert out.returncode == 0
    for command in COMMANDS:
        line = next(ln for ln in out.stdout.splitlines() if f" {command} " in ln)
        assert len(line.split(command, 1)[1].strip(" │")) > 10, line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("segments", "export", "nope"), "unknown segment 'nope'"),
        (("run", "daily", "--date", "22/11/2026"), "expected YYYY-MM-DD"),
        (("query", "select * from nowhere.nothing"), "query failed"),
    ],
)
def test_errors_are_one_line_without_a_trace(lake, args, message):
    out = cdp(*args)
    assert out.returncode == 1
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error:")
    assert message in lines[0]
    assert "Traceback" not in out.stderr


def test_debug_shows_the_trace(lake):
    out = cdp("--debug", "segments", "export", "nope")
    assert out.returncode == 1
    assert "Traceback" in out.stderr
    assert "CdpError" in out.stderr


def test_simulate_writes_one_landing_folder_per_day(lake):
    out = cdp("simulate", "--customers", "30", "--days", "2", "--end", "2026-11-22")
    assert out.returncode == 0, out.stderr
    assert "30 customers" in out.stdout
    landing = Path(lake.landing_root) / "tmall" / "orders"
    assert sorted(p.name for p in landing.iterdir()) == ["dt=2026-11-21", "dt=2026-11-22"]


def test_pull_youzan_without_credentials_says_which_variable(lake, monkeypatch):
    for name in ("CDP_YOUZAN__CLIENT_ID", "CDP_YOUZAN__CLIENT_SECRET", "CDP_YOUZAN__KDT_ID"):
        monkeypatch.delenv(name, raising=False)
    out = cdp("pull-youzan", "--date", "2026-11-22")
    assert out.returncode == 1
    assert "CDP_YOUZAN__" in out.stderr
    assert "Traceback" not in out.stderr


def test_backfill_ranges_are_every_day_oldest_first():
    from datetime import date

    from jobs.cli import _days
    from jobs.common.errors import CdpError

    assert _days(None, "2026-10-30", "2026-11-02") == [
        date(2026, 10, 30),
        date(2026, 10, 31),
        date(2026, 11, 1),
        date(2026, 11, 2),
    ]
    assert _days("2026-11-02", None, None) == [date(2026, 11, 2)]
    for bad in [("2026-11-02", "2026-11-01", "2026-11-03"), (None, "2026-11-01", None)]:
        with pytest.raises(CdpError, match="--from and --to"):
            _days(*bad)
    with pytest.raises(CdpError, match="before --from"):
        _days(None, "2026-11-03", "2026-11-01")


def test_query_keeps_raw_personal_data_out_unless_asked(lake):
    import pyarrow as pa
    from deltalake import write_deltalake

    from jobs.common.lake import table_path

    write_deltalake(
        table_path("bronze", "tmall_orders", lake), pa.table({"phone": ["13912345678"]})
    )
    write_deltalake(table_path("silver", "orders", lake), pa.table({"n": [1, 2]}))
    assert "2" in cdp("query", "select count(*) as n from silver.orders").stdout

    refused = cdp("query", "select phone from bronze.tmall_orders")
    assert refused.returncode == 1
    assert "--raw" in refused.stderr
    assert "13912345678" not in refused.stdout + refused.stderr
    raw = cdp("query", "--raw", "select phone from bronze.tmall_orders")
    assert raw.returncode == 0
    assert "13912345678" in raw.stdout


def _wide_table(lake) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    from jobs.common.lake import table_path

    write_deltalake(
        table_path("gold", "customer_360", lake),
        pa.table(
            {
                "one_id": ["C" + "a" * 20, "C" + "b" * 20],
                "phone_token": ["f" * 64, "e" * 64],
                "first_order_date": ["2026-11-01", "2026-11-02"],
                "last_order_date": ["2026-11-20", "2026-11-02"],
                "orders_count": [3, 1],
                "paid_orders_count": [3, 1],
                "total_amount": [1288.5, 99.0],
                "days_since_last_order": [9, 27],
                "rfm_segment": ["Champions", "重要价值客户"],
            }
        ),
    )


def test_query_prints_vertically_when_the_columns_do_not_fit_80_columns(lake):
    # customer_360's first columns: as a table at 80 columns every header read `cus…`
    _wide_table(lake)
    sql = "select * from gold.customer_360 order by one_id"
    narrow = cdp("query", sql, env={"COLUMNS": "80"})
    assert narrow.returncode == 0, narrow.stderr
    assert "row 1" in narrow.stdout
    assert "row 2" in narrow.stdout
    for line in narrow.stdout.splitlines():
        if "phone_token" in line or "first_order_date" in line:  # every name whole, no `pho…`
            assert "…" not in line
    # a table that fits shows every header whole too (rich would cut `lifecycle_stage`)
    few = cdp(
        "query",
        "select one_id, first_order_date, total_amount, rfm_segment from gold.customer_360",
        env={"COLUMNS": "80"},
    )
    assert "row 1" not in few.stdout
    assert "first_order_date" in few.stdout
    assert "…" not in few.stdout
    assert "重要价值客户" in narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    wide = cdp("query", sql, env={"COLUMNS": "250"})
    assert "row 1" not in wide.stdout  # a table, when it fits
    assert "phone_token" in wide.stdout


def test_query_writes_csv_and_json_to_stdout_or_a_file(lake, tmp_path):
    import csv
    import json

    _wide_table(lake)
    sql = "select one_id, total_amount from gold.customer_360 order by one_id"
    as_csv = cdp("query", sql, "--format", "csv")
    assert list(csv.reader(as_csv.stdout.splitlines())) == [
        ["one_id", "total_amount"],
        ["C" + "a" * 20, "1288.5"],
        ["C" + "b" * 20, "99.0"],
    ]
    as_json = json.loads(cdp("query", sql, "--format", "json").stdout)
    assert as_json == [
        {"one_id": "C" + "a" * 20, "total_amount": 1288.5},
        {"one_id": "C" + "b" * 20, "total_amount": 99.0},
    ]
    out = tmp_path / "rows.json"
    written = cdp("query", sql, "--out", str(out))  # the format from the extension
    assert written.returncode == 0, written.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == as_json
    bad = cdp("query", sql, "--out", str(tmp_path / "rows.txt"))
    assert bad.returncode == 1
    assert "name a .csv or .json file" in bad.stderr
