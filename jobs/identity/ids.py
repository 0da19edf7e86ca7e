"""Stable One-IDs: a person keeps their one_id across runs, whatever the graph's labels are.

A profile (a connected component of jobs/identity/graph.py) is matched to the one_ids its
identifiers had in the previous `identity_map` (registered on the engine as `previous`):

- an old one_id goes to the profile holding most of its identifiers (ties: the profile whose
  anchor sorts first), so a split leaves it with the larger part;
- a profile that gets several old one_ids keeps the oldest (`one_id_since`, then the id): when
  two profiles merge, the older id survives and the others are recorded as merged into it;
- a profile that gets none (new, or the smaller part of a split) is named after its anchor, its
  highest-priority identifier: `C` + 20 hex digits of the anchor's SHA-256, the same on every
  run and machine. An id used before is never handed out again: the run date salts it then.

Every merge, split and retirement is a row of `identity_updates` (old one_id -> new one_id, the
rule and record that joined them): the id-change feed downstream tools re-key by.
"""

from __future__ import annotations

from datetime import date

from jobs.identity.engine import Engine, quote, quote_list
from jobs.identity.graph import NODE


def _one_id(engine: Engine, seed: str) -> str:
    return f"'C' || substr({engine.sha(seed)}, 1, 20)"


def assign(engine: Engine, logical_date: date, *, has_previous: bool) -> None:
    """`identity_map` and `identity_updates` of this run on the engine, from `edges`, `labels`,
    `nodes` (graph.build) and `previous` (one_id, identifier_type, identifier, one_id_since)."""
    day = f"date '{logical_date.isoformat()}'"
    engine.run(
        "held",
        "select e.node, l.component, n.identifier_type, lim.priority "
        "from (select distinct node from edges) e join labels l on l.vertex = e.node "
        "join nodes n on n.node = e.node "
        "join limits lim on lim.identifier_type = n.identifier_type",
    )
    engine.run(
        "anchors",
        "select component, node as anchor from (select component, node, row_number() over "
        "(partition by component order by priority, node) as rn from held) h where rn = 1",
    )
    if has_previous:
        engine.run(
            "prev",
            f"select one_id, {NODE} as node, one_id_since from previous",
        )
    else:
        engine.empty("prev", "one_id string, node string, one_id_since date")
    engine.run(
        "claims",
        """
        select c.*, row_number() over (partition by one_id order by shared desc, anchor) = 1
               as won
        from (
            select h.component, a.anchor, p.one_id, p.one_id_since, count(*) as shared
            from held h join prev p on p.node = h.node join anchors a on a.component = h.component
            group by h.component, a.anchor, p.one_id, p.one_id_since
        ) c
        """,
    )
    fresh = _one_id(engine, "a.anchor")
    salted = _one_id(engine, f"a.anchor || '|' || {quote(logical_date.isoformat())}")
    engine.run(
        "named",
        f"""
        select a.component, a.anchor,
               coalesce(s.one_id, case when u.one_id is null then {fresh} else {salted} end)
                   as one_id,
               coalesce(s.one_id_since, {day}) as one_id_since
        from anchors a
        left join (
            select component, one_id, one_id_since from (
                select component, one_id, one_id_since, row_number() over
                    (partition by component order by one_id_since, one_id) as rn
                from claims where won
            ) w where rn = 1
        ) s on s.component = a.component
        left join (select distinct one_id from prev) u on u.one_id = {fresh}
        """,
    )
    engine.run(
        "identity_map",
        "select nm.one_id, n.identifier_type, n.identifier, n.namespace, n.first_seen, "
        "n.last_seen, n.records, nm.one_id_since "
        "from held h join named nm on nm.component = h.component join nodes n on n.node = h.node",
    )
    _updates(engine)


def _updates(engine: Engine) -> None:
    """merge (an old id folded into the survivor), split (part of an old id's identifiers now
    in another profile) and retire (none of an old id's identifiers is in a profile now), each
    with a record that carries identifiers of two old ids (the one that joined them) if any."""
    engine.run(
        "sig_old",
        "select distinct e.sig, p.one_id from edges e join prev p on p.node = e.node",
    )
    engine.run(
        "joined_by",
        """
        select one_id, rule, record_key from (
            select so.one_id, r.rule, r.record_key, row_number() over
                (partition by so.one_id order by r.rule, r.record_key) as rn
            from sig_old so
            join (select sig from sig_old group by sig having count(*) >= 2) b on b.sig = so.sig
            join records r on r.sig = so.sig
        ) x where rn = 1
        """,
    )
    engine.run(
        "identity_updates",
        """
        select case when c.won then 'merge' else 'split' end as change,
               c.one_id as old_one_id, nm.one_id as new_one_id, j.rule,
               coalesce('joined by record ' || j.record_key,
                        'shares ' || cast(c.shared as string) || ' identifiers with the profile')
                   as reason
        from claims c join named nm on nm.component = c.component
        left join joined_by j on j.one_id = c.one_id
        where c.one_id <> nm.one_id
        union all
        select 'retire' as change, p.one_id as old_one_id, cast(null as string) as new_one_id,
               cast(null as string) as rule,
               'none of its identifiers is in a profile any more (blocked or gone)' as reason
        from (select distinct one_id from prev) p
        left join (select distinct one_id from claims) c on c.one_id = p.one_id
        where c.one_id is null
        """,
    )


def edges_out(engine: Engine) -> None:
    """`identity_edges` (one_id, from_type, from_id, to_type, to_id, rule, records, first_seen,
    last_seen): each signature links its anchor id to its other ids, by its records' rules."""
    engine.run(
        "star",
        """
        select sig, node, first_value(node) over (partition by sig order by priority, node)
               as from_node
        from (select e.sig, e.node, h.priority from edges e join held h on h.node = e.node) t
        """,
    )
    engine.run(
        "identity_edges",
        """
        select m.one_id,
               f.identifier_type as from_type, f.identifier as from_id,
               t.identifier_type as to_type, t.identifier as to_id,
               r.rule, count(*) as records, min(r.first_seen) as first_seen,
               max(r.last_seen) as last_seen
        from star s
        join records r on r.sig = s.sig
        join nodes f on f.node = s.from_node
        join nodes t on t.node = s.node
        join held h on h.node = s.from_node
        join named m on m.component = h.component
        where s.node <> s.from_node
        group by m.one_id, f.identifier_type, f.identifier, t.identifier_type, t.identifier, r.rule
        """,
    )


def record_one_ids(engine: Engine, out: str, idmap: str, rules: list[str] | None = None) -> None:
    """`out` (rule, record_key, one_id): each record of `occ` (of `rules`, or all) with the
    one_id its accepted ids map to in `idmap` (they all map to one; null when every id it
    carries was refused or blocked)."""
    where = f"where o.rule in ({quote_list(rules)})" if rules else ""
    engine.run(
        out,
        f"select o.rule, o.record_key, min(m.one_id) as one_id from occ o "
        f"left join {idmap} m on m.identifier_type = o.identifier_type "
        f"and m.identifier = o.identifier {where} group by o.rule, o.record_key",
    )


def customers(engine: Engine) -> None:
    """`customers`: one row per one_id from identity_map: since when, first and last seen, how
    many identifiers of which types, the latest phone token and the member card."""
    engine.run(
        "customers",
        f"""
        select m.one_id, min(m.one_id_since) as one_id_since, min(m.first_seen) as first_seen,
               max(m.last_seen) as last_seen, count(*) as identifiers,
               {engine.sorted_join("m.identifier_type", "','")} as identifier_types,
               max(p.identifier) as phone_token,
               min(m.identifier) filter (where m.identifier_type = 'member_card') as member_card
        from identity_map m left join (
            -- the latest phone; of phones last seen at once, the greatest token (every run
            -- and engine picks the same one)
            select one_id, identifier from (
                select one_id, identifier, row_number() over (partition by one_id
                    order by last_seen desc nulls last, identifier desc) as rn
                from identity_map where identifier_type = 'phone'
            ) r where rn = 1
        ) p on p.one_id = m.one_id
        group by m.one_id
        """,
    )
