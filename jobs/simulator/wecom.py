"""WeCom (企业微信) contact callbacks and chat archive, and the Official Account's event pushes
(`wecom.contact_events`, `wecom.messages`, `oa.events`), drawn from the world's people.

Private-domain (私域) marketing runs on guides adding customers on WeCom through live codes
(渠道活码, whose `state` says which channel reached them), chatting with them, and on the Official
Account's follows and template messages. Every record is the world's: a contact is added at
`Person.wecom.added` with the `state` of the live code that could reach that person and deleted at
`Person.wecom.deleted`; an OA follower subscribes at `Person.oa_followed` and unsubscribes at
`Person.oa_unfollowed`: the very times of the world's consent truth. Ids are per corp
(ExternalUserID) or per app (the OA openid); the connector's enrichment (externalcontact/get)
adds the unionid only when the corp is bound, and the `remark_mobiles` some guides type.

Shapes: callbacks and OA pushes arrive as encrypted XML; the connector decrypts them and lands
each as one JSON object per line, element name -> value, all strings (XML has no numbers); the
enrichment is the API's JSON. Chat-archive messages are JSON as the finance SDK's DecryptData
returns them (msgtime in UTC milliseconds), including `switch` records that carry only
{msgid, action, time, user}. One file per dataset and day under ``{out}/<source>/<dataset>/dt=…/``.
"""

from __future__ import annotations

import calendar
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from jobs.simulator.context import PRODUCTS, DatasetTruth, Day, Writer, Written, field_id
from jobs.simulator.files import active_second, day_start, landing_file
from jobs.simulator.mess import person_flags
from jobs.simulator.rand import below, frac, hex_id, pick, sample_indexes
from jobs.simulator.world import (
    AGENCY_SHARE,
    OA,
    OA_ORIGINAL_ID,
    ONLINE_GUIDES,
    STORES,
    Person,
    WecomContact,
    World,
)

TAGS = [  # corp tags (企业标签) guides put on customers: (tag_id, group_name, tag_name)
    ("etJ2GCAAAAb1", "肤质", "敏感肌"),
    ("etJ2GCAAAAb2", "肤质", "油性"),
    ("etJ2GCAAAAc1", "意向", "高意向"),
    ("etJ2GCAAAAc2", "意向", "价格敏感"),
    ("etJ2GCAAAAd1", "会员", "VIP"),
]
NICKNAMES = ("小仙女", "Amy", "晴天", "momo", "花花", "Lily", "追光者", "小鹿", "Grace", "一只猫")
REAL_NAME_NICK = 0.35  # of contacts: their WeChat name is their real name
HALF_ADD_SHARE = 0.15  # of live-code adds: 免验证 (add_half_external_contact) instead of a full add
EDIT_RATE = 0.03  # people sampled per day; those with a live contact get an edit (tags)
AGENCY_EDITS = 0.2  # of edits: on the agency corp's contact, when there is one
TRANSFER_RATE = 0.0004  # people sampled per day; live contacts among them are transferred
TRANSFER_FAILS = 0.4  # of transfers: the customer refused or the takeover guide is full
FAIL_REASONS = ("customer_refused", "customer_limit_exceed")
CLEANUP_SHARE = 0.3  # of contacts who deleted their guide: the guide deletes them back ...
CLEANUP_DAYS = 7  # ... within a week (del_external_contact)
AGENCY_LAG_DAYS = 200  # the agency contact is added 1..200 days after the brand's (world.py)
UNKNOWN_EVENT = "change_external_chat"  # 客户群变更: a real event on the same URL we do not model
CHAT_RATE = 0.03  # people sampled per day; live contacts among them chat with their guide
GROUP_SHARE = 0.3  # of chats: in the guide's customer group
SWITCH_RATE = 0.2  # of guides per day: switch corps in the WeCom app (a `switch` record)
OA_RATE = 0.08  # people sampled per day; followers among them act on the Official Account
OA_ACTIONS = {"SCAN": 0.12, "CLICK": 0.15, "VIEW": 0.25, "TEMPLATESENDJOBFINISH": 0.48}
OA_QR_SHARE = 0.6  # of follows: through a parametric QR code (EventKey qrscene_<scene>)
MENU_KEYS = ("MENU_MEMBER_CARD", "MENU_NEW_ARRIVALS", "MENU_CONTACT_GUIDE", "MENU_CHECKIN")
MENU_URLS = (
    "https://www.example-beauty.cn/campaign/d11?utm_source=wechat_oa&utm_medium=menu&utm_campaign=d11_warmup",
    "https://www.example-beauty.cn/member?utm_source=wechat_oa&utm_medium=menu&utm_campaign=member",
)
TEMPLATE_STATUS = (("success", 95), ("failed:user block", 4), ("failed: system failed", 1))
UNKNOWN_OA_EVENT = "user_enter_tempsession"  # real, but not one we model yet
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
BRAND_GUIDES = tuple(dict.fromkeys(g for s in STORES for g in s.guides)) + ONLINE_GUIDES


def unix(at: datetime) -> int:
    """Unix seconds of an Asia/Shanghai wall time (the world's times are wall times)."""
    return calendar.timegm((at - timedelta(hours=8)).timetuple())


def live(contact: WecomContact | None, at: datetime) -> bool:
    """The contact exists at `at` (added, not yet deleted by the customer)."""
    return (
        contact is not None
        and contact.added <= at
        and (contact.deleted is None or at < contact.deleted)
    )


@dataclass
class Item:
    """One record of a day's file: its object, when, whose, and its truth."""

    at: datetime
    obj: dict
    person: Person | None
    flags: list[str] = field(default_factory=list)
    ids: list[tuple[str, object]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


def _write(
    ctx: Day,
    key: str,
    name: str,
    items: Iterable[Item],
    record_id: Callable[[dict], str],
    spoil: Callable[[dict], dict],
) -> Written:
    """Write the day's items as JSON lines in time order, spoiling `bad_rate` of them; truth
    keyed by `record_id(obj)`."""
    source, dataset = key.split(".")
    written = spoiled = 0
    with landing_file(ctx.out, source, dataset, ctx.day, name) as fh:
        for item in sorted(items, key=lambda i: i.at):
            flags = list(item.flags)
            if item.person is not None:
                flags += person_flags(item.person)
            line, bad = ctx.json_line(item.obj, partial(spoil, item.obj))
            flags += bad
            spoiled += len(bad)
            fh.write(line + "\n")
            pid = item.person.person_id if item.person is not None else ""
            ctx.record(
                key, record_id(item.obj), pid, flags=flags, ids=item.ids, evidence=item.evidence
            )
            written += 1
    return Written(written, spoiled)


def _people(ctx: Day, rate: float) -> list[Person]:
    """People of the world sampled for the day (each with probability `rate`)."""
    return [ctx.world.person(i) for i in sample_indexes(ctx.world.n, ctx.rng, rate)]


def _at(ctx: Day) -> datetime:
    return day_start(ctx.day) + timedelta(seconds=active_second(ctx.rng))


# --- WeCom contact callbacks ---------------------------------------------------------------


def callback(contact: WecomContact, change: str, at: datetime, guide: str = "") -> dict:
    """One change_external_contact callback, decrypted XML as JSON (all values strings)."""
    return {
        "ToUserName": contact.corp.corp_id,
        "FromUserName": "sys",
        "CreateTime": str(unix(at)),
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": change,
        "UserID": guide or contact.guide,
        "ExternalUserID": contact.external_userid,
    }


def enrichment(ctx: Day, person: Person, contact: WecomContact, tags: list) -> tuple[dict, bool]:
    """What the connector's externalcontact/get returned right after the callback: (the
    `_enriched` object, whether it shows the person's real name)."""
    seed = ctx.seed
    real = frac(seed, "wx-real-name", person.index) < REAL_NAME_NICK
    external = {
        "external_userid": contact.external_userid,
        "name": person.name if real else pick(seed, "wx-nick", person.index, NICKNAMES),
        "type": 1,  # a WeChat user
        "gender": 2 if person.gender == "F" else 1,
    }
    if contact.corp.bound:  # only when the corp bound a WeChat developer id
        external["unionid"] = person.unionid
    follow = {
        "userid": contact.guide,
        "remark": "",
        "description": "",
        "createtime": unix(contact.added),
        "tags": [{"group_name": g, "tag_name": n, "type": 1, "tag_id": t} for t, g, n in tags],
        "remark_mobiles": [contact.remark_mobile] if contact.remark_mobile else [],
        "add_way": contact.add_way,
        "oper_userid": contact.external_userid if contact.add_way == 1 else contact.guide,
    }
    if contact.state:
        follow["state"] = contact.state
    return {"external_contact": external, "follow_user": [follow]}, real


def _contact_item(
    ctx: Day,
    person: Person,
    contact: WecomContact,
    change: str,
    at: datetime,
    *,
    guide: str = "",
    enrich: bool = False,
    tags: list | None = None,
    extra: dict | None = None,
) -> Item:
    obj = callback(contact, change, at, guide)
    obj.update(extra or {})
    item = Item(at, obj, person, ids=[("wecom_external_userid", contact.external_userid)])
    if enrich:
        obj["_enriched"], real = enrichment(ctx, person, contact, tags or [])
        if real:
            item.evidence.append("name")
        unionid = obj["_enriched"]["external_contact"].get("unionid")
        if unionid:
            item.ids.append(("wechat_unionid", unionid))
        if contact.remark_mobile:
            item.ids.append(("phone", contact.remark_mobile))
            if contact.remark_mobile != person.phone_at(at):
                item.flags.append("stale_phone")  # typed when added; the person changed number
    return item


def _agency_adds(ctx: Day) -> Iterable[Person]:
    """People whose agency-corp contact is added today. The world dates it 1..200 days after
    the brand's add, so the candidates are the brand's adds of those days, cut by the world's
    own agency share first (cheap), then confirmed on the person."""
    w = ctx.world
    for back in range(1, AGENCY_LAG_DAYS + 1):
        for i in w.wecom_add.on_day(ctx.day - timedelta(days=back)):
            if frac(w.seed, "agency", i) < AGENCY_SHARE:
                person = w.person(i)
                a = person.agency_contact
                if a is not None and a.added.date() == ctx.day:
                    yield person


def contact_items(ctx: Day) -> list[Item]:
    """The day's contact callbacks: adds and deletes the world dates, and sampled edits,
    transfers and guides cleaning up customers who deleted them."""
    rng, w, day = ctx.rng, ctx.world, ctx.day
    items: list[Item] = []
    for person in w.on_day(w.wecom_add, day):
        c = person.wecom
        if c is None:
            continue
        half = c.add_way == 1 and rng.random() < HALF_ADD_SHARE
        change = "add_half_external_contact" if half else "add_external_contact"
        extra = {
            "State": c.state,
            "WelcomeCode": hex_id(ctx.seed, f"welcome:{day}", person.index, 43),
        }
        items.append(_contact_item(ctx, person, c, change, c.added, enrich=True, extra=extra))
    for person in _agency_adds(ctx):
        a = person.agency_contact
        assert a is not None
        extra = {
            "State": "",
            "WelcomeCode": hex_id(ctx.seed, f"welcome-agency:{day}", person.index, 43),
        }
        items.append(
            _contact_item(ctx, person, a, "add_external_contact", a.added, enrich=True, extra=extra)
        )
    for person in w.on_day(w.wecom_delete, day):
        c = person.wecom
        if c is not None and c.deleted is not None and c.deleted.date() == day:
            items.append(_contact_item(ctx, person, c, "del_follow_user", c.deleted))
    for back in range(1, CLEANUP_DAYS + 1):  # the guide deletes a customer who deleted them
        for person in w.on_day(w.wecom_delete, day - timedelta(days=back)):
            i, c = person.index, person.wecom
            if (
                c is None
                or c.deleted is None
                or frac(ctx.seed, "guide-cleanup", i) >= CLEANUP_SHARE
            ):
                continue
            if 1 + below(ctx.seed, "guide-cleanup-lag", i, CLEANUP_DAYS) == back:
                at = c.deleted + timedelta(days=back)
                items.append(_contact_item(ctx, person, c, "del_external_contact", at))
    for person in _people(ctx, EDIT_RATE):
        at = _at(ctx)
        c = person.wecom
        a = person.agency_contact
        if live(a, at) and (rng.random() < AGENCY_EDITS or not live(c, at)):
            c = a
        if c is None or not live(c, at):
            continue
        tags = rng.sample(TAGS, rng.randrange(1, 3))
        items.append(
            _contact_item(ctx, person, c, "edit_external_contact", at, enrich=True, tags=tags)
        )
    for person in _people(ctx, TRANSFER_RATE):
        at, c = _at(ctx), person.wecom
        if c is None or not live(c, at):
            continue
        store = next((s for s in STORES if c.guide in s.guides), None)
        others = [g for g in (store.guides if store else ()) + ONLINE_GUIDES if g != c.guide]
        other = rng.choice(others)
        if rng.random() < TRANSFER_FAILS:  # the takeover guide never got them: they stay
            extra = {"FailReason": rng.choice(FAIL_REASONS)}
            items.append(
                _contact_item(ctx, person, c, "transfer_fail", at, guide=other, extra=extra)
            )
        else:  # taken over from a leaving guide: the old relationship is deleted by the
            # transfer, and the callback's UserID is the guide who lost the customer
            extra = {"Source": "DELETE_BY_TRANSFER"}
            items.append(_contact_item(ctx, person, c, "del_external_contact", at, extra=extra))
    return items


def contact_record_id(obj: dict) -> str:
    """Callbacks have no id: the record is (ExternalUserID, UserID, ChangeType, CreateTime)."""
    return "|".join(
        str(obj.get(k, "")) for k in ("ExternalUserID", "UserID", "ChangeType", "CreateTime")
    )


def write_contact_events(ctx: Day) -> Written:
    day, rng = ctx.day, ctx.rng
    return _write(
        ctx, "wecom.contact_events", "contact_events.jsonl", contact_items(ctx), contact_record_id,
        lambda obj: {
            "required": rng.choice(("ExternalUserID", "UserID", "CreateTime")),
            "wrong_type": ("CreateTime", f"{day} 10:00:00"),
            "type_path": "Event",
            "unknown_type": UNKNOWN_EVENT,
        },
    )  # fmt: skip


# --- the chat archive ----------------------------------------------------------------------


def _ms(at: datetime) -> int:
    return unix(at) * 1000


def _wall(ms: int) -> datetime:
    """The Asia/Shanghai wall time of UTC milliseconds."""
    return datetime(1970, 1, 1) + timedelta(milliseconds=ms, hours=8)


def conversation(
    rng: random.Random, person: Person, contact: WecomContact, at: datetime
) -> list[Item]:
    """One chat of the person with their guide: 1:1, or in the guide's customer group."""
    guide, customer = contact.guide, contact.external_userid
    room = f"wr{hex_id(0, 'room', guide, 30)}" if rng.random() < GROUP_SHARE else ""
    ms = _ms(at) + rng.randrange(1000)
    ids = [("wecom_external_userid", customer)]
    out: list[Item] = []

    def item(msg: dict) -> Item:
        shows_name = person.name in msg.get("text", {}).get("content", "")
        return Item(
            _wall(msg["msgtime"]),
            msg,
            person,
            ids=list(ids),
            evidence=["name"] if shows_name else [],
        )

    for turn in range(rng.randrange(1, 6)):
        from_guide = turn % 2 == 1
        sender, receiver = (guide, customer) if from_guide else (customer, guide)
        msg: dict = {
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
                "md5sum": hex_id(0, "img", sku, 32),
                "filesize": rng.randrange(20_000, 900_000),
                "sdkfileid": "CtYBMzA2OTAyMDEwMjA0" + hex_id(0, "sdkfile", sku, 40),
            }
        else:
            text = rng.choice(GUIDE_LINES if from_guide else CUSTOMER_LINES)
            if room and from_guide:
                text = f"@{person.name} {text}"  # a group reply names the customer
            msg["msgtype"] = "text"
            msg["text"] = {"content": text}
        out.append(item(msg))
        ms += rng.randrange(5_000, 300_000)
        if from_guide and rng.random() < 0.1:  # the guide takes a message back
            recall = {
                "msgid": f"{rng.getrandbits(64):d}_{ms // 1000}_external",
                "action": "recall",
                "from": guide,
                "tolist": [customer],
                "roomid": room,
                "msgtime": ms,
                "msgtype": "revoke",
                "revoke": {"pre_msgid": msg["msgid"]},
            }
            out.append(item(recall))
            ms += rng.randrange(1_000, 60_000)
    return out


def message_items(ctx: Day) -> list[Item]:
    rng = ctx.rng
    items: list[Item] = []
    for person in _people(ctx, CHAT_RATE):
        at, c = _at(ctx), person.wecom
        if live(c, at):
            assert c is not None
            items.extend(conversation(rng, person, c, at))
    for guide in BRAND_GUIDES:  # a guide switching corps in the app: no customer behind it
        if rng.random() < SWITCH_RATE:
            at = _at(ctx)
            switch = {
                "msgid": f"{rng.getrandbits(63):d}",
                "action": "switch",
                "time": _ms(at),
                "user": guide,
            }
            items.append(Item(at, switch, None))
    return items


def write_messages(ctx: Day) -> Written:
    """One day of archived chat messages; truth per message: the customer of the chat (switch
    records belong to nobody)."""
    day, rng = ctx.day, ctx.rng

    def spoil(msg: dict) -> dict:
        if msg["action"] == "switch":
            return {"required": "msgid", "wrong_type": ("time", f"{day}T10:00:00")}
        return {
            "required": rng.choice(("msgid", "from", "msgtime")),
            "wrong_type": ("msgtime", f"{day}T10:00:00"),
            "type_path": "msgtype",
            "unknown_type": UNKNOWN_MSGTYPE,
        }

    return _write(
        ctx, "wecom.messages", "messages.jsonl", message_items(ctx), lambda m: m["msgid"], spoil
    )


# --- the Official Account ------------------------------------------------------------------


def oa_scenes(world: World, person: Person) -> list[str]:
    """The parametric QR codes (scene strings) that can reach the person: a parcel card only in
    that platform's parcels, a store poster only for store visitors, a campaign poster anywhere."""
    scenes = ["campaign_d11"]
    for platform, scene in (
        ("tmall", "pkg_card_tmall"),
        ("jd", "pkg_card_jd"),
        ("miniprogram", "mp_order_done"),
    ):
        if person.uses(platform):
            scenes.append(scene)
    stores = world.stores_in(person.region)
    if person.uses("store") and stores:
        scenes.append(f"store_{stores[0].store_id}")
    return scenes


def _ticket(ctx: Day, scene: str) -> str:
    return "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xLz" + hex_id(
        ctx.seed, "oa-ticket", scene, 16
    )


def push(person: Person, event: str, at: datetime, **fields: str) -> dict:
    """One Official Account event push, decrypted XML as JSON (all values strings)."""
    return {
        "ToUserName": OA_ORIGINAL_ID,
        "FromUserName": person.openid(OA),
        "CreateTime": str(unix(at)),
        "MsgType": "event",
        "Event": event,
        **fields,
    }


def user_info(person: Person, at: datetime, scene: str) -> dict:
    """Our receiver's enrichment of a follow: `cgi-bin/user/info` for the new follower. The
    unionid is there only because the account is bound to the brand's open platform ("只有在用户
    将公众号绑定到微信开放平台帐号后，才会出现该字段")."""
    info: dict = {
        "subscribe": 1,
        "openid": person.openid(OA),
        "language": "zh_CN",
        "subscribe_time": unix(at),
        "remark": "",
        "groupid": 0,
        "tagid_list": [],
        "subscribe_scene": "ADD_SCENE_QR_CODE" if scene else "ADD_SCENE_SEARCH",
        "qr_scene": 0,
        "qr_scene_str": scene,
    }
    if OA.bound:
        info["unionid"] = person.unionid
    return {"user_info": info}


def follower(person: Person, at: datetime) -> bool:
    followed, unfollowed = person.oa_followed, person.oa_unfollowed
    return followed is not None and followed <= at and (unfollowed is None or at < unfollowed)


def oa_items(ctx: Day) -> list[Item]:
    rng, w, day, seed = ctx.rng, ctx.world, ctx.day, ctx.seed
    items: list[Item] = []

    def add(person: Person, event: str, at: datetime, **fields: str) -> Item:
        obj = push(person, event, at, **fields)
        items.append(Item(at, obj, person, ids=[("wechat_openid", obj["FromUserName"])]))
        return items[-1]

    for person in w.on_day(w.oa_follow, day):
        at = person.oa_followed
        assert at is not None
        if frac(seed, "oa-qr", person.index) < OA_QR_SHARE:
            scene = pick(seed, "oa-scene", person.index, oa_scenes(w, person))
            item = add(
                person, "subscribe", at, EventKey=f"qrscene_{scene}", Ticket=_ticket(ctx, scene)
            )
        else:
            scene = ""
            item = add(person, "subscribe", at, EventKey="")  # found by searching the account
        item.obj["_enriched"] = user_info(person, at, scene)
        if "unionid" in item.obj["_enriched"]["user_info"]:
            item.ids.append(("wechat_unionid", person.unionid))
    for person in w.on_day(w.oa_unfollow, day):
        at = person.oa_unfollowed
        if at is not None and at.date() == day:
            add(person, "unsubscribe", at)
    for person in _people(ctx, OA_RATE):
        at = _at(ctx)
        if not follower(person, at):
            continue
        event = rng.choices(list(OA_ACTIONS), weights=list(OA_ACTIONS.values()))[0]
        if event == "SCAN":
            scene = rng.choice(oa_scenes(w, person))
            add(person, event, at, EventKey=scene, Ticket=_ticket(ctx, scene))
        elif event == "CLICK":
            add(person, event, at, EventKey=rng.choice(MENU_KEYS))
        elif event == "VIEW":
            add(person, event, at, EventKey=rng.choice(MENU_URLS))
        else:
            status = rng.choices(
                [s for s, _ in TEMPLATE_STATUS], weights=[n for _, n in TEMPLATE_STATUS]
            )[0]
            add(person, event, at, MsgID=str(rng.getrandbits(52)), Status=status)
    return items


def oa_record_id(obj: dict) -> str:
    """Pushes have no id (MsgID only on template reports): (openid, Event, CreateTime)."""
    return "|".join(str(obj.get(k, "")) for k in ("FromUserName", "Event", "CreateTime"))


def write_oa_events(ctx: Day) -> Written:
    rng = ctx.rng
    return _write(
        ctx, "oa.events", "events.jsonl", oa_items(ctx), oa_record_id,
        lambda obj: {
            "required": rng.choice(("FromUserName", "CreateTime", "Event")),
            "wrong_type": ("CreateTime", {"value": obj["CreateTime"]}),
            "type_path": "Event",
            "unknown_type": UNKNOWN_OA_EVENT,
        },
    )  # fmt: skip


WRITERS: dict[str, Writer] = {
    "wecom.contact_events": write_contact_events,
    "wecom.messages": write_messages,
    "oa.events": write_oa_events,
}


def _parts(*fields: str) -> Callable[[dict], str]:
    return lambda values: "|".join("" if values.get(f) is None else str(values[f]) for f in fields)


TRUTH: dict[str, DatasetTruth] = {
    "wecom.contact_events": DatasetTruth(
        record_id=_parts("external_userid", "guide_user_id", "change_type", "create_time_unix"),
        identifiers={
            "external_userid": "wecom_external_userid",
            "unionid": "wechat_unionid",
            "remark_mobile": "phone",
        },
    ),
    # sender and receiver hold the customer's external_userid or the guide's own userid (a corp
    # member, not a person of the world): see the report on the consistency check.
    "wecom.messages": DatasetTruth(
        record_id=field_id("msgid"),
        identifiers={"sender": "wecom_external_userid", "receiver": "wecom_external_userid"},
    ),
    "oa.events": DatasetTruth(
        record_id=_parts("openid", "event", "create_time_unix"),
        identifiers={"openid": "wechat_openid", "unionid": "wechat_unionid"},
    ),
}
