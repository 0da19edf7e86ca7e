"""Truth's labels on hand-made records, where the right answer can be read off the page: which
records are linkable, and which of a person's linkable records form one link group."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from jobs.simulator.truth import RECORD_COLUMNS, TruthBook
from jobs.simulator.world import World

DAY = date(2026, 11, 22)


def _labels(out: Path) -> dict[str, tuple[str, str]]:
    """record_id -> (linkable, link_group) of records.csv, checking its header."""
    with (out / "_truth" / "records.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == RECORD_COLUMNS
        return {row["record_id"]: (row["linkable"], row["link_group"]) for row in reader}


def test_link_groups_follow_chains_of_one_persons_shared_ids(tmp_path):
    truth = TruthBook(tmp_path, World(3, 7, DAY))

    def record(record_id: str, person: str, *ids: tuple[str, str], flags: tuple = ()) -> None:
        truth.record("crm.members", record_id, person, DAY, ids=ids, flags=flags)

    record("A", "P1", ("phone", "138-0000-0001"))  # row 1
    record("B", "P1", ("phone", "+86 13800000001"), ("wechat_unionid", "U1"))  # row 2
    record("C", "P1", ("wechat_unionid", "U1"))  # row 3: reaches A only through B
    record("D", "P1", ("email", "p1@example.com"))  # row 4: P1's, but shares nothing
    record("S", "P1", ("wechat_unionid", "U1"), flags=("spoiled",))  # row 5: never reaches bronze
    # One household phone, two people: each person's pair is a group, never one group of four.
    record("E1", "P2", ("phone", "13700000007"))  # row 6
    record("F1", "P3", ("phone", "13700000007"))  # row 7
    record("E2", "P2", ("phone", "13700000007"))  # row 8
    record("F2", "P3", ("phone", "13700000007"))  # row 9
    record("G", "P2", ("phone", "13900000009"))  # row 10: its number is P3's below
    record("H", "P3", ("phone", "13900000009"))  # row 11: another person's: links nothing
    truth.close()

    assert _labels(tmp_path) == {
        "A": ("1", "1"),
        "B": ("1", "1"),
        "C": ("1", "1"),
        "D": ("0", ""),
        "S": ("0", ""),
        "E1": ("1", "6"),
        "E2": ("1", "6"),
        "F1": ("1", "7"),
        "F2": ("1", "7"),
        "G": ("0", ""),
        "H": ("0", ""),
    }


def test_a_group_is_labelled_by_its_first_record_whatever_joins_it_last(tmp_path):
    """X and Y share nothing until Z carries both their ids: one group, X's row."""
    truth = TruthBook(tmp_path, World(3, 7, DAY))
    truth.record("tmall.orders", "X", "P1", DAY, ids=[("phone", "13800000001")])
    truth.record("youzan.orders", "Y", "P1", DAY, ids=[("email", "p1@example.com")])
    truth.record(
        "crm.members", "Z", "P1", DAY, ids=[("phone", "13800000001"), ("email", "p1@example.com")]
    )
    truth.record("crm.members", "W", "", DAY, ids=[("phone", "13800000001")])  # nobody's
    stats = truth.close()

    assert _labels(tmp_path) == {"X": ("1", "1"), "Y": ("1", "1"), "Z": ("1", "1"), "W": ("0", "")}
    assert stats.linkable == 3


def test_no_linkable_record_leaves_every_group_empty(tmp_path):
    truth = TruthBook(tmp_path, World(3, 7, DAY))
    truth.record("crm.members", "A", "P1", DAY, ids=[("phone", "13800000001")])
    truth.record("crm.members", "A", "P1", DAY, ids=[("phone", "13800000001")], flags=["resync"])
    truth.close()

    with (tmp_path / "_truth" / "records.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["linkable"], r["link_group"]) for r in rows] == [("0", ""), ("0", "")]
