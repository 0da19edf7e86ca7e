"""Operator controls of One-ID, persisted in `ops.identity_controls` and respected by every later
run:

- `block`: a value is never an id (`cdp identity block`): the brand's store tablets, a call
  centre's number, a value a complaint showed to be shared;
- `never_merge`: two identifiers never share a profile (`cdp identity split A B`): the run
  refuses whatever value would join them, as it refuses a second member card;
- `merge`: two identifiers are one person (`cdp identity merge A B`), as if a record carried both;
  the registry's limits and the never-merge list still hold (identity_blocked says so).

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
KEYS = ["kind", "identifier_type", "identifier", "other_type", "other"]
KINDS = ("block", "never_merge", "merge")
FILE_COLUMNS = ("identifier_type", "identifier", "reason")
PAIR_COLUMNS = ("identifier_type", "identifier", "other_type", "other", "reason")


def add_blocks(rows: list[tuple[str, str, str]], settings: Settings | None = None) -> int:
    """Block (identifier_type, identifier, reason) rows; a value blocked again keeps one row
    with the newer reason. Types must be the registry's. Returns the rows written."""
    return _add("block", [(k, v, "", "", why) for k, v, why in rows], settings)


def add_pair(
    kind: str, a: tuple[str, str], b: tuple[str, str], reason: str, settings: Settings | None = None
) -> int:
    """A never_merge or merge control between identifiers a and b (type, value)."""
    if kind not in KINDS[1:]:
        raise CdpError(f"unknown pair control {kind!r}; expected one of {', '.join(KINDS[1:])}")
    if a == b:
        raise CdpError(f"{a[0]} {a[1]} and itself: give two different identifiers")
    if kind == "merge" and a[0] == b[0]:
        from jobs.identity.registry import load_registry

        spec = load_registry((settings or get_settings()).identity.registry).types.get(a[0])
        if spec is not None and spec.max_per_profile == 1 and not spec.per_namespace:
            raise CdpError(
                f"two {a[0]} values are two people (the registry allows one per profile); "
                "merge other identifiers of them, or change the registry"
            )
    first, second = sorted([a, b])
    return _add(kind, [(*first, *second, reason)], settings)


def _add(kind: str, rows: list[tuple[str, str, str, str, str]], settings: Settings | None) -> int:
    import pyarrow as pa

    if kind not in KINDS:
        raise CdpError(f"unknown identity control {kind!r}; expected one of {', '.join(KINDS)}")
    from jobs.identity.registry import load_registry

    settings = settings or get_settings()
    types = load_registry(settings.identity.registry).types
    for row in rows:
        for t, v in (
            ((row[0], row[1]), (row[2], row[3])) if kind != "block" else ((row[0], row[1]),)
        ):
            if t not in types:
                raise CdpError(
                    f"unknown identifier type {t!r}; the registry has {', '.join(types)}"
                )
            if not str(v).strip():
                raise CdpError(f"an empty {t} cannot be named in a control")
    if not rows:
        return 0
    now = datetime.now(UTC)
    data = pa.table(
        {
            "kind": [kind] * len(rows),
            "identifier_type": [r[0] for r in rows],
            "identifier": [str(r[1]).strip() for r in rows],
            "other_type": [r[2] for r in rows],
            "other": [str(r[3]).strip() for r in rows],
            "reason": [r[4] or f"{kind.replace('_', ' ')} by an operator" for r in rows],
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


def pairs(kind: str, settings: Settings | None = None) -> list[tuple[str, str, str, str, str]]:
    """(identifier_type, identifier, other_type, other, reason) of the never_merge or merge
    controls."""
    path = lake.table_path("ops", TABLE, settings or get_settings())
    if not lake.is_delta(path):
        return []
    from deltalake import DeltaTable

    if "other" not in DeltaTable(path).schema().to_arrow().names:
        return []
    rows = lake.read_arrow(path, f"kind = '{kind}'", columns=list(PAIR_COLUMNS)).to_pylist()
    return [tuple(r.values()) for r in rows]


def all_controls(settings: Settings | None = None) -> list[dict]:
    path = lake.table_path("ops", TABLE, settings or get_settings())
    return lake.read_arrow(path).to_pylist() if lake.is_delta(path) else []
