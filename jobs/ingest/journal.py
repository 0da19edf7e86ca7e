"""One writer per dataset and day, and a journal of batches that outlives a crash.

An ingestion batch writes several Delta tables (bronze, quarantine, the file manifest, late-day
marks, field issues, the log) and no store offers a transaction across tables: a process killed
between two commits leaves bronze describing the new files while quarantine and the manifest
still describe the old ones. So a batch is journaled: `started` (with its files, their
checksums and its spec) before the first commit, `committed` after the last. A `started` batch
with no later end whose writer is gone (its lock is free) was interrupted; the next ingestion
of that dataset redoes it from its files (`jobs.ingest.bronze.recover`). Every table write of a
batch replaces exactly that batch's files' rows, so redoing a batch from any half-done state
leaves the tables as one clean run would.

The writer lock is an advisory `flock` on a file under ``{var_dir}/locks/ingest/``: the kernel
drops it when its process dies, even by SIGKILL, so a crash never leaves a stale lock. It holds
across processes of one machine (the embedded default, Airflow's LocalExecutor); workers on
several machines need ``var_dir`` on a shared file system that honours flock, or one
ingestion queue (see docs/runbooks.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from jobs.common import lake
from jobs.common.errors import CdpError
from jobs.common.settings import Settings

JOURNAL_TABLE = "ingest_journal"
JOURNAL_SCHEMA = pa.schema(
    [
        ("batch_id", pa.string()),
        ("source", pa.string()),
        ("dataset", pa.string()),
        ("_logical_date", pa.date32()),
        ("state", pa.string()),  # started | committed | recovered | aborted
        ("files", pa.string()),  # JSON: [{"key", "location", "sha256"}]
        ("spec", pa.string()),  # JSON of the SourceSpec the batch was parsed with
        ("allow_shrink", pa.bool_()),
        ("host", pa.string()),
        ("pid", pa.int64()),
        ("at", pa.timestamp("us", tz="UTC")),
    ]
)


class ConcurrentIngest(CdpError):
    """Another process is ingesting the same dataset and day."""


@dataclass(frozen=True)
class BatchFile:
    key: str  # the file's identity in the lake (`_file` in bronze): its landing path or import
    location: str  # where its bytes are: a local path or a URI
    sha256: str


@dataclass(frozen=True)
class Batch:
    batch_id: str
    source: str
    dataset: str
    logical_date: date
    files: tuple[BatchFile, ...]
    spec: str  # JSON (jobs.ingest.spec.spec_to_json)
    allow_shrink: bool


def _lock_path(key: str, day: date, settings: Settings) -> Path:
    return Path(settings.var_dir) / "locks" / "ingest" / f"{key}.{day.isoformat()}.lock"


@contextmanager
def exclusive(key: str, day: date, settings: Settings) -> Iterator[None]:
    """Hold the writer lock of one dataset and day, or refuse at once with who holds it."""
    path = _lock_path(key, day, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConcurrentIngest(
            f"{key} {day}: another ingestion is writing this dataset and day right now "
            f"({holder}); wait for it to finish (or stop it) and run again"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        started = datetime.now(UTC).isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _path(settings: Settings) -> str:
    return lake.table_path("ops", JOURNAL_TABLE, settings)


def record(batch: Batch, state: str, settings: Settings) -> None:
    """Append one state of a batch to the journal (appends never conflict with each other)."""
    row = {
        "batch_id": batch.batch_id,
        "source": batch.source,
        "dataset": batch.dataset,
        "_logical_date": batch.logical_date,
        "state": state,
        "files": json.dumps(
            [{"key": f.key, "location": f.location, "sha256": f.sha256} for f in batch.files],
            ensure_ascii=False,
        ),
        "spec": batch.spec,
        "allow_shrink": batch.allow_shrink,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "at": datetime.now(UTC),
    }
    lake.append_arrow(pa.Table.from_pylist([row], schema=JOURNAL_SCHEMA), _path(settings))


def entries(
    settings: Settings,
    source: str | None = None,
    dataset: str | None = None,
    day: date | None = None,
) -> list[dict]:
    """Journal rows (of a dataset, of a day, or all), oldest first."""
    path = _path(settings)
    if not lake.is_delta(path):
        return []
    condition = pc.scalar(True)
    if source is not None:
        condition = condition & (pc.field("source") == source)
    if dataset is not None:
        condition = condition & (pc.field("dataset") == dataset)
    if day is not None:
        condition = condition & (pc.field("_logical_date") == day)
    return (
        DeltaTable(path)
        .to_pyarrow_dataset()
        .to_table(filter=condition)
        .sort_by([("at", "ascending")])
        .to_pylist()
    )


def as_batch(row: dict) -> Batch:
    """A journal row as the batch it records."""
    return Batch(
        batch_id=row["batch_id"],
        source=row["source"],
        dataset=row["dataset"],
        logical_date=row["_logical_date"],
        files=tuple(BatchFile(**f) for f in json.loads(row["files"])),
        spec=row["spec"],
        allow_shrink=bool(row["allow_shrink"]),
    )


def interrupted(
    settings: Settings,
    source: str | None = None,
    dataset: str | None = None,
    day: date | None = None,
) -> list[Batch]:
    """Batches (of a dataset, of a day, or all) whose last journal entry is `started`, oldest
    first. The caller checks the writer lock: a batch still running is not interrupted."""
    last: dict[str, dict] = {}
    for row in entries(settings, source, dataset, day):
        last.pop(row["batch_id"], None)  # keep insertion order = order of the last entry
        last[row["batch_id"]] = row
    return [as_batch(row) for row in last.values() if row["state"] == "started"]


def prune(settings: Settings, keep_days: int, now: datetime | None = None) -> int:
    """Drop the entries of batches that ended (committed, recovered, aborted) more than
    `keep_days` ago; an interrupted batch keeps its entries until it is completed. Returns the
    rows removed. `maintain_lake` runs it daily, so the journal stays a few days of batches."""
    path = _path(settings)
    if not lake.is_delta(path):
        return 0
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    predicate = f"at < '{cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
    pending = sorted({b.batch_id for b in interrupted(settings)})
    if pending:
        predicate += f" AND batch_id NOT IN ({', '.join(lake.sql_literal(b) for b in pending)})"
    with lake.table_lock(path):
        metrics = DeltaTable(path).delete(predicate)
    return int(metrics.get("num_deleted_rows", 0) or 0)
