"""Operator controls of One-ID, persisted in `ops.identity_controls` and respected by every later
run: values an operator declares are never an id (`cdp identity block`): the brand's store
tablets, a call centre's number, a value a complaint showed to be shared.

Why a table and not the registry: the registry says what an id is for every brand; these are one
brand's own values, added by operators over time, each with who-knows-why (`reason`) and when.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from jobs.common import lake
from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings

TABLE = "identity_controls"
KEYS = ["kind", "identifier_type", "identifier"]
KINDS = ("block",)
FILE_COLUMNS = ("identifier_type", "identifier", "reason")


def add_blocks(rows: list[tuple[str, str, str]], settings: Settings | None = None) -> int:
    """Block (identifier_type, identifier, reason) rows; a value blocked again keeps one row
    with the newer reason. Types must be the registry's. Returns the rows written."""
    import pyarrow as pa

    from jobs.identity.registry import load_registry

    settings = settings or get_settings()
    types = load_registry(settings.identity.registry).types
    for kind, value, _ in rows:
        if kind not in types:
            raise CdpError(f"unknown identifier type {kind!r}; the registry has {', '.join(types)}")
        if not str(value).strip():
            raise CdpError(f"an empty {kind} cannot be blocked")
    if not rows:
        return 0
    now = datetime.now(UTC)
    data = pa.table(
        {
            "kind": ["block"] * len(rows),
            "identifier_type": [r[0] for r in rows],
            "identifier": [str(r[1]).strip() for r in rows],
            "reason": [r[2] or "blocked by an operator" for r in rows],
            "created_at": pa.array([now] * len(rows), pa.timestamp("us", tz="UTC")),
        }
    )
    lake.merge_arrow(data, lake.table_path("ops", TABLE, settings), keys=KEYS)
    return len(rows)


def read_block_file(path: Path) -> list[tuple[str, str, str]]:
    """A CSV of `identifier_type,identifier,reason` (a header row): one block per line. A line
    without a type or value fails, naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise CdpError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in FILE_COLUMNS[:2] if c not in (reader.fieldnames or [])]
        if missing:
            raise CdpError(f"{path}: no column(s) {', '.join(missing)}; expected {FILE_COLUMNS}")
        rows = []
        for line, row in enumerate(reader, start=2):
            kind, value = (row.get("identifier_type") or "").strip(), (row.get("identifier") or "")
            if not kind or not value.strip():
                raise CdpError(f"{path}, line {line}: identifier_type and identifier are required")
            rows.append((kind, value.strip(), (row.get("reason") or "").strip()))
    return rows


def blocks(settings: Settings | None = None):
    """Arrow (identifier_type, identifier, reason) of the blocked values, or None."""
    path = lake.table_path("ops", TABLE, settings or get_settings())
    if not lake.is_delta(path):
        return None
    return lake.read_arrow(path, "kind = 'block'", columns=list(FILE_COLUMNS))
