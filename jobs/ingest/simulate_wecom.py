"""Simulated WeCom (企业微信) and WeChat Official Account pushes, with ground truth.

Private-domain (私域) marketing runs on guides adding customers on WeCom through live codes
(渠道活码, whose `state` says which channel brought them), chatting with them, and on the Official
Account's follows and template messages. These pushes carry only per-corp or per-app ids
(ExternalUserID, openid), never a phone, so One-ID must tie them to orders through unionids and
member ids seen elsewhere; the simulator writes them with the person behind each record.

Shapes: WeCom 客户联系 callbacks and Official Account event pushes arrive as encrypted XML; the
connector decrypts them and lands each as one JSON object per line, element name -> value, all
values strings as XML has no numbers. Chat-archive messages (会话内容存档) are JSON as the finance
SDK's DecryptData returns them. One file per dataset and day under
``{out}/<source>/<dataset>/dt=YYYY-MM-DD/``. Spoiled lines use `simulate_events.spoil_json`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path

from jobs.ingest.simulate import PRODUCTS, Person, Truth, WriterResult, daily_sample, day_start
from jobs.ingest.simulate_events import (
    active_second,
    dumps_line,
    landing_file,
    spoil_json,
    stable_frac,
    stable_hex,
    wx_openid,
)

CORP_ID = "ww8d3c5e7a1b2f4096"
GUIDES = ["LiuFang", "ZhangMin", "WangJing", "ChenLei", "ZhaoYan", "store_sh_01", "store_bj_01"]
# Live-code states (渠道活码 state, at most 30 characters): which channel brought the contact.
CHANNELS = {
    "pkg_card_tmall": 0.30,  # 包裹卡 in Tmall parcels
    "pkg_card_jd": 0.10,
    "store_sh_counter": 0.15,
    "live_douyin_1111": 0.15,
    "oa_menu_vip": 0.10,
    "mp_order_done": 0.15,
    "": 0.05,  # added by searching the guide: no live code, empty State
}
TAGS = [  # corp tags (企业标签) guides put on customers: (tag_id, group_name, tag_name)
    ("etJ2GCAAAAb1", "肤质", "敏感肌"),
    ("etJ2GCAAAAb2", "肤质", "油性"),
    ("etJ2GCAAAAc1", "意向", "高意向"),
    ("etJ2GCAAAAc2", "意向", "价格敏感"),
    ("etJ2GCAAAAd1", "会员", "VIP"),
]
CONTACT_CHANGES = {
    "add_external_contact": 0.55,
    "edit_external_contact": 0.25,
    "del_follow_user": 0.15,  # the customer deleted the guide
    "del_external_contact": 0.05,  # the guide deleted the customer
}
UNKNOWN_CHANGE = "transfer_fail"  # a real ChangeType we do not model yet: quarantined, replayable
CUSTOMER_LINES = [
    "你好，请问这款精华敏感肌能用吗？",
    "双11有什么优惠吗",
    "我上次买的面膜什么时候发货呀",
    "收到了，包装很好，谢谢",
    "防晒霜和隔离可以一起用吗",
    "有小样可以试用吗",
]
GUIDE_LINES = [
    "亲，这款是无香精配方，敏感肌可以放心使用哦～",
    "双11当天前1小时下单满399减50，还可以叠加会员券",
    "已经帮您查询了，今天下午就会发出",
    "不客气，有任何问题随时找我哦",
    "给您发一张使用步骤图，可以参考一下",
]
UNKNOWN_MSGTYPE = "meeting_voice_call"  # a real msgtype we do not model yet
OA_APPID = "wx2b7e9d40c6a13f58"
OA_ORIGINAL_ID = "gh_3a5f7c9e1b2d"
OA_EVENTS = {
    "subscribe": 0.30,
    "unsubscribe": 0.08,
    "SCAN": 0.12,
    "VIEW": 0.20,  # menu link click; EventKey is the URL
    "TEMPLATESENDJOBFINISH": 0.30,  # delivery report of a template message
}
OA_SCENES = ["1001", "2001", "3001", "store_sh", "pkg_card"]  # parametric QR code scenes
UNKNOWN_OA_EVENT = "user_enter_tempsession"  # real, but not one we model yet


def external_userid(person: Person) -> str:
    """The person's ExternalUserID in the brand's corp (per corp: another corp sees another)."""
    return "wm" + stable_hex(person.person_id, f"wecom-ext:{CORP_ID}", 30)


def owning_guide(person: Person) -> str:
    return GUIDES[int(stable_frac(person.person_id, "guide") * len(GUIDES))]


def is_wecom_contact(person: Person) -> bool:
    """About half the customers ever added a guide; only they chat."""
    return stable_frac(person.person_id, "wecom-contact") < 0.5


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _unix(day: date, rng: random.Random) -> int:
    # Business dates are Asia/Shanghai days: 00:00 +08:00 is 16:00 UTC the day before.
    return int((day_start(day) - timedelta(hours=8)).timestamp()) + active_second(rng)


def contact_event(rng: random.Random, person: Person, day: date, change: str | None = None) -> dict:
    """One change_external_contact callback, decrypted XML as JSON (strings, as XML has)."""
    change = change or _pick(rng, CONTACT_CHANGES)
    event = {
        "ToUserName": CORP_ID,
        "FromUserName": "sys",
        "CreateTime": str(_unix(day, rng)),
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": change,
        "UserID": owning_guide(person),
        "ExternalUserID": external_userid(person),
    }
    if change == "add_external_contact":
        event["State"] = _pick(rng, CHANNELS)
        event["WelcomeCode"] = stable_hex(person.person_id, f"welcome:{day}", 43)
    if change == "edit_external_contact":
        # Our connector's enrichment (not in the callback): the tags externalcontact/get returned.
        tags = rng.sample(TAGS, rng.randrange(1, 3))
        event["_enriched"] = {
            "tags": [{"tag_id": t, "group_name": g, "tag_name": n, "type": "1"} for t, g, n in tags]
        }
    return event


def contact_record_id(event: dict) -> str:
    """Callbacks have no id: the record is (ExternalUserID, UserID, ChangeType, CreateTime)."""
    keys = ("ExternalUserID", "UserID", "ChangeType", "CreateTime")
    return "|".join(str(event.get(k, "")) for k in keys)


def write_contact_events(
    out: Path,
    day: date,
    people: list[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int = 0,
) -> WriterResult:
    """One day of WeCom contact callbacks; (records, spoiled, truth rows keyed by
    `contact_record_id`)."""
    return _write_day(
        out,
        ("wecom", "contact_events", "contact_events.jsonl"),
        day,
        ((contact_event(rng, p, day), p) for p in daily_sample(people, rng, 0.02)),
        rng,
        bad_rate,
        spoil=lambda event: {
            "required": rng.choice(("ExternalUserID", "UserID", "CreateTime")),
            "wrong_type": ("CreateTime", f"{day} 10:00:00"),
            "type_path": "ChangeType",
            "unknown_type": UNKNOWN_CHANGE,
        },
        record_id=contact_record_id,
    )


def _write_day(
    out: Path,
    where: tuple[str, str, str],
    day: date,
    records: Iterable[tuple[dict, Person]],
    rng: random.Random,
    bad_rate: float,
    *,
    spoil: Callable[[dict], dict],
    record_id: Callable[[dict], str],
) -> WriterResult:
    """Write one day's (record, person) pairs as JSON lines under `where` = (source, dataset,
    file name), spoiling `bad_rate` of them with `spoil(record)`'s damage; truth keyed by
    `record_id(record)`."""
    source, dataset, name = where
    written = bad = 0
    truth: Truth = []
    with landing_file(out, source, dataset, day, name) as fh:
        for record, person in records:
            line = dumps_line(record)
            if rng.random() < bad_rate:
                line, _kind = spoil_json(rng, record, **spoil(record))
                bad += 1
            fh.write(line + "\n")
            truth.append((source, record_id(record), person.person_id))
            written += 1
    return written, bad, truth


def _conversation(rng: random.Random, person: Person, day: date) -> list[dict]:
    """One chat of the person with their guide: 1:1, or in the guide's customer group."""
    guide, customer = owning_guide(person), external_userid(person)
    room = f"wr{stable_hex(guide, 'room', 30)}" if rng.random() < 0.3 else ""
    ms = _unix(day, rng) * 1000 + rng.randrange(1000)
    messages: list[dict] = []
    for turn in range(rng.randrange(1, 6)):
        from_guide = turn % 2 == 1
        sender, receiver = (guide, customer) if from_guide else (customer, guide)
        msg = {
            "msgid": f"{rng.getrandbits(64):d}_{ms // 1000}_external",
            "action": "send",
            "from": sender,
            "tolist": [receiver],
            "roomid": room,
            "msgtime": ms,
        }
        if from_guide and rng.random() < 0.2:
            sku = rng.choice(PRODUCTS)[0]
            msg["msgtype"] = "image"
            msg["image"] = {
                "md5sum": stable_hex(sku, "img", 32),
                "filesize": rng.randrange(20_000, 900_000),
                "sdkfileid": "CtYBMzA2OTAyMDEwMjA0" + stable_hex(sku, "sdkfile", 40),
            }
        else:
            lines = GUIDE_LINES if from_guide else CUSTOMER_LINES
            text = rng.choice(lines)
            if room and from_guide:
                text = f"@{person.name} {text}"  # a group reply names the customer
            msg["msgtype"] = "text"
            msg["text"] = {"content": text}
        messages.append(msg)
        ms += rng.randrange(5_000, 300_000)
        if from_guide and rng.random() < 0.1:  # the guide takes a message back
            messages.append(
                {
                    "msgid": f"{rng.getrandbits(64):d}_{ms // 1000}_external",
                    "action": "recall",
                    "from": guide,
                    "tolist": [customer],
                    "roomid": room,
                    "msgtime": ms,
                    "msgtype": "revoke",
                    "revoke": {"pre_msgid": msg["msgid"]},
                }
            )
            ms += rng.randrange(1_000, 60_000)
    return messages


def write_messages(
    out: Path,
    day: date,
    people: list[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int = 0,
) -> WriterResult:
    """One day of archived chat messages; (messages, spoiled, truth rows (wecom, msgid, person)).

    Only people who added a guide chat; a group message's person is the customer it is from or
    to (guides in groups reply to one customer).
    """
    chats = (
        (msg, person)
        for person in daily_sample(people, rng, 0.03)
        if is_wecom_contact(person)
        for msg in _conversation(rng, person, day)
    )
    return _write_day(
        out,
        ("wecom", "messages", "messages.jsonl"),
        day,
        chats,
        rng,
        bad_rate,
        spoil=lambda msg: {
            "required": rng.choice(("msgid", "from", "msgtime")),
            "wrong_type": ("msgtime", f"{day}T10:00:00"),
            "type_path": "msgtype",
            "unknown_type": UNKNOWN_MSGTYPE,
        },
        record_id=lambda msg: msg["msgid"],
    )


def oa_event(rng: random.Random, person: Person, day: date, event: str | None = None) -> dict:
    """One Official Account event push, decrypted XML as JSON (strings, as XML has)."""
    event = event or _pick(rng, OA_EVENTS)
    push = {
        "ToUserName": OA_ORIGINAL_ID,
        "FromUserName": wx_openid(person.person_id, OA_APPID),
        "CreateTime": str(_unix(day, rng)),
        "MsgType": "event",
        "Event": event,
    }
    if event in ("subscribe", "SCAN"):
        scene = rng.choice(OA_SCENES) if event == "SCAN" or rng.random() < 0.6 else None
        if scene is not None:
            # A parametric QR code: qrscene_<scene> on a follow, the bare scene on a rescan.
            push["EventKey"] = f"qrscene_{scene}" if event == "subscribe" else scene
            push["Ticket"] = "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xLz" + stable_hex(
                scene, "ticket", 16
            )
        else:
            push["EventKey"] = ""  # followed by searching the account
    elif event == "VIEW":
        push["EventKey"] = (
            "https://www.example-beauty.cn/campaign/d11?utm_source=wechat_oa"
            "&utm_medium=menu&utm_campaign=d11_warmup"
        )
    elif event == "TEMPLATESENDJOBFINISH":
        push["MsgID"] = str(rng.getrandbits(52))
        push["Status"] = rng.choices(
            ("success", "failed:user block", "failed: system failed"), weights=(95, 4, 1)
        )[0]
    return push


def oa_record_id(push: dict) -> str:
    """Pushes have no id (MsgID only on template reports): (openid, Event, CreateTime)."""
    return "|".join(str(push.get(k, "")) for k in ("FromUserName", "Event", "CreateTime"))


def write_oa_events(
    out: Path,
    day: date,
    people: list[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int = 0,
) -> WriterResult:
    """One day of Official Account pushes; (records, spoiled, truth rows keyed by
    `oa_record_id`)."""
    return _write_day(
        out,
        ("oa", "events", "events.jsonl"),
        day,
        ((oa_event(rng, p, day), p) for p in daily_sample(people, rng, 0.03)),
        rng,
        bad_rate,
        spoil=lambda push: {
            "required": rng.choice(("FromUserName", "CreateTime", "Event")),
            "wrong_type": ("CreateTime", {"value": push["CreateTime"]}),
            "type_path": "Event",
            "unknown_type": UNKNOWN_OA_EVENT,
        },
        record_id=oa_record_id,
    )
