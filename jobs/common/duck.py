"""Fast reads of the lake without Spark: delta-rs hands Arrow datasets to DuckDB.

`cdp query`, segment exports and the demo summary answer in well under a second this way,
where a Spark session would take ~20 s to start. Every Delta table is exposed as `<layer>.<table>`.
(DuckDB's own delta extension would need a download; delta-rs ships in the wheel.)
"""

from __future__ import annotations

import duckdb
from deltalake import DeltaTable

from jobs.common.lake import list_tables
from jobs.common.settings import Settings, get_settings

# What analysts may read: raw personal data lives in bronze and quarantine, for the pipeline.
ANALYST_LAYERS = ("silver", "gold", "ops")


def connect(
    settings: Settings | None = None, layers: tuple[str, ...] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake's tables as `<layer>.<table>` views (all layers, or
    only `layers`)."""
    settings = settings or get_settings()
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{settings.timezone}'")
    for layer, name, path in list_tables(settings):
        if layers is not None and layer not in layers:
            continue
        dataset = DeltaTable(path).to_pyarrow_dataset()
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
        alias = f"__{layer}__{name}"
        con.register(alias, dataset)
        con.execute(f'CREATE OR REPLACE VIEW "{layer}"."{name}" AS SELECT * FROM "{alias}"')
    return con


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
