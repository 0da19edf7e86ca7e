"""Silver member lists: the CRM's (`members`) and the store system's (`store_members`)."""

import hashlib
import hmac
from datetime import date, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.quality.gate import validate
from jobs.silver.members import TABLES, crm_members, store_members
from jobs.silver.table import Batch

KEY = b"silver-members-unit-test-key-0123456789ab"
DAY = date(2026, 11, 20)
EXPECTATIONS = Path("expectations")
BOOKKEEPING = "_file string, _line long, _batch_id string, _ingested_at timestamp"
CRM_SCHEMA = (
    "member_card string, registered_at timestamp, name string, mobile string, birthday date, "
    "gender string, email string, unionid string, home_store string, guide string, "
    "channel string, tmall_open_uid string, address string, updated_at timestamp, " + BOOKKEEPING
)
POS_SCHEMA = (
    "store_member_id string, name string, gender string, birthday date, mobile string, "
    "contact_phone string, address string, store_code string, store_name string, level string, "
    "registered date, note string, " + BOOKKEEPING
)
INGESTED = datetime(2026, 11, 20, 23, 0, 0)
ADDRESS = "浙江省杭州市西湖区文三路39号27栋2单元701室"


def _names(schema: str) -> list[str]:
    return [part.strip().split(" ")[0] for part in schema.split(", ")]


def frame(spark, schema: str, rows: list[dict], **defaults):
    base = {"_file": "crm/members.csv", "_line": 1, "_batch_id": "b1", "_ingested_at": INGESTED}
    base |= defaults
    names = _names(schema)
    return spark.createDataFrame([tuple({**base, **r}.get(n) for n in names) for r in rows], schema)


def member(card: str = "863051476774", **kw) -> dict:
    return {
        "member_card": card,
        "registered_at": datetime(2020, 1, 1, 0, 0),
        "name": "朱强磊",
        "mobile": "15855093318",
        "birthday": date(1995, 4, 9),
        "gender": "M",
        "email": " Zhu.QL@QQ.com ",
        "unionid": "obTes0ysrvgPbiT8_RMaAlsQM8qx",
        "home_store": "HZ004",
        "guide": "ChenLei",
        "channel": "miniprogram",
        "tmall_open_uid": "",
        "address": ADDRESS,
        "updated_at": datetime(2020, 1, 1, 0, 0),
        **kw,
    }


def store_member(member_id: str = "VIP10633522", **kw) -> dict:
    return {
        "store_member_id": member_id,
        "name": "刘玲英",
        "gender": "F",
        "birthday": date(1967, 3, 4),
        "mobile": "13025450782",
        "contact_phone": None,
        "address": "北京市朝阳区科技园路940号4栋2单元2504室",
        "store_code": "BJ002",
        "store_name": "北京三里屯太古里店",
        "level": "NORMAL",
        "registered": date(2020, 2, 3),
        "note": "敏感肌",
        **kw,
    }


def _token(kind: str, value: str) -> str:
    return hmac.new(KEY, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def _silver_text(row) -> str:
    """Every value silver keeps (the vault-bound `_pii_*` columns are taken off first)."""
    return repr([v for k, v in row.asDict().items() if not k.startswith("_pii_")])


# --- the CRM's members ------------------------------------------------------------------------


def test_a_resynced_member_keeps_the_latest_crm_update(spark):
    old = member(mobile="15855093318", updated_at=datetime(2026, 11, 19, 9))
    new = member(mobile="13911112222", updated_at=datetime(2026, 11, 20, 9))
    # The newer update arrived first (an earlier file): the CRM's updated_at decides, not arrival.
    bronze = frame(spark, CRM_SCHEMA, [new], _ingested_at=datetime(2026, 11, 20, 1)).unionByName(
        frame(spark, CRM_SCHEMA, [old], _ingested_at=datetime(2026, 11, 20, 5))
    )
    rows = crm_members(bronze, KEY).collect()
    assert len(rows) == 1
    assert rows[0].phone_token == _token("phone", "+8613911112222")
    assert rows[0].crm_updated_at == datetime(2026, 11, 20, 9)
    assert rows[0].updated_at == datetime(2026, 11, 20, 1)  # when that row reached the lake


def test_member_pii_becomes_tokens_masks_and_vault_values(spark):
    row = crm_members(frame(spark, CRM_SCHEMA, [member()]), KEY).collect()[0]
    assert row.phone_token == _token("phone", "+8615855093318")
    assert row.email_token == _token("email", "zhu.ql@qq.com")
    assert row["_pii_email__email"] == "zhu.ql@qq.com"
    assert row.name_token == _token("name", row["_pii_name__name"])
    assert row.address_token == _token("address", row["_pii_address__address"])
    assert row.name_masked.startswith("朱")
    assert "*" in row.name_masked
    assert "*" in row.phone_masked
    assert "*" in row.email_masked
    assert "*" in row.address_masked
    text = _silver_text(row)
    for raw in ("朱强磊", "15855093318", "Zhu.QL@QQ.com", "zhu.ql@qq.com", "文三路39号"):
        assert raw not in text
    # Platform ids stay in clear.
    assert row.unionid == "obTes0ysrvgPbiT8_RMaAlsQM8qx"
    assert row.tmall_open_uid is None  # an empty cell


def test_member_address_keeps_its_divisions_in_clear(spark):
    row = crm_members(frame(spark, CRM_SCHEMA, [member()]), KEY).collect()[0]
    assert (row.province, row.city, row.district) == ("浙江省", "杭州市", "西湖区")
    assert row.district_code.startswith("3301")
    assert row.address_masked.startswith("浙江省杭州市西湖区")


def test_member_birthday_year_and_gender(spark):
    rows = [
        member("A", birthday=date(1995, 4, 9), gender="F"),
        member("B", birthday=date(1850, 1, 1), gender="U"),  # implausible: no birthday
        member("C", birthday=None, gender="X"),  # a value the spec does not map
    ]
    got = {r.member_card: r for r in crm_members(frame(spark, CRM_SCHEMA, rows), KEY).collect()}
    assert (got["A"].birthday, got["A"].birth_year, got["A"].gender) == (
        date(1995, 4, 9),
        1995,
        "F",
    )
    assert (got["B"].birthday, got["B"].birth_year, got["B"].gender) == (None, None, "U")
    assert (got["C"].birthday, got["C"].gender) == (None, None)


def test_member_without_contact_details_keeps_null_tokens(spark):
    row = crm_members(
        frame(spark, CRM_SCHEMA, [member(email="", address=None, mobile="138****1234")]), KEY
    ).collect()[0]
    assert row.email_token is None
    assert row.email_masked is None
    assert row.address_token is None
    assert row.province is None
    assert row.phone_token is None  # a masked number is no phone
    assert row.phone_partial == "138****1234"


# --- the store system's members ---------------------------------------------------------------


def test_store_phone_is_found_where_the_clerk_put_it(spark):
    rows = [
        store_member("VIP1", mobile="13025450782", contact_phone="13900001111"),
        store_member("VIP2", mobile=None, contact_phone="17842226802"),
        store_member("VIP3", mobile=None, note="手机14086566733"),
        store_member("VIP4", mobile="11111111111"),  # junk a clerk typed to pass the field
        store_member("VIP5", mobile="１３０２５４５０７８３"),  # full-width digits
    ]
    got = {
        r.store_member_id: r for r in store_members(frame(spark, POS_SCHEMA, rows), KEY).collect()
    }
    assert (got["VIP1"].phone_token, got["VIP1"].phone_source) == (
        _token("phone", "+8613025450782"),
        "mobile",
    )
    assert (got["VIP2"].phone_token, got["VIP2"].phone_source) == (
        _token("phone", "+8617842226802"),
        "contact_phone",
    )
    assert (got["VIP3"].phone_token, got["VIP3"].phone_source) == (
        _token("phone", "+8614086566733"),
        "note",
    )
    assert (got["VIP4"].phone_token, got["VIP4"].phone_source) == (None, None)
    assert got["VIP5"].phone_token == _token("phone", "+8613025450783")
    assert "14086566733" not in _silver_text(got["VIP3"])


def test_store_member_name_level_note_and_dates(spark):
    rows = [
        store_member("VIP1", name="王女士", level="GOLD", note=None),
        store_member("VIP2", name="杨 兰慧", level="SILVER", note="敏感肌"),
    ]
    got = {
        r.store_member_id: r for r in store_members(frame(spark, POS_SCHEMA, rows), KEY).collect()
    }
    assert got["VIP1"].name_is_title is True
    assert got["VIP2"].name_is_title is False
    assert (got["VIP1"].level, got["VIP2"].level) == ("gold", "silver")
    assert (got["VIP1"].has_note, got["VIP2"].has_note) == (False, True)
    assert "敏感肌" not in _silver_text(got["VIP2"])  # the clerk's note stays in bronze
    assert got["VIP2"].registered_on == date(2020, 2, 3)
    assert got["VIP2"].birth_year == 1967
    assert "note" not in got["VIP2"].asDict()


def test_store_member_listed_again_keeps_the_latest_file(spark):
    first = frame(spark, POS_SCHEMA, [store_member(level="NORMAL")], _file="a.xlsx")
    again = frame(
        spark,
        POS_SCHEMA,
        [store_member(level="GOLD")],
        _file="b.xlsx",
        _ingested_at=datetime(2026, 11, 21),
    )
    rows = store_members(first.unionByName(again), KEY).collect()
    assert [(r.level, r.source_file) for r in rows] == [("gold", "b.xlsx")]


# --- the tables -------------------------------------------------------------------------------


def test_tables_and_builds(spark):
    by_name = {t.name: t for t in TABLES}
    assert by_name["members"].keys == ("member_card",)
    assert by_name["store_members"].keys == ("store_code", "store_member_id")
    assert all(t.build(Batch(logical_date=DAY, hmac_key=KEY)) is None for t in TABLES)
    batch = Batch(
        logical_date=DAY,
        hmac_key=KEY,
        bronze={
            "crm_members": frame(spark, CRM_SCHEMA, [member()]),
            "pos_members": frame(spark, POS_SCHEMA, [store_member()]),
        },
    )
    assert [by_name[n].build(batch).count() for n in ("members", "store_members")] == [1, 1]
    for t in TABLES:
        assert (EXPECTATIONS / f"{t.suite_name}.json").is_file()


# --- quality suites ---------------------------------------------------------------------------


def _no_pii(df):
    return df.drop(*(c for c in df.columns if c.startswith("_pii_")))


def _report(df, suite):
    return validate(_no_pii(df), suite, run_id="t", expectations_dir=EXPECTATIONS)


@pytest.fixture(scope="module")
def member_frames(spark):
    return {
        "members": crm_members(
            frame(spark, CRM_SCHEMA, [member("A"), member("B", mobile="13900001111")]), KEY
        ),
        "store_members": store_members(
            frame(spark, POS_SCHEMA, [store_member("VIP1"), store_member("VIP2")]), KEY
        ),
    }


def test_suite_members(member_frames):
    df = member_frames["members"]
    assert _report(df, "silver.members").success_blocking
    bad = _report(df.withColumn("email_token", F.lit("zhu.ql@qq.com")), "silver.members")
    assert any(r.column == "email_token" for r in bad.failed_blocking)


def test_suite_store_members(member_frames):
    df = member_frames["store_members"]
    assert _report(df, "silver.store_members").success_blocking
    bad = _report(df.withColumn("store_member_id", F.lit("VIP1")), "silver.store_members")
    assert any("store_member_id" in (r.column or "") for r in bad.failed_blocking)


def test_a_stale_member_copy_on_a_later_day_does_not_roll_the_member_back(tmp_path):
    """silver.members merges by the CRM's own modification time: a later day's export holding
    an older copy of a member changes nothing; a newer copy, or one without the CRM's time on
    a later day, replaces it; a rerun of the same rows is idempotent."""
    import pyarrow as pa
    from deltalake import DeltaTable

    from jobs.common import lake

    (table,) = [t for t in TABLES if t.name == "members"]
    path = str(tmp_path / "members")

    def merge(tier: str, crm_at: datetime | None, day: date) -> None:
        rows = pa.table(
            {
                "member_card": ["M1"],
                "tier": [tier],
                "crm_updated_at": pa.array([crm_at], pa.timestamp("us", "UTC")),
                "_logical_date": pa.array([day], pa.date32()),
            }
        )
        lake.merge_arrow(
            rows,
            path,
            keys=list(table.keys),
            version="_logical_date",
            update_when=table.update_when,
        )

    def tier() -> str:
        return DeltaTable(path).to_pyarrow_table()["tier"].to_pylist()

    merge("gold", datetime(2026, 3, 10, 12), date(2026, 3, 10))
    merge("silver", datetime(2026, 3, 9, 8), date(2026, 3, 11))  # stale copy, later day
    assert tier() == ["gold"]
    merge("gold", datetime(2026, 3, 10, 12), date(2026, 3, 10))  # rerun
    assert tier() == ["gold"]
    merge("platinum", datetime(2026, 3, 11, 9), date(2026, 3, 11))
    assert tier() == ["platinum"]
    merge("diamond", None, date(2026, 3, 12))  # no CRM time: the later day wins
    assert tier() == ["diamond"]
    merge("gold", datetime(2026, 3, 1), date(2026, 3, 1))  # a backfill of an old day
    assert tier() == ["diamond"]
