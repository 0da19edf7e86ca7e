"""Fast reads of the lake without Spark: delta-rs hands Arrow datasets to DuckDB.

`cdp query`, segment exports and the demo summary answer in well under a second this way,
where a Spark session would take ~20 s to start. Every Delta table is exposed as `<layer>.<table>`.
(DuckDB's own delta extension would need a download; delta-rs ships in the wheel.)

The connection is locked down, because analysts type SQL into it (see docs/security.md): the
tables it may read are registered as Arrow datasets (delta-rs reads the files, DuckDB never sees
a path), then DuckDB's external access is disabled (no file, URL, ATTACH of a file, COPY TO,
EXPORT, INSTALL or LOAD; no scans of Python variables), spilling to disk is off (the temp
directory would otherwise stay a writable, readable path), and the configuration is locked so no
`SET` can undo any of it. What a connection can read is exactly the layers it was opened with:
`ANALYST_LAYERS` by default; raw layers (bronze, quarantine, the PII vault) only when pipeline
code or an operator (`cdp query --raw`) asks for them by name (`layers=`) or with `raw=True`.
"""

from __future__ import annotations

import duckdb
from deltalake import DeltaTable

from jobs.common.errors import CdpError
from jobs.common.lake import ANALYST_LAYERS, LAYERS, list_tables
from jobs.common.settings import Settings, get_settings

ALL_LAYERS = LAYERS
# What `cdp query` runs: reads only (one statement; DESCRIBE, SHOW, SUMMARIZE count as SELECT).
READ_STATEMENTS = ("SELECT", "EXPLAIN")


def connect(
    settings: Settings | None = None,
    layers: tuple[str, ...] | None = None,
    *,
    raw: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A locked DuckDB connection with the lake's tables as `<layer>.<table>` views: those of
    `layers`, by default the analyst layers (silver, gold, ops); every layer only with
    `raw=True` (pipeline code such as the quarantine replay, `cdp query --raw`). Nothing else on
    the machine is reachable through it."""
    settings = settings or get_settings()
    if layers is None:
        layers = ALL_LAYERS if raw else ANALYST_LAYERS
    con = duckdb.connect()
    # No spilling: the temp directory is the one path DuckDB would still open for anyone (and
    # it can only be changed while external access is on).
    con.execute("SET temp_directory = ''")
    for layer, name, path in list_tables(settings):
        if layer not in layers:
            continue
        dataset = DeltaTable(path).to_pyarrow_dataset()
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(layer)}")
        alias = f"__{layer}__{name}"
        con.register(alias, dataset)
        view = f"{_ident(layer)}.{_ident(name)}"
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {_ident(alias)}")
    # Registered Arrow datasets still scan with external access off (delta-rs reads the files).
    con.execute("SET enable_external_access = false")
    con.execute(f"SET TimeZone = {_literal(settings.timezone)}")
    con.execute("SET lock_configuration = true")
    return con


def check_read_only(sql: str) -> None:
    """Refuse (CdpError) anything but one read statement: no SET, ATTACH, COPY, CREATE, PRAGMA,
    CALL, INSTALL/LOAD, EXPORT (the locked connection refuses their effects anyway)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise CdpError(f"query failed: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1:
        raise CdpError(f"query failed: expected one SQL statement, got {len(statements)}")
    kind = statements[0].type.name
    if kind not in READ_STATEMENTS:
        raise CdpError(f"query failed: only SELECT queries are allowed here, not {kind}")


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """`<layer>.<table>` of every table and view `connect` exposed."""
    rows = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables"
    ).fetchall()
    return {r[0] for r in rows}


def row_counts(settings: Settings | None = None) -> list[tuple[str, int, str]]:
    """(layer.table, rows, path) for every table of the lake; counts from Delta's own stats."""
    out = []
    for layer, name, path in list_tables(settings):
        out.append((f"{layer}.{name}", DeltaTable(path).to_pyarrow_dataset().count_rows(), path))
    return out


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
