"""Simulated browse events from the brand's web site, app and mini-program SDKs, with ground truth.

Engagement is where identity starts: most events come from an anonymous cookie or device, and only
a login or a phone bind ties them to a member. One-ID has to learn that from the data, so this
module writes the SDKs' JSON lines the way a collector receives them (one file per source and
day, ``{out}/<source>/events/dt=YYYY-MM-DD/events.jsonl``): sessions of page views (with dwell
time), product views, clicks, searches, carts, favorites, shares and coupon claims; logins and
phone binds after which the same device carries the member id; campaign traffic arriving on
UTM-tagged links; family tablets shared by two people; client clocks that drift from the
collector's. Per-person ids (cookies, devices, openids per appid, unionids) are derived by
hashing the person id with a salt, so every day and every run agree without any state.

A share of lines (`bad_rate`) is spoiled with `spoil_json`: malformed JSON, a required field
missing, a wrong type, or an event type the schema does not know (yet). Each must be quarantined.
The WeCom and Official Account writers live in `simulate_wecom`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import urlencode

from jobs.ingest.simulate import (
    PRODUCTS,
    Person,
    Truth,
    WriterResult,
    daily_sample,
    day_folder,
    day_start,
)

CAMPAIGNS = [  # (utm_source, utm_medium, utm_campaign, landing path)
    ("wechat_oa", "template", "d11_warmup", "/campaign/d11"),
    ("wecom", "guide_share", "vip_day_1122", "/campaign/vip-day"),
    ("douyin", "live", "d11_live_1111", "/campaign/live"),
    ("xiaohongshu", "note", "serum_seeding", "/product/P1001"),
    ("baidu", "cpc", "brand_keywords", "/"),
]
SEARCH_TERMS = ["精华", "面膜", "防晒", "敏感肌", "眼霜 淡纹", "洁面", "旅行装", "双11 套装"]
COUPONS = ["CPN-NEW-20", "CPN-D11-50", "CPN-VIP-30"]
SHARE_CHANNELS = ["wechat_friend", "wechat_moments", "wecom"]
CLICK_ELEMENTS = ["banner", "nav_category", "recommend_card", "coupon_entry", "live_entry"]
MP_APPS = {  # appid -> bound to the brand's open-platform account (so events carry a unionid)
    "wx5f2a8c31d4e6b701": True,  # the shop mini-program
    "wx9c04e7b2a1f35d88": False,  # a campaign mini-program, never bound: openid only
}
EVENT_TYPES = (
    "page_view",
    "product_view",
    "click",
    "search",
    "add_to_cart",
    "favorite",
    "share",
    "coupon_claim",
    "login",
    "phone_bind",
)
UNKNOWN_EVENT_TYPE = "page_leave"  # a type an SDK upgrade starts sending before the schema knows it


# --- stable per-person ids ---------------------------------------------------------------------


def _digest(person_id: str, salt: str) -> bytes:
    return hashlib.sha256(f"{salt}:{person_id}".encode()).digest()


def stable_hex(person_id: str, salt: str, length: int = 16) -> str:
    """A stable id for (person, salt): same on every day and run, unrelated across salts."""
    return _digest(person_id, salt).hex()[:length]


def stable_frac(person_id: str, salt: str) -> float:
    """A stable number in [0, 1) for (person, salt): who has a trait, without a random stream."""
    return int.from_bytes(_digest(person_id, salt)[:8], "big") / 2**64


def stable_uuid(person_id: str, salt: str) -> str:
    h = stable_hex(person_id, salt, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def wx_openid(person_id: str, appid: str) -> str:
    """A WeChat openid of the person in one app (mini-program or Official Account): 28 chars."""
    raw = base64.urlsafe_b64encode(_digest(person_id, f"openid:{appid}")).decode()
    return "o" + raw[:27]


def wx_unionid(person_id: str) -> str:
    """The person's unionid under the brand's WeChat open-platform account."""
    raw = base64.urlsafe_b64encode(_digest(person_id, "unionid")).decode()
    return "o" + raw[:27]


def member_id(person: Person) -> str | None:
    """The brand's own member id, for the ~60% of people who ever registered."""
    if stable_frac(person.person_id, "member") >= 0.6:
        return None
    return f"M{int(stable_hex(person.person_id, 'member-id', 12), 16) % 10**10:010d}"


def household(person: Person) -> str | None:
    """The family tablet's owner key for the ~3% of households (pairs of people) sharing one."""
    index = int(person.person_id.lstrip("P") or 0) // 2
    key = f"H{index}"
    return key if stable_frac(key, "tablet") < 0.03 else None


# --- the bad-input classes ---------------------------------------------------------------------

SPOIL_CLASSES = ("malformed", "missing", "wrong_type", "unknown_type")


def _pop_path(obj: dict, path: str) -> None:
    *parents, last = path.split(".")
    for key in parents:
        obj = obj[key]
    obj.pop(last, None)


def _set_path(obj: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    for key in parents:
        obj = obj.setdefault(key, {})
    obj[last] = value


def spoil_json(
    rng: random.Random,
    obj: dict,
    *,
    required: str,
    wrong_type: tuple[str, object],
    type_path: str,
    unknown_type: str,
) -> tuple[str, str]:
    """(damaged line, class): one bad-input class the connector must quarantine with a reason.

    `required` is a JSON path the schema requires; `wrong_type` a path and a value of the wrong
    type for it; `type_path` the event-type path, set to `unknown_type`. `obj` is not changed.
    """
    kind = SPOIL_CLASSES[rng.randrange(len(SPOIL_CLASSES))]
    obj = json.loads(json.dumps(obj))
    if kind == "malformed":
        line = dumps_line(obj)
        return line[: rng.randrange(10, len(line) - 2)], kind
    if kind == "missing":
        _pop_path(obj, required)
    elif kind == "wrong_type":
        _set_path(obj, *wrong_type)
    else:
        _set_path(obj, type_path, unknown_type)
    return dumps_line(obj), kind


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps_line(obj: dict) -> str:
    """One compact JSON line (one encoder for all: json.dumps builds one per call)."""
    return _ENCODER.encode(obj)


@contextmanager
def landing_file(out: Path, source: str, dataset: str, day: date, name: str) -> Iterator[TextIO]:
    """The day's landing file, written line by line (never a whole day in memory)."""
    with (day_folder(out, source, dataset, day) / name).open(
        "w", encoding="utf-8", newline="\n"
    ) as fh:
        yield fh


def active_second(rng: random.Random) -> int:
    """A second of the day, weighted to waking hours (busiest 20:00-23:00)."""
    hour = rng.choices(
        range(24),
        weights=[1, 1, 1, 1, 1, 1, 2, 4, 6, 6, 6, 7, 9, 7, 6, 6, 6, 7, 8, 9, 12, 14, 12, 6],
    )[0]
    return hour * 3600 + rng.randrange(3600)


# --- SDK events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sdk:
    source: str
    session_rate: float  # chance a person has a session on this SDK on a given day
    host: str
    context: Callable[[random.Random, Person, str], dict]  # (rng, person, device_id) -> context


def _web_context(rng: random.Random, person: Person, device_id: str) -> dict:
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile"
    if stable_frac(person.person_id, "web-ua") < 0.4:
        ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari"
    return {"user_agent": ua, "library": {"name": "cdp-js", "version": "2.4.1"}}


def _app_context(rng: random.Random, person: Person, device_id: str) -> dict:
    ios = stable_frac(person.person_id, "app-os") < 0.45
    return {
        "os": "iOS 17.5" if ios else "Android 14",
        "app_version": rng.choice(("5.2.0", "5.2.0", "5.1.3")),
        "library": {"name": "cdp-ios" if ios else "cdp-android", "version": "3.1.0"},
    }


def _mp_context(rng: random.Random, person: Person, device_id: str) -> dict:
    appid = (
        next(iter(MP_APPS)) if stable_frac(person.person_id, "mp-app") < 0.85 else list(MP_APPS)[1]
    )
    context = {
        "appid": appid,
        "openid": wx_openid(person.person_id, appid),
        "scene": rng.choice((1001, 1007, 1011, 1047, 1089)),  # 进入场景值: discover, share, QR ...
        "library": {"name": "cdp-miniprogram", "version": "1.8.0"},
    }
    if MP_APPS[appid]:
        context["unionid"] = wx_unionid(person.person_id)
    return context


SDKS: dict[str, _Sdk] = {
    "web": _Sdk("web", 0.05, "https://www.example-beauty.cn", _web_context),
    "app": _Sdk("app", 0.06, "app://example-beauty", _app_context),
    "miniprogram": _Sdk("miniprogram", 0.06, "mp://pages", _mp_context),
}


def _device(sdk: _Sdk, person: Person, rng: random.Random) -> tuple[str, str, bool]:
    """(device_id, anonymous_id, shared): the family tablet for some app sessions."""
    home = household(person) if sdk.source == "app" else None
    if home is not None and rng.random() < 0.4:
        return stable_uuid(home, "tablet-device").upper(), stable_uuid(home, "tablet-anon"), True
    device = stable_uuid(person.person_id, f"{sdk.source}-device")
    anon = stable_uuid(person.person_id, f"{sdk.source}-anon")
    return (device.upper() if sdk.source == "app" else device), anon, False


def _page(sdk: _Sdk, path: str, campaign: tuple[str, str, str, str] | None) -> str:
    url = f"{sdk.host}{path}"
    if campaign is not None:
        source, medium, name, _path = campaign
        url += "?" + urlencode({"utm_source": source, "utm_medium": medium, "utm_campaign": name})
    return url


def _session_plan(rng: random.Random) -> list[tuple[str, dict]]:
    """The browse steps of one session: (event type, properties), page views dominating."""
    steps: list[tuple[str, dict]] = []
    pages = 1 + min(int(rng.expovariate(0.45)), 12)
    for _ in range(pages):
        sku = rng.choice(PRODUCTS)[0]
        product_page = rng.random() < 0.55
        path = (
            f"/product/{sku}"
            if product_page
            else rng.choice(("/", "/category/skincare", "/member"))
        )
        steps.append(("page_view", {"_path": path, "dwell_ms": int(rng.lognormvariate(9.6, 0.9))}))
        if product_page:
            steps.append(("product_view", {"_path": path, "product_id": sku}))
            for kind, chance in (("add_to_cart", 0.12), ("favorite", 0.05), ("share", 0.04)):
                if rng.random() < chance:
                    props = {"_path": path, "product_id": sku}
                    if kind == "add_to_cart":
                        props["quantity"] = rng.choice((1, 1, 1, 2))
                    if kind == "share":
                        props["share_channel"] = rng.choice(SHARE_CHANNELS)
                    steps.append((kind, props))
        elif rng.random() < 0.5:
            steps.append(("click", {"_path": path, "element": rng.choice(CLICK_ELEMENTS)}))
        if rng.random() < 0.1:
            steps.append(("search", {"_path": "/search", "query": rng.choice(SEARCH_TERMS)}))
        if rng.random() < 0.03:
            steps.append(("coupon_claim", {"_path": path, "coupon_id": rng.choice(COUPONS)}))
    return steps


def _session_events(sdk: _Sdk, person: Person, day: date, rng: random.Random) -> Iterator[dict]:
    device_id, anonymous_id, _shared = _device(sdk, person, rng)
    member = member_id(person)
    # Apps keep members logged in; web and mini-program sessions start anonymous.
    user_id = (
        member
        if sdk.source == "app" and stable_frac(person.person_id, "app-remember") < 0.5
        else None
    )
    context = sdk.context(rng, person, device_id)
    campaign = rng.choice(CAMPAIGNS) if rng.random() < 0.3 else None
    if campaign is not None:
        context["campaign"] = dict(zip(("source", "medium", "name"), campaign[:3], strict=False))
    plan = _session_plan(rng)
    if campaign is not None:
        plan.insert(
            0, ("page_view", {"_path": campaign[3], "dwell_ms": int(rng.lognormvariate(9.6, 0.9))})
        )
    if member is not None and user_id is None and rng.random() < 0.35:
        plan.insert(
            rng.randrange(1, len(plan) + 1),
            ("login", {"method": rng.choice(("password", "sms", "wechat"))}),
        )
    if member is not None and rng.random() < 0.06:
        plan.insert(
            rng.randrange(1, len(plan) + 1),
            ("phone_bind", {"method": "sms" if sdk.source != "miniprogram" else "getPhoneNumber"}),
        )
    session_id = f"s{rng.getrandbits(48):012x}"
    clock = day_start(day) + timedelta(seconds=active_second(rng))
    skew = timedelta(seconds=rng.choice((0, 0, 0, 0, 0, 0, 0, 0, -1, 2, -95, 3600)))
    referrer = "" if campaign is None else f"https://{campaign[0]}.example/"
    path = "/"
    for kind, props in plan:
        props = dict(props)
        path = props.pop("_path", path)
        if kind in ("login", "phone_bind"):
            user_id = member  # from here on this device carries the member id
        if kind == "phone_bind":
            props["phone_number"] = person.phone
        sent = clock + skew
        event = {
            "event_id": f"{sdk.source[0]}{rng.getrandbits(64):016x}",
            "event_type": kind,
            "ts": f"{sent.isoformat(timespec='seconds')}.{rng.randrange(1000):03d}+08:00",
            "received_at": (clock + timedelta(seconds=rng.randrange(0, 3))).isoformat(
                sep=" ", timespec="seconds"
            ),
            "anonymous_id": anonymous_id,
            "device_id": device_id,
            "user_id": user_id,
            "session_id": session_id,
            "page": {
                "url": _page(sdk, path, campaign if kind == "page_view" else None),
                "referrer": referrer,
            },
            "context": context,
            "properties": props,
        }
        referrer = event["page"]["url"].split("?")[0]
        campaign = None  # only the landing page carries the UTM tags
        yield event
        gap = props.get("dwell_ms", rng.randrange(2_000, 40_000))
        clock += timedelta(milliseconds=gap + rng.randrange(500, 5_000))


def write_sdk_events(
    out: Path,
    day: date,
    people: list[Person],
    rng: random.Random,
    *,
    source: str,
    bad_rate: float,
    seq_start: int = 0,
) -> WriterResult:
    """One day of `source` SDK events (web, app or miniprogram); (events, spoiled, truth rows).

    Truth rows are (source, event_id, person_id): the person really holding the device, also on
    a shared tablet and on spoiled lines.
    """
    sdk = SDKS[source]
    written = bad = 0
    truth: Truth = []
    with landing_file(out, source, "events", day, "events.jsonl") as fh:
        for person in daily_sample(people, rng, sdk.session_rate):
            sessions = 1 + (rng.random() < 0.2)
            for _ in range(sessions):
                for event in _session_events(sdk, person, day, rng):
                    line = dumps_line(event)
                    if rng.random() < bad_rate:
                        line, _kind = spoil_json(
                            rng,
                            event,
                            required=rng.choice(("event_id", "anonymous_id", "session_id")),
                            wrong_type=("received_at", 1763790000),
                            type_path="event_type",
                            unknown_type=UNKNOWN_EVENT_TYPE,
                        )
                        bad += 1
                    fh.write(line + "\n")
                    truth.append((source, event["event_id"], person.person_id))
                    written += 1
    return written, bad, truth


def event_writers() -> dict[str, Callable[..., WriterResult]]:
    """The engagement datasets' per-day writers, by source dataset key (for simulate._writers)."""
    from functools import partial

    from jobs.ingest import simulate_wecom

    return {
        **{f"{s}.events": partial(write_sdk_events, source=s) for s in SDKS},
        "wecom.contact_events": simulate_wecom.write_contact_events,
        "wecom.messages": simulate_wecom.write_messages,
        "oa.events": simulate_wecom.write_oa_events,
    }
