"""The people of the simulated world and every identity they carry, over time.

One person model that every writer draws from. A `Person` is rebuilt from its index alone
(`World.person(i)`), so a world of 1M people is never held in memory; every identifier comes
from `jobs.simulator.ids`, drawn on its own per platform.

The availability rules are the platforms' (sources in docs/sources.md):
- WeChat: one unionid per person under the brand's open-platform account; an openid per app
  (each mini-program and the Official Account); the unionid reaches the brand only from apps
  bound to the open platform (`App.bound`, a property of the app, not of the person).
- Phones change over time; a released number is reassigned to a new person after a gap
  (`Person.phones`). Marketplaces show receiver phones masked or as relay numbers; full phones
  reach the brand through membership sign-up (Tmall 会员通, the store, the mini-program) and
  the mini-program's phone authorization, for members and non-members alike.
- One membership scheme: a card issued at sign-up, used by CRM, POS, mini-program and events.
- WeCom: an external_userid per corp for people who add a guide, with the unionid only when
  the corp is bound; the live code's `state` only from a channel that can reach the person
  (a Tmall parcel card only for Tmall buyers, a store poster only for store visitors).

Dated traits (sign-up, phone change, WeCom add and delete, OA follow and unfollow, opt-outs) are
`DatedTrait`s: a share of people, spread evenly over a time span in a shuffled order, so the
people with such an event on a day are found without visiting everyone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from jobs.simulator import ids
from jobs.simulator.rand import Shuffle, below, cached, draws, frac, pick, sample_indexes

# --- the brand's apps, corps, shops and stores --------------------------------------------------


@dataclass(frozen=True)
class App:
    """A WeChat app of the brand; `bound` = bound to the brand's open-platform account, so the
    app gets the person's unionid (jscode2session, user/info) besides its own openid."""

    appid: str
    kind: str  # miniprogram | oa
    name: str
    bound: bool


SHOP_MP = App("wx5f1c2a9b3d7e4f60", "miniprogram", "品牌商城小程序", True)
MEMBER_MP = App("wx8a2d4c6e0b1f3a57", "miniprogram", "会员中心小程序", False)
OA = App("wx2b7e9d40c6a13f58", "oa", "品牌服务号", True)
OA_ORIGINAL_ID = "gh_3a5f7c9e1b2d"
APPS = {a.appid: a for a in (SHOP_MP, MEMBER_MP, OA)}


@dataclass(frozen=True)
class Corp:
    """A WeCom corp; `bound` = it bound a WeChat developer id, so externalcontact/get returns the
    unionid of WeChat contacts (type 1)."""

    corp_id: str
    name: str
    bound: bool


BRAND_CORP = Corp("ww8d3c5e7a1b2f4096", "品牌企业微信", True)
AGENCY_CORP = Corp("wwc41e0b7d9a2f6385", "代运营服务商企业微信", False)
CORPS = {c.corp_id: c for c in (BRAND_CORP, AGENCY_CORP)}

# Taobao open platform app keys: buyer_open_uid differs per app key.
BRAND_TOP_APP_KEY = "34128765"  # the brand's own TOP app (trades API, 会员通)
ERP_APP_KEY = "21987654"  # the ERP vendor's app (its exports show the ERP's open_uid)

YOUZAN_KDT_ID = "46528117"  # the brand's Youzan shop, bound to the Official Account


@dataclass(frozen=True)
class Store:
    store_id: str
    name: str
    city: int  # index into REGIONS
    guides: tuple[str, ...]  # WeCom userids of its guides
    clerk_slot: int  # the phone slot of the counter phone clerks type for walk-in buyers
    tablet: str  # the in-store tablet's device key (members sign up and browse on it)


# (province, city, district) as addresses write them; a municipality is written once.
REGIONS = (
    ("上海市", "上海市", "浦东新区"),
    ("北京市", "北京市", "朝阳区"),
    ("广东省", "深圳市", "南山区"),
    ("浙江省", "杭州市", "西湖区"),
    ("四川省", "成都市", "武侯区"),
    ("江苏省", "南京市", "鼓楼区"),
    ("湖北省", "武汉市", "洪山区"),
)
STREETS = ("世纪大道", "建国路", "科技园路", "文三路", "人民南路", "中山路", "解放路", "珞喻路")
STORES = (
    Store("SH001", "上海静安嘉里中心店", 0, ("LiuFang", "store_sh_01"), 0, "tablet-SH001"),
    Store("BJ002", "北京三里屯太古里店", 1, ("ZhangMin", "store_bj_01"), 1, "tablet-BJ002"),
    Store("SZ003", "深圳万象天地店", 2, ("WangJing",), 2, "tablet-SZ003"),
    Store("HZ004", "杭州湖滨银泰店", 3, ("ChenLei",), 3, "tablet-HZ004"),
)
ONLINE_GUIDES = ("ZhaoYan", "online_01")  # the e-commerce team's guides (no store)
AGENCY_GUIDES = ("agency_kf_01", "agency_kf_02")
GUIDES_FILLING_MOBILES = frozenset({"LiuFang", "ZhangMin", "store_sh_01"})  # remark_mobiles

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN_F = "芳娜秀英敏静丽艳娟霞桂兰玲婷雪慧颖琳"
GIVEN_M = "伟强磊军洋勇杰涛明超平刚辉鹏华飞斌宇"

# Consent purposes and the privacy-notice versions in force (effective date, version).
PURPOSES = ("marketing_sms", "marketing_wecom", "marketing_oa", "personalization")
NOTICES = ((date(2019, 1, 1), "PN-2019.01"), (date(2021, 11, 1), "PN-2021.11"),
           (date(2023, 9, 1), "PN-2023.09"), (date(2025, 3, 1), "PN-2025.03"))  # fmt: skip


def notice_version(at: datetime | date) -> str:
    day = at.date() if isinstance(at, datetime) else at
    version = NOTICES[0][1]
    for start, name in NOTICES:
        if day >= start:
            version = name
    return version


# How much of the world does what (shares of people); the platform-use shares shape who can be
# seen where, the dated ones are spread over the world's history.
USES = {
    "tmall": 0.55, "jd": 0.30, "douyin": 0.30, "pdd": 0.25, "youzan": 0.20,
    "miniprogram": 0.45, "store": 0.30, "app": 0.25, "web": 0.35,
}  # fmt: skip
MEMBER_SHARE = 0.60
PHONE_AUTH_SHARE = 0.50  # of mini-program users: authorized their phone (getPhoneNumber)
EMAIL_SHARE = 0.35
HOUSEHOLD_SHARE = 0.06  # of pairs of people (2k, 2k+1) living together (one address)
HOUSEHOLD_PHONE = 0.5  # of households: the second uses the first's phone on orders
HOUSEHOLD_TABLET = 0.4  # of households: a family tablet shared in the app
PHONE_CHANGE_SHARE = 0.06
RECYCLE_SHARE = 0.5  # of changed numbers: reassigned by the carrier to a new person
RECYCLE_GAP_DAYS = (90, 540)
CRM_UPDATES_PHONE = 0.5  # of members who changed phone: told the brand (else CRM keeps the old)
NAMESAKE_SHARE = 0.004  # people who share name and birthday with another, unrelated person
WECOM_SHARE = 0.40
AGENCY_SHARE = 0.15  # of WeCom contacts: also added the agency corp's service account
WECOM_DELETE_SHARE = 0.12  # of contacts: deleted the guide (withdraws WeCom marketing)
OA_SHARE = 0.35
OA_UNFOLLOW_SHARE = 0.15
SMS_OPTIN_AT_SIGNUP = 0.7
SMS_OPTOUT_SHARE = 0.08  # of members opted in: replied TD (退订) to a marketing SMS
MEMBER_OPTOUT_SHARE = 0.03  # of members: opted out of all marketing in the member centre
PERSONALIZATION_SHARE = 0.6  # of mini-program users: agreed to personalised recommendations
DEVICE_RESET_SHARE = (0.25, 0.08)  # of an SDK's users: one reset / new handset, a second one
HISTORY_YEARS = 6


@dataclass(frozen=True)
class PhoneSpan:
    phone: str
    valid_from: datetime | None  # None: since before the world's history
    valid_to: datetime | None  # None: still theirs


@dataclass(frozen=True)
class Membership:
    card: str
    signed_up: datetime
    channel: str  # tmall (会员通) | miniprogram | store | crm
    home_store: str  # store_id, or "" for online sign-ups
    guide: str  # the owning guide's userid, or ""
    phone: str  # the phone given at sign-up
    crm_phone: str  # the phone the CRM holds now (stale if they changed and never told)
    sms_opt_in: bool


@dataclass(frozen=True)
class WecomContact:
    corp: Corp
    external_userid: str
    guide: str
    added: datetime
    add_way: int
    state: str  # the live code that reached them ("" when not added through a live code)
    remark_mobile: str  # the phone the guide typed into remark_mobiles, or ""
    deleted: datetime | None  # when they deleted the guide


@dataclass(frozen=True)
class ConsentEvent:
    person_id: str
    purpose: str
    granted: bool
    at: datetime
    channel: str  # member_signup | miniprogram | sms_reply | oa_follow | oa_unfollow | wecom_add
    #               wecom_delete | member_centre
    notice_version: str


class DatedTrait:
    """A share of people with one event each, spread evenly over [start, end) in shuffled order.

    The person of rank r (rank = a bijection of the index) has it iff r < share * n, at
    start + r * span / (share * n): so the people of a day are one run of ranks.
    """

    def __init__(self, world: World, salt: str, share: float, start: datetime, end: datetime):
        self.world, self.salt = world, salt
        self.count = int(world.n * share)
        self.start, self.span = start, (end - start).total_seconds()
        self._shuffle = Shuffle(world.n, world.seed, salt)

    def at(self, i: int) -> datetime | None:
        rank = self._shuffle(i)
        if rank >= self.count or self.count == 0:
            return None
        return self.start + timedelta(seconds=int(rank * self.span / self.count))

    def on_day(self, day: date) -> list[int]:
        """Indexes of the people whose event falls on `day`, in time order."""
        if self.count == 0:
            return []
        lo_s = (datetime.combine(day, time()) - self.start).total_seconds()
        hi_s = lo_s + 86_400
        lo = max(0, math.ceil(lo_s * self.count / self.span))
        hi = min(self.count, math.ceil(hi_s * self.count / self.span))
        ranks = [r for r in range(lo, hi) if int(r * self.span / self.count) < hi_s]
        return [self._shuffle.inverse(r) for r in ranks if int(r * self.span / self.count) >= lo_s]


class World:
    """`n` people over a history ending `end` (the last simulated day), drawn from `seed`."""

    def __init__(self, n: int, seed: int, end: date, *, household_share: float = HOUSEHOLD_SHARE):
        if n > 10**8:
            raise ValueError("at most 10**8 people")
        self.n, self.seed, self.end = n, seed, end
        self.household_share = household_share
        self.history_start = datetime(end.year - HISTORY_YEARS, 1, 1)
        self.until = datetime.combine(end + timedelta(days=1), time())
        h0, until = self.history_start, self.until
        self.signup = DatedTrait(self, "signup", MEMBER_SHARE, h0, until)
        self.phone_change = DatedTrait(
            self, "phone-change", PHONE_CHANGE_SHARE, h0 + timedelta(days=365), until
        )
        self.wecom_add = DatedTrait(self, "wecom-add", WECOM_SHARE, h0 + timedelta(days=730), until)
        self.wecom_delete = DatedTrait(
            self, "wecom-delete", 2 * WECOM_DELETE_SHARE, h0 + timedelta(days=760), until
        )
        self.oa_follow = DatedTrait(self, "oa-follow", OA_SHARE, h0, until)
        self.oa_unfollow = DatedTrait(
            self, "oa-unfollow", 2 * OA_UNFOLLOW_SHARE, h0 + timedelta(days=30), until
        )
        self.sms_optout = DatedTrait(self, "sms-optout", 2 * SMS_OPTOUT_SHARE, h0, until)
        self.member_optout = DatedTrait(self, "member-optout", 2 * MEMBER_OPTOUT_SHARE, h0, until)
        # of mini-program users: agreed to personalised recommendations in the app
        self.personalization = DatedTrait(self, "personalization", PERSONALIZATION_SHARE, h0, until)
        self._recycle = Shuffle(n, seed, "recycle")
        self._namesake = Shuffle(n, seed, "namesake")  # whose name and birthday a copy takes
        # Exactly this many people lend their name and birthday (at least one pair in any world
        # of two or more, so a small world has the case too).
        self._namesake_rank = Shuffle(n, seed, "namesake-rank")
        self.namesake_pairs = max(1, round(n * NAMESAKE_SHARE)) if n > 1 else 0

    def _lends_name(self, i: int) -> bool:
        return self._namesake_rank(i) < self.namesake_pairs and self._namesake(i) != i

    def __len__(self) -> int:
        return self.n

    def person(self, i: int) -> Person:
        if not 0 <= i < self.n:
            raise IndexError(f"person index {i} out of range 0..{self.n - 1}")
        return Person(self, i)

    def __iter__(self) -> Iterator[Person]:
        return (Person(self, i) for i in range(self.n))

    def by_id(self, person_id: str) -> Person:
        return self.person(int(person_id.lstrip("P")) - 1)

    # --- who acts ------------------------------------------------------------------------------

    def users(self, platform: str, rng, rate: float) -> list[Person]:
        """The people using `platform` who act today: `rate` x the world's size on average
        (as if everyone acted with probability `rate`), drawn among the platform's users only, so
        each of them acts with probability rate / share."""
        share = USES.get(platform, 1.0)
        picked = sample_indexes(self.n, rng, min(1.0, rate / share))
        people = (Person(self, i) for i in picked)
        return [p for p in people if p.uses(platform)]

    def on_day(self, trait: DatedTrait, day: date) -> list[Person]:
        """The people with `trait`'s event on `day` for whom it applies."""
        people = [Person(self, i) for i in trait.on_day(day)]
        if trait is self.phone_change:  # and those given a recycled number that day
            low, high = RECYCLE_GAP_DAYS
            for back in range(low, high + 1):
                for old in self.phone_change.on_day(day - timedelta(days=back)):
                    new = Person(self, old).recycled_to
                    if new is not None:
                        people.append(Person(self, new))
        return sorted(
            (p for p in people if (at := p.event_time(trait)) is not None and at.date() == day),
            key=lambda p: (p.event_time(trait), p.index),
        )

    def stores_in(self, region: int) -> list[Store]:
        return [s for s in STORES if s.city == region]

    # --- helpers for writers ---------------------------------------------------------------

    def friend(self, person: Person, key: object) -> Person:
        """Someone the person sends a gift to (another person of the world)."""
        j = below(self.seed, "friend", (person.index, key), max(1, self.n - 1))
        return Person(self, j + (j >= person.index))

    def clerk_phone(self, store: Store) -> str:
        return ids.phone(self.seed, 2 * self.n + store.clerk_slot)

    def tablet_device(self, store: Store, sdk: str) -> str:
        return ids.device_id(self.seed, sdk, store.tablet, 0)


class Person:
    """One person of the world, built from its index; every attribute is drawn on first use."""

    __slots__ = ("__dict__", "index", "world")

    def __init__(self, world: World, index: int):
        self.world, self.index = world, index

    def __repr__(self) -> str:
        return f"Person({self.person_id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Person) and other.index == self.index and other.world is self.world

    def __hash__(self) -> int:
        return hash(self.index)

    # --- who they are ------------------------------------------------------------------------

    @property
    def person_id(self) -> str:
        return f"P{self.index + 1:06d}"

    @cached
    def _b(self) -> bytes:
        return draws(self.world.seed, "person", self.index)

    def _frac(self, salt: str) -> float:
        return frac(self.world.seed, salt, self.index)

    @cached
    def namesake_of(self) -> int | None:
        """The unrelated person whose name and birthday this person happens to share."""
        w = self.world
        source = w._namesake.inverse(self.index)
        if source != self.index and w._lends_name(source):
            return source
        return None

    @cached
    def is_namesake(self) -> bool:
        """Shares name and birthday with another person (either side of the pair)."""
        w = self.world
        return self.namesake_of is not None or w._lends_name(self.index)

    @cached
    def gender(self) -> str:
        return "F" if self._b[0] % 100 < 68 else "M"  # a beauty brand's customers

    def _own_name(self) -> str:
        b = self._b
        given = GIVEN_F if self.gender == "F" else GIVEN_M
        name = SURNAMES[b[1] % len(SURNAMES)] + given[b[2] % len(given)]
        return name + given[b[3] % len(given)] if b[4] % 2 else name

    def _own_birthday(self) -> date:
        return date(1965, 1, 1) + timedelta(days=int.from_bytes(self._b[5:8], "big") % (41 * 365))

    @cached
    def name(self) -> str:
        src = self.namesake_of
        return Person(self.world, src)._own_name() if src is not None else self._own_name()

    @cached
    def birthday(self) -> date:
        src = self.namesake_of
        return Person(self.world, src)._own_birthday() if src is not None else self._own_birthday()

    # --- household and address ---------------------------------------------------------------

    @cached
    def household_id(self) -> str:
        """Household of the pair (2k, 2k+1), or ''. Its two people share the address."""
        k = self.index // 2
        if 2 * k + 1 >= self.world.n:
            return ""
        return (
            f"H{k:07d}"
            if frac(self.world.seed, "household", k) < self.world.household_share
            else ""
        )

    @property
    def household_partner(self) -> Person | None:
        if not self.household_id:
            return None
        return Person(self.world, self.index ^ 1)

    @cached
    def shares_household_phone(self) -> bool:
        """The household uses one phone (the first person's) on orders and sign-ups."""
        return (
            bool(self.household_id)
            and frac(self.world.seed, "hh-phone", self.index // 2) < HOUSEHOLD_PHONE
        )

    @cached
    def shares_family_tablet(self) -> bool:
        return (
            bool(self.household_id)
            and frac(self.world.seed, "hh-tablet", self.index // 2) < HOUSEHOLD_TABLET
        )

    @cached
    def region(self) -> int:
        home = self.index & ~1 if self.household_id else self.index
        return below(self.world.seed, "region", home, len(REGIONS))

    @cached
    def address_parts(self) -> tuple[str, str, str, str, str]:
        """(province, city, district, street address, building and room): a household's one."""
        home = self.index & ~1 if self.household_id else self.index
        b = draws(self.world.seed, "address", home)
        province, city, district = REGIONS[self.region]
        street = f"{STREETS[b[0] % len(STREETS)]}{1 + int.from_bytes(b[1:3], 'big') % 998}号"
        room = f"{1 + b[3] % 30}栋{1 + b[4] % 3}单元{1 + b[5] % 32}{1 + b[6] % 4:02d}室"
        return province, city, district, street, room

    @property
    def address(self) -> str:
        province, city, district, street, room = self.address_parts
        head = province if province == city else province + city
        return f"{head}{district}{street}{room}"

    # --- phones ------------------------------------------------------------------------------

    def _is_changer(self) -> bool:
        return (
            not self.shares_household_phone and self.world.phone_change.at(self.index) is not None
        )

    @cached
    def _changed(self) -> datetime | None:
        """When the person switched to a new number: a change of their own, or being given a
        recycled one (a recipient's previous number is simply dropped)."""
        if self._recycled_from is not None:
            return Person(self.world, self._recycled_from)._recycle_date()
        return self.world.phone_change.at(self.index) if self._is_changer() else None

    def _recycle_date(self) -> datetime:
        w = self.world
        low, high = RECYCLE_GAP_DAYS
        changed = w.phone_change.at(self.index)
        assert changed is not None
        return changed + timedelta(days=low + below(w.seed, "recycle-gap", self.index, high - low))

    @cached
    def recycled_to(self) -> int | None:
        """The person who got this person's old number, if the carrier reassigned it in time."""
        r = self.world._recycle(self.index)
        return r if Person(self.world, r)._recycled_from == self.index else None

    @cached
    def _recycled_from(self) -> int | None:
        """Whose released number this person was given (never a changer themselves)."""
        w = self.world
        i = w._recycle.inverse(self.index)
        if i == self.index or self._is_changer() or self.shares_household_phone:
            return None
        old = Person(w, i)
        if not old._is_changer() or frac(w.seed, "recycle", i) >= RECYCLE_SHARE:
            return None
        return i if old._recycle_date() < w.until else None

    @cached
    def phones(self) -> tuple[PhoneSpan, ...]:
        """The person's own numbers over time (a household's second person has none of their own
        when they use the first's; `phone_at` gives the number they show)."""
        w = self.world
        if self.shares_household_phone and self.index % 2:
            return ()
        first = ids.phone(w.seed, self.index)
        if self._changed is None:
            return (PhoneSpan(first, None, None),)
        src = self._recycled_from
        new = ids.phone(w.seed, src) if src is not None else ids.phone(w.seed, w.n + self.index)
        return (PhoneSpan(first, None, self._changed), PhoneSpan(new, self._changed, None))

    @property
    def recycled_number(self) -> bool:
        """Their number belonged to someone else before (or their old one went to someone)."""
        return self._recycled_from is not None or self.recycled_to is not None

    @property
    def phone_changed(self) -> bool:
        return self._changed is not None

    def phone_at(self, at: datetime | date) -> str:
        """The number the person gives at `at` (a household's shared one for its second)."""
        if self.shares_household_phone and self.index % 2:
            return Person(self.world, self.index ^ 1).phone_at(at)
        moment = at if isinstance(at, datetime) else datetime.combine(at, time(12))
        spans = self.phones
        for span in spans:
            if (span.valid_from is None or span.valid_from <= moment) and (
                span.valid_to is None or moment < span.valid_to
            ):
                return span.phone
        return spans[-1].phone

    @cached
    def email(self) -> str:
        return (
            ids.email(self.world.seed, self.index) if self._frac("has-email") < EMAIL_SHARE else ""
        )

    # --- platforms -----------------------------------------------------------------------------

    def uses(self, platform: str) -> bool:
        known = self._uses
        if platform not in known:
            if platform == "store" and self.member and self.member.channel == "store":
                known[platform] = True
            elif platform == "app" and self.shares_family_tablet:
                known[platform] = True  # the family tablet runs the brand's app
            else:
                known[platform] = self._frac(f"uses:{platform}") < USES.get(platform, 1.0)
        return known[platform]

    @cached
    def _uses(self) -> dict[str, bool]:
        return {}

    @property
    def unionid(self) -> str:
        return ids.unionid(self.world.seed, self.index)

    def openid(self, app: App) -> str:
        return ids.openid(self.world.seed, app.appid, self.index)

    @cached
    def mp_app(self) -> App:
        """The mini-program the person opens (most use the bound shop app)."""
        return SHOP_MP if self._frac("mp-app") < 0.8 else MEMBER_MP

    @cached
    def authorized_phone(self) -> bool:
        """Authorized their phone in the mini-program (getPhoneNumber)."""
        return self.uses("miniprogram") and self._frac("phone-auth") < PHONE_AUTH_SHARE

    def tmall_open_uid(self, app_key: str = BRAND_TOP_APP_KEY) -> str:
        return ids.tmall_open_uid(self.world.seed, app_key, self.index)

    @property
    def tmall_nick(self) -> str:
        return ids.tmall_nick(self.world.seed, self.index)

    @property
    def jd_pin(self) -> str:
        return ids.jd_pin(self.world.seed, self.index)

    @property
    def douyin_open_id(self) -> str:
        return ids.douyin_open_id(self.world.seed, self.index)

    @property
    def pdd_buyer_id(self) -> str:
        return ids.pdd_buyer_id(self.world.seed, self.index)

    @property
    def yz_open_id(self) -> str:
        return ids.yz_open_id(self.world.seed, self.index)

    @property
    def youzan_fans_id(self) -> int:
        return ids.youzan_fans_id(self.world.seed, self.index)

    @property
    def store_member_no(self) -> str:
        return ids.store_member_no(self.world.seed, self.index)

    # --- devices -------------------------------------------------------------------------------

    def _resets(self, sdk: str) -> tuple[datetime, ...]:
        w, k = self.world, (sdk, self.index)
        span = (w.until - w.history_start).total_seconds()
        out = []
        for n, share in enumerate(DEVICE_RESET_SHARE):
            if frac(w.seed, f"reset{n}", k) < share:
                out.append(
                    w.history_start + timedelta(seconds=int(frac(w.seed, f"reset-at{n}", k) * span))
                )
        return tuple(sorted(out))

    def device_spans(self, sdk: str) -> list[tuple[str, datetime | None, datetime | None]]:
        """(device id, valid_from, valid_to) of the person's own device on an SDK over time: a new
        id after each app reinstall / new handset."""
        resets = self._resets(sdk)
        bounds = [None, *resets, None]
        return [
            (ids.device_id(self.world.seed, sdk, self.index, g), bounds[g], bounds[g + 1])
            for g in range(len(resets) + 1)
        ]

    def device(self, sdk: str, at: datetime | date) -> str:
        moment = at if isinstance(at, datetime) else datetime.combine(at, time(12))
        generation = sum(r <= moment for r in self._resets(sdk))
        return ids.device_id(self.world.seed, sdk, self.index, generation)

    def anonymous_id(self, sdk: str, at: datetime | date) -> str:
        moment = at if isinstance(at, datetime) else datetime.combine(at, time(12))
        generation = sum(r <= moment for r in self._resets(sdk))
        return ids.anonymous_id(self.world.seed, sdk, self.index, generation)

    @property
    def family_tablet(self) -> str:
        """The household's shared tablet device (app), or ''."""
        if not self.shares_family_tablet:
            return ""
        return ids.device_id(self.world.seed, "app", f"tablet:{self.household_id}", 0)

    # --- membership ----------------------------------------------------------------------------

    def event_time(self, trait: DatedTrait) -> datetime | None:
        """When `trait`'s event happens to this person, if it applies to them."""
        w = self.world
        if trait is w.phone_change:  # a change of their own, or a recycled number given
            return self._changed
        at = trait.at(self.index)
        if at is None:
            return None
        if trait in (w.signup, w.oa_follow, w.wecom_add):
            return at
        if trait is w.wecom_delete:
            c = self.wecom
            return at if c is not None and c.added < at else None
        if trait is w.oa_unfollow:
            followed = self.oa_followed
            return at if followed is not None and followed < at else None
        if trait is w.sms_optout:
            m = self.member
            return at if m is not None and m.sms_opt_in and m.signed_up < at else None
        if trait is w.member_optout:
            m = self.member
            return at if m is not None and m.signed_up < at else None
        if trait is w.personalization:
            return at if self.uses("miniprogram") else None
        return at

    @cached
    def member(self) -> Membership | None:
        w = self.world
        signed_up = w.signup.at(self.index)
        if signed_up is None:
            return None
        channels = [
            c for c in ("tmall", "miniprogram", "store") if self._frac(f"uses:{c}") < USES[c]
        ]
        channel = pick(w.seed, "signup-channel", self.index, channels) if channels else "crm"
        home = ""
        stores = w.stores_in(self.region)
        if channel == "store":
            store = stores[0] if stores else pick(w.seed, "home-store", self.index, STORES)
            home = store.store_id
        elif stores and self._frac("home-store") < 0.3:
            home = stores[0].store_id
        guide = ""
        if home:
            store = next(s for s in STORES if s.store_id == home)
            guide = pick(w.seed, "guide", self.index, store.guides)
        elif self._frac("online-guide") < 0.3:
            guide = pick(w.seed, "guide", self.index, ONLINE_GUIDES)
        phone = self.phone_at(signed_up)
        crm_phone = phone
        if (
            self._changed is not None
            and self._changed > signed_up
            and self._frac("crm-update") < CRM_UPDATES_PHONE
        ):
            crm_phone = self.phone_at(w.until)
        return Membership(
            card=ids.member_card(w.seed, self.index),
            signed_up=signed_up,
            channel=channel,
            home_store=home,
            guide=guide,
            phone=phone,
            crm_phone=crm_phone,
            sms_opt_in=self._frac("sms-opt-in") < SMS_OPTIN_AT_SIGNUP,
        )

    def member_at(self, at: datetime | date) -> Membership | None:
        m = self.member
        moment = at if isinstance(at, datetime) else datetime.combine(at, time(23, 59))
        return m if m is not None and m.signed_up <= moment else None

    # --- WeCom and the Official Account --------------------------------------------------------

    @cached
    def wecom(self) -> WecomContact | None:
        """The person's contact in the brand's corp (added a guide), or None."""
        w = self.world
        added = w.wecom_add.at(self.index)
        if added is None:
            return None
        m = self.member_at(added)
        if m is not None and m.guide:
            guide = m.guide
        else:
            stores = w.stores_in(self.region)
            pool = stores[0].guides if stores and self.uses("store") else ONLINE_GUIDES
            guide = pick(w.seed, "contact-guide", self.index, pool)
        # The live codes that can reach this person, by where they meet the brand.
        codes = [(code, ok) for code, ok in (
            ("pkg_card_tmall", self.uses("tmall")),
            ("pkg_card_jd", self.uses("jd")),
            ("live_douyin", self.uses("douyin")),
            ("mp_order_done", self.uses("miniprogram")),
            ("oa_menu_vip", self.oa_followed is not None and self.oa_followed < added),
        ) if ok]  # fmt: skip
        if self.uses("store"):
            store = (w.stores_in(self.region) or list(STORES))[0]
            codes.append((f"store_poster_{store.store_id}", True))
        b = draws(w.seed, "wecom", self.index)
        if codes and b[0] % 100 < 80:
            add_way, state = 1, codes[b[1] % len(codes)][0]  # scanned a live code (联系我)
        else:
            add_way, state = (2, 3, 4, 6)[b[2] % 4], ""  # phone search, card share, group, contact
        remark = self.phone_at(added) if guide in GUIDES_FILLING_MOBILES and b[3] % 100 < 70 else ""
        deleted = w.wecom_delete.at(self.index)
        return WecomContact(
            corp=BRAND_CORP,
            external_userid=ids.external_userid(w.seed, BRAND_CORP.corp_id, self.index),
            guide=guide,
            added=added,
            add_way=add_way,
            state=state,
            remark_mobile=remark,
            deleted=deleted if deleted is not None and deleted > added else None,
        )

    @cached
    def agency_contact(self) -> WecomContact | None:
        """The agency corp's contact of the person (unbound corp: no unionid), or None."""
        c = self.wecom
        if c is None or self._frac("agency") >= AGENCY_SHARE:
            return None
        w = self.world
        added = c.added + timedelta(days=1 + below(w.seed, "agency-add", self.index, 200))
        if added >= w.until:
            return None
        return WecomContact(
            corp=AGENCY_CORP,
            external_userid=ids.external_userid(w.seed, AGENCY_CORP.corp_id, self.index),
            guide=pick(w.seed, "agency-guide", self.index, AGENCY_GUIDES),
            added=added,
            add_way=3,
            state="",
            remark_mobile="",
            deleted=None,
        )

    @cached
    def oa_followed(self) -> datetime | None:
        return self.world.oa_follow.at(self.index)

    @cached
    def oa_unfollowed(self) -> datetime | None:
        return self.event_time(self.world.oa_unfollow)

    # --- consent -------------------------------------------------------------------------------

    @cached
    def consent_events(self) -> tuple[ConsentEvent, ...]:
        """Every consent event of the person over the world's history, in time order."""
        w, pid, out = self.world, self.person_id, []

        def add(purpose: str, granted: bool, at: datetime | None, channel: str) -> None:
            if at is not None and at < w.until:
                out.append(ConsentEvent(pid, purpose, granted, at, channel, notice_version(at)))

        m = self.member
        if m is not None and m.sms_opt_in:
            add("marketing_sms", True, m.signed_up, "member_signup")
        add("marketing_sms", False, self.event_time(w.sms_optout), "sms_reply")
        optout = self.event_time(w.member_optout)
        if optout is not None:
            for purpose in PURPOSES:
                add(purpose, False, optout, "member_centre")
        add("personalization", True, self.event_time(w.personalization), "miniprogram")
        c = self.wecom
        if c is not None:
            add("marketing_wecom", True, c.added, "wecom_add")
            add("marketing_wecom", False, c.deleted, "wecom_delete")
        if self.oa_followed is not None:
            add("marketing_oa", True, self.oa_followed, "oa_follow")
            add("marketing_oa", False, self.oa_unfollowed, "oa_unfollow")
        return tuple(sorted(out, key=lambda e: (e.at, e.purpose)))

    def consent(self, purpose: str, at: datetime) -> bool:
        state = False
        for e in self.consent_events:
            if e.at > at:
                break
            if e.purpose == purpose:
                state = e.granted
        return state

    # --- the legacy store system -----------------------------------------------------------

    @cached
    def in_store_list(self) -> bool:
        """Registered in the store system's own membership list (no shared id with the CRM)."""
        m = self.member
        if m is not None and m.channel == "store":
            return self._frac("store-list") < 0.9
        return self.uses("store") and self._frac("store-list") < 0.35


# --- identifier-level truth ----------------------------------------------------------------------

Span = tuple[str, str, datetime | None, datetime | None]  # (identifier_type, value, from, to)
SDKS = ("web", "app", "miniprogram")


def identifiers(person: Person) -> list[Span]:
    """Every identifier the person holds, with when: what `_truth/identifiers.csv` lists.

    A value can have several holders at once (a household's shared phone or tablet)."""
    out: list[Span] = []
    for span in person.phones:
        out.append(("phone", span.phone, span.valid_from, span.valid_to))
    partner = person.household_partner
    if person.shares_household_phone and person.index % 2 and partner is not None:
        out.extend(("phone", s.phone, s.valid_from, s.valid_to) for s in partner.phones)
    if person.email:
        out.append(("email", person.email, None, None))
    out.append(("wechat_unionid", person.unionid, None, None))
    if person.uses("miniprogram"):
        out.append(("wechat_openid", person.openid(person.mp_app), None, None))
    if person.oa_followed is not None or person.uses("youzan"):
        out.append(("wechat_openid", person.openid(OA), None, None))
    m = person.member
    if m is not None:
        out.append(("member_card", m.card, m.signed_up, None))
    if person.in_store_list:
        out.append(("store_member_no", person.store_member_no, None, None))
    if person.uses("tmall"):
        out.append(("tmall_open_uid", person.tmall_open_uid(BRAND_TOP_APP_KEY), None, None))
        out.append(("tmall_open_uid", person.tmall_open_uid(ERP_APP_KEY), None, None))
        out.append(("tmall_nick", person.tmall_nick, None, None))
    if person.uses("jd"):
        out.append(("jd_pin", person.jd_pin, None, None))
    if person.uses("douyin"):
        out.append(("douyin_open_id", person.douyin_open_id, None, None))
    if person.uses("pdd"):
        out.append(("pdd_buyer_id", person.pdd_buyer_id, None, None))
    if person.uses("youzan"):
        out.append(("youzan_open_id", person.yz_open_id, None, None))
        out.append(("youzan_fans_id", str(person.youzan_fans_id), None, None))
    for contact in (person.wecom, person.agency_contact):
        if contact is not None:
            out.append(("wecom_external_userid", contact.external_userid, contact.added, None))
    for sdk in SDKS:
        if person.uses(sdk):
            out.extend(("device_id", d, a, b) for d, a, b in person.device_spans(sdk))
    if person.family_tablet:
        out.append(("device_id", person.family_tablet, None, None))
    return out


def staff_identifiers(world: World) -> list[tuple[str, str, str]]:
    """Identifiers of the brand's own staff and devices: (type, value, holder id): guides'
    WeCom userids, the stores' counter phones and shared tablets."""
    out = []
    guides = {g for store in STORES for g in store.guides} | set(ONLINE_GUIDES) | set(AGENCY_GUIDES)
    out.extend(("wecom_userid", g, f"GUIDE-{g}") for g in sorted(guides))
    for store in STORES:
        out.append(("phone", world.clerk_phone(store), f"CLERK-{store.store_id}"))
        for sdk in ("miniprogram", "app"):
            out.append(("device_id", world.tablet_device(store, sdk), f"TABLET-{store.store_id}"))
    return out
