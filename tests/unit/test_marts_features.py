"""Per-customer features (jobs/marts/features.py): each rule on a few rows built to test it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from jobs.marts import features as fx

pytestmark = pytest.mark.slow

AS_OF = date(2026, 11, 30)
SETTINGS = fx.load_settings()

ORDER_SCHEMA = (
    "one_id string, source string, order_id string, order_date date, order_ts timestamp, "
    "amount decimal(18,2), refund_amount decimal(18,2), status string, is_test boolean, "
    "is_fake boolean"
)
ITEM_SCHEMA = (
    "source string, order_id string, category string, line_amount decimal(18,2), free_line boolean"
)
EVENT_SCHEMA = (
    "one_id string, event_id string, event_type string, event_ts timestamp, event_date date, "
    "dwell_ms bigint"
)


def _order(one_id, oid, day, amount, status="completed", source="tmall", test=False, fake=False):
    ts = datetime(day.year, day.month, day.day, 12)
    refund = Decimal(amount) if status == "refunded" else Decimal(0)
    return (one_id, source, oid, day, ts, Decimal(amount), refund, status, test, fake)


def _by_id(df) -> dict[str, dict]:
    return {r["one_id"]: r.asDict() for r in df.collect()}


@pytest.fixture
def orders(spark):
    d = AS_OF - timedelta(days=10)
    rows = [
        _order("a", "a1", d, "100.00"),
        _order("a", "a2", d + timedelta(days=4), "50.00", source="pos"),
        _order("a", "a3", d + timedelta(days=8), "60.00", status="refunded"),
        _order("a", "a4", d, "999.00", test=True),  # test and fake: no value figures
        _order("a", "a5", d, "1.00", fake=True),
        _order("b", "b1", d, "75.00"),
        _order("c", "c1", d, "75.00"),
        _order("d", "d1", d, "300.00", status="closed"),  # never paid
        _order(None, "x1", d, "80.00"),  # One-ID gave no one
        _order("e", "e1", AS_OF + timedelta(days=1), "80.00"),  # after the as-of date
    ]
    return spark.createDataFrame(rows, ORDER_SCHEMA)


def test_order_features_count_only_real_paid_orders(spark, orders):
    items = spark.createDataFrame(
        [
            ("tmall", "a1", "serum", Decimal("70.00"), False),
            ("tmall", "a1", "mask", Decimal("30.00"), False),
            ("tmall", "a1", "sample", Decimal("0.00"), True),
            ("pos", "a2", "mask", Decimal("50.00"), False),
            ("tmall", "a4", "set", Decimal("999.00"), False),  # the test order's line
        ],
        ITEM_SCHEMA,
    )
    got = _by_id(fx.order_features(orders, items, AS_OF, SETTINGS))
    assert set(got) == {"a", "b", "c"}  # d never paid, e after as_of, x nobody's
    a = got["a"]
    assert (a["orders"], a["gmv"], a["aov"]) == (2, Decimal("150.00"), Decimal("75.00"))
    assert a["first_order_date"] == AS_OF - timedelta(days=10)
    assert a["last_order_date"] == AS_OF - timedelta(days=6)
    assert a["purchase_cycle_days"] == 4.0
    assert a["last_gap_days"] == 4
    assert a["platforms"] == ["pos", "tmall"]
    assert a["channels"] == ["offline", "online"]
    assert a["refund_rate"] == pytest.approx(1 / 3)  # 1 of 3 paid-at-some-point orders
    assert (a["top_category"], a["top_category_share"]) == ("mask", pytest.approx(80 / 150))
    assert got["b"]["purchase_cycle_days"] is None
    assert got["b"]["last_gap_days"] is None
    # tertiles of AOV: b and c tie at 75 with a, all three share the lowest band
    assert _bands(got) == {"a": "low", "b": "low", "c": "low"}


def _bands(features: dict[str, dict]) -> dict[str, str | None]:
    """The price bands `price_bands_sql` gives the customers of `features` (one_id -> row)."""
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    rows = [{"one_id": k, "aov": v["aov"], "price_band": None} for k, v in features.items()]
    con.register("f", pd.DataFrame(rows))
    rows = con.execute(fx.price_bands_sql("f") + " order by one_id").fetchall()
    return {one_id: band for one_id, _, band in rows}


def test_price_bands_split_by_aov_and_ties_share_a_band(spark):
    d = AS_OF - timedelta(days=1)
    rows = [
        _order(f"c{i}", f"o{i}", d, f"{amount}.00")
        for i, amount in enumerate([10, 20, 30, 40, 50, 60, 60, 60, 90])
    ]
    items = spark.createDataFrame([], ITEM_SCHEMA)
    got = _by_id(
        fx.order_features(spark.createDataFrame(rows, ORDER_SCHEMA), items, AS_OF, SETTINGS)
    )
    bands = [_bands(got)[f"c{i}"] for i in range(9)]
    # 9 buyers: 0-2 below -> low, 3-5 below -> mid, the three 60s have 5 below -> mid, 90 high
    assert bands == ["low", "low", "low", "mid", "mid", "mid", "mid", "mid", "high"]


def _event(one_id, eid, kind, ts, dwell=None):
    return (one_id, eid, kind, ts, ts.date(), dwell)


def test_browse_sessions_dwell_searches_and_abandoned_carts(spark, orders):
    t = datetime(2026, 11, 15, 10, 0)  # a's orders are on the 20th and the 24th
    rows = [
        _event("a", "e1", "page_view", t, 30_000),
        _event("a", "e2", "search", t + timedelta(minutes=20)),
        _event("a", "e3", "page_view", t + timedelta(minutes=60), 15_000),  # 40 min idle: new
        _event("a", "e4", "add_to_cart", t + timedelta(minutes=61)),  # abandoned: no order
        _event("b", "e5", "add_to_cart", datetime(2026, 11, 20, 11, 0)),  # b1 paid at 12:00
        _event("b", "e6", "add_to_cart", datetime(2026, 11, 30, 9, 0)),  # 24 h not over yet
        _event("b", "e7", "page_view", datetime(2026, 10, 1, 9, 0)),  # before the 30 days
        _event(None, "e8", "page_view", t),
    ]
    events = spark.createDataFrame(rows, EVENT_SCHEMA)
    got = _by_id(fx.browse_features(events, orders, AS_OF, SETTINGS))
    a, b = got["a"], got["b"]
    assert (a["sessions_30d"], a["dwell_seconds_30d"], a["searches_30d"]) == (2, 45.0, 1)
    assert (a["cart_adds_30d"], a["abandoned_carts_30d"]) == (1, 1)
    assert (b["sessions_30d"], b["cart_adds_30d"], b["abandoned_carts_30d"]) == (2, 2, None)
    assert b["last_event_at"] == datetime(2026, 11, 30, 9, 0)


def test_wecom_channel_owner_and_last_interaction(spark):
    rel = spark.createDataFrame(
        [
            ("a", "g1", "deleted", datetime(2026, 1, 1), datetime(2026, 1, 1), "live_code_store"),
            ("a", "g2", "active", datetime(2026, 5, 1), datetime(2026, 5, 1), "mp_order_done"),
            ("a", "g3", "active", datetime(2026, 6, 1), datetime(2026, 6, 1), None),
            ("b", "g1", "deleted", datetime(2026, 2, 1), datetime(2026, 2, 1), None),
        ],
        "one_id string, guide_user_id string, status string, added_at timestamp, "
        "first_added_at timestamp, first_state string",
    )
    msgs = spark.createDataFrame(
        [("a", datetime(2026, 11, 3)), ("a", datetime(2026, 11, 9)), ("c", datetime(2026, 12, 9))],
        "one_id string, msg_ts timestamp",
    )
    got = _by_id(fx.wecom_features(rel, msgs, AS_OF))
    assert got["a"]["acquisition_state"] == "live_code_store"  # the first add's live code
    assert got["a"]["owner_guide"] == "g3"  # the latest active relationship
    assert got["a"]["is_wecom_friend"]
    assert got["a"]["last_interaction_at"] == datetime(2026, 11, 9)
    assert not got["b"]["is_wecom_friend"]
    assert got["b"]["owner_guide"] is None
    assert "c" not in got  # its only message is after the as-of date


def test_membership_tier_points_and_coupons(spark, orders):
    tiers = spark.createDataFrame(
        [
            ("a", "t1", "silver", datetime(2026, 1, 1), False),
            ("a", "t2", "gold", datetime(2026, 6, 1), True),
        ],
        "one_id string, change_id string, new_tier string, changed_at timestamp, "
        "is_current boolean",
    )
    points = spark.createDataFrame(
        [
            ("a", "m1", "l1", datetime(2026, 3, 1), 100),
            ("a", "m1", "l2", datetime(2026, 4, 1), 40),  # m1's latest balance
            ("a", "m2", "l3", datetime(2026, 2, 1), 7),  # a second card of the same person
            ("a", "m2", "l4", datetime(2026, 12, 5), 999),  # after the as-of date
        ],
        "one_id string, member_card string, ledger_id string, occurred_at timestamp, "
        "running_balance bigint",
    )
    coupons = spark.createDataFrame(
        [
            ("a", datetime(2026, 11, 21)),
            ("a", datetime(2026, 11, 22)),
            ("a", datetime(2026, 11, 23)),
            ("a", None),
            ("b", datetime(2026, 11, 21)),
        ],
        "one_id string, redeemed_at timestamp",
    )
    paid = fx.paid_orders(orders, AS_OF)
    assert _by_id(fx.tier_features(tiers))["a"]["member_tier"] == "gold"
    assert _by_id(fx.points_features(points, AS_OF))["a"]["points_balance"] == 47
    got = _by_id(fx.coupon_features(coupons, paid, AS_OF))
    assert (got["a"]["coupons_redeemed"], got["a"]["coupon_order_share"]) == (3, 1.0)  # capped
    assert got["b"]["coupon_order_share"] == 1.0
    # c paid and redeemed none: price-insensitive, not unknown
    assert (got["c"]["coupons_redeemed"], got["c"]["coupon_order_share"]) == (0, 0.0)


def test_attach_one_id_takes_the_first_lookup_that_knows_the_record(spark):
    id_map = spark.createDataFrame(
        [("P1", "member_card", "m1"), ("P2", "phone", "tok2"), ("P3", "phone", "tok3")],
        "one_id string, identifier_type string, identifier string",
    )
    rows = spark.createDataFrame(
        [("r1", "m1", "tok3"), ("r2", None, "tok2"), ("r3", "m9", None)],
        "rid string, member_card string, phone_token string",
    )
    got = fx.attach_one_id(rows, id_map, [("member_card", "member_card"), ("phone", "phone_token")])
    assert {r["rid"]: r["one_id"] for r in got.collect()} == {"r1": "P1", "r2": "P2", "r3": None}


def test_every_feature_column_is_there_when_a_source_is_missing(spark, orders):
    customers = spark.createDataFrame([("a",), ("z",)], "one_id string")
    items = spark.createDataFrame([], ITEM_SCHEMA)
    out = fx.customer_features(fx.Inputs(customers, orders=orders, items=items), AS_OF)
    assert out.columns == ["one_id", "as_of", *(c for c, _ in fx.FEATURE_COLUMNS)]
    got = _by_id(out)
    assert set(got) == {"a", "z"}  # every profile, buyer or not
    assert got["z"]["orders"] is None
    assert (got["z"]["sessions_30d"], got["z"]["is_wecom_friend"]) == (0, False)
    assert got["a"]["member_tier"] is None  # no CRM tier table
