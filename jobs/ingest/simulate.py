"""A simulated commerce world with ground truth, written in the platforms' own export shapes.

Later stages (silver dedup, One-ID, fraud filters) can only be measured against a world whose
truth is known, and only trusted if that world is as messy as a brand's real exports: test
orders, 刷单 rings, re-synced and late orders, address and name variants, full-width digits, junk
ids, household phones, a column that appears mid-period, malformed lines. `Mess` holds the rates;
`_truth/records.csv` flags every record that carries one of them.

Deterministic for a seed, and bounded in memory so the benchmark world (1M people) runs on a
laptop: people are built from their index on demand (`People`), a day's actors are drawn with
`daily_sample`, and every file, ground truth included, is streamed as it is produced.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import math
import random
import re
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import overload

from jobs.common.errors import CdpError
from jobs.common.yamlio import load_yaml
from jobs.ingest.spec import get_spec

TMALL_RATE = 0.05  # default Tmall orders per person per day; the other platforms scale with it
TMALL_STATUSES = {
    "交易成功": 0.70,
    "卖家已发货，等待买家确认": 0.12,
    "买家已付款，等待卖家发货": 0.10,
    "交易关闭": 0.08,
}
# How a Tmall order's status can move on by a later export (re-sync); 交易关闭 carries a refund.
TMALL_NEXT = {
    "买家已付款，等待卖家发货": ("卖家已发货，等待买家确认", "交易关闭"),
    "卖家已发货，等待买家确认": ("交易成功", "交易成功", "交易关闭"),
    "交易成功": ("交易关闭",),
}
TMALL_NEW_COLUMN = (
    "店铺名称",
    "花漾官方旗舰店",
)  # our choice of the column that appears mid-period
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
STREETS = ["世纪大道", "建国路", "科技园路", "文三路", "人民南路", "中山路", "解放路"]
# Characters typed for one another (same or near pinyin); every one is in GBK.
HOMOPHONES = {
    "伟": "玮", "芳": "方", "娜": "那", "秀": "绣", "英": "莹", "敏": "民", "静": "婧",
    "丽": "莉", "强": "蔷", "磊": "垒", "军": "君", "洋": "阳", "勇": "永", "艳": "燕",
    "杰": "洁", "娟": "鹃", "涛": "滔", "明": "鸣", "超": "潮", "兰": "蓝", "霞": "侠",
    "平": "萍", "刚": "钢", "桂": "贵", "王": "汪", "张": "章", "刘": "柳", "陈": "程",
    "黄": "皇", "徐": "许", "林": "琳", "周": "舟", "吴": "武", "胡": "湖",
}  # fmt: skip
JUNK_PHONES = ("13800138000", "00000000000", "11111111111")
JUNK_EMAIL = (
    "test@test.com"  # for contact fields (member and WeCom sources); order exports have none
)
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@dataclass(frozen=True)
class Person:
    person_id: str
    phone: str
    open_uid: str
    name: str
    address: str
    shares_phone: bool
    household_id: str = ""  # set for the two people of a household who share one phone


@dataclass(frozen=True)
class Mess:
    """Rates of the mess the simulated platforms hand over (each a share of a day's orders).

    All configurable (`cdp simulate --mess FILE.yaml` or options); `Mess.none()` is a clean world.
    Bad lines (quarantined) are separate: `simulate(bad_rate=...)`.
    """

    test_order_rate: float = 0.005  # 0-yuan test orders by the shop's own staff account
    fake_order_rate: float = 0.01  # 刷单: a ring of accounts on one address/device, tiny amounts
    fake_ring_size: int = 6  # accounts in a ring (a new ring per platform every week)
    resync_rate: float = 0.05  # of orders whose status can still move: exported again later
    resync_max_days: int = 3  # a re-sync lands 1..N days after the first export
    late_rate: float = 0.02  # created 1..late_max_days before the file's day
    late_max_days: int = 7
    address_variant_rate: float = 0.15  # 上海市浦东新区 vs 上海浦东新区 vs 上海浦东, spaces, ０-９
    name_typo_rate: float = 0.02  # a homophone (伟/玮) or two swapped characters
    fullwidth_rate: float = 0.02  # full-width digits in a full phone, and separately in an amount
    junk_id_rate: float = 0.01  # 13800138000, 00000000000, 11111111111 as the buyer's phone
    household_rate: float = 0.04  # of pairs of people living together and sharing one phone
    new_column_day: int | None = 2  # from this day index on, Tmall's export gains 店铺名称

    @classmethod
    def none(cls) -> Mess:
        zero = {f.name: 0.0 for f in fields(cls) if f.name.endswith("_rate")}
        return cls(**zero, new_column_day=None)

    @classmethod
    def from_yaml(cls, path: Path) -> Mess:
        """Rates from a YAML mapping (missing keys keep their defaults)."""
        raw = load_yaml(Path(path)) or {}
        known = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or set(raw) - known:
            unknown = sorted(set(raw) - known) if isinstance(raw, dict) else raw
            raise CdpError(f"{path}: unknown mess setting(s) {unknown}; known: {sorted(known)}")
        return replace(cls(), **raw)


# --- the people ----------------------------------------------------------------------------


class People(Sequence[Person]):
    """Every person of the world, built from the seed and an index on demand (never all held).

    Phones are unique (an affine map of the index), except that the two people of a household
    (person numbers 2k and 2k+1, chosen with `household_rate`) share one phone and address.
    """

    _STEP = 7_654_321  # coprime with 10**9: index -> 9-digit phone suffix is one-to-one

    def __init__(self, n: int, seed: int, household_rate: float = 0.0):
        if n > 10**9:
            raise ValueError("at most 10**9 people")
        self._n, self._seed, self._household_rate = n, seed, household_rate
        self._offset = random.Random(f"{seed}:phones").randrange(10**9)

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> Person: ...
    @overload
    def __getitem__(self, index: slice) -> list[Person]: ...
    def __getitem__(self, index: int | slice) -> Person | list[Person]:
        if isinstance(index, slice):
            return [self._person(i) for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(f"person index {index} out of range 0..{self._n - 1}")
        return self._person(index)

    def __iter__(self) -> Iterator[Person]:
        return (self._person(i) for i in range(self._n))

    def household(self, number: int) -> str:
        """The household id of person number `number` (1-based), or ''."""
        k = number // 2
        if k == 0 or 2 * k + 1 > self._n or self._household_rate <= 0:
            return ""
        draw = int.from_bytes(_draws(self._seed, "household", k)[:8], "big") / 2**64
        return f"H{k:07d}" if draw < self._household_rate else ""

    def _base(self, i: int) -> tuple[str, str, bytes]:
        # A keyed hash, not a seeded Random per person: ten times cheaper, as deterministic.
        b = _draws(self._seed, "person", i)
        suffix = (i * self._STEP + self._offset) % 10**9
        phone = f"1{'3456789'[b[0] % 7]}{suffix:09d}"
        if phone in JUNK_PHONES:
            phone = f"19{suffix:09d}"
        number = 1 + int.from_bytes(b[3:5], "big") % 998
        address = f"{CITIES[b[1] % len(CITIES)]}{STREETS[b[2] % len(STREETS)]}{number}号"
        return phone, address, b

    def _person(self, i: int) -> Person:
        phone, address, b = self._base(i)
        given = GIVEN[b[28] % len(GIVEN)] + (GIVEN[b[29] % len(GIVEN)] if b[27] % 2 else "")
        person = Person(
            person_id=f"P{i + 1:06d}",
            phone=phone,
            open_uid="AAG" + "".join(_UID_CHARS[x % len(_UID_CHARS)] for x in b[5:26]),
            name=SURNAMES[b[26] % len(SURNAMES)] + given,
            address=address,
            shares_phone=int.from_bytes(b[30:32], "big") / 65536 < 0.55,
        )
        household = self.household(i + 1)
        if not household:
            return person
        if (i + 1) % 2:  # the second member takes the first's phone and address
            phone, address, _b = self._base(i - 1)
        return replace(person, phone=phone, address=address, household_id=household)


def _draws(seed: int, salt: str, i: int) -> bytes:
    """64 pseudo-random bytes for (seed, salt, i)."""
    return hashlib.blake2b(f"{seed}:{salt}:{i}".encode(), digest_size=64).digest()


_UID_CHARS = string.ascii_letters + string.digits


def _people(rng: random.Random, n: int, household_rate: float = 0.0) -> People:
    return People(n, rng.getrandbits(32), household_rate)


# The writer contract of `_writers()`: (records written, spoiled lines, ground-truth rows of
# (source, record_id, person_id)).
Truth = list[tuple[str, str, str]]
WriterResult = tuple[int, int, Truth]


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


# --- the mess, as pure functions -----------------------------------------------------------


def to_fullwidth(text: str) -> str:
    return text.translate(_FULLWIDTH)


def address_variant(rng: random.Random, address: str) -> str:
    """The same address as another form or person would type it (never the same string)."""
    kind = rng.randrange(4)
    if kind == 0:  # 上海市浦东新区 -> 上海浦东新区: no 省/市
        variant = re.sub("[省市]", "", address)
    elif kind == 1:  # 浦东新区 -> 浦东, 朝阳区 -> 朝阳
        variant = re.sub("(新区|区)", "", address, count=1)
    elif kind == 2:  # spaces between the parts, sometimes two
        variant = re.sub("(省|市|区)", lambda m: m.group(1) + rng.choice((" ", "  ")), address)
    else:
        variant = to_fullwidth(address)
    return variant if variant != address else f" {address} "


def name_typo(rng: random.Random, name: str) -> str:
    """A homophone for one character, else two swapped characters (never the same string)."""
    spots = [i for i, ch in enumerate(name) if ch in HOMOPHONES]
    if spots and (len(name) < 3 or rng.random() < 0.8):
        i = rng.choice(spots)
        return name[:i] + HOMOPHONES[name[i]] + name[i + 1 :]
    swapped = name[0] + name[-1:0:-1] if len(name) >= 3 else name[::-1]
    return swapped if swapped != name else name + name[-1]


def _round(rng: random.Random, x: float) -> int:
    """x rounded up or down at random, so small expected counts still add up over days."""
    return int(x) + (rng.random() < x - int(x))


TEST_BUYER = Person(
    person_id="",  # the shop's own staff account: no customer behind it
    phone="13800138000",
    open_uid="AAGtestbuyer00000000shop",
    name="测试",
    address="浙江省杭州市余杭区测试路1号",
    shares_phone=True,
)
TEST_TITLE = "测试商品 请勿发货"


@dataclass(frozen=True)
class FakeRing:
    """A 刷单 ring: accounts run by one operator (truth: `operator`) on one address and device."""

    operator: str
    address: str
    device_id: str
    accounts: tuple[Person, ...]


def fake_ring(seed: int, source: str, day: date, size: int) -> FakeRing:
    """The ring working `source` in `day`'s week (one per platform and week, so it recurs)."""
    week = day.toordinal() // 7
    rng = random.Random(f"{seed}:ring:{source}:{week}")
    operator = f"RING-{source}-{week}"
    street = f"{rng.choice(STREETS)}{rng.randrange(1, 999)}号"
    address = f"{rng.choice(CITIES)}{street}{rng.randrange(101, 1999)}室"
    accounts = tuple(
        Person(
            person_id=operator,
            phone=f"{rng.choice(('170', '171', '165'))}{rng.randrange(10**8):08d}",
            open_uid="AAG" + "".join(rng.choices(string.ascii_letters + string.digits, k=21)),
            name=rng.choice(SURNAMES) + rng.choice(GIVEN),
            address=address,
            shares_phone=True,
        )
        for _ in range(max(1, size))
    )
    return FakeRing(operator, address, hashlib.sha1(operator.encode()).hexdigest()[:16], accounts)


class MessBook:
    """One simulation run's mess: the rates, the day, and the re-syncs waiting for a later day.

    Writers get it as ``mess=`` (when their signature accepts it). Pending re-syncs are held only
    until their day (at most `resync_max_days`), so memory stays bounded by a few days' share.
    """

    def __init__(self, rates: Mess | None = None, seed: int = 0):
        self.rates = Mess() if rates is None else rates
        self.seed = seed
        self.day_index = 0
        self._pending: dict[tuple[str, date], list] = {}

    @property
    def new_column(self) -> bool:
        start = self.rates.new_column_day
        return start is not None and self.day_index >= start

    def disguise(
        self, rng: random.Random, person: Person, *, full_phone: bool = True
    ) -> tuple[Person, list[str]]:
        """The person as this record shows them (typo, address variant, junk or full-width phone).

        `full_phone=False` for platforms that mask the phone (a full-width mask is not a phone).
        """
        r, flags = self.rates, []
        name, address, phone = person.name, person.address, person.phone
        if rng.random() < r.name_typo_rate:
            name = name_typo(rng, name)
            flags.append("name_typo")
        if rng.random() < r.address_variant_rate:
            address = address_variant(rng, address)
            flags.append("address_variant")
        if rng.random() < r.junk_id_rate:
            # Masked, 00000000000 would read 000****0000: not a phone any export shows.
            phone = rng.choice(JUNK_PHONES if full_phone else JUNK_PHONES[::2])
            flags.append("junk_id")
        elif full_phone and rng.random() < r.fullwidth_rate:
            phone = to_fullwidth(phone)
            flags.append("fullwidth_phone")
        if person.household_id:
            flags.append("household")
        return replace(person, name=name, address=address, phone=phone), flags

    def amount(self, rng: random.Random, text: str) -> tuple[str, list[str]]:
        if rng.random() < self.rates.fullwidth_rate:
            return to_fullwidth(text), ["fullwidth_amount"]
        return text, []

    def created(self, rng: random.Random, day: date) -> tuple[datetime, list[str]]:
        """When an order in `day`'s file was created: that day, or (late) up to N days before."""
        late = rng.random() < self.rates.late_rate and self.rates.late_max_days > 0
        back = rng.randint(1, self.rates.late_max_days) if late else 0
        start = day_start(day - timedelta(days=back))
        return start + timedelta(seconds=rng.randrange(86_400)), (["late"] if late else [])

    def extra_orders(self, rng: random.Random, real: int) -> tuple[int, int]:
        """(test orders, fake orders) to add to a day with `real` genuine orders."""
        return (
            _round(rng, real * self.rates.test_order_rate),
            _round(rng, real * self.rates.fake_order_rate),
        )

    def ring(self, source: str, day: date) -> FakeRing:
        return fake_ring(self.seed, source, day, self.rates.fake_ring_size)

    def resync(
        self, rng: random.Random, day: date, status: str, next_statuses: dict[str, tuple[str, ...]]
    ) -> tuple[date, str] | None:
        """(day, new status) of this order's next export, if it will be exported again."""
        choices = next_statuses.get(status)
        if not choices or rng.random() >= self.rates.resync_rate:
            return None
        return day + timedelta(days=rng.randint(1, max(1, self.rates.resync_max_days))), rng.choice(
            choices
        )

    def defer(self, source: str, due: date, item: object) -> None:
        self._pending.setdefault((source, due), []).append(item)

    def take(self, source: str, day: date) -> list:
        """The re-syncs due in `day`'s file (removed from the book)."""
        return self._pending.pop((source, day), [])

    @property
    def pending(self) -> int:
        return sum(len(v) for v in self._pending.values())


# --- the Tmall export and the run ----------------------------------------------------------


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
    flags: dict[str, int] = field(default_factory=dict)  # mess class -> records flagged in truth

    @property
    def orders(self) -> int:
        return sum(n for key, n in self.records.items() if key.endswith(".orders"))


def _shown_phone(rng: random.Random, person: Person) -> str:
    """How the export shows the buyer's phone: masked unless shared, sometimes reformatted."""
    if not person.shares_phone:
        return f"{person.phone[:3]}****{person.phone[-4:]}"
    if rng.random() < 0.05:
        return f"+86 {person.phone[:3]}-{person.phone[3:7]}-{person.phone[7:]}"
    return person.phone


def export_ts(value: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A time as the exports show it (Asia/Shanghai wall time, to the second)."""
    return value.strftime(fmt)


def day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def day_folder(out: Path, source: str, dataset: str, day: date) -> Path:
    """The day's landing folder of a dataset (created): ``{out}/{source}/{dataset}/dt=DAY``."""
    folder = out / source / dataset / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_tmall_orders(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    mess: MessBook | None = None,
    rate: float = TMALL_RATE,
    seed: int = 7,
    events: list[dict] | None = None,
) -> tuple[int, int, list[tuple[str, str, str, str]]]:
    """One day's Tmall seller-center export (GBK on even days, else UTF-8 with a BOM).

    Returns (lines written, spoiled lines, truth rows (source, order_id, person_id, flags)).
    Genuine orders append their cart and payment events to `events`.
    """
    from jobs.ingest.simulate_platforms import spoil

    book = mess or MessBook(Mess.none())
    spec = get_spec("tmall.orders")
    headers = [c.header for c in spec.columns]
    fields_ = [c.field for c in spec.columns]
    if book.new_column:
        headers.insert(2, TMALL_NEW_COLUMN[0])
        fields_.insert(2, "_new_column")
    index = {f: i for i, f in enumerate(fields_)}
    folder = day_folder(out, spec.source, spec.dataset, day)
    # Seller center hands out GBK on some days and UTF-8 with a BOM on others.
    encoding = "gbk" if day.toordinal() % 2 == 0 else "utf-8-sig"
    truth: list[tuple[str, str, str, str]] = []
    seq, bad = seq_start, 0
    with (folder / f"orders_{day:%Y%m%d}.csv").open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(headers)

        def emit(cells: dict[str, str], person_id: str, flags: list[str], spoilable: bool) -> None:
            nonlocal bad
            cells = {**cells, "_new_column": TMALL_NEW_COLUMN[1]}
            row = [cells[f] for f in fields_]
            if spoilable and rng.random() < bad_rate:
                row = spoil(rng, row, index["payment"], index["order_status"], index["order_id"])
                bad += 1
                flags = [*flags, "spoiled"]
            writer.writerow(row)
            truth.append(("tmall", cells["order_id"], person_id, "|".join(flags)))

        def order(
            person: Person, flags: list[str], *, kind: str = ""
        ) -> tuple[dict[str, str], list[str]]:
            nonlocal seq
            seq += 1
            sku, title, price = rng.choice(PRODUCTS)
            qty = rng.choice((1, 1, 1, 2, 3))
            amount = f"{price * qty:.2f}"
            if kind:  # test and fake orders are placed and paid today, within seconds
                created = day_start(day) + timedelta(seconds=rng.randrange(86_400))
                paid = created + timedelta(seconds=rng.randrange(2, 20))
                qty, amount = 1, "0.00" if kind == "test" else f"{rng.randrange(1, 300) / 100:.2f}"
                title = TEST_TITLE if kind == "test" else title
                status = "交易成功"
            else:
                created, late = book.created(rng, day)
                flags = [*flags, *late]
                paid = created + timedelta(minutes=rng.randrange(1, 30))
                status = rng.choices(list(TMALL_STATUSES), weights=list(TMALL_STATUSES.values()))[0]
                amount, wide = book.amount(rng, amount)
                flags.extend(wide)
            refund = amount if status == "交易关闭" and rng.random() < 0.6 else "0.00"
            cells = {
                "order_id": f"{day:%Y%m%d}{seed % 100:02d}{seq:08d}",
                "buyer_open_uid": person.open_uid,
                "payment": amount,
                "order_status": status,
                "receiver_name": person.name,
                "receiver_mobile": _shown_phone(rng, person),
                "receiver_address": person.address,
                "created": export_ts(created),
                "pay_time": export_ts(paid),
                "item_title": title,
                "item_quantity": str(qty),
                "refund_fee": refund,
            }
            if events is not None and not kind and "late" not in flags:
                cart_ts = created - timedelta(minutes=rng.randrange(2, 90))
                events.append(_event(rng, "add_to_cart", person, cart_ts, sku))
                events.append(_event(rng, "order_paid", person, created, sku))
            return cells, flags

        for cells, person_id in book.take("tmall", day):
            emit(cells, person_id, ["resync"], spoilable=False)
        actors = daily_sample(people, rng, rate)
        for person in actors:
            shown, flags = book.disguise(rng, person, full_phone=person.shares_phone)
            cells, flags = order(shown, flags)
            nxt = book.resync(rng, day, cells["order_status"], TMALL_NEXT)
            emit(cells, person.person_id, flags, spoilable=True)
            if nxt is not None and "spoiled" not in truth[-1][3]:
                status = nxt[1]
                refund = cells["payment"] if status == "交易关闭" else cells["refund_fee"]
                later = {**cells, "order_status": status, "refund_fee": refund}
                book.defer("tmall", nxt[0], (later, person.person_id))
        tests, fakes = book.extra_orders(rng, len(actors))
        for _ in range(tests):
            cells, flags = order(TEST_BUYER, ["test"], kind="test")
            emit(cells, "", flags, spoilable=False)
        ring = book.ring("tmall", day)
        for _ in range(fakes):
            account = rng.choice(ring.accounts)
            cells, flags = order(account, ["fake"], kind="fake")
            emit(cells, ring.operator, flags, spoilable=False)
    return len(truth), bad, truth


def simulate(
    out: Path,
    *,
    customers: int = 1000,
    days: int = 3,
    seed: int = 7,
    end: date | None = None,
    bad_rate: float = 0.01,
    orders_per_customer_day: float = TMALL_RATE,
    mess: Mess | None = None,
    only: set[str] | None = None,
) -> SimulationSummary:
    """Write `days` days ending `end` of a world of `customers` people under `out`.

    `only` limits the datasets written besides Tmall orders (which the detail writers read
    back), e.g. {"web.events"} for a benchmark of one format.

    `orders_per_customer_day` is the Tmall rate; every other order platform keeps its ratio to
    it (at the default 0.05 the five platforms together make ~0.145 orders per person-day; 0.0095
    gives ~10 orders per person per year). `mess=None` uses the demo's `Mess()` rates.
    """
    mess = Mess() if mess is None else mess
    writers = _writers()
    if only is not None and not only <= set(writers):
        raise ValueError(
            f"unknown dataset(s) {sorted(only - set(writers))}: not in {sorted(writers)}"
        )
    rng = random.Random(seed)
    end = end or (date.today() - timedelta(days=1))
    start = end - timedelta(days=days - 1)
    people = People(customers, seed, mess.household_rate)
    book = MessBook(mess, seed)
    volume = orders_per_customer_day / TMALL_RATE
    files = bad = n_events = 0
    records: dict[str, int] = {"tmall.orders": 0}
    flags: dict[str, int] = {}
    order_seq = 0
    truth_dir = out / "_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    ev_dir = out / "web" / "events"
    ev_dir.mkdir(parents=True, exist_ok=True)
    with (
        (truth_dir / "records.csv").open("w", newline="", encoding="utf-8") as truth_fh,
        (ev_dir / "events.jsonl").open("w", encoding="utf-8") as events_fh,
    ):
        truth = csv.writer(truth_fh)
        truth.writerow(["source", "record_id", "person_id", "dt", "flags"])

        def record_truth(rows: Sequence[tuple], day: date) -> None:
            for row in rows:
                row_flags = row[3] if len(row) > 3 else ""
                truth.writerow([row[0], row[1], row[2], day.isoformat(), row_flags])
                for flag in filter(None, row_flags.split("|")):
                    flags[flag] = flags.get(flag, 0) + 1

        for offset in range(days):
            day = start + timedelta(days=offset)
            book.day_index = offset
            events: list[dict] = []
            n, spoiled, rows = write_tmall_orders(
                out,
                day,
                people,
                rng,
                bad_rate=bad_rate,
                seq_start=order_seq,
                mess=book,
                rate=orders_per_customer_day,
                seed=seed,
                events=events,
            )
            order_seq += n
            records["tmall.orders"] += n
            bad += spoiled
            files += 1
            record_truth(rows, day)
            # Carts never paid for: the streaming job's cart-abandonment trigger.
            for person in rng.sample(people, k=max(1, len(people) // 50)):
                ts = day_start(day) + timedelta(seconds=rng.randrange(86_400))
                events.append(_event(rng, "add_to_cart", person, ts, rng.choice(PRODUCTS)[0]))
            for key, writer in writers.items():
                if only is not None and key not in only:
                    continue
                # One random stream per dataset and day: adding a dataset never changes the others.
                platform = key.split(".")[0] if key.endswith(".orders") else key
                n, spoiled, rows = _call_writer(
                    writer,
                    out,
                    day,
                    people,
                    random.Random(f"{seed}:{platform}:{day}"),
                    bad_rate=bad_rate,
                    seq_start=order_seq,
                    optional={"mess": book, "volume": volume},
                )
                if key.endswith(".orders"):  # order ids stay short: only orders advance them
                    order_seq += n
                records[key] = records.get(key, 0) + n
                bad += spoiled
                files += 1
                record_truth(rows, day)
            events.sort(key=lambda e: e["ts"])
            events_fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in events)
            n_events += len(events)

    with (truth_dir / "people.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["person_id", "phone", "tmall_open_uid", "household_id"])
        w.writerows((p.person_id, p.phone, p.open_uid, p.household_id) for p in people)
    return SimulationSummary(
        out, customers, days, start, end, files, records, bad, n_events, dict(sorted(flags.items()))
    )


def _accepted(fn: Callable) -> frozenset[str]:
    """Keyword arguments `fn` names explicitly (a bare **kwargs is not taken as accepting any)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return frozenset(p.name for p in params if p.kind in kinds)


def _call_writer(
    writer: Callable,
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    optional: dict[str, object],
) -> tuple[int, int, list[tuple]]:
    """Call a registry writer, passing each optional keyword (mess, volume) only if it takes it."""
    accepted = _accepted(writer)
    extra = {k: v for k, v in optional.items() if k in accepted}
    return writer(out, day, people, rng, bad_rate=bad_rate, seq_start=seq_start, **extra)


def _writers() -> dict:
    """Every dataset written per day besides Tmall orders, by source dataset key.

    A writer is ``(out, day, people, rng, *, bad_rate, seq_start) -> (records, spoiled lines,
    ground-truth rows)``; it writes its landing file(s) for `day` under `out` and returns ground
    truth as (source, record_id, person_id) rows, optionally with a fourth item, the record's
    mess flags joined by "|". `seq_start` keeps order ids unique across writers. A writer that
    names the keyword `mess` gets the run's `MessBook`, one that names `volume` the order-rate
    multiplier (`orders_per_customer_day` / 0.05).
    """
    from functools import partial

    from jobs.ingest.simulate_commerce import commerce_writers
    from jobs.ingest.simulate_events import event_writers
    from jobs.ingest.simulate_platforms import PLATFORMS, platform_writer
    from jobs.ingest.simulate_youzan import write_youzan_orders

    writers = {f"{p}.orders": platform_writer(p) for p in PLATFORMS}
    return {
        **writers,
        "youzan.orders": partial(write_youzan_orders, products=PRODUCTS),
        **commerce_writers(),
        **event_writers(),
    }


def _event(rng: random.Random, kind: str, person: Person, ts: datetime, sku: str) -> dict:
    return {
        "event_id": f"e{rng.getrandbits(64):016x}",
        "event_type": kind,
        "customer_key": f"member:{person.person_id}",
        "product_id": sku,
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
    }
