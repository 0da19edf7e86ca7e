"""Landing files -> bronze Delta, with quarantine and reconciliation. The I/O edge of ingestion.

A run ingests every file of one source dataset for one logical date
(``{landing_root}/{source}/{dataset}/dt=YYYY-MM-DD/``) and replaces that date's rows in bronze and
quarantine, so a rerun or a backfill never duplicates. It then reads back what it wrote and checks
rows read = rows in bronze + rows quarantined; a mismatch fails the batch.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from jobs.common import lake
from jobs.common.errors import CdpError, ReconciliationError
from jobs.common.progress import track
from jobs.common.settings import Settings, get_settings
from jobs.ingest.landing import LandingFile, day_folder, list_files
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
}
_CENTS = Decimal("0.01")
_META = ("_extra", "_source", "_file", "_line", "_batch_id", "_schema_version")

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
    ]
)


@dataclass(frozen=True)
class IngestResult:
    source: str
    dataset: str
    logical_date: date
    batch_id: str
    files: int
    rows_read: int
    rows_bronze: int
    rows_quarantined: int
    # Files whose exact bytes were already ingested for another date: not ingested again.
    files_skipped: tuple[str, ...] = ()

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


def batch_id_for(spec: SourceSpec, logical_date: date, digests: dict[Path, str]) -> str:
    """Deterministic: the same files for the same date give the same batch id."""
    digest = hashlib.sha256(f"{spec.key}|{logical_date}".encode())
    for path, sha in sorted(digests.items()):
        digest.update(f"{path.name}|{sha}".encode())
    return digest.hexdigest()[:20]


MANIFEST_TABLE = "ingest_manifest"
MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("dataset", pa.string()),
        ("file", pa.string()),
        ("sha256", pa.string()),
        ("rows", pa.int64()),
        ("_logical_date", pa.date32()),
        ("_batch_id", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _slice_sql(spec: SourceSpec, logical_date: date) -> str:
    """This dataset's rows of the day in a table every source shares (a delta-rs predicate)."""
    return (
        f"_logical_date = '{logical_date.isoformat()}' "
        f"AND source = '{spec.source}' AND dataset = '{spec.dataset}'"
    )


def _scope(spec: SourceSpec) -> pc.Expression:
    return (pc.field("source") == spec.source) & (pc.field("dataset") == spec.dataset)


def ingested_elsewhere(
    spec: SourceSpec, digests: dict[Path, str], logical_date: date, settings: Settings
) -> dict[str, str]:
    """sha256 -> "file (date)" for files whose exact bytes were ingested for another date.

    Only files that carried rows count: every empty export (a quiet day) has the same bytes.
    """
    path = lake.table_path("ops", MANIFEST_TABLE, settings)
    if not digests or not lake.is_delta(path):
        return {}
    rows = (
        DeltaTable(path)
        .to_pyarrow_dataset()
        .to_table(
            columns=["sha256", "file", "_logical_date"],
            filter=_scope(spec)
            & (pc.field("_logical_date") != logical_date)
            & (pc.field("rows") > 0)
            & pc.field("sha256").isin(list(digests.values())),
        )
        .to_pylist()
    )
    return {r["sha256"]: f"{r['file']} ({r['_logical_date']})" for r in rows}


def bronze_schema(spec: SourceSpec) -> pa.Schema:
    """Bronze columns: the spec's fields, typed, then the ingestion metadata."""
    fields = [pa.field(c.field, _ARROW_TYPES[c.type]) for c in spec.columns]
    meta = [pa.field(m, pa.int64() if m == "_line" else pa.string()) for m in _META]
    return pa.schema(
        [
            *fields,
            *meta,
            pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
            pa.field("_logical_date", pa.date32()),
        ]
    )


def _typed(values: list, type_: str, tz: str) -> pa.Array:
    """One column of coerced cell values (see records.coerce) as its bronze Arrow type."""
    if type_ == "datetime":
        # Wall-clock time in the business time zone (what every export shows) -> an instant.
        naive = pc.strptime(pa.array(values, pa.string()), format="%Y-%m-%dT%H:%M:%S", unit="us")
        return pc.assume_timezone(naive, tz).cast(_ARROW_TYPES["datetime"])
    if type_ == "decimal":
        values = [None if v is None else Decimal(v).quantize(_CENTS, ROUND_HALF_UP) for v in values]
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
        arrays.append(pa.array(columns[offset + j], pa.int64() if name == "_line" else pa.string()))
    n = len(chunk)
    arrays.append(pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC")))
    arrays.append(pa.array([logical_date] * n, pa.date32()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _count_day(path: str, logical_date: date, scope: pc.Expression | None = None) -> int:
    if not lake.is_delta(path):
        return 0
    condition = pc.field("_logical_date") == logical_date
    if scope is not None:
        condition = condition & scope
    return DeltaTable(path).to_pyarrow_dataset().count_rows(filter=condition)


def _refuse_to_erase(
    spec: SourceSpec, bronze_path: str, logical_date: date, files: list, folder: Path | str
) -> None:
    """A day whose landing files are gone must not wipe what bronze already holds for it."""
    if not files and _count_day(bronze_path, logical_date):
        raise CdpError(
            f"{spec.key} {logical_date}: no files to ingest in {folder}, but bronze already holds "
            "rows for that day; refusing to replace them with nothing (restore the landing "
            "files to re-ingest the day)"
        )


def ingest(
    source_key: str,
    logical_date: date,
    *,
    settings: Settings | None = None,
) -> IngestResult:
    settings = settings or get_settings()
    spec = get_spec(source_key)
    return ingest_files(
        spec,
        logical_date,
        list_files(spec, logical_date, settings),
        folder=day_folder(spec, logical_date, settings),
        label=f"{spec.source}/{spec.dataset}/dt={logical_date}",
        settings=settings,
    )


def ingest_files(
    spec: SourceSpec,
    logical_date: date,
    found: Sequence[Path | LandingFile],
    *,
    folder: Path | str,
    label: str,
    settings: Settings,
) -> IngestResult:
    """Ingest these files of one dataset as its batch for `logical_date` (replacing that day).

    `label` prefixes file names in `_file`, quarantine and the manifest (where the file came
    from, relative to the landing area). Used by `ingest` (the landing area) and `cdp import`.

    Rows stream from the parser to the Delta writer in Arrow batches (delta-rs, one commit per
    table), so memory stays bounded by the batch size and a day costs no Spark job at all.
    """
    digests = {f: file_sha256(f) for f in found}
    seen = ingested_elsewhere(spec, digests, logical_date, settings)
    files = [f for f in found if digests[f] not in seen]
    skipped = tuple(
        f"{f.name}: same bytes as {seen[digests[f]]}" for f in found if digests[f] in seen
    )
    digests = {f: digests[f] for f in files}
    batch_id = batch_id_for(spec, logical_date, digests)
    ingested_at = datetime.now(UTC)
    bronze_path = lake.table_path("bronze", spec.bronze_table, settings)
    _refuse_to_erase(spec, bronze_path, logical_date, files, folder)
    relative = {f: f"{label}/{f.name}" for f in files}

    rejected: list[tuple] = []
    lines_per_file: dict[Path, int] = {}
    late: Counter[date] = Counter()  # records per earlier business day (spec.event_time)
    schema = bronze_schema(spec)
    stamp = (ingested_at, logical_date)

    def batches() -> Iterator[pa.RecordBatch]:
        chunk: list[tuple] = []
        for path in track(files, f"ingest {spec.key} {logical_date}"):
            lines = 0
            for item in parse_file(path, spec):
                lines += 1
                if isinstance(item, Record):
                    when = item.values.get(spec.event_time) if spec.event_time else None
                    if when and str(when)[:10] < logical_date.isoformat():
                        late[date.fromisoformat(str(when)[:10])] += 1
                    chunk.append(
                        (
                            *(item.values[c.field] for c in spec.columns),
                            extra_json(item.extra),
                            spec.source,
                            relative[path],
                            item.line,
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
                            relative[path],
                            item.line,
                            item.field,
                            f"{relative[path]} line {item.line}: {item.reason}",
                            item.raw,
                            batch_id,
                            ingested_at,
                            logical_date,
                        )
                    )
            lines_per_file[path] = lines
        yield _record_batch(chunk, spec, schema, stamp, settings.timezone)

    day = f"_logical_date = '{logical_date.isoformat()}'"
    lake.replace_day_arrow(
        pa.RecordBatchReader.from_batches(schema, batches()), bronze_path, day, partition=True
    )
    rows_read = sum(lines_per_file.values())
    quarantine_path = lake.table_path("quarantine", QUARANTINE_TABLE, settings)
    quarantined = pa.Table.from_pylist(
        [dict(zip(QUARANTINE_SCHEMA.names, r, strict=True)) for r in rejected],
        schema=QUARANTINE_SCHEMA,
    )
    lake.replace_day_arrow(
        quarantined, quarantine_path, _slice_sql(spec, logical_date), partition=True
    )

    # Read back what the commits hold (not what we meant to write).
    in_bronze = _count_day(bronze_path, logical_date)
    in_quarantine = _count_day(quarantine_path, logical_date, _scope(spec))
    result = IngestResult(
        spec.source,
        spec.dataset,
        logical_date,
        batch_id,
        len(files),
        rows_read,
        in_bronze,
        in_quarantine,
        skipped,
    )
    manifest = pa.Table.from_pylist(
        [
            {
                "source": spec.source,
                "dataset": spec.dataset,
                "file": relative[f],
                "sha256": sha,
                "rows": lines_per_file[f],
                "_logical_date": logical_date,
                "_batch_id": batch_id,
                "ingested_at": ingested_at,
            }
            for f, sha in digests.items()
        ],
        schema=MANIFEST_SCHEMA,
    )
    lake.replace_day_arrow(
        manifest,
        lake.table_path("ops", MANIFEST_TABLE, settings),
        _slice_sql(spec, logical_date),
        partition=False,
    )
    mark_late_days(spec, logical_date, late, batch_id, settings)
    log_ingestion(result, ingested_at, settings)
    if not result.reconciled:
        raise ReconciliationError(
            f"{spec.key} {logical_date}: read {rows_read} rows but bronze has {in_bronze} and "
            f"quarantine {in_quarantine}; batch {batch_id} is incomplete"
        )
    return result


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
    ]
)


def mark_late_days(
    spec: SourceSpec, logical_date: date, late: Counter[date], batch_id: str, settings: Settings
) -> None:
    """Record which earlier days this batch's late records belong to (ops.recompute_days).

    Downstream steps that aggregate by business day recompute the marked days within the
    lookback (`days_to_recompute`); older ones are kept and flagged for a manual backfill.
    Replaces this source's marks of `logical_date`, so a rerun doesn't double them.
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
            }
            for day, n in sorted(late.items())
        ],
        schema=RECOMPUTE_SCHEMA,
    )
    lake.replace_day_arrow(
        marks,
        lake.table_path("ops", RECOMPUTE_TABLE, settings),
        _slice_sql(spec, logical_date),
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
    ]
)


def log_ingestion(result: IngestResult, started_at: datetime, settings: Settings) -> None:
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
    }
    lake.append_arrow(
        pa.Table.from_pylist([row], schema=INGESTION_LOG_SCHEMA),
        lake.table_path("ops", INGESTION_LOG_TABLE, settings),
    )
