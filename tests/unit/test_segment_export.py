"""Segment exports read the lake through delta-rs + DuckDB: no Spark needed here."""

import csv
import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from jobs.common.errors import CdpError
from jobs.segments import export
from jobs.segments.definitions import load_segments
from jobs.segments.export import export_segment

DAY1, DAY2 = date(2026, 11, 21), date(2026, 11, 22)


def _rows(path):
    with Path(path).open() as fh:
        return [tuple(r.values()) for r in csv.DictReader(fh)]


def _write_360(lake, rows):
    df = pd.DataFrame(
        rows, columns=["one_id", "total_amount", "paid_orders_count", "days_since_last_order"]
    )
    write_deltalake(f"{lake.lake_root}/gold/customer_360", df, mode="overwrite")


def _at(hour):
    return datetime(2026, 11, 1, hour, tzinfo=UTC)


def _consents(lake, rows):
    """silver.consent_state rows: (subject_type, subject_id, purpose, granted, hour)."""
    subject_type, subject_id, purpose, granted, hour = zip(*rows, strict=True)
    write_deltalake(
        f"{lake.lake_root}/silver/consent_state",
        pd.DataFrame(
            {
                "subject_type": subject_type,
                "subject_id": subject_id,
                "purpose": purpose,
                "granted": granted,
                "last_event_at": [_at(h) for h in hour],
            }
        ),
        mode="overwrite",
    )


def _identity_map(lake, rows):
    """silver.identity_map rows: (one_id, identifier_type, identifier, namespace)."""
    write_deltalake(
        f"{lake.lake_root}/silver/identity_map",
        pd.DataFrame(rows, columns=["one_id", "identifier_type", "identifier", "namespace"]),
        mode="overwrite",
    )


def _world(lake):
    """a, b, d spent 300+ (high_value); c did not. a granted SMS on its phone; b on its openid;
    d granted on its phone, then withdrew on its openid (the later decision wins); e spent
    enough and decided nothing (SMS's default is no)."""
    _write_360(
        lake,
        [("a", 500.0, 3, 1), ("b", 320.0, 1, 40), ("c", 10.0, 1, 2), ("d", 900.0, 2, 5),
         ("e", 700.0, 1, 3)],
    )  # fmt: skip
    _consents(
        lake,
        [("phone_token", "tok-a", "marketing_sms", True, 1),
         ("openid", "wxapp:o-b", "marketing_sms", True, 1),
         ("phone_token", "tok-c", "marketing_sms", True, 1),
         ("phone_token", "tok-d", "marketing_sms", True, 1),
         ("openid", "wxapp:o-d", "marketing_sms", False, 2),
         ("phone_token", "tok-e", "personalization", True, 1)],
    )  # fmt: skip
    _identity_map(
        lake,
        [("a", "phone", "tok-a", None), ("b", "wechat_openid", "o-b", "wxapp"),
         ("b", "wechat_unionid", "u-b", None), ("c", "phone", "tok-c", None),
         ("d", "phone", "tok-d", None), ("d", "wechat_openid", "o-d", "wxapp"),
         ("e", "phone", "tok-e", None), ("a", "wecom_external_userid", "wm-a", "corp1")],
    )  # fmt: skip
    write_deltalake(  # the PII vault: the normalized phones behind the tokens
        f"{lake.lake_root}/vault/pii",
        pd.DataFrame(
            {"kind": ["phone", "phone"], "token": ["tok-a", "tok-c"],
             "value": ["+8613800138000", "+85291234567"]}
        ),
    )  # fmt: skip


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_full_export_carries_hashed_ids_of_consenting_members_and_a_manifest(lake):
    _world(lake)
    first = export_segment("high_value", DAY1, lake)
    folder = Path(first.folder)
    assert (first.members, first.added, first.removed, first.no_consent) == (2, 2, 0, 2)
    assert _rows(folder / "members.csv") == [
        ("a", "phone_sha256", "", _sha("13800138000")),  # a mainland number: its 11 digits
        ("a", "wecom_external_userid", "corp1", "wm-a"),
        ("b", "wechat_openid", "wxapp", "o-b"),
        ("b", "wechat_unionid", "", "u-b"),
    ]
    assert _rows(folder / "added.csv") == _rows(folder / "members.csv")
    assert "13800138000" not in "".join(p.read_text() for p in folder.iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["purpose"] == "marketing_sms"
    assert manifest["definition"]["version"] == load_segments()["high_value"].version
    assert manifest["definition"]["sql"] == "(total_amount >= 300)"
    assert (manifest["counts"]["members"], manifest["counts"]["members_rows"]) == (2, 4)
    for name, meta in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == meta["sha256"]
    kept = DeltaTable(f"{lake.lake_root}/silver/segment_members").to_pyarrow_table()
    assert sorted(kept.column("one_id").to_pylist()) == ["a", "b"]
    log = DeltaTable(f"{lake.lake_root}/ops/segment_exports").to_pyarrow_table().to_pylist()
    assert [(r["segment"], r["members"], r["no_consent"]) for r in log] == [("high_value", 2, 2)]


def test_an_incremental_export_has_who_entered_and_left_since_the_last(lake):
    _world(lake)
    export_segment("high_value", DAY1, lake)
    _write_360(lake, [("b", 320.0, 1, 40), ("c", 400.0, 2, 2), ("d", 900.0, 2, 5)])
    second = export_segment("high_value", DAY2, lake, incremental=True)
    folder = Path(second.folder)
    assert folder.name == "2026-11-22.incremental"
    assert sorted(p.name for p in folder.iterdir()) == [
        "added.csv", "id_changes.csv", "manifest.json", "removed.csv",
    ]  # fmt: skip
    # c's Hong Kong number hashes as its E.164 digits; a left with the ids One-ID knows now.
    assert _rows(folder / "added.csv") == [("c", "phone_sha256", "", _sha("85291234567"))]
    assert [r[:2] for r in _rows(folder / "removed.csv")] == [
        ("a", "phone_sha256"), ("a", "wecom_external_userid"),
    ]  # fmt: skip
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["previous_export"] == "2026-11-21"
    assert (manifest["mode"], manifest["counts"]["members"]) == ("incremental", 2)


def test_parquet_to_a_uri_and_a_rerun_replaces_the_day(lake, tmp_path):
    _world(lake)
    to = f"file://{tmp_path}/outbox"
    export_segment("high_value", DAY1, lake, fmt="parquet", to=to)
    _write_360(lake, [("a", 500.0, 3, 1)])
    again = export_segment("high_value", DAY1, lake, fmt="parquet", to=to)
    folder = tmp_path / "outbox" / "high_value" / "2026-11-21"
    assert again.folder == str(folder)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["2026-11-21"]
    members = pq.read_table(folder / "members.parquet")
    assert members.column_names == ["one_id", "id_type", "namespace", "id"]
    assert set(members.column("one_id").to_pylist()) == {"a"}
    kept = DeltaTable(f"{lake.lake_root}/silver/segment_members").to_pyarrow_table()
    assert kept.column("one_id").to_pylist() == ["a"]  # the rerun replaced the day's members


def test_an_object_store_gets_every_file_and_the_manifest(lake, monkeypatch):
    from pyarrow import fs

    store = fs._MockFileSystem()  # Arrow's in-memory filesystem, as an s3:// bucket would be
    monkeypatch.setattr(export, "_destination", lambda to, settings: (store, "bucket/cdp"))
    _world(lake)
    result = export_segment("high_value", DAY1, lake, to="s3://bucket/cdp")
    assert result.folder == "bucket/cdp/high_value/2026-11-21"
    listed = store.get_file_info(fs.FileSelector(result.folder))
    names = sorted(Path(i.path).name for i in listed)
    assert names == ["added.csv", "id_changes.csv", "manifest.json", "members.csv", "removed.csv"]
    with store.open_input_stream(f"{result.folder}/manifest.json") as fh:
        manifest = json.loads(fh.read())
    with store.open_input_stream(f"{result.folder}/members.csv") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == manifest["files"]["members.csv"]["sha256"]


def test_unknown_segment_format_and_missing_mart_are_clear_errors(lake):
    with pytest.raises(CdpError, match="unknown segment 'nope'"):
        export_segment("nope", DAY1, lake)
    with pytest.raises(CdpError, match="format 'xlsx'"):
        export_segment("high_value", DAY1, lake, fmt="xlsx")
    with pytest.raises(CdpError, match=r"gold\.customer_360 does not exist"):
        export_segment("high_value", DAY1, lake)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    tags: [big_spender]", r"line 4: segment 'bad': tags 'big_spender' unknown"),
        ("    rfm_segment: Champs", r"rfm_segment 'Champs' unknown; expected one of .*Champions"),
        ("    purpose: spam", r"purpose 'spam' is no consent purpose"),
        ("    identifiers: [email]", r"unknown identifier\(s\) email"),
        ("    colour: red", r"unknown key\(s\) colour"),
        ("    version: one", r"`version` is a whole number"),
    ],
)
def test_a_bad_definition_names_its_line_and_what_was_expected(tmp_path, body, message):
    path = tmp_path / "segments.yaml"
    text = "defaults: {purpose: ads_audience}\nsegments:\n  fine: {where: 'true'}\n  bad:\n"
    path.write_text(text + body + "\n", encoding="utf-8")
    with pytest.raises(CdpError, match=message):
        load_segments(path)


def test_a_segment_name_that_could_leave_the_exports_folder_is_refused(tmp_path):
    path = tmp_path / "segments.yaml"
    path.write_text("segments:\n  ../vip: {purpose: ads_audience}\n", encoding="utf-8")
    with pytest.raises(CdpError, match=r"line 2: segment '../vip': a segment's name is lower"):
        load_segments(path)


def test_templated_tags_and_stages_compile_to_one_condition(tmp_path):
    path = tmp_path / "segments.yaml"
    path.write_text(
        "segments:\n  s:\n    purpose: marketing_sms\n    tags: [prefers_女装]\n"
        "    not_tags: churn_risk\n    lifecycle_stage: [at_risk]\n    where: clv_12m > 100\n",
        encoding="utf-8",
    )
    assert load_segments(path)["s"].where == (
        "list_has_all(coalesce(tags, []), ['prefers_女装']) and "
        "not list_has_any(coalesce(tags, []), ['churn_risk']) and "
        "lifecycle_stage in ('at_risk') and (clv_12m > 100)"
    )


def test_an_openid_opt_out_removes_its_profile_and_exports_carry_id_changes(lake):
    _write_360(lake, [("a", 500.0, 3, 1), ("b", 800.0, 2, 1)])
    _consents(
        lake,
        [("phone_token", "tok-a", "marketing_sms", True, 1),
         ("phone_token", "tok-b", "marketing_sms", True, 1),
         ("openid", "wxapp:o-b", "marketing_sms", False, 3)],
    )  # fmt: skip
    _identity_map(
        lake,
        [("a", "phone", "tok-a", None), ("b", "phone", "tok-b", None),
         ("b", "wechat_openid", "o-b", "wxapp")],
    )  # fmt: skip
    changes = pd.DataFrame(
        {
            "_logical_date": [date(2026, 11, 20), DAY2],
            "change": ["merge", "split"],
            "old_one_id": ["x", "a"],
            "new_one_id": ["a", "y"],
        }
    )
    write_deltalake(f"{lake.lake_root}/silver/identity_updates", changes)
    first = export_segment("high_value", DAY1, lake)
    assert (first.members, first.no_consent) == (1, 1)
    assert _rows(Path(first.folder) / "id_changes.csv") == [("2026-11-20", "merge", "x", "a")]
    second = export_segment("high_value", DAY2, lake)  # only what changed since the first
    assert _rows(Path(second.folder) / "id_changes.csv") == [("2026-11-22", "split", "a", "y")]


def test_a_customers_profile_has_its_360_row_and_the_segments_of_their_latest_exports(lake):
    from jobs.marts.profile import customer_360

    _world(lake)
    export_segment("high_value", DAY1, lake)  # a and b
    export_segment("repeat_buyers", DAY1, lake)  # a (d withdrew)
    _write_360(lake, [("b", 320.0, 1, 40), ("c", 400.0, 2, 2)])
    export_segment("high_value", DAY2, lake)  # b and c: a left
    b, c = customer_360("b", lake), customer_360("c", lake)
    assert (b.row["one_id"], b.row["total_amount"], b.segments) == ("b", 320.0, ["high_value"])
    assert c.segments == ["high_value"]
    _write_360(lake, [("a", 500.0, 3, 1)])
    # a is in repeat_buyers' latest export, not in high_value's
    assert customer_360("a", lake).segments == ["repeat_buyers"]
    with pytest.raises(CdpError, match="no customer 'zz'"):
        customer_360("zz", lake)


def test_the_command_line_exports_parquet_to_a_folder_and_prints_a_profile(lake, tmp_path):
    from tests.unit.test_cli import cdp

    _world(lake)
    args = ("segments", "export", "high_value", "--date", "2026-11-21", "--format", "parquet")
    out = cdp(*args, "--to", str(tmp_path / "outbox"))
    assert out.returncode == 0, out.stderr
    assert "high_value: 2 members (+2 / -0; 2 without consent left out)" in out.stdout
    folder = tmp_path / "outbox" / "high_value" / "2026-11-21"
    assert pq.read_table(folder / "members.parquet").num_rows == 4
    incremental = cdp(*args, "--incremental")  # the same day again, to the exports folder
    assert incremental.returncode == 0, incremental.stderr
    assert (Path(lake.exports_dir) / "high_value" / "2026-11-21.incremental").is_dir()
    shown = cdp("profile", "b")
    assert shown.returncode == 0, shown.stderr
    assert "high_value" in shown.stdout
    assert "320.0" in shown.stdout
