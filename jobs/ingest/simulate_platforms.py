"""Simulated JD, Douyin shop and Pinduoduo order exports, each in its own back-office shape.

Brands run several marketplaces at once and download each one's order export by hand, so the
same person shows up under different ids, masks and encodings. This module writes those files
for one day (``{out}/<platform>/orders/dt=YYYY-MM-DD/orders_YYYYMMDD.csv``) with ground truth, so
identity resolution can be measured across platforms. Headers and their order come from the
source spec; the cell texts (statuses, masked phones, virtual numbers) are what each platform
shows. A share of lines is spoiled with `spoil`, the same damage classes as the Tmall writer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from jobs.ingest.simulate import PRODUCTS, Person
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

    day: date
    seq: int
    person: Person
    title: str
    qty: int
    amount: float
    created: datetime
    paid: datetime


@dataclass(frozen=True)
class _Platform:
    buy_rate: float  # chance a person buys on this platform on a given day
    statuses: dict[str, float]  # export status text -> weight
    encode: Callable[[str], bytes]
    row: Callable[[random.Random, _Order, str], dict[str, str]]  # field -> cell


def _ts(value: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return value.strftime(fmt)


def _jd_row(rng: random.Random, o: _Order, status: str) -> dict[str, str]:
    return {
        "order_id": f"3{o.day:%y%m%d}{o.seq % 10**6:06d}",
        "buyer_pin": jd_pin(o.person),
        "payment": f"{o.amount:.2f}",
        "order_status": status,
        "receiver_name": o.person.name,
        "receiver_mobile": masked_phone(o.person.phone),
        "receiver_address": o.person.address,
        "created": _ts(o.created),
        "pay_time": _ts(o.paid),
        "item_title": o.title,
        "item_quantity": str(o.qty),
    }


def _douyin_row(rng: random.Random, o: _Order, status: str) -> dict[str, str]:
    traffic = rng.choices(list(DOUYIN_TRAFFIC), weights=list(DOUYIN_TRAFFIC.values()))[0]
    influencer_id, influencer_name = ("", "") if traffic == "商品卡" else rng.choice(INFLUENCERS)
    after_sale = "售后完成" if status == "已关闭" and rng.random() < 0.5 else "-"
    return {
        "order_id": f"69{o.day:%y%m%d}{o.seq % 10**11:011d}",
        "payment": f"{o.amount:.2f}",
        "order_status": status,
        "receiver_name": o.person.name,
        "receiver_mobile": _douyin_phone(rng, o.person),
        "receiver_address": o.person.address,
        "created": _ts(o.created, "%Y/%m/%d %H:%M:%S"),
        "pay_time": _ts(o.paid, "%Y/%m/%d %H:%M:%S"),
        "item_title": o.title,
        "item_quantity": str(o.qty),
        "influencer_id": influencer_id,
        "influencer_name": influencer_name,
        "traffic_source": traffic,
        "after_sale_status": after_sale,
    }


def _pdd_row(rng: random.Random, o: _Order, status: str) -> dict[str, str]:
    # Pinduoduo shows amounts without trailing zeros (17.8, 59.9, 398).
    paid = f"{o.amount:.2f}".rstrip("0").rstrip(".")
    received = f"{o.amount * 0.994:.2f}"  # minus the 0.6% payment fee
    return {
        "order_id": f"{o.day:%y%m%d}-{o.seq % 10**15:015d}",
        "payment": paid,
        "merchant_received": received,
        "order_status": status,
        "receiver_name": o.person.name,
        "receiver_mobile": masked_phone(o.person.phone),
        "receiver_address": o.person.address,
        "created": _ts(o.paid),  # 订单成交时间: the group order succeeded, after payment
        "pay_time": _ts(o.paid),
        "item_title": o.title,
        "item_quantity": str(o.qty),
        "after_sale_status": "退款成功" if "退款成功" in status else "无售后或售后取消",
    }


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
        encode=lambda text: text.encode("gbk"),
        row=_jd_row,
    ),
    "douyin": _Platform(
        buy_rate=0.025,
        statuses={"已完成": 0.66, "已发货": 0.14, "待发货": 0.10, "已关闭": 0.10},
        encode=lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),
        row=_douyin_row,
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
        encode=lambda text: text.encode("utf-8"),
        row=_pdd_row,
    ),
}


def write_platform_orders(
    out: Path,
    platform: str,
    day: date,
    people: list[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
) -> tuple[int, int, list[tuple[str, str, str]]]:
    """Write one day's order export of `platform`; (orders written, bad lines, truth rows).

    Truth rows are (source, order_id, person_id), spoiled lines included. Order ids use
    ``seq_start + n``: pass a running counter so ids stay unique across days and calls.
    """
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; expected one of {sorted(PLATFORMS)}")
    shape = PLATFORMS[platform]
    spec = get_spec(f"{platform}.orders")
    fields = [c.field for c in spec.columns]
    index = {f: i for i, f in enumerate(fields)}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.header for c in spec.columns])
    truth: list[tuple[str, str, str]] = []
    orders = bad = 0
    for person in people:
        if rng.random() >= shape.buy_rate:
            continue
        _sku, title, price = rng.choice(PRODUCTS)
        qty = rng.choice((1, 1, 1, 2, 3))
        created = datetime.combine(day, datetime.min.time()) + timedelta(
            seconds=rng.randrange(86_400)
        )
        order = _Order(
            day=day,
            seq=seq_start + orders,
            person=person,
            title=title,
            qty=qty,
            amount=round(price * qty, 2),
            created=created,
            paid=created + timedelta(minutes=rng.randrange(1, 30)),
        )
        status = rng.choices(list(shape.statuses), weights=list(shape.statuses.values()))[0]
        cells = shape.row(rng, order, status)
        row = [cells[f] for f in fields]
        order_id = cells["order_id"]
        if rng.random() < bad_rate:
            row = spoil(rng, row, index["payment"], index["order_status"], index["order_id"])
            bad += 1
        writer.writerow(row)
        truth.append((spec.source, order_id, person.person_id))
        orders += 1
    folder = out / spec.source / spec.dataset / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"orders_{day:%Y%m%d}.csv").write_bytes(shape.encode(buf.getvalue()))
    return orders, bad, truth
