"""Simulated CRM / member-system exports: the points ledger, coupons and tier changes.

Why state: a points ledger only makes sense if each movement's balance follows the member's
previous one, and a coupon can only be redeemed or expire after it was issued, on any earlier
day. The writers are called one day at a time, so the member state lives in a small SQLite file
beside the landing area (``{out}/_state/``, never ingested), looked up and updated only for the
day's actors: memory stays bounded and a day costs what it writes, whatever the world's size.
State rows are keyed by day and a day reads only earlier days, so rerunning the same world over
the same days gives the same files.

Members are keyed by the member card (shared with the store POS) and their full mobile.
"""

from __future__ import annotations

import hashlib
import io
import random
import sqlite3
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from jobs.ingest.simulate import (
    Person,
    WriterResult,
    daily_sample,
    day_folder,
    day_start,
    export_ts,
)
from jobs.ingest.simulate_commerce import is_member, member_card, spec_csv_writer
from jobs.ingest.simulate_platforms import spoil

TIERS = (("普通会员", 0), ("银卡会员", 1_000), ("金卡会员", 3_000), ("钻石会员", 8_000))
CHANNELS = ("天猫", "微信小程序", "门店", "企业微信")
COUPONS = [  # template id, name, face value, threshold, days valid
    ("T2026001", "新客立减券", 20, 99, 7),
    ("T2026002", "会员日满299减50", 50, 299, 7),
    ("T2026003", "生日礼券", 30, 0, 30),
    ("T2026004", "复购满199减30", 30, 199, 14),
    ("T2026005", "今日限时券", 10, 59, 1),
]


def tier_for(lifetime: int) -> int:
    return max(i for i, (_name, floor) in enumerate(TIERS) if lifetime >= floor)


def _state(out: Path, people: Sequence[Person]) -> sqlite3.Connection:
    """The world's CRM state: one file per world (its size and first person), so a second world
    simulated into the same folder never reads the first one's members."""
    first = people[0] if len(people) else None
    tag = f"{len(people)}:{first.person_id if first else ''}:{first.phone if first else ''}"
    name = hashlib.sha1(tag.encode()).hexdigest()[:12]
    folder = out / "_state"
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / f"crm_{name}.sqlite")
    db.executescript(
        """
        create table if not exists points (
            card text, day text, person_id text, balance int, lifetime int, tier int,
            primary key (card, day));
        create index if not exists points_day on points (day);
        create table if not exists coupons (
            code text primary key, card text, person_id text, mobile text, template text,
            issued_day text, expires text, status text, status_day text);
        create index if not exists coupons_card on coupons (card);
        create index if not exists coupons_expires on coupons (expires);
        """
    )
    return db


def _member(db: sqlite3.Connection, card: str, day: date) -> tuple[int, int, int] | None:
    """(balance, lifetime, tier) of a member at the end of the last day before `day`."""
    return db.execute(
        "select balance, lifetime, tier from points where card = ? and day < ? "
        "order by day desc limit 1",
        (card, day.isoformat()),
    ).fetchone()


def _land(out: Path, dataset: str, day: date, buf: io.StringIO) -> None:
    (day_folder(out, "crm", dataset, day) / f"{dataset}_{day:%Y%m%d}.csv").write_bytes(
        b"\xef\xbb\xbf" + buf.getvalue().encode()
    )


def _at(rng: random.Random, day: date) -> datetime:
    return day_start(day) + timedelta(seconds=rng.randrange(8 * 3_600, 86_400))


def write_points(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    rate: float = 0.05,
) -> WriterResult:
    """The day's points ledger: members earn on purchases, redeem for gifts, and now and then
    see points expire; every row carries the balance after it."""
    buf, writer, fields, index = spec_csv_writer("crm.points")
    truth, bad = [], 0
    db = _state(out, people)
    with db:
        db.execute("delete from points where day >= ?", (day.isoformat(),))
        for person in daily_sample(people, rng, rate):
            if not is_member(person):
                continue
            card = member_card(person)
            balance, lifetime, tier = _member(db, card, day) or (0, 0, 0)
            moves = [("获得", rng.randrange(50, 600))]
            if balance >= 200 and rng.random() < 0.25:
                moves.append(("使用", -100 * rng.randrange(1, min(balance, 1_000) // 100 + 1)))
            if balance >= 50 and rng.random() < 0.05:
                moves.append(("过期", -rng.randrange(1, balance // 2 + 1)))
            when = _at(rng, day)
            for kind, points in moves:
                balance += points
                lifetime += max(points, 0)
                when += timedelta(seconds=rng.randrange(1, 600))
                ledger_id = f"PL{day:%Y%m%d}{len(truth) + 1:07d}"
                cells = {
                    "ledger_id": ledger_id,
                    "member_card": card,
                    "mobile": person.phone,
                    "change_type": kind,
                    "points": str(points),
                    "balance": str(balance),
                    "occurred": export_ts(when),
                    "channel": rng.choice(CHANNELS),
                    "ref_order_id": f"{day:%Y%m%d}{rng.randrange(10**8):08d}" if points > 0 else "",
                }
                row = [cells[f] for f in fields]
                if rng.random() < bad_rate:
                    row = spoil(rng, row, index["points"], index["change_type"], index["ledger_id"])
                    bad += 1
                writer.writerow(row)
                truth.append(("crm.points", ledger_id, person.person_id))
            if kind == "过期" and tier > 0 and rng.random() < 0.5:
                tier -= 1  # the yearly review: not enough points to keep the tier
                lifetime = TIERS[tier][1]
            else:
                tier = max(tier, tier_for(lifetime))
            db.execute(
                "insert or replace into points values (?, ?, ?, ?, ?, ?)",
                (card, day.isoformat(), person.person_id, balance, lifetime, tier),
            )
    db.close()
    _land(out, "points", day, buf)
    return len(truth), bad, truth


def write_tier_changes(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
) -> WriterResult:
    """The day's member tier changes (入会, 升级, 降级) with their reason, from the members whose
    points moved today (the points writer runs first)."""
    buf, writer, fields, index = spec_csv_writer("crm.tier_changes")
    truth, bad = [], 0
    db = _state(out, people)
    today = db.execute(
        "select card, person_id, lifetime, tier from points where day = ? order by card",
        (day.isoformat(),),
    ).fetchall()
    for card, person_id, lifetime, tier in today:
        before = _member(db, card, day)
        if before is not None and before[2] == tier:
            continue
        if before is None:
            kind, reason, old = "入会", "首次消费自动入会", ""
        elif tier > before[2]:
            kind, reason = "升级", f"累计积分达到{TIERS[tier][1]}"
            old = TIERS[before[2]][0]
        else:
            kind, reason, old = "降级", "年度保级积分未达标", TIERS[before[2]][0]
        person = people[int(person_id[1:]) - 1]
        change_id = f"TC{day:%Y%m%d}{len(truth) + 1:06d}"
        cells = {
            "change_id": change_id,
            "member_card": card,
            "mobile": person.phone,
            "old_tier": old,
            "new_tier": TIERS[tier][0],
            "change_type": kind,
            "reason": reason,
            "changed_at": export_ts(_at(rng, day)),
            "lifetime_points": str(lifetime),
        }
        row = [cells[f] for f in fields]
        if rng.random() < bad_rate:
            row = spoil(
                rng, row, index["lifetime_points"], index["change_type"], index["change_id"]
            )
            bad += 1
        writer.writerow(row)
        truth.append(("crm.tier_changes", change_id, person_id))
    db.close()
    _land(out, "tier_changes", day, buf)
    return len(truth), bad, truth


def write_coupons(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    rate: float = 0.05,
) -> WriterResult:
    """The day's coupon events: coupons issued to members today, coupons redeemed today (issued
    on an earlier day) and coupons that expired unused at the end of yesterday."""
    buf, writer, fields, index = spec_csv_writer("crm.coupons")
    truth, bad = [], 0
    db = _state(out, people)
    iso = day.isoformat()
    events: list[tuple[str, str, str, str, str, str, str, datetime]] = []
    with db:
        db.execute("delete from coupons where issued_day >= ?", (iso,))
        db.execute(
            "update coupons set status = 'ISSUED', status_day = issued_day where status_day >= ?",
            (iso,),
        )
        for person in daily_sample(people, rng, rate):
            if not is_member(person):
                continue
            card = member_card(person)
            open_codes = db.execute(
                "select code, template from coupons where card = ? and status = 'ISSUED' "
                "and expires >= ? order by code",
                (card, iso),
            ).fetchall()
            if open_codes and rng.random() < 0.5:
                code, template = rng.choice(open_codes)
                db.execute(
                    "update coupons set status = 'REDEEMED', status_day = ? where code = ?",
                    (iso, code),
                )
                events.append((code, template, card, person.phone, person.person_id, "已核销",
                               rng.choice(CHANNELS), _at(rng, day)))  # fmt: skip
            template = rng.choice(COUPONS)
            code = f"CP{day:%y%m%d}{hashlib.sha1(f'{card}:{iso}'.encode()).hexdigest()[:10]}"
            expires = (day + timedelta(days=template[4])).isoformat()
            db.execute(
                "insert or replace into coupons values (?, ?, ?, ?, ?, ?, ?, 'ISSUED', ?)",
                (code, card, person.person_id, person.phone, template[0], iso, expires, iso),
            )
            events.append((code, template[0], card, person.phone, person.person_id, "已发放",
                           rng.choice(CHANNELS), _at(rng, day)))  # fmt: skip
        yesterday = (day - timedelta(days=1)).isoformat()
        expired = db.execute(
            "select code, template, card, mobile, person_id from coupons "
            "where expires = ? and status = 'ISSUED' order by code",
            (yesterday,),
        ).fetchall()
        for code, template, card, mobile, person_id in expired:
            db.execute(
                "update coupons set status = 'EXPIRED', status_day = ? where code = ?", (iso, code)
            )
            events.append((code, template, card, mobile, person_id, "已过期", "系统",
                           day_start(day)))  # fmt: skip
    db.close()
    by_template = {t[0]: t for t in COUPONS}
    for code, template, card, mobile, person_id, status, channel, when in events:
        _tid, name, face, threshold, _days = by_template[template]
        record_id = f"{code}:{status}"
        cells = {
            "coupon_code": code,
            "template_id": template,
            "template_name": name,
            "member_card": card,
            "mobile": mobile,
            "status": status,
            "channel": channel,
            "face_value": f"{face:.2f}",
            "threshold": f"{threshold:.2f}",
            "event_time": export_ts(when),
        }
        row = [cells[f] for f in fields]
        if rng.random() < bad_rate:
            row = spoil(rng, row, index["face_value"], index["status"], index["coupon_code"])
            bad += 1
        writer.writerow(row)
        truth.append(("crm.coupons", record_id, person_id))
    _land(out, "coupons", day, buf)
    return len(truth), bad, truth
