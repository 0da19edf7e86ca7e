"""Simulated JD, Douyin shop and Pinduoduo order exports, each in its own back-office shape.

Brands run several marketplaces at once and download each one's order export by hand, so the
same person shows up under different ids, masks and encodings. This module writes those files
for one day (``{out}/<platform>/orders/dt=YYYY-MM-DD/orders_YYYYMMDD.csv``) with ground truth, so
identity resolution can be measured across platforms. Headers and their order come from the
source spec; the cell texts (statuses, masked phones, virtual numbers) are what each platform
shows. A share of lines is spoiled with `spoil`, the same damage classes as the Tmall writer, and
the run's `MessBook` adds the same mess as Tmall's (test and 刷单 orders, re-syncs, late orders,
variants), flagged in the truth rows.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from jobs.ingest.simulate import (
    PRODUCTS,
    TEST_BUYER,
    TEST_TITLE,
    Mess,
    MessBook,
    Person,
    daily_sample,
    day_folder,
    day_start,
    export_ts,
)
from jobs.ingest.spec import get_spec

UNKNOWN_STATUS = "状态未知"  # in no spec's value map: always rejected as an unknown value
BAD_AMOUNTS = ("12..5", "abc", "￥-")
INFLUENCERS = [
    ("71234567801", "小鹿美妆日记"),
    ("71234567802", "护肤研究所阿杰"),
    ("71234567803", "成分党小雨"),
]
DOUYIN_TRAFFIC = {"直播": 0.50, "短视频": 0.20, "商品卡": 0.20, "橱窗": 0.10}


def spoil(
    rng: random.Random, row: list[str], amount_index: int, status_index: int, id_index: int
) -> list[str]:
    """One bad-input class the connector must quarantine with a reason (a new list).

    Truncated line (malformed), unparseable amount, unknown status text, or missing order id.
    """
    kind = rng.randrange(4)
    row = list(row)
    if kind == 0:
        return row[: rng.randrange(2, len(row) - 1)]
    if kind == 1:
        row[amount_index] = rng.choice(BAD_AMOUNTS)
    elif kind == 2:
        row[status_index] = UNKNOWN_STATUS
    else:
        row[id_index] = ""
    return row


def masked_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


def jd_pin(person: Person) -> str:
    """The person's JD account (pin): stable per person, unrelated to any other platform id."""
    return "jd_" + hashlib.sha1(f"jd:{person.person_id}".encode()).hexdigest()[:13]


def _douyin_phone(rng: random.Random, person: Person) -> str:
    """Mostly a virtual relay number with an extension (not the buyer's); else masked."""
    if rng.random() < 0.7:
        prefix = rng.choice(("170", "171", "165", "167"))
        return f"{prefix}{rng.randrange(10**8):08d}-{rng.randrange(10**4):04d}"
    return masked_phone(person.phone)


@dataclass(frozen=True)
class _Order:
    """One simulated purchase, before it is shaped into a platform's row."""

    day: date  # the export's day (ids carry it), not necessarily the day it was created
    seq: int
    person: Person
    title: str
    qty: int
    amount: str  # as the export writes it (full-width digits are mess)
    created: datetime
    paid: datetime


@dataclass(frozen=True)
class _Platform:
    buy_rate: float  # chance a person buys on this platform on a given day (at volume 1)
    statuses: dict[str, float]  # export status text -> weight
    encoding: str  # of the export file ("utf-8-sig" writes the BOM)
    row: Callable[[random.Random, _Order, str], dict[str, str]]  # field -> cell
    next_statuses: dict[str, tuple[str, ...]]  # status -> what a later re-export may show
    final_status: str  # what a test or fake order shows
    after_sale: Callable[[str], str] | None = None  # the after-sale cell for a re-synced status


def _jd_row(rng: random.Random, o: _Order, status: str) -> dict[str, str]:
    return {
        "order_id": f"3{o.day:%y%m%d}{o.seq % 10**6:06d}",
        "buyer_pin": jd_pin(o.person),
        "payment": o.amount,
        "order_status": status,
        "receiver_name": o.person.name,
        "receiver_mobile": masked_phone(o.person.phone),
        "receiver_address": o.person.address,
        "created": export_ts(o.created),
        "pay_time": export_ts(o.paid),
        "item_title": o.title,
        "item_quantity": str(o.qty),
    }


def _douyin_row(rng: random.Random, o: _Order, status: str) -> dict[str, str]:
    traffic = rng.choices(list(DOUYIN_TRAFFIC), weights=list(DOUYIN_TRAFFIC.values()))[0]
    influencer_id, influencer_name = ("", "") if traffic == "商品卡" else rng.choice(INFLUENCERS)
    after_sale = "售后完成" if status == "已关闭" and rng.random() < 0.5 else "-"
    return {
        "order_id": f"69{o.day:%y%m%d}{o.seq % 10**11:011d}",
        "payment": o.amount,
        "order_status": status,
        "receiver_name": o.person.name,
        "receiver_mobile": _douyin_phone(rng, o.person),
        "receiver_address": o.person.address,
        "created": export_ts(o.created, "%Y/%m/%d %H:%M:%S"),
        "pay_time": export_ts(o.paid, "%Y/%m/%d %H:%M:%S"),
        "item_title": o.title,
        "item_quantity": str(o.qty),
        "influencer_id": influencer_id,
        "influencer_name": influencer_name,
        "traffic_source": traffic,
        "after_sale_status": after_sale,
    }


def _pdd_amount(amount: str) -> str:
    """Pinduoduo shows amounts without trailing zeros (17.8, 59.9, 398, 0)."""
    return (amount.rstrip("0０").rstrip(".") if "." in amount else amount) or "0"


def _pdd_row(rng: random.Random, o: _Order, status: str) -> dict[str, str]:
    plain = o.amount.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    received = f"{float(plain) * 0.994:.2f}"  # minus the 0.6% payment fee
    return {
        "order_id": f"{o.day:%y%m%d}-{o.seq % 10**15:015d}",
        "payment": _pdd_amount(o.amount),
        "merchant_received": received,
        "order_status": status,
        "receiver_name": o.person.name,
        "receiver_mobile": masked_phone(o.person.phone),
        "receiver_address": o.person.address,
        "created": export_ts(o.paid),  # 订单成交时间: the group order succeeded, after payment
        "pay_time": export_ts(o.paid),
        "item_title": o.title,
        "item_quantity": str(o.qty),
        "after_sale_status": _pdd_after_sale(status),
    }


def _pdd_after_sale(status: str) -> str:
    return "退款成功" if "退款成功" in status else "无售后或售后取消"


PLATFORMS: dict[str, _Platform] = {
    "jd": _Platform(
        buy_rate=0.02,
        statuses={
            "完成": 0.68,
            "等待确认收货": 0.12,
            "等待出库": 0.10,
            "已取消": 0.07,
            "锁定": 0.03,
        },
        encoding="gbk",
        row=_jd_row,
        next_statuses={
            "等待出库": ("等待确认收货", "已取消"),
            "等待确认收货": ("完成",),
            "锁定": ("已取消", "等待出库"),
        },
        final_status="完成",
    ),
    "douyin": _Platform(
        buy_rate=0.025,
        statuses={"已完成": 0.66, "已发货": 0.14, "待发货": 0.10, "已关闭": 0.10},
        encoding="utf-8-sig",
        row=_douyin_row,
        next_statuses={
            "待发货": ("已发货", "已关闭"),
            "已发货": ("已完成",),
            "已完成": ("已关闭",),
        },
        final_status="已完成",
        after_sale=lambda status: "售后完成" if status == "已关闭" else "-",
    ),
    "pdd": _Platform(
        buy_rate=0.02,
        statuses={
            "已签收": 0.66,
            "已发货，待签收": 0.14,
            "待发货": 0.10,
            "已取消": 0.04,
            "未发货，退款成功": 0.03,
            "已发货，退款成功": 0.03,
        },
        encoding="utf-8",
        row=_pdd_row,
        next_statuses={
            "待发货": ("已发货，待签收", "未发货，退款成功"),
            "已发货，待签收": ("已签收", "已发货，退款成功"),
        },
        final_status="已签收",
        after_sale=_pdd_after_sale,
    ),
}


def write_platform_orders(
    out: Path,
    platform: str,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    mess: MessBook | None = None,
    volume: float = 1.0,
) -> tuple[int, int, list[tuple[str, str, str, str]]]:
    """Write one day's order export of `platform`; (lines written, bad lines, truth rows).

    Truth rows are (source, order_id, person_id, flags), spoiled lines included. Order ids use
    ``seq_start + n``: pass a running counter so ids stay unique across days and calls.
    Without `mess` the day is clean apart from `bad_rate`; `volume` scales the buy rate.
    """
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; expected one of {sorted(PLATFORMS)}")
    shape = PLATFORMS[platform]
    book = mess or MessBook(Mess.none())
    spec = get_spec(f"{platform}.orders")
    fields = [c.field for c in spec.columns]
    index = {f: i for i, f in enumerate(fields)}
    truth: list[tuple[str, str, str, str]] = []
    seq, bad = seq_start, 0
    folder = day_folder(out, spec.source, spec.dataset, day)
    path = folder / f"orders_{day:%Y%m%d}.csv"
    with path.open("w", encoding=shape.encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow([c.header for c in spec.columns])

        def emit(cells: dict[str, str], person_id: str, flags: list[str], spoilable: bool) -> None:
            nonlocal bad
            row = [cells[f] for f in fields]
            if spoilable and rng.random() < bad_rate:
                row = spoil(rng, row, index["payment"], index["order_status"], index["order_id"])
                bad += 1
                flags = [*flags, "spoiled"]
            writer.writerow(row)
            truth.append((spec.source, cells["order_id"], person_id, "|".join(flags)))

        def order(person: Person, *, kind: str = "") -> tuple[dict[str, str], list[str]]:
            nonlocal seq
            seq += 1
            _sku, title, price = rng.choice(PRODUCTS)
            qty = rng.choice((1, 1, 1, 2, 3))
            flags: list[str] = []
            if kind:  # test and fake orders: created today, paid within seconds
                created = day_start(day) + timedelta(seconds=rng.randrange(86_400))
                paid = created + timedelta(seconds=rng.randrange(2, 20))
                qty = 1
                amount = "0.00" if kind == "test" else f"{rng.randrange(1, 300) / 100:.2f}"
                title = TEST_TITLE if kind == "test" else title
                status = shape.final_status
                flags.append(kind)
            else:
                created, flags = book.created(rng, day)
                paid = created + timedelta(minutes=rng.randrange(1, 30))
                amount, wide = book.amount(rng, f"{price * qty:.2f}")
                flags.extend(wide)
                status = rng.choices(list(shape.statuses), weights=list(shape.statuses.values()))[0]
            o = _Order(day, seq, person, title, qty, amount, created, paid)
            return shape.row(rng, o, status), flags

        for cells, person_id in book.take(spec.source, day):
            emit(cells, person_id, ["resync"], spoilable=False)
        actors = daily_sample(people, rng, shape.buy_rate * volume)
        for person in actors:
            shown, flags = book.disguise(rng, person, full_phone=False)
            cells, order_flags = order(shown)
            nxt = book.resync(rng, day, cells["order_status"], shape.next_statuses)
            emit(cells, person.person_id, flags + order_flags, spoilable=True)
            if nxt is not None and "spoiled" not in truth[-1][3]:
                later = {**cells, "order_status": nxt[1]}
                if shape.after_sale is not None:
                    later["after_sale_status"] = shape.after_sale(nxt[1])
                book.defer(spec.source, nxt[0], (later, person.person_id))
        tests, fakes = book.extra_orders(rng, len(actors))
        for _ in range(tests):
            cells, flags = order(TEST_BUYER, kind="test")
            emit(cells, "", flags, spoilable=False)
        ring = book.ring(spec.source, day)
        for _ in range(fakes):
            account = rng.choice(ring.accounts)
            cells, flags = order(account, kind="fake")
            emit(cells, ring.operator, flags, spoilable=False)
    return len(truth), bad, truth


def platform_writer(platform: str) -> Callable[..., tuple[int, int, list[tuple]]]:
    """`write_platform_orders` for one platform, in the simulator's writer shape."""

    def write(
        out: Path,
        day: date,
        people: Sequence[Person],
        rng: random.Random,
        *,
        bad_rate: float,
        seq_start: int,
        mess: MessBook | None = None,
        volume: float = 1.0,
    ) -> tuple[int, int, list[tuple]]:
        return write_platform_orders(
            out,
            platform,
            day,
            people,
            rng,
            bad_rate=bad_rate,
            seq_start=seq_start,
            mess=mess,
            volume=volume,
        )

    return write
