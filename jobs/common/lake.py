"""Where tables live and how they are written: the only module that knows the lake's layout.

Layout: ``{lake_root}/{layer}/{table}``, layers bronze, silver, gold, quarantine and ops (logs,
quality results, audit), and vault: the PII vault (normalized phones, emails, ...), restricted like
bronze to pipeline code (jobs/silver/vault.py). The files on disk (or object storage) are the
source of truth; the Spark catalog is derived from them by `register_tables`, so any session (dbt,
`cdp query`, a notebook) sees the same tables under ``<layer>.<table>``.

Writes are idempotent for a logical date: a rerun or backfill of a day replaces that day
(`replace_day_arrow`) or upserts on a key (`merge_upsert`), never appends twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LAYERS = ("bronze", "silver", "gold", "quarantine", "ops", "vault")
# What analysts may read (`cdp query`, the DuckDB helper, the tour, marts): raw personal
# data lives in bronze, quarantine and the vault, for the pipeline only.
ANALYST_LAYERS = ("silver", "gold", "ops")


def table_path(layer: str, name: str, settings: Settings | None = None) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; expected one of {', '.join(LAYERS)}")
    settings = settings or get_settings()
    return f"{settings.lake_root.rstrip('/')}/{layer}/{name}"


def is_delta(path: str) -> bool:
    """Is there a Delta table at `path`? (No Spark: asks delta-rs.)"""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(path)


# How long a writer waits for another process's commit to the same table before giving up.
TABLE_LOCK_TIMEOUT_S = 1800.0


@contextmanager
def table_lock(path: str, timeout: float = TABLE_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the write lock of one Delta table (an advisory flock under
    ``{var_dir}/locks/tables/``), waiting for another writer to finish.

    delta-rs resolves concurrent appends by itself, but an overwrite with a predicate, or a
    write that creates a table or merges a new column into its schema, fails with "Metadata
    changed since last commit" when another process committed in between (seen with parallel
    dates of one dataset, and with parallel sources writing the shared quarantine and ops
    tables). Serializing each table's delta-rs writes removes the race; the lock is dropped by
    the kernel if its process dies. Across machines, ``var_dir`` must be shared (see
    docs/runbooks.md).
    """
    import fcntl
    import hashlib
    import time

    name = hashlib.sha256(path.rstrip("/").encode()).hexdigest()[:24]
    lock = Path(get_settings().var_dir) / "locks" / "tables" / f"{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with lock.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CdpError(
                        f"waited {timeout:.0f} s for another process writing {path}; is one "
                        f"stuck? (its lock: {lock})"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def replace_day_arrow(
    data: object, path: str, predicate: str, *, partition: bool, day_column: str = "_logical_date"
) -> None:
    """Replace the rows matching `predicate` (a day, maybe one source's slice of it) with
    `data` (an Arrow table or record-batch reader) in one delta-rs commit, without Spark.
    `partition`: the table is partitioned by `day_column`.

    Used for the small, frequent writes of ingestion and ops, where a Spark job's fixed cost
    dominated. Rows outside the predicate are refused. New columns are merged into the schema.
    One writer per table at a time (`table_lock`).
    """
    from deltalake import write_deltalake

    with table_lock(path):
        _add_missing_columns(path, data.schema)
        write_deltalake(
            path,
            data,
            mode="overwrite",
            predicate=predicate,
            partition_by=[day_column] if partition else None,
            schema_mode="merge",
            configuration=ARROW_TABLE_CONFIG,
        )


def _add_missing_columns(path: str, schema) -> None:
    """Give a table written by an older version the columns this write has (null in old rows)
    before a predicate names them: delta-rs checks a predicate against the table's schema
    before it merges the new one in, so `file = 'x'` on a lake without `file` would fail."""
    from deltalake import DeltaTable, write_deltalake

    if not is_delta(path):
        return
    present = set(DeltaTable(path).schema().to_arrow().names)
    if all(name in present for name in schema.names):
        return
    write_deltalake(path, schema.empty_table(), mode="append", schema_mode="merge")


def read_arrow(path: str, where: str | None = None, columns: list[str] | None = None):
    """A Delta table's rows matching `where` (a SQL predicate, e.g. `day = DATE '2026-03-12'`)
    as a pyarrow Table in the table's own Arrow schema (only `columns`, when given), read by
    delta-rs (DataFusion prunes partitions and files by their statistics), without Spark.

    Not pyarrow's dataset filter: on files delta-rs writes, its pruning compares `string`
    with the statistics' `string_view` and fails.
    """
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(path)
    schema = pa.schema(table.schema().to_arrow())  # from the log: no dataset of every file
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    listed = ", ".join(_quoted(c) for c in columns) if columns is not None else "*"
    query = f"SELECT {listed} FROM t" + (f" WHERE {where}" if where else "")
    rows = pa.table(QueryBuilder().register("t", table).execute(query).read_all())
    return rows.select(schema.names).cast(schema)


def read_rows(path: str) -> list[dict]:
    """Every row of a small table (a run log) as dicts; none before the table exists."""
    return read_arrow(path).to_pylist() if is_delta(path) else []


def parquet_files(path: str) -> list[str] | None:
    """The Parquet files of a Delta table's current version, when reading them is reading the
    table (no partitions, deletion vectors or column mapping: tables delta-rs wrote whole), so
    an engine can scan them natively; else None."""
    from deltalake import DeltaTable

    table = DeltaTable(path)
    protocol = table.protocol()
    features = set(protocol.reader_features or ())
    if table.metadata().partition_columns or features & {"deletionVectors", "columnMapping"}:
        return None
    return table.file_uris()


def table_rows(paths: Iterable[str]) -> int:
    """Rows of the Delta tables at `paths`, from the log's file statistics (no data read)."""
    from deltalake import DeltaTable

    total = 0
    for path in paths:
        actions = DeltaTable(path).get_add_actions(flatten=True)
        counts = actions.column("num_records").to_pylist() if actions.num_rows else []
        total += sum(c or 0 for c in counts)
    return total


def small_silver(settings: Settings) -> bool:
    """silver.orders holds at most `silver.arrow_max_rows` rows, or does not exist yet (a demo
    day, a test): the steps over it run on Spark's small-data settings."""
    orders = table_path("silver", "orders", settings)
    return not is_delta(orders) or table_rows([orders]) <= settings.silver.arrow_max_rows


def sql_in(column: str, values: list) -> str:
    """`column IN (...)` for `read_arrow` and delta-rs predicates (strings and dates quoted)."""
    from datetime import date

    def literal(value: object) -> str:
        if isinstance(value, date):
            return f"DATE '{value.isoformat()}'"
        if isinstance(value, int | float):
            return str(value)
        return sql_literal(str(value))

    return f"{_quoted(column)} IN ({', '.join(literal(v) for v in values)})"


def sql_literal(value: str) -> str:
    """`value` as a SQL string literal for a delta-rs predicate: quoted, quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


# Tables written by ingestion get a commit per source and day: checkpoint often, so opening one
# replays a few JSON commits rather than up to a hundred (delta-rs's default interval).
ARROW_TABLE_CONFIG = {"delta.checkpointInterval": "10"}


def append_arrow(table: object, path: str) -> None:
    from deltalake import write_deltalake

    with table_lock(path):
        write_deltalake(
            path, table, mode="append", schema_mode="merge", configuration=ARROW_TABLE_CONFIG
        )


def compact(path: str, logical_date: date | None = None) -> int:
    """Rewrite the small files of a table (or of one `_logical_date` partition) into few, then
    checkpoint the log. Ingestion adds one small file per source and day to the shared tables
    (quarantine, manifest, logs): without this, every later open and scan pays for all of them.
    Returns the number of files removed. Old files stay for time travel until a vacuum."""
    from deltalake import DeltaTable

    if not is_delta(path):
        return 0
    table = DeltaTable(path)
    filters = [("_logical_date", "=", logical_date.isoformat())] if logical_date else None
    with table_lock(path):
        metrics = table.optimize.compact(partition_filters=filters)
        table.create_checkpoint()
    return int(metrics.get("numFilesRemoved", 0))


def table_exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def overwrite(df: DataFrame, path: str, *, partition_by: str | None = None) -> None:
    """Replace a whole (derived) table in one Delta commit; readers see old or new."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    with table_lock(path):
        writer.save(path)


def append(df: DataFrame, path: str) -> None:
    """Add a DataFrame's rows to a table in one Delta commit (new columns merged in)."""
    with table_lock(path):
        df.write.format("delta").mode("append").option("mergeSchema", "true").save(path)


def merge_upsert(
    df: DataFrame,
    path: str,
    *,
    keys: list[str],
    version: str | None = None,
    partition_by: str | None = None,
    update_when: str | None = None,
) -> None:
    """Insert new keys, update existing ones. Creates the table on first write.

    With `version` (a column such as `_logical_date`), an existing row is updated only by a row
    of the same or a later version: rerunning an older day never rolls a key back to the state
    it had then. A table written before the column existed gets it (null: any version wins).
    With `partition_by` (a column that is a function of the key), the table is partitioned by it
    and the merge reads only the partitions the new rows fall in. New columns join the schema.
    `update_when` (SQL over `s`, the new row, and `t`, the existing one) replaces the version
    rule: when an existing row is replaced.
    """
    from delta.tables import DeltaTable

    spark = df.sparkSession
    with table_lock(path):
        if not table_exists(spark, path):
            writer = df.write.format("delta")
            if partition_by:
                writer = writer.partitionBy(partition_by)
            writer.save(path)
            return
        target = DeltaTable.forPath(spark, path)
        if version is not None and version not in target.toDF().columns:
            kind = df.schema[version].dataType.simpleString()
            spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS (`{version}` {kind})")
            target = DeltaTable.forPath(spark, path)
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        if partition_by:
            values = [r[0] for r in df.select(partition_by).distinct().collect()]
            listed = ", ".join(sql_literal(str(v)) for v in values if v is not None)
            if listed and len(values) <= MAX_PRUNED_PARTITIONS:
                condition += f" AND t.`{partition_by}` IN ({listed})"
        newer = f"t.`{version}` IS NULL OR s.`{version}` >= t.`{version}`" if version else None
        newer = update_when or newer
        spark.conf.set("spark.databricks.delta.schema.autoMerge.enabled", "true")
        (
            target.alias("t")
            .merge(df.alias("s"), condition)
            .whenMatchedUpdateAll(condition=newer)
            .whenNotMatchedInsertAll()
            .execute()
        )


# A merge names at most this many partitions (a day's events span a few business days; a
# backfill of old history more, and then scans the whole table instead).
MAX_PRUNED_PARTITIONS = 64


def merge_arrow(
    data: object,
    path: str,
    *,
    keys: list[str],
    version: str | None = None,
    partition_by: str | None = None,
    update_when: str | None = None,
) -> None:
    """`merge_upsert` for a small Arrow table, by delta-rs in this process: no Spark job, so a
    small day's write costs milliseconds, not the seconds of a Spark merge. Same semantics."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable, write_deltalake

    with table_lock(path):
        if not is_delta(path):
            write_deltalake(
                path,
                data,
                partition_by=[partition_by] if partition_by else None,
                configuration=ARROW_TABLE_CONFIG,
            )
            return
        predicate = " AND ".join(f"t.{_quoted(k)} = s.{_quoted(k)}" for k in keys)
        if partition_by:
            values = pc.unique(data[partition_by]).drop_null().to_pylist()
            if values and len(values) <= MAX_PRUNED_PARTITIONS:
                listed = ", ".join(sql_literal(str(v)) for v in values)
                predicate += f" AND t.{_quoted(partition_by)} IN ({listed})"
        newer = (
            f"t.{_quoted(version)} IS NULL OR s.{_quoted(version)} >= t.{_quoted(version)}"
            if version
            else None
        )
        newer = update_when or newer
        table = DeltaTable(path)
        data = _with_table_nullability(data, table, path)
        (
            table.merge(data, predicate, source_alias="s", target_alias="t", merge_schema=True)
            .when_matched_update_all(predicate=newer)
            .when_not_matched_insert_all()
            .execute()
        )


def _with_table_nullability(data, table, path: str):
    """`data` with the table's NOT NULL on the columns both have. A merge whose source says
    "nullable" where the table says NOT NULL makes delta-rs (1.6) write the rows it rewrites
    but does not touch with that column null, and then refuse them; a computed column's
    nullability may change between versions of a transform. A null in such a column is an
    error that names it."""
    import pyarrow as pa

    required = {f.name for f in table.to_pyarrow_dataset().schema if not f.nullable}
    fields = []
    for f in data.schema:
        if f.name in required and f.nullable:
            nulls = data[f.name].null_count
            if nulls:
                raise CdpError(f"{path}: column {f.name} is NOT NULL; {nulls} new row(s) are null")
            f = f.with_nullable(False)
        fields.append(f)
    schema = pa.schema(fields, metadata=data.schema.metadata)
    return data if schema.equals(data.schema) else data.cast(schema)


def overwrite_arrow(data: object, path: str, *, partition_by: str | None = None) -> None:
    """Replace a whole (small, derived) table from Arrow in one delta-rs commit."""
    from deltalake import write_deltalake

    with table_lock(path):
        write_deltalake(
            path,
            data,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=[partition_by] if partition_by else None,
            configuration=ARROW_TABLE_CONFIG,
        )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def list_tables(settings: Settings | None = None) -> list[tuple[str, str, str]]:
    """(layer, table, path) of every Delta table in a local lake."""
    settings = settings or get_settings()
    found = []
    for layer in LAYERS:
        root = Path(settings.lake_root) / layer
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if (child / "_delta_log").is_dir():
                found.append((layer, child.name, str(child)))
    return found


def register_tables(
    spark: SparkSession, settings: Settings | None = None, only: Iterable[str] | None = None
) -> list[str]:
    """Make every lake table (or those of `only`, ``<layer>.<table>`` names) visible as
    ``<layer>.<table>`` in this session's catalog.

    Entries are re-pointed when a table already registered lives elsewhere (a long-lived session
    that switched lakes, as in tests). Tables are external: dropping an entry never touches data.
    Each entry reads its table's log (about a second at the daily batch's sizes), so a step
    that reads a few tables names them; entries of other tables are dropped.
    """
    names = []
    wanted = set(only) if only is not None else None
    for layer, name, path in list_tables(settings):
        if wanted is not None and f"{layer}.{name}" not in wanted:
            continue
        qualified = f"`{layer}`.`{name}`"
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{layer}`")
        if spark.catalog.tableExists(f"{layer}.{name}"):
            current = spark.sql(f"DESCRIBE DETAIL {qualified}").first()["location"]
            if current.removeprefix("file:").rstrip("/") == path.rstrip("/"):
                names.append(f"{layer}.{name}")
                continue
            spark.sql(f"DROP TABLE {qualified}")
        spark.sql(f"CREATE TABLE {qualified} USING DELTA LOCATION '{path}'")
        names.append(f"{layer}.{name}")
    # Entries of tables this lake does not have (a session that switched lakes) would make a
    # model that creates that table write to the other lake's location: drop them, and those
    # not asked for (a later step registers what it reads).
    for layer in LAYERS:
        if not spark.catalog.databaseExists(layer):
            continue
        for table in spark.catalog.listTables(layer):
            if table.tableType != "VIEW" and f"{layer}.{table.name}" not in names:
                spark.sql(f"DROP TABLE IF EXISTS `{layer}`.`{table.name}`")
    return names
