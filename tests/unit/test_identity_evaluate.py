"""Pairwise identity-resolution metrics (jobs/identity/evaluate.py) on hand-made truth, every
expected number counted by hand in the comment next to it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from jobs.identity.evaluate import EvaluationReport, Share, evaluate
from jobs.simulator.truth import RECORD_COLUMNS

# (dataset, record_id, person_id, flags, linkable, fuzzy_linkable, link_group)
Row = tuple[str, str, str, str, int, int, str]


def _truth(tmp_path: Path, rows: list[Row]) -> Path:
    """A truth folder as the simulator writes it (records.csv with its full header)."""
    folder = tmp_path / "_truth"
    folder.mkdir()
    with (folder / "records.csv").open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(RECORD_COLUMNS)
        for dataset, rid, person, flags, link, fuzzy, group in rows:
            out.writerow([dataset, rid, person, "2026-11-22", flags, "", link, fuzzy, group])
    with (folder / "people.csv").open("w", encoding="utf-8", newline="") as fh:
        people = sorted({r[2] for r in rows} - {""})
        csv.writer(fh).writerows([["person_id"], *([p] for p in people)])
    return folder


def _resolved(rows: list[tuple[str, str, str | None]]) -> pa.Table:
    dataset, record_id, one_id = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.table(
        {
            "dataset": pa.array(dataset, pa.string()),
            "record_id": pa.array(record_id, pa.string()),
            "one_id": pa.array(one_id, pa.string()),
        }
    )


def test_a_person_split_over_two_one_ids_has_a_third_of_its_pairs_found(tmp_path):
    truth = _truth(tmp_path, [("crm.members", str(i), "P1", "", 1, 0, "1") for i in (1, 2, 3, 4)])
    resolved = _resolved([("crm.members", str(i), "O1" if i < 3 else "O2") for i in (1, 2, 3, 4)])

    report = evaluate(resolved, truth)

    assert (report.linkable_pairs, report.found_pairs) == (6, 2)  # C(4,2); 1-2 and 3-4
    assert report.recall == pytest.approx(2 / 6)
    assert (report.predicted_pairs, report.true_pairs) == (2, 2)
    assert report.precision == 1.0
    assert report.f1 == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))  # 0.5
    assert (report.over_merged, report.under_merged) == (0, 1)
    [under] = report.worst_under_merged
    assert (under.person_id, under.records, under.link_groups, under.clusters) == ("P1", 4, 1, 2)
    assert under.missed_pairs == 4
    assert under.parts == (Share("O1", 2, ("crm.members",)), Share("O2", 2, ("crm.members",)))


def test_a_one_id_holding_two_people_costs_precision(tmp_path):
    truth = _truth(
        tmp_path,
        [
            *(("tmall.orders", f"t{i}", "P1", "", 1, 0, "1") for i in (1, 2, 3)),
            *(("youzan.orders", f"y{i}", "P2", "", 1, 0, "4") for i in (1, 2)),
        ],
    )
    resolved = _resolved(
        [
            *(("tmall.orders", f"t{i}", "O1") for i in (1, 2, 3)),
            *(("youzan.orders", f"y{i}", "O1") for i in (1, 2)),
        ]
    )

    report = evaluate(resolved, truth)

    assert report.predicted_pairs == 10  # C(5,2)
    assert report.true_pairs == 4  # C(3,2) of P1 + C(2,2) of P2
    assert report.precision == pytest.approx(0.4)
    assert report.recall == 1.0  # 3 + 1 linkable pairs, all in O1
    assert (report.over_merged, report.under_merged) == (1, 0)
    [over] = report.worst_over_merged
    assert (over.one_id, over.records, over.persons, over.false_pairs) == ("O1", 5, 2, 6)  # 3 * 2
    assert over.members == (Share("P1", 3, ("tmall.orders",)), Share("P2", 2, ("youzan.orders",)))
    assert report.worst_under_merged == ()


def test_per_dataset_scores_count_the_pairs_touching_the_dataset(tmp_path):
    # P1: a1, a2 (O1), b3, b4 (O2), one link group; P2: a5 (O2), b6 (no one_id), one group.
    truth = _truth(
        tmp_path,
        [
            ("a", "1", "P1", "", 1, 0, "1"),
            ("a", "2", "P1", "", 1, 0, "1"),
            ("b", "3", "P1", "", 1, 0, "1"),
            ("b", "4", "P1", "", 1, 0, "1"),
            ("a", "5", "P2", "", 1, 0, "5"),
            ("b", "6", "P2", "", 1, 0, "5"),
        ],
    )
    resolved = _resolved(
        [
            ("a", "1", "O1"),
            ("a", "2", "O1"),
            ("b", "3", "O2"),
            ("b", "4", "O2"),
            ("a", "5", "O2"),
            ("b", "6", None),
        ]
    )

    report = evaluate(resolved, truth)

    # Predicted: O1 {1,2} 1 pair, O2 {3,4,5} 3 pairs; true: 1-2 and 3-4.
    assert (report.predicted_pairs, report.true_pairs) == (4, 2)
    # Linkable: C(4,2) of P1 + 1 of P2; found: 1-2 and 3-4.
    assert (report.linkable_pairs, report.found_pairs) == (7, 2)
    a, b = report.by_dataset
    assert (a.dataset, a.records, a.with_one_id, a.linkable) == ("a", 3, 3, 3)
    assert (b.dataset, b.records, b.with_one_id, b.linkable) == ("b", 3, 2, 3)
    # Touching a: predicted 1-2, 3-5, 4-5; true 1-2; linkable the 5 of P1 with 1 or 2, and 5-6.
    assert (a.predicted_pairs, a.true_pairs, a.linkable_pairs, a.found_pairs) == (3, 1, 6, 1)
    assert (a.precision, a.recall) == (pytest.approx(1 / 3), pytest.approx(1 / 6))
    # Touching b: predicted 3-4, 3-5, 4-5; true 3-4; linkable the 5 of P1 with 3 or 4, and 5-6.
    assert (b.predicted_pairs, b.true_pairs, b.linkable_pairs, b.found_pairs) == (3, 1, 6, 1)
    assert [u.person_id for u in report.worst_under_merged] == ["P1", "P2"]  # 4, then 1 missed
    p2 = report.worst_under_merged[1]
    assert p2.clusters == 2
    assert p2.parts == (Share("O2", 1, ("a",)), Share(None, 1, ("b",)))


def test_pairs_only_count_within_a_link_group(tmp_path):
    """P1's phone records and WeChat records share no identifier: kept apart, nothing missed."""
    truth = _truth(
        tmp_path,
        [
            ("a", "1", "P1", "", 1, 0, "1"),
            ("a", "2", "P1", "", 1, 0, "1"),
            ("b", "3", "P1", "", 1, 0, "3"),
            ("b", "4", "P1", "", 1, 0, "3"),
        ],
    )
    resolved = _resolved([("a", "1", "O1"), ("a", "2", "O1"), ("b", "3", "O2"), ("b", "4", "O2")])

    report = evaluate(resolved, truth)

    assert (report.linkable_pairs, report.found_pairs) == (2, 2)
    assert (report.recall, report.under_merged, report.worst_under_merged) == (1.0, 0, ())


def test_spoiled_records_and_records_of_nobody_are_not_evaluated(tmp_path):
    truth = _truth(
        tmp_path,
        [
            ("a", "1", "P1", "", 1, 0, "1"),
            ("a", "2", "P1", "", 1, 0, "1"),
            ("a", "3", "P2", "bad_date|spoiled", 0, 0, ""),  # never reached bronze
            ("a", "4", "", "test", 0, 0, ""),  # the shop's test account: no person
            ("a", "5", "P3", "spoiled_not", 0, 0, ""),  # a flag merely containing the word
        ],
    )
    resolved = _resolved([("a", str(i), "O1") for i in (1, 2, 3, 4)] + [("a", "5", "O5")])

    report = evaluate(resolved, truth)

    assert (report.records, report.excluded_rows, report.not_in_truth) == (3, 2, 2)
    assert (report.predicted_pairs, report.true_pairs) == (1, 1)  # 1-2 only
    assert (report.precision, report.recall, report.over_merged) == (1.0, 1.0, 0)
    assert report.unlinkable_records == 1  # record 5


def test_a_resynced_record_counts_once_with_its_first_person(tmp_path):
    truth = _truth(
        tmp_path,
        [
            ("a", "1", "P1", "", 1, 0, "1"),
            ("a", "2", "P1", "", 1, 0, "1"),
            ("a", "1", "P2", "resync", 1, 0, "7"),  # later row of record 1: not counted
            ("a", "3", "P2", "spoiled", 1, 0, "3"),  # spoiled: its re-sync below is the first
            ("a", "4", "P2", "", 1, 0, "3"),
            ("a", "3", "P2", "resync", 1, 0, "3"),
        ],
    )
    resolved = _resolved([("a", "1", "O1"), ("a", "2", "O1"), ("a", "3", "O2"), ("a", "4", "O2")])

    report = evaluate(resolved, truth)

    assert (report.records, report.duplicate_rows, report.excluded_rows) == (4, 1, 1)
    assert (report.persons, report.predicted_pairs, report.true_pairs) == (2, 2, 2)
    assert (report.linkable_pairs, report.found_pairs) == (2, 2)
    assert report.worst_over_merged == ()


def test_null_and_missing_one_ids_are_singletons(tmp_path):
    truth = _truth(tmp_path, [("a", str(i), "P1", "", 1, 0, "1") for i in (1, 2, 3)])
    frame = pd.DataFrame({"dataset": ["a", "a"], "record_id": ["1", "2"], "one_id": ["O1", None]})

    report = evaluate(frame, truth)  # record 3 is missing from resolved

    assert (report.records, report.with_one_id, report.one_ids) == (3, 1, 1)
    assert (report.predicted_pairs, report.precision) == (0, None)
    assert (report.linkable_pairs, report.found_pairs, report.recall) == (3, 0, 0.0)
    assert report.f1 is None
    [under] = report.worst_under_merged
    assert (under.clusters, under.missed_pairs) == (3, 3)
    assert under.parts == (Share(None, 2, ("a",)), Share("O1", 1, ("a",)))  # largest first


def test_fuzzy_pairs_have_their_own_recall_and_unlinkable_records_none(tmp_path):
    truth = _truth(
        tmp_path,
        [
            ("crm.members", "L1", "P1", "", 1, 0, "1"),
            ("tmall.orders", "L2", "P1", "", 1, 0, "1"),
            ("pos.members", "F1", "P1", "", 0, 1, ""),
            ("pos.members", "F2", "P1", "", 0, 1, ""),
            ("web.events", "U1", "P1", "", 0, 0, ""),
        ],
    )
    resolved = _resolved(
        [
            ("crm.members", "L1", "O1"),
            ("tmall.orders", "L2", "O1"),
            ("pos.members", "F1", "O1"),
            ("pos.members", "F2", "O2"),
            ("web.events", "U1", "O1"),
        ]
    )

    report = evaluate(resolved, truth)

    assert (report.linkable_records, report.fuzzy_records, report.unlinkable_records) == (2, 2, 1)
    assert report.fuzzy_pairs == 5  # C(4,2) minus L1-L2
    assert report.fuzzy_found_pairs == 2  # L1-F1, L2-F1
    assert report.fuzzy_recall == pytest.approx(2 / 5)
    assert (report.linkable_pairs, report.found_pairs) == (1, 1)  # U1 is in no recall
    assert (report.predicted_pairs, report.true_pairs) == (6, 6)  # O1: L1, L2, F1, U1


def test_worst_lists_are_cut_and_ordered_by_pairs(tmp_path):
    rows: list[Row] = []
    resolved: list[tuple[str, str, str | None]] = []
    for person, n in (("P1", 2), ("P2", 4), ("P3", 3)):
        for i in range(n):  # every person's records split one per one_id
            rows.append(("a", f"{person}-{i}", person, "", 1, 0, person))
            resolved.append(("a", f"{person}-{i}", f"O{person}-{i}"))
    report = evaluate(_resolved(resolved), _truth(tmp_path, rows), worst=2)

    assert [(u.person_id, u.missed_pairs) for u in report.worst_under_merged] == [
        ("P2", 6),
        ("P3", 3),
    ]
    assert report.under_merged == 3


def test_report_is_json_and_renders_a_table(tmp_path):
    truth = _truth(
        tmp_path,
        [
            ("a", "1", "P1", "", 1, 0, "1"),
            ("a", "2", "P1", "", 1, 0, "1"),
            ("b", "3", "P2", "", 1, 0, "3"),
            ("b", "4", "P2", "", 1, 0, "3"),
        ],
    )
    resolved = _resolved([("a", "1", "O1"), ("a", "2", "O1"), ("b", "3", "O1"), ("b", "4", "O2")])

    report = evaluate(resolved, truth)
    data = json.loads(json.dumps(report.to_dict()))
    lines = report.render()

    assert isinstance(report, EvaluationReport)
    assert data["precision"] == pytest.approx(1 / 3)  # O1 {1,2,3}: 1-2 of 3 pairs
    assert data["recall"] == 0.5  # 1-2 found, 3-4 missed
    assert data["by_dataset"][1]["dataset"] == "b"
    assert data["worst_over_merged"][0]["members"][0] == {
        "key": "P1",
        "records": 2,
        "datasets": ["a"],
    }
    assert any(line.startswith("  precision     0.3333") for line in lines)
    assert any(line.split()[:2] == ["b", "2"] for line in lines)
    assert any("O1: 2 false pairs" in line for line in lines)


def test_input_it_cannot_judge_is_refused(tmp_path):
    truth = _truth(tmp_path, [("a", "1", "P1", "", 1, 0, "1"), ("a", "2", "P1", "", 1, 0, "1")])
    with pytest.raises(ValueError, match="more than one one_id"):
        evaluate(_resolved([("a", "1", "O1"), ("a", "1", "O2")]), truth)
    with pytest.raises(ValueError, match="no column one_id"):
        evaluate(pa.table({"dataset": ["a"], "record_id": ["1"]}), truth)
    old = tmp_path / "old"
    old.mkdir()
    (old / "records.csv").write_text(
        "dataset,record_id,person_id,dt,flags,receiver_person_id,linkable,fuzzy_linkable\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="no column link_group"):
        evaluate(_resolved([]), old)
