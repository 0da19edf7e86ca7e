"""Youzan (有赞) orders as the Open API returns them, and as the connector lands them.

`make_order` builds one element of `data.full_order_info_list` (youzan.trades.sold.get 4.0.4)
with its personal fields in plaintext: the shape of a landing line, i.e. what the connector
(jobs/ingest/youzan.py) writes after decrypting. `encrypt_order` turns it into what the API
really sends: `buyer_phone`, `fans_nickname`, `receiver_name`, `receiver_tel` and
`delivery_address` as per-shop ciphertext `$<base64>$1$` (a toy cipher here: deterministic and
reversible, keyed per shop, so one phone gives other ciphertext in another shop). The tests'
loopback server (tests/fixtures/youzan_server.py) serves `encrypt_order` of its orders and
decrypts through `decrypt` (youzan.cloud.secret.decrypt.batch).

`write_youzan_orders` lands a simulated day as the connector's pull by update time would
(``{out}/youzan/orders/dt=YYYY-MM-DD/orders.jsonl``, decrypted), so the demo ingests Youzan
without a network: every line of a day's file was created or changed (a re-sync) that day.

Who the buyer is, as Youzan gives it: `yz_open_id` (the buyer across the brand's shops),
the deprecated `fans_id` (a JSON number, WeChat fans only), `outer_user_id` (the buyer's openid
under the brand's Official Account, to which the shop is bound, for WeChat H5 and mini-program
orders; "" for other order sources), and `buyer_phone`, the buyer's own login phone (verified
by SMS, so never a typo or a placeholder: those go into the typed `receiver_tel`). Youzan is
where brands run referral selling: a 销售员 (`order_extra.salesman`, another person of the world
with their phone) or a distributor shop (`order_tags.is_fenxiao_order`, `order_extra.fx_kdt_id` /
`fx_order_no`). Field names follow the 4.0.4 response documentation; the values are ours.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from datetime import datetime, timedelta

from jobs.simulator import ids
from jobs.simulator.context import (
    PRODUCTS,
    DatasetTruth,
    Day,
    Writer,
    Written,
    field_id,
)
from jobs.simulator.files import (
    UNKNOWN_STATUS,
    day_start,
    export_ts,
    landing_file,
)
from jobs.simulator.mess import TEST_TITLE, Account, Shown, test_account
from jobs.simulator.rand import pick
from jobs.simulator.world import OA, YOUZAN_KDT_ID, Person

RATE = 0.03  # Youzan orders per acting person and day (times the run's volume)
REFERRAL_RATE = 0.15  # of genuine orders: a 销售员 (another customer) referred it
FENXIAO_RATE = 0.05  # of genuine orders: sold through a distributor shop
PARTIAL_REFUND_RATE = 0.04  # of completed orders: a part refunded (refund_state 2)
STATUSES = {
    "TRADE_SUCCESS": 0.68,
    "WAIT_BUYER_CONFIRM_GOODS": 0.12,
    "WAIT_SELLER_SEND_GOODS": 0.1,
    "TRADE_CLOSED": 0.07,
    "WAIT_BUYER_PAY": 0.03,
}
NEXT_STATUSES = {
    "WAIT_BUYER_PAY": ("WAIT_SELLER_SEND_GOODS", "TRADE_CLOSED"),
    "WAIT_SELLER_SEND_GOODS": ("WAIT_BUYER_CONFIRM_GOODS", "TRADE_CLOSED"),
    "WAIT_BUYER_CONFIRM_GOODS": ("TRADE_SUCCESS",),
    "TRADE_SUCCESS": ("TRADE_CLOSED",),
}
STATUS_STR = {
    "WAIT_BUYER_PAY": "待付款",
    "TRADE_PAID": "已支付",
    "WAIT_CONFIRM": "待确认",
    "WAIT_SELLER_SEND_GOODS": "待发货",
    "WAIT_BUYER_CONFIRM_GOODS": "已发货",
    "TRADE_SUCCESS": "已完成",
    "TRADE_CLOSED": "已关闭",
}
# Where orders come from (source_info.source: platform, wx_entrance; order_mark), with shares.
# WeChat H5 (the Official Account's shop pages) and the shop's mini-program give outer_user_id.
ORDER_SOURCES = (
    (("wx", "wx_gzh", "wx_h5"), 0.45),
    (("wx", "merchant_xcx", "wx_shop"), 0.35),
    (("wx", "direct_buy", "wx_h5"), 0.05),
    (("browser", "", "h5"), 0.08),
    (("alipay", "", "alipay_mini"), 0.04),
    (("merchant_3rd", "", "app"), 0.03),
)
WECHAT = "wx"
DISTRIBUTOR_SHOPS = ("160012345", "160067890", "160024680")  # fx_kdt_id of reseller shops
SHOP_NAME = "花漾官方微商城"
NICKNAME_TAILS = ("", "宝宝", "酱", "🌸", "_", "同学", "ya")
_ADDRESS = re.compile(
    r"^(?P<province>[^省市]+省)?(?P<city>[^省市]+市)?(?P<district>[^区]+区)?(?P<rest>.*)$"
)

# --- per-shop ciphertext ------------------------------------------------------------------------

# The personal fields the API sends as ciphertext (as in a real 4.0.4 response).
PII_PATHS = (
    ("buyer_info", "buyer_phone"),
    ("buyer_info", "fans_nickname"),
    ("address_info", "receiver_name"),
    ("address_info", "receiver_tel"),
    ("address_info", "delivery_address"),
)
CIPHERTEXT = re.compile(r"\$[A-Za-z0-9+/]+={0,2}\$\d+\$")
_IV_BYTES = 5  # an 11-digit phone gives 16 bytes: `$<22 chars>==$1$`, the length Youzan's show


def _shop_key(kdt_id: object) -> bytes:
    return hashlib.blake2b(f"youzan-shop-secret:{kdt_id}".encode(), digest_size=32).digest()


def _keystream(key: bytes, iv: bytes, n: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.blake2b(iv + counter.to_bytes(4, "big"), key=key).digest()
        counter += 1
    return out[:n]


def encrypt(kdt_id: object, text: str) -> str:
    """`text` as shop `kdt_id`'s ciphertext: deterministic (one value gives one ciphertext per
    shop, as in Youzan's responses, where buyer_phone and receiver_tel match) and reversible."""
    key = _shop_key(kdt_id)
    data = text.encode()
    iv = hashlib.blake2b(data, key=key, digest_size=_IV_BYTES).digest()
    body = bytes(a ^ b for a, b in zip(data, _keystream(key, iv, len(data)), strict=True))
    return f"${base64.b64encode(iv + body).decode()}$1$"


def decrypt(kdt_id: object, ciphertext: str) -> str | None:
    """The plaintext of shop `kdt_id`'s ciphertext, or None (not ciphertext, or another shop's:
    the synthetic IV is checked, so a wrong key never yields garbage)."""
    if not is_ciphertext(ciphertext):
        return None
    raw = base64.b64decode(ciphertext.split("$")[1])
    iv, body = raw[:_IV_BYTES], raw[_IV_BYTES:]
    key = _shop_key(kdt_id)
    data = bytes(a ^ b for a, b in zip(body, _keystream(key, iv, len(body)), strict=True))
    if hashlib.blake2b(data, key=key, digest_size=_IV_BYTES).digest() != iv:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def is_ciphertext(value: object) -> bool:
    return isinstance(value, str) and CIPHERTEXT.fullmatch(value) is not None


def order_shop(order: dict, kdt_id: object) -> str:
    """The shop whose key encrypts an order's personal fields: the distributor shop for its
    orders (our choice; keys are per shop), else the shop itself."""
    extra = order.get("full_order_info", {}).get("order_info", {}).get("order_extra") or {}
    return str(extra.get("fx_kdt_id") or kdt_id)


def encrypt_order(order: dict, kdt_id: object = YOUZAN_KDT_ID) -> dict:
    """The API's form of a (plaintext) order: its personal fields as per-shop ciphertext."""
    api = copy.deepcopy(order)
    info = api.get("full_order_info")
    if not isinstance(info, dict):
        return api
    shop = order_shop(order, kdt_id)
    for group, name in PII_PATHS:
        part = info.get(group)
        if isinstance(part, dict) and isinstance(part.get(name), str) and part[name]:
            part[name] = encrypt(shop, part[name])
    return api


# --- one order ------------------------------------------------------------------------------


def make_order(
    tid: str,
    created: str,
    payment: str = "128.00",
    *,
    status: str = "TRADE_SUCCESS",
    pay_time: str | None = "",
    update_time: str | None = None,
    buyer_phone: str = "13912345678",
    yz_open_id: str = "yzOpenId0123456789",
    fans_id: int = 0,
    fans_nickname: str = "",
    outer_user_id: str = "",
    source: tuple[str, str, str] = ("wx", "merchant_xcx", "wx_shop"),
    title: str = "保湿精华液 30ml",
    num: int = 1,
    receiver_name: str = "王伟",
    receiver_tel: str | None = None,
    address: tuple[str, str, str, str] = ("上海市", "上海市", "浦东新区", "世纪大道1号"),
    device_id: str | None = None,
    salesman: tuple[str, str] | None = None,
    fenxiao: tuple[str, str] | None = None,
    refund_state: int = 0,
    kdt_id: str = YOUZAN_KDT_ID,
) -> dict:
    """One element of data.full_order_info_list with the fields 4.0.4 returns, in plaintext.

    `pay_time=""` means paid when created; None (or a WAIT_BUYER_PAY status) means unpaid, shown
    as '' like every unset time. `update_time` defaults to the latest of created and paid.
    `address` is (province, city, district, detail); `receiver_tel` defaults to `buyer_phone`;
    `source` is (platform, wx_entrance, order_mark); `fans_id` 0 means no WeChat fan (the fans_*
    fields are then absent); `salesman` (nick name, mobile) is the 销售员 who referred the order;
    `fenxiao` (fx_kdt_id, fx_order_no) marks a distributor shop's order.
    """
    paid = created if pay_time == "" else pay_time
    if status == "WAIT_BUYER_PAY":
        paid = None
    province, city, district, detail = address
    platform, entrance, mark = source
    buyer: dict = {
        "yz_open_id": yz_open_id,
        "buyer_phone": buyer_phone,
        "outer_user_id": outer_user_id,
        "fans_type": 1 if fans_id else 0,  # 1: the shop's own WeChat fan
    }
    if fans_id:  # deprecated fields, present for fans only (our choice)
        buyer["fans_id"] = fans_id
        buyer["fans_nickname"] = fans_nickname
    shipped = status in ("WAIT_BUYER_CONFIRM_GOODS", "TRADE_SUCCESS")
    updated = update_time or max(created, paid or "")
    return {
        "full_order_info": {
            "order_info": {
                "tid": tid,
                "status": status,
                "status_str": STATUS_STR.get(status, status),
                "type": 0,
                "created": created,
                "update_time": updated,
                "pay_time": paid or "",
                "expired_time": "",
                "consign_time": updated if shipped else "",
                "confirm_time": "",
                "success_time": updated if status == "TRADE_SUCCESS" else "",
                "pay_type": 10 if paid else 0,
                "pay_type_str": "WEIXIN_DAIXIAO" if paid else "DEFAULT",
                "is_retail_order": False,
                "team_type": 0,
                "refund_state": refund_state,
                "close_type": (2 if refund_state == 12 else 1 if paid is None else 3)
                if status == "TRADE_CLOSED"
                else 0,
                "express_type": 0,
                "node_kdt_id": int(kdt_id),
                "root_kdt_id": int(kdt_id),
                "shop_name": SHOP_NAME,
                "order_tags": {
                    "is_payed": paid is not None,
                    "is_secured_transactions": True,
                    "is_fenxiao_order": fenxiao is not None,
                    "is_refund": refund_state != 0,
                },
                "order_extra": {
                    "is_from_cart": "false",
                    "create_device_id": device_id,
                    "fx_kdt_id": fenxiao[0] if fenxiao else None,
                    "fx_order_no": fenxiao[1] if fenxiao else None,
                    "is_sub_order": "1" if fenxiao else None,
                    "salesman": (
                        {"salesman_nick_name": salesman[0], "salesman_mobile": salesman[1]}
                        if salesman
                        else None
                    ),
                },
            },
            "source_info": {
                "is_offline_order": False,
                "book_key": hashlib.md5(tid.encode()).hexdigest(),
                "biz_source": "",
                "source": {"platform": platform, "wx_entrance": entrance},
                "order_mark": mark,
            },
            "buyer_info": buyer,
            "pay_info": {
                "payment": payment,
                "total_fee": payment,
                "post_fee": "0.00",
                "outer_transactions": [],
                "transaction": [],
                "phase_payments": [],
            },
            "address_info": {
                "receiver_name": receiver_name,
                "receiver_tel": buyer_phone if receiver_tel is None else receiver_tel,
                "delivery_province": province,
                "delivery_city": city,
                "delivery_district": district,
                "delivery_address": detail,
                "delivery_postal_code": "",
                "self_fetch_info": "",
            },
            "remark_info": {"buyer_message": "", "trade_memo": "", "star": 0},
            "orders": [
                {
                    "oid": f"{tid}01",
                    "title": title,
                    "num": num,
                    "price": payment,
                    "payment": payment,
                    "item_id": 100001,
                    "sku_id": 200001,
                    "outer_item_id": "SKU-001",
                }
            ],
            "child_info": {"child_orders": []},
        }
    }


def address_parts(address: str) -> tuple[str, str, str, str]:
    """(province, city, district, detail) as Youzan's address picker splits an address."""
    m = _ADDRESS.match(address)
    assert m is not None  # every part is optional
    city = m["city"] or ""
    province = m["province"] or city  # municipalities: 上海市 / 上海市
    return province, city, m["district"] or "", m["rest"]


def nickname(person: Person | Account) -> str:
    """A WeChat nickname (fans_nickname): not an identifier, just what the fan calls themself."""
    key = person.index if isinstance(person, Person) else person.person_id
    seed = person.world.seed if isinstance(person, Person) else person.seed
    return person.name[-1] + pick(seed, "yz-nickname", key, NICKNAME_TAILS)


# --- the day's file -------------------------------------------------------------------------


def device_id(buyer: Person | Account) -> str:
    """Youzan's own ordering-device number (create_device_id): a 刷单 ring shares one."""
    if isinstance(buyer, Account):
        return buyer.device
    return ids.device_id(buyer.world.seed, "youzan", buyer.index, 0)


# How a spoiled line is damaged (`files.spoil_json`).
DAMAGE = {
    "required": "full_order_info.order_info.tid",
    "wrong_type": ("full_order_info.pay_info.payment", "一百元"),
    "type_path": "full_order_info.order_info.status",
    "unknown_type": UNKNOWN_STATUS,
}


def write_youzan_orders(ctx: Day) -> Written:
    """A day of Youzan orders: the re-syncs due today, the day's buyers' orders, test orders by
    the shop's own account and 刷单 by the week's ring; every line recorded in truth."""
    rng, day, book, world = ctx.rng, ctx.day, ctx.mess, ctx.world
    last_second = day_start(day) + timedelta(days=1, seconds=-1)
    written = spoiled = 0
    sources, weights = zip(*ORDER_SOURCES, strict=True)
    with landing_file(ctx.out, "youzan", "orders", day, "orders.jsonl") as fh:

        def emit(order: dict, person_id: str, flags: list[str], facts: dict, spoil: bool) -> bool:
            """Write one line and its truth; returns whether it was spoiled."""
            nonlocal written, spoiled
            line, bad = ctx.json_line(order, DAMAGE, spoilable=spoil)
            fh.write(line + "\n")
            written += 1
            spoiled += len(bad)
            tid = order["full_order_info"]["order_info"]["tid"]
            ctx.record("youzan.orders", tid, person_id, flags=flags + bad, **facts)
            return bool(bad)

        def order_of(
            buyer: Person | Account, created: datetime, flags: list[str], kind: str = ""
        ) -> tuple[dict, list[str], dict]:
            """(order, flags, truth facts) of one order by `buyer` (kind: "" genuine, "test",
            "fake")."""
            flags = list(flags)
            seq = ctx.seq.next()
            tid = f"E{created:%Y%m%d%H%M%S}{seq:010d}"
            _sku, title, price = rng.choice(PRODUCTS)
            receiver: Person | None = None
            salesman = fenxiao = None
            if kind:
                paid: datetime | None = created + timedelta(seconds=rng.randrange(2, 20))
                payment = "0.00" if kind == "test" else f"{rng.randrange(1, 300) / 100:.2f}"
                title = TEST_TITLE if kind == "test" else title
                status, source = "TRADE_SUCCESS", ("browser", "", "h5")
                shown = Shown(buyer.name, buyer.address, buyer.phone_at(created))
            else:
                assert isinstance(buyer, Person)
                paid = min(created + timedelta(minutes=rng.randrange(1, 30)), last_second)
                payment, wide = book.amount(rng, f"{price:.2f}")
                flags.extend(wide)
                status = rng.choices(list(STATUSES), weights=list(STATUSES.values()))[0]
                source = rng.choices(sources, weights=weights)[0]
                shown, more = book.disguise(rng, buyer, created)
                flags.extend(f for f in more if f not in flags)
                if book.gift(rng):  # sent to a friend: the receiver fields are theirs
                    receiver = world.friend(buyer, tid)
                    shown = Shown(receiver.name, receiver.address, receiver.phone_at(created))
                    typed = ("name_typo", "address_variant", "junk_id", "fullwidth_phone")
                    flags = [f for f in flags if f not in typed] + ["gift"]
                if rng.random() < REFERRAL_RATE and world.n > 1:
                    referrer = world.friend(buyer, ("referral", tid))
                    salesman = (f"{referrer.name}的小店", referrer.phone_at(created))
                if rng.random() < FENXIAO_RATE:
                    fenxiao = (rng.choice(DISTRIBUTOR_SHOPS), f"F{created:%Y%m%d%H%M%S}{seq:010d}")
            if status == "WAIT_BUYER_PAY":
                paid = None
            # When it last changed: on the file's day (a late order moved today).
            updated = max(created, paid or created)
            if updated.date() < day:
                updated = day_start(day) + timedelta(seconds=rng.randrange(86_400))
            refund = 0
            if status == "TRADE_SUCCESS" and not kind and rng.random() < PARTIAL_REFUND_RATE:
                refund = 2
            elif status == "TRADE_CLOSED" and paid is not None:
                refund = 12
            phone = buyer.phone_at(created)  # the login phone, verified by SMS
            wechat = source[0] == WECHAT and isinstance(buyer, Person)
            openid = buyer.openid(OA) if wechat else ""
            fans_id = buyer.youzan_fans_id if wechat else 0
            home = address_parts(receiver.address if receiver else buyer.address)
            if receiver is None and shown.address != buyer.address:
                # The picker fixes province, city and district; the buyer typed the whole
                # address (another way) into the detail line, as many do.
                home = (*home[:3], shown.address)
            order = make_order(
                tid,
                export_ts(created),
                payment,
                status=status,
                pay_time=export_ts(paid) if paid else None,
                update_time=export_ts(updated),
                buyer_phone=phone,
                yz_open_id=buyer.yz_open_id,
                fans_id=fans_id,
                fans_nickname=nickname(buyer) if fans_id else "",
                outer_user_id=openid,
                source=source,
                title=title,
                receiver_name=shown.name,
                receiver_tel=shown.phone,
                address=home,
                device_id=device_id(buyer),
                salesman=salesman,
                fenxiao=fenxiao,
                refund_state=refund,
            )
            found: list[tuple[str, object]] = [
                ("youzan_open_id", buyer.yz_open_id),
                ("phone", phone),
            ]
            if fans_id:
                found.append(("youzan_fans_id", str(fans_id)))
            if openid:
                found.append(("wechat_openid", openid))
            if receiver is None and "junk_id" not in flags:
                found.append(("phone", shown.phone))
            facts = {
                "ids": found,
                "evidence": () if receiver else ("name", "address"),
                "receiver": receiver.person_id if receiver else "",
            }
            return order, flags, facts

        for order, person_id, flags, facts in book.take("youzan", day):
            emit(order, person_id, [*flags, "resync"], facts, spoil=False)
        actors = world.users("youzan", rng, RATE * ctx.volume)
        for person in actors:
            created, late = book.created(rng, day)
            order, flags, facts = order_of(person, created, late)
            bad = emit(order, person.person_id, flags, facts, spoil=True)
            info = order["full_order_info"]["order_info"]
            nxt = book.resync(rng, day, info["status"], NEXT_STATUSES)
            if nxt is not None and not bad:
                kept = [f for f in flags if f != "late"]
                book.defer(
                    "youzan", nxt[0], (_moved(order, *nxt, rng), person.person_id, kept, facts)
                )
        tests, fakes = book.extra_orders(rng, len(actors))
        account = test_account(ctx.seed, "youzan")
        ring = book.ring("youzan", day)
        for kind, buyers in (
            ("test", [account] * tests),
            ("fake", [rng.choice(ring.accounts) for _ in range(fakes)]),
        ):
            for buyer in buyers:
                created = day_start(day) + timedelta(seconds=rng.randrange(86_400 - 60))
                order, flags, facts = order_of(buyer, created, [kind], kind)
                _hold(ctx, buyer)
                emit(order, buyer.person_id, flags, facts, spoil=False)
    return Written(written, spoiled)


def _moved(order: dict, due, status: str, rng) -> dict:
    """The order as a later pull shows it: a new status, changed on `due`."""
    later = copy.deepcopy(order)
    info = later["full_order_info"]["order_info"]
    when = f"{due} {rng.randrange(8, 22):02d}:{rng.randrange(60):02d}:00"
    info["status"], info["status_str"], info["update_time"] = status, STATUS_STR[status], when
    if status in ("WAIT_BUYER_CONFIRM_GOODS", "TRADE_SUCCESS"):
        info["consign_time"] = info["consign_time"] or when
    if status == "TRADE_SUCCESS":
        info["success_time"] = when
    if status == "WAIT_SELLER_SEND_GOODS" and not info["pay_time"]:  # paid at last
        info["pay_time"] = when
        info["pay_type"], info["pay_type_str"] = 10, "WEIXIN_DAIXIAO"
        info["order_tags"]["is_payed"] = True
    if status == "TRADE_CLOSED":
        paid = bool(info["pay_time"])
        info["refund_state"] = 12 if paid else 0
        info["close_type"] = 2 if paid else 1
        info["order_tags"]["is_refund"] = paid
    return later


def _hold(ctx: Day, account: Account) -> None:
    """Register a non-customer account's ids (test account, ring account) in truth."""
    ctx.truth.holder("youzan_open_id", account.yz_open_id, account.person_id)
    ctx.truth.holder("phone", account.phone, account.person_id)


WRITERS: dict[str, Writer] = {"youzan.orders": write_youzan_orders}

TRUTH = {
    "youzan.orders": DatasetTruth(
        record_id=field_id("order_id"),
        identifiers={
            "yz_open_id": "youzan_open_id",
            "fans_id": "youzan_fans_id",
            "outer_user_id": "wechat_openid",
            "buyer_phone": "phone",
            "receiver_tel": "phone",
        },
        receiver_fields=frozenset({"receiver_tel"}),
    ),
}
