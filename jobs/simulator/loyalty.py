"""The CRM's loyalty exports: the points ledger, tier changes and coupon events of the day.

Why state: a points ledger only makes sense if each movement's balance follows the member's
previous one, and a coupon can only be redeemed or expire after it was issued, on any earlier
day. The writers are called one day at a time, so the member state lives in a small SQLite file
beside the landing area (``{out}/_state/``, never ingested), looked up and updated only for the
day's actors: memory stays bounded and a day costs what it writes, whatever the world's size.
State rows are keyed by day and a day reads only earlier days, so rerunning the same world over
the same days gives the same files.

Members are the world's (`Person.member`): keyed by the card issued at sign-up and the phone the
CRM holds (`members.crm_phone`, stale for members who changed number without telling). A member
appears from their sign-up day (a JOIN, a welcome gift of points and a new-customer coupon);
members who joined before the run carry the balance they had built up.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import date, datetime, timedelta

from jobs.simulator.context import DatasetTruth, Day, Written, field_id
from jobs.simulator.files import day_start, export_ts, spec_csv_file
from jobs.simulator.members import CHANNEL_TEXT, crm_phone, phone_truth
from jobs.simulator.mess import person_flags
from jobs.simulator.rand import below, sample_indexes
from jobs.simulator.world import Person

TIERS = (("普通会员", 0), ("银卡会员", 1_000), ("金卡会员", 3_000), ("钻石会员", 8_000))
CHANNELS = ("天猫", "微信小程序", "门店", "企业微信")
COUPONS = [  # template id, name, face value, threshold, days valid
    ("T2026001", "新客立减券", 20, 99, 7),
    ("T2026002", "会员日满299减50", 50, 299, 7),
    ("T2026003", "生日礼券", 30, 0, 30),
    ("T2026004", "复购满199减30", 30, 199, 14),
    ("T2026005", "今日限时券", 10, 59, 1),
]
WELCOME_POINTS = 100  # 入会礼
POINTS_RATE = 0.05  # of people: a member among them earns or spends points today
COUPON_RATE = 0.05


def tier_for(lifetime: int) -> int:
    return max(i for i, (_name, floor) in enumerate(TIERS) if lifetime >= floor)


def _state(ctx: Day) -> sqlite3.Connection:
    """The world's CRM state: one file per world (size, seed, last day), so another world
    simulated into the same folder never reads this one's members."""
    w = ctx.world
    folder = ctx.out / "_state"
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / f"crm_{w.n}_{w.seed}_{w.end:%Y%m%d}.sqlite")
    db.executescript(
        """
        create table if not exists points (
            card text, day text, idx int, balance int, lifetime int, tier int,
            primary key (card, day));
        create index if not exists points_day on points (day);
        create table if not exists coupons (
            code text primary key, card text, idx int, mobile text, template text,
            issued_day text, expires text, status text, status_day text);
        create index if not exists coupons_card on coupons (card);
        create index if not exists coupons_expires on coupons (expires);
        """
    )
    return db


def opening(person: Person, day: date) -> tuple[int, int, int]:
    """(balance, lifetime, tier) of a member who joined before the CRM's first export we see:
    what they had built up, drawn from their tenure."""
    m = person.member
    assert m is not None
    seed, i = person.world.seed, person.index
    tenure = max(0, (day_start(day) - m.signed_up).days)
    lifetime = below(seed, "crm-lifetime", i, 6_000) * min(tenure, 730) // 730
    balance = below(seed, "crm-balance", i, lifetime + 1)
    return balance, lifetime, tier_for(lifetime)


def _before(db: sqlite3.Connection, person: Person, day: date) -> tuple[int, int, int] | None:
    """(balance, lifetime, tier) of a member at the end of the day before `day`; None for a
    member who joins on `day`."""
    m = person.member
    assert m is not None
    row = db.execute(
        "select balance, lifetime, tier from points where card = ? and day < ? "
        "order by day desc limit 1",
        (m.card, day.isoformat()),
    ).fetchone()
    if row is not None:
        return row
    return None if m.signed_up >= day_start(day) else opening(person, day)


def _at(rng: random.Random, day: date) -> datetime:
    return day_start(day) + timedelta(seconds=rng.randrange(8 * 3_600, 86_400))


def _members_today(ctx: Day, rate: float) -> tuple[list[Person], list[Person]]:
    """(the day's new members, members from before the day who act today)."""
    w, start = ctx.world, day_start(ctx.day)
    joined = w.on_day(w.signup, ctx.day)
    acting = [w.person(i) for i in sample_indexes(w.n, ctx.rng, rate)]
    return joined, [p for p in acting if p.member is not None and p.member.signed_up < start]


def _member_ids(person: Person, phone: str, at: datetime) -> tuple[list, list[str]]:
    ids, flags = phone_truth(person, phone, at)
    return [("member_card", person.member.card), *ids], flags + person_flags(person)


def write_points(ctx: Day) -> Written:
    """The day's points ledger (CSV, UTF-8 with a BOM): new members get their welcome points,
    members earn on purchases, redeem for gifts, and now and then see points expire; every row
    carries the balance after it."""
    rng, day = ctx.rng, ctx.day
    db = _state(ctx)
    n = bad = 0
    name = f"points_{day:%Y%m%d}.csv"
    with db, spec_csv_file(ctx.out, ctx.day, "crm.points", name) as (writer, fields):
        db.execute("delete from points where day >= ?", (day.isoformat(),))
        joined, acting = _members_today(ctx, POINTS_RATE)
        for person in joined + acting:
            m = person.member
            before = _before(db, person, day)
            balance, lifetime, tier = before or (0, 0, 0)
            if before is None:
                moves = [("获得", WELCOME_POINTS, CHANNEL_TEXT[m.channel], "")]
                when = m.signed_up
            else:
                earn = rng.randrange(50, 600)
                moves = [("获得", earn, rng.choice(CHANNELS), "order")]
                left = balance + earn  # what the next movements may take
                if balance >= 200 and rng.random() < 0.25:
                    spend = -100 * rng.randrange(1, min(balance, 1_000) // 100 + 1)
                    moves.append(("使用", spend, rng.choice(CHANNELS), ""))
                    left += spend
                if left >= 50 and rng.random() < 0.05:
                    moves.append(("过期", -rng.randrange(1, left // 2 + 1), "系统", ""))
                when = _at(rng, day)
            kind = ""
            for kind, points, channel, ref in moves:
                balance += points
                lifetime += max(points, 0)
                when += timedelta(seconds=rng.randrange(1, 600))
                n += 1
                ledger_id = f"PL{day:%Y%m%d}{n:07d}"
                phone = crm_phone(person, when)
                ids, flags = _member_ids(person, phone, when)
                cells = {
                    "ledger_id": ledger_id,
                    "member_card": m.card,
                    "mobile": phone,
                    "change_type": kind,
                    "points": str(points),
                    "balance": str(balance),
                    "occurred": export_ts(when),
                    "channel": channel,
                    "ref_order_id": f"{day:%Y%m%d}{rng.randrange(10**8):08d}" if ref else "",
                }
                row, spoiled = ctx.csv_row(
                    cells, fields, amount="points", status="change_type", key="ledger_id"
                )
                writer.writerow(row)
                bad += len(spoiled)
                ctx.record(
                    "crm.points", ledger_id, person.person_id, flags=flags + spoiled, ids=ids
                )
            if kind == "过期" and tier > 0 and rng.random() < 0.5:
                tier -= 1  # the yearly review: not enough points to keep the tier
                lifetime = TIERS[tier][1]
            else:
                tier = max(tier, tier_for(lifetime))
            db.execute(
                "insert or replace into points values (?, ?, ?, ?, ?, ?)",
                (m.card, day.isoformat(), person.index, balance, lifetime, tier),
            )
    db.close()
    return Written(n, bad)


def write_tier_changes(ctx: Day) -> Written:
    """The day's member tier changes (CSV, UTF-8 with a BOM): the day's new members join (入会)
    and members whose points moved today go up or down (the points writer runs first)."""
    rng, day, w = ctx.rng, ctx.day, ctx.world
    db = _state(ctx)
    today = {
        card: (idx, lifetime, tier)
        for card, idx, lifetime, tier in db.execute(
            "select card, idx, lifetime, tier from points where day = ? order by card",
            (day.isoformat(),),
        )
    }
    changes: list[tuple[datetime, Person, str, str, str, int, int]] = []
    for person in w.on_day(w.signup, day):
        m = person.member
        _idx, lifetime, tier = today.pop(m.card, (person.index, 0, 0))
        reason = f"{CHANNEL_TEXT[m.channel]}注册入会"
        changes.append((m.signed_up, person, "入会", "", reason, tier, lifetime))
    for idx, lifetime, tier in today.values():
        person = w.person(idx)
        before = _before(db, person, day)
        if before is None or before[2] == tier:
            continue
        if tier > before[2]:
            kind, reason = "升级", f"累计积分达到{TIERS[tier][1]}"
        else:
            kind, reason = "降级", "年度保级积分未达标"
        changes.append((_at(rng, day), person, kind, TIERS[before[2]][0], reason, tier, lifetime))
    db.close()
    n = bad = 0
    name = f"tier_changes_{day:%Y%m%d}.csv"
    with spec_csv_file(ctx.out, ctx.day, "crm.tier_changes", name) as (writer, fields):
        for when, person, kind, old, reason, tier, lifetime in changes:
            n += 1
            change_id = f"TC{day:%Y%m%d}{n:06d}"
            phone = crm_phone(person, when)
            ids, flags = _member_ids(person, phone, when)
            cells = {
                "change_id": change_id,
                "member_card": person.member.card,
                "mobile": phone,
                "old_tier": old,
                "new_tier": TIERS[tier][0],
                "change_type": kind,
                "reason": reason,
                "changed_at": export_ts(when),
                "lifetime_points": str(lifetime),
            }
            row, spoiled = ctx.csv_row(
                cells, fields, amount="changed_at", status="change_type", key="change_id"
            )
            writer.writerow(row)
            bad += len(spoiled)
            ctx.record(
                "crm.tier_changes", change_id, person.person_id, flags=flags + spoiled, ids=ids
            )
    return Written(n, bad)


STATUS_CODE = {"已发放": "ISSUED", "已核销": "REDEEMED", "已过期": "EXPIRED", "已作废": "VOIDED"}


def write_coupons(ctx: Day) -> Written:
    """The day's coupon events (CSV, UTF-8 with a BOM): coupons issued today (a new-customer
    coupon to each new member), coupons redeemed today (issued on an earlier day) and coupons
    that expired unused at the end of yesterday."""
    rng, day, w = ctx.rng, ctx.day, ctx.world
    iso = day.isoformat()
    db = _state(ctx)
    events: list[tuple[str, str, Person, str, str, str, datetime]] = []

    def issue(person: Person, template: tuple, when: datetime, channel: str) -> None:
        m = person.member
        code = f"CP{day:%y%m%d}{rng.getrandbits(40):010x}"
        expires = (day + timedelta(days=template[4])).isoformat()
        phone = crm_phone(person, when)
        db.execute(
            "insert or replace into coupons values (?, ?, ?, ?, ?, ?, ?, 'ISSUED', ?)",
            (code, m.card, person.index, phone, template[0], iso, expires, iso),
        )
        events.append((code, template[0], person, phone, "已发放", channel, when))

    with db:
        db.execute("delete from coupons where issued_day >= ?", (iso,))
        db.execute(
            "update coupons set status = 'ISSUED', status_day = issued_day where status_day >= ?",
            (iso,),
        )
        joined, acting = _members_today(ctx, COUPON_RATE)
        for person in joined:
            m = person.member
            issue(person, COUPONS[0], m.signed_up + timedelta(seconds=30), CHANNEL_TEXT[m.channel])
        for person in acting:
            open_codes = db.execute(
                "select code, template from coupons where card = ? and status = 'ISSUED' "
                "and expires >= ? order by code",
                (person.member.card, iso),
            ).fetchall()
            if open_codes and rng.random() < 0.5:
                code, template = rng.choice(open_codes)
                db.execute(
                    "update coupons set status = 'REDEEMED', status_day = ? where code = ?",
                    (iso, code),
                )
                when = _at(rng, day)
                phone = crm_phone(person, when)
                events.append((code, template, person, phone, "已核销", rng.choice(CHANNELS), when))
            issue(person, rng.choice(COUPONS[1:]), _at(rng, day), rng.choice(CHANNELS))
        yesterday = (day - timedelta(days=1)).isoformat()
        expired = db.execute(
            "select code, template, idx, mobile from coupons "
            "where expires = ? and status = 'ISSUED' order by code",
            (yesterday,),
        ).fetchall()
        for code, template, idx, mobile in expired:
            db.execute(
                "update coupons set status = 'EXPIRED', status_day = ? where code = ?", (iso, code)
            )
            events.append((code, template, w.person(idx), mobile, "已过期", "系统", day_start(day)))
    db.close()
    by_template = {t[0]: t for t in COUPONS}
    n = bad = 0
    name = f"coupons_{day:%Y%m%d}.csv"
    with spec_csv_file(ctx.out, ctx.day, "crm.coupons", name) as (writer, fields):
        for code, template, person, mobile, status, channel, when in events:
            _tid, title, face, threshold, _days = by_template[template]
            ids, flags = _member_ids(person, mobile, when)
            cells = {
                "coupon_code": code,
                "template_id": template,
                "template_name": title,
                "member_card": person.member.card,
                "mobile": mobile,
                "status": status,
                "channel": channel,
                "face_value": f"{face:.2f}",
                "threshold": f"{threshold:.2f}",
                "event_time": export_ts(when),
            }
            row, spoiled = ctx.csv_row(
                cells, fields, amount="event_time", status="status", key="coupon_code"
            )
            writer.writerow(row)
            bad += len(spoiled)
            ctx.record(
                "crm.coupons", f"{code}:{STATUS_CODE[status]}", person.person_id,
                flags=flags + spoiled, ids=ids,
            )  # fmt: skip
            n += 1
    return Written(n, bad)


WRITERS = {
    "crm.points": write_points,
    "crm.tier_changes": write_tier_changes,
    "crm.coupons": write_coupons,
}

_MEMBER_IDS = {"member_card": "member_card", "mobile": "phone"}
TRUTH = {
    "crm.points": DatasetTruth(record_id=field_id("ledger_id"), identifiers=_MEMBER_IDS),
    "crm.tier_changes": DatasetTruth(record_id=field_id("change_id"), identifiers=_MEMBER_IDS),
    "crm.coupons": DatasetTruth(
        record_id=lambda v: f"{v.get('coupon_code') or ''}:{v.get('status') or ''}",
        identifiers=_MEMBER_IDS,
    ),
}
