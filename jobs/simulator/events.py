"""Browse events of the brand's web site, app and mini-program SDKs (`web.events`, `app.events`,
`miniprogram.events`), as the collector receives them: one JSON object per line, one file per
SDK and day (``{out}/<sdk>/events/dt=YYYY-MM-DD/events.jsonl``).

Engagement is where identity starts: most events come from an anonymous cookie or device, and
only a login, a phone authorization or a sign-up ties them to a member. Every id is the world's:
the device and anonymous ids of the person's own device on that SDK at that time (a new one after
an app reinstall or a new handset: `Person.device`), the mini-program's appid/openid of the app the
person opens (unionid only from the bound app), the member card (`user_id`, the card CRM and POS
use) once a login, phone bind or sign-up said who, and the full phone of a phone bind
(getPhoneNumber's `phone_info` in the mini-program, an SMS-verified number on web and app).
Shared devices: a household's family tablet in some app sessions (flag `family_tablet`), and the
stores' kiosk tablets running the app (flag `shared_tablet`), where store visitors browse and
members sign in or sign up.

A share of lines (`bad_rate`) is spoiled with `spoil_json`: malformed JSON, a required field
missing, a wrong type, or an event type the schema does not know yet. Each must be quarantined.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from jobs.simulator import ids
from jobs.simulator.context import PRODUCTS, DatasetTruth, Day, Writer, Written, field_id
from jobs.simulator.files import active_second, day_start, landing_file
from jobs.simulator.mess import person_flags
from jobs.simulator.rand import frac
from jobs.simulator.world import STORES, Membership, Person, Store

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
EVENT_TYPES = (
    "page_view", "product_view", "click", "search", "add_to_cart", "favorite", "share",
    "coupon_claim", "login", "phone_bind", "sign_up",
)  # fmt: skip
UNKNOWN_EVENT_TYPE = "page_leave"  # a type an SDK upgrade starts sending before the schema knows it
SDKS = ("web", "app", "miniprogram")
HOSTS = {
    "web": "https://www.example-beauty.cn",
    "app": "app://example-beauty",
    "miniprogram": "mp://pages",
}
# Sessions per day per person of the world (`World.users` draws them among the SDK's users).
SESSION_RATE = {"web": 0.05, "app": 0.06, "miniprogram": 0.06}
SECOND_SESSION = 0.2  # of people with a session that day: a second one
FAMILY_TABLET_SESSIONS = 0.4  # of app sessions of people whose household shares a tablet
IN_STORE_RATE = 0.005  # per person per day, among store visitors: browse the store's kiosk tablet
APP_REMEMBERS = 0.5  # of app-using members: the app keeps them logged in
LOGIN_RATE = 0.35  # of anonymous sessions of members: log in
PHONE_BIND_RATE = 0.06  # of sessions: bind / authorize a phone
MP_SCENES = (1001, 1007, 1011, 1047, 1089)  # 进入场景值: discover, share card, QR code, ...
CLOCK_SKEW = (0, 0, 0, 0, 0, 0, 0, 0, -1, 2, -95, 3600)  # seconds a client clock is off


@dataclass
class Session:
    """Who browses where: the person, the device they hold, and what they do that matters."""

    sdk: str
    person: Person
    start: datetime
    device_id: str
    anonymous_id: str
    flags: list[str] = field(default_factory=list)
    user_id: str | None = None  # logged in from the start (the app remembers)
    signup: Membership | None = None  # signs up as a member in this session
    login_method: str = ""  # "" or how an anonymous member logs in mid-session
    phone: str = ""  # the phone bound in the session


# --- who browses today ---------------------------------------------------------------------


def _own(sdk: str, person: Person, start: datetime) -> Session:
    return Session(sdk, person, start, person.device(sdk, start), person.anonymous_id(sdk, start))


def _family_tablet(ctx: Day, person: Person, start: datetime) -> Session:
    """An app session on the household's shared tablet (one device, two people)."""
    key = f"tablet:{person.household_id}"  # the household's tablet, as the world keys it
    return Session(
        "app", person, start, person.family_tablet,
        ids.anonymous_id(ctx.seed, "app", key, 0), flags=["family_tablet"],
    )  # fmt: skip


def _store_tablet(ctx: Day, person: Person, store: Store, start: datetime) -> Session:
    return Session(
        "app", person, start, ctx.world.tablet_device(store, "app"),
        ids.anonymous_id(ctx.seed, "app", store.tablet, 0), flags=["shared_tablet"],
    )  # fmt: skip


def _store_of(ctx: Day, person: Person) -> Store | None:
    m = person.member
    if m is not None and m.home_store:
        return next(s for s in STORES if s.store_id == m.home_store)
    stores = ctx.world.stores_in(person.region)
    return stores[0] if stores else None


def sessions(ctx: Day, sdk: str) -> list[Session]:
    """The day's sessions on `sdk`, in start order: the SDK's users browsing, and the ones the
    world dates (sign-ups in the mini-program, sign-ups and visits on the store tablets)."""
    rng, w, day = ctx.rng, ctx.world, ctx.day
    out: list[Session] = []
    for person in w.users(sdk, rng, SESSION_RATE[sdk]):
        for _ in range(1 + (rng.random() < SECOND_SESSION)):
            start = day_start(day) + timedelta(seconds=active_second(rng))
            if sdk == "app" and person.family_tablet and rng.random() < FAMILY_TABLET_SESSIONS:
                out.append(_family_tablet(ctx, person, start))
                continue
            s = _own(sdk, person, start)
            m = person.member_at(start)
            if (
                m is not None
                and sdk == "app"
                and frac(ctx.seed, "app-remembers", person.index) < APP_REMEMBERS
            ):
                s.user_id = m.card
            out.append(s)
    channel = {"miniprogram": "miniprogram", "app": "store"}.get(sdk)
    if channel:
        for person in w.on_day(w.signup, day):
            m = person.member
            if m is None or m.channel != channel:
                continue
            start = m.signed_up - timedelta(seconds=rng.randrange(150, 300))  # join page first
            if channel == "store":
                store = next(s for s in STORES if s.store_id == m.home_store)
                s = _store_tablet(ctx, person, store, start)
            else:
                s = _own(sdk, person, start)
            s.signup = m
            out.append(s)
    if sdk == "app":  # store visitors browsing the kiosk tablet; members sign in with a code
        for person in w.users("store", rng, IN_STORE_RATE):
            store = _store_of(ctx, person)
            if store is None:
                continue
            start = day_start(day) + timedelta(seconds=rng.randrange(10 * 3600, 21 * 3600))
            out.append(_store_tablet(ctx, person, store, start))
    for s in out:
        m = s.person.member_at(s.start)
        if s.signup is None and s.user_id is None and m is not None and rng.random() < LOGIN_RATE:
            s.login_method = (
                "sms" if "shared_tablet" in s.flags else rng.choice(("password", "sms", "wechat"))
            )
        if s.signup is None and rng.random() < PHONE_BIND_RATE:
            if sdk == "miniprogram" and s.person.authorized_phone:
                s.phone = s.person.phone_at(s.start)  # getPhoneNumber, members or not
            elif sdk != "miniprogram" and m is not None:
                s.phone = s.person.phone_at(s.start)  # an SMS-verified number on the account
        if s.signup is not None and sdk == "miniprogram" and s.person.authorized_phone:
            s.phone = s.signup.phone  # the sign-up form fills the phone with getPhoneNumber
    out.sort(key=lambda s: s.start)
    return out


# --- what a session sends ------------------------------------------------------------------


def _context(ctx: Day, s: Session, rng: random.Random) -> dict:
    p, seed = s.person, ctx.seed
    if s.sdk == "web":
        ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile"
        if frac(seed, "web-ua", p.index) < 0.4:
            ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari"
        return {"user_agent": ua, "library": {"name": "cdp-js", "version": "2.4.1"}}
    if s.sdk == "app":
        tablet = bool({"shared_tablet", "family_tablet"} & set(s.flags))
        ios = tablet or frac(seed, "app-os", p.index) < 0.45
        return {
            "os": ("iPadOS 17.5" if tablet else "iOS 17.5") if ios else "Android 14",
            "app_version": rng.choice(("5.2.0", "5.2.0", "5.1.3")),
            "library": {"name": "cdp-ios" if ios else "cdp-android", "version": "3.1.0"},
        }
    app = p.mp_app
    context: dict = {"appid": app.appid, "openid": p.openid(app)}
    if app.bound:  # jscode2session gives the unionid only to an app bound to the open platform
        context["unionid"] = p.unionid
    context["scene"] = rng.choice(MP_SCENES)
    context["library"] = {"name": "cdp-miniprogram", "version": "1.8.0"}
    return context


def _plan(rng: random.Random) -> list[tuple[str, dict]]:
    """The browse steps of one session: (event type, properties), page views dominating."""
    steps: list[tuple[str, dict]] = []
    for _ in range(1 + min(int(rng.expovariate(0.45)), 12)):
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


def _phone_props(sdk: str, phone: str, method: str) -> dict:
    if sdk == "miniprogram":  # wxa/business/getuserphonenumber's phone_info (mainland number)
        info = {"phoneNumber": phone, "purePhoneNumber": phone, "countryCode": "86"}
        return {"method": method, "phone_info": info}
    return {"method": method, "phone_number": phone}


def session_events(ctx: Day, s: Session, rng: random.Random) -> Iterator[dict]:
    """The events of one session, in order."""
    context = _context(ctx, s, rng)
    campaign = rng.choice(CAMPAIGNS) if rng.random() < 0.3 and s.signup is None else None
    if campaign is not None:
        context["campaign"] = dict(zip(("source", "medium", "name"), campaign[:3], strict=False))
    plan = _plan(rng)
    if campaign is not None:
        plan.insert(
            0, ("page_view", {"_path": campaign[3], "dwell_ms": int(rng.lognormvariate(9.6, 0.9))})
        )
    if s.login_method:
        plan.insert(rng.randrange(1, len(plan) + 1), ("login", {"method": s.login_method}))
    if s.phone and s.signup is None:
        method = "getPhoneNumber" if s.sdk == "miniprogram" else "sms"
        plan.insert(
            rng.randrange(1, len(plan) + 1), ("phone_bind", _phone_props(s.sdk, s.phone, method))
        )
    if s.signup is not None:
        first: list[tuple[str, dict]] = [
            ("page_view", {"_path": "/member/join", "dwell_ms": rng.randrange(5_000, 60_000)})
        ]
        if s.phone:
            first.append(("phone_bind", _phone_props(s.sdk, s.phone, "getPhoneNumber")))
        props = {
            "_path": "/member/join",
            "method": "store_tablet" if s.sdk == "app" else "miniprogram",
        }
        if s.sdk == "app":
            props["phone_number"] = s.signup.phone  # typed on the kiosk and verified by SMS
        plan = [*first, ("sign_up", props), *plan]
    session_id = f"s{rng.getrandbits(48):012x}"
    clock = s.start
    skew = timedelta(seconds=rng.choice(CLOCK_SKEW))
    referrer = "" if campaign is None else f"https://{campaign[0]}.example/"
    path, user_id, host = "/", s.user_id, HOSTS[s.sdk]
    card = s.signup.card if s.signup is not None else None
    for kind, props in plan:
        props = dict(props)
        path = props.pop("_path", path)
        if kind == "sign_up":
            clock = max(clock, s.signup.signed_up) if s.signup is not None else clock
            user_id = card
        elif kind in ("login", "phone_bind"):
            m = s.person.member_at(clock)
            if m is not None:
                user_id = m.card  # from here on this device carries the member card
        url = f"{host}{path}"
        if campaign is not None and kind == "page_view":
            source, medium, name, _path = campaign
            url += "?" + urlencode(
                {"utm_source": source, "utm_medium": medium, "utm_campaign": name}
            )
        sent = clock + skew
        event = {
            "event_id": f"{s.sdk[0]}{rng.getrandbits(64):016x}",
            "event_type": kind,
            "ts": f"{sent.isoformat(timespec='seconds')}.{rng.randrange(1000):03d}+08:00",
            "received_at": (clock + timedelta(seconds=rng.randrange(0, 3))).isoformat(
                sep=" ", timespec="seconds"
            ),
            "anonymous_id": s.anonymous_id,
            "device_id": s.device_id,
            "user_id": user_id,
            "session_id": session_id,
            "page": {"url": url, "referrer": referrer},
            "context": context,
            "properties": props,
        }
        referrer = url.split("?")[0]
        campaign = None  # only the landing page carries the UTM tags
        yield event
        gap = props.get("dwell_ms", rng.randrange(2_000, 40_000))
        clock += timedelta(milliseconds=gap + rng.randrange(500, 5_000))


def event_ids(event: dict) -> list[tuple[str, object]]:
    """The full person identifiers an event carries, as written (what truth lists)."""
    props, context = event.get("properties") or {}, event.get("context") or {}
    phone = props.get("phone_number") or (props.get("phone_info") or {}).get("purePhoneNumber")
    pairs = [
        ("device_id", event.get("device_id")),
        ("member_card", event.get("user_id")),
        ("phone", phone),
        ("wechat_openid", context.get("openid")),
        ("wechat_unionid", context.get("unionid")),
    ]
    return [(kind, value) for kind, value in pairs if value not in (None, "")]


def write_events(ctx: Day, sdk: str) -> Written:
    """One day of `sdk`'s events; truth per event: the person really holding the device (also on
    a shared tablet, and on spoiled lines)."""
    rng = ctx.rng
    key = f"{sdk}.events"
    written = spoiled = 0

    def damage() -> dict:
        return {
            "required": rng.choice(("event_id", "anonymous_id", "session_id")),
            "wrong_type": ("received_at", 1763790000),
            "type_path": "event_type",
            "unknown_type": UNKNOWN_EVENT_TYPE,
        }

    with landing_file(ctx.out, sdk, "events", ctx.day, "events.jsonl") as fh:
        for s in sessions(ctx, sdk):
            flags = [*s.flags, *person_flags(s.person)]
            for event in session_events(ctx, s, rng):
                line, bad = ctx.json_line(event, damage)
                fh.write(line + "\n")
                spoiled += len(bad)
                ctx.record(
                    key, event["event_id"], s.person.person_id, flags=flags + bad,
                    ids=event_ids(event),
                )  # fmt: skip
                written += 1
    return Written(written, spoiled)


def write_web_events(ctx: Day) -> Written:
    return write_events(ctx, "web")


def write_app_events(ctx: Day) -> Written:
    return write_events(ctx, "app")


def write_miniprogram_events(ctx: Day) -> Written:
    return write_events(ctx, "miniprogram")


WRITERS: dict[str, Writer] = {
    "web.events": write_web_events,
    "app.events": write_app_events,
    "miniprogram.events": write_miniprogram_events,
}

_IDS = {"device_id": "device_id", "user_id": "member_card", "phone": "phone"}
TRUTH: dict[str, DatasetTruth] = {
    "web.events": DatasetTruth(field_id("event_id"), dict(_IDS)),
    "app.events": DatasetTruth(field_id("event_id"), dict(_IDS)),
    "miniprogram.events": DatasetTruth(
        field_id("event_id"), {**_IDS, "openid": "wechat_openid", "unionid": "wechat_unionid"}
    ),
}
