"""Every identifier of the world, each drawn on its own from (seed, platform, holder).

No identifier is derived from another platform's identifier or from the truth id: each function
hashes the seed with its own salt and the holder's key (a person's index, an account's number),
so two platforms' ids of one person share nothing a pipeline could exploit. Formats follow the
platforms (lengths and alphabets as their docs and SDKs show them); only the values are ours.

Ids that must never collide (phones, member cards, store member numbers, buyer nicks) come from
`Shuffle` bijections of a slot number; the others are 96+ bit draws.
"""

from __future__ import annotations

from functools import lru_cache

from jobs.simulator.rand import ALNUM, Shuffle, alnum_id, b64_id, draws, hex_id, uuid_id

# A slot number is unique per phone: 0..n-1 a person's first number, n..2n-1 the number they
# changed to, 2n.. the brand's staff (store clerks); the map to 9 digits is one-to-one.
_PHONE_SPACE = 10**9
PHONE_PREFIXES = "3456789"
JUNK_PHONES = ("13800138000", "00000000000", "11111111111")


@lru_cache(maxsize=8)
def _phone_map(seed: int) -> Shuffle:
    return Shuffle(_PHONE_SPACE, seed, "phones")


def phone(seed: int, slot: int) -> str:
    """The 11-digit mainland mobile number of phone slot `slot` (unique per slot)."""
    suffix = _phone_map(seed)(slot)
    number = f"1{PHONE_PREFIXES[suffix % 7]}{suffix:09d}"
    return f"19{suffix:09d}" if number in JUNK_PHONES else number


def virtual_phone(seed: int, key: object) -> str:
    """A marketplace relay number with its extension (虚拟号-分机号): reaches nobody's own phone."""
    b = draws(seed, "virtual-phone", key)
    prefix = ("170", "171", "165", "167")[b[0] % 4]
    number = int.from_bytes(b[1:5], "big") % 10**8
    extension = int.from_bytes(b[5:7], "big") % 10**4
    return f"{prefix}{number:08d}-{extension:04d}"


def burner_phone(seed: int, account: str) -> str:
    """A 刷单 account's number: a virtual-operator prefix (170/171/165), as burner SIMs have."""
    b = draws(seed, "burner-phone", account)
    prefix = ("170", "171", "165")[b[0] % 3]
    return f"{prefix}{int.from_bytes(b[1:5], 'big') % 10**8:08d}"


def email(seed: int, person: int) -> str:
    b = draws(seed, "email", person)
    domain = ("qq.com", "163.com", "126.com", "foxmail.com", "sina.com")[b[0] % 5]
    if b[1] % 2:  # a QQ number
        return f"{int.from_bytes(b[2:7], 'big') % 10**10 + 10**5}@{domain}"
    return f"{''.join(ALNUM[x % 36].lower() for x in b[8:16])}{b[16] % 100}@{domain}"


# --- WeChat ------------------------------------------------------------------------------------


def unionid(seed: int, person: int) -> str:
    """The person's unionid under the brand's open-platform account: 28 characters, `o` first."""
    return "o" + b64_id(seed, "unionid", person, 27)


def openid(seed: int, appid: str, person: int) -> str:
    """The person's openid in one app (mini-program or Official Account): 28 characters."""
    return "o" + b64_id(seed, f"openid:{appid}", person, 27)


def external_userid(seed: int, corp_id: str, person: int) -> str:
    """The person's external_userid in one WeCom corp (another corp sees another id)."""
    return "wm" + b64_id(seed, f"wecom-ext:{corp_id}", person, 30).replace("-", "A").replace(
        "_", "B"
    )


# --- the brand's own systems -------------------------------------------------------------------


@lru_cache(maxsize=8)
def _card_map(seed: int) -> Shuffle:
    return Shuffle(10**11, seed, "member-card")


def member_card(seed: int, member: int) -> str:
    """A member card number: 12 digits starting with 8 (unique per member)."""
    return f"8{_card_map(seed)(member):011d}"


@lru_cache(maxsize=8)
def _store_no_map(seed: int) -> Shuffle:
    return Shuffle(10**8, seed, "store-member-no")


def store_member_no(seed: int, person: int) -> str:
    """The legacy store system's own membership number (VIP + 8 digits): no link to the card."""
    return f"VIP{_store_no_map(seed)(person):08d}"


def device_id(seed: int, sdk: str, person: object, generation: int) -> str:
    """A device id of one SDK: IDFV/Android ID in the app (upper case), a uuid on the web, a
    random id in the mini-program; `generation` counts resets and new handsets."""
    value = uuid_id(seed, f"device:{sdk}:{generation}", person)
    return value.upper() if sdk == "app" else value


def anonymous_id(seed: int, sdk: str, person: object, generation: int) -> str:
    return uuid_id(seed, f"anon:{sdk}:{generation}", person)


# --- marketplaces ------------------------------------------------------------------------------


def tmall_open_uid(seed: int, app_key: str, person: object) -> str:
    """Taobao's buyer_open_uid: 24 characters starting `AAG`, different per app key."""
    return "AAG" + alnum_id(seed, f"tmall-open-uid:{app_key}", person, 21)


@lru_cache(maxsize=8)
def _nick_map(seed: int) -> Shuffle:
    return Shuffle(10**10, seed, "tmall-nick")


def tmall_nick(seed: int, person: object) -> str:
    """The buyer's member name (买家会员名) as the seller-center export shows it."""
    number = _nick_map(seed)(hash_key(person))
    styles = ("tb{:010d}", "t_{:010d}", "小{:010d}")
    return styles[number % 3].format(number)


def hash_key(key: object) -> int:
    """A stable integer below 10**10 for any key (person index or ring account name)."""
    if isinstance(key, int) and 0 <= key < 10**10:
        return key
    return int.from_bytes(draws(0, "key", key)[:8], "big") % 10**10


def oaid(seed: int, person: object, receiver: object) -> str:
    """Taobao's OAID: one per buyer and receiver details."""
    return hex_id(seed, f"oaid:{receiver}", person, 32)


def jd_pin(seed: int, person: object) -> str:
    return "jd_" + hex_id(seed, "jd-pin", person, 13)


def douyin_open_id(seed: int, person: object) -> str:
    """抖店's doudian_open_id (用户加密串)."""
    return b64_id(seed, "doudian-open-id", person, 40)


def pdd_buyer_id(seed: int, person: object) -> str:
    return str(10**11 + int.from_bytes(draws(seed, "pdd-buyer", person)[:6], "big") % (9 * 10**11))


def yz_open_id(seed: int, person: object) -> str:
    """Youzan's yz_open_id: the buyer across the brand's shops."""
    return alnum_id(seed, "yz-open-id", person, 32)


def youzan_fans_id(seed: int, person: object) -> int:
    """Youzan's (deprecated) fans_id: a JSON number."""
    return 10**9 + int.from_bytes(draws(seed, "yz-fans", person)[:5], "big") % (9 * 10**9)
