"""The simulated Youzan orders: what the connector lands (decrypted), read back through the spec.

Expectations come from ground truth and the world's people (rebuilt from the seed), never from
counts written down: an identifier in a file must be its record's person's (or, on a gift, the
receiver's), a flag must match what the record shows.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.spec import get_spec
from jobs.simulator import Mess, World, datasets, simulate
from jobs.simulator.mess import JUNK_PHONES, TEST_TITLE
from jobs.simulator.truth import normalize
from jobs.simulator.world import OA, YOUZAN_KDT_ID
from jobs.simulator.youzan import (
    DISTRIBUTOR_SHOPS,
    FENXIAO_RATE,
    PII_PATHS,
    REFERRAL_RATE,
    TRUTH,
    WRITERS,
    decrypt,
    encrypt,
    encrypt_order,
    order_shop,
)

KEY = "youzan.orders"
END = date(2026, 11, 22)
DAYS = 4
SEED = 11
CUSTOMERS = 3000
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
)
NOT_GENUINE = {"test", "fake", "resync"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("youzan")
    summary = simulate(
        out, customers=CUSTOMERS, days=DAYS, seed=SEED, end=END, mess=RATES,
        orders_per_customer_day=1.0, only={KEY},
    )  # fmt: skip
    truth = [
        row
        for row in csv.DictReader((out / "_truth" / "records.csv").open(encoding="utf-8"))
        if row["dataset"] == KEY
    ]
    holders = defaultdict(list)
    with (out / "_truth" / "identifiers.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            holders[(row["identifier_type"], row["value"])].append(row)
    spec = get_spec(KEY)
    parsed = []
    for path in sorted((out / "youzan" / "orders").glob("dt=*/*.jsonl")):
        dt = path.parent.name.removeprefix("dt=")
        parsed.extend((dt, item) for item in parse_file(path, spec))
    assert len(truth) == len(parsed)  # truth lists every line, in file order
    joined = []
    for t, (dt, item) in zip(truth, parsed, strict=True):
        assert t["dt"] == dt
        joined.append((t, item))
    return out, summary, joined, holders, World(CUSTOMERS, SEED, END, household_share=0.1)


def _flags(row: dict) -> set[str]:
    return set(filter(None, row["flags"].split("|")))


def _near(observed: int, n: int, rate: float) -> bool:
    """Within 4.5 binomial standard deviations (plus one) of n * rate."""
    return abs(observed - n * rate) <= 4.5 * math.sqrt(n * rate * (1 - rate)) + 1


def _genuine(world):
    for t, item in world[2]:
        if isinstance(item, Record) and not _flags(t) & NOT_GENUINE:
            yield t, item


def _plain(text: str) -> str:
    return text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))


def test_the_module_describes_its_dataset():
    assert list(WRITERS) == [KEY]
    assert datasets()[KEY] is TRUTH[KEY]
    assert set(TRUTH[KEY].identifiers) <= {c.field for c in get_spec(KEY).columns}
    assert TRUTH[KEY].receiver_fields <= set(TRUTH[KEY].identifiers)


def test_every_spoiled_line_and_only_those_are_rejected(world):
    rejected = 0
    for t, item in world[2]:
        assert isinstance(item, Rejected) == ("spoiled" in _flags(t)), (t, item)
        rejected += isinstance(item, Rejected)
    assert rejected > 0
    assert world[1].bad_lines == rejected


def test_identifiers_in_the_files_resolve_to_the_records_person(world):
    """The consistency rule of the world, for this dataset: every identifier field, read back
    through the spec, resolves through identifiers.csv to the record's person (the receiver's
    fields on a gift to the receiver), except phones on junk_id records."""
    info = TRUTH[KEY]
    holders = world[3]
    checked = Counter()
    for t, item in world[2]:
        if not isinstance(item, Record):
            continue
        assert info.record_id(item.values) == t["record_id"]
        flags = _flags(t)
        for field, kind in info.identifiers.items():
            value = item.values.get(field)
            if value in (None, "") or (kind == "phone" and "junk_id" in flags):
                continue
            owner = t["person_id"]
            if field in info.receiver_fields and t["receiver_person_id"]:
                owner = t["receiver_person_id"]
            rows = holders.get((kind, normalize(kind, value)), [])
            assert rows, f"{t['record_id']}: {field}={value!r} is nobody's {kind}"
            day = date.fromisoformat(t["dt"])
            lo = datetime.combine(day - timedelta(days=8), datetime.min.time())
            hi = datetime.combine(day + timedelta(days=1), datetime.min.time())
            assert any(
                r["person_id"] == owner
                and (not r["valid_from"] or datetime.fromisoformat(r["valid_from"]) < hi)
                and (not r["valid_to"] or datetime.fromisoformat(r["valid_to"]) > lo)
                for r in rows
            ), (t["record_id"], field, value, owner, [r["person_id"] for r in rows])
            checked[kind] += 1
    assert set(checked) == {"youzan_open_id", "youzan_fans_id", "wechat_openid", "phone"}


def test_buyers_show_their_youzan_ids_their_oa_openid_and_their_login_phone(world):
    people = world[4]
    sources = Counter()
    for t, item in _genuine(world):
        v, person = item.values, people.by_id(t["person_id"])
        created = datetime.fromisoformat(v["created"])
        assert v["yz_open_id"] == person.yz_open_id
        assert v["buyer_phone"] == person.phone_at(created)  # never typed: no typo, no junk
        platform = item.extra["full_order_info.source_info.source.platform"]
        sources[platform] += 1
        if platform == "wx":  # the shop is bound to the Official Account
            assert v["outer_user_id"] == person.openid(OA)
            assert v["fans_id"] == str(person.youzan_fans_id)
            assert item.extra["full_order_info.buyer_info.fans_type"] == "1"
        else:
            assert v["outer_user_id"] is None  # "" in the file
            assert v["fans_id"] is None
    assert sources["wx"] > sum(sources.values()) / 2
    assert len(sources) > 1


def test_receivers_show_the_mess_and_gifts_the_friend(world):
    people = world[4]
    seen = Counter()
    for t, item in _genuine(world):
        v, flags = item.values, _flags(t)
        person = people.by_id(t["person_id"])
        created = datetime.fromisoformat(v["created"])
        detail = person.address_parts[3] + person.address_parts[4]
        if "gift" in flags:
            friend = people.by_id(t["receiver_person_id"])
            assert friend != person
            assert v["receiver_name"] == friend.name
            assert v["receiver_tel"] == friend.phone_at(created)
            assert v["receiver_address"] == friend.address_parts[3] + friend.address_parts[4]
        else:
            assert t["receiver_person_id"] == ""
            assert (v["receiver_name"] != person.name) == ("name_typo" in flags)
            assert (v["receiver_address"] != detail) == ("address_variant" in flags)
            if "junk_id" in flags:
                assert _plain(v["receiver_tel"]) in JUNK_PHONES
            else:
                assert _plain(v["receiver_tel"]) == person.phone_at(created)
                assert (v["receiver_tel"] != person.phone_at(created)) == (
                    "fullwidth_phone" in flags
                )
        seen.update(flags)
    assert {"gift", "name_typo", "address_variant", "junk_id", "fullwidth_phone"} <= set(seen)
    genuine = sum(1 for _ in _genuine(world))
    assert _near(seen["gift"], genuine, RATES.gift_rate)


def test_orders_carry_referrals_and_distributor_shops(world):
    holders = world[3]
    genuine = referred = fenxiao = 0
    for t, item in _genuine(world):
        genuine += 1
        v = item.values
        if v["salesman_mobile"]:
            referred += 1
            owners = {r["person_id"] for r in holders[("phone", v["salesman_mobile"])]}
            assert owners, "a 销售员 is a real person of the world"
            assert t["person_id"] not in owners or "household" in _flags(t)
        is_fenxiao = item.extra["full_order_info.order_info.order_tags.is_fenxiao_order"]
        assert (is_fenxiao == "true") == (v["fx_kdt_id"] is not None)
        if v["fx_kdt_id"] is not None:
            fenxiao += 1
            assert v["fx_kdt_id"] in DISTRIBUTOR_SHOPS
            assert v["fx_order_no"]
    assert _near(referred, genuine, REFERRAL_RATE)
    assert _near(fenxiao, genuine, FENXIAO_RATE)


def test_test_orders_are_zero_yuan_and_fake_rings_share_an_address_and_a_device(world):
    by_ring = defaultdict(set)
    kinds = Counter()
    for t, item in world[2]:
        flags = _flags(t)
        if not isinstance(item, Record) or not flags & {"test", "fake"}:
            continue
        v = item.values
        pay = datetime.fromisoformat(v["pay_time"]) - datetime.fromisoformat(v["created"])
        assert timedelta(0) < pay <= timedelta(seconds=20)
        assert v["outer_user_id"] is None
        if "test" in flags:
            kinds["test"] += 1
            assert float(v["payment"]) == 0
            assert t["person_id"] == "TEST-youzan"
            assert v["item_title"] == TEST_TITLE
        else:
            kinds["fake"] += 1
            assert 0 < float(v["payment"]) < 3
            assert t["person_id"].startswith("RING-youzan-")
            ring = t["person_id"].rsplit("-", 1)[0]
            by_ring[ring + ":address"].add(v["receiver_address"])
            by_ring[ring + ":device"].add(v["create_device_id"])
    assert kinds["test"] > 0
    assert kinds["fake"] > 0
    assert all(len(values) == 1 for values in by_ring.values()), by_ring


def test_resyncs_repeat_an_earlier_order_with_a_new_status(world):
    first: dict[str, tuple[date, str]] = {}
    resynced = 0
    for t, item in world[2]:
        if not isinstance(item, Record):
            continue
        day = date.fromisoformat(t["dt"])
        order_id = item.values["order_id"]
        if "resync" not in _flags(t):
            assert order_id not in first, "a first export repeats an id"
            first[order_id] = (day, item.values["status"])
            continue
        resynced += 1
        assert order_id in first, "a re-sync of an order never exported"
        was_day, was_status = first[order_id]
        assert 1 <= (day - was_day).days <= RATES.resync_max_days
        assert item.values["status"] != was_status
    assert resynced > 0


def test_every_line_changed_on_its_files_day_with_youzans_statuses(world):
    """What a pull by update time lands: each line's update_time is on its file's day."""
    statuses, refunds = Counter(), Counter()
    for t, item in world[2]:
        if not isinstance(item, Record):
            continue
        v = item.values
        assert v["update_time"][:10] == t["dt"]
        assert v["created"] <= v["update_time"]
        created = date.fromisoformat(v["created"][:10])
        assert (created < date.fromisoformat(t["dt"])) == bool(_flags(t) & {"late", "resync"})
        statuses[v["status"]] += 1
        refunds[v["refund_state"]] += 1
        if v["refund_state"] == 12:
            assert v["status"] == "TRADE_CLOSED"
            assert v["pay_time"] is not None
        if v["status"] == "WAIT_BUYER_PAY":
            assert v["pay_time"] is None
    enum = get_spec(KEY).json_schema()["properties"]["status"]["enum"]
    assert set(statuses) <= set(enum)
    assert "TRADE_BUYER_SIGNED" not in enum
    assert {"TRADE_SUCCESS", "TRADE_CLOSED", "WAIT_BUYER_PAY"} <= set(statuses)
    assert set(refunds) == {0, 2, 12}


def test_the_api_sends_the_personal_fields_as_per_shop_ciphertext(world):
    out = world[0]
    path = next((out / "youzan" / "orders").glob("dt=*/*.jsonl"))
    orders = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            orders.append(json.loads(line))
        except ValueError:
            continue
    fenxiao = 0
    for order in orders:
        if "full_order_info" not in order or "order_info" not in order["full_order_info"]:
            continue
        api = encrypt_order(order, YOUZAN_KDT_ID)
        shop = order_shop(order, YOUZAN_KDT_ID)
        fenxiao += shop != YOUZAN_KDT_ID
        for group, name in PII_PATHS:
            plain = order["full_order_info"][group].get(name)
            if not plain:
                continue
            sent = api["full_order_info"][group][name]
            assert sent.startswith("$")
            assert sent.endswith("$1$")
            assert plain not in sent
            assert decrypt(shop, sent) == plain
            other = "1" if shop != "1" else "2"
            assert decrypt(other, sent) is None  # another shop's key opens nothing
        for key in ("order_info", "pay_info", "orders"):
            assert api["full_order_info"][key] == order["full_order_info"][key]
    assert fenxiao > 0
    phone = "13912345678"
    assert len({encrypt(shop, phone) for shop in (YOUZAN_KDT_ID, *DISTRIBUTOR_SHOPS)}) == 4
    assert encrypt(YOUZAN_KDT_ID, phone) == encrypt(YOUZAN_KDT_ID, phone)  # deterministic


def test_same_seed_same_files_other_seed_other_world(tmp_path: Path):
    def files(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.*"))}

    kw = {"customers": 600, "days": 2, "end": END, "mess": RATES, "only": {KEY}}
    kw["orders_per_customer_day"] = 1.0
    a = files(simulate(tmp_path / "a", seed=1, **kw).out)
    b = files(simulate(tmp_path / "b", seed=1, **kw).out)
    c = files(simulate(tmp_path / "c", seed=2, **kw).out)
    assert a == b
    assert a["_truth/records.csv"] != c["_truth/records.csv"]
    assert any(name.startswith("youzan/orders/") for name in a)
