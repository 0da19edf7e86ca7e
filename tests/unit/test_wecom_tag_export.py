"""The WeCom tag-assignment export (jobs/segments/wecom_tags.py): the day's changes per active
relationship, in mark_tag's shape, opt-outs left out."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.common.errors import CdpError
from jobs.common.lake import table_path
from jobs.segments.wecom_tags import export_wecom_tags

D1, D2 = date(2026, 11, 28), date(2026, 11, 29)


def _write(lake, name: str, rows: list[dict]) -> None:
    write_deltalake(table_path("silver", name, lake), pa.Table.from_pylist(rows), mode="overwrite")


@pytest.fixture
def world(lake):
    held = {
        D1: {"A": ["high_value", "repeat_buyer"], "B": ["cart_abandoner"], "C": ["oa_follower"]},
        D2: {"A": ["high_value", "price_sensitive"], "B": [], "C": ["churn_risk"], "Z": ["x"]},
    }
    _write(
        lake,
        "customer_tag_days",
        [
            {"as_of": day, "one_id": one_id, "kind": kind, "tag": tag}
            for day, customers in held.items()
            for one_id, tags in customers.items()
            for kind, tag in [("stage", "active"), *(("tag", t) for t in tags)]
        ],
    )
    _write(
        lake,
        "wecom_relationships",
        [
            {"guide_user_id": "g1", "external_userid": "wmA", "status": "active"},
            {"guide_user_id": "g2", "external_userid": "wmA", "status": "active"},  # two guides
            {"guide_user_id": "g1", "external_userid": "wmB", "status": "active"},
            {"guide_user_id": "g1", "external_userid": "wmC", "status": "deleted_by_customer"},
        ],
    )
    _write(
        lake,
        "identity_map",
        [
            {"one_id": o, "identifier_type": "wecom_external_userid", "identifier": f"wm{o}"}
            for o in "ABC"
        ]
        + [{"one_id": "B", "identifier_type": "phone", "identifier": "tokB"}],
    )
    _write(
        lake,
        "consent_state",
        [
            {
                "subject_type": "phone_token",
                "subject_id": "tokB",
                "purpose": "marketing_wecom",
                "granted": False,
            }
        ],
    )
    return lake


def test_each_active_relationship_gets_the_days_changes_by_name(world):
    result = export_wecom_tags(D2, world)
    lines = (result.folder / "mark_tag.jsonl").read_text(encoding="utf-8").splitlines()
    got = [json.loads(line) for line in lines]
    # A: +price_sensitive -repeat_buyer, for each guide who has them as a friend; B opted out
    # (its phone said no to WeCom marketing); C deleted the guide; stages never go out
    change = {
        "tag_group": "CDP",
        "add_tag_names": ["price_sensitive"],
        "remove_tag_names": ["repeat_buyer"],
    }
    assert got == [
        {"userid": "g1", "external_userid": "wmA", **change},
        {"userid": "g2", "external_userid": "wmA", **change},
    ]
    manifest = json.loads((result.folder / "manifest.json").read_text())
    assert manifest["counts"] == {"relationships": 2, "add_tag": 2, "remove_tag": 2}
    assert (result.relationships, result.added, result.removed) == (2, 2, 2)


def test_the_first_scored_day_adds_every_tag(world):
    got = [
        json.loads(line)
        for line in (export_wecom_tags(D1, world).folder / "mark_tag.jsonl")
        .read_text()
        .splitlines()
    ]
    assert got[0]["add_tag_names"] == ["high_value", "repeat_buyer"]
    assert got[0]["remove_tag_names"] == []


def test_without_the_tables_it_says_what_to_run(lake):
    with pytest.raises(CdpError, match="run the daily batch"):
        export_wecom_tags(D2, lake)
    assert not (Path(lake.exports_dir) / "wecom_tags").exists()
