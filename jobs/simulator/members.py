"""The brand's member lists and consent logs, as its own systems export them.

- `crm.members`: the CRM's member master export (the card issued at sign-up, registration time,
  the phone the CRM holds, birthday, gender, email, the unionid when the member signed up in a
  bound mini-program, home store, owning guide, sign-up channel, the Taobao ouid of Tmall 会员通
  sign-ups, address). The first day is a full snapshot; later days hold the day's sign-ups and
  the members whose phone the CRM updated that day.
- `pos.members`: the store system's own membership list (Excel), holding many of the same people
  with NO shared id: its own member number, names typed by clerks, birthdays and addresses
  written another way, phones missing or in the wrong column. Linking it to the CRM takes name,
  birthday and address evidence (`fuzzy_linkable` in truth).
- `crm.consents`: the member system's consent log (SMS opt-in at sign-up, personalisation in the
  mini-program, member-centre opt-outs of every purpose), with the privacy-notice version in force.
  The first day holds the log's history; later days the day's events.
- `sms.replies`: the SMS gateway's inbound replies (上行短信, Aliyun SmsUp shape): a 退订 reply
  for each of the world's `sms_reply` opt-outs, and replies that are no opt-out (好的, 收到), all
  from the number the campaign went to (the phone the CRM holds, stale for some).

Every event comes from the world (`Person.member`, `Person.consent_events`) and later days find
theirs by the day (`World.on_day`), so they cost what they write. The first day's full exports
(member snapshot, store list) pass over the world once; the consent history is found day by day.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

from jobs.simulator.context import DatasetTruth, Day, Written, field_id
from jobs.simulator.files import (
    day_folder,
    day_start,
    export_ts,
    spec_csv_file,
    spec_workbook,
)
from jobs.simulator.mess import JUNK_PHONES, address_variant, name_typo, person_flags, to_fullwidth
from jobs.simulator.rand import frac, pick, sample_indexes
from jobs.simulator.world import (
    BRAND_TOP_APP_KEY,
    STORES,
    DatedTrait,
    Person,
    Store,
    World,
)

CHANNEL_TEXT = {"tmall": "天猫会员通", "miniprogram": "微信小程序", "store": "门店", "crm": "官网"}
GENDER_TEXT = {"F": "女", "M": "男"}
STORE_LEVELS = (("普通会员", 0.7), ("银卡会员", 0.2), ("金卡会员", 0.1))
PURPOSE_TEXT = {
    "marketing_sms": "短信营销",
    "marketing_wecom": "企业微信营销",
    "marketing_oa": "公众号营销",
    "personalization": "个性化推荐",
}
CONSENT_CHANNEL_TEXT = {
    "member_signup": "入会",
    "miniprogram": "小程序",
    "member_centre": "会员中心",
}
SMS_SIGN = "【花漾】"
SMS_CAMPAIGNS = ("8801", "8802", "8803", "8810")  # the campaigns' extension codes (扩展码)
SMS_OPTOUTS = ("TD", "TD", "退订", "T", "td", "退订 谢谢")  # what opt-out replies say
SMS_CHATTER = ("好的", "收到", "谢谢", "1", "？", "怎么领券", "已购买")  # no opt-out
SMS_CHAT_RATE = 0.004  # of people a day: a subscribed member replies something else (above)
NOTES = ("", "", "", "", "老顾客", "VIP客户", "生日当月赠礼", "敏感肌")

# The CRM profile members fill in (shares of members).
CRM_BIRTHDAY = 0.8
CRM_EMAIL = 0.7  # of members with an email
CRM_ADDRESS = 0.5
CRM_GENDER_UNKNOWN = 0.05
# The store list's clerks' mess (shares of its rows).
STORE_NAME_TYPO, STORE_NAME_VARIANT = 0.08, 0.05
STORE_GENDER_MISSING = 0.10
STORE_BIRTHDAY_MISSING, STORE_BIRTHDAY_SWAPPED, STORE_BIRTHDAY_YEAR = 0.15, 0.06, 0.04
STORE_PHONE_MISSING, STORE_PHONE_OTHER_COLUMN, STORE_PHONE_IN_NOTE = 0.08, 0.06, 0.03
STORE_JUNK_PHONE = 2  # times the run's junk-id rate: clerks type 13800138000 to get past a field
STORE_ADDRESS_MISSING, STORE_ADDRESS_VARIANT = 0.20, 0.35


# --- the CRM's view of a person (shared with loyalty) ---------------------------------------------


def crm_phone(person: Person, at: datetime) -> str:
    """The phone the CRM holds for a member at `at`: the sign-up phone, or the new one from when
    the member told the brand about the change (`Membership.crm_phone`)."""
    m = person.member
    assert m is not None
    if m.crm_phone != m.phone and person.phone_at(at) != m.crm_phone:
        return m.phone
    return m.crm_phone


def phone_truth(person: Person, phone: str, at: datetime) -> tuple[list, list[str]]:
    """(ids, flags) of a full phone a record shows for `person` at `at`: flagged `stale_phone`
    when it is no longer theirs (a number they left, which the CRM never updated; it still
    reaches their other records that carry it, so it stays an id)."""
    if not phone:
        return [], []
    return [("phone", phone)], ([] if phone == person.phone_at(at) else ["stale_phone"])


def day_end(day: date) -> datetime:
    """The export time of a day's file (its last second)."""
    return day_start(day) + timedelta(days=1, seconds=-1)


def history_days(world: World, day: date) -> Iterator[date]:
    """Every day of the world's history up to `day`."""
    d = world.history_start.date()
    while d <= day:
        yield d
        d += timedelta(days=1)


def days_of(ctx: Day) -> Iterator[date]:
    """The days a file covers: the whole history on the run's first day (a full export), else
    the day itself."""
    return history_days(ctx.world, ctx.day) if ctx.index == 0 else iter((ctx.day,))


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S")


# --- crm.members ----------------------------------------------------------------------------------


def _told_crm_at(person: Person) -> datetime | None:
    """When the CRM took the member's new phone (they told the brand), if they did."""
    m, w = person.member, person.world
    if m is None or m.crm_phone == m.phone:
        return None
    changed = person.event_time(w.phone_change)
    if changed is None or changed <= m.signed_up or person.phone_at(changed) != m.crm_phone:
        return None
    return changed


def _crm_name(ctx: Day, person: Person) -> tuple[str, list[str]]:
    """The name the CRM holds: a typo typed at sign-up stays in the record."""
    seed, i = ctx.seed, person.index
    if frac(seed, "crm-name-typo", i) < ctx.mess.rates.name_typo_rate:
        return name_typo(random.Random(f"{seed}:crm-name-typo:{i}"), person.name), ["name_typo"]
    return person.name, []


def _crm_member_row(ctx: Day, person: Person, updated: datetime, export: datetime):
    m = person.member
    assert m is not None
    seed, i = ctx.seed, person.index
    phone = crm_phone(person, updated)
    name, flags = _crm_name(ctx, person)
    ids, stale = phone_truth(person, phone, export)
    ids.append(("member_card", m.card))
    evidence = ["name"]
    birthday = ""
    if frac(seed, "crm-birthday", i) < CRM_BIRTHDAY:
        birthday = person.birthday.isoformat()
        evidence.append("birthday")
    address = ""
    if frac(seed, "crm-address", i) < CRM_ADDRESS:
        address = person.address
        evidence.append("address")
    email = person.email if person.email and frac(seed, "crm-email", i) < CRM_EMAIL else ""
    if email:
        ids.append(("email", email))
    unionid = person.unionid if m.channel == "miniprogram" and person.mp_app.bound else ""
    if unionid:
        ids.append(("wechat_unionid", unionid))
    ouid = person.tmall_open_uid(BRAND_TOP_APP_KEY) if m.channel == "tmall" else ""
    if ouid:
        ids.append(("tmall_open_uid", ouid))
    unknown = frac(seed, "crm-gender", i) < CRM_GENDER_UNKNOWN
    gender = "未知" if unknown else GENDER_TEXT[person.gender]
    cells = {
        "member_card": m.card,
        "registered_at": export_ts(m.signed_up),
        "name": name,
        "mobile": phone,
        "birthday": birthday,
        "gender": gender,
        "email": email,
        "unionid": unionid,
        "home_store": m.home_store,
        "guide": m.guide,
        "channel": CHANNEL_TEXT[m.channel],
        "tmall_open_uid": ouid,
        "address": address,
        "updated_at": export_ts(updated),
    }
    truth = dict(
        record_id=f"{m.card}@{_iso(updated)}",
        flags=flags + stale + person_flags(person),
        ids=ids,
        evidence=evidence,
    )
    return cells, truth


def write_crm_members(ctx: Day) -> Written:
    """The CRM member master export (CSV, UTF-8 with a BOM): a full snapshot on the run's first
    day, then each day's sign-ups and the members whose phone the CRM updated that day."""
    w, export = ctx.world, day_end(ctx.day)
    n = bad = 0
    name = f"members_{ctx.day:%Y%m%d}.csv"
    with spec_csv_file(ctx.out, ctx.day, "crm.members", name) as (writer, fields):

        def emit(person: Person, updated: datetime) -> None:
            nonlocal n, bad
            cells, truth = _crm_member_row(ctx, person, updated, export)
            row, spoiled = ctx.csv_row(
                cells, fields, amount="registered_at", status="channel", key="member_card"
            )
            writer.writerow(row)
            bad += len(spoiled)
            truth["flags"] += spoiled
            ctx.record("crm.members", truth.pop("record_id"), person.person_id, **truth)
            n += 1

        if ctx.index == 0:
            for d in history_days(w, ctx.day):
                for person in w.on_day(w.signup, d):
                    told = _told_crm_at(person)  # the last update before the export
                    current = told is not None and told <= export
                    emit(person, told if current else person.member.signed_up)
        else:
            changes = []
            for person in w.on_day(w.phone_change, ctx.day):
                told = _told_crm_at(person)
                if told is not None and told.date() == ctx.day:
                    changes.append((told, person))
            events = [(p.member.signed_up, p) for p in w.on_day(w.signup, ctx.day)] + changes
            for updated, person in sorted(events, key=lambda e: (e[0], e[1].index)):
                emit(person, updated)
    return Written(n, bad)


# --- pos.members ----------------------------------------------------------------------------------


def _store_list_trait(world: World) -> DatedTrait:
    """When each person would register in the store system (for those who do, and did not
    register there as a store sign-up of the CRM, which is the same moment)."""
    return DatedTrait(world, "store-list", 1.0, world.history_start, world.until)


def store_registration(person: Person, trait: DatedTrait | None = None) -> datetime | None:
    """When the person registered in the store system's membership list, or None."""
    if not person.in_store_list:
        return None
    m = person.member
    if m is not None and m.channel == "store":
        return m.signed_up
    return (trait or _store_list_trait(person.world)).at(person.index)


def _registrations_on(world: World, trait: DatedTrait, day: date) -> list[tuple[datetime, Person]]:
    out = [
        (p.member.signed_up, p)
        for p in world.on_day(world.signup, day)
        if p.member.channel == "store" and p.in_store_list
    ]
    for i in trait.on_day(day):
        p = world.person(i)
        at = store_registration(p, trait)
        if at is not None and at.date() == day and not (p.member and p.member.channel == "store"):
            out.append((at, p))
    return sorted(out, key=lambda e: (e[0], e[1].index))


def _registration_store(person: Person) -> Store:
    m = person.member
    if m is not None and m.home_store:
        return next(s for s in STORES if s.store_id == m.home_store)
    near = person.world.stores_in(person.region)
    return near[0] if near else pick(person.world.seed, "store-list-store", person.index, STORES)


def room_variant(rng: random.Random, address: str) -> str:
    """The building and room written another way: 14栋2单元2204室 -> 14-2-2204, 14号楼2单元2204,
    14幢2-2204."""
    form = rng.randrange(3)
    replacement = (r"\1-\2-\3", r"\1号楼\2单元\3", r"\1幢\2-\3")[form]
    variant = re.sub(r"(\d+)栋(\d+)单元(\d+)室", replacement, address)
    return variant if variant != address else address_variant(rng, address)


def _store_birthday(rng: random.Random, born: date) -> tuple[object, list[str]]:
    """A birthday as a clerk typed it: a date cell or text, sometimes day and month swapped or
    the year wrong (always a real date; flagged `birthday_variant`)."""
    r = rng.random()
    if r < STORE_BIRTHDAY_MISSING:
        return None, []
    r -= STORE_BIRTHDAY_MISSING
    typed, flags = born, []
    if r < STORE_BIRTHDAY_SWAPPED and born.day <= 12 and born.day != born.month:
        typed = born.replace(month=born.day, day=born.month)
    elif r < STORE_BIRTHDAY_SWAPPED + STORE_BIRTHDAY_YEAR:
        year = born.year + rng.choice((-1, 1, 10, -10))
        typed = born.replace(year=year, day=min(born.day, 28) if born.month == 2 else born.day)
    if typed != born:
        flags.append("birthday_variant")
    form = rng.randrange(4)
    if form == 0:
        return f"{typed.year}.{typed.month}.{typed.day}", flags
    if form == 1:
        return f"{typed:%Y%m%d}", flags
    return datetime.combine(typed, time()), flags  # a date cell


def _store_name(rng: random.Random, person: Person) -> tuple[str, list[str]]:
    r = rng.random()
    if r < STORE_NAME_TYPO:
        return name_typo(rng, person.name), ["name_typo"]
    if r < STORE_NAME_TYPO + STORE_NAME_VARIANT:
        name = person.name
        if rng.random() < 0.5:
            return f"{name[0]} {name[1:]}", ["name_typo"]
        return name[0] + ("女士" if person.gender == "F" else "先生"), ["name_typo"]
    return person.name, []


def _store_member_row(ctx: Day, person: Person, registered: datetime, export: datetime):
    rng = ctx.rng
    store = _registration_store(person)
    name, flags = _store_name(rng, person)
    evidence = ["name"]
    ids: list = [("store_member_no", person.store_member_no)]
    gender = "" if rng.random() < STORE_GENDER_MISSING else GENDER_TEXT[person.gender]
    birthday, slips = _store_birthday(rng, person.birthday)
    flags += slips
    if birthday is not None:
        evidence.append("birthday")
    address = person.address
    r = rng.random()
    if r < STORE_ADDRESS_MISSING:
        address = ""
    elif r < STORE_ADDRESS_MISSING + STORE_ADDRESS_VARIANT:
        vary = room_variant if rng.random() < 0.5 else address_variant
        address = vary(rng, address)
        flags.append("address_variant")
    if address:
        evidence.append("address")
    phone = person.phone_at(registered)
    mobile: object = ""
    other = ""
    note = rng.choice(NOTES)
    junk = STORE_JUNK_PHONE * ctx.mess.rates.junk_id_rate
    placement = rng.choices(
        ("junk", "missing", "note", "other", "mobile"),
        weights=(
            junk,
            STORE_PHONE_MISSING,
            STORE_PHONE_IN_NOTE,
            STORE_PHONE_OTHER_COLUMN,
            1 - junk - STORE_PHONE_MISSING - STORE_PHONE_IN_NOTE - STORE_PHONE_OTHER_COLUMN,
        ),
    )[0]
    if placement == "junk":
        mobile, phone = rng.choice(JUNK_PHONES), ""
        flags.append("junk_id")
    elif placement == "missing":
        phone = ""
    elif placement == "note":
        note, phone = f"手机{phone}", ""  # in the remarks: no identifier field holds it
    elif placement == "other":
        other = phone  # in 联系电话 instead of 手机号码
    else:
        mobile = int(phone) if rng.random() < 0.3 else phone  # a number cell, as clerks type it
        if rng.random() < ctx.mess.rates.fullwidth_rate:
            mobile = to_fullwidth(phone)
            flags.append("fullwidth_phone")
    phone_ids, stale = phone_truth(person, phone, export)
    level = rng.choices([lv for lv, _ in STORE_LEVELS], weights=[s for _, s in STORE_LEVELS])[0]
    cells = {
        "store_member_id": person.store_member_no,
        "name": name,
        "gender": gender,
        "birthday": birthday,
        "mobile": mobile,
        "contact_phone": other,
        "address": address,
        "store_code": store.store_id,
        "store_name": store.name,
        "level": level,
        "registered": datetime.combine(registered.date(), time()),
        "note": note,
    }
    truth = dict(
        flags=flags + stale + person_flags(person),
        ids=ids + phone_ids,
        evidence=evidence,
    )
    return cells, truth


def write_pos_members(ctx: Day) -> Written:
    """The store system's membership list (.xlsx, sheet 会员资料): everyone registered by then on
    the run's first day, later the day's new registrations. Its own member number; no CRM card."""
    w, export, trait = ctx.world, day_end(ctx.day), _store_list_trait(ctx.world)
    n = bad = 0
    name = f"members_{ctx.day:%Y%m%d}.xlsx"
    with spec_workbook(ctx.out, ctx.day, "pos.members", name) as (sheet, fields):
        for d in days_of(ctx):
            for registered, person in _registrations_on(w, trait, d):
                cells, truth = _store_member_row(ctx, person, registered, export)
                row, spoiled = ctx.sheet_row(
                    cells, fields, key="store_member_id", amount="registered", status="level",
                    when="registered",
                )  # fmt: skip
                sheet.append(row)
                bad += len(spoiled)
                truth["flags"] += spoiled
                ctx.record("pos.members", person.store_member_no, person.person_id, **truth)
                n += 1
    return Written(n, bad)


# --- crm.consents ---------------------------------------------------------------------------------


def _consent_rows(ctx: Day, d: date):
    """(event, person) of the member system's consent events on day `d`, in time order."""
    w = ctx.world
    found = [(p, "member_signup") for p in w.on_day(w.signup, d)]
    found += [(p, "member_centre") for p in w.on_day(w.member_optout, d)]
    found += [(p, "miniprogram") for p in w.on_day(w.personalization, d)]
    out = [
        (e, p)
        for p, channel in found
        for e in p.consent_events
        if e.channel == channel and e.at.date() == d
    ]
    return sorted(out, key=lambda ep: (ep[0].at, ep[1].index, ep[0].purpose))


def write_crm_consents(ctx: Day) -> Written:
    """The member system's consent log (CSV, UTF-8 with a BOM): the log's history on the run's
    first day, later the day's events. Members appear by card and the phone the CRM holds now;
    mini-program consents by the app's openid (and the unionid when the app is bound)."""
    export = day_end(ctx.day)
    n = bad = 0
    name = f"consents_{ctx.day:%Y%m%d}.csv"
    with spec_csv_file(ctx.out, ctx.day, "crm.consents", name) as (writer, fields):
        for d in days_of(ctx):
            for event, person in _consent_rows(ctx, d):
                consent_id = f"CS{ctx.rng.getrandbits(64):016x}"
                m = person.member_at(event.at)
                ids: list = []
                flags = person_flags(person)
                card = phone = appid = openid = unionid = ""
                if m is not None:
                    card, phone = m.card, crm_phone(person, export)
                    ids.append(("member_card", card))
                    phone_ids, stale = phone_truth(person, phone, export)
                    ids += phone_ids
                    flags += stale
                in_app = event.channel == "miniprogram" or (
                    event.channel == "member_signup"
                    and m is not None
                    and m.channel == "miniprogram"
                )
                if in_app:  # the app's openid (and the unionid when the app is bound)
                    app = person.mp_app
                    appid, openid = app.appid, person.openid(app)
                    ids.append(("wechat_openid", openid))
                    if app.bound:
                        unionid = person.unionid
                        ids.append(("wechat_unionid", unionid))
                cells = {
                    "consent_id": consent_id,
                    "member_card": card,
                    "mobile": phone,
                    "appid": appid,
                    "openid": openid,
                    "unionid": unionid,
                    "purpose": PURPOSE_TEXT[event.purpose],
                    "granted": "同意" if event.granted else "撤回",
                    "changed_at": export_ts(event.at),
                    "channel": CONSENT_CHANNEL_TEXT[event.channel],
                    "notice_version": event.notice_version,
                }
                row, spoiled = ctx.csv_row(
                    cells, fields, amount="changed_at", status="purpose", key="consent_id"
                )
                writer.writerow(row)
                bad += len(spoiled)
                ctx.record(
                    "crm.consents", consent_id, person.person_id, flags=flags + spoiled, ids=ids
                )
                n += 1
    return Written(n, bad)


# --- sms.replies ----------------------------------------------------------------------------------


def _sms_chatter(ctx: Day) -> list[tuple[datetime, Person, str]]:
    """Replies that are no opt-out (好的, 收到, a question): members still subscribed to the
    SMS campaigns, answering one today."""
    w, rng, out = ctx.world, ctx.rng, []
    for i in sample_indexes(w.n, rng, SMS_CHAT_RATE):
        person = w.person(i)
        m = person.member
        at = day_start(ctx.day) + timedelta(seconds=rng.randrange(9 * 3_600, 22 * 3_600))
        if m is None or not m.sms_opt_in or not person.consent("marketing_sms", at):
            continue
        out.append((at, person, rng.choice(SMS_CHATTER)))
    return out


def write_sms_replies(ctx: Day) -> Written:
    """The SMS gateway's inbound replies of the day (上行短信, JSON lines as the gateway's queue
    delivers them, Aliyun SmsUp fields): a 退订 reply for each `sms_reply` opt-out, and replies
    that are no opt-out, each from the number the campaign was sent to: the phone the CRM holds
    (stale for members who changed number without telling the brand)."""
    w, rng = ctx.world, ctx.rng
    replies = [
        (e.at, p, rng.choice(SMS_OPTOUTS))
        for p in w.on_day(w.sms_optout, ctx.day)
        for e in p.consent_events
        if e.channel == "sms_reply" and e.at.date() == ctx.day
    ]
    replies += _sms_chatter(ctx)
    n = bad = 0
    folder = day_folder(ctx.out, "sms", "replies", ctx.day)
    with (folder / f"smsup_{ctx.day:%Y%m%d}.jsonl").open("w", encoding="utf-8", newline="\n") as fh:
        for at, person, content in sorted(replies, key=lambda r: (r[0], r[1].index)):
            phone = crm_phone(person, at)
            ids, flags = phone_truth(person, phone, at)
            flags += person_flags(person)
            sequence_id = 10**9 + ctx.seq.next()  # the gateway's message sequence number
            obj = {
                "phone_number": phone,
                "content": content,
                "sign_name": SMS_SIGN,
                "send_time": export_ts(at),
                "dest_code": rng.choice(SMS_CAMPAIGNS),
                "sequence_id": sequence_id,
            }
            line, spoiled = ctx.json_line(
                obj, {"required": "phone_number", "wrong_type": ("sequence_id", "seq-x")}
            )
            fh.write(line + "\n")
            bad += len(spoiled)
            ctx.record(
                "sms.replies", str(sequence_id), person.person_id, flags=flags + spoiled, ids=ids
            )
            n += 1
    return Written(n, bad)


WRITERS = {
    "crm.members": write_crm_members,
    "pos.members": write_pos_members,
    "crm.consents": write_crm_consents,
    "sms.replies": write_sms_replies,
}

TRUTH = {
    "crm.members": DatasetTruth(
        record_id=lambda v: f"{v.get('member_card') or ''}@{v.get('updated_at') or ''}",
        identifiers={
            "member_card": "member_card",
            "mobile": "phone",
            "email": "email",
            "unionid": "wechat_unionid",
            "tmall_open_uid": "tmall_open_uid",
        },
    ),
    "pos.members": DatasetTruth(
        record_id=field_id("store_member_id"),
        identifiers={
            "store_member_id": "store_member_no",
            "mobile": "phone",
            "contact_phone": "phone",
        },
    ),
    "crm.consents": DatasetTruth(
        record_id=field_id("consent_id"),
        identifiers={
            "member_card": "member_card",
            "mobile": "phone",
            "openid": "wechat_openid",
            "unionid": "wechat_unionid",
        },
    ),
    "sms.replies": DatasetTruth(record_id=field_id("sequence_id"), identifiers={"phone": "phone"}),
}
