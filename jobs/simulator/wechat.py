"""The brand's WeChat mini-program shop (`miniprogram.orders`): its backend's order export, one
JSON object per line, with the WeChat Pay v3 payment of each order nested under `payment`.

A buyer is known the way the mini-program knows them, from the world: the openid of the
mini-program they open (`Person.mp_app`), the unionid only when that app is bound to the brand's
open-platform account (jscode2session returns it only then), the member card of members, and
the full phone of those who authorized it with getPhoneNumber (members and non-members alike).
The order's `buyer` and the payment's `payer.openid` carry the same openid the person's
mini-program events carry, so one person's orders and events share their ids.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jobs.simulator.context import PRODUCTS, DatasetTruth, Day, Sold, Writer, Written, field_id
from jobs.simulator.files import UNKNOWN_STATUS, export_ts, landing_file
from jobs.simulator.mess import JUNK_EMAIL, person_flags
from jobs.simulator.world import Person

ORDER_RATE = 0.02  # orders per person of the world per day at volume 1 (among the MP's users)
STATUSES = {"COMPLETED": 0.70, "DELIVERED": 0.12, "PAID": 0.10, "CANCELLED": 0.05}
REFUNDED = 0.03  # share of orders refunded after payment
INVOICE_RATE = 0.2  # orders asking for an e-invoice (电子发票)
JUNK_EMAIL_RATE = 0.1  # of those: a placeholder address typed instead of the buyer's own
MCH_ID = "1612345678"  # the brand's WeChat Pay merchant id (our choice)


def order(ctx: Day, person: Person) -> tuple[dict, list[str], list[str]]:
    """One order of `person` on the day: (the export's object, truth flags, evidence)."""
    rng = ctx.rng
    created, flags = ctx.mess.created(rng, ctx.day)
    flags = [*flags, *person_flags(person)]
    app = person.mp_app
    openid = person.openid(app)
    member = person.member_at(created)
    items, total = [], 0.0
    for sku, title, price in rng.sample(PRODUCTS, k=rng.choice((1, 1, 2))):
        num = rng.choice((1, 1, 2))
        items.append({"sku_id": sku, "title": title, "num": num, "price": f"{price:.2f}"})
        total += price * num
    total = round(total, 2)
    status = rng.choices(list(STATUSES), weights=list(STATUSES.values()))[0]
    if rng.random() < REFUNDED:
        status = "REFUNDED"
    paid = None if status == "CANCELLED" else created + timedelta(seconds=rng.randrange(30, 900))
    order_no = f"MP{created:%Y%m%d}{ctx.seq.next():010d}"
    invoice, evidence = None, []
    if rng.random() < INVOICE_RATE:
        junk = rng.random() < JUNK_EMAIL_RATE
        email = JUNK_EMAIL if junk else person.email
        if email:
            invoice = {"type": "电子普通发票", "title": person.name, "email": email}
            evidence.append("name")
            if junk:
                flags.append("junk_id")
    fen = round(total * 100)
    payment = None
    if paid is not None:
        payment = {  # the WeChat Pay v3 payment notification (decrypted resource)
            "appid": app.appid,
            "mchid": MCH_ID,
            "out_trade_no": order_no,
            "transaction_id": f"42000{rng.randrange(10**5):05d}{paid:%Y%m%d}"
            f"{rng.randrange(10**10):010d}",
            "trade_type": "JSAPI",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "bank_type": rng.choice(("OTHERS", "CMB_DEBIT", "ICBC_CREDIT")),
            "success_time": paid.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
            "payer": {"openid": openid},
            "amount": {
                "total": fen,
                "payer_total": fen,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }
    obj = {
        "order_no": order_no,
        "appid": app.appid,
        "status": status,
        "create_time": export_ts(created),
        "pay_time": export_ts(paid) if paid else None,
        "total_amount": f"{total:.2f}",
        "refund_amount": f"{total:.2f}" if status == "REFUNDED" else "0.00",
        "total_quantity": sum(i["num"] for i in items),
        "buyer": {
            "openid": openid,
            "unionid": person.unionid if app.bound else None,
            # getPhoneNumber's purePhoneNumber (mainland numbers only in this world)
            "phone": person.phone_at(created) if person.authorized_phone else None,
            "member_card": member.card if member is not None else None,
        },
        "items": items,
        "invoice": invoice,
        "payment": payment,
    }
    return obj, flags, evidence


def order_ids(obj: dict) -> list[tuple[str, object]]:
    """The full person identifiers an order carries, as written (what truth lists)."""
    buyer, payment, invoice = obj["buyer"], obj.get("payment") or {}, obj.get("invoice") or {}
    pairs = [
        ("wechat_openid", buyer["openid"]),
        ("wechat_unionid", buyer["unionid"]),
        ("phone", buyer["phone"]),
        ("member_card", buyer["member_card"]),
        ("email", invoice.get("email")),
        ("wechat_openid", (payment.get("payer") or {}).get("openid")),
    ]
    return [(kind, value) for kind, value in pairs if value not in (None, "")]


def write_orders(ctx: Day) -> Written:
    """One day of the mini-program shop's order export: `orders_YYYYMMDD.jsonl`."""
    rng = ctx.rng
    rate = ORDER_RATE * ctx.volume
    written = spoiled = 0
    name = f"orders_{ctx.day:%Y%m%d}.jsonl"
    sold = ctx.handoff.setdefault("miniprogram", [])

    def damage() -> dict:
        return {
            "required": "order_no",
            "wrong_type": ("total_amount", rng.choice(("一百元", {"value": 1}))),
            "type_path": "status",
            "unknown_type": UNKNOWN_STATUS,
        }

    with landing_file(ctx.out, "miniprogram", "orders", ctx.day, name) as fh:
        for person in ctx.world.users("miniprogram", rng, rate):
            obj, flags, evidence = order(ctx, person)
            line, bad = ctx.json_line(obj, damage)
            if not bad:
                sold.append(_sold(obj, person))
            fh.write(line + "\n")
            spoiled += len(bad)
            ctx.record(
                "miniprogram.orders", obj["order_no"], person.person_id,
                flags=flags + bad, ids=order_ids(obj), evidence=evidence,
            )  # fmt: skip
            written += 1
    return Written(written, spoiled)


def _sold(obj: dict, person: Person) -> Sold:
    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    created = when(obj["create_time"])
    assert created is not None
    return Sold(
        platform="miniprogram",
        order_id=obj["order_no"],
        buyer=person,
        created=created,
        paid=when(obj["pay_time"]),
        status=obj["status"],
        lines=tuple((i["sku_id"], i["title"], float(i["price"]), i["num"]) for i in obj["items"]),
        payment=obj["total_amount"],
        refund=obj["refund_amount"],
    )


WRITERS: dict[str, Writer] = {"miniprogram.orders": write_orders}

TRUTH: dict[str, DatasetTruth] = {
    "miniprogram.orders": DatasetTruth(
        record_id=field_id("order_id"),
        identifiers={
            "openid": "wechat_openid",
            "payer_openid": "wechat_openid",
            "unionid": "wechat_unionid",
            "buyer_phone": "phone",
            "member_card": "member_card",
            "invoice_email": "email",
        },
    ),
}
