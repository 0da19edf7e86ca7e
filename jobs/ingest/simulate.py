"""A small simulated commerce world with ground truth, written in the platforms' own export shapes.

Deterministic for a seed. Writes landing files the connectors read
(``{out}/{source}/{dataset}/dt=YYYY-MM-DD/...``), browse/cart events for the streaming job, and a
separate ``_truth/`` folder (the real person behind every record) that only evaluation may read.
Messy on purpose, at a configurable rate: masked and full-width phones, junk numbers, GBK files,
malformed lines, bad amounts, unknown statuses, missing ids.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from jobs.ingest.spec import get_spec

TMALL_STATUSES = {
    "交易成功": 0.70,
    "卖家已发货，等待买家确认": 0.12,
    "买家已付款，等待卖家发货": 0.10,
    "交易关闭": 0.08,
}
PRODUCTS = [
    ("P1001", "保湿精华液 30ml", 199.0),
    ("P1002", "氨基酸洁面乳 120g", 89.0),
    ("P1003", "防晒霜 SPF50+ 50ml", 139.0),
    ("P1004", "玻尿酸面膜 10片装", 129.0),
    ("P1005", "修护眼霜 15g", 259.0),
    ("P1006", "旅行套装", 59.9),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
CITIES = [
    "上海市浦东新区",
    "北京市朝阳区",
    "广东省深圳市南山区",
    "浙江省杭州市西湖区",
    "四川省成都市武侯区",
]


@dataclass(frozen=True)
class Person:
    person_id: str
    phone: str
    open_uid: str
    name: str
    address: str
    shares_phone: bool


@dataclass(frozen=True)
class SimulationSummary:
    out: Path
    customers: int
    days: int
    start: date
    end: date
    files: int
    records: dict[str, int]  # source dataset key ("tmall.orders", ...) -> records written
    bad_lines: int
    events: int  # the streaming job's cart/pay events (web/events/events.jsonl)

    @property
    def orders(self) -> int:
        return sum(n for key, n in self.records.items() if key.endswith(".orders"))


def _people(rng: random.Random, n: int) -> list[Person]:
    people, phones = [], set()
    while len(people) < n:
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        if phone in phones:
            continue
        phones.add(phone)
        uid = "AAG" + "".join(rng.choices(string.ascii_letters + string.digits, k=21))
        people.append(
            Person(
                person_id=f"P{len(people) + 1:06d}",
                phone=phone,
                open_uid=uid,
                name=rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
                address=f"{rng.choice(CITIES)}{rng.randrange(1, 999)}号",
                shares_phone=rng.random() < 0.55,
            )
        )
    return people


def daily_sample(people: Sequence[Person], rng: random.Random, rate: float) -> list[Person]:
    """The people who act on one day, each with probability `rate`, in people order.

    Draws the count (binomial; normal approximation for large worlds) and then that many people,
    so a day costs what it writes, not the size of the world (the benchmark world has 1M people).
    """
    n = len(people)
    if n == 0 or rate <= 0:
        return []
    mean = n * min(rate, 1.0)
    if n <= 1000:
        k = sum(rng.random() < rate for _ in range(n))
    else:
        k = round(rng.gauss(mean, math.sqrt(mean * (1 - min(rate, 1.0)))))
    k = max(0, min(n, k))
    return [people[i] for i in sorted(rng.sample(range(n), k))]


def _shown_phone(rng: random.Random, person: Person) -> str:
    """How the export shows the buyer's phone: masked unless shared, sometimes full-width."""
    if not person.shares_phone:
        return f"{person.phone[:3]}****{person.phone[-4:]}"
    roll = rng.random()
    if roll < 0.05:
        return person.phone.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    if roll < 0.10:
        return f"+86 {person.phone[:3]}-{person.phone[3:7]}-{person.phone[7:]}"
    return person.phone


def _spoil(rng: random.Random, row: list[str]) -> list[str]:
    """One of the bad-input classes the connector must quarantine with a reason."""
    from jobs.ingest.simulate_platforms import spoil

    return spoil(rng, row, amount_index=2, status_index=3, id_index=0)


def simulate(
    out: Path,
    *,
    customers: int = 1000,
    days: int = 3,
    seed: int = 7,
    end: date | None = None,
    bad_rate: float = 0.01,
    orders_per_customer_day: float = 0.05,
) -> SimulationSummary:
    rng = random.Random(seed)
    end = end or (date.today() - timedelta(days=1))
    start = end - timedelta(days=days - 1)
    people = _people(rng, customers)
    spec = get_spec("tmall.orders")
    headers = [c.header for c in spec.columns]
    truth_rows: list[tuple[str, str, str]] = []
    events: list[dict] = []
    files = bad = 0
    records = {"tmall.orders": 0}
    order_seq = 0

    for offset in range(days):
        day = start + timedelta(days=offset)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(headers)
        for person in people:
            if rng.random() >= orders_per_customer_day:
                continue
            order_seq += 1
            order_id = f"{day:%Y%m%d}{seed % 100:02d}{order_seq:08d}"
            sku, title, price = rng.choice(PRODUCTS)
            qty = rng.choice((1, 1, 1, 2, 3))
            created = datetime.combine(day, datetime.min.time()) + timedelta(
                seconds=rng.randrange(86_400)
            )
            status = rng.choices(list(TMALL_STATUSES), weights=list(TMALL_STATUSES.values()))[0]
            refund = f"{price * qty:.2f}" if status == "交易关闭" and rng.random() < 0.6 else "0.00"
            row = [
                order_id,
                person.open_uid,
                f"{price * qty:.2f}",
                status,
                person.name,
                _shown_phone(rng, person),
                person.address,
                created.strftime("%Y-%m-%d %H:%M:%S"),
                (created + timedelta(minutes=rng.randrange(1, 30))).strftime("%Y-%m-%d %H:%M:%S"),
                title,
                str(qty),
                refund,
            ]
            if rng.random() < bad_rate:
                row = _spoil(rng, row)
                bad += 1
            writer.writerow(row)
            truth_rows.append(("tmall", order_id, person.person_id))
            records["tmall.orders"] += 1
            cart_ts = created - timedelta(minutes=rng.randrange(2, 90))
            events.append(_event(rng, "add_to_cart", person, cart_ts, sku))
            events.append(_event(rng, "order_paid", person, created, sku))
        # Carts never paid for: the streaming job's cart-abandonment trigger.
        for person in rng.sample(people, k=max(1, len(people) // 50)):
            ts = datetime.combine(day, datetime.min.time()) + timedelta(
                seconds=rng.randrange(86_400)
            )
            events.append(_event(rng, "add_to_cart", person, ts, rng.choice(PRODUCTS)[0]))
        folder = out / spec.source / spec.dataset / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        text = buf.getvalue()
        # Seller center hands out GBK on some days and UTF-8 with a BOM on others.
        data = text.encode("gbk") if offset % 2 == 0 else b"\xef\xbb\xbf" + text.encode("utf-8")
        (folder / f"orders_{day:%Y%m%d}.csv").write_bytes(data)
        files += 1
        for key, writer in _writers().items():
            # One random stream per dataset and day: adding a dataset never changes the others.
            platform = key.split(".")[0] if key.endswith(".orders") else key
            n, spoiled, rows = writer(
                out,
                day,
                people,
                random.Random(f"{seed}:{platform}:{day}"),
                bad_rate=bad_rate,
                seq_start=order_seq,
            )
            order_seq += n
            records[key] = records.get(key, 0) + n
            bad += spoiled
            files += 1
            truth_rows.extend(rows)

    truth = out / "_truth"
    truth.mkdir(parents=True, exist_ok=True)
    with (truth / "records.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "record_id", "person_id"])
        w.writerows(truth_rows)
    with (truth / "people.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["person_id", "phone", "tmall_open_uid"])
        w.writerows((p.person_id, p.phone, p.open_uid) for p in people)
    events.sort(key=lambda e: e["ts"])
    ev_dir = out / "web" / "events"
    ev_dir.mkdir(parents=True, exist_ok=True)
    with (ev_dir / "events.jsonl").open("w", encoding="utf-8") as fh:
        for e in events:
            fh.write(json.dumps(e, ensure_ascii=False) + "\n")
    return SimulationSummary(out, customers, days, start, end, files, records, bad, len(events))


def _writers() -> dict:
    """Every dataset written per day besides Tmall orders, by source dataset key.

    A writer is ``(out, day, people, rng, *, bad_rate, seq_start) -> (records, spoiled lines,
    ground-truth rows)``; it writes its landing file(s) for `day` under `out` and returns ground
    truth as (source, record_id, person_id) rows. `seq_start` keeps order ids unique across writers.
    """
    from functools import partial

    from jobs.ingest.simulate_platforms import PLATFORMS, write_platform_orders
    from jobs.ingest.simulate_youzan import write_youzan_orders

    def platform_writer(platform: str):
        return lambda out, day, people, rng, **kw: write_platform_orders(
            out, platform, day, people, rng, **kw
        )

    writers = {f"{p}.orders": platform_writer(p) for p in PLATFORMS}
    return {**writers, "youzan.orders": partial(write_youzan_orders, products=PRODUCTS)}


def _event(rng: random.Random, kind: str, person: Person, ts: datetime, sku: str) -> dict:
    return {
        "event_id": f"e{rng.getrandbits(64):016x}",
        "event_type": kind,
        "customer_key": f"member:{person.person_id}",
        "product_id": sku,
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
    }
