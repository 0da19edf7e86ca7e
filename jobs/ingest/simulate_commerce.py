"""Simulated first-party and back-office order sources: the WeChat mini-program shop, store POS
and the ERP/OMS, each in the shape its system hands out, with ground truth.

Why a separate module: these are the brand's own systems, where identity looks different from
the marketplaces. The mini-program knows a buyer by an openid per app (and a unionid only when
the app is bound to the brand's open-platform account), stores know members by their card and
full phone, and walk-ins not at all. The ERP re-exports marketplace orders it consolidated, so
its rows duplicate orders we also ingest from the platforms themselves.

Every per-person id is a salted hash of the person id (like `jd_pin`), so a person keeps the
same openid, unionid and member card on every day and in every source without changing `Person`.
Writers follow the `_writers()` contract of jobs/ingest/simulate.py and pick the day's actors
with `daily_sample`, so a day costs what it writes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from jobs.ingest.records import Record, parse_file
from jobs.ingest.simulate import (
    JUNK_EMAIL,
    PRODUCTS,
    Person,
    Truth,
    WriterResult,
    daily_sample,
    day_folder,
    day_start,
    export_ts,
)
from jobs.ingest.simulate_platforms import (
    BAD_AMOUNTS,
    UNKNOWN_STATUS,
    masked_phone,
    spoil,
)
from jobs.ingest.spec import get_spec

MINIPROGRAM_APPIDS = ("wx5f1c2a9b3d7e4f60", "wx8a2d4c6e0b1f3a57")  # shop app, member-centre app
MINI_STATUSES = {"COMPLETED": 0.70, "DELIVERED": 0.12, "PAID": 0.10, "CANCELLED": 0.05}
MINI_REFUNDED = 0.03  # share of orders refunded after payment
STORES = [
    ("SH001", "上海静安嘉里中心店"),
    ("BJ002", "北京三里屯太古里店"),
    ("SZ003", "深圳万象天地店"),
    ("HZ004", "杭州湖滨银泰店"),
]
CASHIERS = ("店员01", "店员02", "店员03", "店长")
POS_PAY = ("微信支付", "支付宝", "银联卡", "现金")
# ERP shops: (平台 text in the export, shop name, whether we also ingest that platform directly)
ERP_DIRECT = ("天猫", "品牌官方旗舰店")
ERP_ONLY_SHOPS = (("小红书", "品牌小红书店"), ("快手", "品牌快手小店"))
ERP_STATUSES = {"已发货": 0.75, "发货中": 0.10, "已付款待审核": 0.10, "已取消": 0.05}


# --- stable per-person ids -------------------------------------------------------------------


def _digest(salt: str, person: Person) -> str:
    return hashlib.sha1(f"{salt}:{person.person_id}".encode()).hexdigest()


def is_member(person: Person) -> bool:
    """About 60% of people joined the brand's membership (stores and CRM share the card)."""
    return int(_digest("member", person)[:4], 16) % 100 < 60


def member_card(person: Person) -> str:
    """The person's member card number: 12 digits starting with 8."""
    return "8" + f"{int(_digest('card', person)[:12], 16) % 10**11:011d}"


def wx_openid(person: Person, appid: str) -> str:
    """A 28-character openid, different for every mini-program app of the same person."""
    return "o" + hashlib.sha1(f"{appid}:{person.person_id}".encode()).hexdigest()[:27]


def wx_unionid(person: Person) -> str | None:
    """The open-platform unionid, the same across the brand's apps; only for ~70% of people
    (it is returned once the user logged in to an app bound to the open-platform account)."""
    digest = _digest("unionid", person)
    return "oU" + digest[:26] if int(digest[-2:], 16) % 100 < 70 else None


def binds_phone(person: Person) -> bool:
    """Whether the person bound a phone in the mini-program (getPhoneNumber), ~50%."""
    return int(_digest("wxphone", person)[:4], 16) % 100 < 50


def spoil_json(rng: random.Random, obj: dict, *, id_key: str, amount_key: str) -> str:
    """One bad JSON line the connector must quarantine: truncated (malformed JSON), the order id
    missing, or an amount of the wrong kind (text, or an object where a number belongs)."""
    kind = rng.randrange(3)
    obj = dict(obj)
    if kind == 0:
        line = json.dumps(obj, ensure_ascii=False)
        return line[: len(line) // 2]
    if kind == 1:
        obj.pop(id_key, None)
    else:
        obj[amount_key] = rng.choice(("一百元", {"value": 1}))
    return json.dumps(obj, ensure_ascii=False)


# --- reading back another writer's day (Tmall) -------------------------------------------------


_INDEX: tuple[Sequence[Person], array, array] | None = None


def _uid_hash(open_uid: str) -> int:
    return int.from_bytes(hashlib.blake2b(open_uid.encode(), digest_size=8).digest(), "big")


def person_by_open_uid(people: Sequence[Person], open_uid: str) -> Person | None:
    """The person behind a Tmall open_uid, or None (test buyers, 刷单 accounts).

    The Tmall export carries no person id, and open_uids are random, so this needs a reverse
    index: built once per world (one pass, like writing people.csv), never per day, and kept as
    two sorted arrays of 64-bit hashes and indexes (12 bytes a person, not a dict of strings).
    """
    global _INDEX
    if _INDEX is None or _INDEX[0] is not people:
        pairs = sorted((_uid_hash(p.open_uid), i) for i, p in enumerate(people))
        _INDEX = (people, array("Q", (h for h, _ in pairs)), array("L", (i for _, i in pairs)))
    _people, hashes, indexes = _INDEX
    h = _uid_hash(open_uid)
    at = bisect_left(hashes, h)
    while at < len(hashes) and hashes[at] == h:
        person = people[indexes[at]]
        if person.open_uid == open_uid:
            return person
        at += 1
    return None


def first_export(order_id: str, day: date) -> bool:
    """Whether a Tmall row is the order's first export rather than a later re-sync: the
    simulated Tmall writer starts an order id with the day it first exported it."""
    return order_id.startswith(f"{day:%Y%m%d}")


def spec_csv_writer(spec_key: str) -> tuple[io.StringIO, csv.writer, list[str], dict[str, int]]:
    """A CSV export in the making for a spec: (buffer, writer with the header written, fields
    in column order, field -> column index)."""
    spec = get_spec(spec_key)
    fields = [c.field for c in spec.columns]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.header for c in spec.columns])
    return buf, writer, fields, {f: i for i, f in enumerate(fields)}


def tmall_orders_of_day(out: Path, day: date) -> Iterator[Record]:
    """The good rows of the Tmall order export the main loop wrote for `day`, file order.
    Spoiled lines are skipped: they never reach bronze, so nothing may hang off them."""
    spec = get_spec("tmall.orders")
    folder = out / spec.source / spec.dataset / f"dt={day}"
    for path in sorted(folder.glob("*.csv")):
        for item in parse_file(path, spec):
            if isinstance(item, Record):
                yield item


# --- mini-program -----------------------------------------------------------------------------


INVOICE_RATE = 0.2  # orders asking for an e-invoice
JUNK_EMAIL_RATE = 0.1  # of those, a placeholder address instead of the buyer's own
EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "foxmail.com", "sina.com")


def buyer_email(person: Person) -> str:
    """The person's own address: stable, so every invoice of theirs carries the same one."""
    digest = _digest("email", person)
    return f"{digest[:10]}@{EMAIL_DOMAINS[int(digest[10:12], 16) % len(EMAIL_DOMAINS)]}"


def _invoice(rng: random.Random, person: Person) -> dict:
    email = JUNK_EMAIL if rng.random() < JUNK_EMAIL_RATE else buyer_email(person)
    return {"type": "电子普通发票", "title": person.name, "email": email}


def _mini_order(rng: random.Random, day: date, seq: int, person: Person) -> dict:
    appid = rng.choice(MINIPROGRAM_APPIDS)
    items, total = [], 0.0
    for sku, title, price in rng.sample(PRODUCTS, k=rng.choice((1, 1, 2))):
        num = rng.choice((1, 1, 2))
        items.append({"sku_id": sku, "title": title, "num": num, "price": f"{price:.2f}"})
        total += price * num
    total = round(total, 2)
    created = day_start(day) + timedelta(seconds=rng.randrange(86_400 - 3_600))
    status = rng.choices(list(MINI_STATUSES), weights=list(MINI_STATUSES.values()))[0]
    if rng.random() < MINI_REFUNDED:
        status = "REFUNDED"
    paid = None if status == "CANCELLED" else created + timedelta(seconds=rng.randrange(30, 900))
    fen = round(total * 100)
    return {
        "order_no": f"MP{day:%Y%m%d}{seq:010d}",
        "appid": appid,
        "status": status,
        "create_time": export_ts(created),
        "pay_time": export_ts(paid) if paid else None,
        "total_amount": f"{total:.2f}",
        "refund_amount": f"{total:.2f}" if status == "REFUNDED" else "0.00",
        "total_quantity": sum(i["num"] for i in items),
        "buyer": {
            "openid": wx_openid(person, appid),
            "unionid": wx_unionid(person),
            "phone": person.phone if binds_phone(person) else None,
            "member_card": member_card(person) if is_member(person) else None,
        },
        "items": items,
        # 电子发票: the e-invoice goes to an email the buyer types; some type a placeholder.
        "invoice": _invoice(rng, person) if rng.random() < INVOICE_RATE else None,
        # WeChat Pay (v3) payment of the order; amounts in fen as WeChat Pay gives them.
        "payment": None
        if paid is None
        else {
            "transaction_id": f"42{rng.getrandbits(60):018d}"[:28],
            "trade_type": "JSAPI",
            "trade_state": "SUCCESS",
            "success_time": paid.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
            "amount": {"total": fen, "payer_total": fen, "currency": "CNY"},
        },
    }


def write_miniprogram_orders(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    rate: float = 0.02,
    volume: float = 1.0,
) -> WriterResult:
    """One day of the mini-program shop's order export: JSON lines, one order per line."""
    truth: Truth = []
    bad = 0
    path = day_folder(out, "miniprogram", "orders", day) / f"orders_{day:%Y%m%d}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for n, person in enumerate(daily_sample(people, rng, rate * volume), start=1):
            order = _mini_order(rng, day, seq_start + n, person)
            if rng.random() < bad_rate:
                line = spoil_json(rng, order, id_key="order_no", amount_key="total_amount")
                bad += 1
            else:
                line = json.dumps(order, ensure_ascii=False)
            fh.write(line + "\n")
            truth.append(("miniprogram", order["order_no"], person.person_id))
    return len(truth), bad, truth


# --- store POS --------------------------------------------------------------------------------


def write_pos_orders(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    rate: float = 0.01,
    volume: float = 1.0,
) -> WriterResult:
    """One day of the store POS sales export: CSV, GBK. Members show their card ~90% of visits
    (card + full phone on the receipt); everyone else is a walk-in with no identity."""
    spec = get_spec("pos.orders")
    fields = [c.field for c in spec.columns]
    index = {f: i for i, f in enumerate(fields)}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.header for c in spec.columns])
    truth: Truth = []
    bad = 0
    for n, person in enumerate(daily_sample(people, rng, rate * volume), start=1):
        store_code, store_name = rng.choice(STORES)
        sku, title, price = rng.choice(PRODUCTS)
        qty = rng.choice((1, 1, 2))
        shows_card = is_member(person) and rng.random() < 0.9
        sold = day_start(day) + timedelta(hours=10, seconds=rng.randrange(12 * 3_600))
        receipt = f"{store_code}{day:%y%m%d}{(seq_start + n) % 10**6:06d}"
        cells = {
            "order_id": receipt,
            "store_code": store_code,
            "store_name": store_name,
            "cashier": rng.choice(CASHIERS),
            "member_card": member_card(person) if shows_card else "",
            "member_mobile": person.phone if shows_card else "",
            "created": export_ts(sold),
            "sku": sku,
            "item_title": title,
            "item_quantity": str(qty),
            "payment": f"{price * qty:.2f}",
            "pay_method": rng.choice(POS_PAY),
            "order_status": "作废" if rng.random() < 0.03 else "销售",
        }
        row = [cells[f] for f in fields]
        if rng.random() < bad_rate:
            row = spoil(rng, row, index["payment"], index["order_status"], index["order_id"])
            bad += 1
        writer.writerow(row)
        truth.append(("pos", receipt, person.person_id))
    path = day_folder(out, "pos", "orders", day) / f"sales_{day:%Y%m%d}.csv"
    path.write_bytes(buf.getvalue().encode("gbk"))
    return len(truth), bad, truth


# --- ERP / OMS --------------------------------------------------------------------------------


def _erp_row(
    rng: random.Random,
    erp_id: int,
    platform: str,
    shop: str,
    online_id: str,
    buyer: str,
    mobile: str,
    created: datetime,
    amount: str,
    title: str,
    qty: int,
) -> dict[str, object]:
    status = rng.choices(list(ERP_STATUSES), weights=list(ERP_STATUSES.values()))[0]
    return {
        "erp_order_id": erp_id,
        "online_order_id": online_id,
        "shop_name": shop,
        "platform": platform,
        "order_status": status,
        "buyer_account": buyer,
        "receiver_mobile": mobile,
        # Excel cells are typed: date-times and amounts as Excel stores them, ids as text.
        "created": created,
        "pay_time": created + timedelta(minutes=rng.randrange(1, 30)),
        "payment": float(amount),
        "item_title": title,
        "item_quantity": qty,
    }


def spoil_sheet_row(rng: random.Random, cells: list[object], index: dict[str, int]) -> list:
    """A bad spreadsheet row: amount typed as text, unknown status, no ERP id, or a date-time
    cell holding text that is no date. (A short row is no damage in a sheet: trailing cells are
    simply empty.)"""
    cells = list(cells)
    kind = rng.randrange(4)
    if kind == 0:
        cells[index["payment"]] = rng.choice(BAD_AMOUNTS)
    elif kind == 1:
        cells[index["order_status"]] = UNKNOWN_STATUS
    elif kind == 2:
        cells[index["erp_order_id"]] = None
    else:
        cells[index["created"]] = "2026-13-45 25:00"
    return cells


def write_erp_orders(
    out: Path,
    day: date,
    people: Sequence[Person],
    rng: random.Random,
    *,
    bad_rate: float,
    seq_start: int,
    rate: float = 0.01,
    volume: float = 1.0,
) -> WriterResult:
    """One day of the ERP/OMS order export (.xlsx): every Tmall order of the day the ERP pulled
    (read back from the Tmall file, same 线上订单号), plus orders of shops we only see through
    the ERP (小红书, 快手). Ground truth keys rows by the ERP's own 内部订单号."""
    from openpyxl import Workbook

    spec = get_spec("erp.orders")
    fields = [c.field for c in spec.columns]
    index = {f: i for i, f in enumerate(fields)}
    book = Workbook(write_only=True)
    sheet = book.create_sheet(spec.sheet or "订单")
    sheet.append([c.header for c in spec.columns])
    truth: Truth = []
    bad = 0
    rows: list[tuple[dict[str, object], Person]] = []
    erp_id = seq_start
    for rec in tmall_orders_of_day(out, day):
        v = rec.values
        if not first_export(str(v["order_id"]), day) or v["order_status"] == "WAIT_BUYER_PAY":
            continue  # the ERP pulls an order once, when paid
        person = person_by_open_uid(people, str(v["buyer_open_uid"]))
        if person is None:
            continue  # the shop's own test buyer and 刷单 accounts: filtered out by the ERP
        erp_id += 1
        created = datetime.strptime(str(v["created"]), "%Y-%m-%dT%H:%M:%S")
        platform, shop = ERP_DIRECT
        row = _erp_row(
            rng,
            erp_id,
            platform,
            shop,
            str(v["order_id"]),
            f"tb_{person.open_uid[3:11]}",  # the buyer's masked nick as Taobao shows it to ERPs
            masked_phone(person.phone),
            created,
            f"{v['payment']:.2f}",
            str(v["item_title"]),
            int(v["item_quantity"] or 1),
        )
        rows.append((row, person))
    for person in daily_sample(people, rng, rate * volume):
        erp_id += 1
        platform, shop = rng.choice(ERP_ONLY_SHOPS)
        _sku, title, price = rng.choice(PRODUCTS)
        qty = rng.choice((1, 1, 2))
        prefix = "XHS" if platform == "小红书" else "KS"
        online_id = f"{prefix}{day:%y%m%d}{erp_id:010d}"
        buyer = ("xhs_" if prefix == "XHS" else "ks_") + _digest(prefix, person)[:12]
        created = day_start(day) + timedelta(seconds=rng.randrange(86_400 - 3_600))
        row = _erp_row(
            rng,
            erp_id,
            platform,
            shop,
            online_id,
            buyer,
            masked_phone(person.phone),
            created,
            f"{price * qty:.2f}",
            title,
            qty,
        )
        rows.append((row, person))
    for row, person in rows:
        cells: list[object] = [row[f] for f in fields]
        if rng.random() < bad_rate:
            cells = spoil_sheet_row(rng, cells, index)
            bad += 1
        sheet.append(cells)
        truth.append(("erp", str(row["erp_order_id"]), person.person_id))
    _save_stable(book, day_folder(out, "erp", "orders", day) / f"orders_{day:%Y%m%d}.xlsx", day)
    return len(truth), bad, truth


def _save_stable(book: object, path: Path, day: date) -> None:
    """Save a workbook byte-for-byte the same for the same content (deterministic per seed):
    openpyxl stamps the document properties and every zip entry with the current time."""
    import re
    import zipfile

    stamp = day_start(day)
    book.properties.created = book.properties.modified = stamp
    buffer = io.BytesIO()
    book.save(buffer)
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=stamp.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl sets `modified` to now on save
                data = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*",
                    rb"\g<1>" + f"{day}T00:00:00Z".encode(),
                    data,
                )
            dst.writestr(entry, data)


def commerce_writers() -> dict:
    """This module's writers and its siblings', for simulate's `_writers()` registry, in the
    order they must run: the Tmall details and the ERP read the day's Tmall file (written before
    the registry runs), and tier changes read the points state the points writer left."""
    from jobs.ingest.simulate_details import (
        write_tmall_order_items,
        write_tmall_refunds,
        write_tmall_reviews,
    )
    from jobs.ingest.simulate_loyalty import write_coupons, write_points, write_tier_changes

    return {
        "miniprogram.orders": write_miniprogram_orders,
        "pos.orders": write_pos_orders,
        "erp.orders": write_erp_orders,
        "tmall.order_items": write_tmall_order_items,
        "tmall.refunds": write_tmall_refunds,
        "tmall.reviews": write_tmall_reviews,
        "crm.points": write_points,
        "crm.tier_changes": write_tier_changes,
        "crm.coupons": write_coupons,
    }
