"""Simulated Tmall order details: the item (sub-order) export, the refund report and reviews.

Why read the day's Tmall order file back: the seller center hands these out as separate
downloads that must join to the order export by order id, and the order writer belongs to the
main loop. Reading its file (written before the registry writers run) keeps every detail
consistent with an order that really is in the export, without a hook into that writer: items
for each order's first export, a refund for each order that closed with a refund amount (first
export or re-sync), and reviews for finished orders. Spoiled order lines never reach bronze, so
nothing is written for them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from jobs.ingest.simulate import PRODUCTS, Person, WriterResult, day_folder, day_start, export_ts
from jobs.ingest.simulate_commerce import (
    first_export,
    person_by_open_uid,
    spec_csv_writer,
    spoil_json,
    tmall_orders_of_day,
)
from jobs.ingest.simulate_platforms import spoil

SKU_BY_TITLE = {title: sku for sku, title, _price in PRODUCTS}
PRICE_BY_TITLE = {title: price for _sku, title, price in PRODUCTS}
GIFT = ("G9001", "旅行装小样 5ml (赠品)")
ORDER_STATUS_TEXT = {
    "WAIT_BUYER_PAY": "等待买家付款",
    "WAIT_SELLER_SEND_GOODS": "买家已付款，等待卖家发货",
    "WAIT_BUYER_CONFIRM_GOODS": "卖家已发货，等待买家确认",
    "TRADE_FINISHED": "交易成功",
    "TRADE_CLOSED": "交易关闭",
    "TRADE_CLOSED_BY_TAOBAO": "交易被淘宝关闭",
}
REFUND_REASONS = (
    "不想要了",
    "拍错/多拍",
    "效果不好/不喜欢",
    "商品破损/少件",
    "过敏",
    "七天无理由退换货",
)
# Refunds asked for on orders that stayed 交易成功: turned down, withdrawn, or still open.
OPEN_REFUNDS = {"卖家拒绝退款": 0.3, "退款关闭": 0.4, "买家已经申请退款，等待卖家同意": 0.3}
REVIEW_TEXT = {
    "good": (
        "质地很好，吸收快，会回购",
        "包装精美，物流很快",
        "用了一周皮肤变好了",
        "正品，很满意",
    ),
    "neutral": ("一般般，没有想象中好", "味道有点重", "效果还需要观察"),
    "bad": ("用了过敏，不推荐", "和描述不符", "物流太慢，包装破损"),
}
APPEND_TEXT = ("用完一瓶了，继续回购", "用了一个月，效果明显", "后来还是有点干")


def _parse_ts(value: object) -> datetime:
    return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S")


def _later_today(rng: random.Random, after: datetime, day: date) -> datetime:
    """A moment of `day` after `after` (a record in a day's export happened that day)."""
    start = max(after, day_start(day))
    end = datetime.combine(day, datetime.max.time()).replace(microsecond=0)
    return start + timedelta(seconds=int(max(0, (end - start).total_seconds()) * rng.random()))


def _owner(people: Sequence[Person], open_uid: object) -> str:
    """The person id behind an order's buyer, '' for the shop's test buyer and 刷单 accounts."""
    person = person_by_open_uid(people, str(open_uid))
    return person.person_id if person else ""


def write_tmall_order_items(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
) -> WriterResult:
    """The day's 宝贝报表/销售明细: one row per sub-order of each order first exported today.

    The ordered product's line carries the order's amount (子订单编号 = 主订单编号, as Taobao does
    for single-item orders); about one order in five gets a free sample as a second line."""
    buf, writer, fields, index = spec_csv_writer("tmall.order_items")
    truth, bad = [], 0
    for rec in tmall_orders_of_day(out, day):
        v = rec.values
        order_id = str(v["order_id"])
        if not first_export(order_id, day):
            continue
        title = str(v["item_title"] or "")
        qty = int(v["item_quantity"] or 1)
        refunded = v["order_status"] == "TRADE_CLOSED" and (v["refund_fee"] or 0) > 0
        base = {
            "order_id": order_id,
            "order_status": ORDER_STATUS_TEXT[str(v["order_status"])],
            "refund_status": "退款成功" if refunded else "没有申请退款",
        }
        lines = [
            {
                **base,
                "sub_order_id": order_id,
                "item_title": title,
                "seller_sku": SKU_BY_TITLE.get(title, ""),
                "price": f"{v['payment'] / qty:.2f}",
                "quantity": str(qty),
                "payment": f"{v['payment']:.2f}",
            }
        ]
        if rng.random() < 0.2:
            lines.append(
                {
                    **base,
                    "sub_order_id": f"{order_id}1",
                    "item_title": GIFT[1],
                    "seller_sku": GIFT[0],
                    "price": "0.00",
                    "quantity": "1",
                    "payment": "0.00",
                }
            )
        owner = _owner(people, v["buyer_open_uid"])
        for cells in lines:
            row = [cells[f] for f in fields]
            if rng.random() < bad_rate:
                row = spoil(rng, row, index["payment"], index["order_status"], index["order_id"])
                bad += 1
            writer.writerow(row)
            truth.append(("tmall.order_items", cells["sub_order_id"], owner))
    path = day_folder(out, "tmall", "order_items", day) / f"order_items_{day:%Y%m%d}.csv"
    path.write_bytes(buf.getvalue().encode("gbk"))
    return len(truth), bad, truth


def write_tmall_refunds(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
) -> WriterResult:
    """The day's 退款报表 (UTF-8 with a BOM): a successful refund for every order exported today
    as closed with a refund amount, and refund requests on some finished orders that did not
    go through (refused, withdrawn, still waiting)."""
    buf, writer, fields, index = spec_csv_writer("tmall.refunds")
    truth, bad = [], 0
    for rec in tmall_orders_of_day(out, day):
        v = rec.values
        refund_fee = v["refund_fee"] or 0
        if v["order_status"] == "TRADE_CLOSED" and refund_fee > 0:
            status, amount = "退款成功", refund_fee
        elif v["order_status"] == "TRADE_FINISHED" and rng.random() < 0.05:
            status = rng.choices(list(OPEN_REFUNDS), weights=list(OPEN_REFUNDS.values()))[0]
            amount = v["payment"]
        else:
            continue
        order_id = str(v["order_id"])
        applied = _later_today(rng, _parse_ts(v["pay_time"] or v["created"]), day)
        cells = {
            "refund_id": f"{order_id}0",
            "order_id": order_id,
            "payment": f"{v['payment']:.2f}",
            "refund_fee": f"{amount:.2f}",
            "refund_status": status,
            "applied": export_ts(applied),
            "reason": rng.choice(REFUND_REASONS),
            "goods_returned": "是" if rng.random() < 0.5 else "否",
            "item_title": str(v["item_title"] or ""),
        }
        row = [cells[f] for f in fields]
        if rng.random() < bad_rate:
            row = spoil(rng, row, index["refund_fee"], index["refund_status"], index["order_id"])
            bad += 1
        writer.writerow(row)
        truth.append(("tmall.refunds", cells["refund_id"], _owner(people, v["buyer_open_uid"])))
    path = day_folder(out, "tmall", "refunds", day) / f"refunds_{day:%Y%m%d}.csv"
    path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))
    return len(truth), bad, truth


def write_tmall_reviews(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
) -> WriterResult:
    """The day's buyer reviews as taobao.traderates.get returns them (one TradeRate per JSON
    line), for about 40% of the orders exported today as 交易成功; some carry a follow-up review
    (追评). Contents are synthetic."""
    truth, bad = [], 0
    path = day_folder(out, "tmall", "reviews", day) / f"reviews_{day:%Y%m%d}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for rec in tmall_orders_of_day(out, day):
            v = rec.values
            if v["order_status"] != "TRADE_FINISHED" or rng.random() >= 0.4:
                continue
            order_id = str(v["order_id"])
            result = rng.choices(("good", "neutral", "bad"), weights=(0.85, 0.1, 0.05))[0]
            created = _later_today(rng, _parse_ts(v["pay_time"] or v["created"]), day)
            title = str(v["item_title"] or "")
            buyer = str(v["buyer_open_uid"])
            rate = {
                "tid": int(order_id),
                "oid": int(order_id),
                "role": "buyer",
                "nick": f"{buyer[3]}**{buyer[-1]}",  # buyers' nicks come masked
                "result": result,
                "created": export_ts(created),
                "rated_nick": "花漾官方旗舰店",
                "item_title": title,
                "item_price": PRICE_BY_TITLE.get(title, 0.0),
                "content": rng.choice(REVIEW_TEXT[result]),
                "reply": "感谢亲的支持，期待再次光临~" if rng.random() < 0.3 else "",
                "valid_score": True,
                "buyer_open_uid": buyer,
            }
            if rng.random() < 0.15:
                rate["append_rate"] = {
                    "content": rng.choice(APPEND_TEXT),
                    "created": export_ts(_later_today(rng, created, day)),
                }
            if rng.random() < bad_rate:
                line = spoil_json(rng, rate, id_key="tid", amount_key="item_price")
                bad += 1
            else:
                line = json.dumps(rate, ensure_ascii=False)
            fh.write(line + "\n")
            truth.append(("tmall.reviews", order_id, _owner(people, buyer)))
    return len(truth), bad, truth
