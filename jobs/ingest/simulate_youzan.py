"""Youzan orders as the Open API returns them, for the simulated world and the tests' server.

`make_order` builds one element of `data.full_order_info_list` (youzan.trades.sold.get 4.0.x);
`write_youzan_orders` lands a simulated day as the connector's pull would
(``{out}/youzan/orders/dt=YYYY-MM-DD/orders.jsonl``), so the demo ingests Youzan without a
network. The HTTP path itself is exercised against tests/fixtures/youzan_server.py.

Youzan is where brands run referral selling, so its orders carry who referred them: a 销售员
(分销员, `order_extra.salesman`, often another customer whose phone the order shows) or a
distributor shop (`order_tags.is_fenxiao_order`, `order_extra.fx_kdt_id` / `fx_order_no`).
Field names follow the youzan.trades.sold.get 4.0.4 response documentation (read via a typed
client generated from it); the values are ours.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from jobs.ingest.simulate import (
    TEST_BUYER,
    TEST_TITLE,
    Mess,
    MessBook,
    Person,
    daily_sample,
    day_folder,
    day_start,
)

STATUSES = {
    "TRADE_SUCCESS": 0.7,
    "WAIT_BUYER_CONFIRM_GOODS": 0.12,
    "WAIT_SELLER_SEND_GOODS": 0.1,
    "TRADE_CLOSED": 0.08,
}
NEXT_STATUSES = {
    "WAIT_SELLER_SEND_GOODS": ("WAIT_BUYER_CONFIRM_GOODS", "TRADE_CLOSED"),
    "WAIT_BUYER_CONFIRM_GOODS": ("TRADE_SUCCESS",),
    "TRADE_SUCCESS": ("TRADE_CLOSED",),
}
STATUS_STR = {
    "TRADE_SUCCESS": "已完成",
    "WAIT_BUYER_CONFIRM_GOODS": "已发货",
    "WAIT_SELLER_SEND_GOODS": "待发货",
    "TRADE_CLOSED": "已关闭",
}
DISTRIBUTOR_SHOPS = ("160012345", "160067890", "160024680")  # fx_kdt_id of reseller shops
_ADDRESS = re.compile(
    r"^(?P<province>[^省市]+省)?(?P<city>[^省市]+市)?(?P<district>[^区]+区)?(?P<rest>.*)$"
)


def make_order(
    tid: str,
    created: str,
    payment: str = "128.00",
    *,
    status: str = "TRADE_SUCCESS",
    pay_time: str | None = "",
    buyer_phone: str = "13912345678",
    yz_open_id: str = "yzOpenId0123456789",
    fans_id: int = 0,
    title: str = "保湿精华液 30ml",
    num: int = 1,
    receiver_name: str = "王伟",
    address: tuple[str, str, str, str] = ("上海市", "上海市", "浦东新区", "世纪大道1号"),
    device_id: str | None = None,
    salesman: tuple[str, str] | None = None,
    fenxiao: tuple[str, str] | None = None,
) -> dict:
    """One element of data.full_order_info_list, with the fields Youzan 4.0.x returns.

    `address` is (province, city, district, detail); `salesman` (nick name, mobile) is the 销售员
    who referred the order; `fenxiao` (fx_kdt_id, fx_order_no) marks a distributor shop's order.
    """
    paid = created if pay_time == "" else pay_time
    province, city, district, detail = address
    return {
        "full_order_info": {
            "order_info": {
                "tid": tid,
                "status": status,
                "status_str": STATUS_STR.get(status, status),
                "type": 0,
                "created": created,
                "update_time": created,
                "pay_time": paid,
                "pay_type": 10,
                "is_retail_order": False,
                "node_kdt_id": 0,
                "order_tags": {
                    "is_payed": paid is not None,
                    "is_secured_transactions": True,
                    "is_fenxiao_order": fenxiao is not None,
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
            "buyer_info": {
                "buyer_id": 0,
                "buyer_phone": buyer_phone,
                "yz_open_id": yz_open_id,
                "fans_id": fans_id,
                "fans_type": 1 if fans_id else 0,
                "fans_nickname": "",
                "outer_user_id": "",
            },
            "pay_info": {
                "payment": payment,
                "total_fee": payment,
                "post_fee": "0.00",
                "outer_transactions": [],
                "transaction": [],
            },
            "address_info": {
                "receiver_name": receiver_name,
                "receiver_tel": buyer_phone,
                "delivery_province": province,
                "delivery_city": city,
                "delivery_district": district,
                "delivery_address": detail,
            },
            "remark_info": {"buyer_message": "", "trade_memo": ""},
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
        }
    }


def address_parts(address: str) -> tuple[str, str, str, str]:
    """(province, city, district, detail) as Youzan's address picker splits an address."""
    m = _ADDRESS.match(address)
    assert m is not None  # every part is optional
    city = m["city"] or ""
    province = m["province"] or city  # municipalities: 上海市 / 上海市
    return province, city, m["district"] or "", m["rest"]


def _device(person_id: str) -> str:
    return hashlib.sha1(f"device:{person_id}".encode()).hexdigest()[:16]


def write_youzan_orders(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    products: list[tuple[str, str, float]],
    rate: float = 0.03,
    mess: MessBook | None = None,
    volume: float = 1.0,
    referral_rate: float = 0.15,
    fenxiao_rate: float = 0.05,
) -> tuple[int, int, list[tuple[str, str, str, str]]]:
    """(lines written, bad lines, truth rows (source, tid, person_id, flags)) for a Youzan day.

    A `referral_rate` share of genuine orders names a 销售员 (another person of the world, with
    their real phone), a `fenxiao_rate` share comes through a distributor shop.
    """
    book = mess or MessBook(Mess.none())
    truth: list[tuple[str, str, str, str]] = []
    seq, bad = seq_start, 0
    folder = day_folder(out, "youzan", "orders", day)
    with (folder / "orders.jsonl").open("w", encoding="utf-8", newline="\n") as fh:

        def emit(order: dict, person_id: str, flags: list[str], price: str | None) -> None:
            nonlocal bad
            line = json.dumps(order, ensure_ascii=False, separators=(",", ":"))
            if price is not None and rng.random() < bad_rate:
                bad += 1
                flags = [*flags, "spoiled"]
                line = (
                    line[: len(line) // 2]
                    if rng.random() < 0.5
                    else line.replace(f'"payment":"{price}"', '"payment":"一百元"', 1)
                )
            fh.write(line + "\n")
            tid = order["full_order_info"]["order_info"]["tid"]
            truth.append(("youzan", tid, person_id, "|".join(flags)))

        def build(person: Person, shown: Person, *, kind: str = "", device: str = "") -> dict:
            nonlocal seq
            seq += 1
            tid = f"E{day:%Y%m%d}{seq:015d}"
            _sku, title, price = rng.choice(products)
            if kind:
                created = day_start(day) + timedelta(seconds=rng.randrange(86_400))
                paid = created + timedelta(seconds=rng.randrange(2, 20))
                payment = "0.00" if kind == "test" else f"{rng.randrange(1, 300) / 100:.2f}"
                title = TEST_TITLE if kind == "test" else title
                status, flags = "TRADE_SUCCESS", [kind]
            else:
                created, flags = book.created(rng, day)
                paid = created + timedelta(minutes=rng.randrange(1, 30))
                payment, wide = book.amount(rng, f"{price:.2f}")
                flags.extend(wide)
                status = rng.choices(list(STATUSES), weights=list(STATUSES.values()))[0]
            salesman = fenxiao = None
            if not kind and rng.random() < referral_rate and len(people) > 1:
                referrer = people[rng.randrange(len(people))]
                if referrer.person_id != person.person_id:
                    salesman = (f"{referrer.name}的小店", referrer.phone)
            if not kind and rng.random() < fenxiao_rate:
                fenxiao = (rng.choice(DISTRIBUTOR_SHOPS), f"F{day:%Y%m%d}{seq:015d}")
            order = make_order(
                tid,
                created.strftime("%Y-%m-%d %H:%M:%S"),
                payment,
                status=status,
                pay_time=paid.strftime("%Y-%m-%d %H:%M:%S"),
                buyer_phone=shown.phone,
                yz_open_id=f"yz{shown.open_uid[3:]}",
                title=title,
                receiver_name=shown.name,
                address=(*address_parts(person.address)[:3], shown.address)
                if shown.address != person.address
                else address_parts(person.address),
                device_id=device or _device(person.person_id),
                salesman=salesman,
                fenxiao=fenxiao,
            )
            order["_flags"] = flags
            return order

        for order, person_id in book.take("youzan", day):
            emit(order, person_id, ["resync"], None)
        actors = daily_sample(people, rng, rate * volume)
        for person in actors:
            shown, flags = book.disguise(rng, person)
            order = build(person, shown)
            flags += order.pop("_flags")
            info = order["full_order_info"]["order_info"]
            nxt = book.resync(rng, day, info["status"], NEXT_STATUSES)
            emit(order, person.person_id, flags, order["full_order_info"]["pay_info"]["payment"])
            if nxt is not None and "spoiled" not in truth[-1][3]:
                later = json.loads(json.dumps(order))
                moved = later["full_order_info"]["order_info"]
                moved["status"], moved["status_str"] = nxt[1], STATUS_STR[nxt[1]]
                moved["update_time"] = f"{nxt[0]} {rng.randrange(8, 22):02d}:00:00"
                book.defer("youzan", nxt[0], (later, person.person_id))
        tests, fakes = book.extra_orders(rng, len(actors))
        for _ in range(tests):
            order = build(TEST_BUYER, TEST_BUYER, kind="test")
            emit(order, "", order.pop("_flags"), None)
        ring = book.ring("youzan", day)
        for _ in range(fakes):
            account = rng.choice(ring.accounts)
            order = build(account, account, kind="fake", device=ring.device_id)
            emit(order, ring.operator, order.pop("_flags"), None)
    return len(truth), bad, truth
