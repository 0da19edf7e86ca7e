"""The brand's own order systems: the store POS and the ERP/OMS, each in the shape it exports.

Stores know members by the card issued at sign-up (`Person.member`) and the phone they give at
the till; walk-ins not at all, except that clerks often type the store's own counter phone
(`World.clerk_phone`) to get past a required field: one number on many receipts of many
strangers, held by the store (`CLERK-<store>`) in truth. The ERP re-exports the day's Tmall
orders (the Tmall writer's handoff) with the buyer's open_uid under the ERP vendor's own app key
(`world.ERP_APP_KEY`, another value than the brand's app sees), plus orders of shops we only
reach through the ERP.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

from jobs.simulator.context import PRODUCTS, DatasetTruth, Day, Sold, Written, field_id
from jobs.simulator.files import day_start, masked_phone, spec_csv_file, spec_workbook
from jobs.simulator.mess import Account, person_flags
from jobs.simulator.world import ERP_APP_KEY, STORES, Person, Store

POS_RATE = 0.01  # receipts per person of the world per day, among store users (times the volume)
SHOWS_CARD = 0.9  # of a member's visits: gives the card (and the phone)
CLERK_PHONE_RATE = 0.4  # of walk-in receipts: the clerk types the store's counter phone
CASHIERS = ("店员01", "店员02", "店员03", "店长")
POS_PAY = ("微信支付", "支付宝", "银联卡", "现金")
VOID_RATE = 0.03

# ERP shops: (平台 text in the export, shop name). Tmall orders come from the Tmall writer.
ERP_TMALL = ("天猫", "花漾官方旗舰店")
ERP_ONLY_SHOPS = (("小红书", "花漾小红书店", "XHS"), ("快手", "花漾快手小店", "KS"))
ERP_ONLY_RATE = 0.01  # orders per person per day in shops seen only through the ERP
ERP_STATUSES = {"已发货": 0.75, "发货中": 0.10, "已付款待审核": 0.10, "已取消": 0.05}
ERP_ID_BASE = 7_000_000_000  # the ERP's 内部订单号 range
# Sold flags that still hold for the ERP's copy (it shows no name or address of the buyer).
ERP_KEEPS = frozenset({"test", "fake", "late"})


def store_of(ctx: Day, person: Person) -> Store:
    """The store a person shops in: their home store, else their region's, else (travelling,
    or a region without a store) any."""
    m = person.member
    if m is not None and m.home_store:
        return next(s for s in STORES if s.store_id == m.home_store)
    near = ctx.world.stores_in(person.region)
    return near[0] if near else ctx.rng.choice(STORES)


def write_pos_orders(ctx: Day) -> Written:
    """One day of the store POS sales export (CSV, GBK, one row per receipt). A member gives the
    card and their phone on most visits; a walk-in's receipt is blank, or carries the counter
    phone the clerk typed."""
    rng, day = ctx.rng, ctx.day
    n = bad = 0
    name = f"sales_{day:%Y%m%d}.csv"
    with spec_csv_file(ctx.out, ctx.day, "pos.orders", name, encoding="gbk") as (writer, fields):
        for person in ctx.world.users("store", rng, POS_RATE * ctx.volume):
            store = store_of(ctx, person)
            sold = day_start(day) + timedelta(hours=10, seconds=rng.randrange(12 * 3_600))
            sku, title, price = rng.choice(PRODUCTS)
            qty = rng.choice((1, 1, 2))
            m = person.member_at(sold)
            card = phone = ""
            ids: list = []
            flags = person_flags(person)
            if m is not None and rng.random() < SHOWS_CARD:
                shown, shown_flags = ctx.mess.disguise(rng, person, sold)
                card, phone = m.card, shown.phone
                flags += [f for f in shown_flags if f in ("junk_id", "fullwidth_phone")]
                ids.append(("member_card", card))
                if "junk_id" not in flags:
                    ids.append(("phone", phone))
            elif rng.random() < CLERK_PHONE_RATE:
                phone = ctx.world.clerk_phone(store)
                flags.append("clerk_phone")
            n += 1
            receipt = f"{store.store_id}{day:%y%m%d}{ctx.seq.next():08d}"
            cells = {
                "order_id": receipt,
                "store_code": store.store_id,
                "store_name": store.name,
                "cashier": rng.choice(CASHIERS),
                "member_card": card,
                "member_mobile": phone,
                "created": sold.strftime("%Y-%m-%d %H:%M:%S"),
                "sku": sku,
                "item_title": title,
                "item_quantity": str(qty),
                "payment": f"{price * qty:.2f}",
                "pay_method": rng.choice(POS_PAY),
                "order_status": "作废" if rng.random() < VOID_RATE else "销售",
            }
            row, spoiled = ctx.csv_row(
                cells, fields, amount="payment", status="order_status", key="order_id"
            )
            writer.writerow(row)
            bad += len(spoiled)
            ctx.record("pos.orders", receipt, person.person_id, flags=flags + spoiled, ids=ids)
    return Written(n, bad)


def _erp_status(ctx: Day) -> str:
    return ctx.rng.choices(list(ERP_STATUSES), weights=list(ERP_STATUSES.values()))[0]


def _paid_amount(text: str) -> float:
    return float(unicodedata.normalize("NFKC", text).replace(",", ""))


def _erp_phone(phone: str) -> str:
    """The receiver phone as the platform hands it to ERPs: masked, or a relay number."""
    if len(phone) == 11 and phone.isdigit():
        return masked_phone(phone)
    return phone if "*" in phone or "-" in phone else ""


def write_erp_orders(ctx: Day) -> Written:
    """One day of the ERP/OMS order export (.xlsx): the day's paid Tmall orders the ERP pulled
    (same 线上订单号; re-syncs are not pulled again) with the buyer's open_uid under the ERP's
    app key, plus orders of shops we only see through the ERP (小红书, 快手: no buyer id the
    brand can use, masked phones)."""
    rng, day = ctx.rng, ctx.day
    rows: list[tuple[dict, Person | Account, list[str], list]] = []

    def erp_id() -> str:
        return str(ERP_ID_BASE + ctx.seq.next())

    for order in ctx.sold("tmall"):
        if order.paid is None or "resync" in order.flags:
            continue  # the ERP pulls an order once, when paid
        if "spoiled" in order.flags:
            continue  # its Tmall line never reaches bronze: nothing may hang off it
        buyer = order.buyer
        account = buyer.tmall_open_uid(ERP_APP_KEY)
        if isinstance(buyer, Account):
            ctx.truth.holder("tmall_open_uid", account, buyer.person_id)
        flags = [f for f in order.flags if f in ERP_KEEPS] + person_flags(buyer)
        rows.append(
            (_erp_cells(ctx, order, erp_id(), account), buyer, flags, [("tmall_open_uid", account)])
        )
    for person in ctx.world.users("erp_only", rng, ERP_ONLY_RATE * ctx.volume):
        platform, shop, prefix = rng.choice(ERP_ONLY_SHOPS)
        _sku, title, price = rng.choice(PRODUCTS)
        qty = rng.choice((1, 1, 2))
        created = day_start(day) + timedelta(seconds=rng.randrange(86_400 - 3_600))
        number = erp_id()
        cells = {
            "erp_order_id": number,
            "online_order_id": f"{prefix}{day:%y%m%d}{number}",
            "shop_name": shop,
            "platform": platform,
            "order_status": _erp_status(ctx),
            "buyer_account": None,
            "receiver_mobile": masked_phone(person.phone_at(created)),
            "created": created,
            "pay_time": created + timedelta(minutes=rng.randrange(1, 30)),
            "payment": round(price * qty, 2),
            "item_title": title,
            "item_quantity": qty,
        }
        rows.append((cells, person, person_flags(person), []))
    bad = 0
    name = f"orders_{day:%Y%m%d}.xlsx"
    with spec_workbook(ctx.out, ctx.day, "erp.orders", name) as (sheet, fields):
        for cells, buyer, flags, ids in rows:
            row, spoiled = ctx.sheet_row(
                cells, fields, key="erp_order_id", amount="payment", status="order_status",
                when="created",
            )  # fmt: skip
            sheet.append(row)
            bad += len(spoiled)
            ctx.record(
                "erp.orders", str(cells["erp_order_id"]), buyer.person_id,
                flags=flags + spoiled, ids=ids,
            )  # fmt: skip
    return Written(len(rows), bad)


def _erp_cells(ctx: Day, order: Sold, number: str, account: str) -> dict:
    """The ERP's row of a Tmall order (typed Excel cells: date-times and amounts as Excel stores
    them, ids as text)."""
    titles = [title for _sku, title, _price, _qty in order.lines]
    paid: datetime = order.paid  # type: ignore[assignment]
    return {
        "erp_order_id": number,
        "online_order_id": order.order_id,
        "shop_name": ERP_TMALL[1],
        "platform": ERP_TMALL[0],
        "order_status": _erp_status(ctx),
        "buyer_account": account,
        "receiver_mobile": _erp_phone(order.receiver_phone) or None,
        "created": order.created,
        "pay_time": paid,
        "payment": _paid_amount(order.payment),
        "item_title": titles[0] if titles else "",
        "item_quantity": sum(q for *_x, q in order.lines) or 1,
    }


WRITERS = {"pos.orders": write_pos_orders, "erp.orders": write_erp_orders}

TRUTH = {
    "pos.orders": DatasetTruth(
        record_id=field_id("order_id"),
        identifiers={"member_card": "member_card", "member_mobile": "phone"},
    ),
    "erp.orders": DatasetTruth(
        record_id=field_id("erp_order_id"),
        identifiers={"buyer_account": "tmall_open_uid"},
    ),
}
