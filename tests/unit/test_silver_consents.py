"""Silver consent: the consent log, SMS replies, the ledger of every source and the state."""

import hashlib
import hmac
from datetime import date, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.common.errors import CdpError
from jobs.quality.gate import validate
from jobs.silver.consents import (
    TABLES,
    ConsentConfig,
    consent_ledger,
    consent_state,
    crm_consent_log,
    default_state,
    from_crm_consents,
    from_imported,
    from_member_signups,
    from_miniprogram_authorizations,
    from_oa_events,
    from_sms_replies,
    from_wecom_contact_events,
    ledger_parts,
    load_config,
    parse_config,
    sms_replies,
)
from jobs.silver.table import Batch

KEY = b"silver-consents-unit-test-key-0123456789"
DAY = date(2026, 11, 20)
TZ = "Asia/Shanghai"
EXPECTATIONS = Path("expectations")
BOOKKEEPING = "_file string, _line long, _batch_id string, _ingested_at timestamp"
CONSENT_SCHEMA = (
    "consent_id string, member_card string, mobile string, appid string, openid string, "
    "unionid string, purpose string, granted string, changed_at timestamp, channel string, "
    "notice_version string, " + BOOKKEEPING
)
SMS_SCHEMA = (
    "phone string, content string, sign_name string, received timestamp, dest_code string, "
    "sequence_id long, " + BOOKKEEPING
)
INGESTED = datetime(2026, 11, 20, 23, 0, 0)
APPID, OPENID, UNIONID = "wx5f1c2a9b3d7e4f60", "oF3figneg8dy_r6lnfdVmCBMx-uw", "obTes0ysrvgPbiT8"
CONFIG = load_config()


def _names(schema: str) -> list[str]:
    return [part.strip().split(" ")[0] for part in schema.split(", ")]


def frame(spark, schema: str, rows: list[dict], **defaults):
    base = {"_file": "f", "_line": 1, "_batch_id": "b1", "_ingested_at": INGESTED} | defaults
    names = _names(schema)
    return spark.createDataFrame([tuple({**base, **r}.get(n) for n in names) for r in rows], schema)


def consent(consent_id: str, purpose: str, granted: str, at: datetime, **kw) -> dict:
    return {
        "consent_id": consent_id,
        "member_card": "827879447503",
        "mobile": "18745727932",
        "appid": APPID,
        "openid": OPENID,
        "unionid": UNIONID,
        "purpose": purpose,
        "granted": granted,
        "changed_at": at,
        "channel": "member_signup",
        "notice_version": "PN-2019.01",
        **kw,
    }


def sms(seq: int, content: str, phone: str = "18793894785", **kw) -> dict:
    return {
        "phone": phone,
        "content": content,
        "sign_name": "【花漾】",
        "received": datetime(2026, 11, 20, 9, 56),
        "dest_code": "8801",
        "sequence_id": seq,
        **kw,
    }


def _phone_token(e164: str) -> str:
    return hmac.new(KEY, f"phone:{e164}".encode(), hashlib.sha256).hexdigest()


def custom(**changes) -> ConsentConfig:
    """The shipped configuration with some purposes' rules replaced."""
    raw = CONFIG.model_dump(mode="json")
    for purpose, rule in changes.items():
        raw["purposes"][purpose] = {**raw["purposes"][purpose], **rule}
    return parse_config(raw)


def ledger_rows(df) -> set[tuple]:
    return {(r.subject_type, r.subject_id, r.purpose, r.granted, r.source) for r in df.collect()}


# --- configuration ----------------------------------------------------------------------------


def test_config_defaults_and_what_grants_each_purpose():
    assert set(CONFIG.purposes) == {
        "marketing_sms",
        "marketing_wecom",
        "marketing_oa",
        "ads_audience",
        "personalization",
    }
    assert not any(default_state(p) for p in CONFIG.purposes)
    assert CONFIG.purposes_of("wecom_add", True) == ("marketing_wecom",)
    assert CONFIG.purposes_of("wecom_delete", False) == ("marketing_wecom",)
    assert CONFIG.purposes_of("oa_subscribe", True) == ("marketing_oa",)
    assert CONFIG.purposes_of("oa_unsubscribe", False) == ("marketing_oa",)
    assert CONFIG.purposes_of("sms_optout", False) == ("marketing_sms",)
    assert CONFIG.purposes_of("import", True) == ("marketing_sms",)
    # SMS and ads audiences only by an explicit opt-in; joining or sharing a phone grants nothing.
    for purpose in ("marketing_sms", "ads_audience"):
        assert set(CONFIG.purposes[purpose].granted_by) <= {"crm_consents", "import"}
    assert not CONFIG.uses("crm_signup")
    assert not CONFIG.uses("miniprogram_authorization")


def test_config_is_checked_when_loaded():
    raw = CONFIG.model_dump(mode="json")
    raw["purposes"]["marketing_oa"]["withdrawn_by"] = ["oa_subscribe"]  # a follow cannot withdraw
    with pytest.raises(CdpError, match="cannot do that"):
        parse_config(raw)
    raw = CONFIG.model_dump(mode="json")
    raw["purposes"]["marketing_sms"]["granted_by"] = ["carrier_pigeon"]
    with pytest.raises(CdpError, match="carrier_pigeon"):
        parse_config(raw)
    raw = CONFIG.model_dump(mode="json")
    raw["purposes"]["marketing_fax"] = {"default": False}
    with pytest.raises(CdpError, match="marketing_fax"):
        parse_config(raw)


def test_a_purpose_default_can_be_configured():
    assert default_state("personalization", custom(personalization={"default": True})) is True
    assert default_state("marketing_sms") is False


# --- silver.crm_consents ----------------------------------------------------------------------


def test_consent_log_rows_are_typed_and_tokenized(spark):
    bronze = frame(
        spark,
        CONSENT_SCHEMA,
        [
            consent("CS1", "marketing_sms", "granted", datetime(2020, 1, 4, 20, 38)),
            consent("CS2", "marketing_sms", "withdrawn", datetime(2026, 11, 20, 9), mobile=""),
        ],
    )
    got = {r.consent_id: r for r in crm_consent_log(bronze, KEY, DAY, TZ).collect()}
    assert (got["CS1"].granted, got["CS2"].granted) == (True, False)
    assert got["CS1"].phone_token == _phone_token("+8618745727932")
    assert got["CS2"].phone_token is None
    assert got["CS1"].lateness_days > 2000  # the first file's history
    assert got["CS2"].lateness_days == 0
    assert "18745727932" not in repr([v for k, v in got["CS1"].asDict().items() if k[0] != "_"])


# --- SMS replies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "keyword"),
    [
        ("TD", "TD"),
        ("td", "TD"),
        (" T ", "T"),
        ("ＴＤ", "TD"),  # full-width
        ("退订", "退订"),
        ("退订 谢谢", "退订"),
        ("TD。", "TD"),
        ("N", "N"),
        ("取消", "取消"),
        ("请帮我退订吧", "退订"),
        ("不要再发了", "不要再发"),
        ("好的", None),
        ("收到", None),
        ("THANKS", None),
        ("1", None),
        ("怎么领券", None),
    ],
)
def test_sms_optout_keywords(spark, content, keyword):
    bronze = frame(spark, SMS_SCHEMA, [sms(1, content)])
    row = sms_replies(bronze, KEY, DAY, TZ, CONFIG.sms_optout).collect()[0]
    assert row.optout_keyword == keyword
    assert row.is_optout is (keyword is not None)


def test_sms_reply_keeps_metadata_not_content(spark):
    bronze = frame(spark, SMS_SCHEMA, [sms(1000000509, "退订 谢谢")])
    row = sms_replies(bronze, KEY, DAY, TZ, CONFIG.sms_optout).collect()[0]
    assert "content" not in row.asDict()
    assert "谢谢" not in repr(row)
    assert row.content_length == len("退订 谢谢")
    assert row.phone_token == _phone_token("+8618793894785")
    assert (row.sequence_id, row.dest_code, row.received_at) == (
        1000000509,
        "8801",
        datetime(2026, 11, 20, 9, 56),
    )


# --- each source of the ledger ----------------------------------------------------------------


@pytest.fixture(scope="module")
def log(spark):
    bronze = frame(
        spark,
        CONSENT_SCHEMA,
        [
            consent("CS1", "marketing_sms", "granted", datetime(2020, 1, 4, 20, 38)),
            consent(
                "CS2",
                "personalization",
                "granted",
                datetime(2021, 12, 1, 10),
                member_card="",
                mobile="",
                channel="miniprogram",
                notice_version="",
            ),
        ],
    )
    return crm_consent_log(bronze, KEY, DAY, TZ)


def test_crm_consents_reach_every_identifier_of_the_record(log):
    rows = ledger_rows(consent_ledger([from_crm_consents(log)], CONFIG, TZ))
    phone = _phone_token("+8618745727932")
    assert rows == {
        ("member_card", "827879447503", "marketing_sms", True, "crm_consents"),
        ("phone_token", phone, "marketing_sms", True, "crm_consents"),
        ("unionid", UNIONID, "marketing_sms", True, "crm_consents"),
        ("openid", f"{APPID}:{OPENID}", "marketing_sms", True, "crm_consents"),
        ("unionid", UNIONID, "personalization", True, "crm_consents"),
        ("openid", f"{APPID}:{OPENID}", "personalization", True, "crm_consents"),
    }


def test_notice_version_is_the_sources_else_the_one_in_force(log):
    got = {
        (r.subject_type, r.purpose): r
        for r in consent_ledger([from_crm_consents(log)], CONFIG, TZ).collect()
    }
    given = got[("member_card", "marketing_sms")]
    assert (given.notice_version, given.notice_inferred) == ("PN-2019.01", False)
    inferred = got[("openid", "personalization")]  # 2021-12-01: after PIPL's notice
    assert (inferred.notice_version, inferred.notice_inferred) == ("PN-2021.11", True)
    assert inferred.occurred_date == date(2021, 12, 1)


def test_a_purpose_the_config_does_not_let_the_source_set_is_dropped(log):
    config = custom(personalization={"granted_by": [], "withdrawn_by": []})
    rows = ledger_rows(consent_ledger([from_crm_consents(log)], config, TZ))
    assert {r[2] for r in rows} == {"marketing_sms"}


def test_sms_optout_withdraws_sms_marketing_for_the_phone(spark):
    bronze = frame(spark, SMS_SCHEMA, [sms(1, "TD"), sms(2, "好的", phone="13900001111")])
    replies = sms_replies(bronze, KEY, DAY, TZ, CONFIG.sms_optout)
    rows = ledger_rows(consent_ledger([from_sms_replies(replies)], CONFIG, TZ))
    assert rows == {
        ("phone_token", _phone_token("+8618793894785"), "marketing_sms", False, "sms_optout")
    }


OA_SCHEMA = "account_id string, openid string, unionid string, event string, event_ts timestamp"


def test_oa_follow_grants_and_unfollow_withdraws_oa_messages(spark):
    oa = spark.createDataFrame(
        [
            ("gh_brand", "oOA1", "uOA1", "subscribe", datetime(2026, 11, 18, 9)),
            ("gh_brand", "oOA1", "uOA1", "unsubscribe", datetime(2026, 11, 20, 9)),
            ("gh_brand", "oOA2", None, "click", datetime(2026, 11, 20, 9)),
        ],
        OA_SCHEMA,
    )
    part = from_oa_events(oa, CONFIG.match("oa_subscribe"), CONFIG.match("oa_unsubscribe"))
    rows = ledger_rows(consent_ledger([part], CONFIG, TZ))
    assert rows == {
        ("openid", "gh_brand:oOA1", "marketing_oa", True, "oa_subscribe"),
        ("unionid", "uOA1", "marketing_oa", True, "oa_subscribe"),
        ("openid", "gh_brand:oOA1", "marketing_oa", False, "oa_unsubscribe"),
        ("unionid", "uOA1", "marketing_oa", False, "oa_unsubscribe"),
    }


WECOM_SCHEMA = (
    "corp_id string, guide_user_id string, external_userid string, unionid string, "
    "change_type string, event_ts timestamp"
)


def test_wecom_add_grants_and_the_customer_deleting_the_guide_withdraws(spark):
    wecom = spark.createDataFrame(
        [
            ("ww1", "ZhaoYan", "wmA", "uA", "add_external_contact", datetime(2026, 11, 1, 9)),
            ("ww1", "ZhaoYan", "wmA", "uA", "del_follow_user", datetime(2026, 11, 20, 9)),
            ("ww1", "ChenLei", "wmB", None, "add_half_external_contact", datetime(2026, 11, 2)),
            ("ww1", "ChenLei", "wmB", None, "del_external_contact", datetime(2026, 11, 3)),
            ("ww1", "ChenLei", "wmB", None, "edit_external_contact", datetime(2026, 11, 4)),
        ],
        WECOM_SCHEMA,
    )
    part = from_wecom_contact_events(wecom, CONFIG.match("wecom_add"), CONFIG.match("wecom_delete"))
    rows = ledger_rows(consent_ledger([part], CONFIG, TZ))
    assert rows == {
        ("external_userid", "ww1:wmA", "marketing_wecom", True, "wecom_add"),
        ("unionid", "uA", "marketing_wecom", True, "wecom_add"),
        ("external_userid", "ww1:wmA", "marketing_wecom", False, "wecom_delete"),
        ("unionid", "uA", "marketing_wecom", False, "wecom_delete"),
        # The guide deleting the customer is no decision of the customer's.
        ("external_userid", "ww1:wmB", "marketing_wecom", True, "wecom_add"),
    }


IMPORTED_SCHEMA = (
    "source string, customer_id string, marketing_consent boolean, consent_at timestamp, "
    "registered_at timestamp, phone_token string, member_card string, wechat_unionid string, "
    "wechat_openid string, updated_at timestamp"
)


def test_import_consent_dates_a_yes_early_and_a_no_late(spark):
    imported = spark.createDataFrame(
        [
            (
                "shop",
                "1",
                True,
                datetime(2024, 5, 1),
                datetime(2023, 1, 1),
                "t1",
                "C1",
                None,
                "o",
                INGESTED,
            ),
            ("shop", "2", True, None, datetime(2023, 1, 1), "t2", None, None, None, INGESTED),
            ("shop", "3", False, None, datetime(2023, 1, 1), "t3", None, "u3", None, INGESTED),
            ("shop", "4", None, None, datetime(2023, 1, 1), "t4", None, None, None, INGESTED),
        ],
        IMPORTED_SCHEMA,
    )
    got = {
        (r.subject_type, r.subject_id): r
        for r in consent_ledger([from_imported(imported)], CONFIG, TZ).collect()
    }
    assert set(got) == {
        ("phone_token", "t1"),
        ("member_card", "C1"),
        ("phone_token", "t2"),
        ("phone_token", "t3"),
        ("unionid", "u3"),
    }  # no openid without its app; no consent given -> no row
    assert {r.purpose for r in got.values()} == {"marketing_sms"}
    assert got[("phone_token", "t1")].occurred_at == datetime(2024, 5, 1)
    assert got[("phone_token", "t2")].occurred_at == datetime(2023, 1, 1)  # registration
    assert got[("phone_token", "t3")].occurred_at == INGESTED  # the import itself
    assert got[("phone_token", "t3")].granted is False
    assert got[("phone_token", "t1")].source_ref == "shop:1"


MEMBERS_SCHEMA = (
    "member_card string, registered_at timestamp, channel string, phone_token string, "
    "unionid string, updated_at timestamp"
)


def test_member_signup_grants_only_what_the_config_lists(spark):
    members = spark.createDataFrame(
        [("C1", datetime(2026, 11, 20, 8), "tmall", "t1", None, INGESTED)], MEMBERS_SCHEMA
    )
    part = from_member_signups(members)
    assert consent_ledger([part], CONFIG, TZ).count() == 0  # joining is no opt-in by default
    brand = custom(marketing_sms={"granted_by": ["crm_consents", "import", "crm_signup"]})
    rows = ledger_rows(consent_ledger([part], brand, TZ))
    assert rows == {
        ("member_card", "C1", "marketing_sms", True, "crm_signup"),
        ("phone_token", "t1", "marketing_sms", True, "crm_signup"),
    }


EVENTS_SCHEMA = (
    "source string, event_id string, event_type string, event_ts timestamp, user_id string, "
    "appid string, openid string, unionid string, phone_token string, updated_at timestamp"
)


def test_miniprogram_authorization_grants_only_what_the_config_lists(spark):
    at = datetime(2026, 11, 20, 10)
    events = spark.createDataFrame(
        [
            ("miniprogram", "m1", "phone_bind", at, "C1", APPID, OPENID, UNIONID, "t1", INGESTED),
            ("miniprogram", "m2", "page_view", at, "C1", APPID, OPENID, UNIONID, None, INGESTED),
            ("app", "a1", "phone_bind", at, "C1", None, None, None, "t1", INGESTED),
        ],
        EVENTS_SCHEMA,
    )
    part = from_miniprogram_authorizations(events, CONFIG.match("miniprogram_authorization"))
    assert consent_ledger([part], CONFIG, TZ).count() == 0
    brand = custom(personalization={"granted_by": ["crm_consents", "miniprogram_authorization"]})
    rows = ledger_rows(consent_ledger([part], brand, TZ))
    assert rows == {
        ("openid", f"{APPID}:{OPENID}", "personalization", True, "miniprogram_authorization"),
        ("unionid", UNIONID, "personalization", True, "miniprogram_authorization"),
        ("phone_token", "t1", "personalization", True, "miniprogram_authorization"),
        ("member_card", "C1", "personalization", True, "miniprogram_authorization"),
    }


def test_a_resent_event_is_one_ledger_row(spark):
    oa = spark.createDataFrame(
        [("gh_brand", "oOA1", None, "subscribe", datetime(2026, 11, 18, 9))] * 2, OA_SCHEMA
    )
    part = from_oa_events(oa, ("subscribe",), ("unsubscribe",))
    assert consent_ledger([part], CONFIG, TZ).count() == 1


# --- the state --------------------------------------------------------------------------------

LEDGER_SCHEMA = (
    "subject_type string, subject_id string, purpose string, granted boolean, channel string, "
    "source string, occurred_at timestamp, occurred_date date, notice_version string, "
    "notice_inferred boolean, source_ref string, updated_at timestamp"
)


def ledger(spark, rows: list[tuple]):
    """(subject_id, purpose, granted, source, occurred_at, source_ref) -> ledger rows."""
    return spark.createDataFrame(
        [
            ("member_card", s, p, g, "c", src, at, at.date(), "PN", False, ref, INGESTED)
            for s, p, g, src, at, ref in rows
        ],
        LEDGER_SCHEMA,
    )


def state_of(spark, rows):
    return {
        (r.subject_id, r.purpose): r for r in consent_state(ledger(spark, rows), CONFIG).collect()
    }


def test_the_latest_event_wins_and_since_is_when_the_state_began(spark):
    t = [datetime(2026, 11, d, 9) for d in (1, 5, 9, 12)]
    got = state_of(
        spark,
        [
            ("A", "marketing_wecom", True, "wecom_add", t[0], "r1"),
            ("A", "marketing_wecom", False, "wecom_delete", t[1], "r2"),
            ("A", "marketing_wecom", True, "wecom_add", t[2], "r3"),
            ("A", "marketing_wecom", True, "crm_consents", t[3], "r4"),
            ("A", "marketing_sms", True, "crm_consents", t[0], "r5"),
            ("A", "marketing_sms", False, "sms_optout", t[2], "r6"),
        ],
    )
    wecom = got[("A", "marketing_wecom")]
    assert wecom.granted is True
    assert wecom.since == t[2]  # granted again on the 9th, confirmed on the 12th
    assert (wecom.source, wecom.source_ref, wecom.last_event_at, wecom.events) == (
        "crm_consents",
        "r4",
        t[3],
        4,
    )
    sms_state = got[("A", "marketing_sms")]
    assert (sms_state.granted, sms_state.since, sms_state.source) == (False, t[2], "sms_optout")


def test_a_tie_goes_to_the_higher_priority_source(spark):
    at = datetime(2026, 11, 20, 9)
    got = state_of(
        spark,
        [
            ("A", "marketing_wecom", False, "crm_consents", at, "r1"),  # priority 100
            ("A", "marketing_wecom", True, "wecom_add", at, "r2"),  # priority 30
            ("B", "marketing_wecom", True, "crm_consents", at, "r3"),
            ("B", "marketing_wecom", False, "wecom_delete", at, "r4"),  # priority 40
        ],
    )
    assert (got[("A", "marketing_wecom")].granted, got[("A", "marketing_wecom")].source) == (
        False,
        "crm_consents",
    )
    assert (got[("B", "marketing_wecom")].granted, got[("B", "marketing_wecom")].source) == (
        True,
        "crm_consents",
    )


def test_a_tie_between_equal_priorities_goes_to_the_withdrawal(spark):
    at = datetime(2026, 11, 20, 9)
    got = state_of(
        spark,
        [
            ("A", "marketing_sms", True, "crm_consents", at, "r9"),
            ("A", "marketing_sms", False, "crm_consents", at, "r1"),
        ],
    )
    assert got[("A", "marketing_sms")].granted is False


# --- the tables -------------------------------------------------------------------------------


def test_ledger_parts_skip_missing_tables_and_unused_sources(spark, log):
    batch = Batch(logical_date=DAY, hmac_key=KEY, silver_tables={"crm_consents": log})
    assert len(ledger_parts(batch, CONFIG)) == 1  # the other tables are not built yet
    events = spark.createDataFrame([], EVENTS_SCHEMA)
    batch.silver_tables["events"] = events
    assert len(ledger_parts(batch, CONFIG)) == 1  # no source reading events grants anything
    assert {
        t.name: t.build(Batch(logical_date=DAY, hmac_key=KEY)) for t in TABLES
    } == dict.fromkeys(("crm_consents", "sms_replies", "consents", "consent_state"))


def test_tables_declare_modes_and_dependencies():
    by_name = {t.name: t for t in TABLES}
    assert by_name["consents"].mode == by_name["consent_state"].mode == "replace"
    assert {"crm_consents", "sms_replies", "members", "events"} <= set(
        by_name["consents"].depends_on
    )
    assert {"imported_customers", "oa_events", "wecom_contact_events"} <= set(
        by_name["consents"].depends_on
    )
    assert by_name["consent_state"].depends_on == ("consents",)
    for t in TABLES:
        assert (EXPECTATIONS / f"{t.suite_name}.json").is_file()


# --- quality suites ---------------------------------------------------------------------------


def _no_pii(df):
    return df.drop(*(c for c in df.columns if c.startswith("_pii_")))


def _report(df, suite):
    return validate(_no_pii(df), suite, run_id="t", expectations_dir=EXPECTATIONS)


def _failed(report, column):
    return [r for r in report.failed_blocking if column in (r.column or "").split(",")]


def test_suite_crm_consents(log):
    assert _report(log, "silver.crm_consents").success_blocking
    assert _failed(
        _report(log.withColumn("purpose", F.lit("spam")), "silver.crm_consents"), "purpose"
    )


def test_suite_sms_replies(spark):
    df = sms_replies(
        frame(spark, SMS_SCHEMA, [sms(1, "TD"), sms(2, "好的")]), KEY, DAY, TZ, CONFIG.sms_optout
    )
    assert _report(df, "silver.sms_replies").success_blocking
    assert _failed(_report(df.unionByName(df), "silver.sms_replies"), "sequence_id")


def test_suite_consents_and_state(log):
    ledger_df = consent_ledger([from_crm_consents(log)], CONFIG, TZ)
    assert _report(ledger_df, "silver.consents").success_blocking
    raw_phone = ledger_df.withColumn("subject_id", F.lit("18745727932")).withColumn(
        "subject_type", F.lit("mobile")
    )
    report = _report(raw_phone, "silver.consents")
    assert any(r.column == "subject_id" for r in report.failed_warnings)  # a raw mobile
    assert _failed(report, "subject_type")
    state = consent_state(ledger_df, CONFIG)
    assert _report(state, "silver.consent_state").success_blocking
    assert _failed(_report(state.unionByName(state), "silver.consent_state"), "subject_id")
