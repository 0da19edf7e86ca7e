"""Replaying quarantine: re-ingest the days that have quarantined rows, after a fix.

A fix is either new landing files (the platform re-exported a day) or a changed source spec or
JSON Schema (a new column, a new status). Ingestion replaces a day in bronze and quarantine as
a whole, so replaying a day is ingesting it again from its landing files: rows that now pass
move to bronze, the rest stay in quarantine with their (possibly new) reason. The landing files
are the replay source, not the quarantined `raw` text, because a CSV line means nothing without
its file's header.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from jobs.common import duck
from jobs.common.settings import Settings, get_settings
from jobs.ingest.bronze import QUARANTINE_TABLE, ingest, reingest_file


@dataclass(frozen=True)
class ReplayResult:
    source_key: str
    logical_date: date
    quarantined_before: int
    quarantined_after: int
    bronze_after: int  # lines in bronze for the replayed files afterwards

    @property
    def released(self) -> int:
        return self.quarantined_before - self.quarantined_after


def quarantined_days(
    settings: Settings,
    source_key: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[tuple[str, date, int]]:
    """(source.dataset, date, rows) of every day with quarantined rows, oldest first."""
    con = duck.connect(settings, raw=True)
    if f"quarantine.{QUARANTINE_TABLE}" not in duck.table_names(con):
        return []
    where, params = ["true"], []
    if source_key:
        where.append("source || '.' || dataset = ?")
        params.append(source_key)
    if since:
        where.append("_logical_date >= ?")
        params.append(since)
    if until:
        where.append("_logical_date <= ?")
        params.append(until)
    return [
        (key, day, n)
        for key, day, n in con.execute(
            f"select source || '.' || dataset, _logical_date, count(*) "
            f"from quarantine.{QUARANTINE_TABLE} where {' and '.join(where)} "
            "group by 1, 2 order by 2, 1",
            params,
        ).fetchall()
    ]


def replay(
    source_key: str | None = None,
    since: date | None = None,
    until: date | None = None,
    settings: Settings | None = None,
) -> list[ReplayResult]:
    from jobs.ingest.spec import load_specs

    settings = settings or get_settings()
    specs = load_specs()
    results = []
    for key, day, before in quarantined_days(settings, source_key, since, until):
        if key in specs:
            r = ingest(key, day, settings=settings)
            results.append(ReplayResult(key, day, before, r.rows_quarantined, r.rows_bronze))
            continue
        # A `cdp import`: each imported file of the day is re-read from the copy the import
        # kept, with the mapping it was imported with (the journal has both).
        after = bronze = 0
        for file_key in quarantined_files(settings, key, day):
            r = reingest_file(key, file_key, settings=settings)
            after += r.rows_quarantined
            bronze += r.rows_bronze
        results.append(ReplayResult(key, day, before, after, bronze))
    return results


def quarantined_files(settings: Settings, source_key: str, day: date) -> list[str]:
    """Keys of the files of one dataset and day that have quarantined rows."""
    con = duck.connect(settings, layers=("quarantine",))
    return [
        row[0]
        for row in con.execute(
            f"select distinct file from quarantine.{QUARANTINE_TABLE} "
            "where source || '.' || dataset = ? and _logical_date = ? order by 1",
            [source_key, day],
        ).fetchall()
    ]
