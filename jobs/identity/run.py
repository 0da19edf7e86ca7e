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
- `silver.identity_records`: the one_id of each record of the rules that keep them (orders, events,
  member lists): what the marts join orders by.
- `silver.identity_matches`: the member-list pairs probabilistic matching linked
  (jobs/identity/matching.py), with their match probability and how each field compared.
- `silver.customers`: one row per one_id (since when, identifiers, latest phone token, card).
- `silver.identity_occurrences`: every record's ids and one_id, the state the daily delta
  starts from; `silver.identity_models`: each matching's Splink model, as a full run trained
  it; `ops.identity_runs`: each run's id, date, mode and what it changed;
  `silver.identity_touched`: the profiles each delta re-resolved (what the scores redo).

Where it runs (jobs/identity/engine.py): in this process on DuckDB when the rules' silver tables
hold at most `identity.max_in_memory_edges` records, on Spark beyond. A day's run resolves only
what the day's rows can change (jobs/identity/incremental.py); a full run resolves all of silver
and trains the matching models again.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from jobs.common import lake
from jobs.common.settings import Settings, get_settings
from jobs.identity import controls, graph, ids, incremental, matching
from jobs.identity.engine import DuckEngine, Engine, SparkEngine, quote, quote_list
from jobs.identity.registry import Registry, load_registry

TABLES = (
    "identity_map",
    incremental.STATE,
    "identity_matches",
    "identity_edges",
    "identity_updates",
    "identity_blocked",
    "identity_records",
    "customers",
)
REPLACED = tuple(t for t in TABLES if t != "identity_updates")
UPDATE_KEYS = ["_logical_date", "change", "old_one_id", "new_one_id"]
MATCHES_SCHEMA = (
    "matching string, record_l string, record_r string, match_probability double, "
    "match_weight double, levels string, cluster string"
)


def rule_tables(registry: Registry, settings: Settings) -> dict[str, str]:
    """silver table -> its path, for the tables the rules read that exist."""
    paths = {r.table: lake.table_path("silver", r.table, settings) for r in registry.rules}
    return {name: path for name, path in paths.items() if lake.is_delta(path)}


def rule_columns(registry: Registry, table: str, path: str) -> list[str]:
    """The columns of a silver table the rules read (named, or words of their `where`)."""
    from deltalake import DeltaTable

    present = DeltaTable(path).schema().to_arrow().names
    wanted: set[str] = set()
    for rule in registry.rules:
        if rule.table == table:
            wanted |= rule.named_columns() | rule.mentioned_words()
    return [c for c in present if c in wanted]


def open_engine(
    settings: Settings, registry: Registry, paths: dict[str, str], where: str | None = None
) -> Engine:
    """DuckDB over the tables' Arrow datasets when they are small enough, else Spark; the
    tables' rows matching `where` (a SQL predicate), or all."""
    rows = lake.table_rows(paths.values())
    if rows <= settings.identity.max_in_memory_edges:
        temp = Path(settings.var_dir) / "tmp" / "identity"
        temp.mkdir(parents=True, exist_ok=True)
        engine: Engine = DuckEngine(temp_dir=str(temp))
        for name, path in paths.items():
            # The columns the rules read, by delta-rs (DuckDB's filters pushed into a pyarrow
            # dataset trip over delta-rs's string_view statistics).
            engine.register(
                f"t_{name}",
                lake.read_arrow(path, where, columns=rule_columns(registry, name, path)),
            )
        return engine
    from jobs.common.spark import get_spark

    spark = get_spark()
    # Spark for small tables only when asked (max_in_memory_edges 0): small-data settings then.
    small = rows <= settings.silver.arrow_max_rows
    engine = SparkEngine(spark, settings.identity.max_in_memory_edges, small=small)
    for name, path in paths.items():
        frame = spark.read.format("delta").load(path)
        engine.register(f"t_{name}", frame.where(where) if where else frame)
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
    matched: matching.Matched | None = None,
) -> bool:
    """The whole resolution on an engine: extraction (False when no rule's table exists), the
    values probabilistic matching gave (`matched`, from `matching.match`), then
    `resolve_occurrences`."""
    if not graph.extract(engine, registry, tables):
        return False
    occ, pairs = (matched.occ, matched.pairs) if matched else (None, None)
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
        engine.empty("identity_matches", MATCHES_SCHEMA)
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
    carried: bool = False,
) -> None:
    """From `occ` on the engine: blocked values (the registry's, the operators' and, when
    `carried`, the table `carried`'s), manual merges as records of rule `manual_merge`, the
    guarded graph with the never-merge pairs, stable ids and edges (identity_map,
    identity_updates, identity_edges, identity_blocked). `previous` is the last identity_map
    (Arrow, a DataFrame or the name of a table on the engine) or None."""
    if operator.merges:
        engine.small(
            "manual",
            ("rule", "record_key", "identifier_type", "identifier"),
            [
                (incremental.MANUAL_RULE, f"{t1}:{v1}|{t2}:{v2}", t, v)
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
    graph.block(engine, registry, hmac_key, list(operator.blocks), carried=carried)
    graph.build(engine, registry, list(operator.apart))
    if previous is not None and not isinstance(previous, str):
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
        "select identifier_type, identifier, reason, 0 as profiles, 'blocked' as guard "
        "from blocked union all select identifier_type, identifier, reason, profiles, "
        f"case when reason like {quote(graph.SHARED + '%')} then 'shared' else 'refused' end "
        "as guard from refused",
    )


def run_identity(
    logical_date: date,
    settings: Settings | None = None,
    *,
    mode: str = "auto",
    retrain: bool = True,
) -> dict:
    """Resolve the identities of silver as of now and write the identity tables. `mode`: `auto`
    (the daily delta when the last run's state allows, jobs/identity/incremental.py; else all
    of silver), `full` or `incremental` (the delta whenever there is state). A full run trains
    the matching models again unless not `retrain` (then it scores with the saved ones, as the
    delta does). Returns counts."""
    settings = settings or get_settings()
    started = time.monotonic()
    registry = load_registry(settings.identity.registry)
    operator = Controls.load(settings)
    current = incremental.fingerprint(registry, operator)
    last = incremental.last_run(settings)
    chosen, why = incremental.choose_mode(mode, last, current, logical_date, settings)
    run_id = uuid.uuid4().hex
    if chosen == "incremental":
        result = _run_delta(logical_date, settings, registry, operator, last, run_id)
    else:
        result = _run_full(logical_date, settings, registry, operator, retrain=retrain)
    if result is None:
        return {"identity": "no silver table with identifiers yet"}
    result = {"mode": chosen, "why": why, **result}
    result["seconds"] = round(time.monotonic() - started, 1)
    incremental.record_run(
        settings,
        {
            "run_id": run_id,
            "logical_date": logical_date,
            "mode": chosen,
            "fingerprint": current,
            "finished_at": datetime.now(UTC),
            "seconds": float(result["seconds"]),
            "changed_records": int(result.get("changed_records", -1)),
            "closure_records": int(result.get("closure_records", -1)),
            "profiles": int(result["profiles"]),
        },
    )
    return result


def _run_full(
    logical_date: date, settings: Settings, registry: Registry, operator: Controls, *, retrain: bool
) -> dict | None:
    paths = rule_tables(registry, settings)
    matching_started = time.monotonic()
    matched = matching.match(registry, settings, paths, **({} if retrain else _models(settings)))
    matching_seconds = time.monotonic() - matching_started
    with open_engine(settings, registry, paths) as engine:
        previous = _previous(engine, lake.table_path("silver", "identity_map", settings))
        if not resolve(
            engine,
            registry,
            set(paths),
            settings.hmac_key(),
            logical_date,
            previous=previous,
            operator=operator,
            matched=matched,
        ):
            return None
        _state_out(engine, layer=0)
        _write(engine, settings, logical_date, with_matches=True)
        _write_models(matched, settings, logical_date)
        return {
            **_counts(engine),
            "matching_seconds": round(matching_seconds, 1),
        }


def _run_delta(
    logical_date: date,
    settings: Settings,
    registry: Registry,
    operator: Controls,
    last: incremental.LastRun,
    run_id: str,
) -> dict | None:
    """The daily delta (jobs/identity/incremental.py) on the engine the tables' size asks for."""
    paths = rule_tables(registry, settings)
    first = incremental.since(last, logical_date)
    day_rows = f"_logical_date >= DATE '{first.isoformat()}'"
    with open_engine(settings, registry, paths, where=day_rows) as engine:
        return _delta(engine, logical_date, settings, registry, operator, paths, run_id)


def _delta(
    engine: Engine,
    logical_date: date,
    settings: Settings,
    registry: Registry,
    operator: Controls,
    paths: dict[str, str],
    run_id: str,
) -> dict | None:
    """The delta on the engine holding the day's rows of the rule tables (`t_<table>`)."""
    day_tables = {n for n in paths if engine.count(f"t_{n}")}
    member_tables = {
        r.table for m in registry.matching for r in registry.rules if r.name in m.rules
    }
    match_types = sorted({m.type for m in registry.matching})
    rematched = bool(day_tables & member_tables)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Matching runs on a DuckDB of its own, beside the reading of the last run's tables.
        matching_started = time.monotonic()
        if rematched:
            fresh = " union all ".join(
                f"select {quote(r.name)} as rule, {graph.record_key_sql(engine, r)} as record_key "
                f"from t_{r.table}"
                for m in registry.matching
                for r in registry.rules
                if r.name in m.rules and r.table in day_tables
            )
            engine.run("fresh_members", fresh)
            scoring = pool.submit(
                matching.match,
                registry,
                settings,
                paths,
                **_models(settings),
                fresh=_arrow(engine, "fresh_members"),
                old_pairs=_read(lake.table_path("silver", "identity_matches", settings)),
            )
        for name in ("identity_map", "identity_blocked"):
            _register_old(engine, f"old_{name}", lake.table_path("silver", name, settings))
        layer = _register_state(engine, lake.table_path("silver", incremental.STATE, settings))
        engine.run(
            "hubs",
            "select identifier_type, identifier, reason from old_identity_blocked "
            "where guard = 'blocked'",
        )
        matched = scoring.result() if rematched else None
        matching_seconds = time.monotonic() - matching_started if rematched else 0.0
    if rematched:
        if matched is not None:
            engine.register("match_occ", matched.occ)
            engine.register("identity_matches", matched.pairs)
        else:
            engine.empty("match_occ", incremental.OCC_SCHEMA)
            engine.empty("identity_matches", MATCHES_SCHEMA)
        _write_models(matched, settings, logical_date)
    n_changed = incremental.changed(engine, registry, day_tables, match_types, rematched=rematched)
    counts = {"changed_records": n_changed, "matching_seconds": round(matching_seconds, 1)}
    if n_changed == 0:
        if rematched:
            _write_matches(engine, settings)
        return {**_counts(engine, unchanged=True), **counts, "closure_records": 0}
    for name in ("identity_edges", "identity_records", "customers"):  # read only to splice
        _register_old(engine, f"old_{name}", lake.table_path("silver", name, settings), view=True)
    evidence = [k for k, spec in registry.types.items() if spec.evidence]
    rounds = incremental.close(engine, operator.merges, evidence)
    incremental.closure_occ(engine, evidence)
    inside = {tuple(r) for r in engine.rows("select identifier_type, identifier from closure_ids")}
    within = Controls(
        blocks=operator.blocks,
        apart=operator.apart,
        merges=tuple(m for m in operator.merges if (m[0], m[1]) in inside),
    )
    resolve_occurrences(
        engine,
        registry,
        settings.hmac_key(),
        logical_date,
        previous="previous",
        operator=within,
        carried=True,
    )
    _state_out(engine, layer=layer)
    closure_records = engine.count("closure")
    incremental.splice(engine)
    _write(
        engine,
        settings,
        logical_date,
        with_matches=rematched,
        sources={name: f"{name}_spliced" for name in incremental.SPLICED},
        state_layer=True,
    )
    _write_touched(engine, settings, run_id)
    return {
        **_counts(engine, spliced=True),
        **counts,
        "closure_records": closure_records,
        "closure_profiles": engine.count("closure_profiles"),
        "closure_rounds": rounds,
    }


def _counts(engine: Engine, *, unchanged: bool = False, spliced: bool = False) -> dict:
    """The run's figures from the tables it wrote (`spliced`: the delta's), or (`unchanged`)
    from the old ones."""
    idmap, occurrences, blocked = (
        ("old_identity_map", "state", "old_identity_blocked")
        if unchanged
        else ("identity_map", "state_out", "identity_blocked")
    )
    profiles = f"(select count(distinct one_id) from {idmap})"
    identifiers = f"(select count(*) from {idmap})"
    occurrences = f"(select count(*) from {occurrences})"
    if spliced:  # the old tables' counts, less the closure's old rows, plus its new ones
        gone = "join closure_profiles c on c.one_id = o.one_id"
        profiles = (
            f"(select count(*) from old_customers) - (select count(*) from old_customers o {gone})"
            " + (select count(*) from customers)"
        )
        identifiers = (
            f"(select count(*) from old_identity_map) - "
            f"(select count(*) from old_identity_map o {gone}) + {identifiers}"
        )
        occurrences = (
            f"(select count(*) from state) - (select count(*) from closure_state) + {occurrences}"
        )
    counts = engine.rows(
        f"select {profiles}, {identifiers}, {occurrences}, (select count(*) from {blocked})"
    )[0]
    changes = (
        {}
        if unchanged
        else dict(engine.rows("select change, count(*) from identity_updates group by change"))
    )
    return {
        "engine": engine.name,
        "profiles": counts[0],
        "identifiers": counts[1],
        "occurrences": counts[2],
        "blocked": counts[3],
        "changes": changes,
    }


def _state_out(engine: Engine, *, layer: int) -> None:
    """`state_out`: every record of `occ` with its ids and the one_id it now has, as `layer` of
    the state (jobs/identity/incremental.py; a view, computed as it is written)."""
    ids.record_one_ids(engine, "record_ids", "identity_map")
    engine.view(
        "state_out",
        f"select {incremental.occ_columns('o')}, r.one_id, "
        f"cast({layer} as bigint) as {incremental.LAYER} "
        "from occ o join record_ids r "
        "on r.rule = o.rule and r.record_key = o.record_key "
        f"where o.rule <> {quote(incremental.MANUAL_RULE)}",
    )


def _register_old(engine: Engine, name: str, path: str, *, view: bool = False) -> None:
    """A table this run replaces, read before it does (DuckDB: the Parquet files of the
    current version, read natively; Spark: a checkpoint). On DuckDB, a `view` is read where it
    is used, for a table read once: its files stay until a vacuum, whatever the run writes."""
    if isinstance(engine, SparkEngine):
        engine.register(name, engine.spark.read.format("delta").load(path).localCheckpoint())
        return
    files = lake.parquet_files(path)
    if not files:  # not plain Parquet, or an empty table
        engine.register(name, lake.read_arrow(path))
        return
    engine.con.execute(
        f"create or replace {'view' if view else 'table'} {name} as select * from read_parquet("
        + f"[{quote_list(files)}], union_by_name = true)"
    )


def _register_state(engine: Engine, path: str) -> int:
    """`state`: the current rows of the delta's state (each record's latest layer); returns
    the layer this run appends."""
    from deltalake import DeltaTable

    names = DeltaTable(path).schema().to_arrow().names
    # A state written before layers has none (and null in its rows once a layer is appended).
    layer = f"coalesce({incremental.LAYER}, 0)" if incremental.LAYER in names else "0"
    _register_old(engine, "state_written", path, view=True)  # read once, by `state`
    engine.view(
        "state_layers",
        f"select {incremental.OCC}, one_id, cast({layer} as bigint) as {incremental.LAYER} "
        "from state_written",
    )
    engine.run("state", incremental.current_state("state_layers"))
    return int(engine.rows(f"select coalesce(max({layer}), 0) from state_written")[0][0]) + 1


def _previous(engine: Engine, path: str):
    if not lake.is_delta(path):
        return None
    if isinstance(engine, SparkEngine):
        return engine.spark.read.format("delta").load(path).localCheckpoint()
    return lake.read_arrow(path)  # read now: this run replaces the table


def _write(
    engine: Engine,
    settings: Settings,
    logical_date: date,
    *,
    with_matches: bool,
    sources: dict[str, str] | None = None,
    state_layer: bool = False,
) -> None:
    """The identity tables from the engine's tables of their names or, for the names in
    `sources`, of the names given; the state from `state_out`: the whole state, or
    (`state_layer`) a layer appended to it."""
    day = f"date '{logical_date.isoformat()}'"
    # Only the change feed is dated: the other tables are the state of all of silver now,
    # whichever day's run wrote them (a rerun of an older day writes the same state).
    engine.run("identity_updates", f"select *, {day} as _logical_date from identity_updates")
    source = {incremental.STATE: "state_out", **(sources or {})}
    skipped = ({"identity_matches"} if not with_matches else set()) | (
        {incremental.STATE} if state_layer else set()
    )
    replaced = [n for n in REPLACED if n not in skipped]
    path = {name: lake.table_path("silver", name, settings) for name in TABLES}
    if isinstance(engine, SparkEngine):
        for name in replaced:
            lake.overwrite(engine.frame(source.get(name, name)), path[name])
        if state_layer:
            lake.append(engine.frame("state_out"), path[incremental.STATE])
        lake.merge_upsert(
            engine.frame("identity_updates"), path["identity_updates"], keys=UPDATE_KEYS
        )
        return
    for name in replaced:
        lake.overwrite_arrow(engine.utc_batches(source.get(name, name)), path[name])
    if state_layer:
        lake.append_arrow(engine.utc_batches("state_out"), path[incremental.STATE])
    updates = engine.utc_arrow("identity_updates")
    if updates.num_rows or not lake.is_delta(path["identity_updates"]):
        lake.merge_arrow(updates, path["identity_updates"], keys=UPDATE_KEYS)


def _write_touched(engine: Engine, settings: Settings, run_id: str) -> None:
    """The profiles the delta re-resolved, old and new, under the run's id (appended)."""
    engine.run(
        "touched",
        f"select distinct {quote(run_id)} as run_id, one_id from ("
        "select one_id from closure_profiles union all select one_id from customers) t",
    )
    path = lake.table_path("silver", incremental.TOUCHED, settings)
    if isinstance(engine, SparkEngine):
        lake.append(engine.frame("touched"), path)
    else:
        lake.append_arrow(engine.utc_arrow("touched"), path)


def _write_matches(engine: Engine, settings: Settings) -> None:
    path = lake.table_path("silver", "identity_matches", settings)
    if isinstance(engine, SparkEngine):
        lake.overwrite(engine.frame("identity_matches"), path)
    else:
        lake.overwrite_arrow(engine.utc_arrow("identity_matches"), path)


MODELS = "identity_models"  # silver: each matching's Splink model, as the last full run trained
FREQUENCIES = "identity_name_frequencies"  # silver: the models' name frequencies, by token


def _write_models(matched: matching.Matched | None, settings: Settings, day: date) -> None:
    """The models and name frequencies a run trained (a run that scored with saved ones writes
    nothing)."""
    import pyarrow as pa

    if matched is None or not matched.trained:
        return
    names = sorted(matched.models)
    lake.overwrite_arrow(
        pa.table(
            {
                "matching": names,
                "model": [matched.models[n] for n in names],
                "trained_on": pa.array([day] * len(names), pa.date32()),
            }
        ),
        lake.table_path("silver", MODELS, settings),
    )
    if matched.frequencies is not None:
        lake.overwrite_arrow(matched.frequencies, lake.table_path("silver", FREQUENCIES, settings))


def _models(settings: Settings) -> dict:
    """`matching.match`'s arguments to score with the saved models (none saved: train)."""
    rows = _read(lake.table_path("silver", MODELS, settings))
    if rows is None:
        return {}
    return {
        "models": {r["matching"]: r["model"] for r in rows.to_pylist()},
        "frequencies": _read(lake.table_path("silver", FREQUENCIES, settings)),
    }


def _read(path: str):
    return lake.read_arrow(path) if lake.is_delta(path) else None


def _arrow(engine: Engine, name: str):
    if isinstance(engine, SparkEngine):
        return engine.frame(name).toArrow()
    return engine.arrow(name)
