"""Order flags (jobs/silver/flags.py): each rule on a tiny frame, with explicit thresholds."""

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from jobs.silver.flags import (
    FLAGS,
    FlagRules,
    flag_orders,
    load_rules,
    parse_rules,
    row_flags,
)
from jobs.silver.orders import ORDER_COLUMNS

RULES = FlagRules.model_validate(
    {
        "test": {
            "zero_amount": {"enabled": True, "exempt_title_keywords": ["赠品"]},
            "keywords": {"names": ["测试", "test"], "titles": ["测试链接", "请勿发货"]},
        },
        "fake": {
            "rings": {
                "address": {
                    "column": "receiver_address_token",
                    "min_orders": 5,
                    "label": "address",
                },
                "device": {"column": "device_id", "min_orders": 5, "label": "device"},
                "buyer": {"column": "customer_key", "min_orders": 5, "label": "buyer"},
            },
            "tiny_amount_max": "5.00",
            "instant_confirmation_minutes": 10,
            "instant_exempt_sources": ["pos"],
        },
    }
)
ROW = (
    "order_id string, amount decimal(18,2), status string, paid_ts timestamp, "
    "item_title string, receiver_name string"
)
PAID = datetime(2026, 11, 18, 10)


def _row_flags(spark, rows):
    frame = spark.createDataFrame(rows, ROW)
    return {r.order_id: r for r in row_flags(frame, RULES).collect()}


def test_zero_amount_flags_a_paid_order_of_0_yuan(spark):
    out = _row_flags(
        spark,
        [
            ("paid", Decimal("0.00"), "completed", PAID, "面霜", "王伟"),
            ("pending", Decimal("0.00"), "pending", None, "面霜", "王伟"),
            ("closed_unpaid", Decimal("0.00"), "closed", None, "面霜", "王伟"),
            ("closed_paid", Decimal("0.00"), "closed", PAID, "面霜", "王伟"),
            ("gift", Decimal("0.00"), "shipped", PAID, "赠品 小样", "王伟"),
            ("cent", Decimal("0.01"), "completed", PAID, "面霜", "王伟"),
        ],
    )
    flagged = {k for k, r in out.items() if r.is_test}
    assert flagged == {"paid", "closed_paid"}
    assert [f.asDict() for f in out["paid"].flags] == [
        {"rule": "test_zero_amount", "reason": "0-yuan completed order"}
    ]
    assert out["cent"].flags == []
    assert out["cent"].is_fake is False


def test_test_keywords_in_the_name_or_title_flag_without_quoting_the_name(spark):
    out = _row_flags(
        spark,
        [
            ("name", Decimal("99"), "paid", PAID, "面霜", "测试"),
            ("name_en", Decimal("99"), "paid", PAID, "面霜", "TEST Account"),
            ("title", Decimal("99"), "paid", PAID, "测试链接 请勿拍下", "王伟"),
            ("product", Decimal("99"), "paid", PAID, "肤质测试卡", "王伟"),
            ("nothing", Decimal("99"), "paid", PAID, None, None),
        ],
    )
    assert {k for k, r in out.items() if r.is_test} == {"name", "name_en", "title"}
    assert out["name"].flags[0].reason == "test keyword '测试' in name"
    assert out["name_en"].flags[0].reason == "test keyword 'test' in name"
    assert out["title"].flags[0].asDict() == {
        "rule": "test_keyword",
        "reason": "test keyword '测试链接' in title",
    }
    assert "Account" not in out["name_en"].flags[0].reason


def test_both_row_rules_can_fire_on_one_order(spark):
    [row] = _row_flags(
        spark, [("both", Decimal("0"), "completed", PAID, "测试链接", "测试")]
    ).values()
    assert [f.rule for f in row.flags] == ["test_keyword", "test_zero_amount"]  # sorted


ORDERS = (
    "source string, order_id string, order_date date, amount decimal(18,2), currency string, "
    "paid_ts timestamp, completed_ts timestamp, receiver_address_token string, "
    "device_id string, customer_key string, flags " + FLAGS.simpleString()
)
DAY = date(2026, 11, 18)


def _orders(spark, rows):
    """rows: dicts over a default order (100 CNY, paid, not completed, no ring keys)."""
    base = {
        "source": "tmall",
        "order_date": DAY,
        "amount": Decimal("100.00"),
        "currency": "CNY",
        "paid_ts": PAID,
        "completed_ts": None,
        "receiver_address_token": None,
        "device_id": None,
        "customer_key": None,
        "flags": [],
    }
    names = [f.split()[0] for f in ORDERS.split(", ")]
    data = [tuple({**base, "order_id": f"O{i}", **r}[n] for n in names) for i, r in enumerate(rows)]
    return spark.createDataFrame(data, ORDERS)


def _fake(df):
    return {r.order_id: r for r in flag_orders(df, RULES).collect()}


def test_an_address_ring_with_tiny_amounts_is_fake(spark):
    ring = [{"receiver_address_token": "addr", "amount": Decimal("1.50")}] * 5
    out = _fake(_orders(spark, ring))
    assert all(r.is_fake and not r.is_test for r in out.values())
    [flag] = out["O0"].flags
    assert flag.rule == "fake_address_ring"
    assert flag.reason == (
        "5 orders from one address on 2026-11-18 (>= 5); amount 1.50 CNY (<= 5.00)"
    )


def test_a_ring_signal_alone_does_not_flag(spark):
    household = [{"receiver_address_token": "addr"}] * 7  # 7 orders of 100 CNY to one address
    assert not any(r.is_fake for r in _fake(_orders(spark, household)).values())


def test_a_tiny_amount_alone_does_not_flag(spark):
    samples = [{"receiver_address_token": "addr", "amount": Decimal("1.00")}] * 4
    samples += [{"amount": Decimal("0.01")}] * 5  # no ring key: never counted together
    assert not any(r.is_fake for r in _fake(_orders(spark, samples)).values())


def test_rings_are_counted_per_business_date(spark):
    rows = [{"receiver_address_token": "addr", "amount": Decimal("1.00")}] * 3
    rows += [
        {
            "receiver_address_token": "addr",
            "amount": Decimal("1.00"),
            "order_date": DAY + timedelta(1),
        }
    ] * 3
    assert not any(r.is_fake for r in _fake(_orders(spark, rows)).values())


def test_a_device_ring_with_instant_confirmation_is_fake_except_at_a_till(spark):
    instant = {"device_id": "dev", "completed_ts": PAID + timedelta(minutes=2)}
    out = _fake(_orders(spark, [instant] * 5))
    assert all(r.is_fake for r in out.values())
    assert out["O0"].flags[0].rule == "fake_device_ring"
    assert out["O0"].flags[0].reason.endswith("; completed 2 min after payment (<= 10)")
    slow = {"device_id": "dev", "completed_ts": PAID + timedelta(minutes=11)}
    assert not any(r.is_fake for r in _fake(_orders(spark, [slow] * 5)).values())
    till = {**instant, "source": "pos"}
    assert not any(r.is_fake for r in _fake(_orders(spark, [till] * 5)).values())


def test_a_buyer_ring_counts_one_buyers_orders(spark):
    rows = [{"customer_key": "k1", "amount": Decimal("2.00")}] * 5
    rows += [{"customer_key": "k2", "amount": Decimal("2.00")}] * 4
    out = _fake(_orders(spark, rows))
    assert {k for k, r in out.items() if r.is_fake} == {"O0", "O1", "O2", "O3", "O4"}
    assert out["O0"].flags[0].rule == "fake_buyer_ring"


def test_test_orders_neither_count_towards_a_ring_nor_become_fake(spark):
    test_flag = [{"rule": "test_zero_amount", "reason": "0-yuan completed order"}]
    rows = [{"receiver_address_token": "addr", "amount": Decimal("1.00")}] * 4
    rows += [{"receiver_address_token": "addr", "amount": Decimal("1.00"), "flags": test_flag}]
    out = _fake(_orders(spark, rows))
    assert not any(r.is_fake for r in out.values())
    assert out["O4"].is_test
    assert [f.rule for f in out["O4"].flags] == ["test_zero_amount"]


def test_refresh_keeps_row_flags_and_recomputes_day_flags(spark):
    stale = [
        {"rule": "test_keyword", "reason": "test keyword '测试' in name"},
        {"rule": "fake_address_ring", "reason": "5 orders from one address (a day ago)"},
    ]
    df = _orders(spark, [{"flags": stale}, {"flags": None}])
    out = _fake(df)
    assert [f.rule for f in out["O0"].flags] == ["test_keyword"]
    assert (out["O0"].is_test, out["O0"].is_fake) == (True, False)
    assert out["O1"].flags == []
    assert out["O1"].is_test is False
    assert flag_orders(df, RULES).columns == [*df.columns, "is_test", "is_fake"]


def test_the_rules_file_loads_and_combines_signals():
    rules = load_rules()
    assert rules.fake.rings, "ring rules configured"
    for ring in rules.fake.rings.values():
        assert ring.column in ORDER_COLUMNS
        assert ring.min_orders >= 3  # a household's two orders a day is no ring
    assert Decimal("0") < rules.fake.tiny_amount_max < Decimal("10")
    assert "测试" not in rules.test.keywords.titles  # real products carry it (肤质测试卡)


def test_bad_rules_fail_naming_the_file():
    from jobs.common.errors import CdpError

    with pytest.raises(
        CdpError, match=r"f\.yaml: invalid order flag rules: fake\.rings\.a\.min_orders"
    ):
        parse_rules(
            {
                "fake": {
                    "rings": {"a": {"column": "x", "min_orders": 1, "label": "a"}},
                    "tiny_amount_max": "1",
                    "instant_confirmation_minutes": 1,
                }
            },
            "f.yaml",
        )
