"""dbt builds gold.customer_360 from tiny silver tables, in-process on the test SparkSession.

Expected values are computed here in Python from the same input rows, so the test states the
business rules (what counts as paid, what as_of means) rather than magic numbers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from jobs.common.errors import CdpError
from jobs.common.lake import list_tables, overwrite, table_path
from jobs.marts import rfm
from jobs.marts.scores import score_customers
from jobs.profiles.dbt_runner import build, docs, run_dbt
from tests.unit.marts_reference import rfm_reference

pytestmark = [pytest.mark.slow, pytest.mark.integration]

AS_OF = date(2024, 6, 30)
PAID = {"paid", "shipped", "completed"}
A, B, C, D = ("C" + x * 20 for x in "abcd")  # one_ids

# order_id, source, one_id (One-ID's, in silver.identity_records), order_date, amount, status,
# phone_token
ORDERS = [
    ("o1", "tmall", A, date(2024, 6, 1), "100.00", "paid", "pa"),
    ("o2", "jd", A, date(2024, 6, 10), "50.55", "completed", "pa"),
    ("o3", "tmall", A, date(2024, 6, 15), "30.00", "refunded", "pa"),
    ("o4", "douyin", A, date(2024, 7, 2), "999.99", "paid", "pa"),  # after AS_OF: ignored
    ("o5", "douyin", B, date(2024, 5, 5), "20.00", "closed", None),
    ("o6", "mini_program", C, date(2024, 6, 30), "10.01", "shipped", "pc"),
    ("o7", "tmall", C, date(2024, 6, 29), "10.00", "paid", "pc"),
    ("o8", "youzan", B, date(2024, 6, 20), "40.00", "pending", None),  # placed, not paid yet
]
# one_id, phone_token, member_card (silver.customers, written by One-ID)
# D never ordered (a WeCom friend, say): customer_360 has a row for every profile
CUSTOMERS = [(A, "pa", "m-a"), (B, "pb", None), (C, "pc", "m-c"), (D, None, "m-d")]


def _write_silver(spark, settings, customers=CUSTOMERS) -> None:
    from pyspark.sql import types as T

    orders_schema = T.StructType(
        [
            T.StructField("order_id", T.StringType()),
            T.StructField("source", T.StringType()),
            T.StructField("order_ts", T.TimestampType()),
            T.StructField("order_date", T.DateType()),
            T.StructField("amount", T.DecimalType(18, 2)),
            T.StructField("refund_amount", T.DecimalType(18, 2)),
            T.StructField("status", T.StringType()),
            T.StructField("phone_token", T.StringType()),
            T.StructField("is_test", T.BooleanType()),
            T.StructField("is_fake", T.BooleanType()),
        ]
    )
    orders = [
        (
            oid,
            src,
            datetime(day.year, day.month, day.day, 10),
            day,
            Decimal(amount),
            Decimal(amount) if st == "refunded" else None,
            st,
            ph,
            False,
            False,
        )
        for oid, src, _, day, amount, st, ph in ORDERS
    ]
    overwrite(
        spark.createDataFrame(orders, orders_schema), table_path("silver", "orders", settings)
    )
    records = [("order_buyer", f"{src}|{oid}", one_id) for oid, src, one_id, *_ in ORDERS]
    overwrite(
        spark.createDataFrame(records, "rule string, record_key string, one_id string"),
        table_path("silver", "identity_records", settings),
    )
    customers_schema = (
        "one_id string, phone_token string, member_card string, identifiers bigint, "
        "one_id_since date, first_seen timestamp, last_seen timestamp"
    )
    rows = [
        (*row, 2, date(2024, 1, 1), datetime(2024, 1, 1), datetime(2024, 7, 3)) for row in customers
    ]
    overwrite(
        spark.createDataFrame(rows, customers_schema),
        table_path("silver", "customers", settings),
    )


def _expected(as_of: date) -> dict[str, dict]:
    """customer_360 computed in Python from ORDERS and CUSTOMERS."""
    phones = {key: phone for key, phone, *_ in CUSTOMERS}
    by_customer: dict[str, list[tuple]] = defaultdict(list)
    for order in ORDERS:
        if order[3] <= as_of:
            by_customer[order[2]].append(order)
    expected = {}
    for key, orders in by_customer.items():
        paid = [Decimal(o[4]) for o in orders if o[5] in PAID]
        total = sum(paid, Decimal("0.00"))
        last = max(o[3] for o in orders)
        expected[key] = {
            "phone_token": phones.get(key) or max((o[6] for o in orders if o[6]), default=None),
            "first_order_date": min(o[3] for o in orders),
            "last_order_date": last,
            "orders_count": len(orders),
            "paid_orders_count": len(paid),
            "refunded_orders_count": sum(1 for o in orders if o[5] == "refunded"),
            "total_amount": total,
            "avg_order_amount": (
                (total / len(paid)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
                if paid
                else None
            ),
            "days_since_last_order": (as_of - last).days,
            "sources": sorted({o[1] for o in orders}),
        }
    return expected


def test_build_publishes_customer_360_as_a_delta_table_in_the_lake(spark, lake):
    ansi = spark.conf.get("spark.sql.ansi.enabled")
    _write_silver(spark, lake)
    score_customers(AS_OF, AS_OF, lake)  # the step before dbt: silver.customer_rfm, _ltv

    result = build(AS_OF, spark=spark, settings=lake)

    statuses = {r.node.unique_id: str(r.status) for r in result.results}
    assert statuses["model.cdp.customer_360"] == "success"
    assert any(uid.startswith("unit_test.cdp.int_customer_orders_aggregated") for uid in statuses)

    # The gold table is a Delta table in the lake, so any new session finds it.
    path = table_path("gold", "customer_360", lake)
    assert ("gold", "customer_360", path) in list_tables(lake)
    rows = spark.read.format("delta").load(path).collect()

    actual = {row["one_id"]: row.asDict() for row in rows}
    expected = _expected(AS_OF)
    assert set(actual) == set(expected) | {D}
    never = actual.pop(D)
    assert (never["orders_count"], never["total_amount"]) == (0, Decimal("0.00"))
    assert (never["first_order_date"], never["r_score"], never["member_card"]) == (
        None,
        None,
        "m-d",
    )
    for key, want in expected.items():
        got = {column: actual[key][column] for column in want}
        assert got == want, key

    # RFM and LTV: published from the scoring step, and carried into customer_360
    paid = [(o[2], o[0], o[3], Decimal(o[4])) for o in ORDERS if o[5] in PAID]
    want_rfm = rfm_reference(paid, AS_OF, rfm.load_rules())
    gold_rfm = spark.read.format("delta").load(table_path("gold", "customer_rfm", lake)).collect()
    assert {r["one_id"]: (r["r_score"], r["f_score"], r["m_score"]) for r in gold_rfm} == {
        k: (v["r_score"], v["f_score"], v["m_score"]) for k, v in want_rfm.items()
    }
    assert {r["one_id"]: r["rfm_segment"] for r in rows} == {
        k: want_rfm[k]["rfm_segment"] if k in want_rfm else None for k in [*expected, D]
    }
    gold_ltv = spark.read.format("delta").load(table_path("gold", "customer_ltv", lake))
    # every customer with a paid order; too few repeat buyers here to fit: no predictions
    assert {r["one_id"] for r in gold_ltv.collect()} == set(want_rfm)
    assert {r["p_alive"] for r in gold_ltv.collect()} == {None}

    # Stages and tags: every profile has a stage; a buyer's RFM segment shows in customer_360
    tags = {
        r["one_id"]: r
        for r in spark.read.format("delta")
        .load(table_path("gold", "customer_tags", lake))
        .collect()
    }
    assert set(tags) == set(actual) | {D}
    assert tags[D]["lifecycle_stage"] == "prospect"  # never ordered
    assert {r["one_id"]: r["lifecycle_stage"] for r in rows} == {
        k: v["lifecycle_stage"] for k, v in tags.items()
    }

    # Rebuilding (table now registered and existing) replaces it, never appends.
    build(AS_OF, spark=spark, settings=lake)
    assert spark.read.format("delta").load(path).count() == len(expected) + 1
    # dbt-spark forces ANSI off on the shared session; the runner puts it back.
    assert spark.conf.get("spark.sql.ansi.enabled") == ansi

    # The docs: every public mart with its published columns and their descriptions.
    target = docs(AS_OF, spark=spark, settings=lake)
    assert (target / "index.html").is_file()
    assert (target / "static_index.html").is_file()
    catalog = json.loads((target / "catalog.json").read_text())["nodes"]
    manifest = json.loads((target / "manifest.json").read_text())["nodes"]
    for mart in ("customer_360", "fct_orders", "fct_events_daily", "segment_history"):
        node = f"model.cdp.{mart}"
        published = {c.lower() for c in catalog[node]["columns"]}
        described = {c for c, v in manifest[node]["columns"].items() if v["description"]}
        assert described == published, mart


def test_failing_data_test_raises_cdp_error_naming_the_node(spark, lake):
    _write_silver(spark, lake, customers=[*CUSTOMERS, CUSTOMERS[0]])  # a one_id twice

    with pytest.raises(CdpError, match="source_unique_cdp_customers_one_id"):
        run_dbt(["build", "--select", "source:cdp.customers"], spark=spark, settings=lake)


def _tag_days(lake, days: dict[date, list[str]]) -> None:
    """Write the days' partitions of silver.customer_tag_days as the scoring step does:
    day -> one_ids holding the tag `t` (customer Y holds it every day)."""
    import pyarrow as pa

    from jobs.common.lake import replace_day_arrow

    for day, holders in days.items():
        rows = [(day, one_id, "tag", "t") for one_id in [*holders, "Y"]]
        table = pa.Table.from_pylist(
            [dict(zip(("as_of", "one_id", "kind", "tag"), r, strict=True)) for r in rows]
        )
        replace_day_arrow(
            table,
            table_path("silver", "customer_tag_days", lake),
            f"as_of = '{day.isoformat()}'",
            partition=True,
            day_column="as_of",
        )


def test_tag_history_spans_scored_days_and_a_backfill_mends_the_gap(spark, lake):
    d1 = date(2024, 6, 1)
    d = [d1 + timedelta(days=i) for i in range(5)]
    _tag_days(lake, {d[0]: ["X"], d[1]: ["X"], d[2]: [], d[3]: ["X"], d[4]: ["X"]})
    path = table_path("gold", "customer_tag_history", lake)

    def spans() -> set[tuple]:
        run_dbt(
            ["build", "--select", "+customer_tag_history"], spark=spark, settings=lake, as_of=d[4]
        )
        return {
            (r["one_id"], r["entered_at"], r["last_held_on"], r["exited_at"])
            for r in spark.read.format("delta").load(path).collect()
        }

    assert spans() == {
        ("X", d[0], d[1], d[2]),  # left on the first scored day without it
        ("X", d[3], d[4], None),  # still held
        ("Y", d[0], d[4], None),
    }
    _tag_days(lake, {d[2]: ["X"]})  # a backfill of the third day rebuilds its own partition
    assert spans() == {("X", d[0], d[4], None), ("Y", d[0], d[4], None)}
