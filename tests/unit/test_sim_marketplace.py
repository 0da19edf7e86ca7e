"""The marketplace writers (Tmall's export and TOP trades, JD, 抖店, 拼多多) and Tmall's details:
every file parses with its spec, quarantines exactly what was spoiled, shows each platform's ids
as the platform gives them, agrees with the ground truth, and carries the mess at its rate.

Expectations come from the ground truth and the world's people (rebuilt from the seed), never
from counts written down: a flag must match what the record shows, and what a record shows must
be flagged.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.ingest.decoding import decode
from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.spec import get_spec
from jobs.simulator import Mess, World, simulate
from jobs.simulator import marketplace as mk
from jobs.simulator import tmall_details as details
from jobs.simulator.mess import TEST_TITLE, TMALL_NEW_COLUMN
from jobs.simulator.truth import normalize
from jobs.simulator.world import BRAND_TOP_APP_KEY

END = date(2026, 11, 22)
DAYS = 4
SEED = 5
CUSTOMERS = 3000
VOLUME = 0.2  # orders_per_customer_day: 4x the demo's, so a small world shows every class
ORDERS = ("tmall.orders", "tmall.trades", "jd.orders", "douyin.orders", "pdd.orders")
DETAILS = tuple(details.WRITERS)
MINE = set(mk.WRITERS) | set(details.WRITERS)
TRUTH = {**mk.TRUTH, **details.TRUTH}
# Higher than the demo's, so every class shows often enough to measure in a small world.
RATES = Mess(
    test_order_rate=0.02,
    fake_order_rate=0.04,
    resync_rate=0.2,
    late_rate=0.1,
    address_variant_rate=0.2,
    name_typo_rate=0.1,
    fullwidth_rate=0.05,
    junk_id_rate=0.05,
    household_rate=0.1,
    gift_rate=0.08,
    new_column_day=2,
)
GENUINE_EXCLUDED = {"test", "fake", "resync"}
MESS_FLAGS = {
    "test", "fake", "resync", "late", "name_typo", "address_variant", "junk_id",
    "fullwidth_phone", "fullwidth_amount", "gift", "spoiled",
}  # fmt: skip


class Written:
    """A simulated run: its truth rows and every parsed line of my datasets, file by file."""

    def __init__(self, out: Path, summary):
        self.out, self.summary = out, summary
        with (out / "_truth" / "records.csv").open(encoding="utf-8") as fh:
            self.truth = list(csv.DictReader(fh))
        self.holders = defaultdict(list)
        with (out / "_truth" / "identifiers.csv").open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                self.holders[(row["identifier_type"], row["value"])].append(row["person_id"])
        self.items: dict[str, list[tuple[date, Record | Rejected]]] = {}
        for key in MINE:
            spec = get_spec(key)
            rows = []
            for path in sorted((out / spec.source / spec.dataset).glob("dt=*/*")):
                day = date.fromisoformat(path.parent.name.removeprefix("dt="))
                rows.extend((day, item) for item in parse_file(path, spec))
            self.items[key] = rows

    def joined(self, key: str) -> list[tuple[dict, Record | Rejected]]:
        """Truth rows of `key` beside the parsed line they describe (files and truth align)."""
        rows = [t for t in self.truth if t["dataset"] == key]
        items = self.items[key]
        assert len(rows) == len(items), key
        for t, (day, _item) in zip(rows, items, strict=True):
            assert t["dt"] == str(day), key
        return [(t, item) for t, (_day, item) in zip(rows, items, strict=True)]

    def records(self, key: str, day: date | None = None) -> list[Record]:
        return [i for d, i in self.items[key] if isinstance(i, Record) and day in (None, d)]


def _run(tmp_path_factory, name: str, **kw) -> Written:
    out = tmp_path_factory.mktemp(name)
    kw = {"customers": 1500, "days": 2, "seed": SEED, "end": END, **kw}
    return Written(out, simulate(out, only=MINE, **kw))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Written:
    return _run(
        tmp_path_factory, "world", customers=CUSTOMERS, days=DAYS, mess=RATES,
        orders_per_customer_day=VOLUME,
    )  # fmt: skip


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Written:
    return _run(
        tmp_path_factory, "clean", bad_rate=0.0, mess=Mess.none(), orders_per_customer_day=0.2
    )


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> Written:
    return _run(tmp_path_factory, "dirty", bad_rate=0.3, orders_per_customer_day=0.2)


@pytest.fixture(scope="module")
def people() -> World:
    return World(CUSTOMERS, SEED, END, household_share=RATES.household_rate)


def _flags(row: dict) -> set[str]:
    return set(filter(None, row["flags"].split("|")))


def _near(observed: int, n: int, rate: float) -> bool:
    """Within 4.5 binomial standard deviations (plus one) of n * rate."""
    return abs(observed - n * rate) <= 4.5 * math.sqrt(n * rate * (1 - rate)) + 1


def _plain(text: str) -> str:
    return text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))


# --- files parse, and quarantine exactly what was spoiled ---------------------------------------


@pytest.mark.parametrize("key", sorted(MINE))
def test_clean_days_parse_every_line(clean, key):
    spec = get_spec(key)
    items = clean.items[key]
    assert len(items) > 5, key
    assert [i for _d, i in items if isinstance(i, Rejected)] == []
    for _day, rec in items:
        assert not rec.issues, (key, rec.issues)
        for field, mapping in spec.values.items():
            assert rec.values[field] in (None, *mapping.values()), (key, field)
    truth = [t for t in clean.truth if t["dataset"] == key]
    assert {TRUTH[key].record_id(r.values) for _d, r in items} == {t["record_id"] for t in truth}
    assert not any(_flags(t) & MESS_FLAGS for t in truth), "Mess.none() writes no mess"


@pytest.mark.parametrize("key", sorted(MINE))
def test_spoiled_lines_and_only_those_are_rejected_with_a_reason(dirty, key):
    joined = dirty.joined(key)
    spoiled = [t for t, _i in joined if "spoiled" in _flags(t)]
    assert spoiled, key
    for t, item in joined:
        assert isinstance(item, Rejected) == ("spoiled" in _flags(t)), (key, t, item)
        if isinstance(item, Rejected):
            assert item.reason
            assert item.raw


@pytest.mark.parametrize(
    ("key", "encodings"),
    [
        ("tmall.orders", {"gb18030", "utf-8-sig"}),  # GBK on even days, UTF-8 with a BOM else
        ("jd.orders", {"gb18030"}),
        ("douyin.orders", {"utf-8-sig"}),
        ("pdd.orders", {"utf-8-sig"}),
        ("tmall.order_items", {"gb18030"}),
        ("tmall.refunds", {"utf-8-sig"}),
    ],
)
def test_encoding_per_export(clean, key, encodings):
    spec = get_spec(key)
    paths = sorted((clean.out / spec.source / spec.dataset).glob("dt=*/*.csv"))
    seen = {decode(p.read_bytes())[1] for p in paths}
    assert seen == encodings if len(paths) > 1 else seen <= encodings


# --- identities, as each platform shows them ----------------------------------------------------


@pytest.mark.parametrize("key", sorted(MINE))
def test_identifiers_in_the_files_resolve_to_the_records_person(world, key):
    """Read the ids back OUT OF THE FILES through the spec: each is held (identifiers.csv) by
    the record's person, or the receiver on a gift for the receiver fields."""
    info = TRUTH[key]
    checked = Counter()
    for t, item in world.joined(key):
        if isinstance(item, Rejected):
            continue
        assert info.record_id(item.values) == t["record_id"]
        owner = t["person_id"]
        for field, kind in info.identifiers.items():
            value = item.values[field]
            assert value, (key, field)
            if field in info.receiver_fields and t["receiver_person_id"]:
                owner = t["receiver_person_id"]
            assert owner in world.holders[(kind, normalize(kind, value))], (key, field, value)
            checked[kind] += 1
    assert bool(checked) == bool(info.identifiers), key


def test_no_marketplace_shows_a_full_phone(world, people):
    for key in ORDERS:
        if key == "tmall.trades":
            continue
        for t, item in world.joined(key):
            if not isinstance(item, Record) or not t["person_id"].startswith("P"):
                continue
            mobile = item.values["receiver_mobile"]
            who = people.by_id(t["receiver_person_id"] or t["person_id"])
            assert "****" in mobile or (key == "douyin.orders" and "-" in mobile), (key, mobile)
            assert normalize("phone", mobile) != who.phone_at(datetime.fromisoformat(t["dt"]))


def test_platform_ids_are_the_buyers_own(world, people):
    for key, field, own in [
        ("tmall.orders", "buyer_nick", lambda p: p.tmall_nick),
        ("tmall.trades", "buyer_open_uid", lambda p: p.tmall_open_uid(BRAND_TOP_APP_KEY)),
        ("tmall.reviews", "buyer_open_uid", lambda p: p.tmall_open_uid(BRAND_TOP_APP_KEY)),
        ("jd.orders", "buyer_pin", lambda p: p.jd_pin),
    ]:
        seen = 0
        for t, item in world.joined(key):
            if isinstance(item, Record) and t["person_id"].startswith("P"):
                assert item.values[field] == own(people.by_id(t["person_id"])), key
                seen += 1
        assert seen, key


def test_trades_receiver_fields_are_opaque_ciphertext(world):
    ciphers = Counter()
    for rec in world.records("tmall.trades"):
        v = rec.values
        assert v["receiver_mobile_cipher"].startswith("$")
        assert v["receiver_mobile_cipher"].endswith("$1$$")
        assert v["receiver_name_cipher"].startswith("~")
        assert not any(ch.isdigit() for ch in v["receiver_name_cipher"][:1])
        ciphers.update([v["receiver_mobile_cipher"], v["receiver_address_cipher"]])
        assert v["oaid"]
        assert v["receiver_state"]
        assert v["receiver_district"]
    assert ciphers
    assert max(ciphers.values()) == 1


def test_trades_are_the_export_orders_with_their_state(world):
    for day in (END - timedelta(days=d) for d in range(DAYS)):
        export = {r.values["order_id"]: r.values for r in world.records("tmall.orders", day)}
        trades = {r.values["order_id"]: r.values for r in world.records("tmall.trades", day)}
        both = set(export) & set(trades)
        assert len(both) > 0.9 * min(len(export), len(trades))
        for oid in both:
            e, t = export[oid], trades[oid]
            assert (t["order_status"], t["created"], t["pay_time"]) == (
                e["order_status"], e["created"], e["pay_time"],
            )  # fmt: skip
            assert t["payment"] == e["payment"]


def test_gifts_show_the_friends_receiver_details(world, people):
    gifts = 0
    for key in ("tmall.orders", "jd.orders", "douyin.orders", "pdd.orders"):
        for t, item in world.joined(key):
            if not isinstance(item, Record) or "gift" not in _flags(t):
                continue
            gifts += 1
            buyer, friend = people.by_id(t["person_id"]), people.by_id(t["receiver_person_id"])
            assert friend != buyer
            if "name_typo" not in _flags(t):
                assert item.values["receiver_name"] == friend.name
            if "address_variant" not in _flags(t):
                assert item.values["receiver_address"] == friend.address
    assert gifts > 0
    non_gift = [t for t in world.truth if t["receiver_person_id"] and "gift" not in _flags(t)]
    assert non_gift == []


# --- the mess, at its rate, and shown where truth flags it ----------------------------------


def _genuine_orders(world) -> list[dict]:
    return [
        t for t in world.truth
        if t["dataset"] in ("tmall.orders", "pdd.orders") and not _flags(t) & GENUINE_EXCLUDED
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("flag", "rate"),
    [
        ("name_typo", RATES.name_typo_rate),
        ("address_variant", RATES.address_variant_rate),
        ("late", RATES.late_rate),
        ("gift", RATES.gift_rate),
    ],
)
def test_per_order_mess_at_its_rate(world, flag, rate):
    genuine = _genuine_orders(world)  # one row per order (JD and 抖店 have one per line)
    hits = sum(flag in _flags(t) for t in genuine)
    assert hits > 0
    assert _near(hits, len(genuine), rate), (hits, len(genuine), rate)


@pytest.mark.parametrize(
    ("flag", "rate"), [("test", RATES.test_order_rate), ("fake", RATES.fake_order_rate)]
)
def test_test_and_fake_orders_at_their_rate(world, flag, rate):
    genuine = _genuine_orders(world)
    hits = sum(
        flag in _flags(t) for t in world.truth if t["dataset"] in ("tmall.orders", "pdd.orders")
    )
    assert hits > 0
    assert _near(hits, len(genuine), rate), (hits, len(genuine), rate)


def test_tmall_records_show_what_truth_flags(world, people):
    checked = Counter()
    for t, item in world.joined("tmall.orders"):
        flags = _flags(t)
        if not isinstance(item, Record) or flags & {"test", "fake", "resync", "gift"}:
            continue
        person = people.by_id(t["person_id"])
        v = item.values
        assert (v["receiver_name"] != person.name) == ("name_typo" in flags)
        assert (v["receiver_address"] != person.address) == ("address_variant" in flags)
        created = datetime.fromisoformat(v["created"]).date()
        day = date.fromisoformat(t["dt"])
        if "late" in flags:
            assert day - timedelta(days=RATES.late_max_days) <= created < day
        else:
            assert created == day
        mobile = v["receiver_mobile"]
        shown = person.phone_at(datetime.fromisoformat(v["created"]))
        if "junk_id" in flags:
            assert mobile in {"138****8000", "111****1111"}
        else:
            assert mobile == f"{shown[:3]}****{shown[-4:]}"
        assert ("household" in flags) == bool(person.household_id)
        checked.update(flags)
    assert {"name_typo", "address_variant", "late", "junk_id", "household"} <= set(checked)


def test_test_orders_are_zero_yuan_and_fake_rings_share_an_address(world):
    by_ring = defaultdict(set)
    for key in ("tmall.orders", "jd.orders", "douyin.orders", "pdd.orders"):
        source = key.split(".")[0]
        for t, item in world.joined(key):
            flags = _flags(t)
            if not isinstance(item, Record) or not flags & {"test", "fake"}:
                continue
            v = item.values
            created = datetime.fromisoformat(v["created"])
            if source != "pdd":  # PDD's 成交时间 is the payment time
                paid = datetime.fromisoformat(v["pay_time"])
                assert timedelta(0) < paid - created <= timedelta(seconds=20)
            if "test" in flags:
                assert float(v["payment"]) == 0
                assert t["person_id"] == f"TEST-{source}"
                assert v["item_title"] == TEST_TITLE
            else:
                assert 0 < float(v["payment"]) < 3
                assert t["person_id"].startswith(f"RING-{source}-")
                by_ring[t["person_id"].rsplit("-", 1)[0]].add(v["receiver_address"])
    assert by_ring
    assert all(len(places) == 1 for places in by_ring.values()), by_ring


@pytest.mark.parametrize("key", ["tmall.orders", "tmall.trades", "jd.orders", "douyin.orders"])
def test_resyncs_repeat_an_earlier_order_with_a_new_status(world, key):
    first: dict[str, tuple[date, object]] = {}
    resynced = 0
    for t, item in world.joined(key):
        day = date.fromisoformat(t["dt"])
        rid = t["record_id"]
        status = item.values["order_status"] if isinstance(item, Record) else None
        if "resync" not in _flags(t):
            assert rid not in first, "a first export repeats a record"
            first[rid] = (day, status)  # (a spoiled first line: quarantined, status unknown)
            continue
        resynced += 1
        assert rid in first, "a re-sync of an order never exported"
        was_day, was_status = first[rid]
        assert 1 <= (day - was_day).days <= RATES.resync_max_days
        if status is not None and was_status is not None:  # (both lines landed)
            assert status != was_status
    assert resynced > 0


def test_the_new_column_appears_from_its_day_on_and_lands_in_extra(world):
    first_day = world.summary.start + timedelta(days=RATES.new_column_day)
    for day, item in world.items["tmall.orders"]:
        if isinstance(item, Record):
            assert (TMALL_NEW_COLUMN[0] in item.extra) == (day >= first_day), day


def test_household_partners_ship_to_one_address(world, people):
    seen = defaultdict(set)
    for t, item in world.joined("tmall.orders"):
        flags = _flags(t)
        if (
            isinstance(item, Record)
            and "household" in flags
            and not flags & {"gift", "address_variant"}
        ):
            person = people.by_id(t["person_id"])
            assert person.household_id
            seen[person.household_id].add(item.values["receiver_address"])
    assert seen
    assert all(len(places) == 1 for places in seen.values())


def test_jd_lines_repeat_the_order_and_add_up(clean):
    by_order = defaultdict(list)
    for rec in clean.records("jd.orders"):
        by_order[rec.values["order_id"]].append(rec.values)
    assert any(len(lines) > 1 for lines in by_order.values())
    for lines in by_order.values():
        head = lines[0]
        for field in ("payment", "order_amount", "order_status", "buyer_pin", "receiver_name"):
            assert {line[field] for line in lines} == {head[field]}
        assert len({line["sku_id"] for line in lines}) == len(lines)
        total = sum(line["unit_price"] * line["item_quantity"] for line in lines)
        assert total == head["order_amount"] == head["payment"]
    raw = "".join(
        p.read_bytes().decode("gbk") for p in (clean.out / "jd" / "orders").glob("dt=*/*.csv")
    )
    cancelled = [v for lines in by_order.values() for v in lines[:1]
                 if v["order_status"] == "TRADE_CANCELED"]  # fmt: skip
    assert cancelled
    assert ",(删除)已取消," in raw
    assert ",已取消," in raw


def test_douyin_report_cells_read_without_their_tab_and_dashes(world):
    spec = get_spec("douyin.orders")
    raw = (
        next((world.out / "douyin" / "orders").glob("dt=*/*.csv")).read_bytes().decode("utf-8-sig")
    )
    assert "\n\t69" in raw  # long numbers kept as text
    assert ",-," in raw
    records = world.records("douyin.orders")
    assert records
    for rec in records:
        v = rec.values
        assert not v["order_id"].startswith("\t")
        assert not v["sku_id"].startswith("\t")
        assert v["item_title"]
        assert v["unit_price"] is not None
        if v["traffic_source"] == "商品卡":
            assert v["influencer_id"] is None
        assert v["order_status"] in set(spec.values["order_status"].values())


def test_pdd_amounts_and_discounts_agree(world):
    for rec in world.records("pdd.orders"):
        v = rec.values
        assert v["payment"] == v["goods_total"] - v["shop_discount"] - v["platform_discount"]
        assert v["merchant_received"] <= v["payment"]
        assert v["item_quantity"] >= 1


# --- streaming, determinism -----------------------------------------------------------------


def test_genuine_tmall_orders_push_cart_and_payment_events(world, people):
    import json

    events = [json.loads(line) for line in (world.out / "web" / "events" / "events.jsonl").open()]
    paid = [e for e in events if e["event_type"] == "order_paid"]
    genuine = [
        t for t in world.truth
        if t["dataset"] == "tmall.orders" and not _flags(t) & {"test", "fake", "resync", "late"}
    ]  # fmt: skip
    assert len(paid) == len(genuine)
    uids = {people.by_id(t["person_id"]).tmall_open_uid(BRAND_TOP_APP_KEY) for t in genuine}
    assert {e["buyer_open_uid"] for e in paid} == uids
    assert not any('"P0' in json.dumps(e) for e in events), "platform ids only, no truth id"


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    def files(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.*"))}

    kw = {"customers": 300, "days": 2, "end": END, "mess": RATES, "only": MINE}
    a = files(simulate(tmp_path / "a", seed=1, **kw).out)
    b = files(simulate(tmp_path / "b", seed=1, **kw).out)
    c = files(simulate(tmp_path / "c", seed=2, **kw).out)
    assert a == b
    assert a["_truth/records.csv"] != c["_truth/records.csv"]


# --- Tmall's details hang off the day's orders --------------------------------------------------


def test_details_join_to_the_tmall_orders_of_their_day(clean):
    for day in (END - timedelta(days=d) for d in range(2)):
        orders = {r.values["order_id"]: r.values for r in clean.records("tmall.orders", day)}
        items = clean.records("tmall.order_items", day)
        assert items
        paid_by_items = defaultdict(Decimal)
        for item in items:
            v = item.values
            assert v["order_id"] in orders
            assert v["order_status"] == orders[v["order_id"]]["order_status"]
            paid_by_items[v["order_id"]] += v["payment"]
        for order_id, total in paid_by_items.items():
            assert total == orders[order_id]["payment"]
        for refund in clean.records("tmall.refunds", day):
            order = orders[refund.values["order_id"]]
            assert refund.values["refund_fee"] <= order["payment"]
            if refund.values["refund_status"] == "SUCCESS":
                assert order["order_status"] == "TRADE_CLOSED"
                assert refund.values["refund_fee"] == order["refund_fee"]
            assert refund.values["applied"].startswith(str(day))
        reviews = clean.records("tmall.reviews", day)
        assert reviews
        trades = {r.values["order_id"]: r for r in clean.records("tmall.trades", day)}
        for review in reviews:
            order = orders[review.values["order_id"]]
            assert order["order_status"] == "TRADE_FINISHED"
            trade = trades[review.values["order_id"]]
            assert review.values["buyer_open_uid"] == trade.values["buyer_open_uid"]
            assert len(review.values["nick"]) == 4
            assert "**" in review.values["nick"]
        # The API's sub-orders are the item export's (free samples included).
        subs = defaultdict(set)
        for item in items:
            subs[item.values["order_id"]].add(item.values["sub_order_id"])
        assert any(len(oids) > 1 for oids in subs.values())
        for order_id, oids in subs.items():
            extra = trades[order_id].extra
            assert oids == {v for k, v in extra.items() if k.endswith(".oid")}
            assert len(oids) > 1 or oids == {order_id}
    closed = [
        v for v in (r.values for r in clean.records("tmall.orders"))
        if v["order_status"] == "TRADE_CLOSED" and v["refund_fee"]
    ]  # fmt: skip
    assert closed
    refunded = {r.values["order_id"] for r in clean.records("tmall.refunds")}
    assert {v["order_id"] for v in closed} <= refunded


def test_every_detail_record_is_in_truth_with_its_buyer(clean):
    owners = {}
    for t in clean.truth:
        if t["dataset"] == "tmall.orders":
            owners[t["record_id"]] = t["person_id"]
    for key in DETAILS:
        for t, item in clean.joined(key):
            assert TRUTH[key].record_id(item.values) == t["record_id"]
            assert t["person_id"] == owners[item.values["order_id"]], key


# --- specs and silver -------------------------------------------------------------------------

SILVER_STATUSES = {"pending", "paid", "shipped", "completed", "refunded", "closed"}


@pytest.mark.parametrize("key", ORDERS)
def test_silver_section_maps_every_status_and_id_field(key):
    spec = get_spec(key)
    silver = spec.silver
    fields = {c.field for c in spec.columns}
    codes = set(spec.json_schema()["properties"]["order_status"]["enum"])
    assert codes == set(silver.status), key
    assert set(silver.status.values()) <= SILVER_STATUSES
    for buyer in silver.buyer_ids:
        assert buyer.field in fields
    ids = {f for f, kind in mk.TRUTH[key].identifiers.items()}
    assert {b.field for b in silver.buyer_ids} == ids, "silver keys on the export's buyer id"
    assert set(silver.refunded_when_refund) <= codes
    if silver.refunded_when_refund:
        assert silver.refund_field in fields


def test_statuses_the_simulator_writes_are_in_the_specs():
    for key, statuses in [
        ("tmall.orders", mk.TMALL_STATUSES),
        ("jd.orders", mk.JD_STATUSES),
        ("douyin.orders", mk.DOUYIN_STATUSES),
        ("pdd.orders", mk.PDD_STATUSES),
    ]:
        known = set(get_spec(key).values["order_status"])
        assert set(statuses) <= known, key
        nexts = {
            s
            for options in getattr(mk, key.split(".")[0].upper() + "_NEXT").values()
            for s in options
        }
        assert nexts <= known, key


def test_per_line_silver_keeps_the_order_total_and_sums_its_quantities(spark):
    from jobs.silver.orders import to_silver

    t = datetime(2026, 11, 22, 9)
    rows = [  # order 1 has two lines in one file; order 2 was re-synced the next day
        ("1001", "A", 2, "298.00", "WAIT_SELLER_STOCK_OUT", "f1", 2, t),
        ("1001", "B", 1, "298.00", "WAIT_SELLER_STOCK_OUT", "f1", 3, t),
        ("1002", "A", 3, "90.00", "WAIT_SELLER_STOCK_OUT", "f1", 4, t),
        ("1002", "A", 3, "90.00", "FINISHED_L", "f2", 2, t + timedelta(days=1)),
    ]
    frame = spark.createDataFrame(
        [(o, s, q, Decimal(p), st, "jd_x", "139****0000", t, f, n, "b", at)
         for o, s, q, p, st, f, n, at in rows],
        "order_id string, sku_id string, item_quantity long, payment decimal(18,2), "
        "order_status string, buyer_pin string, receiver_mobile string, created timestamp, "
        "_file string, _line long, _batch_id string, _ingested_at timestamp",
    )  # fmt: skip
    out = {
        r.order_id: r
        for r in to_silver(frame, "jd", get_spec("jd.orders").silver, b"k" * 32).collect()
    }
    assert (out["1001"].amount, out["1001"].item_quantity) == (Decimal("298.00"), 3)
    assert (out["1002"].amount, out["1002"].item_quantity, out["1002"].status) == (
        Decimal("90.00"), 3, "completed",
    )  # fmt: skip


def test_an_order_from_the_export_and_the_api_is_one_silver_row(spark):
    from pyspark.sql import functions as F

    from jobs.silver.orders import SILVER_ORDER_COLUMNS, one_row_per_order

    t = datetime(2026, 11, 22, 9)

    def frame(key_type: str, at: datetime, order_ids: list[str]):
        rows = [(oid, "tmall", f"{key_type}-key", key_type, at) for oid in order_ids]
        df = spark.createDataFrame(
            rows, "order_id string, source string, customer_key string, key_type string, "
            "updated_at timestamp",
        )  # fmt: skip
        for column in SILVER_ORDER_COLUMNS:
            if column not in df.columns:
                df = df.withColumn(column, F.lit(None))
        return df.select(*SILVER_ORDER_COLUMNS)

    export = frame("tmall_nick", t + timedelta(hours=1), ["1", "2"])  # ingested later
    api = frame("tmall_open_uid", t, ["1", "3"])
    trades_priority = get_spec("tmall.trades").silver.priority
    out = {
        r.order_id: r for r in one_row_per_order([(export, 0), (api, trades_priority)]).collect()
    }
    assert set(out) == {"1", "2", "3"}
    assert out["1"].key_type == "tmall_open_uid"  # the API's row, whichever came later
    assert out["2"].key_type == "tmall_nick"
    assert list(one_row_per_order([(export, 0)]).columns) == SILVER_ORDER_COLUMNS


# --- the mess helpers the order writers use ---------------------------------------------------


def test_mess_helpers_always_change_the_text():
    import random

    from jobs.simulator.mess import address_variant, name_typo

    rng = random.Random(1)
    for address in ("上海市浦东新区世纪大道1号14栋2单元2204室", "广东省深圳市南山区科技园路88号"):
        assert all(address_variant(rng, address) != address for _ in range(50))
    for name in ("王伟", "李秀英", "吴", "马朱胡"):
        assert all(name_typo(rng, name) != name for _ in range(50))


def test_mess_book_keeps_only_pending_resyncs():
    import random

    from jobs.simulator.mess import MessBook

    book = MessBook(Mess(resync_rate=1.0, resync_max_days=1), seed=1)
    rng = random.Random(2)
    due = book.resync(rng, END, "等待出库", mk.JD_NEXT)
    assert due is not None
    assert due[0] == END + timedelta(days=1)
    assert due[1] in mk.JD_NEXT["等待出库"]
    book.defer("jd", due[0], "row")
    assert book.pending == 1
    assert book.take("jd", due[0]) == ["row"]
    assert book.pending == 0
    assert book.resync(rng, END, "完成", mk.JD_NEXT) is None
