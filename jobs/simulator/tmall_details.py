"""Tmall's order details: the item (sub-order) export, the refund report and the buyer reviews.

Why they hang off the day's Tmall orders (`ctx.sold("tmall")`): the seller center hands these
out as separate downloads that must join to the order export by order id, so every detail
belongs to an order that really is in the day's export: items for each order's first export, a
refund for each order closed with a refund (first export or re-sync) and for some refund
requests on finished orders, reviews for finished orders. A spoiled order line never reaches
bronze, so nothing is written for it. Items and refunds carry no buyer id; a review carries the
buyer's open_uid under the brand's app key and a masked nick.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from jobs.simulator.context import DatasetTruth, Day, Sold, Written, field_id
from jobs.simulator.files import day_folder, day_start, export_ts, spec_csv_file
from jobs.simulator.marketplace import TMALL_CLOSED, money, tmall_lines
from jobs.simulator.mess import Account, person_flags
from jobs.simulator.world import BRAND_TOP_APP_KEY

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
OPEN_REFUND_RATE = 0.05  # of finished orders: a refund request that does not go through
REVIEW_RATE = 0.4  # of finished orders: reviewed the day they are exported as finished
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
SHOP_NAME = "花漾官方旗舰店"
FINISHED = "交易成功"


def _landed(orders: list[Sold]) -> list[Sold]:
    """The day's Tmall orders whose export line reached bronze."""
    return [s for s in orders if "spoiled" not in s.flags]


def _flags(s: Sold) -> list[str]:
    """What a detail record of the order carries: the order's kind and the buyer's traits."""
    return [f for f in s.flags if f in ("test", "fake")] + person_flags(s.buyer)


def _amount(text: str) -> float:
    """An amount as the export wrote it (full-width digits read as digits)."""
    return float(text.translate(str.maketrans("０１２３４５６７８９", "0123456789")))


def _later_today(rng: random.Random, after: datetime, day: date) -> datetime:
    """A moment of `day` after `after` (a record in a day's export happened that day)."""
    end = day_start(day) + timedelta(days=1, seconds=-1)
    start = min(max(after, day_start(day)), end)
    return start + timedelta(seconds=int(max(0, (end - start).total_seconds()) * rng.random()))


def write_tmall_order_items(ctx: Day) -> Written:
    """The day's 宝贝报表/销售明细 (GBK): one row per sub-order of each order first exported
    today. A single sub-order has the order's id (oid = tid); some orders carry a free sample
    (the same sub-orders as the TOP trades, `marketplace.tmall_lines`)."""
    n = spoiled = 0
    name = f"order_items_{ctx.day:%Y%m%d}.csv"
    items = spec_csv_file(ctx.out, ctx.day, "tmall.order_items", name, encoding="gbk")
    with items as (writer, fields):
        for s in _landed(ctx.sold("tmall")):
            if "resync" in s.flags:
                continue
            refunded = s.status == TMALL_CLOSED and _amount(s.refund) > 0
            for sub_id, (sku, title, price, qty) in tmall_lines(ctx.seed, s):
                cells = {
                    "sub_order_id": sub_id,
                    "order_id": s.order_id,
                    "item_title": title,
                    "price": money(price),
                    "quantity": str(qty),
                    "seller_sku": sku,
                    "payment": money(price * qty),
                    "order_status": s.status,
                    "refund_status": "退款成功" if refunded else "没有申请退款",
                }
                row, bad = ctx.csv_row(
                    cells, fields, amount="payment", status="order_status", key="order_id"
                )
                writer.writerow(row)
                n += 1
                spoiled += len(bad)
                ctx.record("tmall.order_items", sub_id, s.buyer.person_id, flags=_flags(s) + bad)
    return Written(n, spoiled)


def write_tmall_refunds(ctx: Day) -> Written:
    """The day's 退款报表 (UTF-8 with a BOM): a successful refund for every order exported today
    as closed with a refund, and refund requests on some finished orders that did not go through
    (refused, withdrawn, still waiting)."""
    rng, n, spoiled = ctx.rng, 0, 0
    name = f"refunds_{ctx.day:%Y%m%d}.csv"
    with spec_csv_file(ctx.out, ctx.day, "tmall.refunds", name) as (writer, fields):
        for s in _landed(ctx.sold("tmall")):
            payment = _amount(s.payment)
            if s.status == TMALL_CLOSED and _amount(s.refund) > 0:
                status, amount = "退款成功", _amount(s.refund)
            elif s.status == FINISHED and rng.random() < OPEN_REFUND_RATE:
                status = rng.choices(list(OPEN_REFUNDS), weights=list(OPEN_REFUNDS.values()))[0]
                amount = payment
            else:
                continue
            refund_id = f"{s.order_id}0"
            cells = {
                "refund_id": refund_id,
                "order_id": s.order_id,
                "payment": money(payment),
                "refund_fee": money(amount),
                "refund_status": status,
                "applied": export_ts(_later_today(rng, s.paid, ctx.day)),
                "reason": rng.choice(REFUND_REASONS),
                "goods_returned": "是" if rng.random() < 0.5 else "否",
                "item_title": "，".join(title for _sku, title, _p, _q in s.lines),
            }
            row, bad = ctx.csv_row(
                cells, fields, amount="refund_fee", status="refund_status", key="order_id"
            )
            writer.writerow(row)
            n += 1
            spoiled += len(bad)
            ctx.record("tmall.refunds", refund_id, s.buyer.person_id, flags=_flags(s) + bad)
    return Written(n, spoiled)


def write_tmall_reviews(ctx: Day) -> Written:
    """The day's buyer reviews as taobao.traderates.get returns them (one TradeRate per JSON
    line), for some of the orders exported today as 交易成功, on their first sub-order; some
    carry a follow-up review (追评). The nick comes masked; `buyer_open_uid` (our choice) is the
    buyer's open_uid under the brand's app key. Contents are synthetic."""
    rng, n, spoiled = ctx.rng, 0, 0
    path = day_folder(ctx.out, "tmall", "reviews", ctx.day) / f"reviews_{ctx.day:%Y%m%d}.jsonl"
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for s in _landed(ctx.sold("tmall")):
            if s.status != FINISHED or rng.random() >= REVIEW_RATE:
                continue
            sub_id, (_sku, title, price, _qty) = tmall_lines(ctx.seed, s)[0]
            result = rng.choices(("good", "neutral", "bad"), weights=(0.85, 0.1, 0.05))[0]
            created = _later_today(rng, s.paid, ctx.day)
            nick = s.buyer.tmall_nick
            open_uid = s.buyer.tmall_open_uid(BRAND_TOP_APP_KEY)
            rate = {
                "tid": int(s.order_id),
                "oid": int(sub_id),
                "role": "buyer",
                "nick": f"{nick[0]}**{nick[-1]}",  # buyers' nicks come masked
                "result": result,
                "created": export_ts(created),
                "rated_nick": SHOP_NAME,
                "item_title": title,
                "item_price": price,
                "content": rng.choice(REVIEW_TEXT[result]),
                "reply": "感谢亲的支持，期待再次光临~" if rng.random() < 0.3 else "",
                "valid_score": True,
                "buyer_open_uid": open_uid,
            }
            if rng.random() < 0.15:
                rate["append_rate"] = {
                    "content": rng.choice(APPEND_TEXT),
                    "created": export_ts(_later_today(rng, created, ctx.day)),
                }
            line, bad = ctx.json_line(
                rate, {
                    "required": "tid", "wrong_type": ("result", {"score": 5}),
                    "type_path": "result", "unknown_type": "great",
                },
            )  # fmt: skip
            fh.write(line + "\n")
            n += 1
            spoiled += len(bad)
            if isinstance(s.buyer, Account):
                ctx.truth.holder("tmall_open_uid", open_uid, s.buyer.person_id)
            ctx.record(
                "tmall.reviews", s.order_id, s.buyer.person_id, flags=_flags(s) + bad,
                ids=[("tmall_open_uid", open_uid)],
            )  # fmt: skip
    return Written(n, spoiled)


WRITERS = {
    "tmall.order_items": write_tmall_order_items,
    "tmall.refunds": write_tmall_refunds,
    "tmall.reviews": write_tmall_reviews,
}
TRUTH = {
    "tmall.order_items": DatasetTruth(field_id("sub_order_id"), {}),
    "tmall.refunds": DatasetTruth(field_id("refund_id"), {}),
    "tmall.reviews": DatasetTruth(field_id("order_id"), {"buyer_open_uid": "tmall_open_uid"}),
}
