"""The mess brands' exports really carry, as rates (`Mess`) and as pure functions.

Test orders, 刷单 rings, re-synced and late orders, address and name variants, full-width digits,
junk ids, a column that appears mid-period. `MessBook` is one run's mess: the rates, the day, and
the re-syncs waiting for a later day. Every record that carries a class is flagged in truth.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

from jobs.common.errors import CdpError
from jobs.common.yamlio import load_yaml
from jobs.simulator import ids
from jobs.simulator.rand import round_random
from jobs.simulator.world import REGIONS, STREETS, SURNAMES, Person

# Characters typed for one another (same or near pinyin); every one is in GBK.
HOMOPHONES = {
    "伟": "玮", "芳": "方", "娜": "那", "秀": "绣", "英": "莹", "敏": "民", "静": "婧",
    "丽": "莉", "强": "蔷", "磊": "垒", "军": "君", "洋": "阳", "勇": "永", "艳": "燕",
    "杰": "洁", "娟": "鹃", "涛": "滔", "明": "鸣", "超": "潮", "兰": "蓝", "霞": "侠",
    "平": "萍", "刚": "钢", "桂": "贵", "王": "汪", "张": "章", "刘": "柳", "陈": "程",
    "黄": "皇", "徐": "许", "林": "琳", "周": "舟", "吴": "武", "胡": "湖", "玲": "苓",
    "婷": "亭", "雪": "学", "慧": "惠", "颖": "影", "辉": "晖", "鹏": "朋", "华": "桦",
    "飞": "菲", "斌": "彬", "宇": "雨",
}  # fmt: skip
JUNK_PHONES = ids.JUNK_PHONES
JUNK_EMAIL = "test@test.com"
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


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
    household_rate: float = 0.06  # of pairs of people living together (one address)
    gift_rate: float = 0.03  # orders sent to someone else (receiver ≠ buyer)
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


def to_fullwidth(text: str) -> str:
    return text.translate(_FULLWIDTH)


def address_variant(rng: random.Random, address: str) -> str:
    """The same address as another form or person would type it (never the same string)."""
    kind = rng.randrange(5)
    if kind == 0:  # 上海市浦东新区 -> 上海浦东新区: no 省/市
        variant = re.sub("[省市]", "", address)
    elif kind == 1:  # 浦东新区 -> 浦东, 朝阳区 -> 朝阳
        variant = re.sub("(新区|区)", "", address, count=1)
    elif kind == 2:  # spaces between the parts, sometimes two
        variant = re.sub("(省|市|区)", lambda m: m.group(1) + rng.choice((" ", "  ")), address)
    elif kind == 3:  # the building and room written another way: 14栋2单元2204室 -> 14-2-2204
        variant = re.sub(r"(\d+)栋(\d+)单元(\d+)室", r"\1-\2-\3", address)
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


@dataclass(frozen=True)
class Shown:
    """A person as one record shows them (after typos, variants, junk or full-width phones)."""

    name: str
    address: str
    phone: str


@dataclass(frozen=True)
class Account:
    """A buyer account that is not one of the world's customers: a 刷单 ring's account (its own
    person in truth, never a real customer) or the shop's own test account.

    It carries the same platform ids as a `Person`, drawn from its key."""

    person_id: str
    seed: int
    name: str
    phone: str
    address: str
    device: str

    def tmall_open_uid(self, app_key: str = "") -> str:
        from jobs.simulator.world import BRAND_TOP_APP_KEY

        return ids.tmall_open_uid(self.seed, app_key or BRAND_TOP_APP_KEY, self.person_id)

    @property
    def tmall_nick(self) -> str:
        return ids.tmall_nick(self.seed, self.person_id)

    @property
    def jd_pin(self) -> str:
        return ids.jd_pin(self.seed, self.person_id)

    @property
    def douyin_open_id(self) -> str:
        return ids.douyin_open_id(self.seed, self.person_id)

    @property
    def pdd_buyer_id(self) -> str:
        return ids.pdd_buyer_id(self.seed, self.person_id)

    @property
    def yz_open_id(self) -> str:
        return ids.yz_open_id(self.seed, self.person_id)

    @property
    def youzan_fans_id(self) -> int:
        return ids.youzan_fans_id(self.seed, self.person_id)

    def phone_at(self, at: object) -> str:
        return self.phone


@dataclass(frozen=True)
class FakeRing:
    """A 刷单 ring: accounts run by one operator on one address and device (a new ring per
    platform and week). Its accounts are their own people in truth (`RING-…`)."""

    operator: str
    address: str
    device_id: str
    accounts: tuple[Account, ...]


def fake_ring(seed: int, source: str, day: date, size: int) -> FakeRing:
    """The ring working `source` in `day`'s week (one per platform and week, so it recurs)."""
    week = day.toordinal() // 7
    rng = random.Random(f"{seed}:ring:{source}:{week}")
    operator = f"RING-{source}-{week}"
    province, city, district = rng.choice(REGIONS)
    head = province if province == city else province + city
    street = f"{rng.choice(STREETS)}{rng.randrange(1, 999)}号"
    address = f"{head}{district}{street}{rng.randrange(101, 1999)}室"
    device = ids.device_id(seed, "app", operator, 0)
    accounts = tuple(
        Account(
            person_id=f"{operator}-{k:02d}",
            seed=seed,
            name=rng.choice(SURNAMES) + rng.choice("伟芳娜敏静丽强磊"),
            phone=ids.burner_phone(seed, f"{operator}-{k:02d}"),
            address=address,
            device=device,
        )
        for k in range(max(1, size))
    )
    return FakeRing(operator, address, device, accounts)


def test_account(seed: int, source: str) -> Account:
    """The shop's own staff account that places 0-yuan test orders (no customer behind it)."""
    return Account(f"TEST-{source}", seed, "测试", "13800138000", "浙江省杭州市余杭区测试路1号", "")


TEST_TITLE = "测试商品 请勿发货"
TMALL_NEW_COLUMN = (
    "店铺名称",
    "花漾官方旗舰店",
)  # our choice of the column that appears mid-period


def day_start(day: date) -> datetime:
    return datetime.combine(day, time())


class MessBook:
    """One simulation run's mess: the rates, the day, and the re-syncs waiting for a later day.

    Pending re-syncs are held only until their day (at most `resync_max_days`), so memory stays
    bounded by a few days' share.
    """

    def __init__(self, rates: Mess | None = None, seed: int = 0):
        self.rates = Mess() if rates is None else rates
        self.seed = seed
        self.day_index = 0
        self._pending: dict[tuple[str, date], list] = {}
        self._rings_seen: set[str] = set()

    @property
    def new_column(self) -> bool:
        start = self.rates.new_column_day
        return start is not None and self.day_index >= start

    def disguise(
        self, rng: random.Random, person: Person | Account, at: datetime, *, full_phone: bool = True
    ) -> tuple[Shown, list[str]]:
        """The person as this record shows them (typo, address variant, junk or full-width phone).

        `full_phone=False` for platforms that mask the phone (a full-width mask is not a phone).
        """
        r, flags = self.rates, []
        name, address, phone = person.name, person.address, person.phone_at(at)
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
        flags.extend(person_flags(person))
        return Shown(name, address, phone), flags

    def gift(self, rng: random.Random) -> bool:
        return rng.random() < self.rates.gift_rate

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
            round_random(rng, real * self.rates.test_order_rate),
            round_random(rng, real * self.rates.fake_order_rate),
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
        due = day + timedelta(days=rng.randint(1, max(1, self.rates.resync_max_days)))
        return due, rng.choice(choices)

    def defer(self, source: str, due: date, item: object) -> None:
        self._pending.setdefault((source, due), []).append(item)

    def take(self, source: str, day: date) -> list:
        """The re-syncs due in `day`'s file (removed from the book)."""
        return self._pending.pop((source, day), [])

    @property
    def pending(self) -> int:
        return sum(len(v) for v in self._pending.values())


def person_flags(person: Person | Account) -> list[str]:
    """The adversarial truths a person brings to any record of theirs."""
    if isinstance(person, Account):
        return []
    flags = []
    if person.household_id:
        flags.append("household")
    if person.shares_household_phone:
        flags.append("household_phone")
    if person.recycled_number:
        flags.append("recycled_number")
    if person.is_namesake:
        flags.append("namesake")
    return flags
