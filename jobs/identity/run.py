"""`cdp identity run`, the `resolve_identity` step of cdp_daily: every silver table's ids ->
the guarded identity graph -> stable one_ids -> the identity tables in silver.

- `silver.identity_map`: one_id, identifier_type, identifier (contact details as tokens,
  platform and brand ids in clear: activation needs them), namespace, first/last seen, records,
  one_id_since. The shape of RudderStack's id stitcher.
- `silver.identity_edges`: which rule joined which two ids of a profile, on how many records.
- `silver.identity_updates`: every merge, split and retirement (old one_id -> new one_id, the
  rule and record that caused it): the id-change feed. Upserted per (date, change, old, new), so
  a rerun of a day adds nothing it already recorded.
- `silver.identity_blocked`: the values never used as merge keys and why.
- `silver.identity_records`: the one_id of each record of the rules that keep them (orders,
  member lists): what the marts join orders by.
- `silver.identity_matches`: the member-list pairs probabilistic matching linked
  (jobs/identity/matching.py), with their match probability and how each field compared.
- `silver.customers`: one row per one_id (since when, identifiers, latest phone token, card).

Where it runs (jobs/identity/engine.py): in this process on DuckDB when the rules' silver tables
hold at most `identity.max_in_memory_edges` records, on Spark beyond. The run reads the whole
of silver each time; the daily delta (only the profiles a day's records touch) is to come.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from jobs.common import lake
from jobs.common.settings import Settings, get_settings
from jobs.identity import controls, graph, ids, matching
from jobs.identity.engine import DuckEngine, Engine, SparkEngine
from jobs.identity.registry import Registry, load_registry

TABLES = (
    "identity_map",
    "identity_matches",
    "identity_edges",
    "identity_updates",
    "identity_blocked",
    "identity_records",
    "customers",
)
REPLACED = tuple(t for t in TABLES if t != "identity_updates")
UPDATE_KEYS = ["_logical_date", "change", "old_one_id", "new_one_id"]


def rule_tables(registry: Registry, settings: Settings) -> dict[str, str]:
    """silver table -> its path, for the tables the rules read that exist."""
    paths = {r.table: lake.table_path("silver", r.table, settings) for r in registry.rules}
    return {name: path for name, path in paths.items() if lake.is_delta(path)}


def table_rows(paths: dict[str, str]) -> int:
    """Rows of the tables, from the Delta log's file statistics (no data read)."""
    from deltalake import DeltaTable

    total = 0
    for path in paths.values():
        actions = DeltaTable(path).get_add_actions(flatten=True)
        counts = actions.column("num_records").to_pylist() if actions.num_rows else []
        total += sum(c or 0 for c in counts)
    return total


def rule_columns(registry: Registry, table: str, path: str) -> list[str]:
    """The columns of a silver table the rules read (named, or words of their `where`)."""
    from deltalake import DeltaTable

    present = DeltaTable(path).schema().to_arrow().names
    wanted: set[str] = set()
    for rule in registry.rules:
        if rule.table == table:
            wanted |= rule.named_columns() | rule.mentioned_words()
    return [c for c in present if c in wanted]


def open_engine(settings: Settings, registry: Registry, paths: dict[str, str]) -> Engine:
    """DuckDB over the tables' Arrow datasets when they are small enough, else Spark."""
    if table_rows(paths) <= settings.identity.max_in_memory_edges:
        temp = Path(settings.var_dir) / "tmp" / "identity"
        temp.mkdir(parents=True, exist_ok=True)
        engine: Engine = DuckEngine(temp_dir=str(temp))
        for name, path in paths.items():
            # The columns the rules read, by delta-rs (DuckDB's filters pushed into a pyarrow
            # dataset trip over delta-rs's string_view statistics).
            engine.register(
                f"t_{name}", lake.read_arrow(path, columns=rule_columns(registry, name, path))
            )
        return engine
    from jobs.common.spark import get_spark

    spark = get_spark()
    engine = SparkEngine(spark, settings.identity.max_in_memory_edges)
    for name, path in paths.items():
        engine.register(f"t_{name}", spark.read.format("delta").load(path))
    return engine


@dataclass(frozen=True)
class Controls:
    """The operators' controls a run applies (jobs/identity/controls.py)."""

    blocks: tuple[tuple[str, str, str], ...] = ()  # type, value, reason
    apart: tuple[tuple[str, str, str, str], ...] = ()  # never merge: type, value, type, value
    merges: tuple[tuple[str, str, str, str], ...] = ()  # one person: type, value, type, value

    @classmethod
    def load(cls, settings: Settings) -> Controls:
        blocked = controls.blocks(settings)
        return cls(
            blocks=tuple(tuple(r.values()) for r in blocked.to_pylist()) if blocked else (),
            apart=tuple(p[:4] for p in controls.pairs("never_merge", settings)),
            merges=tuple(p[:4] for p in controls.pairs("merge", settings)),
        )


def resolve(
    engine: Engine,
    registry: Registry,
    tables: set[str],
    hmac_key: bytes,
    day: date,
    *,
    previous: object | None,
    operator: Controls = Controls(),
    matched: tuple | None = None,
) -> bool:
    """The whole resolution on an engine: extraction (False when no rule's table exists), the
    values probabilistic matching gave (`matched`, from `matching.match`), then
    `resolve_occurrences`."""
    if not graph.extract(engine, registry, tables):
        return False
    occ, pairs = matched or (None, None)
    if occ is not None:
        engine.register("matched_occ", occ)
        engine.run(
            "occ",
            "select * from occ union all select rule, record_key, cast(seen_at as timestamp), "
            "identifier_type, namespace, identifier from matched_occ",
        )
    if pairs is not None:
        engine.register("identity_matches", pairs)
    else:
        engine.empty(
            "identity_matches",
            "matching string, record_l string, record_r string, match_probability double, "
            "match_weight double, levels string, cluster string",
        )
    resolve_occurrences(engine, registry, hmac_key, day, previous=previous, operator=operator)
    return True


def resolve_occurrences(
    engine: Engine,
    registry: Registry,
    hmac_key: bytes,
    day: date,
    *,
    previous: object | None,
    operator: Controls = Controls(),
) -> None:
    """From `occ` on the engine: blocked values (the registry's and the operators'), manual
    merges as records of rule `manual_merge`, the guarded graph with the never-merge pairs,
    stable ids and edges (identity_map, identity_updates, identity_edges, identity_blocked).
    `previous` is the last identity_map (Arrow or a DataFrame) or None."""
    if operator.merges:
        engine.small(
            "manual",
            ("rule", "record_key", "identifier_type", "identifier"),
            [
                ("manual_merge", f"{t1}:{v1}|{t2}:{v2}", t, v)
                for t1, v1, t2, v2 in operator.merges
                for t, v in ((t1, v1), (t2, v2))
            ],
        )
        engine.run(
            "occ",
            "select * from occ union all select rule, record_key, cast(null as timestamp) "
            "as seen_at, identifier_type, cast(null as string) as namespace, identifier "
            "from manual",
        )
    graph.block(engine, registry, hmac_key, list(operator.blocks))
    graph.build(engine, registry, list(operator.apart))
    if previous is not None:
        engine.register("previous", previous)
    ids.assign(engine, day, has_previous=previous is not None)
    ids.edges_out(engine)
    ids.record_one_ids(
        engine,
        "identity_records",
        "identity_map",
        [r.name for r in registry.rules if r.keep_records],
    )
    ids.customers(engine)
    engine.run(
        "identity_blocked",
        "select identifier_type, identifier, reason, 0 as profiles from blocked "
        "union all select identifier_type, identifier, reason, profiles from refused",
    )


def run_identity(logical_date: date, settings: Settings | None = None) -> dict:
    """Resolve every identity in silver as of now; write the identity tables. Returns counts."""
    settings = settings or get_settings()
    started = time.monotonic()
    registry = load_registry(settings.identity.registry)
    paths = rule_tables(registry, settings)
    matching_started = time.monotonic()
    matched = matching.match(registry, settings, paths)
    matching_seconds = time.monotonic() - matching_started
    engine = open_engine(settings, registry, paths)
    previous_path = lake.table_path("silver", "identity_map", settings)
    previous = _previous(engine, previous_path)
    if not resolve(
        engine,
        registry,
        set(paths),
        settings.hmac_key(),
        logical_date,
        previous=previous,
        operator=Controls.load(settings),
        matched=matched,
    ):
        return {"identity": "no silver table with identifiers yet"}
    _write(engine, settings, logical_date)
    counts = engine.rows(
        "select (select count(distinct one_id) from identity_map), "
        "(select count(*) from identity_map), (select count(*) from occ), "
        "(select count(*) from identity_blocked), (select count(*) from identity_matches)"
    )[0]
    changes = dict(engine.rows("select change, count(*) from identity_updates group by change"))
    return {
        "engine": engine.name,
        "profiles": counts[0],
        "identifiers": counts[1],
        "occurrences": counts[2],
        "blocked": counts[3],
        "matched_pairs": counts[4],
        "changes": changes,
        "seconds": round(time.monotonic() - started, 1),
        "matching_seconds": round(matching_seconds, 1),
    }


def _previous(engine: Engine, path: str):
    if not lake.is_delta(path):
        return None
    if isinstance(engine, SparkEngine):
        return engine.spark.read.format("delta").load(path).localCheckpoint()
    return lake.read_arrow(path)  # read now: this run replaces the table


def _write(engine: Engine, settings: Settings, logical_date: date) -> None:
    day = f"date '{logical_date.isoformat()}'"
    # Only the change feed is dated: the other tables are the state of all of silver now,
    # whichever day's run wrote them (a rerun of an older day writes the same state).
    engine.run("identity_updates", f"select *, {day} as _logical_date from identity_updates")
    path = {name: lake.table_path("silver", name, settings) for name in TABLES}
    if isinstance(engine, SparkEngine):
        for name in REPLACED:
            lake.overwrite(engine.frame(name), path[name])
        lake.merge_upsert(
            engine.frame("identity_updates"), path["identity_updates"], keys=UPDATE_KEYS
        )
        return
    for name in REPLACED:
        lake.overwrite_arrow(engine.arrow(name), path[name])
    updates = engine.arrow("identity_updates")
    if updates.num_rows or not lake.is_delta(path["identity_updates"]):
        lake.merge_arrow(updates, path["identity_updates"], keys=UPDATE_KEYS)
