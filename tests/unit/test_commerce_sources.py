"""Mini-program, POS, ERP, Tmall details and CRM exports: parse with their specs, quarantine what
was spoiled, join to the orders they belong to, and agree with the ground truth."""

import csv
import random
import shutil
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.simulate import Mess, People, simulate
from jobs.ingest.simulate_commerce import (
    MINIPROGRAM_APPIDS,
    commerce_writers,
    member_card,
    wx_openid,
    wx_unionid,
)
from jobs.ingest.spec import get_spec

END = date(2026, 11, 22)
DAYS = 6
SEED = 5
CUSTOMERS = 1000
KEYS = list(commerce_writers())
DIRTY_CUSTOMERS = 6000


def _files(out: Path, key: str, day: date | None = None) -> list[Path]:
    spec = get_spec(key)
    pattern = f"dt={day}/*.{spec.format}" if day else f"dt=*/*.{spec.format}"
    return sorted((out / spec.source / spec.dataset).glob(pattern))


def _parsed(out: Path, key: str, day: date | None = None) -> list[Record | Rejected]:
    spec = get_spec(key)
    return [item for path in _files(out, key, day) for item in parse_file(path, spec)]


def _records(out: Path, key: str, day: date | None = None) -> list[Record]:
    return [i for i in _parsed(out, key, day) if isinstance(i, Record)]


def _truth(out: Path) -> dict[str, list[dict]]:
    by_source = defaultdict(list)
    with (out / "_truth" / "records.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by_source[row["source"]].append(row)
    return by_source


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    simulate(
        out, customers=CUSTOMERS, days=DAYS, seed=SEED, end=END, bad_rate=0.0, mess=Mess.none()
    )
    return out


@pytest.fixture(scope="module")
def dirty(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dirty")
    simulate(out, customers=DIRTY_CUSTOMERS, days=1, seed=SEED, end=END, bad_rate=0.15)
    return out


@pytest.fixture(scope="module")
def people() -> People:
    return People(CUSTOMERS, SEED)


def test_every_dataset_lands_and_parses_clean(clean):
    for key in KEYS:
        items = _parsed(clean, key)
        assert items, f"{key}: nothing written"
        rejected = [i for i in items if isinstance(i, Rejected)]
        assert rejected == [], f"{key}: {rejected[:3]}"
        for day in (END - timedelta(days=d) for d in range(DAYS)):
            assert _files(clean, key, day), f"{key}: no file for {day}"


@pytest.mark.parametrize("key", KEYS)
def test_spoiled_lines_are_exactly_the_rejected_ones_with_a_reason(dirty, tmp_path, key):
    # Rewrite the last day of `key` into a fresh folder holding only the day's Tmall file, so the
    # writer's own count of spoiled lines can be compared with what the parser rejects.
    tmall = get_spec("tmall.orders")
    src = dirty / tmall.source / tmall.dataset / f"dt={END}"
    shutil.copytree(src, tmp_path / tmall.source / tmall.dataset / f"dt={END}")
    world = People(DIRTY_CUSTOMERS, SEED, Mess().household_rate)
    if key == "crm.tier_changes":  # reads the state the points writer leaves
        commerce_writers()["crm.points"](
            tmp_path, END, world, random.Random(1), bad_rate=0.0, seq_start=0
        )
    written, spoiled, truth = commerce_writers()[key](
        tmp_path, END, world, random.Random(2), bad_rate=0.3, seq_start=10
    )
    items = _parsed(tmp_path, key, END)
    rejected = [i for i in items if isinstance(i, Rejected)]
    # A spoiled optional field becomes null with its reason (an Issue); anything else quarantines.
    flagged = [i for i in items if isinstance(i, Record) and i.issues]
    assert written > 5, key
    assert spoiled > 0, key
    assert len(items) == written == len(truth)
    assert len(rejected) + len(flagged) == spoiled
    assert all(issue.reason and issue.value for r in flagged for issue in r.issues)
    for r in rejected:
        if r.field is None:
            assert r.reason.startswith("malformed"), r.reason
        else:
            assert r.field in r.reason, r.reason
        assert r.raw


def test_ground_truth_covers_every_record(clean):
    truth = _truth(clean)
    id_field = {
        "miniprogram.orders": ("miniprogram", "order_id"),
        "pos.orders": ("pos", "order_id"),
        "erp.orders": ("erp", "erp_order_id"),
        "tmall.order_items": ("tmall.order_items", "sub_order_id"),
        "tmall.refunds": ("tmall.refunds", "refund_id"),
        "tmall.reviews": ("tmall.reviews", "order_id"),
        "crm.points": ("crm.points", "ledger_id"),
        "crm.tier_changes": ("crm.tier_changes", "change_id"),
    }
    for key, (source, field) in id_field.items():
        ids = {str(r.values[field]) for r in _records(clean, key)}
        # the mini-program's events share the source name; its orders are the MP ids
        mine = [t for t in truth[source] if source != "miniprogram" or t["record_id"][:2] == "MP"]
        assert ids == {t["record_id"] for t in mine}, key
    coupons = {
        f"{r.values['coupon_code']}:{r.values['status']}" for r in _records(clean, "crm.coupons")
    }
    status = get_spec("crm.coupons").values["status"]
    truth_coupons = {t["record_id"] for t in truth["crm.coupons"]}
    assert {
        c.rsplit(":", 1)[0] + ":" + status[c.rsplit(":", 1)[1]] for c in truth_coupons
    } == coupons
    # people in the world behind every order of the brand's own channels
    for source in ("pos", "erp"):
        assert all(t["person_id"].startswith("P") for t in truth[source])


def test_details_join_to_the_tmall_orders_of_their_day(clean):
    for day in (END - timedelta(days=d) for d in range(DAYS)):
        orders = {str(r.values["order_id"]): r.values for r in _records(clean, "tmall.orders", day)}
        items = _records(clean, "tmall.order_items", day)
        assert items
        paid_by_items = defaultdict(float)
        for item in items:
            v = item.values
            assert v["order_id"] in orders
            assert v["order_status"] == orders[v["order_id"]]["order_status"]
            paid_by_items[v["order_id"]] += float(v["payment"])
        for order_id, total in paid_by_items.items():
            assert total == pytest.approx(float(orders[order_id]["payment"]))
        for refund in _records(clean, "tmall.refunds", day):
            order = orders[refund.values["order_id"]]
            assert refund.values["refund_fee"] <= order["payment"]
            if refund.values["refund_status"] == "SUCCESS":
                assert order["order_status"] == "TRADE_CLOSED"
                assert refund.values["refund_fee"] == order["refund_fee"]
            assert refund.values["applied"].startswith(str(day))
        reviews = _records(clean, "tmall.reviews", day)
        assert reviews
        for review in reviews:
            order = orders[review.values["order_id"]]
            assert order["order_status"] == "TRADE_FINISHED"
            assert review.values["buyer_open_uid"] == order["buyer_open_uid"]
    closed = [
        v
        for day in (END - timedelta(days=d) for d in range(DAYS))
        for v in (r.values for r in _records(clean, "tmall.orders", day))
        if v["order_status"] == "TRADE_CLOSED" and v["refund_fee"]
    ]
    refunded = {r.values["order_id"] for r in _records(clean, "tmall.refunds")}
    assert {v["order_id"] for v in closed} <= refunded


def test_erp_links_marketplace_orders_by_their_platform_id(clean):
    direct = set(get_spec("erp.orders").silver["linked_order"]["ingested_directly"])
    tmall_ids = {str(r.values["order_id"]) for r in _records(clean, "tmall.orders")}
    erp = _records(clean, "erp.orders")
    by_platform = defaultdict(list)
    for r in erp:
        by_platform[r.values["platform"]].append(r.values)
    assert by_platform["tmall"]
    assert set(by_platform) - direct
    assert {v["online_order_id"] for v in by_platform["tmall"]} <= tmall_ids
    online = [v["online_order_id"] for v in (r.values for r in erp)]
    assert len(online) == len(set(online)), "the ERP exports each online order once"


def test_identity_fields_as_each_system_shows_them(clean, people):
    truth = _truth(clean)
    owner = {
        t["record_id"]: people[int(t["person_id"][1:]) - 1]
        for t in truth["miniprogram"]
        if t["record_id"].startswith("MP")
    }
    unionids = defaultdict(set)
    for r in _records(clean, "miniprogram.orders"):
        person, v = owner[r.values["order_id"]], r.values
        assert v["appid"] in MINIPROGRAM_APPIDS
        assert v["openid"] == wx_openid(person, v["appid"])
        assert v["unionid"] == wx_unionid(person)
        assert v["buyer_phone"] in (None, person.phone)
        unionids[person.person_id].add(v["unionid"])
    assert all(len(u) == 1 for u in unionids.values())
    assert any(v is None for u in unionids.values() for v in u), "some users never bound"
    assert len({wx_openid(people[0], a) for a in MINIPROGRAM_APPIDS}) == 2

    owner = {t["record_id"]: people[int(t["person_id"][1:]) - 1] for t in truth["pos"]}
    walk_ins = 0
    for r in _records(clean, "pos.orders"):
        person, v = owner[r.values["order_id"]], r.values
        if v["member_card"] is None:
            walk_ins += 1
            assert v["member_mobile"] is None
        else:
            assert (v["member_card"], v["member_mobile"]) == (member_card(person), person.phone)
    assert 0 < walk_ins < len(truth["pos"])


def test_points_balances_follow_each_other_across_days(clean):
    last: dict[str, int] = {}
    rows = sorted(
        (r.values for r in _records(clean, "crm.points")),
        key=lambda v: (v["occurred"], v["ledger_id"]),
    )
    assert {v["change_type"] for v in rows} >= {"EARN", "REDEEM"}
    for v in rows:
        before = last.get(v["member_card"], 0)
        assert v["balance"] == before + v["points"] >= 0, v
        last[v["member_card"]] = v["balance"]
    joins = [
        r.values for r in _records(clean, "crm.tier_changes") if r.values["change_type"] == "JOIN"
    ]
    assert len({v["member_card"] for v in joins}) == len(joins), "a member joins once"
    assert {v["member_card"] for v in joins} == set(last)


def test_coupons_are_redeemed_or_expire_only_after_being_issued(clean):
    issued: dict[str, str] = {}
    later = []
    for day in sorted(END - timedelta(days=d) for d in range(DAYS)):
        for v in (r.values for r in _records(clean, "crm.coupons", day)):
            if v["status"] == "ISSUED":
                issued[v["coupon_code"]] = str(day)
            else:
                later.append((v, str(day)))
    assert issued
    assert later
    for v, day in later:
        assert issued[v["coupon_code"]] < day


def test_deterministic_for_a_seed(clean, tmp_path):
    simulate(
        tmp_path, customers=CUSTOMERS, days=DAYS, seed=SEED, end=END, bad_rate=0.0, mess=Mess.none()
    )
    for key in KEYS:
        first = [(r.line, r.values) for r in _records(clean, key)]
        again = [(r.line, r.values) for r in _records(tmp_path, key)]
        assert first == again, key


def test_invoice_emails_are_the_buyers_own_or_a_placeholder(tmp_path):
    from datetime import date

    from jobs.ingest.records import Record, parse_file
    from jobs.ingest.simulate import JUNK_EMAIL, Mess, People, simulate
    from jobs.ingest.simulate_commerce import buyer_email
    from jobs.ingest.spec import get_spec

    end = date(2026, 11, 22)
    simulate(
        tmp_path, customers=20_000, days=2, seed=5, end=end, bad_rate=0.0,
        only={"miniprogram.orders"},
    )  # fmt: skip
    people = People(20_000, 5, Mess().household_rate)
    by_id = {p.person_id: p for p in people}
    truth = {}
    for line in (tmp_path / "_truth" / "records.csv").read_text(encoding="utf-8").splitlines()[1:]:
        source, record_id, person_id = line.split(",")[:3]
        truth[(source, record_id)] = person_id
    emails = [
        (r.values["invoice_email"], truth[("miniprogram", r.values["order_id"])])
        for path in sorted((tmp_path / "miniprogram" / "orders").glob("dt=*/*.jsonl"))
        for r in parse_file(path, get_spec("miniprogram.orders"))
        if isinstance(r, Record) and r.values["invoice_email"]
    ]
    assert len(emails) > 10
    junk = [e for e, _ in emails if e == JUNK_EMAIL]
    assert 0 < len(junk) < len(emails) / 2
    for email, person_id in emails:
        assert email in (JUNK_EMAIL, buyer_email(by_id[person_id]))
