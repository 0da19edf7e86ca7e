"""Youzan orders as the Open API returns them, for the simulated world and the tests' server.

`make_order` builds one element of `data.full_order_info_list` (youzan.trades.sold.get 4.0.x);
`write_youzan_orders` lands a simulated day as the connector's pull would
(``{out}/youzan/orders/dt=YYYY-MM-DD/orders.jsonl``), so the demo ingests Youzan without a
network. The HTTP path itself is exercised against tests/fixtures/youzan_server.py.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path

STATUSES = {
    "TRADE_SUCCESS": 0.7,
    "WAIT_BUYER_CONFIRM_GOODS": 0.12,
    "WAIT_SELLER_SEND_GOODS": 0.1,
    "TRADE_CLOSED": 0.08,
}


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
) -> dict:
    """One element of data.full_order_info_list, with the fields Youzan 4.0.x returns."""
    paid = created if pay_time == "" else pay_time
    return {
        "full_order_info": {
            "order_info": {
                "tid": tid,
                "status": status,
                "status_str": "已完成" if status == "TRADE_SUCCESS" else status,
                "type": 0,
                "created": created,
                "update_time": created,
                "pay_time": paid,
                "pay_type": 10,
                "is_retail_order": False,
                "node_kdt_id": 0,
                "order_tags": {"is_payed": paid is not None, "is_secured_transactions": True},
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
                "receiver_name": "王伟",
                "receiver_tel": buyer_phone,
                "delivery_province": "上海市",
                "delivery_city": "上海市",
                "delivery_district": "浦东新区",
                "delivery_address": "世纪大道1号",
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


def write_youzan_orders(
    out: Path,
    day: date,
    people: list,
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    products: list[tuple[str, str, float]],
    rate: float = 0.03,
) -> tuple[int, int, list[tuple[str, str, str]]]:
    """(orders written, bad lines, ground truth rows) for one simulated Youzan day."""
    lines, truth, bad = [], [], 0
    seq = seq_start
    for person in people:
        if rng.random() >= rate:
            continue
        seq += 1
        tid = f"E{day:%Y%m%d}{seq:015d}"
        _sku, title, price = rng.choice(products)
        created = datetime.combine(day, datetime.min.time()) + timedelta(
            seconds=rng.randrange(86_400)
        )
        order = make_order(
            tid,
            created.strftime("%Y-%m-%d %H:%M:%S"),
            f"{price:.2f}",
            status=rng.choices(list(STATUSES), weights=list(STATUSES.values()))[0],
            buyer_phone=person.phone,
            yz_open_id=f"yz{person.open_uid[3:]}",
            title=title,
        )
        line = json.dumps(order, ensure_ascii=False, separators=(",", ":"))
        if rng.random() < bad_rate:
            bad += 1
            line = (
                line[: len(line) // 2]
                if rng.random() < 0.5
                else line.replace(f'"payment":"{price:.2f}"', '"payment":"一百元"', 1)
            )
        lines.append(line)
        truth.append(("youzan", tid, person.person_id))
    folder = out / "youzan" / "orders" / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orders.jsonl").write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    return len(lines), bad, truth
