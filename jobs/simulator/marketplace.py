"""The marketplaces' orders, each in the shape its platform hands it out (docs/sources.md):
Tmall's seller-center export (keyed by the buyer nick) beside the TOP API's trades (keyed by
buyer_open_uid, receiver fields encrypted), JD's and 抖店's exports with one row per product line,
and 拼多多's export with one row per order.

Why the writers share one order draft (`orders_of_day`): a brand sees the same messes on every
marketplace (test orders, 刷单 rings, re-syncs, late orders, typos, gifts), only shaped
differently. Marketplaces never show a buyer's full phone (masked, or a relay number), so a
record's only person id is the platform's own account id, where the platform gives one at all
(抖店's and 拼多多's exports give none). Each writer hands its day's orders on (`ctx.handoff`):
the Tmall detail exports, the TOP trades and the ERP hang off them.
"""

from __future__ import annotations

import base64
import csv
import io
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import NamedTuple

from jobs.ingest.spec import get_spec
from jobs.simulator import ids
from jobs.simulator.context import (
    PRODUCTS,
    TMALL_RATE,
    DatasetTruth,
    Day,
    Sold,
    Written,
    field_id,
    stream_event,
)
from jobs.simulator.files import (
    day_folder,
    day_start,
    export_ts,
    masked_phone,
)
from jobs.simulator.mess import (
    TEST_TITLE,
    TMALL_NEW_COLUMN,
    Account,
    Shown,
    person_flags,
    test_account,
    to_fullwidth,
)
from jobs.simulator.rand import frac
from jobs.simulator.world import BRAND_TOP_APP_KEY, REGIONS, Person

Buyer = Person | Account
Line = tuple[str, str, float, int]  # (sku, title, unit price, quantity), as `Sold.lines`

# Orders per person of the world and day at volume 1 (the old simulator's rates), placed by
# the platform's users (`World.users`).
RATES = {"tmall": TMALL_RATE, "jd": 0.02, "douyin": 0.025, "pdd": 0.02}
BASKET_SIZES = {1: 0.80, 2: 0.15, 3: 0.05}  # product lines per order (PDD: always one)
TEST_SKU = "T0000"
# Each platform's status texts with their shares of new orders, and (…_NEXT) what a later
# export may show for an order whose status can still move (a re-sync).
TMALL_STATUSES = {
    "交易成功": 0.70,
    "卖家已发货，等待买家确认": 0.12,
    "买家已付款，等待卖家发货": 0.10,
    "交易关闭": 0.08,  # closed after a refund (TOP's TRADE_CLOSED): the refund is the payment
}
TMALL_NEXT = {
    "买家已付款，等待卖家发货": ("卖家已发货，等待买家确认", "交易关闭"),
    "卖家已发货，等待买家确认": ("交易成功", "交易成功", "交易关闭"),
    "交易成功": ("交易关闭",),
}
TMALL_CLOSED = "交易关闭"
JD_STATUSES = {"完成": 0.68, "等待确认收货": 0.12, "等待出库": 0.10, "已取消": 0.07, "锁定": 0.03}
JD_NEXT = {
    "等待出库": ("等待确认收货", "已取消"),
    "等待确认收货": ("完成",),
    "锁定": ("已取消", "等待出库"),
}
JD_DELETED = 0.3  # of cancelled JD orders: deleted by the seller (status shown as `(删除)已取消`)
DOUYIN_STATUSES = {"已完成": 0.66, "已发货": 0.14, "待发货": 0.10, "已关闭": 0.10}
DOUYIN_NEXT = {"待发货": ("已发货", "已关闭"), "已发货": ("已完成",), "已完成": ("已关闭",)}
DOUYIN_TRAFFIC = {"直播": 0.50, "短视频": 0.20, "商品卡": 0.20, "橱窗": 0.10}
DOUYIN_RELAY = 0.7  # of 抖店 receiver phones: a relay number with an extension, else masked
INFLUENCERS = (
    ("71234567801", "小鹿美妆日记"),
    ("71234567802", "护肤研究所阿杰"),
    ("71234567803", "成分党小雨"),
)
CANCEL_REASONS = ("不想要了", "拍错/多拍", "地址填写错误", "其他渠道价格更低")
PDD_STATUSES = {
    "已签收": 0.66,
    "已发货，待签收": 0.14,
    "待发货": 0.10,
    "已取消": 0.04,
    "未发货，退款成功": 0.03,
    "已发货，退款成功": 0.03,
}
PDD_NEXT = {
    "待发货": ("已发货，待签收", "未发货，退款成功"),
    "已发货，待签收": ("已签收", "已发货，退款成功"),
}
PDD_FEE = 0.006  # the payment fee PDD keeps (商家实收 = 实付 - 0.6%)

# Each platform's own product ids (the brand's codes are the PRODUCTS skus, 商家编码/货号).
SAMPLE: Line = ("G9001", "旅行装小样 5ml (赠品)", 0.0, 1)  # a Tmall order's free sample
_SKU_INDEX = {sku: n for n, (sku, _title, _price) in enumerate(PRODUCTS, start=1)}
_SKU_INDEX.update({TEST_SKU: 99, SAMPLE[0]: 98})


def platform_item_id(platform: str, sku: str) -> str:
    """A product's id on a marketplace (JD 商品ID, 抖店 商品ID, PDD 商品id, Taobao num_iid)."""
    n = _SKU_INDEX[sku]
    base = {"jd": 100023456700, "douyin": 3589126577120000000, "pdd": 532187650000}
    step = {"jd": 1, "douyin": 7919, "pdd": 13}
    if platform == "tmall":
        return str(612345678900 + 37 * n)
    return str(base[platform] + step[platform] * n)


# --- one order, before a platform shapes it --------------------------------------------------


@dataclass(frozen=True)
class Order:
    """A purchase as it happened (who, what, when), before it becomes a platform's rows."""

    order_id: str
    buyer: Buyer
    receiver: Buyer  # the buyer, or a friend on a gift
    shown: Shown  # the receiver as the record shows them (typos, variants, junk phones)
    created: datetime
    paid: datetime
    status: str  # the export's status text
    lines: tuple[Line, ...]
    payment: str  # the order's total as written (full-width digits are mess)
    flags: tuple[str, ...]
    kind: str = ""  # "" (a customer's), "test" (the shop's own) or "fake" (a 刷单 ring's)

    @property
    def total(self) -> float:
        return round(sum(price * qty for _sku, _title, price, qty in self.lines), 2)

    @property
    def gift(self) -> bool:
        return "gift" in self.flags

    @property
    def quantity(self) -> int:
        return sum(qty for *_rest, qty in self.lines)


def basket(rng: random.Random, *, single: bool = False) -> tuple[Line, ...]:
    """An order's product lines: distinct products, mostly one."""
    n = 1 if single else rng.choices(list(BASKET_SIZES), weights=list(BASKET_SIZES.values()))[0]
    return tuple(
        (sku, title, price, rng.choice((1, 1, 1, 2, 3)))
        for sku, title, price in rng.sample(PRODUCTS, n)
    )


def money(value: float) -> str:
    return f"{value:.2f}"


def orders_of_day(
    ctx: Day,
    platform: str,
    statuses: dict[str, float],
    final_status: str,
    order_id: Callable[[date, int], str],
    *,
    amount_text: Callable[[float], str] = money,
    single_line: bool = False,
) -> Iterator[Order]:
    """The day's new orders on `platform`: its buyers' (`world.users`, at the platform's rate),
    then the shop's test orders and the week's 刷单 ring's, in that order.

    A buyer's order may be a gift (receiver = a friend: name, address and phone are theirs) and
    carries the record's mess (late, typos, address variants, junk phones, full-width amounts).
    Marketplaces never show a full phone, so the disguise is drawn as for a masked one.
    """
    rng, mess, day = ctx.rng, ctx.mess, ctx.day
    buyers = ctx.world.users(platform, rng, RATES[platform] * ctx.volume)
    for buyer in buyers:
        oid = order_id(day, ctx.seq.next())
        created, flags = mess.created(rng, day)
        receiver: Buyer = buyer
        if mess.gift(rng):
            receiver = ctx.world.friend(buyer, oid)
        shown, shown_flags = mess.disguise(rng, receiver, created, full_phone=False)
        if receiver is not buyer:  # the receiver's own traits are not the buyer's record's
            theirs = set(person_flags(receiver))
            shown_flags = [f for f in shown_flags if f not in theirs]
            shown_flags += [*person_flags(buyer), "gift"]
        lines = basket(rng, single=single_line)
        total = round(sum(p * q for _s, _t, p, q in lines), 2)
        payment, wide = mess.amount(rng, amount_text(total))
        status = rng.choices(list(statuses), weights=list(statuses.values()))[0]
        paid = created + timedelta(minutes=rng.randrange(1, 30))
        yield Order(
            oid, buyer, receiver, shown, created, paid, status, lines, payment,
            tuple(dict.fromkeys([*flags, *shown_flags, *wide])),
        )  # fmt: skip
    tests, fakes = mess.extra_orders(rng, len(buyers))
    staff = test_account(ctx.seed, platform)
    for _ in range(tests):
        yield _special(ctx, "test", staff, final_status, order_id, amount_text)
    ring = mess.ring(platform, day)
    for _ in range(fakes):
        account = rng.choice(ring.accounts)
        yield _special(ctx, "fake", account, final_status, order_id, amount_text)


def _special(
    ctx: Day,
    kind: str,
    account: Account,
    status: str,
    order_id: Callable[[date, int], str],
    amount_text: Callable[[float], str],
) -> Order:
    """A test order (0 yuan, the test product) or a 刷单 order (a real product at a token
    price): placed and paid today within seconds, finished at once, never disguised."""
    rng = ctx.rng
    oid = order_id(ctx.day, ctx.seq.next())
    created = day_start(ctx.day) + timedelta(seconds=rng.randrange(86_400))
    paid = created + timedelta(seconds=rng.randrange(2, 20))
    if kind == "test":
        line: Line = (TEST_SKU, TEST_TITLE, 0.0, 1)
    else:
        sku, title, _price = rng.choice(PRODUCTS)
        line = (sku, title, rng.randrange(1, 300) / 100, 1)
    shown = Shown(account.name, account.address, account.phone)
    return Order(
        oid, account, account, shown, created, paid, status, (line,), amount_text(line[2]),
        (kind,), kind,
    )  # fmt: skip


def evidence(order: Order) -> list[str]:
    """What the record shows of the buyer: name and address, unless it is a gift's receiver."""
    return [] if order.gift else ["name", "address"]


def receiver_of(order: Order) -> str:
    return order.receiver.person_id if order.gift else ""


def sold(
    platform: str, order: Order, status: str, refund: str, phone: str, flags, payment: str = ""
) -> Sold:
    """The order as written, for the writers hanging off the platform's export."""
    return Sold(
        platform=platform,
        order_id=order.order_id,
        buyer=order.buyer,
        created=order.created,
        paid=order.paid,
        status=status,
        lines=order.lines,
        payment=payment or order.payment,
        refund=refund,
        receiver_name=order.shown.name,
        receiver_phone=phone,
        receiver_address=order.shown.address,
        flags=tuple(sorted(set(flags))),
    )


class Later(NamedTuple):
    """A re-sync waiting for its day: the rows as they will be exported again, and truth."""

    order: Order
    rows: list[dict[str, str]]
    sold: Sold


def carried(flags) -> list[str]:
    """A re-sync's flags: what its rows still show, without the first export's day events."""
    return ["resync", *(f for f in flags if f not in ("late", "spoiled", "resync"))]


def _write_csv(ctx: Day, key: str, rows: list[list[str]], encoding: str, header=None) -> None:
    """The day's export file of `key` (`orders_YYYYMMDD.csv`) in the platform's encoding."""
    spec = get_spec(key)
    header = header or [c.header for c in spec.columns]
    name = f"orders_{ctx.day:%Y%m%d}.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = day_folder(ctx.out, spec.source, spec.dataset, ctx.day) / name
    path.write_bytes(buf.getvalue().encode(encoding))


class Export:
    """A marketplace's day export in the making (`orders_YYYYMMDD.csv`, see `write`): its rows
    in column order, how many of them are spoiled, and the day's orders handed on to the writers
    hanging off it (`ctx.handoff`)."""

    def __init__(self, ctx: Day, platform: str, fields: list[str] | None = None) -> None:
        self.ctx = ctx
        self.key = f"{platform}.orders"
        self.fields = fields or [c.field for c in get_spec(self.key).columns]
        self.rows: list[list[str]] = []
        self.spoiled = 0
        self.handoff: list[Sold] = ctx.handoff.setdefault(platform, [])

    def add(
        self,
        order: Order,
        record_id: str,
        cells: dict[str, str],
        flags,
        spoilable: bool,
        ids: Iterable[tuple[str, object]] = (),
    ) -> list[str]:
        """Add the row of `cells`, a line of `order`, and its truth (the buyer's, with `ids`, what
        it shows of them and the gift's receiver); a spoilable row is maybe spoiled in its
        payment, order_status or order_id (`Day.csv_row`). Returns the row's flags."""
        row, spoiled = self.ctx.csv_row(
            cells, self.fields, amount="payment", status="order_status", key="order_id",
            spoilable=spoilable,
        )  # fmt: skip
        self.rows.append(row)
        self.spoiled += len(spoiled)
        flags = [*flags, *spoiled]
        self.ctx.record(
            self.key, record_id, order.buyer.person_id, flags=flags, ids=ids,
            evidence=evidence(order), receiver=receiver_of(order),
        )  # fmt: skip
        return flags

    def write(self, encoding: str, header: list[str] | None = None) -> Written:
        _write_csv(self.ctx, self.key, self.rows, encoding, header)
        return Written(len(self.rows), self.spoiled)


def _emit_day(
    ctx: Day, platform: str, emit: Callable[..., bool], orders: Iterator[Order], nexts: dict
) -> None:
    """`emit(order, status, flags, spoilable=)` the re-syncs due today (never spoiled), then the
    day's new `orders`, each scheduled for its re-sync (`_defer`) unless spoiled."""
    for later in ctx.mess.take(platform, ctx.day):
        emit(later.order, later.sold.status, later.sold.flags, spoilable=False)
    for order in orders:
        bad = emit(order, order.status, order.flags, spoilable=not order.kind)
        _defer(ctx, platform, order, bad, nexts)


def holder_key(who: Buyer) -> object:
    """The key a holder's ids are drawn from (a person's index, an account's name)."""
    return who.index if isinstance(who, Person) else who.person_id


def _register(ctx: Day, buyer: Buyer, kind: str, value: str) -> None:
    """An id of an account that is not one of the world's people (test, 刷单) for truth."""
    if isinstance(buyer, Account):
        ctx.truth.holder(kind, value, buyer.person_id)


# --- Tmall: the seller-center export ----------------------------------------------------------


def tmall_order_id(seed: int) -> Callable[[date, int], str]:
    return lambda day, n: f"{day:%Y%m%d}{seed % 100:02d}{n:08d}"


def write_tmall_orders(ctx: Day) -> Written:
    """The day's 订单报表 (GBK on even days, else UTF-8 with a BOM), one row per order, keyed by
    the buyer nick; 联系手机 masked. From the mess's `new_column` day on, a column the spec does
    not know appears (it lands in `_extra`). Genuine orders of the day push their cart and
    payment events to the real-time stream."""
    spec = get_spec("tmall.orders")
    headers = [c.header for c in spec.columns]
    fields = [c.field for c in spec.columns]
    if ctx.mess.new_column:
        headers.insert(2, TMALL_NEW_COLUMN[0])
        fields.insert(2, "_new_column")
    rng, export = ctx.rng, Export(ctx, "tmall", fields)

    def emit(order: Order, cells: dict[str, str], flags, spoilable: bool) -> bool:
        nick = order.buyer.tmall_nick
        _register(ctx, order.buyer, "tmall_nick", nick)
        cells = {**cells, "_new_column": TMALL_NEW_COLUMN[1]}
        flags = export.add(
            order, order.order_id, cells, flags, spoilable, ids=[("tmall_nick", nick)]
        )
        export.handoff.append(
            sold("tmall", order, cells["order_status"], cells["refund_fee"],
                 cells["receiver_mobile"], flags)
        )  # fmt: skip
        return "spoiled" in flags

    for later in ctx.mess.take("tmall", ctx.day):
        emit(later.order, later.rows[0], later.sold.flags, spoilable=False)
    seed = ctx.seed
    for order in orders_of_day(ctx, "tmall", TMALL_STATUSES, "交易成功", tmall_order_id(seed)):
        refund = order.payment if order.status == TMALL_CLOSED else money(0)
        cells = {
            "order_id": order.order_id,
            "buyer_nick": order.buyer.tmall_nick,
            "payment": order.payment,
            "order_status": order.status,
            "receiver_name": order.shown.name,
            "receiver_mobile": masked_phone(order.shown.phone),
            "receiver_address": order.shown.address,
            "created": export_ts(order.created),
            "pay_time": export_ts(order.paid),
            "item_title": "，".join(title for _sku, title, _p, _q in order.lines),
            "item_quantity": str(order.quantity),
            "refund_fee": refund,
        }
        bad = emit(order, cells, order.flags, spoilable=not order.kind)
        if not order.kind and "late" not in order.flags:
            sku = order.lines[0][0]
            cart = order.created - timedelta(minutes=rng.randrange(2, 90))
            ctx.stream.append(stream_event(rng, "add_to_cart", order.buyer, cart, sku))
            ctx.stream.append(stream_event(rng, "order_paid", order.buyer, order.paid, sku))
        nxt = None if bad or order.kind else ctx.mess.resync(rng, ctx.day, order.status, TMALL_NEXT)
        if nxt is not None:
            due, status = nxt
            refund = order.payment if status == TMALL_CLOSED else refund
            again = {**cells, "order_status": status, "refund_fee": refund}
            flags = carried(order.flags)
            later = sold("tmall", order, status, refund, cells["receiver_mobile"], flags)
            ctx.mess.defer("tmall", due, Later(order, [again], later))
    # Seller center hands out GBK on some days and UTF-8 with a BOM on others.
    return export.write("gbk" if ctx.day.toordinal() % 2 == 0 else "utf-8-sig", headers)


# --- Tmall: the TOP API's trades --------------------------------------------------------------

TRADE_SAMPLE = 0.2  # of Tmall orders: a free sample as a 0-yuan sub-order (赠品)


def tmall_lines(seed: int, sold: Sold) -> list[tuple[str, Line]]:
    """(sub-order id, line) of a Tmall order as the open platform and the item export give
    them: the ordered products, and on some orders a free sample (drawn from the order id, so
    the API and the item export agree). A single sub-order has the order's id (oid = tid)."""
    lines = list(sold.lines)
    if frac(seed, "tmall-sample", sold.order_id) < TRADE_SAMPLE:
        lines.append(SAMPLE)
    if len(lines) == 1:
        return [(sold.order_id, lines[0])]
    return [(f"{sold.order_id}{k}", line) for k, line in enumerate(lines, start=1)]


def cipher(rng: random.Random, sep: str, size: int = 24) -> str:
    """An opaque ciphertext in the TOP security SDK's layout (`$…$…$1$$` for a phone, `~…~…~1~~`
    for a name, `#…#…#1##` otherwise): random per record, so equal plaintexts never match."""
    a = base64.b64encode(rng.randbytes(12)).decode()
    b = base64.b64encode(rng.randbytes(size)).decode()
    return f"{sep}{a}{sep}{b}{sep}1{sep}{sep}"


_REGION = re.compile(r"^(.+?(?:省|自治区))?(.+?市)(.+?(?:区|县))")


def region(person: Buyer) -> tuple[str, str, str]:
    """(state, city, district) as TOP gives them in plain text beside the encrypted detail."""
    if isinstance(person, Person):
        return person.address_parts[:3]
    m = _REGION.match(person.address)
    if m is None:
        return REGIONS[0]
    return (m.group(1) or m.group(2), m.group(2), m.group(3))


def write_tmall_trades(ctx: Day) -> Written:
    """The day's Tmall orders as the TOP API returns them (one Trade per JSON line): the same
    orders as the day's export (tid = 订单编号, re-syncs with their new status), keyed by
    buyer_open_uid under the brand's app key, with an OAID and encrypted receiver fields."""
    rng, n, spoiled = ctx.rng, 0, 0
    codes = get_spec("tmall.orders").values["order_status"]
    path = day_folder(ctx.out, "tmall", "trades", ctx.day) / f"trades_{ctx.day:%Y%m%d}.jsonl"
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for s in ctx.sold("tmall"):
            buyer = s.buyer
            receiver = ctx.world.friend(buyer, s.order_id) if "gift" in s.flags else buyer
            status = codes[s.status]
            refunded = status == "TRADE_CLOSED"
            subs = tmall_lines(ctx.seed, s)
            payment = money(sum(p * q for _sku, _t, p, q in s.lines))
            state, city, district = region(receiver)
            # The OAID is one per buyer and receiver details (as written: a typo is another).
            details = (holder_key(receiver), s.receiver_name, s.receiver_phone, s.receiver_address)
            modified = max(s.paid, day_start(ctx.day)) + timedelta(seconds=rng.randrange(3600))
            open_uid = buyer.tmall_open_uid(BRAND_TOP_APP_KEY)
            trade = {
                "tid": int(s.order_id),
                "status": status,
                "type": "fixed",
                "buyer_open_uid": open_uid,
                "oaid": ids.oaid(ctx.seed, holder_key(buyer), details),
                "receiver_name": cipher(rng, "~"),
                "receiver_mobile": cipher(rng, "$"),
                "receiver_address": cipher(rng, "#", 48),
                "receiver_state": state,
                "receiver_city": city,
                "receiver_district": district,
                "created": export_ts(s.created),
                "pay_time": export_ts(s.paid),
                "modified": export_ts(modified),
                "payment": payment,
                "total_fee": payment,
                "post_fee": "0.00",
                "discount_fee": "0.00",
                "num": s.lines[0][3] if len(subs) == 1 else 0,
                "orders": [
                    {
                        "oid": int(oid),
                        "num_iid": int(platform_item_id("tmall", sku)),
                        "outer_iid": sku,
                        "title": title,
                        "price": money(price),
                        "num": qty,
                        "total_fee": money(price * qty),
                        "payment": money(price * qty),
                        "status": status,
                        "refund_status": "SUCCESS" if refunded else "NO_REFUND",
                    }
                    for oid, (sku, title, price, qty) in subs
                ],
            }
            flags = [f for f in s.flags if f in ("test", "fake", "resync", "late", "gift")]
            flags += person_flags(buyer)
            line, bad = ctx.json_line(
                trade, {
                    "required": "tid", "wrong_type": ("payment", {"amount": payment}),
                    "type_path": "status", "unknown_type": "TRADE_STATUS_UNKNOWN",
                },
            )  # fmt: skip
            fh.write(line + "\n")
            n += 1
            spoiled += len(bad)
            _register(ctx, buyer, "tmall_open_uid", open_uid)
            ctx.record(
                "tmall.trades", s.order_id, buyer.person_id, flags=flags + bad,
                ids=[("tmall_open_uid", open_uid)],
                receiver=receiver.person_id if receiver is not buyer else "",
            )  # fmt: skip
    return Written(n, spoiled)


# --- JD: one row per product line ---------------------------------------------------------------


def jd_order_id(day: date, n: int) -> str:
    return f"3{day:%y%m%d}{n % 10**6:06d}"


def write_jd_orders(ctx: Day) -> Written:
    """The day's JD export (GBK): one row per product line, 订单号 repeated, the order-level
    cells (订单金额, 应付金额, status, 下单帐号 = the buyer's pin, masked phone) on every line."""
    export = Export(ctx, "jd")

    def emit(order: Order, status: str, flags, spoilable: bool) -> bool:
        shown = status
        if status == "已取消" and frac(ctx.seed, "jd-deleted", order.order_id) < JD_DELETED:
            shown = f"(删除){status}"
        pin = order.buyer.jd_pin
        _register(ctx, order.buyer, "jd_pin", pin)
        phone = masked_phone(order.shown.phone)
        spoiled_before = export.spoiled
        for sku, title, price, qty in order.lines:
            cells = {
                "order_id": order.order_id,
                "sku_id": platform_item_id("jd", sku),
                "item_title": title,
                "item_quantity": str(qty),
                "pay_method": "在线支付",
                "created": export_ts(order.created),
                "unit_price": money(price),
                "order_amount": money(order.total),
                "payment": order.payment,
                "order_status": shown,
                "order_type": "SOP",
                "buyer_pin": pin,
                "receiver_name": order.shown.name,
                "receiver_address": order.shown.address,
                "receiver_mobile": phone,
                "freight": "0.00",
                "pay_time": export_ts(order.paid),
            }
            record_id = f"{order.order_id}:{cells['sku_id']}"
            export.add(order, record_id, cells, flags, spoilable, ids=[("jd_pin", pin)])
        export.handoff.append(sold("jd", order, status, "0.00", phone, flags))
        return export.spoiled > spoiled_before

    orders = orders_of_day(ctx, "jd", JD_STATUSES, "完成", jd_order_id)
    _emit_day(ctx, "jd", emit, orders, JD_NEXT)
    return export.write("gbk")


def _defer(ctx: Day, platform: str, order: Order, bad: bool, nexts: dict) -> None:
    """Schedule the order's re-export with a new status, if it will have one."""
    if bad or order.kind:
        return
    nxt = ctx.mess.resync(ctx.rng, ctx.day, order.status, nexts)
    if nxt is not None:
        due, status = nxt
        later = sold(platform, order, status, "0.00", "", carried(order.flags))
        ctx.mess.defer(platform, due, Later(replace(order, status=status), [], later))


# --- 抖店: one row per SKU --------------------------------------------------------------------


def douyin_order_id(day: date, n: int) -> str:
    return f"69{day:%y%m%d}{n % 10**11:011d}"


def write_douyin_orders(ctx: Day) -> Written:
    """The day's 抖店 order report (UTF-8 with a BOM): one row per SKU, long numbers as text
    (a `\\t` prefix), `-` for empty cells; the receiver phone a relay number or masked."""
    export = Export(ctx, "douyin")
    end_of_day = day_start(ctx.day) + timedelta(days=1, seconds=-1)

    def emit(order: Order, status: str, flags, spoilable: bool) -> bool:
        # Order-level cells, drawn from the order id so a re-sync shows the same ones.
        draw = random.Random(f"{ctx.seed}:douyin-order:{order.order_id}")
        traffic = draw.choices(list(DOUYIN_TRAFFIC), weights=list(DOUYIN_TRAFFIC.values()))[0]
        influencer = ("-", "-") if traffic == "商品卡" else draw.choice(INFLUENCERS)
        if draw.random() < DOUYIN_RELAY or order.kind:
            phone = ids.virtual_phone(ctx.seed, f"douyin:{order.order_id}")
        else:
            phone = masked_phone(order.shown.phone)
        closed = status == "已关闭"
        after_sale = "售后完成" if closed and draw.random() < 0.5 else "-"
        reason = draw.choice(CANCEL_REASONS) if closed and after_sale == "-" else "-"
        finished = "--"
        if status == "已完成":
            done = min(order.paid + timedelta(hours=draw.randrange(1, 72)), end_of_day)
            finished = export_ts(max(done, order.paid), "%Y/%m/%d %H:%M:%S")
        spoiled_before = export.spoiled
        for sku, title, price, qty in order.lines:
            item = platform_item_id("douyin", sku)
            cells = {
                "order_id": f"\t{order.order_id}",
                "item_title": title,
                "sku_id": f"\t{item}",
                "seller_sku": sku,
                "item_quantity": str(qty),
                "unit_price": money(price),
                "payment": order.payment,
                "created": export_ts(order.created, "%Y/%m/%d %H:%M:%S"),
                "pay_time": export_ts(order.paid, "%Y/%m/%d %H:%M:%S"),
                "finished_time": finished,
                "order_status": status,
                "cancel_reason": reason,
                "after_sale_status": after_sale,
                "order_type": "普通订单",
                "receiver_name": order.shown.name,
                "receiver_mobile": phone,
                "receiver_address": order.shown.address,
                "influencer_id": f"\t{influencer[0]}" if influencer[0] != "-" else "-",
                "influencer_name": influencer[1],
                "traffic_source": traffic,
            }
            export.add(order, f"{order.order_id}:{item}", cells, flags, spoilable)
        export.handoff.append(sold("douyin", order, status, "0.00", phone, flags))
        return export.spoiled > spoiled_before

    orders = orders_of_day(ctx, "douyin", DOUYIN_STATUSES, "已完成", douyin_order_id)
    _emit_day(ctx, "douyin", emit, orders, DOUYIN_NEXT)
    return export.write("utf-8-sig")


# --- 拼多多: one row per order ------------------------------------------------------------------


def pdd_order_id(day: date, n: int) -> str:
    return f"{day:%y%m%d}-{n % 10**15:015d}"


def pdd_amount(value: float) -> str:
    """PDD writes amounts without trailing zeros (17.8, 59.9, 398, 0)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def pdd_after_sale(status: str) -> str:
    return "退款成功" if "退款成功" in status else "无售后或售后取消"


def write_pdd_orders(ctx: Day) -> Written:
    """The day's PDD export (UTF-8 with a BOM): one row per order (one product each), amounts
    without trailing zeros, goods total and discounts, the masked phone; no buyer id."""
    export = Export(ctx, "pdd")
    end_of_day = day_start(ctx.day) + timedelta(days=1, seconds=-1)

    def emit(order: Order, status: str, flags, spoilable: bool) -> bool:
        draw = random.Random(f"{ctx.seed}:pdd-order:{order.order_id}")
        sku, title, price, qty = order.lines[0]
        goods = round(price * qty, 2)
        shop_off = draw.choice((3, 5, 10)) if not order.kind and draw.random() < 0.2 else 0
        shop_off = min(shop_off, goods)
        paid = max(goods - shop_off, 0.0)
        shipped = received = ""
        if status in ("已发货，待签收", "已签收", "已发货，退款成功"):
            at_ship = min(order.paid + timedelta(hours=draw.randrange(1, 30)), end_of_day)
            shipped = export_ts(max(at_ship, order.paid))
        if status == "已签收" and shipped:
            received = shipped if order.kind else export_ts(
                min(datetime.fromisoformat(shipped) + timedelta(hours=draw.randrange(1, 48)),
                    end_of_day)
            )  # fmt: skip
        phone = masked_phone(order.shown.phone)
        payment = pdd_amount(paid)
        if "fullwidth_amount" in order.flags:
            payment = to_fullwidth(payment)
        cells = {
            "order_id": order.order_id,
            "order_status": status,
            "item_title": title,
            "goods_total": pdd_amount(goods),
            "shop_discount": pdd_amount(shop_off),
            "platform_discount": "0",
            "payment": payment,
            "merchant_received": money(paid * (1 - PDD_FEE)),
            "item_quantity": str(qty),
            "shipped_time": shipped,
            "received_time": received,
            "sku_id": platform_item_id("pdd", sku),
            "sku_spec": "默认",
            "after_sale_status": pdd_after_sale(status),
            "created": export_ts(order.paid),  # 订单成交时间: the group order succeeded
            "pay_time": export_ts(order.paid),
            "receiver_name": order.shown.name,
            "receiver_mobile": phone,
            "receiver_address": order.shown.address,
        }
        flags = export.add(order, order.order_id, cells, flags, spoilable)
        export.handoff.append(sold("pdd", order, status, "0", phone, flags, payment))
        return "spoiled" in flags

    orders = orders_of_day(
        ctx, "pdd", PDD_STATUSES, "已签收", pdd_order_id, amount_text=pdd_amount, single_line=True
    )
    _emit_day(ctx, "pdd", emit, orders, PDD_NEXT)
    return export.write("utf-8-sig")


def line_id(values: dict) -> str:
    """A per-line export's record id: the order id and the platform's product id."""
    return f"{values.get('order_id') or ''}:{values.get('sku_id') or ''}"


RECEIVER = frozenset({"receiver_name", "receiver_mobile", "receiver_address"})
WRITERS = {
    "tmall.orders": write_tmall_orders,
    "tmall.trades": write_tmall_trades,
    "jd.orders": write_jd_orders,
    "douyin.orders": write_douyin_orders,
    "pdd.orders": write_pdd_orders,
}
TRUTH = {
    "tmall.orders": DatasetTruth(field_id("order_id"), {"buyer_nick": "tmall_nick"}, RECEIVER),
    "tmall.trades": DatasetTruth(
        field_id("order_id"),
        {"buyer_open_uid": "tmall_open_uid"},
        frozenset({"receiver_name_cipher", "receiver_mobile_cipher", "receiver_address_cipher"}),
    ),
    "jd.orders": DatasetTruth(line_id, {"buyer_pin": "jd_pin"}, RECEIVER),
    "douyin.orders": DatasetTruth(line_id, {}, RECEIVER),
    "pdd.orders": DatasetTruth(field_id("order_id"), {}, RECEIVER),
}
