"""Independent dates and sources ingest side by side (Airflow runs them in parallel): every one
lands and reconciles; the same dataset and day twice at once is refused, not mixed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs.common import lake as lake_io
from jobs.ingest import journal
from jobs.simulator import simulate
from tests.conftest import _lake_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]

END = date(2026, 11, 22)
DAYS = [END - timedelta(days=n) for n in range(3)]


def _ingest(root: Path, key: str, day: date) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "ingest", key, "--date", day.isoformat()],
        env={**os.environ, **_lake_env(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_parallel_dates_and_sources_all_land(lake, tmp_path):
    simulate(Path(lake.landing_root), customers=200, days=3, seed=21, end=END, bad_rate=0.05)
    runs = [_ingest(tmp_path, key, day) for key in ("tmall.orders", "app.events") for day in DAYS]
    outcomes = [(p.wait(timeout=300), p.communicate()) for p in runs]
    assert [code for code, _ in outcomes] == [0] * len(runs), [err for _, (_, err) in outcomes]

    log = DeltaTable(lake_io.table_path("ops", "ingestion_log", lake)).to_pyarrow_table()
    rows = log.to_pylist()
    assert len(rows) == len(runs)
    assert all(r["rows_read"] == r["rows_bronze"] + r["rows_quarantined"] for r in rows)
    assert all(r["rows_read"] > 0 for r in rows)
    for table, key in (("tmall_orders", "order_id"), ("app_events", "event_id")):
        bronze = DeltaTable(lake_io.table_path("bronze", table, lake)).to_pyarrow_table()
        assert bronze.num_rows == sum(
            r["rows_bronze"] for r in rows if table.startswith(r["source"])
        )
        assert set(bronze.column("_logical_date").to_pylist()) == set(DAYS)
        pairs = list(
            zip(bronze.column("_file").to_pylist(), bronze.column("_line").to_pylist(), strict=True)
        )
        assert len(pairs) == len(set(pairs)), f"{table}: a line landed twice ({key})"


def test_the_same_dataset_and_day_twice_at_once_is_refused(lake, tmp_path):
    simulate(Path(lake.landing_root), customers=50, days=1, seed=22, end=END, bad_rate=0.0)
    with journal.exclusive("tmall.orders", END, lake):  # another writer holds it
        run = _ingest(tmp_path, "tmall.orders", END)
        code = run.wait(timeout=120)
        _out, err = run.communicate()
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "another ingestion is writing this dataset and day" in lines[0]
    assert not lake_io.is_delta(lake_io.table_path("bronze", "tmall_orders", lake))
