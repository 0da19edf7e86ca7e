"""How good a One-ID is, against the simulator's truth: pairwise precision and recall.

Pairwise, because a cluster metric would hide what matters to a CDP: one wrong merge of two busy
customers joins every record of one to every record of the other, and a missed link leaves a
whole set of orders without their member. A pair is two records given the same `one_id`
(predicted) or belonging to the same person (true).

Recall only asks for what identifiers can find. A pair counts as linkable when both records are
`linkable` and in the same `link_group` of truth (connected through a chain of the person's
shared identifiers); a person whose WeChat records share no identifier with their phone records
has two groups, and a resolver that keeps them apart has missed nothing. Records linkable only by
name, birthday and address (`fuzzy_linkable`) get a recall of their own, and records that neither
reach are only counted: no resolver could link them, so they are in no recall.

The caller hands over `resolved` (one row per record, from whatever resolver is being judged);
nothing here reads the lake. Everything is DuckDB SQL over a table of evaluated records, pairs as
n*(n-1)/2 in BIGINT, with a memory limit and a spill directory, so 10M records fit a small box.
Truth is read through pyarrow's streaming CSV reader because it numbers the rows in file order:
"the first row of a re-synced record" needs that order, and DuckDB's CSV reader cannot give it.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
from pyarrow import csv as pacsv

from jobs.common import lake

if TYPE_CHECKING:
    import pandas as pd

TRUTH_COLUMNS = (
    "dataset", "record_id", "person_id", "flags", "linkable", "fuzzy_linkable", "link_group",
)  # fmt: skip
RESOLVED_COLUMNS = ("dataset", "record_id", "one_id")
WORST = 10  # over- and under-merges listed
SHOWN = 5  # persons of an over-merged one_id, or one_ids of an under-merged person, listed
MEMORY_LIMIT = "256MB"  # as truth.py; 10M records: ~1 min spilling, ~400 MB RSS besides `resolved`


@dataclass(frozen=True)
class DatasetScore:
    """One dataset's records and the pairs touching it (at least one record from it)."""

    dataset: str
    records: int
    with_one_id: int
    linkable: int
    predicted_pairs: int
    true_pairs: int
    linkable_pairs: int
    found_pairs: int

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_pairs, self.predicted_pairs)

    @property
    def recall(self) -> float | None:
        return _ratio(self.found_pairs, self.linkable_pairs)


@dataclass(frozen=True)
class Share:
    """Part of an error: a person inside an over-merged one_id, or a one_id holding part of an
    under-merged person (`one_id` None: the person's records that got no one_id, each alone)."""

    key: str | None
    records: int
    datasets: tuple[str, ...]


@dataclass(frozen=True)
class OverMerge:
    """A one_id holding several people; `false_pairs` are its pairs of two different people."""

    one_id: str
    records: int
    persons: int
    false_pairs: int
    members: tuple[Share, ...]  # the largest SHOWN persons


@dataclass(frozen=True)
class UnderMerge:
    """A person whose linkable records are spread over several one_ids (or left without one)."""

    person_id: str
    records: int  # linkable records
    link_groups: int
    clusters: int  # distinct one_ids, plus one per record without one
    missed_pairs: int
    parts: tuple[Share, ...]  # the largest SHOWN one_ids, None for the records without one


@dataclass(frozen=True)
class EvaluationReport:
    """Pair counts over the evaluated records; the rates derive from them, so a JSON report
    carries the numbers needed to check every rate by hand."""

    records: int
    with_one_id: int
    one_ids: int
    persons: int
    excluded_rows: int  # truth rows of spoiled records or of no person
    duplicate_rows: int  # truth rows of a record already seen (re-syncs)
    not_in_truth: int  # resolved records that are no evaluated record
    predicted_pairs: int
    true_pairs: int
    linkable_records: int
    linkable_pairs: int
    found_pairs: int
    fuzzy_records: int
    fuzzy_pairs: int
    fuzzy_found_pairs: int
    unlinkable_records: int
    over_merged: int  # one_ids holding more than one person
    under_merged: int  # (person, link_group) groups not in one one_id
    by_dataset: tuple[DatasetScore, ...]
    worst_over_merged: tuple[OverMerge, ...]
    worst_under_merged: tuple[UnderMerge, ...]

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_pairs, self.predicted_pairs)

    @property
    def recall(self) -> float | None:
        """Of the linkable pairs (same person, same link group), those in one one_id."""
        return _ratio(self.found_pairs, self.linkable_pairs)

    @property
    def fuzzy_recall(self) -> float | None:
        return _ratio(self.fuzzy_found_pairs, self.fuzzy_pairs)

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict:
        """Plain types for `json.dumps`: the counts, the rates (None when a rate has no pairs to
        count), and the same for every dataset."""
        out = asdict(self)
        for name in ("precision", "recall", "fuzzy_recall", "f1"):
            out[name] = getattr(self, name)
        for row, score in zip(out["by_dataset"], self.by_dataset, strict=True):
            row["precision"], row["recall"] = score.precision, score.recall
        return out

    def render(self) -> list[str]:
        """Lines for a terminal: the headline rates, a table per dataset, the worst errors."""
        lines = [
            f"{_n(self.records)} records ({_n(self.with_one_id)} with a one_id) in "
            f"{_n(self.one_ids)} one_ids, {_n(self.persons)} persons",
            f"  precision     {_rate(self.precision)}  "
            f"{_n(self.true_pairs)} of {_n(self.predicted_pairs)} predicted pairs",
            f"  recall        {_rate(self.recall)}  "
            f"{_n(self.found_pairs)} of {_n(self.linkable_pairs)} linkable pairs "
            f"({_n(self.linkable_records)} records)",
            f"  fuzzy recall  {_rate(self.fuzzy_recall)}  "
            f"{_n(self.fuzzy_found_pairs)} of {_n(self.fuzzy_pairs)} pairs "
            f"({_n(self.fuzzy_records)} records linkable by name/birthday/address only)",
            f"  F1            {_rate(self.f1)}",
            f"  unlinkable records (in no recall): {_n(self.unlinkable_records)}",
            f"  over-merged one_ids: {_n(self.over_merged)}; "
            f"under-merged link groups: {_n(self.under_merged)}",
            f"  truth rows left out: {_n(self.excluded_rows)} spoiled or of no person, "
            f"{_n(self.duplicate_rows)} re-syncs; resolved records not in truth: "
            f"{_n(self.not_in_truth)}",
            "",
        ]
        width = max([len("dataset"), *(len(s.dataset) for s in self.by_dataset)])
        lines.append(
            f"{'dataset':<{width}}  {'records':>10}  {'with one_id':>11}  {'linkable':>10}  "
            f"{'precision':>9}  {'recall':>7}"
        )
        for s in self.by_dataset:
            lines.append(
                f"{s.dataset:<{width}}  {_n(s.records):>10}  {_n(s.with_one_id):>11}  "
                f"{_n(s.linkable):>10}  {_rate(s.precision):>9}  {_rate(s.recall):>7}"
            )
        if self.worst_over_merged:
            lines += ["", "worst over-merged one_ids (pairs of two different persons):"]
            for o in self.worst_over_merged:
                lines.append(
                    f"  {o.one_id}: {_n(o.false_pairs)} false pairs, {_n(o.records)} records of "
                    f"{_n(o.persons)} persons: {_shares(o.members, o.records)}"
                )
        if self.worst_under_merged:
            lines += ["", "worst under-merged persons (linkable pairs missed):"]
            for u in self.worst_under_merged:
                lines.append(
                    f"  {u.person_id}: {_n(u.missed_pairs)} missed pairs, {_n(u.records)} "
                    f"linkable records (link groups: {_n(u.link_groups)}) in "
                    f"{_n(u.clusters)} clusters: {_shares(u.parts, u.records)}"
                )
        return lines


def evaluate(
    resolved: pa.Table | pd.DataFrame,
    truth_dir: Path,
    *,
    worst: int = WORST,
    memory_limit: str = MEMORY_LIMIT,
    temp_directory: Path | None = None,
    datasets: tuple[str, ...] = (),
) -> EvaluationReport:
    """Score `resolved` (dataset, record_id, one_id; one row per record, one_id null for a record
    that got none) against `truth_dir/records.csv`; only the pairs of records of `datasets`
    when given (the two member lists, say).

    DuckDB stays within `memory_limit`, spilling to `temp_directory` (a fresh temporary folder,
    removed afterwards, when None). Raises ValueError when a column is missing or a record has
    two one_ids: a report on such input would be wrong without saying so."""
    missing = [c for c in RESOLVED_COLUMNS if c not in _columns(resolved)]
    if missing:
        raise ValueError(f"resolved has no column {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="cdp-evaluate-") as scratch:
        spill = Path(temp_directory) if temp_directory is not None else Path(scratch)
        con = duckdb.connect()
        try:
            con.execute("set enable_progress_bar = false")
            con.execute(f"set memory_limit = {_literal(memory_limit)}")
            con.execute(f"set temp_directory = {_literal(str(spill))}")
            con.register("resolved_input", resolved)
            truth_rows = _truth_rows(Path(truth_dir) / "records.csv")
            con.register("truth_input", truth_rows)
            return _report(con, worst, datasets)
        finally:
            con.close()


def _columns(table: pa.Table | pd.DataFrame) -> list[str]:
    return list(table.column_names if isinstance(table, pa.Table) else table.columns)


def _truth_rows(path: Path) -> pa.RecordBatchReader:
    """The columns evaluation needs, as strings ('' for empty), with `pos`: the row's place in
    the file. Streamed: a 10M-row truth is never in memory at once."""
    with path.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh), [])
    missing = [c for c in TRUTH_COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{path} has no column {', '.join(missing)}: a truth written before it existed "
            "(simulate the world again)"
        )
    reader = pacsv.open_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(TRUTH_COLUMNS, pa.string()),
            include_columns=list(TRUTH_COLUMNS),
            strings_can_be_null=False,
        ),
    )
    schema = reader.schema.append(pa.field("pos", pa.int64()))

    def numbered() -> Iterator[pa.RecordBatch]:
        at = 0
        for batch in reader:
            pos = pa.array(np.arange(at, at + batch.num_rows, dtype=np.int64))
            at += batch.num_rows
            yield pa.RecordBatch.from_arrays([*batch.columns, pos], schema=schema)

    return pa.RecordBatchReader.from_batches(schema, numbered())


def _report(
    con: duckdb.DuckDBPyConnection, worst: int, datasets: tuple[str, ...] = ()
) -> EvaluationReport:
    con.execute("create temp macro pairs(n) as n::bigint * (n::bigint - 1) // 2")
    scope = lake.sql_in("dataset", list(datasets)) if datasets else "true"
    con.execute(f"create table truth_rows as select * from truth_input where {scope}")
    con.execute(
        """
        create table evaluated as  -- one row per record that reached bronze and is someone's
        with kept as (
            select * from truth_rows
            where person_id <> '' and not list_contains(string_split(flags, '|'), 'spoiled')
        ), firsts as (
            select dataset, record_id,
                   arg_min({'person_id': person_id, 'linkable': linkable = '1',
                            'fuzzy': fuzzy_linkable = '1', 'link_group': nullif(link_group, '')},
                           pos) as t
            from kept group by all
        )
        select dataset, record_id, t.person_id, t.linkable, t.fuzzy, t.link_group from firsts
        """
    )
    con.execute(
        """
        create table resolved_one as
        select dataset::varchar as dataset, record_id::varchar as record_id,
               min(one_id::varchar) as one_id, max(one_id::varchar) as other
        from resolved_input group by all
        """
    )
    conflicts = con.execute(
        """select dataset, record_id from resolved_one where one_id <> other
           order by all limit 3"""
    ).fetchall()
    if conflicts:
        raise ValueError(f"records with more than one one_id in resolved, e.g. {conflicts}")
    con.execute(
        """
        create table rec as
        select e.*, r.one_id from evaluated e left join resolved_one r using (dataset, record_id)
        """
    )

    def one(sql: str) -> tuple:
        [row] = con.execute(sql).fetchall()
        return tuple(0 if v is None else int(v) for v in row)

    records, with_one_id, one_ids, persons, linkable, fuzzy, unlinkable = one(
        """select count(*), count(one_id), count(distinct one_id), count(distinct person_id),
                  count(*) filter (linkable), count(*) filter (fuzzy and not linkable),
                  count(*) filter (not linkable and not fuzzy)
           from rec"""
    )
    truth_rows, evaluated_rows = one(
        """select (select count(*) from truth_rows),
                  (select count(*) from truth_rows
                   where person_id <> '' and not list_contains(string_split(flags, '|'),
                                                                'spoiled'))"""
    )
    (not_in_truth,) = one(
        "select count(*) from resolved_one r anti join evaluated e using (dataset, record_id) "
        f"where {scope}"
    )
    (fuzzy_pairs,) = one(_fuzzy_pairs("person_id", "true"))
    (fuzzy_found,) = one(_fuzzy_pairs("person_id, one_id", "one_id is not null"))
    (over_merged,) = one(
        """select count(*) from (select one_id from rec where one_id is not null
           group by one_id having count(distinct person_id) > 1)"""
    )
    (under_merged,) = one(
        """select count(*) from (select person_id, link_group from rec where linkable
           group by all having count(one_id) < count(*) or count(distinct one_id) > 1)"""
    )
    return EvaluationReport(
        records=records,
        with_one_id=with_one_id,
        one_ids=one_ids,
        persons=persons,
        excluded_rows=truth_rows - evaluated_rows,
        duplicate_rows=evaluated_rows - records,
        not_in_truth=not_in_truth,
        predicted_pairs=one(_pairs(*PREDICTED))[0],
        true_pairs=one(_pairs(*TRUE))[0],
        linkable_records=linkable,
        linkable_pairs=one(_pairs(*LINKABLE))[0],
        found_pairs=one(_pairs(*FOUND))[0],
        fuzzy_records=fuzzy,
        fuzzy_pairs=fuzzy_pairs,
        fuzzy_found_pairs=fuzzy_found,
        unlinkable_records=unlinkable,
        over_merged=over_merged,
        under_merged=under_merged,
        by_dataset=_by_dataset(con),
        worst_over_merged=_worst_over_merged(con, worst),
        worst_under_merged=_worst_under_merged(con, worst),
    )


# (group keys, filter) of each kind of pair: records in one group are pairwise of that kind.
PREDICTED = ("one_id", "one_id is not null")
TRUE = ("one_id, person_id", "one_id is not null")
LINKABLE = ("person_id, link_group", "linkable")
FOUND = ("one_id, person_id, link_group", "linkable and one_id is not null")


def _pairs(keys: str, where: str) -> str:
    return f"""select sum(pairs(n))::bigint from (
                   select count(*) as n from rec where {where} group by {keys})"""


def _touching(keys: str, where: str) -> str:
    """(dataset, pairs with at least one record of the dataset): all of a group's pairs but
    those of its records from elsewhere."""
    return f"""
        with by_dataset as (
            select {keys}, dataset, count(*) as nd from rec where {where} group by all
        ), totals as (
            select {keys}, sum(nd) as n from by_dataset group by all
        )
        select dataset, sum(pairs(n) - pairs(n - nd))::bigint
        from by_dataset join totals using ({keys}) group by dataset
    """


def _fuzzy_pairs(keys: str, where: str) -> str:
    """Same-person pairs of linkable-or-fuzzy records with at least one fuzzy record: all such
    pairs of a group but those of two records that are not fuzzy."""
    return f"""select sum(pairs(n) - pairs(n - f))::bigint from (
                   select count(*) as n, count(*) filter (fuzzy) as f from rec
                   where (linkable or fuzzy) and {where} group by {keys})"""


def _by_dataset(con: duckdb.DuckDBPyConnection) -> tuple[DatasetScore, ...]:
    counts = {
        kind: dict(con.execute(_touching(*spec)).fetchall())
        for kind, spec in (
            ("predicted", PREDICTED),
            ("true", TRUE),
            ("linkable", LINKABLE),
            ("found", FOUND),
        )
    }
    rows = con.execute(
        """select dataset, count(*), count(one_id), count(*) filter (linkable)
           from rec group by dataset order by dataset"""
    ).fetchall()
    return tuple(
        DatasetScore(
            dataset=dataset,
            records=n,
            with_one_id=with_id,
            linkable=link,
            predicted_pairs=int(counts["predicted"].get(dataset, 0)),
            true_pairs=int(counts["true"].get(dataset, 0)),
            linkable_pairs=int(counts["linkable"].get(dataset, 0)),
            found_pairs=int(counts["found"].get(dataset, 0)),
        )
        for dataset, n, with_id, link in rows
    )


def _worst_over_merged(con: duckdb.DuckDBPyConnection, worst: int) -> tuple[OverMerge, ...]:
    rows = con.execute(
        f"""
        with members as (
            select one_id, person_id, count(*) as m from rec where one_id is not null group by all
        ), clusters as (
            select one_id, sum(m) as n, count(*) as persons, sum(pairs(m)) as same
            from members group by one_id having count(*) > 1
        ), top as (
            select one_id, n, persons, pairs(n) - same as false_pairs from clusters
            order by false_pairs desc, one_id limit {int(worst)}
        ), shown as (  -- datasets only for the few one_ids shown
            select one_id, person_id, count(*) as m,
                   list(distinct dataset order by dataset) as ds,
                   row_number() over (partition by one_id order by count(*) desc, person_id) as k
            from rec semi join top using (one_id) group by one_id, person_id
        )
        select t.one_id, t.n, t.persons, t.false_pairs,
               list((s.person_id, s.m, s.ds) order by s.k) filter (s.k <= {SHOWN})
        from top t join shown s using (one_id)
        group by all order by t.false_pairs desc, t.one_id
        """
    ).fetchall()
    return tuple(
        OverMerge(
            one_id=one_id,
            records=int(n),
            persons=int(persons),
            false_pairs=int(false_pairs),
            members=tuple(_share(m) for m in shown),
        )
        for one_id, n, persons, false_pairs, shown in rows
    )


def _worst_under_merged(con: duckdb.DuckDBPyConnection, worst: int) -> tuple[UnderMerge, ...]:
    rows = con.execute(
        f"""
        with groups as (
            select person_id, link_group, count(*) as k from rec where linkable group by all
        ), found as (
            select person_id, link_group, one_id, count(*) as m from rec
            where linkable and one_id is not null group by all
        ), missed as (
            select g.person_id, sum(g.k) as n, count(*) as link_groups,
                   sum(pairs(g.k)) - coalesce(any_value(f.found), 0) as missed_pairs
            from groups g left join (
                select person_id, sum(pairs(m)) as found from found group by person_id
            ) f using (person_id)
            group by g.person_id
        ), top as (
            select * from missed where missed_pairs > 0
            order by missed_pairs desc, person_id limit {int(worst)}
        ), parts as (
            select person_id, one_id, count(*) as m, list(distinct dataset order by dataset) as ds
            from rec semi join top using (person_id) where linkable group by all
        ), shown as (
            select *, row_number() over (
                partition by person_id order by m desc, one_id nulls last) as k
            from parts
        )
        select t.person_id, t.n, t.link_groups,
               count(s.one_id) + coalesce(sum(s.m) filter (s.one_id is null), 0) as clusters,
               t.missed_pairs,
               list((s.one_id, s.m, s.ds) order by s.k) filter (s.k <= {SHOWN})
        from top t join shown s using (person_id)
        group by all order by t.missed_pairs desc, t.person_id
        """
    ).fetchall()
    return tuple(
        UnderMerge(
            person_id=person_id,
            records=int(n),
            link_groups=int(groups),
            clusters=int(clusters),
            missed_pairs=int(missed),
            parts=tuple(_share(p) for p in shown),
        )
        for person_id, n, groups, clusters, missed, shown in rows
    )


def _share(row: dict | tuple) -> Share:
    key, records, datasets = row.values() if isinstance(row, dict) else row
    return Share(key=key, records=int(records), datasets=tuple(datasets))


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _n(value: int) -> str:
    return f"{value:,}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _shares(shares: tuple[Share, ...], records: int) -> str:
    """`P1 3 (crm.members, tmall.orders); P2 1 (youzan.orders); 4 more records`."""
    text = "; ".join(
        f"{s.key if s.key is not None else '(no one_id)'} {_n(s.records)} ({', '.join(s.datasets)})"
        for s in shares
    )
    rest = records - sum(s.records for s in shares)
    return text + (f"; {_n(rest)} more records" if rest else "")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
