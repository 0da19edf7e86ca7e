"""Landing files -> bronze Delta, with quarantine and reconciliation. The I/O edge of ingestion.

A run ingests files of one source dataset for one logical date (every file of
``{landing_root}/{source}/{dataset}/dt=YYYY-MM-DD/``, or one `cdp import`). Idempotency is keyed
on the file: each file's rows replace exactly the rows that file put there before, in bronze,
quarantine and every ops table, so parts of an export add up, a re-sent file replaces only its
own rows, and a rerun or backfill never duplicates. An empty or shrinking re-send is refused
unless asked for; a wrongly landed file is taken out by `retract`. After writing, the run reads
back what it committed and checks physical lines read = lines in bronze + lines quarantined; a
mismatch fails the batch. One writer per dataset and day; a batch a crash interrupted is
completed by the next run (jobs/ingest/journal.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from jobs.common import lake
from jobs.common.crashpoints import crashpoint
from jobs.common.errors import CdpError, ReconciliationError
from jobs.common.progress import track
from jobs.common.settings import Settings, get_settings
from jobs.ingest import journal
from jobs.ingest.landing import LandingFile, list_files
from jobs.ingest.records import Record, Rejected, extra_json, parse_file
from jobs.ingest.spec import SourceSpec, get_spec

QUARANTINE_TABLE = "records"
INGESTION_LOG_TABLE = "ingestion_log"

BATCH_ROWS = 50_000  # rows per Arrow record batch handed to the Delta writer (bounded memory)
_ARROW_TYPES = {
    "string": pa.string(),
    "decimal": pa.decimal128(18, 2),
    "int": pa.int64(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}
_CENTS = Decimal("0.01")
# Ingestion metadata of every bronze row: unmapped columns, field issues (JSON), where it came
# from (file key, first line, physical lines spanned), its batch and schema version.
_META = (
    "_extra",
    "_issues",
    "_source",
    "_file",
    "_line",
    "_lines",
    "_batch_id",
    "_schema_version",
)
_META_TYPES = {"_line": pa.int64(), "_lines": pa.int64()}

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), False),
        pa.field("dataset", pa.string(), False),
        pa.field("file", pa.string(), False),
        pa.field("line", pa.int64(), True),
        pa.field("field", pa.string(), True),
        pa.field("reason", pa.string(), False),
        pa.field("raw", pa.string(), True),
        pa.field("_batch_id", pa.string(), False),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC"), False),
        pa.field("_logical_date", pa.date32(), False),
        pa.field("lines", pa.int64(), True),  # physical lines the rejected record spans
    ]
)


@dataclass(frozen=True)
class IngestResult:
    source: str
    dataset: str
    logical_date: date
    batch_id: str
    files: int
    rows_read: int  # physical lines read (a CSV record with a quoted line break is two)
    rows_bronze: int  # physical lines that landed in bronze
    rows_quarantined: int  # physical lines quarantined
    # Files whose exact bytes were already ingested for another date, or retracted: not
    # ingested again ("name: why").
    files_skipped: tuple[str, ...] = ()
    # Files in the landing folder that are not this dataset's format (or still being written).
    files_ignored: tuple[str, ...] = ()
    rows_with_issues: int = 0  # landed rows with a field nulled or flagged (ops.field_issues)
    recovered: tuple[str, ...] = ()  # interrupted batches this run completed first

    @property
    def reconciled(self) -> bool:
        return self.rows_read == self.rows_bronze + self.rows_quarantined


def file_sha256(path: Path | LandingFile) -> str:
    if not isinstance(path, Path):  # object storage: one read
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def batch_id_for(spec: SourceSpec, logical_date: date, digests: dict[str, str]) -> str:
    """Deterministic: the same files (keys and bytes) for the same date give the same id."""
    digest = hashlib.sha256(f"{spec.key}|{logical_date}".encode())
    for key, sha in sorted(digests.items()):
        digest.update(f"{key}|{sha}".encode())
    return digest.hexdigest()[:20]


MANIFEST_TABLE = "ingest_manifest"
MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("dataset", pa.string()),
        ("file", pa.string()),
        ("sha256", pa.string()),
        ("rows", pa.int64()),  # physical data lines of the file (bronze + quarantine)
        ("_logical_date", pa.date32()),
        ("_batch_id", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)
RETRACTED_TABLE = "retracted_files"
RETRACTED_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("dataset", pa.string()),
        ("file", pa.string()),
        ("sha256", pa.string()),
        ("rows", pa.int64()),
        ("_logical_date", pa.date32()),
        ("retracted_at", pa.timestamp("us", tz="UTC")),
    ]
)
ISSUES_TABLE = "field_issues"
ISSUES_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("dataset", pa.string()),
        ("file", pa.string()),
        ("field", pa.string()),
        ("reason", pa.string()),  # what was wrong, never the value (analysts read ops)
        ("rows", pa.int64()),
        ("first_line", pa.int64()),
        ("_batch_id", pa.string()),
        ("_logical_date", pa.date32()),
    ]
)


def _slice_sql(spec: SourceSpec, logical_date: date | None = None) -> str:
    """This dataset's rows (of the day) in a table every source shares (a delta-rs predicate)."""
    day = f"_logical_date = '{logical_date.isoformat()}' AND " if logical_date else ""
    quoted = lake.sql_literal
    return f"{day}source = {quoted(spec.source)} AND dataset = {quoted(spec.dataset)}"


def _files_sql(column: str, keys: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(lake.sql_literal(k) for k in sorted(keys))})"


def _scope(spec: SourceSpec) -> pc.Expression:
    return (pc.field("source") == spec.source) & (pc.field("dataset") == spec.dataset)


def _ops_rows(
    table: str, spec: SourceSpec, settings: Settings, condition: pc.Expression
) -> list[dict]:
    """This dataset's rows of an ops table (the manifest, the retractions) that match."""
    path = lake.table_path("ops", table, settings)
    if not lake.is_delta(path):
        return []
    return (
        DeltaTable(path).to_pyarrow_dataset().to_table(filter=_scope(spec) & condition).to_pylist()
    )


def _manifest_rows(spec: SourceSpec, settings: Settings, condition: pc.Expression) -> list[dict]:
    return _ops_rows(MANIFEST_TABLE, spec, settings, condition)


def ingested_elsewhere(
    spec: SourceSpec, digests: dict[str, str], logical_date: date, settings: Settings
) -> dict[str, str]:
    """sha256 -> "file (date)" for files whose exact bytes were ingested for another date.

    Only files that carried rows count: every empty export (a quiet day) has the same bytes.
    """
    if not digests:
        return {}
    rows = _manifest_rows(
        spec,
        settings,
        (pc.field("_logical_date") != logical_date)
        & (pc.field("rows") > 0)
        & pc.field("sha256").isin(list(digests.values())),
    )
    return {r["sha256"]: f"{r['file']} ({r['_logical_date']})" for r in rows}


def _retracted(spec: SourceSpec, digests: dict[str, str], settings: Settings) -> dict[str, str]:
    """key -> when, for files retracted with these exact bytes (a re-send with new bytes lands)."""
    return {
        r["file"]: f"{r['retracted_at']:%Y-%m-%d %H:%M} UTC"
        for r in _retractions(spec, list(digests), settings)
        if digests.get(r["file"]) == r["sha256"]
    }


def _retractions(spec: SourceSpec, keys: Sequence[str], settings: Settings) -> list[dict]:
    """Retractions of these files (whatever bytes they had)."""
    if not keys:
        return []
    return _ops_rows(RETRACTED_TABLE, spec, settings, pc.field("file").isin(list(keys)))


def bronze_schema(spec: SourceSpec) -> pa.Schema:
    """Bronze columns: the spec's fields, typed, then the ingestion metadata."""
    fields = [pa.field(c.field, _ARROW_TYPES[c.type]) for c in spec.columns]
    meta = [pa.field(m, _META_TYPES.get(m, pa.string())) for m in _META]
    return pa.schema(
        [
            *fields,
            *meta,
            pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
            pa.field("_logical_date", pa.date32()),
        ]
    )


def _typed(values: list, type_: str, tz: str) -> pa.Array:
    """One column of coerced cell values (jobs.ingest.values.coerce) as its bronze Arrow type."""
    if type_ == "datetime":
        # Wall-clock time in the business time zone (what every export shows) -> an instant.
        naive = pc.strptime(pa.array(values, pa.string()), format="%Y-%m-%dT%H:%M:%S", unit="us")
        return pc.assume_timezone(naive, tz).cast(_ARROW_TYPES["datetime"])
    if type_ == "decimal":
        values = [None if v is None else Decimal(v).quantize(_CENTS, ROUND_HALF_UP) for v in values]
    if type_ == "date":
        values = [None if v is None else date.fromisoformat(v) for v in values]
    return pa.array(values, _ARROW_TYPES[type_])


def _record_batch(
    chunk: list[tuple],
    spec: SourceSpec,
    schema: pa.Schema,
    stamp: tuple[datetime, date],
    tz: str,
) -> pa.RecordBatch:
    """Bronze rows (field values in spec order, then `_META`) -> one Arrow batch."""
    ingested_at, logical_date = stamp
    columns = list(zip(*chunk, strict=True)) if chunk else [()] * (len(spec.columns) + len(_META))
    arrays = [_typed(list(columns[i]), c.type, tz) for i, c in enumerate(spec.columns)]
    offset = len(spec.columns)
    for j, name in enumerate(_META):
        arrays.append(pa.array(columns[offset + j], _META_TYPES.get(name, pa.string())))
    n = len(chunk)
    arrays.append(pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC")))
    arrays.append(pa.array([logical_date] * n, pa.date32()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _lines_of(path: str, condition: pc.Expression, column: str) -> int:
    """Physical lines the matching rows stand for (sum of `column`, a row without it: 1)."""
    if not lake.is_delta(path):
        return 0
    dataset = DeltaTable(path).to_pyarrow_dataset()
    if column not in dataset.schema.names:
        return dataset.count_rows(filter=condition)
    counts = dataset.to_table(columns=[column], filter=condition).column(column)
    return int(pc.sum(pc.fill_null(counts, 1)).as_py() or 0)


class ShrinkRefused(CdpError):
    """A re-sent file has fewer lines than the version in the lake, and no flag allows it."""


def ingest(
    source_key: str,
    logical_date: date,
    *,
    settings: Settings | None = None,
    allow_shrink: bool = False,
) -> IngestResult:
    """Every landing file of one dataset and day into bronze (each file replacing its own rows)."""
    settings = settings or get_settings()
    spec = get_spec(source_key)
    found, ignored = list_files(spec, logical_date, settings, with_ignored=True)
    label = f"{spec.source}/{spec.dataset}/dt={logical_date}"
    return ingest_files(
        spec,
        logical_date,
        [(f, f"{label}/{f.name}") for f in found],
        run_key=label,
        settings=settings,
        allow_shrink=allow_shrink,
        ignored=tuple(ignored),
    )


def ingest_files(
    spec: SourceSpec,
    logical_date: date,
    files: Sequence[tuple[Path | LandingFile, str]],
    *,
    run_key: str,
    settings: Settings,
    allow_shrink: bool = False,
    ignored: tuple[str, ...] = (),
) -> IngestResult:
    """Ingest these files of one dataset for `logical_date`, each (file, key) replacing exactly
    the rows its key holds: parts of an export add up, a re-sent file (same key, new bytes)
    replaces only its own rows, the same bytes again change nothing.

    `key` is the file's identity in the lake (`_file` in bronze, `file` in quarantine and the
    manifest): its path relative to the landing area, or ``import/<source>/<dataset>/dt=D/<name>``
    for `cdp import`. A file with fewer lines than the version already ingested (an empty or
    cut re-send) is refused unless `allow_shrink`. `run_key` names this run in
    ops.ingestion_log (one row per run, replaced by a rerun).

    Holds the dataset-and-day writer lock (a concurrent writer is refused), first completes any
    interrupted batch of the dataset (jobs/ingest/journal.py), and journals its own. Rows stream
    from the parser to the Delta writer in Arrow batches (delta-rs, one commit per table), so
    memory stays bounded by the batch size and a day costs no Spark job at all.
    """
    with journal.exclusive(spec.key, logical_date, settings):
        keys = {key for _f, key in files}
        pending = journal.interrupted(settings, spec.source, spec.dataset)
        superseded = [
            b
            for b in pending
            if b.logical_date == logical_date and {f.key for f in b.files} <= keys
        ]
        recovered = recover(
            spec, settings, [b for b in pending if b not in superseded], holding=logical_date
        )
        result = _ingest_locked(spec, logical_date, files, run_key, settings, allow_shrink, ignored)
        for batch in superseded:  # this run rewrote every file they held
            journal.record(batch, "recovered", settings)
        recovered += [b.batch_id for b in superseded]
    return replace(result, recovered=tuple(recovered))


def recover_day(logical_date: date, settings: Settings | None = None) -> list[str]:
    """Complete every batch of `logical_date` (any dataset) that a crash interrupted and no live
    process is still writing: the gate runs this first, so it never judges a half-written day.
    Returns the batch ids completed."""
    from jobs.ingest.spec import spec_from_json

    settings = settings or get_settings()
    done: list[str] = []
    for batch in journal.interrupted(settings, day=logical_date):
        spec = spec_from_json(batch.spec)
        try:
            with journal.exclusive(spec.key, logical_date, settings):
                done += recover(spec, settings, [batch], holding=logical_date)
        except journal.ConcurrentIngest:
            continue  # still being written: its own process finishes it
    return done


def recover(
    spec: SourceSpec, settings: Settings, batches: Sequence[journal.Batch], *, holding: date
) -> list[str]:
    """Redo interrupted batches from their files (each file replaces its rows everywhere, so
    the tables end as one clean run leaves them); the caller holds the lock of day `holding`.
    A batch of another day whose lock a live process holds is still running, not interrupted:
    left alone. A file retracted since is left out. Returns the batch ids redone."""
    from jobs.ingest.landing import open_location
    from jobs.ingest.spec import spec_from_json

    done = []
    for batch in batches:
        retracted = {r["file"] for r in _retractions(spec, [f.key for f in batch.files], settings)}
        files = [f for f in batch.files if f.key not in retracted]
        missing = [f.key for f in files if not open_location(f.location).exists()]
        if missing:
            raise CdpError(
                f"{spec.key} {batch.logical_date}: batch {batch.batch_id} was interrupted and "
                f"its file(s) {', '.join(missing)} are gone, so it cannot be completed; restore "
                "them and run again, or retract them (cdp retract)"
            )
        lock = (
            nullcontext()
            if batch.logical_date == holding
            else journal.exclusive(spec.key, batch.logical_date, settings)
        )
        try:
            with lock:
                if files:
                    _ingest_locked(
                        spec_from_json(batch.spec),
                        batch.logical_date,
                        [(open_location(f.location), f.key) for f in files],
                        _run_key_of(batch),
                        settings,
                        batch.allow_shrink,
                        (),
                    )
                journal.record(batch, "recovered", settings)
        except journal.ConcurrentIngest:
            continue  # its day is being written right now: that process finishes it
        done.append(batch.batch_id)
    return done


def _run_key_of(batch: journal.Batch) -> str:
    """The run key a batch was logged under: its landing folder, or its one imported file."""
    keys = [f.key for f in batch.files]
    if len(keys) == 1 and keys[0].startswith(IMPORT_PREFIX):
        return keys[0]
    return f"{batch.source}/{batch.dataset}/dt={batch.logical_date}"


IMPORT_PREFIX = "import/"


def _write(
    data: pa.Table | pa.RecordBatchReader,
    path: str,
    predicate: str,
    point: str,
    *,
    partition: bool,
) -> None:
    """One table's commit of a batch, with its crash points: `point`:before, :during (data
    files being written, nothing committed yet) and :after (committed)."""
    crashpoint(f"{point}:before")
    reader = data if isinstance(data, pa.RecordBatchReader) else data.to_reader()

    def batches() -> Iterator[pa.RecordBatch]:
        first = True
        for batch in reader:
            yield batch
            if first:
                crashpoint(f"{point}:during")
                first = False
        if first:  # nothing to write: still a point between the start and the commit
            yield pa.RecordBatch.from_pylist([], schema=reader.schema)
            crashpoint(f"{point}:during")

    lake.replace_day_arrow(
        pa.RecordBatchReader.from_batches(reader.schema, batches()),
        path,
        predicate,
        partition=partition,
    )
    crashpoint(f"{point}:after")


def _previous_lines(spec: SourceSpec, keys: Sequence[str], settings: Settings) -> dict[str, int]:
    """Lines each file had when it was last ingested (from the manifest)."""
    if not keys:
        return {}
    rows = _manifest_rows(spec, settings, pc.field("file").isin(list(keys)))
    return {r["file"]: int(r["rows"] or 0) for r in rows}


def _ingest_locked(
    spec: SourceSpec,
    logical_date: date,
    files: Sequence[tuple[Path | LandingFile, str]],
    run_key: str,
    settings: Settings,
    allow_shrink: bool,
    ignored: tuple[str, ...],
) -> IngestResult:
    from jobs.ingest.spec import spec_to_json

    digests = {key: file_sha256(f) for f, key in files}
    seen = ingested_elsewhere(spec, digests, logical_date, settings)
    retracted = _retracted(spec, digests, settings)
    skipped = tuple(
        [f"{f.name}: same bytes as {seen[digests[k]]}" for f, k in files if digests[k] in seen]
        + [f"{f.name}: retracted {retracted[k]}" for f, k in files if k in retracted]
    )
    files = [(f, k) for f, k in files if digests[k] not in seen and k not in retracted]
    digests = {k: digests[k] for _f, k in files}
    batch_id = batch_id_for(spec, logical_date, digests)
    ingested_at = datetime.now(UTC)
    if not files:
        result = IngestResult(
            spec.source, spec.dataset, logical_date, batch_id, 0, 0, 0, 0, skipped, ignored
        )
        log_ingestion(result, run_key, ingested_at, settings)
        return result

    keys = [k for _f, k in files]
    previous = _previous_lines(spec, keys, settings)
    batch = journal.Batch(
        batch_id=batch_id,
        source=spec.source,
        dataset=spec.dataset,
        logical_date=logical_date,
        files=tuple(
            journal.BatchFile(key=k, location=_location(f), sha256=digests[k]) for f, k in files
        ),
        spec=spec_to_json(spec),
        allow_shrink=allow_shrink,
    )
    crashpoint("journal:before")
    journal.record(batch, "started", settings)

    rejected: list[tuple] = []
    issues: dict[tuple[str, str, str], list[int]] = {}  # (file, field, reason) -> [rows, line]
    lines_per_file: dict[str, int] = {}
    late: Counter[tuple[str, date]] = Counter()  # (file, earlier business day) -> records
    with_issues = 0
    schema = bronze_schema(spec)
    stamp = (ingested_at, logical_date)

    def parsed() -> Iterator[pa.RecordBatch]:
        nonlocal with_issues
        chunk: list[tuple] = []
        for path, key in track(files, f"ingest {spec.key} {logical_date}"):
            lines = 0
            for item in parse_file(path, spec):
                lines += item.lines
                if isinstance(item, Record):
                    when = item.values.get(spec.event_time) if spec.event_time else None
                    if when and str(when)[:10] < logical_date.isoformat():
                        late[(key, date.fromisoformat(str(when)[:10]))] += 1
                    if item.issues:
                        with_issues += 1
                        for issue in item.issues:
                            counted = issues.setdefault(
                                (key, issue.field, issue.reason), [0, item.line]
                            )
                            counted[0] += 1
                    chunk.append(
                        (
                            *(item.values[c.field] for c in spec.columns),
                            extra_json(item.extra),
                            issues_json(item.issues),
                            spec.source,
                            key,
                            item.line,
                            item.lines,
                            batch_id,
                            spec.schema_version,
                        )
                    )
                    if len(chunk) >= BATCH_ROWS:
                        yield _record_batch(chunk, spec, schema, stamp, settings.timezone)
                        chunk = []
                elif isinstance(item, Rejected):
                    rejected.append(
                        (
                            spec.source,
                            spec.dataset,
                            key,
                            item.line,
                            item.field,
                            f"{key} line {item.line}: {item.reason}",
                            item.raw,
                            batch_id,
                            ingested_at,
                            logical_date,
                            item.lines,
                        )
                    )
            before = previous.get(key, 0)
            if lines < before and not allow_shrink:
                raise ShrinkRefused(
                    f"{key}: the file has {lines} data line(s) but the version already "
                    f"ingested had {before}; an empty or cut re-send would remove rows, so "
                    "nothing was written. Re-run with --allow-shrink if the platform really "
                    "withdrew them, or retract the file (cdp retract)"
                )
            lines_per_file[key] = lines
        yield _record_batch(chunk, spec, schema, stamp, settings.timezone)

    failure: list[Exception] = []

    def guarded() -> Iterator[pa.RecordBatch]:
        try:
            yield from parsed()
        except Exception as exc:  # delta-rs wraps it in a generic error: raised as is below
            failure.append(exc)
            raise

    bronze_path = lake.table_path("bronze", spec.bronze_table, settings)
    day = f"_logical_date = '{logical_date.isoformat()}'"
    try:
        _write(
            pa.RecordBatchReader.from_batches(schema, guarded()),
            bronze_path,
            f"{day} AND {_files_sql('_file', keys)}",
            "bronze",
            partition=True,
        )
    except Exception:
        # Nothing was committed: the batch ends here (no later run has anything to complete).
        journal.record(batch, "aborted", settings)
        if failure:
            raise failure[0] from None
        raise
    scoped = f"{_slice_sql(spec, logical_date)} AND {_files_sql('file', keys)}"
    _write(
        pa.Table.from_pylist(
            [dict(zip(QUARANTINE_SCHEMA.names, r, strict=True)) for r in rejected],
            schema=QUARANTINE_SCHEMA,
        ),
        lake.table_path("quarantine", QUARANTINE_TABLE, settings),
        scoped,
        "quarantine",
        partition=True,
    )
    _write(
        pa.Table.from_pylist(
            [
                {
                    "source": spec.source,
                    "dataset": spec.dataset,
                    "file": key,
                    "sha256": sha,
                    "rows": lines_per_file[key],
                    "_logical_date": logical_date,
                    "_batch_id": batch_id,
                    "ingested_at": ingested_at,
                }
                for key, sha in digests.items()
            ],
            schema=MANIFEST_SCHEMA,
        ),
        lake.table_path("ops", MANIFEST_TABLE, settings),
        f"{_slice_sql(spec)} AND {_files_sql('file', keys)}",
        "manifest",
        partition=False,
    )
    mark_late_days(spec, logical_date, late, keys, batch_id, settings)
    _write(
        pa.Table.from_pylist(
            [
                {
                    "source": spec.source,
                    "dataset": spec.dataset,
                    "file": key,
                    "field": field,
                    "reason": reason,
                    "rows": rows,
                    "first_line": line,
                    "_batch_id": batch_id,
                    "_logical_date": logical_date,
                }
                for (key, field, reason), (rows, line) in sorted(issues.items())
            ],
            schema=ISSUES_SCHEMA,
        ),
        lake.table_path("ops", ISSUES_TABLE, settings),
        scoped,
        "issues",
        partition=False,
    )

    # Read back what the commits hold (not what we meant to write), in physical lines.
    in_bronze = _lines_of(
        bronze_path,
        (pc.field("_logical_date") == logical_date) & pc.field("_file").isin(keys),
        "_lines",
    )
    in_quarantine = _lines_of(
        lake.table_path("quarantine", QUARANTINE_TABLE, settings),
        (pc.field("_logical_date") == logical_date) & _scope(spec) & pc.field("file").isin(keys),
        "lines",
    )
    result = IngestResult(
        spec.source,
        spec.dataset,
        logical_date,
        batch_id,
        len(files),
        sum(lines_per_file.values()),
        in_bronze,
        in_quarantine,
        skipped,
        ignored,
        with_issues,
    )
    log_ingestion(result, run_key, ingested_at, settings)
    if not result.reconciled:
        raise ReconciliationError(
            f"{spec.key} {logical_date}: read {result.rows_read} lines but bronze has "
            f"{in_bronze} and quarantine {in_quarantine}; batch {batch_id} is incomplete"
        )
    crashpoint("journal:end")
    journal.record(batch, "committed", settings)
    return result


def _location(f: Path | LandingFile) -> str:
    return f.uri if isinstance(f, LandingFile) else str(Path(f).resolve())


def issues_json(issues: Sequence) -> str | None:
    """A row's field issues as bronze keeps them: {field: {"reason", "value"}} (raw values:
    bronze is the raw layer)."""
    if not issues:
        return None
    return json.dumps(
        {i.field: {"reason": i.reason, "value": i.value} for i in issues},
        ensure_ascii=False,
        sort_keys=True,
    )


def retract(source_key: str, file_key: str, *, settings: Settings | None = None) -> dict[str, int]:
    """Take a wrongly landed file out of the lake by its key (as `_file` shows it): its rows
    leave bronze, quarantine, the manifest, the late-day marks and the field issues, and the
    retraction is recorded, so the same bytes are not ingested again (a corrected re-send with
    new bytes is). Returns rows removed per table."""
    from jobs.ingest.spec import spec_from_json

    settings = settings or get_settings()
    spec = _spec_for_key(source_key, settings, spec_from_json)
    entries = _manifest_rows(spec, settings, pc.field("file") == file_key)
    if not entries:  # a first ingestion a crash cut before its manifest commit
        entries = [
            {"_logical_date": b.logical_date, "sha256": f.sha256, "rows": None}
            for b in journal.interrupted(settings, spec.source, spec.dataset)
            for f in b.files
            if f.key == file_key
        ][-1:]
    if not entries:
        raise CdpError(
            f'{source_key}: no ingested file {file_key!r}; `cdp query "select file from '
            f"ops.ingest_manifest where source || '.' || dataset = '{source_key}'\"` lists them"
        )
    entry = entries[-1]
    day = entry["_logical_date"]
    removed: dict[str, int] = {}
    with journal.exclusive(spec.key, day, settings):
        targets = [
            (
                "bronze",
                spec.bronze_table,
                f"_logical_date = '{day}' AND _file = {lake.sql_literal(file_key)}",
            ),
            (
                "quarantine",
                QUARANTINE_TABLE,
                f"{_slice_sql(spec, day)} AND file = {lake.sql_literal(file_key)}",
            ),
            (
                "ops",
                RECOMPUTE_TABLE,
                f"{_slice_sql(spec, day)} AND file = {lake.sql_literal(file_key)}",
            ),
            (
                "ops",
                ISSUES_TABLE,
                f"{_slice_sql(spec, day)} AND file = {lake.sql_literal(file_key)}",
            ),
            ("ops", MANIFEST_TABLE, f"{_slice_sql(spec)} AND file = {lake.sql_literal(file_key)}"),
        ]
        for layer, name, predicate in targets:
            path = lake.table_path(layer, name, settings)
            if lake.is_delta(path):
                with lake.table_lock(path):
                    metrics = DeltaTable(path).delete(predicate)
                removed[f"{layer}.{name}"] = int(metrics.get("num_deleted_rows", 0) or 0)
        lake.append_arrow(
            pa.Table.from_pylist(
                [
                    {
                        "source": spec.source,
                        "dataset": spec.dataset,
                        "file": file_key,
                        "sha256": entry["sha256"],
                        "rows": entry["rows"],
                        "_logical_date": day,
                        "retracted_at": datetime.now(UTC),
                    }
                ],
                schema=RETRACTED_SCHEMA,
            ),
            lake.table_path("ops", RETRACTED_TABLE, settings),
        )
    return removed


def reingest_file(
    source_key: str, file_key: str, *, settings: Settings | None = None
) -> IngestResult:
    """Ingest one file again, by its key, from where its last batch read it and with the spec
    that batch used (a `cdp import` keeps its copy under the landing area's ``_imports/``):
    quarantine replay of an import."""
    from jobs.ingest.landing import open_location
    from jobs.ingest.spec import spec_from_json

    settings = settings or get_settings()
    source, _, dataset = source_key.partition(".")
    for row in reversed(journal.entries(settings, source, dataset)):  # newest first
        batch = journal.as_batch(row)
        for entry in batch.files:
            if entry.key == file_key:
                location = open_location(entry.location)
                if not location.exists():
                    raise CdpError(f"{file_key}: its copy {entry.location} is gone")
                return ingest_files(
                    spec_from_json(batch.spec),
                    batch.logical_date,
                    [(location, file_key)],
                    run_key=file_key,
                    settings=settings,
                )
    raise CdpError(f"{source_key}: no ingestion of {file_key!r} is journaled; import it again")


def _spec_for_key(source_key: str, settings: Settings, spec_from_json) -> SourceSpec:
    """A platform dataset's spec, or the spec an import of `source_key` was journaled with."""
    from jobs.ingest.spec import load_specs

    if source_key in load_specs():
        return load_specs()[source_key]
    source, _, dataset = source_key.partition(".")
    rows = journal.entries(settings, source, dataset)
    if rows:
        return spec_from_json(rows[-1]["spec"])  # the newest
    raise CdpError(f"unknown source {source_key!r}: neither a platform dataset nor an import")


RECOMPUTE_TABLE = "recompute_days"
RECOMPUTE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("dataset", pa.string()),
        ("_logical_date", pa.date32()),  # the day whose files carried the late records
        ("affected_date", pa.date32()),  # the business day they belong to
        ("rows", pa.int64()),
        ("within_lookback", pa.bool_()),
        ("_batch_id", pa.string()),
        ("file", pa.string()),
    ]
)


def mark_late_days(
    spec: SourceSpec,
    logical_date: date,
    late: Counter[tuple[str, date]],
    keys: Sequence[str],
    batch_id: str,
    settings: Settings,
) -> None:
    """Record which earlier days this batch's late records belong to (ops.recompute_days).

    Downstream steps that aggregate by business day recompute the marked days within the
    lookback (`days_to_recompute`); older ones are kept and flagged for a manual backfill.
    Replaces the marks of these files, so a rerun doesn't double them.
    """
    oldest = logical_date - timedelta(days=settings.ingest.lookback_days)
    marks = pa.Table.from_pylist(
        [
            {
                "source": spec.source,
                "dataset": spec.dataset,
                "_logical_date": logical_date,
                "affected_date": day,
                "rows": n,
                "within_lookback": day >= oldest,
                "_batch_id": batch_id,
                "file": key,
            }
            for (key, day), n in sorted(late.items())
        ],
        schema=RECOMPUTE_SCHEMA,
    )
    _write(
        marks,
        lake.table_path("ops", RECOMPUTE_TABLE, settings),
        f"{_slice_sql(spec, logical_date)} AND {_files_sql('file', keys)}",
        "recompute",
        partition=False,
    )


def days_to_recompute(logical_date: date, settings: Settings | None = None) -> list[date]:
    """Earlier business days, within the lookback, that late records of `logical_date`'s
    files touched (every source): what day-grained downstream work must redo."""
    settings = settings or get_settings()
    path = lake.table_path("ops", RECOMPUTE_TABLE, settings)
    if not lake.is_delta(path):
        return []
    days = (
        DeltaTable(path)
        .to_pyarrow_dataset()
        .to_table(
            columns=["affected_date"],
            filter=(pc.field("_logical_date") == logical_date) & pc.field("within_lookback"),
        )
        .column("affected_date")
        .to_pylist()
    )
    return sorted(set(days))


INGESTION_LOG_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("dataset", pa.string()),
        ("logical_date", pa.date32()),
        ("batch_id", pa.string()),
        ("files", pa.int64()),
        ("files_skipped", pa.int64()),
        ("rows_read", pa.int64()),
        ("rows_bronze", pa.int64()),
        ("rows_quarantined", pa.int64()),
        ("status", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("run_key", pa.string()),  # the landing folder of the day, or the imported file
        ("files_ignored", pa.int64()),
        ("rows_with_issues", pa.int64()),
    ]
)


def log_ingestion(
    result: IngestResult, run_key: str, started_at: datetime, settings: Settings
) -> None:
    """One row per run (dataset, day and run key), replaced by a rerun: never appended twice."""
    quoted = lake.sql_literal
    row = {
        "source": result.source,
        "dataset": result.dataset,
        "logical_date": result.logical_date,
        "batch_id": result.batch_id,
        "files": result.files,
        "files_skipped": len(result.files_skipped),
        "rows_read": result.rows_read,
        "rows_bronze": result.rows_bronze,
        "rows_quarantined": result.rows_quarantined,
        "status": "ok" if result.reconciled else "mismatch",
        "started_at": started_at,
        "finished_at": datetime.now(UTC),
        "run_key": run_key,
        "files_ignored": len(result.files_ignored),
        "rows_with_issues": result.rows_with_issues,
    }
    _write(
        pa.Table.from_pylist([row], schema=INGESTION_LOG_SCHEMA),
        lake.table_path("ops", INGESTION_LOG_TABLE, settings),
        f"source = {quoted(result.source)} AND dataset = {quoted(result.dataset)} AND "
        f"logical_date = '{result.logical_date.isoformat()}' AND run_key = {quoted(run_key)}",
        "log",
        partition=False,
    )
