"""Silver CRM loyalty: coupon lifecycles, the points ledger's running balance, tier validity."""

import hashlib
import hmac
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.quality.gate import validate
from jobs.silver.crm import (
    TABLES,
    channel_code,
    coupon_events,
    coupon_lifecycle,
    coupons_touched,
    points_movements,
    running_balance,
    tier_changes,
    tier_validity,
)
from jobs.silver.table import Batch

KEY = b"silver-crm-unit-test-key-0123456789abcdef"
DAY = date(2026, 11, 20)
TZ = "Asia/Shanghai"
EXPECTATIONS = Path("expectations")
BOOKKEEPING = "_file string, _line long, _batch_id string, _ingested_at timestamp"

COUPON_SCHEMA = (
    "coupon_code string, template_id string, template_name string, member_card string, "
    "mobile string, status string, channel string, face_value decimal(18,2), "
    "threshold decimal(18,2), event_time timestamp, " + BOOKKEEPING
)
POINTS_SCHEMA = (
    "ledger_id string, member_card string, mobile string, change_type string, points long, "
    "balance long, occurred timestamp, channel string, ref_order_id string, " + BOOKKEEPING
)
TIER_SCHEMA = (
    "change_id string, member_card string, mobile string, old_tier string, new_tier string, "
    "change_type string, reason string, changed_at timestamp, lifetime_points long, " + BOOKKEEPING
)
INGESTED = datetime(2026, 11, 20, 23, 0, 0)


def _names(schema: str) -> list[str]:
    return [part.strip().split(" ")[0] for part in schema.split(", ")]


def frame(spark, schema: str, rows: list[dict], **defaults):
    """A bronze frame with `schema`; a row's missing fields take `defaults`, else null. Times
    are naive Asia/Shanghai wall times (the session zone), as bronze holds them."""
    base = {"_file": "crm/x.csv", "_line": 1, "_batch_id": "b1", "_ingested_at": INGESTED}
    base |= defaults
    names = _names(schema)
    return spark.createDataFrame([tuple({**base, **r}.get(n) for n in names) for r in rows], schema)


def coupon(code: str, status: str, at: datetime, **kw) -> dict:
    return {
        "coupon_code": code,
        "template_id": "T2026002",
        "template_name": "会员日满299减50",
        "member_card": "875006994880",
        "mobile": "13411363680",
        "status": status,
        "channel": "门店",
        "face_value": Decimal("50.00"),
        "threshold": Decimal("299.00"),
        "event_time": at,
        **kw,
    }


def move(ledger_id: str, kind: str, points: int, balance: int | None, at: datetime, **kw):
    return {
        "ledger_id": ledger_id,
        "member_card": "890206320788",
        "mobile": "15289049196",
        "change_type": kind,
        "points": points,
        "balance": balance,
        "occurred": at,
        "channel": "门店",
        "ref_order_id": "",
        **kw,
    }


def _phone_token(e164: str) -> str:
    return hmac.new(KEY, f"phone:{e164}".encode(), hashlib.sha256).hexdigest()


def rows_by(df, key: str) -> dict:
    return {r[key]: r for r in df.collect()}


# --- shared rules -----------------------------------------------------------------------------


def test_channel_labels_become_codes(spark):
    labels = [
        "门店",
        "天猫",
        "天猫会员通",
        "微信小程序",
        "企业微信",
        "系统",
        " 官网 ",
        "store",
        "火星",
        None,
    ]
    df = spark.createDataFrame([(x,) for x in labels], "label string")
    got = {
        r.label: r.code
        for r in df.select("label", channel_code(F.col("label")).alias("code")).collect()
    }
    assert got["门店"] == "store"
    assert got["天猫"] == got["天猫会员通"] == "tmall"
    assert got["微信小程序"] == "miniprogram"
    assert got["企业微信"] == "wecom"
    assert got["系统"] == "system"
    assert got[" 官网 "] == "web"
    assert got["store"] == "store"  # a code given as such is kept
    assert got["火星"] == "other"
    assert got[None] is None


# --- coupons ----------------------------------------------------------------------------------


def test_coupon_events_map_status_money_and_tokenize_the_phone(spark):
    bronze = frame(spark, COUPON_SCHEMA, [coupon("CP1", "ISSUED", datetime(2026, 11, 20, 9))])
    row = coupon_events(bronze, KEY, DAY, TZ).collect()[0]
    assert row.status == "issued"
    assert row.channel == "store"
    assert row.face_value == Decimal("50.00")
    assert row.threshold == Decimal("299.00")
    assert row.currency == "CNY"
    assert row.phone_token == _phone_token("+8613411363680")
    assert "13411363680" not in str([row[c] for c in row.asDict() if not c.startswith("_pii_")])
    assert row["_pii_phone__phone"] == "+8613411363680"  # the vault's, taken off before silver
    assert row.event_date == DAY
    assert row.lateness_days == 0


def test_coupon_event_resent_keeps_one_row_the_latest(spark):
    early = coupon("CP1", "REDEEMED", datetime(2026, 11, 19, 9), channel="门店")
    late = coupon("CP1", "REDEEMED", datetime(2026, 11, 19, 9), channel="天猫")
    bronze = frame(spark, COUPON_SCHEMA, [early]).unionByName(
        frame(spark, COUPON_SCHEMA, [late], _ingested_at=datetime(2026, 11, 21, 1))
    )
    rows = coupon_events(bronze, KEY, DAY, TZ).collect()
    assert [(r.status, r.channel) for r in rows] == [("redeemed", "tmall")]
    assert rows[0].lateness_days == 1  # an event of the 19th in the 20th's batch


def test_coupon_lifecycle_across_days_keeps_every_timestamp(spark):
    day1 = frame(spark, COUPON_SCHEMA, [coupon("CP1", "ISSUED", datetime(2026, 11, 18, 10))])
    day3 = frame(
        spark,
        COUPON_SCHEMA,
        [coupon("CP1", "REDEEMED", datetime(2026, 11, 20, 15), channel="企业微信")],
    )
    events = coupon_events(day1, KEY, date(2026, 11, 18), TZ).unionByName(
        coupon_events(day3, KEY, DAY, TZ)
    )
    row = coupons_touched(events, day3).collect()[0]
    assert row.status == "redeemed"
    assert row.issued_at == datetime(2026, 11, 18, 10)
    assert row.redeemed_at == datetime(2026, 11, 20, 15)
    assert row.expired_at is None
    assert row.voided_at is None
    assert row.channel == "store"
    assert row.redeem_channel == "wecom"
    assert row.missing_issue is False
    assert row.events == 2


def test_coupons_touched_rebuilds_only_the_days_coupons(spark):
    both = frame(
        spark,
        COUPON_SCHEMA,
        [
            coupon("CP1", "ISSUED", datetime(2026, 11, 18, 10)),
            coupon("CP2", "ISSUED", datetime(2026, 11, 18, 11)),
        ],
    )
    today = frame(spark, COUPON_SCHEMA, [coupon("CP2", "EXPIRED", datetime(2026, 11, 20, 0))])
    events = coupon_events(both, KEY, DAY, TZ).unionByName(coupon_events(today, KEY, DAY, TZ))
    got = rows_by(coupons_touched(events, today), "coupon_code")
    assert set(got) == {"CP2"}
    assert got["CP2"].status == "expired"
    assert got["CP2"].issued_at is not None


def test_coupon_used_without_a_seen_issue_is_flagged(spark):
    bronze = frame(spark, COUPON_SCHEMA, [coupon("CP9", "EXPIRED", datetime(2026, 11, 20, 0))])
    row = coupon_lifecycle(coupon_events(bronze, KEY, DAY, TZ)).collect()[0]
    assert row.status == "expired"
    assert row.issued_at is None
    assert row.missing_issue is True


def test_coupon_events_at_the_same_instant_take_the_later_stage(spark):
    at = datetime(2026, 11, 20, 0)
    bronze = frame(
        spark, COUPON_SCHEMA, [coupon("CP3", "EXPIRED", at), coupon("CP3", "ISSUED", at)]
    )
    row = coupon_lifecycle(coupon_events(bronze, KEY, DAY, TZ)).collect()[0]
    assert row.status == "expired"


# --- points -----------------------------------------------------------------------------------


def test_points_signs_follow_the_change_type(spark):
    bronze = frame(
        spark,
        POINTS_SCHEMA,
        [
            move("PL1", "EARN", 300, 300, datetime(2026, 11, 20, 9)),
            move("PL2", "REDEEM", 200, 100, datetime(2026, 11, 20, 10)),  # unsigned in this CRM
            move("PL3", "EXPIRE", -50, 50, datetime(2026, 11, 20, 11)),
            move("PL4", "ADJUST", -20, 30, datetime(2026, 11, 20, 12)),
        ],
    )
    got = rows_by(points_movements(bronze, KEY, DAY, TZ), "ledger_id")
    assert [got[i].change_type for i in ("PL1", "PL2", "PL3", "PL4")] == [
        "earn",
        "redeem",
        "expire",
        "adjust",
    ]
    assert [got[i].points for i in ("PL1", "PL2", "PL3", "PL4")] == [300, -200, -50, -20]
    assert got["PL2"].sign_corrected is True
    assert got["PL3"].sign_corrected is False
    assert got["PL1"].ref_order_id is None  # an empty cell


def test_running_balance_starts_from_the_opening_the_first_report_implies(spark):
    # A member who joined before the first export: 1000 points the ledger never shows.
    bronze = frame(
        spark,
        POINTS_SCHEMA,
        [
            move("PL2", "REDEEM", -400, 900, datetime(2026, 11, 20, 10)),
            move("PL1", "EARN", 300, 1300, datetime(2026, 11, 20, 9)),
            move("PL3", "EARN", 50, 950, datetime(2026, 11, 20, 11)),
        ],
    )
    got = rows_by(points_movements(bronze, KEY, DAY, TZ), "ledger_id")
    assert {r.opening_balance for r in got.values()} == {1000}
    assert [got[i].running_balance for i in ("PL1", "PL2", "PL3")] == [1300, 900, 950]
    assert not any(r.balance_mismatch for r in got.values())


def test_balance_mismatch_when_the_crms_balance_disagrees(spark):
    bronze = frame(
        spark,
        POINTS_SCHEMA,
        [
            move("PL1", "EARN", 100, 100, datetime(2026, 11, 20, 9)),
            move("PL2", "EARN", 100, 250, datetime(2026, 11, 20, 10)),  # 50 from nowhere
            move("PL3", "EARN", 10, None, datetime(2026, 11, 20, 11)),  # no balance reported
        ],
    )
    got = rows_by(points_movements(bronze, KEY, DAY, TZ), "ledger_id")
    assert got["PL1"].balance_mismatch is False
    assert got["PL2"].balance_mismatch is True
    assert got["PL2"].running_balance == 200
    assert got["PL3"].balance_mismatch is None


def test_a_late_entry_corrects_the_balances_after_it(spark):
    day1 = frame(
        spark,
        POINTS_SCHEMA,
        [
            move("PL1", "EARN", 100, 100, datetime(2026, 11, 18, 9)),
            move("PL3", "EARN", 10, 160, datetime(2026, 11, 18, 11)),  # after a 50 not yet seen
        ],
    )
    first = points_movements(day1, KEY, date(2026, 11, 18), TZ)
    assert rows_by(first, "ledger_id")["PL3"].balance_mismatch is True
    late = frame(
        spark,
        POINTS_SCHEMA,
        [move("PL2", "EARN", 50, 150, datetime(2026, 11, 18, 10))],
        _ingested_at=datetime(2026, 11, 20, 23),
    )
    today = points_movements(late, KEY, DAY, TZ)
    assert today.collect()[0].lateness_days == 2
    # The build merges the day's rows, then refreshes every row of the members they touched.
    merged = first.join(today.select("ledger_id"), "ledger_id", "left_anti").unionByName(today)
    got = rows_by(running_balance(merged), "ledger_id")
    assert [got[i].running_balance for i in ("PL1", "PL2", "PL3")] == [100, 150, 160]
    assert not any(r.balance_mismatch for r in got.values())


def test_running_balance_is_per_member_and_rerunnable(spark):
    bronze = frame(
        spark,
        POINTS_SCHEMA,
        [
            move("PL1", "EARN", 100, 100, datetime(2026, 11, 20, 9), member_card="A"),
            move("PL2", "EARN", 70, 570, datetime(2026, 11, 20, 9), member_card="B"),
            move("PL3", "EARN", 5, 105, datetime(2026, 11, 20, 10), member_card="A"),
        ],
    )
    once = points_movements(bronze, KEY, DAY, TZ)
    twice = running_balance(once.withColumn("_logical_date", F.lit(DAY)))
    assert "_logical_date" in twice.columns  # other columns pass through
    got = rows_by(twice, "ledger_id")
    assert (got["PL1"].running_balance, got["PL3"].running_balance) == (100, 105)
    assert (got["PL2"].opening_balance, got["PL2"].running_balance) == (500, 570)
    assert sorted(once.columns) == sorted(c for c in twice.columns if c != "_logical_date")


# --- tiers ------------------------------------------------------------------------------------


def tier(change_id: str, old: str, new: str, kind: str, at: datetime, **kw) -> dict:
    return {
        "change_id": change_id,
        "member_card": "800632269241",
        "mobile": "16575329177",
        "old_tier": old,
        "new_tier": new,
        "change_type": kind,
        "reason": "r",
        "changed_at": at,
        "lifetime_points": 1000,
        **kw,
    }


def test_tier_validity_runs_until_the_next_change(spark):
    bronze = frame(
        spark,
        TIER_SCHEMA,
        [
            tier("TC2", "普通会员", "银卡会员", "UPGRADE", datetime(2026, 11, 19, 8)),
            tier("TC1", "", "普通会员", "JOIN", datetime(2026, 11, 1, 8)),
            tier("TC3", "银卡会员", "金卡会员", "UPGRADE", datetime(2026, 11, 20, 8)),
        ],
    )
    got = rows_by(tier_changes(bronze, KEY, DAY, TZ), "change_id")
    assert got["TC1"].old_tier is None
    assert got["TC1"].change_type == "join"
    assert got["TC1"].valid_from == datetime(2026, 11, 1, 8)
    assert got["TC1"].valid_to == datetime(2026, 11, 19, 8)
    assert got["TC2"].valid_to == datetime(2026, 11, 20, 8)
    assert got["TC3"].valid_to is None
    assert [got[i].is_current for i in ("TC1", "TC2", "TC3")] == [False, False, True]
    assert not any(r.history_gap for r in got.values())


def test_tier_history_gap_when_a_change_is_missing(spark):
    bronze = frame(
        spark,
        TIER_SCHEMA,
        [
            tier("TC1", "普通会员", "银卡会员", "UPGRADE", datetime(2026, 11, 1, 8)),
            tier("TC2", "金卡会员", "银卡会员", "DOWNGRADE", datetime(2026, 11, 20, 8)),
        ],
    )
    history = tier_changes(bronze, KEY, DAY, TZ)
    got = rows_by(tier_validity(tier_validity(history)), "change_id")  # rerunnable
    assert got["TC1"].history_gap is False
    assert got["TC2"].history_gap is True


# --- the tables -------------------------------------------------------------------------------


def test_tables_declare_keys_modes_and_refresh():
    by_name = {t.name: t for t in TABLES}
    assert set(by_name) == {"coupon_events", "coupons", "points_ledger", "tier_history"}
    assert by_name["coupons"].depends_on == ("coupon_events",)
    assert by_name["points_ledger"].refresh is running_balance
    assert by_name["points_ledger"].refresh_by == "member_card"
    assert by_name["tier_history"].refresh_by == "member_card"
    for t in TABLES:
        assert (EXPECTATIONS / f"{t.suite_name}.json").is_file()


def test_builds_read_the_batch_and_return_none_without_bronze(spark):
    empty = Batch(logical_date=DAY, hmac_key=KEY)
    assert all(t.build(empty) is None for t in TABLES)
    bronze = frame(spark, COUPON_SCHEMA, [coupon("CP1", "ISSUED", datetime(2026, 11, 20, 9))])
    batch = Batch(logical_date=DAY, hmac_key=KEY, bronze={"crm_coupons": bronze})
    by_name = {t.name: t for t in TABLES}
    events = by_name["coupon_events"].build(batch)
    batch.silver_tables["coupon_events"] = events.drop("_pii_phone__phone")
    assert by_name["coupons"].build(batch).count() == 1


# --- quality suites ---------------------------------------------------------------------------


def _no_pii(df):
    return df.drop(*(c for c in df.columns if c.startswith("_pii_")))


def _passes(df, suite: str) -> None:
    report = validate(_no_pii(df), suite, run_id="t", expectations_dir=EXPECTATIONS)
    assert report.success_blocking, report.failed_blocking


def _fails(df, suite: str, column: str) -> None:
    report = validate(_no_pii(df), suite, run_id="t", expectations_dir=EXPECTATIONS)
    failed = [r for r in report.failed_blocking if column in (r.column or "").split(",")]
    assert failed, report.results


@pytest.fixture(scope="module")
def crm_frames(spark):
    coupons = frame(
        spark,
        COUPON_SCHEMA,
        [
            coupon("CP1", "ISSUED", datetime(2026, 11, 18, 10)),
            coupon("CP1", "REDEEMED", datetime(2026, 11, 20, 10)),
            coupon("CP2", "ISSUED", datetime(2026, 11, 20, 11), channel="天猫"),
        ],
    )
    points = frame(
        spark,
        POINTS_SCHEMA,
        [
            move("PL1", "EARN", 100, 100, datetime(2026, 11, 20, 9)),
            move("PL2", "REDEEM", -50, 50, datetime(2026, 11, 20, 10)),
        ],
    )
    tiers = frame(
        spark,
        TIER_SCHEMA,
        [
            tier("TC1", "", "普通会员", "JOIN", datetime(2026, 11, 1, 8)),
            tier("TC2", "普通会员", "银卡会员", "UPGRADE", datetime(2026, 11, 20, 8)),
        ],
    )
    events = coupon_events(coupons, KEY, DAY, TZ)
    return {
        "coupon_events": events,
        "coupons": coupon_lifecycle(events),
        "points_ledger": points_movements(points, KEY, DAY, TZ),
        "tier_history": tier_changes(tiers, KEY, DAY, TZ),
    }


def test_suite_coupon_events(crm_frames):
    df = crm_frames["coupon_events"]
    _passes(df, "silver.coupon_events")
    _fails(df.withColumn("status", F.lit("used")), "silver.coupon_events", "status")


def test_suite_coupons(crm_frames):
    df = crm_frames["coupons"]
    _passes(df, "silver.coupons")
    before = F.col("issued_at") - F.expr("INTERVAL 1 DAY")
    _fails(
        df.withColumn("redeemed_at", F.when(F.col("redeemed_at").isNotNull(), before)),
        "silver.coupons",
        "redeemed_at",
    )


def test_suite_points_ledger(crm_frames):
    df = crm_frames["points_ledger"]
    _passes(df, "silver.points_ledger")
    _fails(df.unionByName(df), "silver.points_ledger", "ledger_id")


def test_suite_tier_history(crm_frames):
    df = crm_frames["tier_history"]
    _passes(df, "silver.tier_history")
    _fails(df.withColumn("phone_token", F.lit("13800138000")), "silver.tier_history", "phone_token")
