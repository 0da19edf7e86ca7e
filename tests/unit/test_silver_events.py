import hashlib
import hmac
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.ingest.spec import get_spec
from jobs.quality.gate import validate
from jobs.silver.events import (
    EVENT_COLUMNS,
    EVENT_SOURCES,
    EVENT_TYPES,
    TABLES,
    build_events,
    conform_events,
    device_identities,
    event_phone,
    search_term,
    url_param,
    url_path,
)
from jobs.silver.table import Batch

KEY = b"silver-events-unit-test-key-0123456789"
DAY = date(2026, 11, 20)
SHANGHAI = timedelta(hours=8)
EXPECTATIONS = Path("expectations")

# The bronze fields every SDK has, and each SDK's own (jobs/ingest/sources/<sdk>__events.yaml).
COMMON = (
    "event_id string, event_type string, ts string, received_at timestamp, anonymous_id string, "
    "device_id string, user_id string, session_id string, page_url string, referrer string, "
    "utm_source string, utm_medium string, utm_campaign string, product_id string, "
    "dwell_ms int, quantity int, search_query string, coupon_id string, phone string"
)
OWN = {
    "web": "",
    "app": ", os string, app_version string",
    "miniprogram": ", phone_country_code string, appid string, openid string, "
    "unionid string, scene int",
}
BOOKKEEPING = (
    ", _extra string, _issues string, _file string, _line long, _batch_id string, "
    "_ingested_at timestamp, _logical_date string"
)
APPID = "wx5f1c2a9b3d7e4f60"
OPENID = "oCI-evGq-TNUQlou7kSTc6oZJZei"
UNIONID = "oAMZkcywUPLPVV_XA7ITp68p84O2"


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _micros(instant: datetime) -> int:
    return int(instant.timestamp()) * 1_000_000 + instant.microsecond


def _token(value: str) -> str:
    return hmac.new(KEY, f"phone:{value}".encode(), hashlib.sha256).hexdigest()


def bronze(spark, source: str, rows: list[dict]):
    """A bronze frame of `source` with its spec's schema; a row's missing fields are null. The
    timestamps are given as aware datetimes and built from epoch micros, so the frame holds those
    instants whatever the zone of the test machine."""
    schema = COMMON + OWN[source] + BOOKKEEPING
    names = [part.strip().split(" ")[0] for part in schema.split(",")]
    defaults = {
        "event_type": "page_view",
        "ts": "2026-11-20T10:00:00.000+08:00",
        "received_at": _utc(2026, 11, 20, 2, 0, 1),
        "anonymous_id": "anon-0001",
        "device_id": "dev-0001",
        "session_id": "s0001",
        "_file": f"{source}/events/dt=2026-11-20/events.jsonl",
        "_line": 1,
        "_batch_id": "b1",
        "_ingested_at": _utc(2026, 11, 20, 20),
        "_logical_date": "2026-11-20",
    }
    if source == "miniprogram":
        defaults |= {"appid": APPID, "openid": OPENID}
    instants = ("received_at", "_ingested_at")
    data = []
    for i, row in enumerate(rows):
        values = {"event_id": f"e{i}", **defaults, **row}
        for col in instants:
            values[col] = _micros(values[col]) if values.get(col) else None
        data.append(tuple(values.get(n) for n in names))
    df = spark.createDataFrame(data, schema.replace(" timestamp", " long"))
    for col in instants:
        df = df.withColumn(col, F.timestamp_micros(F.col(col)))
    return df


def conform(spark, source: str, rows: list[dict]):
    return conform_events(bronze(spark, source, rows), source, logical_date=DAY, hmac_key=KEY)


def by_id(df) -> dict:
    return {r.event_id: r for r in df.collect()}


def instants(df, col: str = "event_ts") -> dict:
    return {
        r.event_id: r.us for r in df.select("event_id", F.unix_micros(col).alias("us")).collect()
    }


# --- time --------------------------------------------------------------------------------------


def test_client_time_is_parsed_with_its_offset(spark):
    rows = [
        # 00:30 in Shanghai on the 20th is 16:30 UTC on the 19th
        {"event_id": "cst", "ts": "2026-11-20T00:30:00.250+08:00",
         "received_at": _utc(2026, 11, 19, 16, 30, 1)},
        {"event_id": "zulu", "ts": "2026-11-19T16:10:00Z",
         "received_at": _utc(2026, 11, 19, 16, 10)},
        # a phone set to Tokyo time: 01:10 in Tokyo is 00:10 in Shanghai, still the 20th
        {"event_id": "tokyo", "ts": "2026-11-20T01:10:00.000+09:00",
         "received_at": _utc(2026, 11, 19, 16, 10, 2)},
        # 23:59:59 in Shanghai stays on the 19th
        {"event_id": "late_night", "ts": "2026-11-19T23:59:59.999+08:00",
         "received_at": _utc(2026, 11, 19, 16, 0, 1)},
    ]  # fmt: skip
    out = conform(spark, "web", rows)
    got, rows_by_id = instants(out), by_id(out)
    assert got["cst"] == _micros(_utc(2026, 11, 19, 16, 30, 0, 250_000))
    assert got["zulu"] == _micros(_utc(2026, 11, 19, 16, 10))
    assert got["tokyo"] == _micros(_utc(2026, 11, 19, 16, 10))
    assert got["late_night"] == _micros(_utc(2026, 11, 19, 15, 59, 59, 999_000))
    assert rows_by_id["cst"].event_date == date(2026, 11, 20)
    assert rows_by_id["zulu"].event_date == date(2026, 11, 20)
    assert rows_by_id["tokyo"].event_date == date(2026, 11, 20)
    assert rows_by_id["late_night"].event_date == date(2026, 11, 19)
    assert {r.ts_source for r in rows_by_id.values()} == {"client"}
    assert all(r.flags == [] for r in rows_by_id.values())


def test_lag_and_lateness(spark):
    rows = [
        {"event_id": "queued", "ts": "2026-11-19T21:00:00.000+08:00",
         "received_at": _utc(2026, 11, 20, 1, 0, 0)},  # an offline queue: 12 h later
        {"event_id": "on_time", "ts": "2026-11-20T09:00:00.500+08:00",
         "received_at": _utc(2026, 11, 20, 1, 0, 2)},
        # a session spilling past midnight lands in the file of the day it started
        {"event_id": "spill", "ts": "2026-11-21T00:02:00.000+08:00",
         "received_at": _utc(2026, 11, 20, 16, 2, 1)},
    ]  # fmt: skip
    out = by_id(conform(spark, "app", rows))
    assert out["queued"].client_received_lag_s == pytest.approx(12 * 3600)
    assert out["queued"].ts_source == "client"
    assert out["queued"].lateness_days == 1
    assert out["queued"].event_date == date(2026, 11, 19)
    assert out["on_time"].client_received_lag_s == pytest.approx(1.5)
    assert out["on_time"].lateness_days == 0
    assert (out["spill"].event_date, out["spill"].lateness_days) == (date(2026, 11, 21), -1)


def test_clock_far_ahead_or_behind_falls_back_to_received_at(spark):
    received = _utc(2026, 11, 20, 15, 30)  # 23:30 in Shanghai
    rows = [
        # an hour ahead: would move the event to the 21st
        {"event_id": "ahead", "ts": "2026-11-21T00:30:00.000+08:00", "received_at": received},
        # a clock reset to 2000 after a flat battery
        {"event_id": "reset", "ts": "2000-01-01T08:00:05.000+08:00", "received_at": received},
        # 90 s behind: a slow clock or a short queue, trusted
        {"event_id": "slow", "ts": "2026-11-20T23:28:30.000+08:00", "received_at": received},
    ]
    out = conform(spark, "app", rows)
    got, rows_by_id = instants(out), by_id(out)
    assert got["ahead"] == _micros(received)
    assert rows_by_id["ahead"].ts_source == "received_at"
    assert rows_by_id["ahead"].flags == ["clock_skew"]
    assert rows_by_id["ahead"].event_date == date(2026, 11, 20)
    assert rows_by_id["ahead"].client_received_lag_s == pytest.approx(-3600)
    assert got["reset"] == _micros(received)
    assert rows_by_id["reset"].flags == ["clock_skew"]
    assert got["slow"] == _micros(_utc(2026, 11, 20, 15, 28, 30))
    assert rows_by_id["slow"].ts_source == "client"
    assert rows_by_id["slow"].flags == []


def test_missing_or_unparseable_ts_falls_back_to_received_at(spark):
    received = _utc(2026, 11, 20, 3)
    rows = [
        {"event_id": "missing", "ts": None, "received_at": received},
        {"event_id": "blank", "ts": "  ", "received_at": received},
        {"event_id": "garbage", "ts": "yesterday-ish", "received_at": received},
    ]
    out = conform(spark, "web", rows)
    got, rows_by_id = instants(out), by_id(out)
    for event_id in ("missing", "blank", "garbage"):
        assert got[event_id] == _micros(received)
        assert rows_by_id[event_id].ts_source == "received_at"
        assert rows_by_id[event_id].event_date == date(2026, 11, 20)
        assert rows_by_id[event_id].client_received_lag_s is None
    assert rows_by_id["missing"].flags == ["ts_missing"]
    assert rows_by_id["blank"].flags == ["ts_missing"]
    assert rows_by_id["garbage"].flags == ["ts_unparseable"]


# --- pages and campaigns -------------------------------------------------------------------


def test_utm_from_the_url_when_the_context_has_none(spark):
    url = (
        "https://www.example-beauty.cn/campaign/d11?utm_source=wechat_oa&UTM_MEDIUM=template"
        "&utm_campaign=%E5%8F%8C11+%E9%A2%84%E7%83%AD#top"
    )
    rows = [
        {"event_id": "url_only", "page_url": url},
        {"event_id": "context_wins", "page_url": url, "utm_source": "douyin",
         "utm_medium": " ", "utm_campaign": "live"},
        {"event_id": "none", "page_url": "https://www.example-beauty.cn/?utm_source="},
    ]  # fmt: skip
    out = by_id(conform(spark, "web", rows))
    assert (out["url_only"].utm_source, out["url_only"].utm_medium) == ("wechat_oa", "template")
    assert out["url_only"].utm_campaign == "双11 预热"
    # the SDK's campaign context beats the URL; a blank one does not
    assert out["context_wins"].utm_source == "douyin"
    assert out["context_wins"].utm_medium == "template"
    assert out["context_wins"].utm_campaign == "live"
    assert (out["none"].utm_source, out["none"].utm_medium) == (None, None)


def test_url_helpers(spark):
    urls = [
        ("https://www.example-beauty.cn/product/P1001?utm_source=baidu",),
        ("app://example-beauty/category/skincare",),
        ("mp://pages/product/P1001",),
        ("https://www.example-beauty.cn",),
        ("https://www.example-beauty.cn/搜索 结果?q=%zz&utm_source=%E5%zz",),
        (None,),
    ]
    df = spark.createDataFrame(urls, "u string")
    got = df.select(url_path(F.col("u")).alias("p"), url_param(F.col("u"), "utm_source").alias("s"))
    assert [tuple(r) for r in got.collect()] == [
        ("/product/P1001", "baidu"),
        ("/category/skincare", None),
        ("/product/P1001", None),
        ("/", None),
        ("/搜索 结果", None),  # a badly encoded parameter is no value, not an error
        (None, None),
    ]


def test_phone_or_email_in_urls_is_redacted(spark):
    rows = [
        {"event_id": "leak",
         "page_url": "https://www.example-beauty.cn/member/13971234562/orders?email=a.b%40qq.com",
         "referrer": "https://example.cn/?tel=+86-13971234562"},
        {"event_id": "order_no", "page_url": "https://www.example-beauty.cn/order/139712345620001"},
    ]  # fmt: skip
    out = by_id(conform(spark, "web", rows))
    assert "13971234562" not in out["leak"].page_url
    assert "qq.com" not in out["leak"].page_url
    assert "13971234562" not in out["leak"].referrer
    assert "13971234562" not in out["leak"].page_path
    assert out["leak"].page_path == "/member/[redacted]/orders"
    assert out["leak"].flags == ["pii_redacted"]
    # a longer number is no phone
    assert out["order_no"].page_url.endswith("/order/139712345620001")
    assert out["order_no"].flags == []


def test_blank_strings_are_null(spark):
    [row] = conform(spark, "web", [{"referrer": "", "device_id": "  ", "user_id": ""}]).collect()
    assert (row.referrer, row.device_id, row.user_id) == (None, None, None)


# --- properties --------------------------------------------------------------------------------


def test_search_term_is_folded_trimmed_and_lower_cased(spark):
    df = spark.createDataFrame(
        [("  ＳＫ－Ⅱ　神仙水 ",), ("Vitamin  C",), ("眼霜 淡纹",), ("   ",), (None,)], "q string"
    )
    got = [r.t for r in df.select(search_term(F.col("q")).alias("t")).collect()]
    assert got == ["sk-ⅱ 神仙水", "vitamin c", "眼霜 淡纹", None, None]


def test_search_term_without_a_typed_phone(spark):
    [row] = conform(
        spark, "miniprogram", [{"event_type": "search", "search_query": "订单 13971234562"}]
    ).collect()
    assert row.search_term == "订单 [redacted]"
    assert row.flags == ["pii_redacted"]


def test_impossible_dwell_and_quantity_become_null_and_flagged(spark):
    rows = [
        {"event_id": "negative", "dwell_ms": -1200},
        {"event_id": "tab_left_open", "dwell_ms": 90_000_000},
        {"event_id": "fine", "dwell_ms": 15_000},
        {"event_id": "zero_qty", "event_type": "add_to_cart", "product_id": "P1", "quantity": 0},
        {"event_id": "two", "event_type": "add_to_cart", "product_id": "P1", "quantity": 2},
    ]
    out = by_id(conform(spark, "app", rows))
    assert (out["negative"].dwell_ms, out["negative"].flags) == (None, ["dwell_negative"])
    assert (out["tab_left_open"].dwell_ms, out["tab_left_open"].flags) == (None, ["dwell_too_long"])
    assert (out["fine"].dwell_ms, out["fine"].flags) == (15_000, [])
    assert (out["zero_qty"].quantity, out["zero_qty"].flags) == (None, ["quantity_invalid"])
    assert (out["two"].quantity, out["two"].flags) == (2, [])
    assert len(out) == 5  # flags, never deletions


def test_unmapped_properties_that_say_what_happened(spark):
    rows = [
        {"event_id": "click", "event_type": "click",
         "_extra": json.dumps({"context.library.name": "cdp-ios", "properties.element": "banner"})},
        {"event_id": "login", "event_type": "login", "user_id": "880000000001",
         "_extra": json.dumps({"properties.method": "sms"})},
        {"event_id": "share", "event_type": "share", "product_id": "P1",
         "_extra": json.dumps({"properties.share_channel": "wechat_moments"})},
        {"event_id": "broken", "_extra": "{not json"},
    ]  # fmt: skip
    out = by_id(conform(spark, "app", rows))
    assert out["click"].element == "banner"
    assert out["login"].method == "sms"
    assert out["share"].share_channel == "wechat_moments"
    assert (out["broken"].element, out["broken"].method) == (None, None)


# --- dedupe ------------------------------------------------------------------------------------


def test_a_re_sent_event_keeps_the_earliest_received_copy(spark):
    rows = [
        {"event_id": "x", "received_at": _utc(2026, 11, 20, 2, 0, 9), "_line": 1},
        {"event_id": "x", "received_at": _utc(2026, 11, 20, 2, 0, 1), "_line": 7,
         "session_id": "first"},
        {"event_id": "y"},
    ]  # fmt: skip
    out = conform(spark, "web", rows)
    assert out.count() == 2
    assert by_id(out)["x"].session_id == "first"
    assert instants(out, "received_at")["x"] == _micros(_utc(2026, 11, 20, 2, 0, 1))


def test_the_same_event_id_on_two_sdks_is_two_events(spark):
    batch = Batch(
        logical_date=DAY,
        hmac_key=KEY,
        bronze={
            "web_events": bronze(spark, "web", [{"event_id": "same"}]),
            "app_events": None,  # not ingested yet
            "miniprogram_events": bronze(spark, "miniprogram", [{"event_id": "same"}]),
        },
    )
    out = build_events(batch)
    assert sorted((r.source, r.event_id) for r in out.collect()) == [
        ("miniprogram", "same"),
        ("web", "same"),
    ]
    assert build_events(Batch(logical_date=DAY, hmac_key=KEY)) is None


# --- identity ----------------------------------------------------------------------------------


def test_identifying_events(spark):
    rows = [{"event_id": t, "event_type": t, "user_id": "880000000001"} for t in EVENT_TYPES]
    out = by_id(conform(spark, "app", rows))
    assert {e for e, r in out.items() if r.identifies} == {"login", "phone_bind", "sign_up"}


def test_phone_is_tokenized_and_the_raw_phone_is_gone(spark):
    rows = [
        {"event_id": "bind", "event_type": "phone_bind", "phone": "139 7123 4562",
         "user_id": "880000000001"},
        {"event_id": "kiosk", "event_type": "sign_up", "phone": "+86 13971234562",
         "user_id": "880000000001"},
        {"event_id": "junk", "event_type": "phone_bind", "phone": "12345"},
        {"event_id": "view"},
    ]  # fmt: skip
    out = conform(spark, "app", rows)
    assert "phone" not in out.columns
    got = by_id(out)
    assert got["bind"].phone_token == _token("+8613971234562")
    assert got["kiosk"].phone_token == got["bind"].phone_token
    assert got["bind"]._pii_phone__phone == "+8613971234562"  # bound for the vault
    assert got["bind"].phone_masked.endswith("4562")
    assert "13971234562" not in got["bind"].phone_masked
    assert (got["junk"].phone_token, got["junk"].flags) == (None, ["phone_unusable"])
    assert (got["view"].phone_token, got["view"].phone_masked) == (None, None)
    text = " ".join(str(v) for r in out.drop("_pii_phone__phone").collect() for v in r)
    assert "13971234562" not in text
    assert "7123 4562" not in text


def test_mini_program_phone_with_its_country_code(spark):
    rows = [
        {"event_id": "cn", "event_type": "phone_bind", "phone": "13971234562",
         "phone_country_code": "86"},
    ]  # fmt: skip
    [row] = conform(spark, "miniprogram", rows).collect()
    assert row.phone_token == _token("+8613971234562")
    assert row.phone_country_code == "86"
    assert (row.appid, row.openid) == (APPID, OPENID)


def test_event_phone_joins_the_country_code(spark):
    df = spark.createDataFrame(
        [("91234567", "852"), ("13971234562", "86"), ("+8613971234562", "86"),
         ("13971234562", None), (None, "86")],
        "p string, c string",
    )  # fmt: skip
    got = [r.x for r in df.select(event_phone(F.col("p"), F.col("c")).alias("x")).collect()]
    assert got == ["+85291234567", "+8613971234562", "+8613971234562", "13971234562", None]


def test_output_columns(spark):
    out = conform(spark, "web", [{}])
    assert out.columns == [*EVENT_COLUMNS, "_pii_phone__phone"]
    [row] = out.collect()
    assert (row.source, row.os, row.openid, row.scene) == ("web", None, None, None)
    assert row._batch_id == "b1"
    assert instants(out, "updated_at")["e0"] == _micros(_utc(2026, 11, 20, 20))


# --- device_identities -------------------------------------------------------------------------


def test_device_identities_tie_devices_to_people(spark):
    rows = [
        # anonymous browsing, then a login on the same device: both ids tie to the card
        {"event_id": "v1", "ts": "2026-11-20T10:00:00.000+08:00",
         "received_at": _utc(2026, 11, 20, 2, 0, 1)},
        {"event_id": "login", "event_type": "login", "user_id": "880000000001",
         "ts": "2026-11-20T10:01:00.000+08:00", "received_at": _utc(2026, 11, 20, 2, 1, 1)},
        {"event_id": "v2", "user_id": "880000000001", "ts": "2026-11-20T10:05:00.000+08:00",
         "received_at": _utc(2026, 11, 20, 2, 5, 1)},
        {"event_id": "bind", "event_type": "phone_bind", "phone": "13971234562",
         "phone_country_code": "86", "user_id": "880000000001",
         "ts": "2026-11-20T10:06:00.000+08:00", "received_at": _utc(2026, 11, 20, 2, 6, 1),
         "unionid": UNIONID},
    ]  # fmt: skip
    events = conform(spark, "miniprogram", rows).drop("_pii_phone__phone")
    out = device_identities(events)
    got = {(r.anchor_type, r.identifier_type): r for r in out.collect()}
    card = got[("device_id", "member_card")]
    assert (card.source, card.anchor_id, card.identifier) == ("miniprogram", "dev-0001",
                                                              "880000000001")  # fmt: skip
    assert (card.event_count, card.identifying_events) == (3, 2)
    assert card.via == ["login", "phone_bind"]
    assert card.first_seen < card.last_seen
    assert got[("anonymous_id", "member_card")].anchor_id == "anon-0001"
    phone = got[("device_id", "phone_token")]
    assert phone.identifier == _token("+8613971234562")
    assert (phone.event_count, phone.via) == (1, ["phone_bind"])
    # the openid (scoped by its app) is a device of the person too, and ties to the unionid
    openid = got[("device_id", "wechat_openid")]
    assert openid.identifier == f"{APPID}:{OPENID}"
    assert (openid.event_count, openid.via) == (4, ["login", "phone_bind"])
    union = got[("wechat_openid", "wechat_unionid")]
    assert (union.anchor_id, union.identifier) == (f"{APPID}:{OPENID}", UNIONID)
    assert got[("wechat_openid", "member_card")].event_count == 3
    assert out.select(*[c for c in out.columns]).count() == len(got)


def test_device_identities_carry_no_anonymous_only_device(spark):
    events = conform(spark, "web", [{"event_id": "a"}, {"event_id": "b"}])
    assert device_identities(events).count() == 0


def test_tables_are_declared_for_the_build():
    events, identities = TABLES
    assert (events.name, events.keys, events.mode, events.partition_by) == (
        "events",
        ("source", "event_id"),
        "merge",
        "event_date",
    )
    assert set(events.inputs) == set(EVENT_SOURCES.values())
    assert (identities.name, identities.mode, identities.depends_on) == (
        "device_identities",
        "replace",
        ("events",),
    )


# --- quality -----------------------------------------------------------------------------------


def test_event_types_match_the_schemas_and_the_suite():
    for sdk in EVENT_SOURCES:
        schema = get_spec(f"{sdk}.events").json_schema()
        assert tuple(schema["properties"]["event_type"]["enum"]) == EVENT_TYPES
    suite = json.loads((EXPECTATIONS / "silver.events.json").read_text())
    [types] = [
        e["kwargs"]["value_set"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set"
        and e["kwargs"]["column"] == "event_type"
    ]
    assert tuple(types) == EVENT_TYPES
    [columns] = [
        e["kwargs"]["column_set"]
        for e in suite["expectations"]
        if e["type"] == "expect_table_columns_to_match_set"
    ]
    assert columns == EVENT_COLUMNS


def _good_events(spark):
    rows = [
        {"event_id": "a", "page_url": "https://www.example-beauty.cn/?utm_source=baidu"},
        {"event_id": "b", "event_type": "phone_bind", "phone": "13971234562"},
        {"event_id": "c", "event_type": "add_to_cart", "product_id": "P1", "quantity": 1},
    ]
    return conform(spark, "app", rows).drop("_pii_phone__phone")


def _blocking(report) -> set[tuple[str, str | None]]:
    return {(r.expectation, r.column) for r in report.failed_blocking}


def test_events_suite_passes_a_good_frame_and_blocks_a_bad_one(spark):
    good = _good_events(spark)
    report = validate(good, "silver.events", run_id="t", expectations_dir=EXPECTATIONS)
    assert report.success_blocking, report.failed_blocking
    bad = good.unionByName(good.where("event_id = 'a'")).withColumn(
        "phone_token", F.when(F.col("event_id") == "b", F.lit("13971234562"))
    )
    report = validate(bad, "silver.events", run_id="t", expectations_dir=EXPECTATIONS)
    assert _blocking(report) == {
        ("expect_compound_columns_to_be_unique", "source,event_id"),
        ("expect_column_values_to_match_regex", "phone_token"),
    }


def test_device_identities_suite(spark):
    rows = [
        {"event_id": "l", "event_type": "login", "user_id": "880000000001"},
        {"event_id": "p", "event_type": "phone_bind", "phone": "13971234562"},
    ]
    good = device_identities(conform(spark, "app", rows))
    report = validate(good, "silver.device_identities", run_id="t", expectations_dir=EXPECTATIONS)
    assert report.success_blocking, report.failed_blocking
    bad = good.withColumn(
        "identifier",
        F.when(F.col("identifier_type") == "phone_token", F.lit("+8613971234562")).otherwise(
            F.col("identifier")
        ),
    ).withColumn("event_count", F.lit(0).cast("long"))
    report = validate(bad, "silver.device_identities", run_id="t", expectations_dir=EXPECTATIONS)
    assert _blocking(report) == {
        ("expect_column_values_to_match_regex", "identifier"),
        ("expect_column_values_to_be_between", "event_count"),
    }


@pytest.mark.parametrize("sdk", EVENT_SOURCES)
def test_a_client_time_with_any_utc_offset_passes_the_schema(sdk):
    """A phone abroad sends its own offset: bronze keeps the event (silver parses the instant,
    jobs/common/clean/dates.py); a time without an offset or with a broken one is refused."""
    import re

    pattern = re.compile(get_spec(f"{sdk}.events").json_schema()["properties"]["ts"]["pattern"])
    for ok in ("2026-11-18T10:00:00+08:00", "2026-11-18T02:00:00Z", "2026-11-17T21:00:00.5-05:00"):
        assert pattern.search(ok), ok
    for bad in ("2026-11-18T10:00:00", "2026-11-18T10:00:00+8", "2026-11-18 10:00:00+08:00"):
        assert not pattern.search(bad), bad
