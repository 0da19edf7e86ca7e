"""One-ID's identity graph as SQL steps on an engine (jobs/identity/engine.py): the ids every
silver record carries, the values never used, and the profiles the guarded graph forms.

The graph is bipartite: a *signature* (the set of ids some records carry together: thirty page
views from one logged-in phone are one signature) links to each of its ids. A connected component
is a profile. Values join the graph one identifier type at a time, in the registry's priority
order, so the most trusted ids form the profiles first and a later value can only join them:

- a value seen with more identified profiles than its type's `max_profiles` (the cap) is a shared
  value (a store tablet, a clerk's phone, a household's landline) and is refused;
- a value whose merge would put more than `max_per_profile` values of any type into one profile
  (two member cards, two openids of one app, a fourth phone) is refused: a household's phone
  shared by two members with their own cards joins neither to the other;
- values accepted together are checked together (two phones that each join fine can jointly
  join two cards): those bridging a profile that broke a limit are refused; where a profile just
  collects too many values of the type, all but those on the most records.

A stage costs what it adds, not the graph so far: the components of its accepted edges are
found with each end standing for the profile it already belongs to, and the limits are checked
only in the profiles the stage grew (the others held after the stage before).

A refused value is no merge key (`identity_blocked` says why); its records still belong to the
profile their other ids reach. Why not a probabilistic model here: these are deterministic keys
whose meaning is the same for every brand; names, birthdays and addresses are fuzzy evidence and
belong to the probabilistic rules.

Tables each step leaves on the engine: occ, blocked, records (rule, record_key, sig, first_seen,
last_seen), sig_nodes, nodes, edges (accepted sig-node pairs), labels (vertex, component),
refused (node, identifier_type, identifier, reason, profiles).
"""

from __future__ import annotations

from jobs.common.errors import CdpError
from jobs.common.progress import track
from jobs.identity.engine import Engine, quote, quote_list
from jobs.identity.registry import Registry, Rule, RuleId

SIG = "#"  # signature vertex ids start with it (node ids start with a type name)
SEP = "\x1f"  # a node id is its type, the unit separator (chr(31)), its value
NODE = "identifier_type || chr(31) || identifier"
MAX_JOINT_ROUNDS = 20  # each round refuses at least one value; more is a broken input
SHARED = "shared: "  # how a value over its type's cap is refused (identity_blocked's reason)


# --- extraction -----------------------------------------------------------------------------


def extract(engine: Engine, registry: Registry, tables: set[str]) -> bool:
    """`occ` (rule, record_key, seen_at, identifier_type, namespace, identifier): every id of
    every record the rules read, from the silver tables registered as `t_<table>` (those in
    `tables`; a rule whose table does not exist yet is skipped). False when no rule applies. A
    rule naming a column the table lacks fails, naming the rule and column."""
    parts = [_rule_sql(engine, rule, registry) for rule in registry.rules if rule.table in tables]
    if not parts:
        return False
    engine.run("occ", " union all ".join(parts))
    return True


def _rule_sql(engine: Engine, rule: Rule, registry: Registry) -> str:
    source = f"t_{rule.table}"
    columns = engine.columns(source)
    missing = sorted(rule.named_columns() - set(columns))
    if missing:
        raise CdpError(
            f"identity rule {rule.name}: silver.{rule.table} has no column(s) {', '.join(missing)}"
        )
    record_key = record_key_sql(engine, rule)
    scoped = [name for name, spec in registry.types.items() if spec.scoped]
    selects = []
    for rule_id in rule.ids:
        kind, namespace, value = _id_sql(rule_id)
        identifier = value
        if scoped:
            listed = quote_list(scoped)
            identifier = (
                f"case when ({kind}) in ({listed}) and ({namespace}) is not null "
                f"then ({namespace}) || ':' || ({value}) else ({value}) end"
            )
        selects.append(
            f"select {quote(rule.name)} as rule, {record_key} as record_key, "
            f"cast({rule.seen} as timestamp) as seen_at, {kind} as identifier_type, "
            f"{namespace} as namespace, {identifier} as identifier from {source}"
            + (f" where ({rule.where})" if rule.where else "")
        )
    body = " union all ".join(selects)
    return (
        f"select * from ({body}) ids_{rule.name} "
        "where identifier is not null and identifier_type is not null"
    )


def record_key_sql(engine: Engine, rule: Rule) -> str:
    """SQL of a record's key over `t_<table>`: its `record` columns joined by '|' (a timestamp
    as its epoch seconds)."""
    columns = engine.columns(f"t_{rule.table}")
    keys = [
        engine.epoch(c) if columns[c].startswith("timestamp") else f"cast({c} as string)"
        for c in rule.record
    ]
    return "concat_ws('|', " + ", ".join(f"coalesce({k}, '')" for k in keys) + ")"


def _blank_to_null(column: str) -> str:
    return f"nullif(trim(cast({column} as string)), '')"


def _id_sql(rule_id: RuleId) -> tuple[str, str, str]:
    """(type, namespace, value) SQL of one id column of a rule."""
    value = _blank_to_null(rule_id.column)
    namespace = "cast(null as string)"
    if rule_id.namespace:
        namespace = _blank_to_null(rule_id.namespace)
    elif rule_id.namespace_prefix:
        p = rule_id.namespace_prefix
        qualified = f"regexp_extract({value}, '^([^{p}]+){p}.', 1) <> ''"
        namespace = f"case when {qualified} then regexp_extract({value}, '^([^{p}]+){p}', 1) end"
        value = (
            f"case when {qualified} then regexp_extract({value}, '^[^{p}]+{p}(.*)$', 1) "
            f"else {value} end"
        )
    if rule_id.when:
        value = f"case when ({rule_id.when}) then {value} end"
    if rule_id.type:
        kind = quote(rule_id.type)
    else:
        whens = " ".join(f"when {quote(k)} then {quote(v)}" for k, v in rule_id.types.items())
        kind = f"case {_blank_to_null(rule_id.type_from)} {whens} end"
    return kind, namespace, value


# --- blocked values -------------------------------------------------------------------------


def block(
    engine: Engine,
    registry: Registry,
    hmac_key: bytes,
    controls: list[tuple] = (),
    *,
    carried: bool = False,
) -> None:
    """`blocked` (identifier_type, identifier, reason): the registry's blocked values among
    `occ` (the exact values, junk phones and e-mails as their tokens, and the patterns), the
    operators' (`controls`: identifier_type, identifier, reason rows) and, when `carried`, the
    rows of the table `carried` (a daily delta's values an earlier run refused)."""
    listed = [
        (kind, value, "blocked value (registry)")
        for kind, values in registry.blocked_values(hmac_key).items()
        for value in sorted(values)
    ]
    listed += [(kind, value, f"blocked by an operator: {why}") for kind, value, why in controls]
    engine.small("listed", ("identifier_type", "identifier", "reason"), listed)
    parts = [
        "select distinct o.identifier_type, o.identifier, l.reason from occ o "
        "join listed l on l.identifier_type = o.identifier_type and l.identifier = o.identifier"
    ]
    if carried:
        parts.append("select identifier_type, identifier, reason from carried")
    for kind, spec in registry.types.items():
        for rule, limit in spec.blocked.max_daily_records.items():
            parts.append(
                f"select distinct identifier_type, identifier, "
                f"{quote(f'on more than {limit} {rule} records in one day (registry)')} "
                f"as reason from (select identifier_type, identifier, cast(seen_at as date) as d "
                f"from occ where identifier_type = {quote(kind)} and rule = {quote(rule)} "
                f"group by identifier_type, identifier, cast(seen_at as date) "
                f"having count(distinct record_key) > {int(limit)}) busy"
            )
        for pattern in spec.blocked.patterns:
            parts.append(
                f"select distinct identifier_type, identifier, "
                f"{quote(f'blocked pattern {pattern} (registry)')} as reason from occ "
                f"where identifier_type = {quote(kind)} and {engine.matches('identifier', pattern)}"
            )
    engine.run(
        "blocked",
        "select identifier_type, identifier, min(reason) as reason from ("
        + " union all ".join(parts)
        + ") b group by identifier_type, identifier",
    )
    followers = [
        (kind, other) for kind, spec in registry.types.items() for other in spec.blocked.with_types
    ]
    if followers:
        pairs = " or ".join(
            f"(o.identifier_type = {quote(kind)} and b.identifier_type = {quote(other)})"
            for kind, other in followers
        )
        engine.run(
            "blocked",
            f"""
            select identifier_type, identifier, min(reason) as reason from (
                select identifier_type, identifier, reason from blocked
                union all
                select distinct o.identifier_type, o.identifier,
                       'seen on blocked ' || b.identifier_type || ' ' || b.identifier as reason
                from occ o
                join occ ob on ob.rule = o.rule and ob.record_key = o.record_key
                join blocked b on b.identifier_type = ob.identifier_type
                              and b.identifier = ob.identifier
                where {pairs}
            ) f group by identifier_type, identifier
            """,
        )


# --- the graph ------------------------------------------------------------------------------


def build(engine: Engine, registry: Registry, apart: list[tuple[str, str, str, str]] = ()) -> None:
    """The guarded identity graph of `occ` less `blocked` (see the module docstring). `apart`:
    pairs of identifiers (type, value, other type, other value) never in one profile."""
    engine.small(
        "apart",
        ("a", "b"),
        [(f"{t1}{SEP}{v1}", f"{t2}{SEP}{v2}") for t1, v1, t2, v2 in apart],
    )
    listed = quote_list(k for k, spec in registry.types.items() if spec.evidence)
    engine.run(
        "kept",
        f"select o.* from (select *, {NODE} as node from occ) o "
        "left join blocked b on b.identifier_type = o.identifier_type "
        f"and b.identifier = o.identifier where b.identifier is null "
        f"and o.identifier_type not in ({listed})",
    )
    sig = engine.sha(engine.sorted_join("node", "chr(30)"))
    engine.run(
        "records",
        f"select rule, record_key, '{SIG}' || substr({sig}, 1, 32) as sig, "
        "min(seen_at) as first_seen, max(seen_at) as last_seen from kept group by rule, record_key",
    )
    engine.run(
        "sig_nodes",
        "select distinct r.sig, k.node from kept k "
        "join records r on r.rule = k.rule and r.record_key = k.record_key",
    )
    engine.run(
        "evidence",
        "select distinct r.sig, o.identifier_type, o.identifier from occ o "
        "join records r on r.rule = o.rule and r.record_key = o.record_key "
        f"where o.identifier_type in ({listed})",
    )
    engine.run(
        "nodes",
        "select node, identifier_type, identifier, min(namespace) as namespace, "
        "min(seen_at) as first_seen, max(seen_at) as last_seen, "
        "count(distinct rule || chr(30) || record_key) as records "
        "from kept group by node, identifier_type, identifier",
    )
    engine.small(
        "limits",
        ("identifier_type", "max_per_profile", "per_namespace", "priority"),
        [
            (k, s.max_per_profile, int(s.per_namespace), registry.priority[k])
            for k, s in registry.types.items()
        ],
    )
    engine.run(
        "buckets",
        "select distinct k.node, k.identifier_type, case when l.per_namespace = 1 "
        "then coalesce(k.namespace, '') else '' end as bucket from kept k "
        "join limits l on l.identifier_type = k.identifier_type",
    )
    engine.run("support", "select node, count(*) as support from sig_nodes group by node")
    engine.run(
        "typed",
        "select s.sig, s.node, n.identifier_type from sig_nodes s join nodes n on n.node = s.node",
    )
    engine.empty("edges", "sig string, node string")
    engine.empty("labels", "vertex string, component string")
    engine.empty("refused", "node string, reason string, profiles bigint")
    present = {r[0] for r in engine.rows("select distinct identifier_type from nodes")}
    stages = [k for k in registry.priority if k in present and not registry.types[k].evidence]
    for kind in track(stages, "identity graph: identifier types joined"):
        _stage(engine, registry, kind)
    engine.run(
        "refused",
        "select r.node, n.identifier_type, n.identifier, r.reason, r.profiles "
        "from refused r join nodes n on n.node = r.node",
    )


def _content(labels: str, components: str) -> str:
    """(component, identifier_type, bucket, node): the values each profile of `components`
    (a query of `component`) holds. Every vertex labeled is on an edge; only values have
    buckets."""
    return (
        f"select l.component, b.identifier_type, b.bucket, b.node from {labels} l "
        f"join ({components}) c on c.component = l.component join buckets b on b.node = l.vertex"
    )


def _trial_labels(engine: Engine) -> None:
    """`trial_labels`: `labels` with the stage's `ok` edges added, and `grown` (component): the
    profiles those edges reach. Only the graph of the `ok` edges is labeled, each of its ends
    standing for the profile it already belongs to (`labels` names a profile by one of its
    vertices): a stage costs what it adds, not the whole graph again."""
    engine.run(
        "ends",
        "select coalesce(ls.component, o.sig) as sig, coalesce(ln.component, o.node) as node, "
        "ls.component is null as new_sig, ln.component is null as new_node from ok o "
        "left join labels ls on ls.vertex = o.sig left join labels ln on ln.vertex = o.node",
    )
    engine.components("ends", "merged")
    engine.run(
        "trial_labels",
        "select l.vertex, coalesce(m.component, l.component) as component from labels l "
        "left join merged m on m.vertex = l.component union all "
        "select f.vertex, m.component from (select sig as vertex from ends where new_sig "
        "union select node from ends where new_node) f join merged m on m.vertex = f.vertex",
    )
    engine.run("grown", "select distinct component from merged")


def _stage(engine: Engine, registry: Registry, kind: str) -> None:
    """Add the values of one identifier type to the graph, refusing those that break a guard."""
    spec = registry.types[kind]
    engine.run("cand", f"select sig, node from typed where identifier_type = {quote(kind)}")
    engine.run(
        "touched",
        "select distinct c.node, l.component from cand c join labels l on l.vertex = c.sig",
    )
    engine.run(
        "profiles",
        "select node, count(distinct component) as profiles from touched group by node",
    )
    engine.run("content", _content("labels", "select distinct component from touched"))
    engine.run(
        "conflicts",
        """
        select node, min('would merge profiles holding ' || cast(held as string) || ' '
                         || identifier_type || ' (limit ' || cast(max_per_profile as string)
                         || ')') as reason
        from (
            select h.node, h.identifier_type, h.bucket, count(distinct h.held_node) as held,
                   l.max_per_profile
            from (
                select m.node, c.identifier_type, c.bucket, c.node as held_node
                from (select t.node, t.component from touched t
                      join profiles p on p.node = t.node where p.profiles >= 2) m
                join content c on c.component = m.component
                union all
                select b.node, b.identifier_type, b.bucket, b.node as held_node
                from profiles p join buckets b on b.node = p.node where p.profiles >= 2
            ) h join limits l on l.identifier_type = h.identifier_type
            group by h.node, h.identifier_type, h.bucket, l.max_per_profile
        ) counted
        where held > max_per_profile
        group by node
        """,
    )
    _evidence_conflicts(engine, registry.guarded_by.get(kind, ()))
    engine.run(
        "kept_apart",
        """
        with reach as (
            select t.node as v, c.node as n from touched t join content c
              on c.component = t.component
            union all
            select node as v, node as n from cand
        )
        select r1.v as node, min('would join ' || replace(ap.a, chr(31), ' ') || ' and '
                                 || replace(ap.b, chr(31), ' ') || ' (never merge)') as reason
        from apart ap join reach r1 on r1.n = ap.a join reach r2 on r2.v = r1.v and r2.n = ap.b
        where r1.v <> ap.a and r1.v <> ap.b
        group by r1.v
        """,
    )
    # One of a never-merge pair itself stays an id: only its links to records of the profile
    # that holds the other are cut (its other records still make its own profile).
    engine.run(
        "cut",
        """
        select c.sig, c.node, 'kept apart from ' || replace(p.other, chr(31), ' ')
               || ' (never merge)' as reason
        from cand c
        join (select a as node, b as other from apart union all select b, a from apart) p
          on p.node = c.node
        join labels ls on ls.vertex = c.sig
        join labels lo on lo.vertex = p.other and lo.component = ls.component
        """,
    )
    capped = (
        f"select node, '{SHARED}seen with ' || cast(profiles as string) || ' profiles (cap "
        f"{spec.max_profiles})' as reason, 1 as pick from profiles "
        f"where profiles > {spec.max_profiles}"
        if spec.max_profiles
        else "select node, reason, 1 as pick from conflicts where node is null"
    )
    engine.run(
        "stage_out",
        f"""
        select node, reason from (
            select node, reason, row_number() over (partition by node order by pick) as rn
            from ({capped} union all select node, reason, 2 as pick from conflicts
                  union all select node, reason, 3 as pick from disagreeing
                  union all select node, reason, 0 as pick from kept_apart) u
        ) ranked where rn = 1
        """,
    )
    engine.run(
        "ok",
        "select c.sig, c.node from cand c left join stage_out o on o.node = c.node "
        "left join cut x on x.sig = c.sig and x.node = c.node "
        "where o.node is null and x.node is null",
    )
    for _ in range(MAX_JOINT_ROUNDS):
        _trial_labels(engine)
        engine.run(
            "violations",
            f"""
            select c.component, c.identifier_type, c.bucket, count(distinct c.node) as held,
                   l.max_per_profile
            from ({_content("trial_labels", "select component from grown")}) c
            join limits l on l.identifier_type = c.identifier_type
            group by c.component, c.identifier_type, c.bucket, l.max_per_profile
            having count(distinct c.node) > l.max_per_profile
            union all
            select la.component, '~never_merge' as identifier_type, '' as bucket,
                   2 as held, 1 as max_per_profile
            from apart ap
            join trial_labels la on la.vertex = ap.a
            join trial_labels lb on lb.vertex = ap.b and lb.component = la.component
            """,
        )
        if engine.count("violations") == 0:
            break
        _joint_refusals(engine, kind, spec.max_per_profile)
        if engine.count("more") == 0:
            raise RuntimeError(f"identity stage {kind}: a broken limit no refusal resolves")
        engine.run("stage_out", "select node, reason from stage_out union all select * from more")
        engine.run(
            "ok",
            "select o.sig, o.node from ok o left join more m on m.node = o.node "
            "where m.node is null",
        )
    else:
        raise RuntimeError(f"identity stage {kind}: limits broken after {MAX_JOINT_ROUNDS} rounds")
    engine.run("edges", "select sig, node from edges union all select sig, node from ok")
    engine.run("labels", "select vertex, component from trial_labels")
    engine.run(
        "refused",
        "select node, reason, profiles from refused union all "
        "select o.node, o.reason, coalesce(p.profiles, 0) as profiles "
        "from stage_out o left join profiles p on p.node = o.node union all "
        "select node, min(reason) as reason, 0 as profiles from cut group by node",
    )


def _evidence_conflicts(engine: Engine, evidence_types: tuple[str, ...]) -> None:
    """`disagreeing` (node, reason): values that would merge profiles whose evidence disagrees:
    together they hold more distinct values of an evidence type (names) than the richest of
    them does alone (two people's names; a profile that already knew both names may merge)."""
    if not evidence_types:
        engine.empty("disagreeing", "node string, reason string")
        return
    listed = quote_list(evidence_types)
    engine.run(
        "disagreeing",
        f"""
        with merging as (
            select t.node, t.component from touched t
            join profiles p on p.node = t.node where p.profiles >= 2
        ),
        held as (
            select distinct l.component, e.identifier_type, e.identifier
            from evidence e join labels l on l.vertex = e.sig
            join (select distinct component from merging) m on m.component = l.component
            where e.identifier_type in ({listed})
        ),
        seen as (
            select m.node, m.component, h.identifier_type, h.identifier
            from merging m join held h on h.component = m.component
        ),
        together as (
            select node, identifier_type, count(distinct identifier) as n from seen
            group by node, identifier_type
        ),
        apart as (
            select node, identifier_type, max(n) as n from (
                select node, component, identifier_type, count(distinct identifier) as n
                from seen group by node, component, identifier_type
            ) c group by node, identifier_type
        )
        select t.node, min('would merge profiles of different ' || t.identifier_type || 's')
               as reason
        from together t join apart a
          on a.node = t.node and a.identifier_type = t.identifier_type
        where t.n > a.n group by t.node
        """,
    )


def _joint_refusals(engine: Engine, kind: str, limit: int) -> None:
    """`more` (node, reason): the stage's values to refuse in profiles that broke a limit when
    the stage's values joined together. Where another type's limit broke, the stage's values
    there joined identified profiles through each other (two phones on one record): all those
    touching a profile are refused, none being more right than another. Where only the stage's
    own type is over its limit, the values beyond it go, keeping those on the most records."""
    stage = (
        "select o.node, l.component, coalesce(p.profiles, 0) as profiles, s.support "
        "from (select distinct node from ok) o join trial_labels l on l.vertex = o.node "
        "left join profiles p on p.node = o.node join support s on s.node = o.node"
    )
    bridged = f"select distinct component from violations where identifier_type <> {quote(kind)}"
    reason_bridge = quote(f"joins profiles that together break a limit, with other {kind} values")
    reason_excess = quote(f"more than {limit} {kind} in one profile")
    engine.run(
        "more",
        f"""
        with stage as ({stage}), bridged as ({bridged}),
        own as (
            select v.component, v.bucket, v.held from violations v
            left join bridged b on b.component = v.component
            where v.identifier_type = {quote(kind)} and b.component is null
        ),
        ranked as (
            select s.node, s.component, own.held,
                   count(*) over (partition by s.component, bk.bucket) as fresh,
                   row_number() over (partition by s.component, bk.bucket
                                      order by s.support desc, s.node) as rn
            from stage s
            join buckets bk on bk.node = s.node and bk.identifier_type = {quote(kind)}
            join own on own.component = s.component and own.bucket = bk.bucket
        ),
        refused as (
            select s.node, {reason_bridge} as reason from stage s
            join bridged b on b.component = s.component where s.profiles >= 1
            union all
            -- the profile held `held - fresh` values of the type before the stage
            select node, {reason_excess} as reason from ranked
            where rn > greatest(0, {limit} - (held - fresh))
        )
        select r.node, min(r.reason) as reason from refused r
        left join stage_out o on o.node = r.node where o.node is null group by r.node
        """,
    )
