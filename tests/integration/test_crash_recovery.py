"""kill -9 an import before, during and just after each of its commits, run again, and every
table must hold what a clean run leaves: nothing lost, nothing twice.

The import runs as `cdp import` in a subprocess with CDP_TEST_CRASH_AT naming a point
(jobs/common/crashpoints.py), where it SIGKILLs itself: no cleanup runs, like a lost machine.
Then the same import runs again (or, in the second test, an import of another file of the
dataset, which must complete the interrupted batch first). Tables are compared row by row with
a lake where the same imports ran without a crash, ignoring run timestamps; the journal
(ops.ingest_journal) is the one table allowed to differ, since it records the crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from deltalake import DeltaTable

from jobs.common import lake as lake_io
from jobs.common.crashpoints import CRASH_ENV
from jobs.common.settings import get_settings
from jobs.ingest import importer
from tests.conftest import _lake_env
from tests.integration.test_bad_input_catalogue import ORDERS, ORDERS_MAPPING

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DAY = date(2026, 11, 22)
HEADER = ORDERS


def _orders(version: int, count: int) -> bytes:
    """An export with good rows, a quarantined row and a row with a nulled field."""
    lines = [HEADER]
    for n in range(1, count + 1):
        lines.append(
            f"A{n},M{n},1380013{n:04d},2026-11-22 10:{n:02d}:00,{n * version}.00,已完成,v{version}"
        )
    lines.append(f"B{version},M9,,2026-11-22 11:00:00,not-money,已完成,bad")
    lines.append(f"C{version},M8,0000000,2026-11-22 12:00:00,1.00,失踪,issue")
    return ("\n".join(lines) + "\n").encode("utf-8")


V1, V2 = _orders(1, 4), _orders(2, 6)  # same file name, re-sent with more and changed rows
OTHER = _orders(3, 2)  # another part of the export, same date

POINTS = [
    f"{table}:{when}"
    for table in ("bronze", "quarantine", "manifest", "recompute", "issues", "log")
    for when in ("before", "during", "after")
] + ["journal:before", "journal:end"]

_VOLATILE = {"_ingested_at", "ingested_at", "started_at", "finished_at", "at", "retracted_at"}


def _env(root: Path) -> dict[str, str]:
    return _lake_env(root)


def _use(root: Path, monkeypatch) -> object:
    for key, value in _env(root).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


def _files(root: Path) -> dict[str, Path]:
    folder = root / "in"
    folder.mkdir(parents=True, exist_ok=True)
    mapping = folder / "mapping.yaml"
    mapping.write_text(
        yaml.safe_dump(ORDERS_MAPPING, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return {"mapping": mapping, "folder": folder}


def _import(root: Path, name: str, data: bytes, settings) -> object:
    path = _files(root)["folder"] / name
    path.write_bytes(data)
    spec = importer.build_spec(ORDERS_MAPPING, source="brand", dataset="orders", fmt="csv")
    return importer.run_import(path, spec, DAY, settings=settings)


def _crash(root: Path, name: str, data: bytes, point: str) -> subprocess.CompletedProcess:
    paths = _files(root)
    path = paths["folder"] / name
    path.write_bytes(data)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "import",
            "orders",
            str(path),
            "--source",
            "brand",
            "--mapping",
            str(paths["mapping"]),
            "--date",
            DAY.isoformat(),
        ],
        env={**os.environ, **_env(root), CRASH_ENV: point},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _state(settings) -> dict[str, list[str]]:
    """Every table's rows (run timestamps dropped), sorted, as comparable text."""
    state = {}
    for layer, name, path in lake_io.list_tables(settings):
        if (layer, name) == ("ops", "ingest_journal"):
            continue
        rows = DeltaTable(path).to_pyarrow_table().to_pylist()
        state[f"{layer}.{name}"] = sorted(
            json.dumps(
                {k: v for k, v in r.items() if k not in _VOLATILE}, default=str, sort_keys=True
            )
            for r in rows
        )
    return state


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, list[str]]:
    """The lake after v1 then v2 of the file, then another part, with no crash."""
    root = tmp_path_factory.mktemp("clean")
    mp = pytest.MonkeyPatch()
    settings = _use(root, mp)
    try:
        _import(root, "orders.csv", V1, settings)
        after_v2 = _import(root, "orders.csv", V2, settings)
        assert after_v2.reconciled
        assert after_v2.rows_with_issues == 1
        state_v2 = _state(settings)
        _import(root, "part2.csv", OTHER, settings)
        return {"v2": state_v2, "all": _state(settings)}
    finally:
        mp.undo()
        get_settings.cache_clear()


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_a_commit_then_rerun_equals_a_clean_run(point, clean, tmp_path, monkeypatch):
    settings = _use(tmp_path, monkeypatch)
    _import(tmp_path, "orders.csv", V1, settings)

    crashed = _crash(tmp_path, "orders.csv", V2, point)
    assert crashed.returncode == -signal.SIGKILL, (point, crashed.stdout, crashed.stderr)

    again = _import(tmp_path, "orders.csv", V2, settings)
    assert again.reconciled
    assert _state(settings) == clean["v2"]


@pytest.mark.parametrize("point", ["bronze:after", "quarantine:during", "log:after"])
def test_the_next_import_of_another_file_completes_the_interrupted_batch(
    point, clean, tmp_path, monkeypatch
):
    settings = _use(tmp_path, monkeypatch)
    _import(tmp_path, "orders.csv", V1, settings)
    crashed = _crash(tmp_path, "orders.csv", V2, point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    other = _import(tmp_path, "part2.csv", OTHER, settings)
    assert len(other.recovered) == 1
    assert _state(settings) == clean["all"]


def test_the_gate_completes_an_interrupted_batch_of_its_day(clean, tmp_path, monkeypatch):
    """check_bronze starts with `recover_day`: a torn day is completed before it is judged."""
    from jobs.ingest.bronze import recover_day

    settings = _use(tmp_path, monkeypatch)
    _import(tmp_path, "orders.csv", V1, settings)
    crashed = _crash(tmp_path, "orders.csv", V2, "quarantine:after")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert _state(settings) != clean["v2"]  # torn: bronze and quarantine are v2, the rest v1

    assert len(recover_day(DAY, settings)) == 1
    assert _state(settings) == clean["v2"]
    assert recover_day(DAY, settings) == []


def test_an_interrupted_batch_whose_file_is_gone_stops_until_restored_or_retracted(
    tmp_path, monkeypatch
):
    from jobs.common.errors import CdpError
    from jobs.ingest.bronze import retract

    settings = _use(tmp_path, monkeypatch)
    crashed = _crash(tmp_path, "orders.csv", V2, "bronze:after")  # its first import
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    copy = Path(settings.landing_root) / "_imports" / "brand" / "orders" / f"dt={DAY}"
    (copy / "orders.csv").unlink()  # the file the batch must be redone from is gone

    with pytest.raises(CdpError, match=r"orders\.csv are gone"):
        _import(tmp_path, "part2.csv", OTHER, settings)

    removed = retract("brand.orders", f"import/brand/orders/dt={DAY}/orders.csv", settings=settings)
    assert removed["bronze.import_brand_orders"] > 0  # the half-written rows leave
    other = _import(tmp_path, "part2.csv", OTHER, settings)
    assert len(other.recovered) == 1
    bronze = DeltaTable(lake_io.table_path("bronze", "import_brand_orders", settings))
    files = set(bronze.to_pyarrow_table().column("_file").to_pylist())
    assert files == {f"import/brand/orders/dt={DAY}/part2.csv"}


def test_the_journal_keeps_interrupted_batches_and_prunes_finished_ones(tmp_path, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from jobs.ingest import journal

    settings = _use(tmp_path, monkeypatch)
    _import(tmp_path, "orders.csv", V1, settings)  # finished: started + committed
    crashed = _crash(tmp_path, "part2.csv", OTHER, "bronze:after")  # interrupted: started
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    later = datetime.now(UTC) + timedelta(days=31)

    assert journal.prune(settings, keep_days=30) == 0  # nothing is old yet
    assert journal.prune(settings, keep_days=30, now=later) == 2
    [pending] = journal.interrupted(settings)
    assert [f.key for f in pending.files] == [f"import/brand/orders/dt={DAY}/part2.csv"]
    assert _import(tmp_path, "orders.csv", V1, settings).recovered == (pending.batch_id,)
