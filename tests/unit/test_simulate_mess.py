"""The simulator's mess: every class shows in the files at about its rate and is flagged in truth.

Expectations come from the ground truth and the world's people (rebuilt from the seed), never
from counts written down: a flag must match what the record shows, and what a record shows must
be flagged.
"""

from __future__ import annotations

import csv
import math
import random
import tracemalloc
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from jobs.ingest import simulate as sim
from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.simulate import (
    JUNK_PHONES,
    TEST_TITLE,
    TMALL_NEW_COLUMN,
    Mess,
    MessBook,
    People,
    address_variant,
    name_typo,
    simulate,
)
from jobs.ingest.simulate_platforms import write_platform_orders
from jobs.ingest.spec import get_spec

END = date(2026, 11, 22)
DAYS = 8
SEED = 5
CUSTOMERS = 4000
ORDER_SOURCES = ("tmall", "jd", "douyin", "pdd", "youzan")
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
    new_column_day=3,
)
GENUINE_EXCLUDED = {"test", "fake", "resync"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    orig = sim._writers
    # The order writers this module covers (other datasets are tested with their writers).
    keys = {f"{s}.orders" for s in ORDER_SOURCES}
    sim._writers = lambda: {k: v for k, v in orig().items() if k in keys}
    try:
        summary = simulate(out, customers=CUSTOMERS, days=DAYS, seed=SEED, end=END, mess=RATES)
    finally:
        sim._writers = orig
    truth = list(csv.DictReader((out / "_truth" / "records.csv").open(encoding="utf-8")))
    parsed = {}
    for source in ORDER_SOURCES:
        spec = get_spec(f"{source}.orders")
        rows = []
        for f in sorted((out / source / "orders").glob(f"dt=*/*.{spec.format}")):
            dt = f.parent.name.removeprefix("dt=")
            rows.extend((dt, item) for item in parse_file(f, spec))
        parsed[source] = rows
    return out, summary, truth, parsed


def _flags(row: dict) -> set[str]:
    return set(filter(None, row["flags"].split("|")))


def _joined(world, source: str) -> list[tuple[dict, Record | Rejected]]:
    """Truth rows of `source` beside the parsed item of the same line (files and truth align)."""
    _out, _s, truth, parsed = world
    rows = [t for t in truth if t["source"] == source]
    assert len(rows) == len(parsed[source])
    for t, (dt, _item) in zip(rows, parsed[source], strict=True):
        assert t["dt"] == dt
    return list(zip(rows, (item for _dt, item in parsed[source]), strict=True))


def _near(observed: int, n: int, rate: float) -> bool:
    """Within 4.5 binomial standard deviations (plus one) of n * rate."""
    return abs(observed - n * rate) <= 4.5 * math.sqrt(n * rate * (1 - rate)) + 1


def _plain(text: str) -> str:
    return text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))


def test_every_spoiled_line_and_only_those_are_rejected(world):
    for source in ORDER_SOURCES:
        for t, item in _joined(world, source):
            assert isinstance(item, Rejected) == ("spoiled" in _flags(t)), (source, t, item)


@pytest.mark.parametrize(
    ("flag", "rate"),
    [
        ("name_typo", RATES.name_typo_rate),
        ("address_variant", RATES.address_variant_rate),
        ("late", RATES.late_rate),
    ],
)
def test_per_order_mess_at_its_rate(world, flag, rate):
    _out, _s, truth, _parsed = world
    genuine = [
        t for t in truth if t["source"] in ORDER_SOURCES and not _flags(t) & GENUINE_EXCLUDED
    ]
    hits = sum(flag in _flags(t) for t in genuine)
    assert hits > 0
    assert _near(hits, len(genuine), rate), (hits, len(genuine), rate)


@pytest.mark.parametrize(
    ("flag", "rate"), [("test", RATES.test_order_rate), ("fake", RATES.fake_order_rate)]
)
def test_test_and_fake_orders_at_their_rate(world, flag, rate):
    _out, _s, truth, _parsed = world
    genuine = sum(
        1 for t in truth if t["source"] in ORDER_SOURCES and not _flags(t) & GENUINE_EXCLUDED
    )
    hits = sum(flag in _flags(t) for t in truth)
    assert hits > 0
    # rounded per platform and day, at random: the same expectation, a little more spread
    assert _near(hits, genuine, rate), (hits, genuine, rate)


def test_records_show_what_truth_flags(world):
    people = People(CUSTOMERS, SEED, RATES.household_rate)
    checked = Counter()
    for t, item in _joined(world, "tmall"):
        if not isinstance(item, Record) or _flags(t) & {"test", "fake", "resync"}:
            continue
        person = people[int(t["person_id"][1:]) - 1]
        v = item.values
        flags = _flags(t)
        assert (v["receiver_name"] != person.name) == ("name_typo" in flags)
        assert (v["receiver_address"] != person.address) == ("address_variant" in flags)
        created = datetime.fromisoformat(v["created"]).date()
        day = date.fromisoformat(t["dt"])
        if "late" in flags:
            assert day - timedelta(days=RATES.late_max_days) <= created < day
        else:
            assert created == day
        mobile = v["receiver_mobile"]
        if "junk_id" in flags:
            assert _plain(mobile) in JUNK_PHONES or mobile in {"138****8000", "111****1111"}
        elif "****" not in mobile and not mobile.startswith("+86"):
            assert _plain(mobile) == person.phone
            assert (mobile != person.phone) == ("fullwidth_phone" in flags)
        checked.update(flags)
    assert {"name_typo", "address_variant", "late", "junk_id"} <= set(checked)


def test_test_orders_are_zero_yuan_and_fake_rings_share_an_address(world):
    by_ring = defaultdict(set)
    for source in ORDER_SOURCES:
        for t, item in _joined(world, source):
            flags = _flags(t)
            if not isinstance(item, Record) or not flags & {"test", "fake"}:
                continue
            v = item.values
            pay = v.get("pay_time")
            created = datetime.fromisoformat(v["created"])
            if pay is not None and source != "pdd":  # PDD's 成交时间 is the payment time
                assert timedelta(0) < datetime.fromisoformat(pay) - created <= timedelta(seconds=20)
            if "test" in flags:
                assert float(v["payment"]) == 0
                assert t["person_id"] == ""
                assert v.get("item_title", TEST_TITLE) == TEST_TITLE
            else:
                assert 0 < float(v["payment"]) < 3
                assert t["person_id"].startswith(f"RING-{source}-")
                where = v.get("receiver_address") or item.extra.get(
                    "full_order_info.address_info.delivery_address"
                )
                by_ring[t["person_id"]].add(where)
                if source == "youzan":
                    by_ring[t["person_id"] + ":device"].add(v["create_device_id"])
    assert by_ring
    assert all(len(places) == 1 for places in by_ring.values()), by_ring


def test_resyncs_repeat_an_earlier_order_with_a_new_status(world):
    resynced = 0
    for source in ORDER_SOURCES:
        status_field = "status" if source == "youzan" else "order_status"
        first: dict[str, tuple[date, object]] = {}
        for t, item in _joined(world, source):
            if not isinstance(item, Record):
                continue
            day = date.fromisoformat(t["dt"])
            order_id = item.values["order_id"]
            if "resync" not in _flags(t):
                assert order_id not in first, "a first export repeats an id"
                first[order_id] = (day, item.values[status_field])
                continue
            resynced += 1
            assert order_id in first, "a re-sync of an order never exported"
            was_day, was_status = first[order_id]
            assert 1 <= (day - was_day).days <= RATES.resync_max_days
            assert item.values[status_field] != was_status
    assert resynced > 0


def test_the_new_column_appears_from_its_day_on_and_lands_in_extra(world):
    out, summary, _truth, parsed = world
    first_day = summary.start + timedelta(days=RATES.new_column_day)
    for dt, item in parsed["tmall"]:
        if isinstance(item, Record):
            has = TMALL_NEW_COLUMN[0] in item.extra
            assert has == (date.fromisoformat(dt) >= first_day), dt
    for folder in (out / "tmall" / "orders").iterdir():
        data = next(folder.glob("*.csv")).read_bytes()
        text = data[3:].decode() if data.startswith(b"\xef\xbb\xbf") else data.decode("gbk")
        header = text.split("\r\n", 1)[0]
        day = date.fromisoformat(folder.name.removeprefix("dt="))
        assert (TMALL_NEW_COLUMN[0] in header) == (day >= first_day)


def test_households_share_one_phone_and_other_phones_are_unique(world):
    out, _s, _truth, _parsed = world
    people = list(csv.DictReader((out / "_truth" / "people.csv").open(encoding="utf-8")))
    assert len(people) == CUSTOMERS
    households = defaultdict(list)
    for p in people:
        if p["household_id"]:
            households[p["household_id"]].append(p)
    assert households
    assert _near(2 * len(households), CUSTOMERS, RATES.household_rate)
    assert all(len(members) == 2 for members in households.values())
    assert all(len({m["phone"] for m in members}) == 1 for members in households.values())
    phones = Counter(p["phone"] for p in people)
    assert sum(n == 2 for n in phones.values()) == len(households)
    assert max(phones.values()) == 2
    assert not set(phones) & set(JUNK_PHONES)


def test_youzan_orders_carry_referrals_and_distributor_shops(world):
    out, _s, _truth, _parsed = world
    phones = {
        p["phone"]: p["person_id"]
        for p in csv.DictReader((out / "_truth" / "people.csv").open(encoding="utf-8"))
    }
    genuine = referred = fenxiao = 0
    for t, item in _joined(world, "youzan"):
        if not isinstance(item, Record) or _flags(t) & GENUINE_EXCLUDED:
            continue
        genuine += 1
        v = item.values
        if v["salesman_mobile"]:
            referred += 1
            assert v["salesman_mobile"] in phones  # a real person of the world
            assert phones[v["salesman_mobile"]] != t["person_id"] or "household" in _flags(t)
        is_fenxiao = item.extra["full_order_info.order_info.order_tags.is_fenxiao_order"]
        assert (is_fenxiao == "true") == (v["fx_kdt_id"] is not None)
        fenxiao += v["fx_kdt_id"] is not None
    assert _near(referred, genuine, 0.15)
    assert _near(fenxiao, genuine, 0.05)


def test_same_seed_same_world_other_seed_other_world(tmp_path, monkeypatch):
    def files(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.*"))}

    kw = {"customers": 300, "days": 3, "end": END, "mess": RATES}
    orig = sim._writers
    keys = {f"{s}.orders" for s in ORDER_SOURCES}
    monkeypatch.setattr(sim, "_writers", lambda: {k: v for k, v in orig().items() if k in keys})
    a = files(simulate(tmp_path / "a", seed=1, **kw).out)
    b = files(simulate(tmp_path / "b", seed=1, **kw).out)
    c = files(simulate(tmp_path / "c", seed=2, **kw).out)
    assert len(a) == 3 * len(ORDER_SOURCES) + 3  # order files, truth, people, events
    assert a == b
    assert a["_truth/records.csv"] != c["_truth/records.csv"]


def test_lazy_people_give_the_same_person_for_an_index():
    people = People(20_000, 9, household_rate=0.1)
    again = People(20_000, 9, household_rate=0.1)
    for i in (0, 1, 2, 777, 19_999, -1):
        assert people[i] == people[i] == again[i]
    assert people[-1] == people[19_999]
    assert people[10:14] == [people[i] for i in range(10, 14)] == list(people)[10:14]
    assert len({p.person_id for p in people}) == len(people)
    with pytest.raises(IndexError):
        people[20_000]
    assert People(20_000, 10)[5] != people[5]


def test_mess_helpers_always_change_the_text():
    rng = random.Random(1)
    for address in ("上海市浦东新区世纪大道1号", "广东省深圳市南山区科技园路88号"):
        assert all(address_variant(rng, address) != address for _ in range(50))
    for name in ("王伟", "李秀英", "吴", "马朱胡"):
        assert all(name_typo(rng, name) != name for _ in range(50))


def test_writers_without_a_mess_book_stay_clean(tmp_path):
    people = People(2000, 3)
    _n, _bad, truth = write_platform_orders(
        tmp_path, "jd", END, people, random.Random(1), bad_rate=0.0, seq_start=0
    )
    assert truth
    assert all(flags == "" for *_rest, flags in truth)


def test_mess_from_yaml(tmp_path):
    path = tmp_path / "mess.yaml"
    path.write_text("fake_order_rate: 0.2\nnew_column_day: null\n", encoding="utf-8")
    mess = Mess.from_yaml(path)
    assert (mess.fake_order_rate, mess.new_column_day) == (0.2, None)
    assert mess.test_order_rate == Mess().test_order_rate
    path.write_text("fake_rate: 0.2\n", encoding="utf-8")
    with pytest.raises(Exception, match="fake_rate"):
        Mess.from_yaml(path)


def _peak(tmp_path: Path, name: str, **kw) -> int:
    tracemalloc.start()
    try:
        simulate(tmp_path / name, seed=3, end=END, **kw)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_people_or_days(tmp_path, monkeypatch):
    orig = sim._writers
    keys = {f"{s}.orders" for s in ORDER_SOURCES}
    monkeypatch.setattr(sim, "_writers", lambda: {k: v for k, v in orig().items() if k in keys})
    simulate(tmp_path / "warm", customers=10, days=1, end=END)  # imports and spec caches first
    tracemalloc.start()
    held = list(People(10_000, 3))
    as_objects = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del held
    # A quiet world of 10K people stays far below what those people take as objects (~5 MB).
    quiet = _peak(tmp_path, "quiet", customers=10_000, days=1, orders_per_customer_day=0.0005)
    assert quiet < as_objects / 4, (quiet, as_objects)
    # Truth, events and files are streamed: six days peak like one, not six times higher.
    one = _peak(tmp_path, "one", customers=2000, days=1)
    six = _peak(tmp_path, "six", customers=2000, days=6)
    assert six < one * 1.5, (one, six)


def test_mess_book_keeps_only_pending_resyncs():
    book = MessBook(Mess(resync_rate=1.0, resync_max_days=1), seed=1)
    rng = random.Random(2)
    due = book.resync(rng, END, "等待出库", {"等待出库": ("完成",)})
    assert due == (END + timedelta(days=1), "完成")
    book.defer("jd", due[0], "row")
    assert book.pending == 1
    assert book.take("jd", due[0]) == ["row"]
    assert book.pending == 0
    assert book.resync(rng, END, "完成", {"等待出库": ("完成",)}) is None


def test_the_whole_world_is_byte_identical_for_a_seed(tmp_path):
    """Every writer, Excel included (openpyxl stamps files with the time unless told not to)."""

    def files(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.*"))}

    kw = {"customers": 200, "days": 2, "end": END, "seed": 3}
    a = files(simulate(tmp_path / "a", **kw).out)
    b = files(simulate(tmp_path / "b", **kw).out)
    assert any(name.endswith(".xlsx") for name in a)
    assert a.keys() == b.keys()
    assert [n for n in a if a[n] != b[n]] == []
