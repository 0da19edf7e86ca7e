"""Silver Official Account: events, followers, template-message results, menu clicks."""

from __future__ import annotations

import calendar
import json
from datetime import date, datetime, timedelta
from pathlib import Path

from jobs.quality import gate
from jobs.silver import oa
from jobs.silver.table import Batch
from tests.fixtures.shanghai import walls

DAY = date(2026, 11, 20)
ACCOUNT = "gh_3a5f7c9e1b2d"
OPENID = "ozLb5vxPX70GU5I2JCfb5mgHc4Bq"
OPENID2 = "oUhCf9SCM_KhdbMA1zP8rJohz6oB"
UNIONID = "ozvJI--85mrslw41bKHrPBeKy8UH"
INGESTED = datetime(2026, 11, 21, 2, 0)
T0 = datetime(2026, 11, 20, 9, 0)
URL = "https://www.example-beauty.cn/member?utm_source=wechat_oa&utm_medium=menu"

SCHEMA = (
    "account_id string, openid string, msg_type string, event string, event_key string, "
    "ticket string, template_msg_id string, template_status string, create_time_unix long, "
    "unionid string, subscribe_scene string, _extra string, _file string, _line long, "
    "_batch_id string, _ingested_at timestamp"
)
FIELDS = [f.strip().split()[0] for f in SCHEMA.split(",")]


def unix(wall: datetime) -> int:
    return calendar.timegm((wall - timedelta(hours=8)).timetuple())


def push(event: str, at: datetime = T0, openid: str = OPENID, **fields) -> dict:
    row = dict.fromkeys(FIELDS)
    row |= {
        "account_id": ACCOUNT,
        "openid": openid,
        "msg_type": "event",
        "event": event,
        "create_time_unix": unix(at),
        "_file": "oa/events/dt=2026-11-20/events.jsonl",
        "_line": 1,
        "_batch_id": "b1",
        "_ingested_at": INGESTED,
    }
    extra = fields.pop("extra", None)
    if extra is not None:
        row["_extra"] = json.dumps(extra)
    return row | fields


def bronze(spark, rows: list[dict]):
    return spark.createDataFrame([tuple(r[f] for f in FIELDS) for r in rows], SCHEMA)


def conform(spark, rows: list[dict], logical_date: date = DAY):
    return oa.conform(bronze(spark, rows), logical_date)


def events(spark, rows: list[dict]):
    return oa.oa_events(conform(spark, rows))


def one(df) -> dict:
    rows = df.collect()
    assert len(rows) == 1, rows
    return walls(rows[0].asDict())


# --- events -----------------------------------------------------------------------------------


def test_event_is_lower_cased_and_timed_in_shanghai(spark):
    at = datetime(2026, 11, 19, 23, 59, 59)
    row = one(events(spark, [push("SCAN", at, event_key="campaign_d11")]))
    assert row["event"] == "scan"
    assert (row["event_ts"], row["event_date"], row["lateness_days"]) == (
        at,
        date(2026, 11, 19),
        1,
    )
    assert set(oa.EVENT_COLUMNS) == set(events(spark, [push("CLICK")]).columns)


def test_subscribe_through_a_parametric_qr_code_has_its_scene(spark):
    row = one(
        events(
            spark,
            [
                push(
                    "subscribe",
                    event_key="qrscene_pkg_card_tmall",
                    unionid=UNIONID,
                    subscribe_scene="ADD_SCENE_QR_CODE",
                )
            ],
        )
    )
    assert row["scene"] == "pkg_card_tmall"
    assert (row["unionid"], row["subscribe_scene"]) == (UNIONID, "ADD_SCENE_QR_CODE")


def test_scan_carries_the_bare_scene(spark):
    assert one(events(spark, [push("SCAN", event_key="store_sh01")]))["scene"] == "store_sh01"


def test_subscribe_by_search_has_no_scene_unless_user_info_names_one(spark):
    rows = [
        push("subscribe", event_key="", subscribe_scene="ADD_SCENE_SEARCH"),
        push(
            "subscribe",
            openid=OPENID2,
            event_key="",
            extra={"_enriched.user_info.qr_scene_str": "campaign_d11"},
        ),
    ]
    scenes = {r.openid: (r.scene, r.event_key) for r in events(spark, rows).collect()}
    assert scenes == {OPENID: (None, None), OPENID2: ("campaign_d11", None)}


def test_menu_events_have_no_scene(spark):
    rows = [push("CLICK", event_key="qrscene_x"), push("VIEW", T0, OPENID2, event_key=URL)]
    assert {r.scene for r in events(spark, rows).collect()} == {None}


def test_retried_push_is_one_event(spark):
    rows = [
        push("CLICK", event_key="MENU_MEMBER_CARD", _line=1),
        push("CLICK", event_key="MENU_MEMBER_CARD", _line=2, _batch_id="b2"),
    ]
    assert one(events(spark, rows))["_batch_id"] == "b2"


def test_build_without_bronze_is_none():
    batch = Batch(logical_date=DAY, hmac_key=b"k", bronze={"oa_events": None})
    assert oa.build_events(batch) is None
    assert oa.build_followers(batch) is None
    assert oa.build_template_results(batch) is None
    assert oa.build_menu_clicks(batch) is None


# --- followers --------------------------------------------------------------------------------


def followers(spark, rows: list[dict]) -> dict:
    return {r.openid: walls(r.asDict()) for r in oa.followers(events(spark, rows)).collect()}


def test_subscribe_then_unsubscribe(spark):
    rows = [
        push("subscribe", event_key="qrscene_campaign_d11", unionid=UNIONID),
        push("unsubscribe", T0 + timedelta(days=2)),
    ]
    f = followers(spark, rows)[OPENID]
    assert f["following"] is False
    assert (f["followed_at"], f["unfollowed_at"]) == (T0, T0 + timedelta(days=2))
    assert (f["scene"], f["unionid"]) == ("campaign_d11", UNIONID)
    assert (f["follows"], f["unfollows"]) == (1, 1)


def test_refollow_takes_the_latest_subscribe(spark):
    again = T0 + timedelta(days=5)
    rows = [
        push("subscribe", event_key="qrscene_pkg_card_jd", unionid=UNIONID),
        push("unsubscribe", T0 + timedelta(days=1)),
        push("subscribe", again, event_key="qrscene_campaign_d11"),
    ]
    f = followers(spark, rows)[OPENID]
    assert f["following"] is True
    assert (f["followed_at"], f["first_followed_at"]) == (again, T0)
    assert f["unfollowed_at"] is None
    assert f["scene"] == "campaign_d11"
    assert f["unionid"] == UNIONID  # the later push carried none: the latest known stays


def test_history_starting_mid_follow_is_following(spark):
    f = followers(spark, [push("CLICK", event_key="MENU_CHECKIN")])[OPENID]
    assert (f["following"], f["followed_at"], f["last_event_at"]) == (True, None, T0)


def test_unsubscribe_in_the_same_second_as_a_click_wins(spark):
    rows = [push("unsubscribe"), push("VIEW", event_key=URL)]
    assert followers(spark, rows)[OPENID]["following"] is False


# --- template results and menu clicks ---------------------------------------------------------


def test_template_status_mapping(spark):
    statuses = {
        "1": "success",
        "2": "failed:user block",
        "3": "failed: system failed",
        "4": "failed: something new",
        "5": None,
    }
    rows = [
        push(
            "TEMPLATESENDJOBFINISH",
            T0 + timedelta(seconds=int(i)),
            template_msg_id=i,
            template_status=s,
        )
        for i, s in statuses.items()
    ]
    got = {r.template_msg_id: r.status for r in oa.template_results(conform(spark, rows)).collect()}
    assert got == {
        "1": "success",
        "2": "failed_user_block",
        "3": "failed_system",
        "4": "failed_other",
        "5": "unknown",
    }


def test_template_result_keeps_the_raw_status_and_report_time(spark):
    rows = [
        push(
            "TEMPLATESENDJOBFINISH",
            template_msg_id="2912664630367774",
            template_status="failed:user block",
        ),
        push("CLICK", event_key="MENU_CHECKIN"),
    ]
    row = one(oa.template_results(conform(spark, rows)))
    assert (row["openid"], row["sent_at"], row["status_raw"]) == (OPENID, T0, "failed:user block")


def test_menu_clicks_take_click_and_view_only(spark):
    rows = [
        push("CLICK", event_key="MENU_MEMBER_CARD"),
        push("VIEW", T0 + timedelta(seconds=3), event_key=URL),
        push("SCAN", event_key="campaign_d11"),
        push("TEMPLATESENDJOBFINISH", template_msg_id="1", template_status="success"),
    ]
    got = {(r.event, r.menu_key) for r in oa.menu_clicks(conform(spark, rows)).collect()}
    assert got == {("click", "MENU_MEMBER_CARD"), ("view", URL)}


def test_tables_declare_keys_and_modes():
    tables = {t.name: t for t in oa.TABLES}
    assert tables["oa_events"].keys == ("account_id", "openid", "event", "event_ts")
    assert tables["oa_followers"].mode == "replace"
    assert tables["oa_followers"].depends_on == ("oa_events",)
    assert tables["oa_template_results"].keys == ("account_id", "template_msg_id")


# --- suites -----------------------------------------------------------------------------------


def validate(df, suite: str, engine: str = "pandas") -> gate.QualityReport:
    """The suite on the rows as the build hands them over: Arrow-backed pandas for a small day
    (jobs/silver/build.py), a Spark frame for a big one."""
    if engine == "pandas":
        import pandas as pd

        df = df.toArrow().to_pandas(types_mapper=pd.ArrowDtype)
    return gate.validate(df, suite, run_id="t", expectations_dir=Path("expectations"))


def failed(report: gate.QualityReport) -> set[tuple[str, str | None]]:
    return {(r.expectation, r.column) for r in report.failed_blocking}


def tables(spark) -> dict:
    rows = [
        push("subscribe", event_key="qrscene_campaign_d11", unionid=UNIONID),
        push("unsubscribe", T0 + timedelta(days=1)),
        push("CLICK", T0, OPENID2, event_key="MENU_CHECKIN"),
        push("VIEW", T0 + timedelta(seconds=5), OPENID2, event_key=URL),
        push(
            "TEMPLATESENDJOBFINISH",
            T0 + timedelta(seconds=9),
            OPENID2,
            template_msg_id="77",
            template_status="success",
        ),
    ]
    conformed = conform(spark, rows)
    return {
        "silver.oa_events": oa.oa_events(conformed),
        "silver.oa_followers": oa.followers(oa.oa_events(conformed)),
        "silver.oa_template_results": oa.template_results(conformed),
        "silver.oa_menu_clicks": oa.menu_clicks(conformed),
    }


def test_suites_pass_good_rows_and_block_bad_ones(spark):
    from pyspark.sql import functions as F

    frames = tables(spark)
    for suite, df in frames.items():
        report = validate(df, suite)
        assert report.success_blocking, (suite, failed(report))

    events = frames["silver.oa_events"]
    got = failed(validate(events.unionByName(events.limit(1)), "silver.oa_events"))
    assert any(e == "expect_compound_columns_to_be_unique" for e, _ in got)
    bad = frames["silver.oa_followers"].withColumn("following", F.lit(True))
    assert ("expect_column_values_to_be_null", "unfollowed_at") in failed(
        validate(bad, "silver.oa_followers")
    )
    bad = frames["silver.oa_template_results"].withColumn("status", F.lit("failed:user block"))
    assert ("expect_column_values_to_be_in_set", "status") in failed(
        validate(bad, "silver.oa_template_results")
    )
    bad = frames["silver.oa_menu_clicks"].withColumn("event", F.upper("event"))
    assert ("expect_column_values_to_be_in_set", "event") in failed(
        validate(bad, "silver.oa_menu_clicks")
    )


def test_follower_suite_runs_on_spark_too(spark):
    """A big day is validated as a Spark frame: the boolean row conditions work there too."""
    from pyspark.sql import functions as F

    bad = tables(spark)["silver.oa_followers"].withColumn("following", F.lit(True))
    got = failed(validate(bad, "silver.oa_followers", engine="spark"))
    assert got == {("expect_column_values_to_be_null", "unfollowed_at")}
