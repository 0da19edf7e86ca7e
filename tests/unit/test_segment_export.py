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
        return [r["customer_key"] for r in csv.DictReader(fh)]


def _write_360(lake, rows):
    df = pd.DataFrame(
        rows, columns=["customer_key", "total_amount", "paid_orders_count", "days_since_last_order"]
    )
    write_deltalake(f"{lake.lake_root}/gold/customer_360", df, mode="overwrite")


def test_export_members_diff_manifest_and_optouts(lake):
    _write_360(
        lake, [("a", 500.0, 3, 1), ("b", 320.0, 1, 40), ("c", 10.0, 1, 2), ("d", 900.0, 2, 5)]
    )
    write_deltalake(  # d said no to SMS; c's "no" is to personalization, not marketing
        f"{lake.lake_root}/silver/consent_state",
        pd.DataFrame(
            {
                "subject_type": ["phone_token", "phone_token", "phone_token"],
                "subject_id": ["d", "c", "a"],
                "purpose": ["marketing_sms", "personalization", "marketing_sms"],
                "granted": [False, False, True],
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
    assert manifest["counts"] == {"members": 2, "added": 1, "removed": 1, "optouts_removed": 1}
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
