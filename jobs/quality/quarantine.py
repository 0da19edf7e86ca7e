"""Reading quarantine for people: which rows failed validation, where they came from and why.

quarantine.records holds the raw payload of every rejected line, so it is not an analyst table;
this reads it through a locked DuckDB connection opened on the quarantine layer only, and shows
the reason through `mask_pii` (a reason may quote the value that failed). The raw payload is
shown, unmasked, only when asked for (`cdp quarantine list --raw`, for pipeline operators).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from jobs.common import duck
from jobs.common.masking import mask_pii
from jobs.common.settings import Settings, get_settings

TABLE = "quarantine.records"


@dataclass(frozen=True)
class QuarantinedRow:
    logical_date: date
    source: str  # source.dataset
    file: str
    line: int | None
    field: str | None
    reason: str  # masked, without the file and line it repeats
    raw: str | None  # None unless asked for


def list_quarantined(
    settings: Settings | None = None,
    *,
    source: str | None = None,
    day: date | None = None,
    limit: int = 20,
    raw: bool = False,
) -> list[QuarantinedRow]:
    """The latest quarantined rows (newest date first, then by source, file and line), maybe of
    one source (`tmall`) or dataset (`tmall.orders`) and one logical date."""
    settings = settings or get_settings()
    con = duck.connect(settings, layers=("quarantine",))
    if TABLE not in duck.table_names(con):
        return []
    where, params = ["true"], []
    if source:
        where.append("(source = ? or source || '.' || dataset = ?)")
        params += [source, source]
    if day:
        where.append("_logical_date = ?")
        params.append(day)
    rows = con.execute(
        "select _logical_date, source || '.' || dataset, file, line, field, reason, "
        f"{'raw' if raw else 'null'} from {TABLE} where {' and '.join(where)} "
        "order by _logical_date desc, source, dataset, file, line limit ?",
        [*params, limit],
    ).fetchall()
    return [
        QuarantinedRow(d, key, file, line, field, _reason(reason, file, line), payload)
        for d, key, file, line, field, reason, payload in rows
    ]


def _reason(reason: str | None, file: str, line: int | None) -> str:
    """The reason without the `<file> line N: ` it starts with (shown in their own columns),
    masked."""
    return mask_pii((reason or "").removeprefix(f"{file} line {line}: "))
