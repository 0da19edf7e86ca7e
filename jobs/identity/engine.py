"""Where One-ID's SQL runs: DuckDB in this process, or Spark across a cluster, with one text.

The identity graph is a dozen SQL steps (jobs/identity/graph.py, ids.py) over named tables, and
connected components between them. A brand with a few million records a day fits one machine:
DuckDB reads the silver tables through delta-rs, spills what does not fit in memory, and the
components run in scipy; nothing waits for Spark's fixed costs, so a demo day resolves in
seconds. Beyond `identity.max_in_memory_edges` the same SQL runs in Spark and the components
run distributed (large-star/small-star), so the graph is never collected.

The SQL is the subset both dialects read alike; the few functions they spell differently come
from the engine (`sha`, `epoch`, `matches`, `sorted_join`).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable

    import duckdb
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession


class Engine(Protocol):
    name: str

    def register(self, name: str, data: object) -> None: ...
    def small(self, name: str, columns: tuple[str, ...], rows: list[tuple]) -> None: ...
    def empty(self, name: str, schema: str) -> None:
        """An empty table of `schema` ("a string, b bigint")."""
        ...

    def run(self, name: str, query: str) -> None: ...
    def view(self, name: str, query: str) -> None: ...
    def components(self, edges: str, out: str) -> None:
        """`out` (vertex, component) of the bipartite graph `edges` (sig, node)."""
        ...

    def count(self, name: str) -> int: ...
    def rows(self, query: str) -> list[tuple]: ...
    def columns(self, name: str) -> dict[str, str]: ...
    def sha(self, expr: str) -> str: ...
    def epoch(self, expr: str) -> str: ...
    def matches(self, expr: str, pattern: str) -> str: ...
    def sorted_join(self, expr: str, sep: str) -> str: ...
    def close(self) -> None:
        """Let go of every table of the run (a long-lived process runs many)."""
        ...

    def __enter__(self) -> Engine: ...
    def __exit__(self, *exc: object) -> None: ...


def quote_list(values: Iterable[str]) -> str:
    """The values as a list of literals for `IN (...)`; `''` (no id is blank) when none."""
    return ", ".join(quote(v) for v in values) or "''"


def quote(value: str) -> str:
    """A SQL string literal both dialects read: single quotes doubled, no backslash escapes."""
    if "\\" in value:
        raise ValueError(f"a backslash in an identity SQL literal: {value!r}")
    return "'" + value.replace("'", "''") + "'"


class DuckEngine:
    """DuckDB over Arrow (delta-rs datasets in, Arrow tables out), scipy for the components."""

    name = "duckdb"

    def __init__(self, temp_dir: str | None = None, memory_limit: str = "4GB") -> None:
        import duckdb

        self.con: duckdb.DuckDBPyConnection = duckdb.connect()
        self.con.execute("set threads=2")
        self.con.execute(f"set memory_limit={quote(memory_limit)}")
        self.con.execute("set preserve_insertion_order=false")
        self.con.execute("set enable_progress_bar=false")  # steps report through `track`
        # Times are UTC instants, as Spark's: a zoned time cast to `timestamp` is its UTC clock
        # time on every machine (DuckDB would take the machine's zone).
        self.con.execute("set TimeZone='UTC'")
        if temp_dir:
            self.con.execute(f"set temp_directory={quote(temp_dir)}")

    def __enter__(self) -> DuckEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def register(self, name: str, data: object) -> None:
        self.con.register(f"_src_{name}", data)
        self.con.execute(f"create or replace view {name} as select * from _src_{name}")

    def small(self, name: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        import pyarrow as pa

        data = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})
        if not rows:  # typed empty columns: strings
            data = pa.table({c: pa.array([], pa.string()) for c in columns})
        self.con.register(f"_small_{name}", data)
        self.run(name, f"select * from _small_{name}")
        self.con.unregister(f"_small_{name}")

    def empty(self, name: str, schema: str) -> None:
        self._drop(name)
        self.con.execute(f"create table {name} ({schema})")

    def view(self, name: str, query: str) -> None:
        """`name` as the query, computed where it is read (not kept)."""
        self._drop(name)
        self.con.execute(f"create view {name} as {query}")

    def run(self, name: str, query: str) -> None:
        # Through a new table: the query may read the table it replaces.
        self.con.execute(f"create or replace table _next_{name} as {query}")
        self._drop(name)
        self.con.execute(f"alter table _next_{name} rename to {name}")

    def _drop(self, name: str) -> None:
        """Drop `name`, a table or a view (a registered input replaced by a step)."""
        kinds = self.con.execute(
            "select 'view' from duckdb_views() where view_name = $1 and not internal "
            "union all select 'table' from duckdb_tables() where table_name = $1",
            [name],
        ).fetchall()
        for (kind,) in kinds:
            self.con.execute(f"drop {kind} {name}")

    def components(self, edges: str, out: str) -> None:
        """DuckDB numbers the vertices (a hash join, not a sort of strings in Python) and scipy
        labels the integer graph; each vertex's component is named by one of its vertices."""
        import numpy as np
        import pyarrow as pa
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components as scipy_components

        self.run(
            "_vertex",
            f"select x, cast(row_number() over () - 1 as bigint) as id from "
            f"(select sig as x from {edges} union select node from {edges}) v",
        )
        n = self.count("_vertex")
        if n == 0:
            self.empty(out, "vertex string, component string")
            return
        pairs = self._table(
            f"select a.id as src, b.id as dst from {edges} e "
            "join _vertex a on a.x = e.sig join _vertex b on b.x = e.node"
        )
        src = pairs.column("src").to_numpy()
        dst = pairs.column("dst").to_numpy()
        del pairs
        matrix = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
        del src, dst
        _, component_of = scipy_components(matrix, directed=False)
        del matrix
        first = np.full(component_of.max() + 1, n, dtype=np.int64)
        np.minimum.at(first, component_of, np.arange(n))
        self.con.register("_labels", pa.table({"id": np.arange(n), "cid": first[component_of]}))
        self.run(
            out,
            "select v.x as vertex, c.x as component from _labels l "
            "join _vertex v on v.id = l.id join _vertex c on c.id = l.cid",
        )
        self.con.unregister("_labels")

    def count(self, name: str) -> int:
        return self.con.execute(f"select count(*) from {name}").fetchall()[0][0]

    def rows(self, query: str) -> list[tuple]:
        return self.con.execute(query).fetchall()

    def arrow(self, name: str) -> pa.Table:
        return self._table(f"select * from {name}")

    def utc_arrow(self, name: str) -> pa.Table:
        """`arrow` with its times as UTC instants (the type Spark writes), not clock times."""
        return self.utc_batches(name).read_all()

    def utc_batches(self, name: str) -> pa.RecordBatchReader:
        """`utc_arrow` as a stream of record batches: a writer takes them as they come, and a
        view is computed as it is written."""
        import pyarrow as pa

        batches = self.con.sql(f"select * from {name}").to_arrow_reader()
        fields = [
            f.with_type(pa.timestamp(f.type.unit, "UTC"))
            if pa.types.is_timestamp(f.type) and f.type.tz is None
            else f
            for f in batches.schema
        ]
        schema = pa.schema(fields, metadata=batches.schema.metadata)
        if schema.equals(batches.schema):
            return batches
        return pa.RecordBatchReader.from_batches(schema, (b.cast(schema) for b in batches))

    def _table(self, query: str) -> pa.Table:
        return self.con.sql(query).to_arrow_table()

    def columns(self, name: str) -> dict[str, str]:
        rows = self.con.execute(f"describe {name}").fetchall()
        return {r[0]: str(r[1]).lower() for r in rows}

    def sha(self, expr: str) -> str:
        return f"sha256({expr})"

    def epoch(self, expr: str) -> str:
        return f"cast(epoch({expr}) as bigint)"

    def matches(self, expr: str, pattern: str) -> str:
        return f"regexp_matches({expr}, {quote(pattern)})"

    def sorted_join(self, expr: str, sep: str) -> str:
        # A list sorted once per group: half the time of an ordered string_agg.
        return f"array_to_string(list_sort(list_distinct(list({expr}))), {sep})"


CONSTRAINTS = "spark.sql.constraintPropagation.enabled"


class SparkEngine:
    """Spark SQL over temp views, each step checkpointed; distributed components."""

    name = "spark"

    def __init__(
        self, spark: SparkSession, max_in_memory_edges: int = 0, *, small: bool = False
    ) -> None:
        self.spark = spark
        self.max_in_memory_edges = max_in_memory_edges
        self.frames: dict[str, DataFrame] = {}
        # small inputs (a test, a forced run): small-data settings while in `with`
        self.small_input = small
        self._settings = ExitStack()

    def __enter__(self) -> SparkEngine:
        from jobs.common.spark import small_data

        self._settings.enter_context(small_data(self.spark, self.small_input))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # The session outlives the run: its temp views would hold every checkpointed step.
        for name in self.frames:
            self.spark.catalog.dropTempView(name)
        self.frames.clear()
        self._settings.close()

    def register(self, name: str, data: object) -> None:
        import pyarrow as pa

        if isinstance(data, pa.Table):  # a small table made in this process
            data = self.spark.createDataFrame(data)
        self.frames[name] = data  # a DataFrame
        data.createOrReplaceTempView(name)

    def small(self, name: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        if rows:
            frame = self.spark.createDataFrame(rows, list(columns))
        else:
            frame = self.spark.createDataFrame([], ", ".join(f"{c} string" for c in columns))
        self.register(name, frame)

    def empty(self, name: str, schema: str) -> None:
        # Not `where 1 = 0` of a table: Spark 4.2 loses the attributes of an empty checkpointed
        # relation in a later union ("key not found").
        self.register(name, self.spark.createDataFrame([], schema))

    def view(self, name: str, query: str) -> None:
        self.register(name, self.spark.sql(query))

    def run(self, name: str, query: str) -> None:
        # Without constraint propagation: Spark 4.2's rewrite of a union's constraints looks up
        # the attributes of a checkpointed side by ids it no longer has ("key not found").
        conf = self.spark.conf
        before = conf.get(CONSTRAINTS, "true")
        conf.set(CONSTRAINTS, "false")
        try:
            self.register(name, self.spark.sql(query).localCheckpoint())
        finally:
            conf.set(CONSTRAINTS, before)

    def components(self, edges: str, out: str) -> None:
        from pyspark.sql import functions as F

        from jobs.identity.components import connected_components

        labels = connected_components(
            self.frames[edges],
            max_in_memory_edges=self.max_in_memory_edges,
            src="sig",
            dst="node",
        )
        self.register(
            out, labels.select(F.col("node").alias("vertex"), "component").localCheckpoint()
        )

    def count(self, name: str) -> int:
        return self.frames[name].count()

    def rows(self, query: str) -> list[tuple]:
        return [tuple(r) for r in self.spark.sql(query).collect()]

    def frame(self, name: str) -> DataFrame:
        return self.frames[name]

    def columns(self, name: str) -> dict[str, str]:
        return {f.name: f.dataType.simpleString() for f in self.frames[name].schema.fields}

    def sha(self, expr: str) -> str:
        return f"sha2({expr}, 256)"

    def epoch(self, expr: str) -> str:
        return f"unix_timestamp({expr})"

    def matches(self, expr: str, pattern: str) -> str:
        return f"({expr} rlike {quote(pattern)})"

    def sorted_join(self, expr: str, sep: str) -> str:
        return f"concat_ws({sep}, sort_array(collect_set({expr})))"
