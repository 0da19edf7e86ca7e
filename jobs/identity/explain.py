"""Why One-ID did what it did, for operators: `cdp identity explain` (a profile's identifiers,
the edge path between two of them and the rule of every hop) and `cdp identity diff` (what a
registry change would merge and split, before it is made). Reads silver.identity_map and
identity_edges through delta-rs; nothing is written.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from jobs.common import lake
from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings

ONE_ID = re.compile(r"^C[0-9a-f]{20}$")
TOKEN = re.compile(r"^[0-9a-f]{64}$")


def parse_identifier(text: str, hmac_key: bytes | None = None) -> tuple[str, str]:
    """`TYPE:VALUE` as silver holds it: a phone, e-mail or ID number typed in clear becomes its
    token (with the PII key), a store member number or customer id keeps its `ns:` prefix."""
    from jobs.identity.registry import load_registry, token

    kind, sep, value = text.partition(":")
    types = load_registry(get_settings().identity.registry).types
    if not sep or kind not in types or not value:
        raise CdpError(f"{text!r}: expected TYPE:VALUE with TYPE one of {', '.join(types)}")
    spec = types[kind]
    if spec.token and not TOKEN.match(value):
        normalized = _normalize(spec.token, value)
        if normalized is None:
            raise CdpError(f"{text!r}: not a valid {kind}")
        value = token(hmac_key or get_settings().hmac_key(), spec.token, normalized)
    return kind, value


def _normalize(kind: str, value: str) -> str | None:
    if kind == "phone":
        from jobs.common.clean.phones import normalize_phone_py

        return normalize_phone_py(value)
    if kind == "email":
        from jobs.common.clean.emails import normalize_email_py

        return normalize_email_py(value)
    if kind == "id_card":
        from jobs.common.clean.id_cards import normalize_id_card_py

        return normalize_id_card_py(value)
    return value


@dataclass
class Explanation:
    one_id: str
    identifiers: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)
    path: list[dict] | None = None  # hops from the first identifier to the second
    blocked: list[dict] = field(default_factory=list)
    matches: list[dict] = field(default_factory=list)  # probabilistic pairs behind its clusters


def explain(
    subject: str, other: str | None = None, settings: Settings | None = None
) -> Explanation:
    """The profile of `subject` (a one_id or TYPE:VALUE) and, with `other`, the path of edges
    joining the two identifiers (each hop: from, to, rule, records)."""
    settings = settings or get_settings()
    if ONE_ID.match(subject):
        one_id, start = subject, None
    else:
        start = parse_identifier(subject)
        one_id = _one_id_of(settings, start)
    held = _rows(settings, "identity_map", f"one_id = {lake.sql_literal(one_id)}")
    if not held:
        raise CdpError(f"no profile {one_id} in silver.identity_map")
    edges = _rows(settings, "identity_edges", f"one_id = {lake.sql_literal(one_id)}")
    blocked = []
    if start is not None and lake.is_delta(lake.table_path("silver", "identity_blocked", settings)):
        blocked = _rows(settings, "identity_blocked", _is(start))
    out = Explanation(one_id, held, edges, blocked=blocked, matches=_matches(settings, held))
    if other is not None:
        if start is None:
            raise CdpError("a path needs two identifiers (TYPE:VALUE TYPE:VALUE), not a one_id")
        end = parse_identifier(other)
        other_id = _one_id_of(settings, end)
        if other_id != one_id:
            raise CdpError(f"{other} is in another profile ({other_id}), not {one_id}")
        out.path = _path(edges, start, end)
    return out


def _matches(settings: Settings, held: list[dict]) -> list[dict]:
    """The identity_matches pairs of the profile's probabilistic clusters (each with its match
    probability and how each field compared)."""
    from jobs.identity.registry import load_registry

    kinds = {m.type for m in load_registry(settings.identity.registry).matching}
    clusters = sorted({r["identifier"] for r in held if r["identifier_type"] in kinds})
    path = lake.table_path("silver", "identity_matches", settings)
    if not clusters or not lake.is_delta(path):
        return []
    return lake.read_arrow(path, lake.sql_in("cluster", clusters)).to_pylist()


def _is(node: tuple[str, str]) -> str:
    return (
        f"identifier_type = {lake.sql_literal(node[0])} "
        f"AND identifier = {lake.sql_literal(node[1])}"
    )


def _rows(settings: Settings, name: str, where: str) -> list[dict]:
    """The rows of a silver identity table matching `where`, filtered by delta-rs (a profile's
    rows, not the whole map of a million people)."""
    path = lake.table_path("silver", name, settings)
    if not lake.is_delta(path):
        raise CdpError(f"no silver.{name} yet: run `cdp identity run` first")
    return lake.read_arrow(path, where).to_pylist()


def _one_id_of(settings: Settings, node: tuple[str, str]) -> str:
    rows = _rows(settings, "identity_map", _is(node))
    if not rows:
        raise CdpError(
            f"{node[0]} {node[1]} is in no profile (never seen, or blocked: see explain)"
        )
    return rows[0]["one_id"]


def _path(edges: list[dict], start: tuple[str, str], end: tuple[str, str]) -> list[dict]:
    """Breadth-first: the fewest hops from start to end over the profile's edges."""
    links: dict[tuple[str, str], list[tuple[tuple[str, str], dict]]] = {}
    for e in edges:
        a, b = (e["from_type"], e["from_id"]), (e["to_type"], e["to_id"])
        links.setdefault(a, []).append((b, e))
        links.setdefault(b, []).append((a, e))
    came: dict[tuple[str, str], tuple[tuple[str, str], dict] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == end:
            break
        for nxt, e in sorted(links.get(node, []), key=lambda x: (x[1]["rule"], x[0])):
            if nxt not in came:
                came[nxt] = (node, e)
                queue.append(nxt)
    if end not in came:
        return []
    hops = []
    node = end
    while came[node] is not None:
        prev, e = came[node]
        hops.append({"from": prev, "to": node, "rule": e["rule"], "records": e["records"]})
        node = prev
    return hops[::-1]


@dataclass
class Diff:
    profiles_before: int
    profiles_after: int
    changes: dict[str, int]
    examples: list[dict]


def diff(rules: Path, settings: Settings | None = None, examples: int = 10) -> Diff:
    """What the registry `rules` would change against silver.identity_map now: the merges,
    splits and retirements its run would record (a dry run: nothing is written)."""
    from jobs.identity.matching import match
    from jobs.identity.registry import load_registry
    from jobs.identity.run import Controls, open_engine, resolve, rule_tables

    settings = settings or get_settings()
    registry = load_registry(rules)
    idmap_path = lake.table_path("silver", "identity_map", settings)
    if not lake.is_delta(idmap_path):
        raise CdpError("no silver.identity_map yet: run `cdp identity run` first")
    previous = lake.read_arrow(idmap_path)
    paths = rule_tables(registry, settings)
    matched = match(registry, settings, paths)
    with open_engine(settings, registry, paths) as engine:
        resolve(
            engine,
            registry,
            set(paths),
            settings.hmac_key(),
            date.today(),
            previous=previous,
            operator=Controls.load(settings),
            matched=matched,
        )
        before = len({r for r in previous.column("one_id").to_pylist()})
        after = engine.rows("select count(distinct one_id) from identity_map")[0][0]
        changes = dict(engine.rows("select change, count(*) from identity_updates group by change"))
        sample = engine.rows(
            "select change, old_one_id, new_one_id, rule, reason from identity_updates "
            f"order by change, old_one_id limit {int(examples)}"
        )
        keys = ("change", "old_one_id", "new_one_id", "rule", "reason")
        return Diff(before, after, changes, [dict(zip(keys, r, strict=True)) for r in sample])
