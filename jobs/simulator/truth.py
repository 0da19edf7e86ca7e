"""Ground truth, for evaluation only: no pipeline step reads `_truth/`.

- `records.csv`: every record written (dataset `source.dataset`, record id, true person, file day,
  mess and adversarial flags, the receiver's person for gifts) with three labels:
  `linkable` (the record carries an identifier that, under the world's rules, reaches another
  record of the same person), `link_group` (for a linkable record, which of its person's linkable
  records it can reach at all, through a chain of shared identifiers; empty otherwise) and
  `fuzzy_linkable` (no such identifier, but two kinds of name, birthday and address evidence
  shared with another record of the same person, as in the member lists). Evidence counts only
  where the record shows it intact (a name with a typo, a birthday with day and month swapped
  or the year wrong, is no evidence: `name_typo` and `birthday_variant` flags; an address written
  another way still is), and a name and birthday alone only when no one else in the world has
  both: what the records share must single the person out, or nobody could link them. A person
  whose phone records and WeChat records share nothing has two link groups: a resolver that
  keeps them apart has missed no pair it could have found, so recall counts only the pairs
  inside a group. A group's id is the row number (1 = the first
  record after the header) of its first record in `records.csv`.
- `identifiers.csv`: identifier_type, value, person_id, valid_from, valid_to: who holds which id
  when (a value can have several holders at once: a household's phone, a family tablet).
- `consent.csv`: each person's consent state per purpose over time, with the channel and the
  privacy-notice version in force when it changed.
- `people.csv`: one row per person with the traits an evaluation slices by.

Records stream to work files as they are written; the labels are computed at the end by DuckDB
(spilling to disk), so memory stays bounded at 1M people. Link groups are connected components
outside DuckDB: it hands over one integer edge per record and shared identifier (to the
identifier's first record), sorted, and scipy labels the compressed sparse graph built from them
without a second copy of the edge list (10M records with 15M shared ids: 8 s and ~320 MB besides
DuckDB's limit, on the shared 2-core machine).
"""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.simulator.world import PURPOSES, World, identifiers, staff_identifiers

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

RECORD_COLUMNS = (
    "dataset", "record_id", "person_id", "dt", "flags", "receiver_person_id", "linkable",
    "fuzzy_linkable", "link_group",
)  # fmt: skip
EVIDENCE = ("name", "birthday", "address")
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def normalize(identifier_type: str, value: object) -> str:
    """An identifier as truth compares it: a phone as its 11 digits (full-width, +86, dashes and
    spaces removed); other ids as given."""
    text = str(value).strip()
    if identifier_type == "phone":
        digits = re.sub(r"\D", "", text.translate(_FULLWIDTH_DIGITS))
        return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
    return text


def _ts(value: datetime | date | None) -> str:
    if value is None:
        return ""
    return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()


@dataclass
class TruthStats:
    records: int = 0
    linkable: int = 0
    fuzzy_linkable: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    by_dataset: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # n, link, fuzzy
    people_per_identifier: dict[str, int] = field(default_factory=dict)  # holders (world)
    people_seen_per_identifier: dict[str, int] = field(default_factory=dict)  # in the records


class TruthBook:
    """Collects a run's truth under `out/_truth/` and labels it at `close()`."""

    def __init__(self, out: Path, world: World):
        self.dir = Path(out) / "_truth"
        self.work = self.dir / ".work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.world = world
        self._rid = 0
        self._fh = {
            name: (self.work / f"{name}.csv").open("w", newline="", encoding="utf-8")
            for name in ("records", "record_ids", "evidence", "extra_ids")
        }
        self._w = {name: csv.writer(fh) for name, fh in self._fh.items()}
        self._extra_seen: set[tuple[str, str, str]] = set()
        self.flags: Counter[str] = Counter()

    # --- while writing -----------------------------------------------------------------------

    def record(
        self,
        dataset: str,
        record_id: str,
        person_id: str,
        day: date,
        *,
        flags: Iterable[str] = (),
        ids: Iterable[tuple[str, object]] = (),
        evidence: Iterable[str] = (),
        receiver: str = "",
    ) -> None:
        """One record written to a landing file.

        `ids` are the (identifier_type, value) pairs the record carries that name a person (as
        written: phones are normalised here; masked values and relay numbers are not ids).
        `evidence` names which of name/birthday/address the record shows of its own person.
        `receiver` is the receiver's person id when it is not the buyer (a gift)."""
        self._rid += 1
        flags = sorted(set(flags))
        self.flags.update(flags)
        self._w["records"].writerow(
            [self._rid, dataset, record_id, person_id, day.isoformat(), "|".join(flags), receiver]
        )
        for kind, value in ids:
            if value not in (None, ""):
                self._w["record_ids"].writerow([self._rid, kind, normalize(kind, value)])
        for kind in evidence:
            self._w["evidence"].writerow([self._rid, kind])

    def holder(
        self,
        identifier_type: str,
        value: object,
        person_id: str,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
    ) -> None:
        """An identifier held by someone who is not one of the world's people (a 刷单 ring's
        account, the shop's test account): listed once in identifiers.csv."""
        key = (identifier_type, normalize(identifier_type, value), person_id)
        if key not in self._extra_seen:
            self._extra_seen.add(key)
            self._w["extra_ids"].writerow([*key, _ts(valid_from), _ts(valid_to)])

    # --- at the end ------------------------------------------------------------------------------

    def close(self) -> TruthStats:
        for fh in self._fh.values():
            fh.close()
        self._write_world()
        stats = self._label()
        stats.flags = dict(sorted(self.flags.items()))
        shutil.rmtree(self.work, ignore_errors=True)
        return stats

    def _write_world(self) -> None:
        """identifiers.csv, people.csv and consent.csv in one pass over the world's people."""
        with (
            (self.dir / "identifiers.csv").open("w", newline="", encoding="utf-8") as idf,
            (self.dir / "people.csv").open("w", newline="", encoding="utf-8") as pf,
            (self.dir / "consent.csv").open("w", newline="", encoding="utf-8") as cf,
        ):
            ids, people, consent = csv.writer(idf), csv.writer(pf), csv.writer(cf)
            ids.writerow(["identifier_type", "value", "person_id", "valid_from", "valid_to"])
            people.writerow([
                "person_id", "name", "gender", "birthday", "region", "household_id",
                "shares_household_phone", "member_card", "member_since", "signup_channel",
                "home_store", "guide", "phone_changed", "recycled_number", "namesake",
            ])  # fmt: skip
            consent.writerow([
                "person_id", "purpose", "granted", "valid_from", "valid_to", "channel",
                "notice_version",
            ])  # fmt: skip
            for p in self.world:
                pid, m = p.person_id, p.member
                ids.writerows((t, v, pid, _ts(a), _ts(b)) for t, v, a, b in identifiers(p))
                people.writerow([
                    pid, p.name, p.gender, p.birthday.isoformat(), p.region,
                    p.household_id, int(p.shares_household_phone), m.card if m else "",
                    _ts(m.signed_up) if m else "", m.channel if m else "",
                    m.home_store if m else "", m.guide if m else "", int(p.phone_changed),
                    int(p.recycled_number), int(p.is_namesake),
                ])  # fmt: skip
                consent.writerows(_consent_spans(p.consent_events))
            ids.writerows((t, v, holder, "", "") for t, v, holder in staff_identifiers(self.world))
            with (self.work / "extra_ids.csv").open(encoding="utf-8", newline="") as extra:
                ids.writerows(csv.reader(extra))

    def _label(self) -> TruthStats:
        import duckdb

        work = self.work
        con = duckdb.connect()
        # Bounded, whatever the world's size: DuckDB spills to the work folder beyond this.
        con.execute(f"set temp_directory='{work / 'duck'}'")
        con.execute("set memory_limit='2GB'")
        con.execute("set threads=2")
        con.execute("set preserve_insertion_order=false")

        def load(name: str, columns: Sequence[str]) -> None:
            con.execute(f"create table {name} ({', '.join(f'{c} varchar' for c in columns)})")
            path = work / f"{name}.csv"
            if path.stat().st_size:
                cols = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
                con.execute(
                    f"insert into {name} select * from read_csv('{path}', header=false, "
                    f"delim=',', quote='\"', escape='\"', columns={{{cols}}})"
                )

        load("records", ("rid", "dataset", "record_id", "person_id", "dt", "flags", "receiver"))
        load("record_ids", ("rid", "identifier_type", "value"))
        load("evidence", ("rid", "kind"))
        con.execute(
            """
            create table live as  -- records that reach bronze and belong to someone
            select rid, dataset || chr(31) || record_id as rkey, person_id from records
            where person_id <> '' and coalesce(flags, '') not like '%spoiled%'
            """
        )
        con.execute(
            """
            create table link_keys as  -- (record, id) where the id reaches another of its records
            with ids as (
                select l.rid, l.rkey, l.person_id, i.identifier_type, i.value
                from live l join record_ids i using (rid)
            ), shared as (
                select identifier_type, value, person_id from ids
                group by all having count(distinct rkey) > 1
            )
            select distinct rid, identifier_type, value, person_id
            from ids join shared using (identifier_type, value, person_id)
            """
        )
        con.execute("create table linked as select distinct rid from link_keys")
        con.register("link_groups", _link_groups(con))
        people = self.dir / "people.csv"
        con.execute(
            f"""
            create table namesakes as  -- people whose name and birthday someone else has too
            select person_id from read_csv('{people}', header=true, all_varchar=true)
            qualify count(*) over (partition by name, birthday) > 1
            """
        )
        con.execute(
            """
            create table fuzzy as
            with intact as (  -- evidence shown as the person's own, not a typo or a swap
                select e.rid, e.kind from evidence e join records r using (rid)
                where not (e.kind = 'name' and coalesce(r.flags, '') like '%name_typo%')
                  and not (e.kind = 'birthday' and coalesce(r.flags, '') like '%birthday_variant%')
            ), ev as (
                select l.rid, l.rkey, l.person_id, list_sort(list(distinct e.kind)) as kinds
                from live l join intact e using (rid) group by all
                having count(distinct e.kind) >= 2
            ), seen as (  -- distinct evidence sets per person and record key
                select distinct person_id, rkey, kinds from ev
            ), shared as (
                select a.rid, a.person_id, list_intersect(a.kinds, b.kinds) as kinds
                from ev a join seen b on a.person_id = b.person_id and a.rkey <> b.rkey
                where a.rid not in (select rid from linked)
            )
            select distinct rid from shared
            where len(kinds) >= 2
              and (list_contains(kinds, 'address')
                   or person_id not in (select person_id from namesakes))
            """
        )
        out = self.dir / "records.csv"
        con.execute(
            f"""
            copy (
                select r.dataset, r.record_id, r.person_id, r.dt, coalesce(r.flags, '') as flags,
                       coalesce(r.receiver, '') as receiver_person_id,
                       (r.rid in (select rid from linked))::int as linkable,
                       (r.rid in (select rid from fuzzy))::int as fuzzy_linkable,
                       g.link_group
                from records r left join link_groups g on g.rid = r.rid::integer
                order by r.rid::bigint
            ) to '{out}' (header, quote '"')
            """
        )
        stats = TruthStats()
        for dataset, n, link, fuzz in con.execute(
            f"""select dataset, count(*), sum(linkable::int), sum(fuzzy_linkable::int)
                from read_csv('{out}', header=true, all_varchar=true) group by 1 order by 1"""
        ).fetchall():
            stats.by_dataset[dataset] = (int(n), int(link or 0), int(fuzz or 0))
        stats.records = sum(v[0] for v in stats.by_dataset.values())
        stats.linkable = sum(v[1] for v in stats.by_dataset.values())
        stats.fuzzy_linkable = sum(v[2] for v in stats.by_dataset.values())
        for kind, n in con.execute(
            f"""select identifier_type, count(distinct person_id)
                from read_csv('{self.dir / "identifiers.csv"}', header=true, all_varchar=true)
                where regexp_matches(person_id, '^P[0-9]+$') group by 1 order by 1"""
        ).fetchall():
            stats.people_per_identifier[kind] = int(n)
        for kind, n in con.execute(
            """select i.identifier_type, count(distinct l.person_id)
               from live l join record_ids i using (rid)
               where regexp_matches(l.person_id, '^P[0-9]+$') group by 1 order by 1"""
        ).fetchall():
            stats.people_seen_per_identifier[kind] = int(n)
        con.close()
        return stats


def _link_groups(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """(rid, link_group) of every record in `link_keys`: the smallest rid of its connected
    component, where a record joins every other record of its person that carries one of its ids.

    A star per id (each record to the id's first record) has the components of the full
    all-pairs graph with one edge per record and id. DuckDB sorts the edges by record, so they
    stream into the compressed sparse row arrays scipy reads (the hub column is the `indices`,
    the counts per record the `indptr`) and the edge list is never held twice."""
    import numpy as np
    import pyarrow as pa
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    con.execute(
        """
        create table link_edges as
        with keyed as (
            select rid::integer as rid, identifier_type, value, person_id from link_keys
        ), hubs as (
            select identifier_type, value, person_id, min(rid) as hub from keyed group by all
        )
        select distinct k.rid, h.hub
        from keyed k join hubs h using (identifier_type, value, person_id)
        where k.rid <> h.hub
        """
    )
    [(n_edges, n_nodes)] = con.execute(
        """select (select count(*) from link_edges),
                  (select coalesce(max(rid::integer), 0) + 1 from records)"""
    ).fetchall()
    empty = pa.table({"rid": pa.array([], pa.int32()), "link_group": pa.array([], pa.int32())})
    if not n_edges:
        return empty
    index = np.int32 if n_edges < 2**31 else np.int64  # scipy wants indptr and indices alike
    degree = np.zeros(n_nodes, np.int64)
    hubs = np.empty(n_edges, index)
    at = 0
    for batch in con.sql("select rid, hub from link_edges order by rid").to_arrow_reader(1 << 20):
        rids, counts = np.unique(batch.column("rid").to_numpy(), return_counts=True)
        degree[rids] += counts  # a record's edges may span two batches
        hubs[at : at + batch.num_rows] = batch.column("hub").to_numpy()
        at += batch.num_rows
    indptr = np.zeros(n_nodes + 1, index)
    np.cumsum(degree, out=indptr[1:])
    # float64 weights: what csgraph converts to anyway, so it takes these without a copy.
    graph = csr_matrix((np.ones(n_edges), hubs, indptr), shape=(n_nodes, n_nodes))
    _, component = connected_components(graph, directed=False)
    del graph, indptr
    linked = degree > 0
    linked[hubs] = True
    del hubs
    rids = np.flatnonzero(linked).astype(np.int32)
    first = np.full(component.max() + 1, n_nodes, np.int64)
    np.minimum.at(first, component[rids], rids)
    return pa.table({"rid": rids, "link_group": first[component[rids]].astype(np.int32)})


def _consent_spans(events: Sequence) -> list[list[str]]:
    """Consent events -> one row per (purpose, state) span: granted 1/0, from, to."""
    rows: list[list[str]] = []
    open_rows: dict[str, list[str]] = {}
    for e in events:
        current = open_rows.get(e.purpose)
        if current is not None and current[2] == str(int(e.granted)):
            continue  # the same state again (a second opt-out) changes nothing
        if current is not None:
            current[4] = _ts(e.at)
        row = [
            e.person_id,
            e.purpose,
            str(int(e.granted)),
            _ts(e.at),
            "",
            e.channel,
            e.notice_version,
        ]
        rows.append(row)
        open_rows[e.purpose] = row
    assert all(r[1] in PURPOSES for r in rows)
    return rows
