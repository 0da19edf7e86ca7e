"""JD, Douyin and Pinduoduo exports: simulated files parse with their specs, bad lines reconcile."""

import random
from datetime import date
from pathlib import Path

import pytest

from jobs.ingest.decoding import decode
from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.simulate import _people
from jobs.ingest.simulate_platforms import PLATFORMS, spoil, write_platform_orders
from jobs.ingest.spec import get_spec

DAY = date(2026, 11, 22)
PLATFORM_NAMES = ["jd", "douyin", "pdd"]
SILVER_STATUSES = {"pending", "paid", "shipped", "completed", "refunded", "closed"}


@pytest.fixture(scope="module")
def people():
    return _people(random.Random(3), 2000)


def _write(tmp_path: Path, platform: str, people, bad_rate: float, seed: int = 11):
    result = write_platform_orders(
        tmp_path, platform, DAY, people, random.Random(seed), bad_rate=bad_rate, seq_start=1
    )
    path = tmp_path / platform / "orders" / f"dt={DAY}" / f"orders_{DAY:%Y%m%d}.csv"
    assert path.is_file()
    return result, path


@pytest.mark.parametrize("platform", PLATFORM_NAMES)
def test_clean_day_parses_every_line(tmp_path, people, platform):
    spec = get_spec(f"{platform}.orders")
    (orders, bad, truth), path = _write(tmp_path, platform, people, bad_rate=0.0)
    assert orders > 10
    assert bad == 0
    assert len(truth) == orders
    items = list(parse_file(path, spec))
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert rejected == []
    assert len(items) == orders
    codes = set(spec.values["order_status"].values())
    assert all(i.values["order_status"] in codes for i in items)
    assert all(i.extra == {} for i in items)
    assert {i.values["order_id"] for i in items} == {t[1] for t in truth}
    assert {t[0] for t in truth} == {spec.source}


@pytest.mark.parametrize("platform", PLATFORM_NAMES)
def test_bad_lines_are_all_rejected_with_a_reason(tmp_path, people, platform):
    spec = get_spec(f"{platform}.orders")
    (orders, bad, _truth), path = _write(tmp_path, platform, people, bad_rate=0.3, seed=5)
    assert bad > 3
    items = list(parse_file(path, spec))
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert len(items) == orders
    assert len(rejected) == bad
    assert all(r.reason for r in rejected)
    assert sum(isinstance(i, Record) for i in items) == orders - bad


@pytest.mark.parametrize(
    ("platform", "encoding"), [("jd", "gb18030"), ("douyin", "utf-8-sig"), ("pdd", "utf-8")]
)
def test_encoding_per_platform(tmp_path, people, platform, encoding):
    _result, path = _write(tmp_path, platform, people, bad_rate=0.0)
    data = path.read_bytes()
    assert decode(data)[1] == encoding
    if platform == "jd":
        data.decode("gbk")


def test_identity_fields_as_each_platform_shows_them(tmp_path, people):
    by_person = {p.person_id: p for p in people}
    for platform in PLATFORM_NAMES:
        spec = get_spec(f"{platform}.orders")
        (_o, _b, truth), path = _write(tmp_path, platform, people, bad_rate=0.0)
        owner = {order_id: by_person[pid] for _s, order_id, pid, *_flags in truth}
        for rec in parse_file(path, spec):
            person = owner[rec.values["order_id"]]
            mobile = rec.values["receiver_mobile"]
            # No platform shows the real number: masked, or (Douyin) a virtual line.
            assert mobile != person.phone
            assert "****" in mobile or (platform == "douyin" and "-" in mobile)
            if platform == "jd":
                assert rec.values["buyer_pin"].startswith("jd_")


@pytest.mark.parametrize("platform", ["tmall", *PLATFORM_NAMES])
def test_silver_section_maps_every_status(platform):
    spec = get_spec(f"{platform}.orders")
    silver = spec.silver
    assert set(silver) >= {"buyer_id_field", "id_namespace", "status", "refund_field"}
    codes = set(spec.values["order_status"].values())
    assert codes - set(silver["status"]) == set(), "unmapped status codes"
    assert set(silver["status"].values()) <= SILVER_STATUSES
    fields = {c.field for c in spec.columns}
    for key in ("buyer_id_field", "refund_field"):
        assert silver[key] is None or silver[key] in fields
    assert (silver["buyer_id_field"] is None) == (silver["id_namespace"] is None)
    assert set(silver.get("refunded_when_refund") or []) <= codes
    if silver.get("refunded_when_refund"):
        assert silver["refund_field"] is not None


def test_statuses_the_simulator_writes_are_in_the_spec():
    for platform, shape in PLATFORMS.items():
        assert set(shape.statuses) <= set(get_spec(f"{platform}.orders").values["order_status"])


def test_spoil_damages_the_given_columns():
    row = ["id1", "x", "9.90", "完成", "y"]
    seen = set()
    rng = random.Random(1)
    for _ in range(200):
        bad = spoil(rng, row, amount_index=2, status_index=3, id_index=0)
        if len(bad) < len(row):
            seen.add("truncated")
        elif bad[2] != row[2]:
            seen.add("amount")
        elif bad[3] != row[3]:
            seen.add("status")
        else:
            assert bad[0] == ""
            seen.add("id")
    assert seen == {"truncated", "amount", "status", "id"}
    assert row == ["id1", "x", "9.90", "完成", "y"]
