"""silver.refunds (jobs/silver/refunds.py): Tmall's refund report, after-sale refunds from order
exports, linking to order lines, the exceeds-paid flag and the GX suite, on tiny frames."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from jobs.common.settings import PROJECT_ROOT
from jobs.quality.gate import validate
from jobs.silver.items import REFUND_STATES, build_items
from jobs.silver.refunds import (
    REFUND_COLUMNS,
    TABLES,
    after_sale_platforms,
    after_sale_refunds,
    build_refunds,
    flag_exceeds_paid,
    link_items,
    tmall_refund_report,
    yes_no,
)
from jobs.silver.table import Batch
from tests.fixtures.bronze import DAY, T0, spec_bronze

EXPECTATIONS = PROJECT_ROOT / "expectations"
ITEMS_SCHEMA = "source string, order_id string, line_id string, title string"


def refund(refund_id="R1", order_id="O1", status="SUCCESS", **cells) -> dict:
    return {
        "refund_id": refund_id,
        "order_id": order_id,
        "payment": Decimal("100.00"),
        "refund_fee": Decimal("100.00"),
        "refund_status": status,
        "applied": T0,
        "reason": "七天无理由退换货",
        "goods_returned": "N",
        "item_title": "面膜",
    } | cells


def report(spark, rows: list[dict]) -> dict:
    frame = tmall_refund_report(spec_bronze(spark, "tmall.refunds", rows), DAY)
    return {r.refund_id: r for r in frame.collect()}


# --- the refund report ---------------------------------------------------------------------------


def test_each_tmall_refund_code_has_its_state(spark):
    codes = {
        "WAIT_SELLER_AGREE": "requested",
        "WAIT_BUYER_RETURN_GOODS": "awaiting_return",
        "WAIT_SELLER_CONFIRM_GOODS": "returned",
        "SELLER_REFUSE_BUYER": "refused",
        "CLOSED": "closed",
        "SUCCESS": "succeeded",
        "SOMETHING_NEW": None,  # never guessed: the suite warns on a null state
    }
    out = report(spark, [refund(f"R{i}", status=code) for i, code in enumerate(codes)])
    assert {r.status_code: r.status for r in out.values()} == codes


def test_a_refund_report_row_keeps_reason_amounts_and_return(spark):
    out = report(
        spark,
        [
            refund("R1", goods_returned="Y", refund_fee=Decimal("59.90")),
            refund("R2", goods_returned="否", applied=T0 - timedelta(days=2)),
            refund("R3", goods_returned="?"),
        ],
    )
    r1 = out["R1"]
    assert (r1.source, r1.order_id, r1.origin, r1.currency) == (
        "tmall",
        "O1",
        "refund_report",
        "CNY",
    )
    assert (r1.refund_amount, r1.paid_amount) == (Decimal("59.90"), Decimal("100.00"))
    assert r1.reason == "七天无理由退换货"  # the platform's reason code, not free text: kept
    assert (r1.goods_returned, out["R2"].goods_returned, out["R3"].goods_returned) == (
        True,
        False,
        None,
    )
    assert (r1.applied_at, r1.lateness_days, out["R2"].lateness_days) == (T0, 0, 2)


def test_a_refund_exported_again_keeps_its_latest_state(spark):
    later = T0 + timedelta(days=1)
    out = report(
        spark,
        [
            refund(status="WAIT_SELLER_AGREE", _ingested_at=later, _file="f2"),
            refund(status="SUCCESS"),
            refund("", status="SUCCESS"),  # no refund id: nothing to key it on
        ],
    )
    assert set(out) == {"R1"}
    assert out["R1"].status == "requested"


def test_yes_no_cells(spark):
    df = spark.createDataFrame(
        [("是",), ("y",), ("FALSE",), (" 0 ",), ("maybe",), (None,)], "v string"
    )
    got = [r.b for r in df.select(yes_no(F.col("v")).alias("b")).collect()]
    assert got == [True, True, False, False, None, None]


# --- linking to lines ----------------------------------------------------------------------------


def test_a_refund_links_to_the_lines_its_titles_name(spark):
    refunds = tmall_refund_report(
        spec_bronze(
            spark,
            "tmall.refunds",
            [
                refund("R1", "O1", item_title="面膜"),
                refund("R2", "O2", item_title="面膜，精华"),  # two products: two lines
                refund("R3", "O3", item_title="眼霜"),  # no line has this title
                refund("R4", "O4", item_title="面膜"),  # the order's lines are not in silver
                refund("R5", "O5", item_title="面膜，眼霜"),  # one title of two found
            ],
        ),
        DAY,
    )
    items = spark.createDataFrame(
        [("tmall", "O1", "O1", "面膜"), ("tmall", "O1", "O1x", "赠品"),
         ("tmall", "O2", "O21", "面膜"), ("tmall", "O2", "O22", "精华"),
         ("tmall", "O3", "O3", "面膜"), ("jd", "O4", "1", "面膜"),
         ("tmall", "O5", "O51", "面膜")],
        ITEMS_SCHEMA,
    )  # fmt: skip
    out = {r.refund_id: r for r in link_items(refunds, items).collect()}
    assert (out["R1"].line_id, out["R1"].line_ids, out["R1"].linked_item) == ("O1", ["O1"], True)
    assert (out["R2"].line_id, out["R2"].line_ids, out["R2"].linked_item) == (
        None,
        ["O21", "O22"],
        True,
    )
    assert (out["R3"].line_id, out["R3"].line_ids, out["R3"].linked_item) == (None, [], False)
    assert (out["R4"].line_id, out["R4"].linked_item) == (None, False)  # another source's order
    assert (out["R5"].line_id, out["R5"].linked_item) == ("O51", False)
    unlinked = link_items(refunds, None).collect()
    assert {(r.line_id, r.linked_item) for r in unlinked} == {(None, False)}


# --- after-sale refunds from order exports -------------------------------------------------------


def test_platforms_without_a_refund_report_give_after_sale_refunds_from_silver():
    assert after_sale_platforms() == ("douyin", "jd", "miniprogram", "pdd", "pos", "youzan")
    assert TABLES[0].depends_on == ("order_items", "orders")
    assert TABLES[0].inputs == ("tmall_refunds",)


ORDERS_SCHEMA = (
    "source string, order_id string, amount decimal(18,2), refund_amount decimal(18,2), "
    "currency string, status string, _logical_date date"
)


def test_order_exports_whose_after_sale_cells_say_refunded_give_one_refund_per_order(spark):
    douyin = spec_bronze(spark, "douyin.orders", [
        {"order_id": "D1", "sku_id": "s1", "item_title": "面膜", "item_quantity": 1,
         "unit_price": Decimal("10.00"), "payment": Decimal("30.00"), "order_status": "CLOSED",
         "after_sale_status": "售后完成", "created": T0},
        {"order_id": "D1", "sku_id": "s2", "item_title": "精华", "item_quantity": 1,
         "unit_price": Decimal("20.00"), "payment": Decimal("30.00"), "order_status": "CLOSED",
         "after_sale_status": "售后完成", "created": T0},
        {"order_id": "D2", "sku_id": "s1", "item_title": "面膜", "item_quantity": 1,
         "unit_price": Decimal("10.00"), "payment": Decimal("10.00"),
         "order_status": "COMPLETED", "created": T0},
    ])  # fmt: skip
    pdd = spec_bronze(spark, "pdd.orders", [
        {"order_id": "P1", "item_title": "面膜", "item_quantity": 1, "payment": Decimal("9.90"),
         "order_status": "REFUNDED_AFTER_SHIP", "after_sale_status": "退款成功", "created": T0},
        {"order_id": "P2", "item_title": "面膜", "item_quantity": 1, "payment": Decimal("9.90"),
         "order_status": "RECEIVED", "after_sale_status": "无售后或售后取消", "created": T0},
    ])  # fmt: skip
    mini = spec_bronze(spark, "miniprogram.orders", [
        {"order_id": "M1", "order_status": "REFUNDED", "item_title": "面膜",
         "payment": Decimal("50.00"), "refund_fee": Decimal("50.00"), "created": T0,
         "_extra": json.dumps({"items.0.num": "1", "items.0.price": "50.00"})},
        {"order_id": "M2", "order_status": "COMPLETED", "item_title": "面膜",
         "payment": Decimal("50.00"), "refund_fee": Decimal("20.00"), "created": T0,
         "_extra": json.dumps({"items.0.num": "1", "items.0.price": "50.00"})},
    ])  # fmt: skip
    day_items = build_items(
        Batch(
            DAY,
            b"k",
            bronze={"douyin_orders": douyin, "pdd_orders": pdd, "miniprogram_orders": mini},
        )
    ).withColumn("_logical_date", F.lit(DAY))
    # a line merged on an earlier day: its refund was that day's
    old = day_items.where("order_id = 'P1'").withColumns(
        {"order_id": F.lit("P0"), "_logical_date": F.lit(DAY - timedelta(days=1))}
    )
    orders = spark.createDataFrame(
        [("douyin", "D1", Decimal("30.00"), None, "CNY", "closed", DAY),
         ("douyin", "D2", Decimal("10.00"), None, "CNY", "completed", DAY),
         ("pdd", "P1", Decimal("9.90"), Decimal("0.00"), "CNY", "refunded", DAY),
         ("miniprogram", "M1", Decimal("50.00"), Decimal("50.00"), "CNY", "refunded", DAY),
         # a partial refund on an order that stays completed: its amount says so
         ("miniprogram", "M2", Decimal("50.00"), Decimal("20.00"), "HKD", "completed", DAY),
         # a refunded order whose lines are not in silver: still a refund, unlinked
         ("youzan", "E1", Decimal("8.00"), None, "CNY", "refunded", DAY),
         ("tmall", "T1", Decimal("8.00"), Decimal("8.00"), "CNY", "refunded", DAY)],
        ORDERS_SCHEMA,
    )  # fmt: skip
    batch = Batch(
        DAY, b"k", silver_tables={"order_items": day_items.unionByName(old), "orders": orders}
    )
    out = {r.refund_id: r for r in build_refunds(batch).collect()}
    # tmall has its refund report: its orders give none here
    assert set(out) == {
        "D1:after_sale",
        "P1:after_sale",
        "M1:after_sale",
        "M2:after_sale",
        "E1:after_sale",
    }
    d1 = out["D1:after_sale"]
    assert (d1.source, d1.order_id, d1.status, d1.origin) == (
        "douyin",
        "D1",
        "succeeded",
        "after_sale_status",
    )
    assert (d1.line_id, d1.line_ids, d1.linked_item) == (None, ["s1", "s2"], True)
    assert (d1.refund_amount, d1.paid_amount) == (None, Decimal("30.00"))  # amount unknown
    assert (d1.item_title, d1.status_code) == ("精华，面膜", "CLOSED")
    p1 = out["P1:after_sale"]
    assert (p1.line_id, p1.refund_amount, p1.paid_amount) == ("1", None, Decimal("9.90"))
    assert out["M1:after_sale"].refund_amount == Decimal("50.00")
    m2 = out["M2:after_sale"]
    assert (m2.refund_amount, m2.currency, m2.line_ids) == (Decimal("20.00"), "HKD", [])
    e1 = out["E1:after_sale"]
    assert (e1.linked_item, e1.line_id, e1.currency) == (False, None, "CNY")
    assert not any(r.exceeds_paid for r in out.values())


def test_after_sale_refunds_without_silver_orders_read_the_lines_alone(spark):
    lines = spark.createDataFrame(
        [("youzan", "E1", "E101", "面膜", "TRADE_CLOSED", "refunded", "succeeded", "CNY", T0,
          "f", 3, "b"),
         ("youzan", "E2", "E201", "面膜", "TRADE_SUCCESS", "completed", "none", "CNY", T0,
          "f", 4, "b")],
        "source string, order_id string, line_id string, title string, status_code string, "
        "status string, refund_status string, currency string, updated_at timestamp, "
        "source_file string, source_line long, _batch_id string",
    )  # fmt: skip
    (row,) = after_sale_refunds(lines, None).collect()
    assert (row.refund_id, row.line_id, row.status_code, row.source_line) == (
        "E1:after_sale",
        "E101",
        "TRADE_CLOSED",
        3,
    )
    assert (row.refund_amount, row.paid_amount, row.linked_item) == (None, None, True)


# --- flags and the table -------------------------------------------------------------------------


def test_a_refund_above_the_payment_is_flagged_not_dropped(spark):
    df = spark.createDataFrame(
        [("a", Decimal("120.00"), Decimal("100.00")), ("b", Decimal("100.00"), Decimal("100.00")),
         ("c", None, Decimal("100.00")), ("d", Decimal("5.00"), None)],
        "refund_id string, refund_amount decimal(18,2), paid_amount decimal(18,2)",
    )  # fmt: skip
    got = {r.refund_id: r.exceeds_paid for r in flag_exceeds_paid(df).collect()}
    assert got == {"a": True, "b": False, "c": False, "d": False}


@pytest.fixture(scope="module")
def good_refunds(spark):
    report = spec_bronze(spark, "tmall.refunds", [refund("R1", "O1"), refund("R2", "O2")])
    export = spec_bronze(
        spark,
        "tmall.order_items",
        [{"sub_order_id": "O1", "order_id": "O1", "item_title": "面膜", "quantity": 1,
          "payment": Decimal("100.00"), "order_status": "TRADE_CLOSED",
          "refund_status": "SUCCESS"}],
    )  # fmt: skip
    items = build_items(Batch(DAY, b"k", bronze={"tmall_order_items": export}))
    batch = Batch(DAY, b"k", bronze={"tmall_refunds": report}, silver_tables={"order_items": items})
    return build_refunds(batch)


def test_the_table_has_its_columns_and_links_through_silver_order_items(good_refunds):
    assert good_refunds.columns == REFUND_COLUMNS
    out = {r.refund_id: r for r in good_refunds.collect()}
    assert (out["R1"].line_id, out["R1"].linked_item) == ("O1", True)
    assert (out["R2"].line_id, out["R2"].linked_item) == (None, False)
    assert build_refunds(Batch(DAY, b"k", bronze={})) is None


def test_the_suite_passes_good_refunds_and_blocks_bad_ones(good_refunds):
    report = validate(good_refunds, "silver.refunds", run_id="t", expectations_dir=EXPECTATIONS)
    assert report.success_blocking, report.failed_blocking
    r2 = F.col("refund_id") == "R2"
    bad = good_refunds.unionByName(good_refunds.where("refund_id = 'R1'")).withColumns(
        {
            "refund_amount": F.when(r2, F.lit("150.00").cast("decimal(18,2)")).otherwise(
                F.col("refund_amount")
            ),
            "status": F.when(r2, F.lit("none")).otherwise(F.col("status")),
        }
    )
    report = validate(bad, "silver.refunds", run_id="t", expectations_dir=EXPECTATIONS)
    blocking = {(r.expectation, r.column) for r in report.failed_blocking}
    assert blocking == {
        ("expect_compound_columns_to_be_unique", "source,refund_id"),
        ("expect_column_values_to_be_in_set", "status"),
        ("expect_column_pair_values_a_to_be_greater_than_b", "paid_amount,refund_amount"),
    }


def test_the_suites_states_are_the_vocabulary_without_none():
    suite = json.loads((EXPECTATIONS / "silver.refunds.json").read_text(encoding="utf-8"))
    (states,) = [
        e["kwargs"]["value_set"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "status"
    ]
    assert states == [s for s in REFUND_STATES if s != "none"]
