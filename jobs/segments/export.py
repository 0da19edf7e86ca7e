"""Segment exports for marketing tools: member list, diff against the previous export, manifest.

Layout: ``{exports_dir}/{segment}/{as_of}/`` with members.csv, added.csv, removed.csv,
id_changes.csv and manifest.json (row counts, sha256 of each file, the definition used, opt-outs
removed). Members are identified by their One-ID `one_id`, a pseudonymous id: no raw PII ever
leaves the lake. `id_changes.csv` is the id-change feed since the previous export (One-ID's
merges, splits and retirements: old one_id -> new one_id), so a tool that stored yesterday's
ids can re-key them. Writing into a temporary folder and renaming it makes an export appear
whole or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path

from jobs.common import duck
from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings
from jobs.common.yamlio import load_yaml

DEFINITIONS = Path(__file__).parent / "definitions.yaml"
SOURCE_TABLE = "gold.customer_360"
# The consent ledger's current state (jobs/silver/consents.py): a customer any of whose
# identifiers (a phone token, member card, unionid or openid: One-ID's identity_map) said "no"
# to a marketing purpose last (a withdrawal, an SMS 退订, an import's "no") leaves every export.
OPTOUT_TABLE = "silver.consent_state"
IDENTITY_MAP = "silver.identity_map"
ID_CHANGES = "silver.identity_updates"
MARKETING_PURPOSES = ("marketing_sms", "marketing_wecom", "marketing_oa", "ads_audience")
# consent subject type -> One-ID identifier type (an openid subject is "<appid>:<openid>")
SUBJECT_TYPES = {
    "phone_token": "phone",
    "member_card": "member_card",
    "unionid": "wechat_unionid",
    "openid": "wechat_openid",
}
OPTOUT_SQL = f"""
    with said_no as (
        select distinct subject_type, subject_id from {OPTOUT_TABLE}
        where not granted and purpose in ({", ".join(repr(p) for p in MARKETING_PURPOSES)})
    )
    select distinct m.one_id from said_no n join {IDENTITY_MAP} m
      on m.identifier_type = case n.subject_type
             {" ".join(f"when '{k}' then '{v}'" for k, v in SUBJECT_TYPES.items())} end
     and m.identifier = case when n.subject_type = 'openid' and n.subject_id like '%:%'
             then substr(n.subject_id, strpos(n.subject_id, ':') + 1) else n.subject_id end
"""
ID_COLUMN = "one_id"


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    where: str


@dataclass(frozen=True)
class ExportResult:
    segment: str
    folder: Path
    members: int
    added: int
    removed: int
    optouts_removed: int


@lru_cache(maxsize=1)
def load_segments(path: Path = DEFINITIONS) -> dict[str, Segment]:
    raw = load_yaml(path) or {}
    return {
        name: Segment(name, spec.get("description", ""), spec["where"])
        for name, spec in (raw.get("segments") or {}).items()
    }


def get_segment(name: str) -> Segment:
    segments = load_segments()
    if name not in segments:
        raise CdpError(f"unknown segment {name!r}; defined: {', '.join(sorted(segments))}")
    return segments[name]


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


def _write_keys(path: Path, keys: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([ID_COLUMN])
        w.writerows([k] for k in keys)


def _read_keys(path: Path) -> set[str]:
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # an export written before One-ID named its ids customer_key
    return {row.get(ID_COLUMN) or row.get("customer_key") for row in rows}


def _write_changes(path: Path, rows: list[tuple]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["logical_date", "change", "old_one_id", "new_one_id"])
        w.writerows(rows)


def _id_changes(con, tables: set[str], since: date | None, as_of: date) -> list[tuple]:
    """One-ID's merges, splits and retirements after the previous export, up to `as_of`."""
    if ID_CHANGES not in tables:
        return []
    after = f"and _logical_date > date '{since.isoformat()}'" if since else ""
    return con.execute(
        f"select cast(_logical_date as varchar), change, old_one_id, new_one_id from {ID_CHANGES} "
        f"where _logical_date <= date '{as_of.isoformat()}' {after} "
        "order by _logical_date, change, old_one_id, new_one_id"
    ).fetchall()


def previous_export(segment_dir: Path, as_of: date) -> Path | None:
    earlier = sorted(p for p in segment_dir.glob("????-??-??") if p.name < as_of.isoformat())
    return earlier[-1] if earlier else None


def export_segment(
    name: str, as_of: date | None = None, settings: Settings | None = None
) -> ExportResult:
    settings = settings or get_settings()
    as_of = as_of or date.today()
    segment = get_segment(name)
    # The analyst path: silver, gold and ops only, locked (a definition is SQL people write).
    con = duck.connect(settings, layers=duck.ANALYST_LAYERS)
    tables = duck.table_names(con)
    if SOURCE_TABLE not in tables:
        raise CdpError(f"{SOURCE_TABLE} does not exist yet: run the daily batch first")
    try:
        sql = f"select {ID_COLUMN} from {SOURCE_TABLE} where {segment.where}"
        duck.check_read_only(sql)
        matched = {r[0] for r in con.execute(sql).fetchall()}
    except Exception as exc:  # duckdb raises several error types for a bad predicate
        raise CdpError(f"segment {name!r}: invalid where clause {segment.where!r}: {exc}") from exc
    optouts: set[str] = set()
    if OPTOUT_TABLE in tables and IDENTITY_MAP in tables:
        optouts = {r[0] for r in con.execute(OPTOUT_SQL).fetchall()}
    members = sorted(matched - optouts)

    segment_dir = Path(settings.exports_dir) / name
    final = segment_dir / as_of.isoformat()
    previous = previous_export(segment_dir, as_of)
    before = _read_keys(previous / "members.csv") if previous else set()
    added = sorted(set(members) - before)
    removed = sorted(before - set(members))

    since = date.fromisoformat(previous.name) if previous else None
    changes = _id_changes(con, tables, since, as_of)
    manifest = {
        "segment": name,
        "description": segment.description,
        "definition": {"table": SOURCE_TABLE, "where": segment.where},
        "as_of": as_of.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "id_type": "one_id (One-ID, pseudonymous; re-key stored ids with id_changes.csv)",
        "previous_export": previous.name if previous else None,
        "counts": {
            "members": len(members),
            "added": len(added),
            "removed": len(removed),
            "optouts_removed": len(matched & optouts),
            "id_changes": len(changes),
        },
    }
    with whole_folder(final) as staging:
        _write_keys(staging / "members.csv", members)
        _write_keys(staging / "added.csv", added)
        _write_keys(staging / "removed.csv", removed)
        _write_changes(staging / "id_changes.csv", changes)
        files = ("members.csv", "added.csv", "removed.csv", "id_changes.csv")
        write_manifest(staging, manifest, files)
    return ExportResult(name, final, len(members), len(added), len(removed), len(matched & optouts))
