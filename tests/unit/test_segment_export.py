"""Segment exports read the lake through delta-rs + DuckDB: no Spark needed here."""

import csv
import hashlib
import json
from datetime import date

import pandas as pd
import pytest
from deltalake import write_deltalake

from jobs.common.errors import CdpError
from jobs.segments.export import export_segment


def _keys(path):
    with path.open() as fh:
        return [r["one_id"] for r in csv.DictReader(fh)]


def _write_360(lake, rows):
    df = pd.DataFrame(
        rows, columns=["one_id", "total_amount", "paid_orders_count", "days_since_last_order"]
    )
    write_deltalake(f"{lake.lake_root}/gold/customer_360", df, mode="overwrite")


def test_export_members_diff_manifest_and_optouts(lake):
    _write_360(
        lake, [("a", 500.0, 3, 1), ("b", 320.0, 1, 40), ("c", 10.0, 1, 2), ("d", 900.0, 2, 5)]
    )
    write_deltalake(  # d's phone said no to SMS; c's "no" is to personalization, not marketing
        f"{lake.lake_root}/silver/consent_state",
        pd.DataFrame(
            {
                "subject_type": ["phone_token", "phone_token", "phone_token", "openid"],
                "subject_id": ["tok-d", "tok-c", "tok-a", "wxapp:o-b"],
                "purpose": ["marketing_sms", "personalization", "marketing_sms", "marketing_oa"],
                "granted": [False, False, True, True],
            }
        ),
    )
    write_deltalake(  # One-ID: which profile holds which phone and openid
        f"{lake.lake_root}/silver/identity_map",
        pd.DataFrame(
            {
                "one_id": ["a", "b", "c", "d"],
                "identifier_type": ["phone", "wechat_openid", "phone", "phone"],
                "identifier": ["tok-a", "o-b", "tok-c", "tok-d"],
            }
        ),
    )
    first = export_segment("high_value", date(2026, 11, 21), lake)
    assert _keys(first.folder / "members.csv") == ["a", "b"]
    assert first.optouts_removed == 1
    assert first.added == 2

    _write_360(lake, [("a", 500.0, 3, 1), ("c", 400.0, 2, 2), ("d", 900.0, 2, 5)])
    second = export_segment("high_value", date(2026, 11, 22), lake)
    assert _keys(second.folder / "members.csv") == ["a", "c"]
    assert _keys(second.folder / "added.csv") == ["c"]
    assert _keys(second.folder / "removed.csv") == ["b"]
    manifest = json.loads((second.folder / "manifest.json").read_text())
    assert manifest["previous_export"] == "2026-11-21"
    assert manifest["counts"] == {
        "members": 2, "added": 1, "removed": 1, "optouts_removed": 1, "id_changes": 0,
    }  # fmt: skip
    for name, meta in manifest["files"].items():
        assert hashlib.sha256((second.folder / name).read_bytes()).hexdigest() == meta["sha256"]


def test_rerun_of_a_day_replaces_that_export(lake):
    _write_360(lake, [("a", 500.0, 3, 1)])
    export_segment("high_value", date(2026, 11, 21), lake)
    _write_360(lake, [("a", 500.0, 3, 1), ("b", 600.0, 1, 1)])
    again = export_segment("high_value", date(2026, 11, 21), lake)
    assert _keys(again.folder / "members.csv") == ["a", "b"]
    assert sorted(p.name for p in again.folder.parent.iterdir()) == ["2026-11-21"]


def test_unknown_segment_and_missing_mart_are_clear_errors(lake):
    with pytest.raises(CdpError, match="unknown segment 'nope'"):
        export_segment("nope", date(2026, 11, 21), lake)
    with pytest.raises(CdpError, match=r"gold\.customer_360 does not exist"):
        export_segment("high_value", date(2026, 11, 21), lake)


def test_an_openid_opt_out_removes_its_profile_and_exports_carry_id_changes(lake):
    _write_360(lake, [("a", 500.0, 3, 1), ("b", 800.0, 2, 1)])
    write_deltalake(
        f"{lake.lake_root}/silver/consent_state",
        pd.DataFrame(
            {"subject_type": ["openid"], "subject_id": ["wxapp:o-b"],
             "purpose": ["marketing_wecom"], "granted": [False]}
        ),
    )  # fmt: skip
    write_deltalake(
        f"{lake.lake_root}/silver/identity_map",
        pd.DataFrame(
            {"one_id": ["b"], "identifier_type": ["wechat_openid"], "identifier": ["o-b"]}
        ),
    )
    changes = pd.DataFrame(
        {
            "_logical_date": [date(2026, 11, 20), date(2026, 11, 22)],
            "change": ["merge", "split"],
            "old_one_id": ["x", "a"],
            "new_one_id": ["a", "y"],
        }
    )
    write_deltalake(f"{lake.lake_root}/silver/identity_updates", changes)
    first = export_segment("high_value", date(2026, 11, 21), lake)
    assert _keys(first.folder / "members.csv") == ["a"]
    with (first.folder / "id_changes.csv").open() as fh:
        assert [(r["old_one_id"], r["new_one_id"]) for r in csv.DictReader(fh)] == [("x", "a")]
    second = export_segment("high_value", date(2026, 11, 22), lake)
    with (second.folder / "id_changes.csv").open() as fh:  # only what changed since the first
        assert [(r["change"], r["old_one_id"]) for r in csv.DictReader(fh)] == [("split", "a")]
