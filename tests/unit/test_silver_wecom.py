"""Silver WeCom: contact events, relationships replayed from them, chat-archive metadata."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from jobs.quality import gate
from jobs.silver import wecom
from jobs.silver.table import Batch
from jobs.silver.vault import split_pii
from tests.fixtures.shanghai import wall, walls

KEY = b"silver-wecom-test-key-0123456789abcdef"
DAY = date(2026, 11, 20)
CORP = "ww8d3c5e7a1b2f4096"
AGENCY = "wwc41e0b7d9a2f6385"
EXT = "wmQACqiOjyCA6Vu3SeOBJ7FJ6fIqu7cH"
EXT2 = "wm4rEKJx6BQiUz4hxGvakZRdlGVAk0s1"
BOT = "wbAbCdEfGhIjKlMnOpQrStUvWxYz0123"
INGESTED = datetime(2026, 11, 21, 2, 0)
TAGS = [("etJ2GCAAAAb1", "肤质", "敏感肌"), ("etJ2GCAAAAd1", "会员", "VIP")]

CONTACT_SCHEMA = (
    "corp_id string, event string, change_type string, guide_user_id string, "
    "external_userid string, state string, welcome_code string, fail_reason string, "
    "delete_source string, create_time_unix long, unionid string, remark_mobile string, "
    "add_way long, _extra string, _file string, _line long, _batch_id string, "
    "_ingested_at timestamp"
)
MESSAGE_SCHEMA = (
    "msgid string, action string, sender string, receiver string, roomid string, "
    "msgtype string, msgtime_ms long, text_content string, image_md5sum string, "
    "image_filesize long, revoked_msgid string, switch_time_ms long, switch_user string, "
    "_extra string, _file string, _line long, _batch_id string, _ingested_at timestamp"
)


def _fields(schema: str) -> list[str]:
    return [f.strip().split()[0] for f in schema.split(",")]


def unix(wall: datetime) -> int:
    """Unix seconds of an Asia/Shanghai wall time."""
    return calendar.timegm((wall - timedelta(hours=8)).timetuple())


def enrichment(
    guide: str,
    *,
    index: int = 0,
    state: str | None = None,
    tags: list[tuple[str, str, str]] = (),
    created: datetime | None = None,
    **leaves: str,
) -> dict:
    """The `_extra` leaves of externalcontact/get for one follow_user entry."""
    prefix = f"_enriched.follow_user.{index}."
    out = {
        "FromUserName": "sys",
        "_enriched.external_contact.name": "Amy",
        prefix + "userid": guide,
    }
    if state is not None:
        out[prefix + "state"] = state
    if created is not None:
        out[prefix + "createtime"] = str(unix(created))
    for i, (tag_id, group, name) in enumerate(tags):
        out |= {
            f"{prefix}tags.{i}.group_name": group,
            f"{prefix}tags.{i}.tag_name": name,
            f"{prefix}tags.{i}.type": "1",
            f"{prefix}tags.{i}.tag_id": tag_id,
        }
    out |= {prefix + k: v for k, v in leaves.items()}
    return out


def callback(change: str, at: datetime, guide: str = "store_sh_01", **fields) -> dict:
    row = dict.fromkeys(_fields(CONTACT_SCHEMA))
    row |= {
        "corp_id": CORP,
        "event": "change_external_contact",
        "change_type": change,
        "guide_user_id": guide,
        "external_userid": EXT,
        "create_time_unix": unix(at),
        "_file": "wecom/contact_events/dt=2026-11-20/contact_events.jsonl",
        "_line": 1,
        "_batch_id": "b1",
        "_ingested_at": INGESTED,
    }
    extra = fields.pop("extra", None)
    if extra is not None:
        row["_extra"] = json.dumps(extra, ensure_ascii=False)
    return row | fields


def frame(spark, schema: str, rows: list[dict]):
    names = _fields(schema)
    return spark.createDataFrame([tuple(r[n] for n in names) for r in rows], schema)


def contact_events(spark, rows: list[dict], logical_date: date = DAY):
    return wecom.contact_events_to_silver(frame(spark, CONTACT_SCHEMA, rows), logical_date, KEY)


def one(df) -> dict:
    rows = df.collect()
    assert len(rows) == 1, rows
    return walls(rows[0].asDict(recursive=True))


def by(df, column: str) -> dict:
    return {r[column]: walls(r.asDict(recursive=True)) for r in df.collect()}


# --- contact events ---------------------------------------------------------------------------


def test_event_time_is_the_callbacks_unix_seconds_in_shanghai(spark):
    at = datetime(2026, 11, 19, 23, 30, 5)  # late evening of the 19th, Shanghai time ...
    row = one(contact_events(spark, [callback("del_follow_user", at)]))
    assert row["event_ts"] == at
    assert row["event_date"] == date(2026, 11, 19)
    assert row["lateness_days"] == 1  # ... brought by the 20th's run
    early = datetime(2026, 11, 20, 0, 30)  # 16:30 UTC of the 19th: the business date is the 20th
    row = one(contact_events(spark, [callback("del_follow_user", early)]))
    assert (row["event_date"], row["lateness_days"]) == (date(2026, 11, 20), 0)


def test_live_code_state_empty_is_null_and_edit_takes_the_enrichments(spark):
    at = datetime(2026, 11, 20, 10)
    added = callback("add_external_contact", at, state="pkg_card_jd", extra=enrichment("g1"))
    plain = callback("add_external_contact", at, external_userid=EXT2, state="  ")
    edit = callback(
        "edit_external_contact",
        at + timedelta(hours=1),
        state=None,
        extra=enrichment("store_sh_01", state="mp_order_done"),
    )
    df = contact_events(spark, [added, plain, edit])
    states = {(r.external_userid, r.change_type): r.state for r in df.collect()}
    assert states[(EXT, "add_external_contact")] == "pkg_card_jd"
    assert states[(EXT2, "add_external_contact")] is None
    assert states[(EXT, "edit_external_contact")] == "mp_order_done"


def test_guide_tags_are_parsed_from_the_enrichment_in_order(spark):
    edit = callback(
        "edit_external_contact",
        datetime(2026, 11, 20, 9),
        add_way=1,
        extra=enrichment("store_sh_01", tags=TAGS, created=datetime(2024, 3, 1, 12)),
    )
    row = one(contact_events(spark, [edit]))
    assert row["guide_tags"] == [
        {"group_name": "肤质", "tag_name": "敏感肌", "type": 1, "tag_id": "etJ2GCAAAAb1"},
        {"group_name": "会员", "tag_name": "VIP", "type": 1, "tag_id": "etJ2GCAAAAd1"},
    ]
    assert row["add_way"] == 1
    assert row["follow_created_at"] == datetime(2024, 3, 1, 12)


def test_no_enrichment_no_tags_and_an_enrichment_without_tags_is_empty(spark):
    at = datetime(2026, 11, 20, 9)
    deleted = callback("del_follow_user", at)
    untagged = callback("edit_external_contact", at, extra=enrichment("store_sh_01"))
    rows = by(contact_events(spark, [deleted, untagged]), "change_type")
    assert rows["del_follow_user"]["guide_tags"] is None
    assert rows["edit_external_contact"]["guide_tags"] == []


def test_the_callbacks_own_guide_entry_is_read_when_several_guides_follow(spark):
    # externalcontact/get lists every guide: entry 0 is another guide's (mapped to columns),
    # entry 1 is this callback's guide's, read from _extra.
    extra = enrichment("other_guide", index=0, tags=TAGS[:1], state="campaign_d11")
    extra |= enrichment("store_sh_01", index=1, tags=TAGS[1:], state="pkg_card_jd", add_way="3")
    extra["_enriched.follow_user.1.remark_mobiles.0"] = "13761452398"
    edit = callback(
        "edit_external_contact",
        datetime(2026, 11, 20, 9),
        add_way=1,
        remark_mobile="13500000001",
        extra=extra,
    )
    row = one(contact_events(spark, [edit]))
    assert [t["tag_name"] for t in row["guide_tags"]] == ["VIP"]
    assert row["state"] == "pkg_card_jd"
    assert row["add_way"] == 3
    assert row["_pii_phone__phone"] == "+8613761452398"


def test_enrichment_about_other_guides_only_gives_no_tags(spark):
    fail = callback(
        "transfer_fail",
        datetime(2026, 11, 20, 9),
        guide="takeover",
        fail_reason="customer_refused",
        extra=enrichment("store_sh_01", tags=TAGS),
    )
    row = one(contact_events(spark, [fail]))
    assert row["guide_tags"] is None
    assert row["fail_reason"] == "customer_refused"


def test_remark_mobile_is_tokenized_never_kept(spark):
    edit = callback(
        "edit_external_contact",
        datetime(2026, 11, 20, 9),
        remark_mobile="137 6145 2398",
        extra=enrichment("store_sh_01"),
    )
    df = contact_events(spark, [edit])
    row = one(df)
    expected = hmac.new(KEY, b"phone:+8613761452398", hashlib.sha256).hexdigest()
    assert row["phone_token"] == expected
    assert "****" in row["phone_masked"]
    assert "61452398" not in row["phone_masked"]
    data, vault = split_pii(df)
    assert "remark_mobile" not in data.columns
    values = [str(v) for v in one(data).values()]
    assert not any("6145" in v and "2398" in v for v in values)
    assert one(vault) == {"kind": "phone", "token": expected, "value": "+8613761452398"}


def test_retried_callback_collapses_to_the_latest_landing(spark):
    at = datetime(2026, 11, 20, 9)
    first = callback("add_external_contact", at, state="a", _line=1)
    retry = callback(
        "add_external_contact", at, state="b", _line=5, _ingested_at=INGESTED + timedelta(hours=1)
    )
    row = one(contact_events(spark, [first, retry]))
    assert row["state"] == "b"
    assert row["updated_at"] == wall(INGESTED + timedelta(hours=1))


def test_build_without_bronze_is_none():
    batch = Batch(logical_date=DAY, hmac_key=KEY, bronze={"wecom_contact_events": None})
    assert wecom.build_contact_events(batch) is None
    assert wecom.build_relationships(batch) is None
    assert wecom.build_messages(batch) is None


# --- relationships ----------------------------------------------------------------------------

T0 = datetime(2026, 11, 1, 10)
SHANGHAI = ZoneInfo("Asia/Shanghai")
EVENT_FIELDS = [
    ("corp_id", "string"),
    ("guide_user_id", "string"),
    ("external_userid", "string"),
    ("change_type", "string"),
    ("event_ts", "timestamp"),
    ("state", "string"),
    ("add_way", "int"),
    ("delete_source", "string"),
    ("unionid", "string"),
    ("phone_token", "string"),
    ("phone_masked", "string"),
    ("guide_tags", wecom.TAG_TYPE),
    ("follow_created_at", "timestamp"),
    ("updated_at", "timestamp"),
]


def event(change: str, at: datetime, guide: str = "g", **fields) -> tuple:
    """A row of silver.wecom_contact_events (times are Asia/Shanghai wall times)."""
    row = dict.fromkeys(name for name, _ in EVENT_FIELDS)
    row |= {
        "corp_id": CORP,
        "guide_user_id": guide,
        "external_userid": EXT,
        "change_type": change,
        "event_ts": at.replace(tzinfo=SHANGHAI),
        "updated_at": INGESTED,
    }
    tags = fields.pop("tags", None)
    if tags is not None:
        row["guide_tags"] = [(group, name, 1, tag_id) for tag_id, group, name in tags]
    row |= fields
    return tuple(row[name] for name, _ in EVENT_FIELDS)


def relationships(spark, rows: list[tuple]) -> dict:
    schema = ", ".join(f"{name} {kind}" for name, kind in EVENT_FIELDS)
    return by(wecom.relationships(spark.createDataFrame(rows, schema)), "guide_user_id")


def test_an_add_is_active_with_its_channel(spark):
    rows = [
        event(
            "add_external_contact",
            T0,
            state="pkg_card_tmall",
            add_way=1,
            unionid="ozvJI--85mrslw41bKHrPBeKy8UH",
            tags=TAGS[:1],
        )
    ]
    r = relationships(spark, rows)["g"]
    assert r["status"] == "active"
    assert (r["added_at"], r["first_added_at"], r["deleted_at"]) == (T0, T0, None)
    assert (r["first_state"], r["state"], r["add_way"]) == ("pkg_card_tmall",) * 2 + (1,)
    assert r["unionid"] == "ozvJI--85mrslw41bKHrPBeKy8UH"
    assert [t["tag_id"] for t in r["guide_tags"]] == ["etJ2GCAAAAb1"]
    assert r["events"] == 1


def test_customer_deleting_the_guide_ends_it_and_the_guides_cleanup_does_not_change_who(spark):
    rows = [
        event("add_external_contact", T0),
        event("del_follow_user", T0 + timedelta(days=3)),
        event("del_external_contact", T0 + timedelta(days=5)),
    ]
    r = relationships(spark, rows)["g"]
    assert (r["status"], r["deleted_by"]) == ("deleted_by_customer", "customer")
    assert r["deleted_at"] == T0 + timedelta(days=3)
    assert r["last_event_at"] == T0 + timedelta(days=5)
    assert r["events"] == 3


def test_guide_deleting_the_customer(spark):
    rows = [
        event("add_half_external_contact", T0),
        event("del_external_contact", T0 + timedelta(days=1)),
    ]
    r = relationships(spark, rows)["g"]
    assert (r["status"], r["deleted_by"]) == ("deleted_by_guide", "guide")


def test_delete_then_re_add_is_active_again(spark):
    readd = T0 + timedelta(days=10)
    rows = [
        event("add_external_contact", T0, state="pkg_card_jd"),
        event("del_follow_user", T0 + timedelta(days=2)),
        event("add_external_contact", readd, state="campaign_d11"),
    ]
    r = relationships(spark, rows)["g"]
    assert r["status"] == "active"
    assert (r["added_at"], r["first_added_at"]) == (readd, T0)
    assert (r["deleted_at"], r["deleted_by"]) == (None, None)
    assert (r["first_state"], r["state"]) == ("pkg_card_jd", "campaign_d11")


def test_transfer_moves_the_relationship_and_a_failed_transfer_changes_nothing(spark):
    rows = [
        event("add_external_contact", T0, guide="old"),
        event(
            "del_external_contact",
            T0 + timedelta(days=1),
            guide="old",
            delete_source="DELETE_BY_TRANSFER",
        ),
        event("add_external_contact", T0, guide="kept"),
        event("transfer_fail", T0 + timedelta(days=1), guide="takeover"),
    ]
    rels = relationships(spark, rows)
    assert (rels["old"]["status"], rels["old"]["deleted_by"]) == ("transferred", "transfer")
    assert rels["kept"]["status"] == "active"
    assert "takeover" not in rels  # the takeover guide never got the customer


def test_history_starting_with_an_edit_is_active_without_added_at(spark):
    rows = [event("edit_external_contact", T0, state="pkg_card_jd", tags=TAGS)]
    r = relationships(spark, rows)["g"]
    assert (r["status"], r["added_at"], r["first_state"]) == ("active", None, "pkg_card_jd")
    assert len(r["guide_tags"]) == 2


def test_an_edit_after_the_customer_left_does_not_reactivate(spark):
    rows = [
        event("add_external_contact", T0, tags=TAGS[:1]),
        event("del_follow_user", T0 + timedelta(days=1)),
        event("edit_external_contact", T0 + timedelta(days=2), tags=TAGS[1:]),
    ]
    r = relationships(spark, rows)["g"]
    assert r["status"] == "deleted_by_customer"
    assert [t["tag_name"] for t in r["guide_tags"]] == ["VIP"]  # the latest tags still count


def test_same_second_add_and_delete_orders_the_add_first(spark):
    rows = [event("del_follow_user", T0), event("add_external_contact", T0)]
    assert relationships(spark, rows)["g"]["status"] == "deleted_by_customer"


def test_latest_known_values_survive_later_bare_events(spark):
    rows = [
        event(
            "add_external_contact",
            T0,
            unionid="ozvJI--85mrslw41bKHrPBeKy8UH",
            phone_token="a" * 64,
            tags=TAGS,
        ),
        event("del_follow_user", T0 + timedelta(days=1)),  # a deletion has no enrichment
    ]
    r = relationships(spark, rows)["g"]
    assert (r["unionid"], r["phone_token"]) == ("ozvJI--85mrslw41bKHrPBeKy8UH", "a" * 64)
    assert len(r["guide_tags"]) == 2


def test_relationships_are_per_corp(spark):
    rows = [
        event("add_external_contact", T0),
        event("del_follow_user", T0 + timedelta(days=1), corp_id=AGENCY),
    ]
    schema = ", ".join(f"{name} {kind}" for name, kind in EVENT_FIELDS)
    got = wecom.relationships(spark.createDataFrame(rows, schema)).collect()
    assert {r.corp_id: r.status for r in got} == {CORP: "active", AGENCY: "deleted_by_customer"}


# --- chat archive -----------------------------------------------------------------------------

M0 = datetime(2026, 11, 20, 10, 15, 30)


def message(msgid: str, action: str = "send", at: datetime = M0, **fields) -> dict:
    row = dict.fromkeys(_fields(MESSAGE_SCHEMA))
    row |= {
        "msgid": msgid,
        "action": action,
        "sender": EXT,
        "receiver": "store_sh_01",
        "roomid": "",
        "msgtype": "text",
        "msgtime_ms": unix(at) * 1000 + 250,
        "text_content": "你好，请问这款精华敏感肌能用吗？",
        "_file": "wecom/messages/dt=2026-11-20/messages.jsonl",
        "_line": 1,
        "_batch_id": "b1",
        "_ingested_at": INGESTED,
    }
    extra = fields.pop("extra", None)
    if extra is not None:
        row["_extra"] = json.dumps(extra)
    return row | fields


def messages(spark, rows: list[dict], logical_date: date = DAY):
    return wecom.messages_to_silver(frame(spark, MESSAGE_SCHEMA, rows), logical_date)


def test_message_metadata_and_no_content(spark):
    df = messages(spark, [message("m1")])
    row = one(df)
    assert not {"text_content", "content", "text"} & set(df.columns)
    assert "敏感肌" not in str(row)
    assert (row["has_text"], row["text_length"]) == (True, len("你好，请问这款精华敏感肌能用吗？"))
    assert row["msg_ts"] == M0 + timedelta(milliseconds=250)
    assert (row["msg_date"], row["lateness_days"]) == (DAY, 0)
    assert (row["sender_type"], row["chat_type"], row["roomid"]) == ("external", "single", None)
    assert (row["external_userid"], row["guide_user_id"]) == (EXT, "store_sh_01")
    assert row["receivers"] == ["store_sh_01"]


def test_sender_types(spark):
    rows = [
        message("m1", sender="store_sh_01", receiver=EXT),
        message("m2", sender=EXT),
        message("m3", sender="wo" + "A" * 30),
        message("m4", sender=BOT),
        message("m5", sender="wolfgang"),  # a member userid that happens to start with "wo"
    ]
    types = {r.msgid: r.sender_type for r in messages(spark, rows).collect()}
    assert types == {"m1": "guide", "m2": "external", "m3": "external", "m4": "bot", "m5": "guide"}


def test_group_message_keeps_the_room_and_every_receiver(spark):
    extra = {"tolist.2": EXT2, "tolist.1": "store_bj_01"}
    row = one(
        messages(
            spark, [message("m1", sender="store_sh_01", receiver=EXT, roomid="wr1", extra=extra)]
        )
    )
    assert (row["chat_type"], row["roomid"]) == ("group", "wr1")
    assert row["receivers"] == [EXT, "store_bj_01", EXT2]
    assert (row["guide_user_id"], row["external_userid"]) == ("store_sh_01", None)


def test_image_has_size_and_no_text(spark):
    row = one(
        messages(
            spark,
            [message("m1", msgtype="image", text_content=None, image_filesize=23674)],
        )
    )
    assert (row["has_text"], row["text_length"], row["image_size"]) == (False, None, 23674)


def test_switch_record_has_time_and_user_only(spark):
    at = datetime(2026, 11, 20, 22, 4, 36)
    switch = message(
        "2148470950569460221",
        "switch",
        sender=None,
        receiver=None,
        roomid=None,
        msgtype=None,
        msgtime_ms=None,
        text_content=None,
        switch_time_ms=unix(at) * 1000,
        switch_user="online_01",
    )
    row = one(messages(spark, [switch]))
    assert (row["action"], row["sender"], row["sender_type"]) == ("switch", "online_01", "guide")
    assert (row["msg_ts"], row["msg_date"]) == (at, DAY)
    assert (row["receivers"], row["chat_type"], row["revoked"]) == (None, None, False)


def test_repulled_message_is_one_row(spark):
    rows = [message("m1", _line=1), message("m1", _line=9, _batch_id="b2")]
    row = one(messages(spark, rows))
    assert row["_batch_id"] == "b2"


def recall(msgid: str, of: str, at: datetime) -> dict:
    return message(
        msgid,
        "recall",
        at,
        sender="store_sh_01",
        receiver=EXT,
        msgtype="revoke",
        text_content=None,
        revoked_msgid=of,
    )


def test_recall_the_same_day_revokes_the_message(spark):
    rows = [
        message("m1", sender="store_sh_01", receiver=EXT),
        message("m2"),
        recall("r1", "m1", M0 + timedelta(minutes=1)),
    ]
    got = {r.msgid: (r.revoked, r.origin_msgid) for r in messages(spark, rows).collect()}
    assert got == {"m1": (True, "m1"), "m2": (False, "m2"), "r1": (False, "m1")}


def test_recall_on_a_later_day_revokes_through_the_refresh(spark):
    late = datetime(2026, 11, 21, 0, 0, 30)  # the recall lands in the next day's archive
    day1 = messages(spark, [message("m1", sender="store_sh_01", at=M0.replace(hour=23))])
    day2 = messages(spark, [recall("r1", "m1", late)], date(2026, 11, 21))
    assert not one(day1)["revoked"]
    (table,) = [t for t in wecom.TABLES if t.name == "wecom_messages"]
    assert table.refresh is wecom.flag_revoked
    assert table.refresh_by == "origin_msgid"
    # the build re-reads every stored row whose origin_msgid the day's rows carry
    touched = {r.origin_msgid for r in day2.collect()}
    stored = day1.unionByName(day2).where(day1["origin_msgid"].isin(*touched))
    got = {r.msgid: r.revoked for r in table.refresh(stored).collect()}
    assert got == {"m1": True, "r1": False}


# --- the tables and their suites --------------------------------------------------------------


def test_tables_declare_keys_modes_and_dependencies():
    tables = {t.name: t for t in wecom.TABLES}
    assert tables["wecom_contact_events"].keys == wecom.CONTACT_EVENT_KEYS
    assert tables["wecom_relationships"].mode == "replace"
    assert tables["wecom_relationships"].depends_on == ("wecom_contact_events",)
    assert tables["wecom_messages"].partition_by == "msg_date"
    assert [t.name for t in wecom.TABLES].index("wecom_contact_events") < [
        t.name for t in wecom.TABLES
    ].index("wecom_relationships")


def test_batch_build_reads_the_days_bronze_and_silver(spark):
    bronze = frame(spark, CONTACT_SCHEMA, [callback("add_external_contact", T0, guide="g")])
    batch = Batch(logical_date=DAY, hmac_key=KEY, bronze={"wecom_contact_events": bronze})
    events = wecom.build_contact_events(batch)
    batch.silver_tables["wecom_contact_events"] = split_pii(events)[0]
    assert one(wecom.build_relationships(batch))["status"] == "active"


def validate(df, suite: str, engine: str = "pandas") -> gate.QualityReport:
    """The suite on the rows as the build hands them over: Arrow-backed pandas for a small day
    (jobs/silver/build.py), a Spark frame for a big one."""
    data = split_pii(df)[0]
    if engine == "pandas":
        import pandas as pd

        data = data.toArrow().to_pandas(types_mapper=pd.ArrowDtype)
    return gate.validate(data, suite, run_id="t", expectations_dir=Path("expectations"))


def failed(report: gate.QualityReport) -> set[tuple[str, str | None]]:
    return {(r.expectation, r.column) for r in report.failed_blocking}


def history() -> list[dict]:
    return [
        callback(
            "add_external_contact",
            T0,
            guide="g",
            state="pkg_card_jd",
            add_way=1,
            remark_mobile="13761452398",
            extra=enrichment("g", tags=TAGS),
        ),
        callback("del_follow_user", T0 + timedelta(days=1), guide="g"),
        callback("add_external_contact", T0, guide="h"),
        callback(
            "transfer_fail",
            T0 + timedelta(days=2),
            guide="k",
            fail_reason="customer_limit_exceed",
        ),
    ]


def test_contact_event_and_relationship_suites(spark):
    from pyspark.sql import functions as F

    events = contact_events(spark, history())
    report = validate(events, "silver.wecom_contact_events")
    assert report.success_blocking, failed(report)
    rels = wecom.relationships(events)
    report = validate(rels, "silver.wecom_relationships")
    assert all(r.success for r in report.results), [r for r in report.results if not r.success]

    bad = events.withColumn("phone_token", F.lit("13761452398")).unionByName(events.limit(1))
    got = failed(validate(bad, "silver.wecom_contact_events"))
    assert ("expect_column_values_to_match_regex", "phone_token") in got
    assert any(e == "expect_compound_columns_to_be_unique" for e, _ in got)
    bad = rels.withColumn(
        "status", F.when(F.col("guide_user_id") == "g", "active").otherwise(F.col("status"))
    )
    got = failed(validate(bad, "silver.wecom_relationships"))
    assert ("expect_column_values_to_be_null", "deleted_at") in got


def message_rows() -> list[dict]:
    return [
        message("m1", sender="store_sh_01", receiver=EXT),
        recall("r1", "m1", M0 + timedelta(minutes=1)),
        message("m2", msgtype="image", text_content=None, image_filesize=10),
    ]


def test_message_suite(spark):
    from pyspark.sql import functions as F

    df = messages(spark, message_rows())
    report = validate(df, "silver.wecom_messages")
    assert report.success_blocking, failed(report)
    bad = df.withColumn("action", F.upper("action"))
    got = failed(validate(bad, "silver.wecom_messages"))
    assert ("expect_column_values_to_be_in_set", "action") in got
    bad = df.withColumn("revoked", F.col("action") == "recall")
    got = failed(validate(bad, "silver.wecom_messages"))
    assert ("expect_column_values_to_be_in_set", "revoked") in got


def test_message_suite_runs_on_spark_too(spark):
    """A big day is validated as a Spark frame: the suite's row conditions work there too."""
    from pyspark.sql import functions as F

    df = messages(spark, message_rows())
    bad = df.withColumn("revoked", F.col("action") == "recall")
    got = failed(validate(bad, "silver.wecom_messages", engine="spark"))
    assert got == {("expect_column_values_to_be_in_set", "revoked")}
