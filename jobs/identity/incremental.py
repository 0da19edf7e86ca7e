"""The daily delta of One-ID: re-resolve only the profiles a day's records can change.

Every guard of the graph (jobs/identity/graph.py) decides within the records one value joins:
a cap counts the profiles of a value's records, a per-profile limit the values of the profiles
a merge would join, a name veto the names those profiles hold. So resolving whole profiles with
every record of the values in question gives what resolving all of silver gives for them. A
day's run therefore:

1. reads the rows silver wrote since the last run (`_logical_date`), extracts their ids, and
   compares them with what the state (`silver.identity_occurrences`: every record's ids and
   one_id as of the last run) holds for the same records: the *changed* records (new ones, and
   old ones whose ids or time changed);
2. takes the records the changes can reach: the records sharing any of their values (before
   or after), and every record of the profiles all of these belong to. Values the last run
   blocked (the registry's junk and patterns, the operators' blocks, a phone busy on one day's
   orders) stay blocked and are not followed (a store's walk-in phone is on thousands of
   orders). A value of those profiles reaching records beyond them was refused before (an
   accepted value's records are all in one profile) and stays refused, for the reason it was:
   following it would chain household to household (half the records of the 1M world);
3. resolves those records as a full run would (guards, operator controls, stable ids against
   the previous map of those profiles) and splices it into the identity tables: the rows of
   every profile it touched are replaced, all others are left as they were. The state is not
   rewritten: the records re-resolved are appended whole as its next `layer`, and a record's
   current rows are those of the latest layer holding it (a full run writes layer 0 afresh).

What the delta does not see, a full run does: a refusal the day would lift for a value beyond
what it reached (a phone between two profiles whose names now agree), rows removed from silver
(an erasure) and a silver day rebuilt after a later day's identity run. A full run comes
whenever the registry or the operators' controls change, every `identity.full_every_days` days,
when the state is missing, or on `cdp identity run --full`. Tests resolve a world daily by the
delta and once in full and get the same profiles, one_ids and refusals.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from jobs.common import lake
from jobs.identity import graph
from jobs.identity.engine import Engine, quote, quote_list

if TYPE_CHECKING:
    from jobs.common.settings import Settings
    from jobs.identity.registry import Registry

STATE = "identity_occurrences"  # silver: rule, record_key, seen_at, type, namespace, id, one_id
RUNS = "identity_runs"  # ops: one row per run
# silver: the profiles each delta re-resolved (run_id, one_id: the closure's old profiles and
# the new ones), so the daily scores redo those customers and no others (jobs/marts/delta.py)
TOUCHED = "identity_touched"
MANUAL_RULE = "manual_merge"  # the records operators' merges add; never part of the state
MAX_CLOSURE_ROUNDS = 50  # each adds at least one value; a chain longer than this is a bug
OCC = "rule, record_key, seen_at, identifier_type, namespace, identifier"
KEY = "rule, record_key"
SPLICED = ("identity_map", "identity_edges", "identity_records", "customers")  # `<name>_spliced`
LAYER = "layer"  # of the state: 0, a full run's rows; n, what the n-th delta since re-resolved
RECORD_UNIT = "chr(29)"  # starts the closure's unit of a record of no profile (one_ids: C...)


def occ_columns(alias: str) -> str:
    """OCC's columns of the table `alias`."""
    return ", ".join(f"{alias}.{c}" for c in OCC.split(", "))


def _record_unit(alias: str) -> str:
    """The unit of the record of `alias` on its own (when it has no profile, or changed)."""
    return f"{RECORD_UNIT} || {alias}.rule || chr(31) || {alias}.record_key"


OCC_SCHEMA = (
    "rule string, record_key string, seen_at timestamp, identifier_type string, "
    "namespace string, identifier string"
)


@dataclass(frozen=True)
class LastRun:
    logical_date: date
    fingerprint: str
    full_date: date | None  # the latest full run's date


def fingerprint(registry: Registry, controls: object) -> str:
    """What decides a merge besides the data: the registry and the operators' controls."""
    text = registry.model_dump_json() + repr(controls)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def last_run(settings: Settings) -> LastRun | None:
    runs = lake.read_rows(lake.table_path("ops", RUNS, settings))
    if not runs:
        return None
    latest = max(runs, key=lambda r: r["finished_at"])
    fulls = [r["logical_date"] for r in runs if r["mode"] == "full"]
    return LastRun(latest["logical_date"], latest["fingerprint"], max(fulls) if fulls else None)


def record_run(settings: Settings, row: dict) -> None:
    import pyarrow as pa

    lake.append_arrow(pa.Table.from_pylist([row]), lake.table_path("ops", RUNS, settings))


def choose_mode(
    requested: str, last: LastRun | None, current: str, day: date, settings: Settings
) -> tuple[str, str]:
    """('full' | 'incremental', why)."""
    if requested == "full":
        return "full", "asked for"
    if last is None or not lake.is_delta(lake.table_path("silver", STATE, settings)):
        return "full", "no earlier run's state"
    if last.fingerprint != current:
        return "full", "the registry or the operators' controls changed"
    every = settings.identity.full_every_days
    if requested == "auto" and (
        every == 0 or last.full_date is None or (day - last.full_date).days >= every
    ):
        return "full", f"a full run every {every} days"
    return "incremental", "the day's rows"


def since(last: LastRun, day: date) -> date:
    """The first `_logical_date` the delta reads: the day after the last run's, or the day
    itself when it is a rerun or a backfill."""
    return day if day <= last.logical_date else last.logical_date + timedelta(days=1)


def current_state(written: str) -> str:
    """SQL of the state's rows as of the last run from `written`, the table as written with its
    `layer`: each record's rows of the latest layer holding it. A full run writes the state
    whole as layer 0; a delta appends the records it re-resolved as the next layer instead of
    rewriting every record (15M rows at the 1M world, for 3% of them). Rows written before
    layers existed (no `layer`, or null once a layer was appended) are layer 0."""
    return (
        f"select {occ_columns('s')}, s.one_id from {written} s "
        f"left join (select {KEY}, max({LAYER}) as {LAYER} from {written} where {LAYER} > 0 "
        f"group by {KEY}) l on l.rule = s.rule and l.record_key = s.record_key "
        f"where coalesce(s.{LAYER}, 0) = coalesce(l.{LAYER}, 0)"
    )


def read_state(path: str):
    """The state as of the last run (Arrow), for a reader outside a run."""
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone='UTC'")
    con.register("written", lake.read_arrow(path))
    state = con.sql(current_state("written")).to_arrow_table()
    con.close()
    return state


# --- the changed records --------------------------------------------------------------------


def changed(
    engine: Engine, registry: Registry, tables: set[str], match_types: list[str], *, rematched: bool
) -> int:
    """`changed` (rule, record_key) and `new_occ` (their ids now) from the day's rows registered
    as `t_<table>` (those in `tables`) and the `state`. The values of `match_types` come from
    `match_occ` (all of them, as matching gave them now) when `rematched`; else the state's
    stand. Returns how many records changed."""
    keys = [
        f"select {quote(r.name)} as rule, {graph.record_key_sql(engine, r)} as record_key "
        f"from t_{r.table}"
        for r in registry.rules
        if r.table in tables
    ]
    if keys:
        graph.extract(engine, registry, tables)
        engine.run("day_records", "select distinct * from (" + " union all ".join(keys) + ") k")
    else:
        engine.empty("occ", OCC_SCHEMA)
        engine.empty("day_records", "rule string, record_key string")
    matched = quote_list(match_types)
    if not rematched:
        engine.run(
            "match_occ",
            f"select {occ_columns('s')} from state s join day_records d "
            f"on d.rule = s.rule and d.record_key = s.record_key "
            f"where s.identifier_type in ({matched})",
        )
    engine.run(
        "candidates",
        "select distinct rule, record_key from ("
        "select rule, record_key from day_records union all "
        "select rule, record_key from match_occ"
        + (
            f" union all select rule, record_key from state where identifier_type in ({matched})"
            if rematched
            else ""
        )
        + ") c",
    )
    engine.run(
        "candidate_state",
        "select s.* from state s join candidates c "
        "on c.rule = s.rule and c.record_key = s.record_key",
    )
    engine.run(
        "new_occ",
        f"""
        select {OCC} from occ where identifier_type not in ({matched})
        union all
        select {occ_columns("s")}
        from candidate_state s left join day_records d
          on d.rule = s.rule and d.record_key = s.record_key
        where d.rule is null and s.identifier_type not in ({matched})
        union all
        select {OCC} from match_occ
        """,
    )
    engine.run(
        "changed",
        f"select distinct {KEY} from ("
        f"(select {OCC} from new_occ except select {OCC} from candidate_state) union all "
        f"(select {OCC} from candidate_state except select {OCC} from new_occ)) d",
    )
    return engine.count("changed")


# --- the closure ----------------------------------------------------------------------------


def close(
    engine: Engine, merges: tuple[tuple[str, str, str, str], ...], evidence: list[str]
) -> int:
    """The records the day's changes can reach, on the engine:

    - `closure` (rule, record_key): the changed records, the records sharing a value with them
      (their values before and after, and an operator's merge partner of those), and every
      record of the profiles all of these belong to;
    - `closure_profiles` (one_id): those profiles, re-resolved whole;
    - `frozen` (identifier_type, identifier, reason): values of the closed records that also
      reach records beyond them. Such a value was refused before (an accepted value's records
      are all in one profile); its refusal stands, for the reason it was, so the closed set
      alone decides nothing about records it does not hold.

    Neither hubs (the last run's blocked values) nor values of the `evidence` types (names: they
    join nothing, and a profile's names come with it whole) are followed. A value reaching
    beyond that was not refused (a never-merge cut) is followed like a changed record's, and
    the closure taken again. The rounds run over *units*, not records: a profile, or a record
    of none (its ids all refused) on its own, so each round reads the state's 15M rows (at the
    1M world) only through joins with the small sets it grows. Returns the rounds it took."""
    engine.small(
        "manual_links",
        ("identifier_type", "identifier", "other_type", "other"),
        [m for t1, v1, t2, v2 in merges for m in ((t1, v1, t2, v2), (t2, v2, t1, v1))],
    )
    is_changed = (
        "exists (select 1 from changed c where c.rule = {0}.rule and c.record_key = {0}.record_key)"
    )
    engine.run(  # the changed records' ids now: each such record is a unit of its own
        "changed_occ",
        f"select n.*, {_record_unit('n')} as unit from new_occ n where {is_changed.format('n')}",
    )
    engine.view(  # the values of every unit
        "units",
        f"select identifier_type, identifier, coalesce(one_id, {_record_unit('s')}) as unit "
        "from state s union all select identifier_type, identifier, unit from changed_occ",
    )
    engine.run(  # the changed records' rows in the state (among the day's candidates)
        "changed_state",
        "select s.* from candidate_state s "
        "join changed c on c.rule = s.rule and c.record_key = s.record_key",
    )
    engine.run(
        "seeds",
        "select distinct identifier_type, identifier from changed_state "
        "union select identifier_type, identifier from changed_occ",
    )
    engine.run(  # the units the changed records were and are
        "changed_units",
        f"select distinct coalesce(s.one_id, {_record_unit('s')}) as unit from changed_state s "
        "union select unit from changed_occ",
    )
    rounds = 1
    while _reach(engine, evidence):
        if rounds == MAX_CLOSURE_ROUNDS:
            raise RuntimeError(
                f"identity delta: the closure still grew after {MAX_CLOSURE_ROUNDS} rounds"
            )
        engine.run("seeds", "select * from seeds union select * from unexplained")
        rounds += 1
    engine.run(
        "frozen",
        "select b.identifier_type, b.identifier, min(k.reason) as reason from beyond b "
        "join old_identity_blocked k on k.identifier_type = b.identifier_type "
        "and k.identifier = b.identifier group by b.identifier_type, b.identifier",
    )
    engine.run(
        "closure_profiles",
        f"select unit as one_id from closure_units where substr(unit, 1, 1) <> {RECORD_UNIT}",
    )
    engine.run(
        "closure", "select distinct rule, record_key from closure_state union select * from changed"
    )
    return rounds


def _reach(engine: Engine, evidence: list[str]) -> int:
    """One round of `close` from `seeds`: `closure_units`, `closure_state` (the state's rows of
    those units), `closure_values`, `beyond` and `unexplained`; returns how many values are
    unexplained."""
    followed = f"identifier_type not in ({quote_list(evidence)})"
    not_hub = (
        "not exists (select 1 from hubs h where h.identifier_type = {0}.identifier_type "
        "and h.identifier = {0}.identifier)"
    )
    engine.run(
        "seeds",
        "select distinct identifier_type, identifier from ("
        "select identifier_type, identifier from seeds union all "
        "select m.other_type, m.other from manual_links m join seeds i "
        "on i.identifier_type = m.identifier_type and i.identifier = m.identifier) x "
        f"where {not_hub.format('x')} and x.{followed}",
    )
    engine.run(
        "closure_units",
        "select distinct u.unit from units u join seeds i "
        "on i.identifier_type = u.identifier_type and i.identifier = u.identifier "
        "union select unit from changed_units",
    )
    engine.run(
        "closure_state",
        "select s.* from state s join closure_units c "
        f"on c.unit = coalesce(s.one_id, {_record_unit('s')})",
    )
    engine.run(
        "closure_values",
        "select distinct identifier_type, identifier from (select identifier_type, identifier "
        "from closure_state union all select identifier_type, identifier from changed_occ) u "
        f"where {not_hub.format('u')} and u.{followed}",
    )
    engine.run(
        "beyond",
        "select distinct v.identifier_type, v.identifier from closure_values v "
        "join units u on u.identifier_type = v.identifier_type and u.identifier = v.identifier "
        "where not exists (select 1 from closure_units c where c.unit = u.unit)",
    )
    engine.run(
        "unexplained",
        "select b.identifier_type, b.identifier from beyond b "
        "left join old_identity_blocked k on k.identifier_type = b.identifier_type "
        "and k.identifier = b.identifier where k.identifier is null",
    )
    return engine.count("unexplained")


def closure_occ(engine: Engine, evidence: list[str]) -> None:
    """`occ` of the closed records: the state's for the unchanged, `new_occ` for the changed;
    `previous` cut to the profiles they had; `carried`: the hubs among their values and the
    frozen ones, refused again for the reason they were (the closed set alone would not show
    why); `closure_ids`: their values that are decided again (neither hubs, names nor
    frozen)."""
    engine.run(
        "occ",
        f"select {occ_columns('s')} from closure_state s "
        "left join changed x on x.rule = s.rule and x.record_key = s.record_key "
        f"where x.rule is null union all select {OCC} from changed_occ",
    )
    engine.run(
        "previous",
        "select p.* from old_identity_map p join closure_profiles c on c.one_id = p.one_id",
    )
    engine.run(
        "carried",
        "select distinct h.identifier_type, h.identifier, h.reason from hubs h "
        "join occ o on o.identifier_type = h.identifier_type and o.identifier = h.identifier "
        "union select identifier_type, identifier, reason from frozen",
    )
    engine.run(
        "closure_ids",
        "select distinct o.identifier_type, o.identifier from occ o "
        "left join carried k on k.identifier_type = o.identifier_type "
        "and k.identifier = o.identifier "
        f"where k.identifier is null and o.identifier_type not in ({quote_list(evidence)})",
    )


# --- splicing the closed set's tables into the old ones -------------------------------------


def splice(engine: Engine) -> None:
    """The identity tables of all of silver from the old ones (`old_<table>`) and the closed
    set's: every row of a profile, record or value the closure touched is replaced. The tables
    of `SPLICED` as views `<name>_spliced`, computed as they are written; identity_blocked in
    place. (The state is not spliced: the run appends `state_out` as a layer.)"""
    gone = "select one_id from closure_profiles"
    for name in ("identity_map", "identity_edges", "customers"):
        # Only written: views, computed as they are written.
        engine.view(
            f"{name}_spliced",
            f"select o.* from old_{name} o left join ({gone}) g on g.one_id = o.one_id "
            f"where g.one_id is null union all select * from {name}",
        )
    engine.view(
        "identity_records_spliced",
        "select o.* from old_identity_records o left join closure c "
        "on c.rule = o.rule and c.record_key = o.record_key where c.rule is null "
        "union all select * from identity_records",
    )
    engine.run(
        "identity_blocked",
        """
        select o.* from old_identity_blocked o
        left join (select identifier_type, identifier from closure_ids
                   union select identifier_type, identifier from identity_blocked) t
          on t.identifier_type = o.identifier_type and t.identifier = o.identifier
        left join carried k
          on k.identifier_type = o.identifier_type and k.identifier = o.identifier
        where t.identifier is null or k.identifier is not null
        union all
        select b.* from identity_blocked b left join carried k
          on k.identifier_type = b.identifier_type and k.identifier = b.identifier
        where k.identifier is null
        """,
    )


# --- checking the delta against a full run --------------------------------------------------


def partition_diff(left: object, right: object) -> dict:
    """How two identity maps (Arrow tables) group identifiers differently, whatever their ids:
    each identifier is labeled by the least identifier of its profile, and the counts are of
    identifiers labeled differently or present on one side only."""
    import duckdb

    con = duckdb.connect()
    con.register("a", left)
    con.register("b", right)
    label = (
        "select identifier_type || chr(31) || identifier as node, min(identifier_type || "
        "chr(31) || identifier) over (partition by one_id) as label from {}"
    )
    row = con.execute(
        f"""
        with la as ({label.format("a")}), lb as ({label.format("b")})
        select count(*) filter (where la.node is null),
               count(*) filter (where lb.node is null),
               count(*) filter (where la.label <> lb.label),
               count(*)
        from la full join lb on la.node = lb.node
        """
    ).fetchall()[0]
    con.close()
    return {"only_right": row[0], "only_left": row[1], "regrouped": row[2], "identifiers": row[3]}
