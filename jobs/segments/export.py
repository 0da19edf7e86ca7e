"""Segment exports for marketing tools: members with their identifiers, the diff since the last
export, the id-change feed and a manifest. No Spark: delta-rs and DuckDB.

`cdp segments export NAME --format csv|parquet --to PATH|URI [--incremental]` and the daily
`export_segments` task write ``{to}/{segment}/{as_of}/`` (``{as_of}.incremental`` for an
incremental export; `to` defaults to the exports folder):

- ``members``: full exports only; ``added`` and ``removed``: who entered and left since the
  segment's previous export. One row per identifier: one_id, id_type, namespace (the appid of an
  openid, the corp of an external_userid), id. The segment's `identifiers` say which:
  ``phone_sha256`` (SHA-256 of the phone as marketing tools hash it: a mainland number's 11
  digits, another country's E.164 digits without the +), ``wechat_unionid``, ``wechat_openid``,
  ``wecom_external_userid``. The phone comes from the PII vault, read here by pipeline code and
  hashed before it leaves; no raw contact detail is written.
- ``id_changes``: One-ID's merges, splits and retirements since the previous export (old one_id
  -> new one_id), so a tool that keyed yesterday's rows by one_id can re-key them.
- ``manifest.json``: counts, each file's sha256, the definition (version, conditions, SQL and a
  hash of them), the consent purpose, generated_at.

Consent: a customer is exported only when the ledger grants the segment's purpose
(jobs/segments/consent.py), or it holds no decision and the purpose's default grants it.

Each export's members are kept in ``silver.segment_members`` (one partition per date; a rerun
replaces its date), which is what the next export diffs against and what dbt's segment history
is built from; ``ops.segment_exports`` logs every export. A local folder appears whole or not at
all (written beside it, then renamed); on an object store (``s3://``, ...) the manifest is
written last: a reader waits for it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from jobs.common import duck, lake
from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings
from jobs.segments.consent import IDENTITY_MAP, STATE_TABLE, decided_sql
from jobs.segments.definitions import Segment, get_segment

SOURCE_TABLE = "gold.customer_360"
MEMBERS_TABLE = "segment_members"  # silver
EXPORTS_LOG = "segment_exports"  # ops
ID_CHANGES = "silver.identity_updates"
FORMATS = ("csv", "parquet")
ID_COLUMNS = ("one_id", "id_type", "namespace", "id")
# One-ID identifier type of each exported id type (the phone is hashed from the vault).
ID_TYPES = {
    "wechat_unionid": "wechat_unionid",
    "wechat_openid": "wechat_openid",
    "wecom_external_userid": "wecom_external_userid",
}


@dataclass(frozen=True)
class ExportResult:
    segment: str
    folder: str
    members: int
    added: int
    removed: int
    no_consent: int  # matched, but the purpose is not granted (refused, or no grant by default)
    rows: int  # identifier rows written in the members (or, incremental, added) file


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def whole_folder(final: Path) -> Iterator[Path]:
    """A folder that appears as `final` whole or not at all: the caller writes into a hidden
    staging folder beside it, renamed into place when the block ends without an error."""
    staging = final.parent / f".{final.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    yield staging
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)


def write_manifest(folder: Path, manifest: dict, files: tuple[str, ...]) -> None:
    """`manifest` plus the sha256 of each of `files` in `folder`, as folder/manifest.json."""
    manifest["files"] = {f: {"sha256": _sha256(folder / f)} for f in files}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _members(settings: Settings, segment: Segment):
    """(how many customers the definition selects, Arrow one_id of those the purpose is granted
    for, sorted). The definition runs on the analyst connection: silver, gold and ops, locked
    (it is SQL people write)."""
    from jobs.silver.consents import default_state

    con = duck.connect(settings, layers=duck.ANALYST_LAYERS)
    try:
        tables = duck.table_names(con)
        if SOURCE_TABLE not in tables:
            raise CdpError(f"{SOURCE_TABLE} does not exist yet: run the daily batch first")
        sql = f"select one_id from {SOURCE_TABLE} where {segment.where}"
        try:
            duck.check_read_only(sql)
            con.execute(f"create temp table matched as {sql}")
        except Exception as exc:  # duckdb raises several error types for a bad predicate
            raise CdpError(
                f"segment {segment.name!r} (definitions.yaml line {segment.line}): "
                f"{segment.where!r} does not run on {SOURCE_TABLE}: {exc}"
            ) from exc
        default = "true" if default_state(segment.purpose) else "false"
        decided = (
            decided_sql(segment.purpose)
            if STATE_TABLE in tables and IDENTITY_MAP in tables
            else "select null::varchar as one_id, null::boolean as granted where false"
        )
        matched = con.execute("select count(*) from matched").fetchall()[0][0]
        members = con.sql(
            f"select one_id from matched left join ({decided}) d using (one_id) "
            f"where coalesce(d.granted, {default}) order by one_id"
        ).to_arrow_table()
    finally:
        con.close()
    return matched, members


def _id_rows(con, wanted: tuple[str, ...]) -> str:
    """SQL of (one_id, id_type, namespace, id) of the `wanted` identifiers of the `exported`
    one_ids. The vault's phones are read here and hashed, never written."""
    tables = duck.table_names(con)
    parts = [
        f"select m.one_id, '{kind}' as id_type, m.namespace, m.identifier as id "
        f"from {IDENTITY_MAP} m join exported e using (one_id) "
        f"where m.identifier_type = '{ID_TYPES[kind]}'"
        for kind in wanted
        if kind in ID_TYPES
    ]
    if "phone_sha256" in wanted and "vault.pii" in tables:
        # A mainland number hashes as its 11 digits (what WeChat/Tencent ads, Ocean Engine and
        # Alibaba's DMPs take); another country's as its E.164 digits without the +.
        parts.append(
            "select m.one_id, 'phone_sha256' as id_type, null as namespace, sha256(case "
            "when v.value like '+86%' then substr(v.value, 4) else substr(v.value, 2) end) "
            f"from {IDENTITY_MAP} m join exported e using (one_id) "
            "join vault.pii v on v.kind = 'phone' and v.token = m.identifier "
            "where m.identifier_type = 'phone'"
        )
    if IDENTITY_MAP not in tables or not parts:
        return (
            "select null::varchar as one_id, null::varchar as id_type, "
            "null::varchar as namespace, null::varchar as id where false"
        )
    return " union ".join(parts)


def _files(settings: Settings, segment: Segment, members, before) -> dict:
    """Arrow (one_id, id_type, namespace, id), sorted, of the `members`, of those `added` since
    the previous export's members `before` and of those `removed` (with the ids One-ID knows
    now: a tool deletes by them)."""
    import pyarrow as pa

    schema = pa.schema([(c, pa.string()) for c in ID_COLUMNS])
    con = duck.connect(settings, layers=("silver", "vault"))
    try:
        con.register("members", members)
        con.register("before", before)
        con.execute(
            "create temp table exported as "
            "select one_id, not exists (select 1 from before b where b.one_id = m.one_id) "
            "as added, false as removed from members m union all "
            "select one_id, false, true from before b "
            "where not exists (select 1 from members m where m.one_id = b.one_id)"
        )
        con.execute(
            f"create temp table ids as select i.*, e.added, e.removed from "
            f"({_id_rows(con, segment.identifiers)}) i join exported e using (one_id)"
        )

        def rows(where: str):
            query = f"select {', '.join(ID_COLUMNS)} from ids where {where} order by 1, 2, 3, 4"
            return con.sql(query).to_arrow_table().cast(schema)

        counts = con.execute(
            "select count(*) filter (where added), count(*) filter (where removed) from exported"
        ).fetchall()[0]
        return {
            "members": rows("not removed"),
            "added": rows("added"),
            "removed": rows("removed"),
            "counts": {"added": counts[0], "removed": counts[1]},
        }
    finally:
        con.close()


def _previous(settings: Settings, segment: str, as_of: date):
    """The segment's last export before `as_of` (its date, by ops.segment_exports; None) and its
    members (Arrow one_id: that date's partition of silver.segment_members)."""
    log = lake.table_path("ops", EXPORTS_LOG, settings)
    members = lake.table_path("silver", MEMBERS_TABLE, settings)
    import pyarrow as pa

    none = pa.table({"one_id": pa.array([], pa.string())})
    if not (lake.is_delta(log) and lake.is_delta(members)):
        return None, none
    name = lake.sql_literal(segment)
    days = lake.read_arrow(
        log, f"segment = {name} and as_of < DATE '{as_of.isoformat()}'", columns=["as_of"]
    ).column("as_of")
    if not len(days):
        return None, none
    last = max(days.to_pylist())
    rows = lake.read_arrow(
        members, f"segment = {name} and as_of = DATE '{last.isoformat()}'", columns=["one_id"]
    )
    return last, rows


def _id_changes(settings: Settings, since: date | None, as_of: date):
    """Arrow of One-ID's merges, splits and retirements after `since`, up to `as_of`."""
    import pyarrow as pa

    columns = ("logical_date", "change", "old_one_id", "new_one_id")
    if not lake.is_delta(lake.table_path("silver", "identity_updates", settings)):
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    con = duck.connect(settings, layers=("silver",))
    try:
        after = f"and _logical_date > date '{since.isoformat()}'" if since else ""
        return con.sql(
            "select cast(_logical_date as varchar) as logical_date, change, old_one_id, "
            f"new_one_id from {ID_CHANGES} where _logical_date <= date '{as_of.isoformat()}' "
            f"{after} order by 1, 2, 3, 4"
        ).to_arrow_table()
    finally:
        con.close()


def _write(table, path: Path, fmt: str) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pcsv.write_csv(table, path)


def _keep_members(settings: Settings, segment: Segment, as_of: date, members) -> None:
    """The export's members (Arrow one_id) as the segment's partition of `as_of` in
    silver.segment_members."""
    import pyarrow as pa

    n = members.num_rows
    data = pa.table(
        {
            "segment": pa.repeat(pa.scalar(segment.name, pa.string()), n),
            "one_id": members.column("one_id").cast(pa.string()),
            "version": pa.repeat(pa.scalar(segment.version, pa.int32()), n),
            "as_of": pa.repeat(pa.scalar(as_of, pa.date32()), n),
        }
    )
    lake.replace_day_arrow(
        data,
        lake.table_path("silver", MEMBERS_TABLE, settings),
        f"segment = {lake.sql_literal(segment.name)} and as_of = '{as_of.isoformat()}'",
        partition=True,
        day_column="as_of",
    )


def _destination(to: str | None, settings: Settings):
    """(pyarrow filesystem or None for a local folder, root path) of PATH or URI `to`."""
    if not to:
        return None, str(Path(settings.exports_dir))
    if "://" not in to or to.startswith("file://"):
        return None, str(Path(to.removeprefix("file://")).absolute())
    from pyarrow import fs

    try:
        filesystem, root = fs.FileSystem.from_uri(to)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for what it cannot open
        raise CdpError(f"--to {to!r}: not a destination this machine can write to: {exc}") from exc
    return filesystem, root.rstrip("/")


@contextmanager
def delivered(to: str | None, relative: str, settings: Settings) -> Iterator[Path]:
    """A local folder to write an export into; on leaving the block it is at
    `{to}/{relative}`: renamed into place locally, or uploaded (the manifest last)."""
    filesystem, root = _destination(to, settings)
    if filesystem is None:
        with whole_folder(Path(root) / relative) as staging:
            yield staging
        return
    with tempfile.TemporaryDirectory(prefix="cdp-export-") as tmp:
        yield Path(tmp)
        target = f"{root}/{relative}"
        filesystem.create_dir(target, recursive=True)
        names = sorted(p.name for p in Path(tmp).iterdir())
        for name in [n for n in names if n != "manifest.json"] + ["manifest.json"]:
            with (
                (Path(tmp) / name).open("rb") as src,
                filesystem.open_output_stream(f"{target}/{name}") as out,
            ):
                shutil.copyfileobj(src, out)


def export_segment(
    name: str,
    as_of: date | None = None,
    settings: Settings | None = None,
    *,
    fmt: str = "csv",
    to: str | None = None,
    incremental: bool = False,
    definitions: Path | None = None,
) -> ExportResult:
    """Export segment `name` as of `as_of` (see the module's docstring); `definitions`: another
    segments file than jobs/segments/definitions.yaml."""
    settings = settings or get_settings()
    as_of = as_of or date.today()
    if fmt not in FORMATS:
        raise CdpError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    segment = get_segment(name, definitions) if definitions else get_segment(name)
    matched, members = _members(settings, segment)
    since, before = _previous(settings, name, as_of)
    made = _files(settings, segment, members, before)
    changes = _id_changes(settings, since, as_of)
    files = {"added": made["added"], "removed": made["removed"], "id_changes": changes}
    if not incremental:
        files = {"members": made["members"], **files}
    added, removed = made["counts"]["added"], made["counts"]["removed"]
    relative = f"{name}/{as_of.isoformat()}{'.incremental' if incremental else ''}"
    written = {f"{key}.{fmt}": table for key, table in files.items()}
    manifest = {
        "segment": name,
        "description": segment.description,
        "definition": segment.definition,
        "purpose": segment.purpose,
        "as_of": as_of.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "incremental" if incremental else "full",
        "format": fmt,
        "identifiers": list(segment.identifiers),
        "columns": list(ID_COLUMNS),
        "previous_export": since.isoformat() if since else None,
        "counts": {
            "members": members.num_rows,
            "added": added,
            "removed": removed,
            "no_consent": matched - members.num_rows,
            "id_changes": changes.num_rows,
            **{f"{k}_rows": t.num_rows for k, t in files.items() if k != "id_changes"},
        },
    }
    with delivered(to, relative, settings) as folder:
        for file, table in written.items():
            _write(table, folder / file, fmt)
        write_manifest(folder, manifest, tuple(written))
        checksum = json.dumps(manifest["files"], sort_keys=True)
    _keep_members(settings, segment, as_of, members)
    _log(settings, manifest, to or settings.exports_dir, checksum)
    main = files["added" if incremental else "members"]
    return ExportResult(
        name,
        f"{_destination(to, settings)[1]}/{relative}",
        members.num_rows,
        added,
        removed,
        matched - members.num_rows,
        main.num_rows,
    )


def _log(settings: Settings, manifest: dict, destination: str, checksum: str) -> None:
    """One row per export in ops.segment_exports."""
    import pyarrow as pa

    counts = manifest["counts"]
    row = {
        "segment": manifest["segment"],
        "as_of": date.fromisoformat(manifest["as_of"]),
        "mode": manifest["mode"],
        "format": manifest["format"],
        "destination": destination,
        "version": manifest["definition"]["version"],
        "definition_sha256": manifest["definition"]["sha256"],
        "purpose": manifest["purpose"],
        "members": counts["members"],
        "added": counts["added"],
        "removed": counts["removed"],
        "no_consent": counts["no_consent"],
        "files_sha256": hashlib.sha256(checksum.encode()).hexdigest(),
        "generated_at": datetime.fromisoformat(manifest["generated_at"]),
    }
    lake.append_arrow(pa.Table.from_pylist([row]), lake.table_path("ops", EXPORTS_LOG, settings))
