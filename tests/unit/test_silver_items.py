"""silver.order_items (jobs/silver/items.py): each source shape, each rule, the GX suite, on tiny
bronze frames in each spec's real bronze schema."""

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from jobs.common.order_states import ORDER_STATES
from jobs.common.settings import PROJECT_ROOT
from jobs.ingest.spec import get_spec
from jobs.quality.gate import validate
from jobs.silver.items import (
    ITEM_COLUMNS,
    REFUND_CODES,
    REFUND_STATES,
    TABLES,
    build_items,
    category_of,
    item_source,
    item_sources,
    items_vs_orders,
    latest_per_line,
    lines_of,
    load_categories,
    order_item_totals,
)
from jobs.silver.table import Batch
from tests.fixtures.bronze import DAY, T0, spec_bronze

EXPECTATIONS = PROJECT_ROOT / "expectations"
CATEGORIES = {"sample": ("小样", "赠品"), "serum": ("精华",), "mask": ("面膜",)}


def source(key: str):
    return next(s for s in item_sources() if s.dataset == key)


def lines(spark, key: str, rows: list[dict], day: date = DAY) -> list:
    out = lines_of(source(key), spec_bronze(spark, key, rows), day, CATEGORIES)
    return sorted(out.collect(), key=lambda r: (r.order_id, r.line_id))


def by_line(rows) -> dict:
    return {(r.order_id, r.line_id): r for r in rows}


# --- the specs' mappings ------------------------------------------------------------------------


def test_every_order_dataset_has_its_shape_and_erp_rows_are_not_lines():
    shapes = {s.dataset: s.shape for s in item_sources()}
    assert shapes == {
        "tmall.order_items": "suborder",
        "tmall.trades": "nested",
        "jd.orders": "product",
        "douyin.orders": "product",
        "pdd.orders": "order",
        "pos.orders": "order",
        "youzan.orders": "nested",
        "miniprogram.orders": "nested",
    }
    assert "erp_orders" not in TABLES[0].inputs
    assert source("tmall.order_items").refund_report  # tmall.refunds exists
    assert not source("douyin.orders").refund_report


def test_an_unknown_items_field_fails_when_the_spec_loads():
    from dataclasses import replace

    from jobs.common.errors import CdpError

    spec = replace(get_spec("pos.orders"), silver={"items": {"fields": {"colour": "x"}}})
    with pytest.raises(CdpError, match="colour"):
        item_source(spec)


def test_a_typed_silver_mapping_resolves_like_the_yaml_section():
    from dataclasses import replace

    from jobs.common.silver_mapping import parse_silver
    from jobs.common.yamlio import load_yaml
    from jobs.ingest.spec import SPECS_DIR

    for key in ("douyin.orders", "tmall.trades", "tmall.order_items", "pdd.orders"):
        spec = get_spec(key)
        raw = load_yaml(SPECS_DIR / f"{key.replace('.', '__')}.yaml")["silver"]
        from_yaml = item_source(replace(spec, silver=raw))
        assert from_yaml == item_source(replace(spec, silver=parse_silver(raw, key)))
        assert from_yaml == replace(source(key), refund_report=False)


# --- the four shapes ----------------------------------------------------------------------------


def test_suborder_rows_keep_the_platforms_line_id_and_amounts(spark):
    rows = lines(
        spark,
        "tmall.order_items",
        [
            {"sub_order_id": "1001", "order_id": "1001", "item_title": "保湿精华液 30ml",
             "price": Decimal("199.00"), "quantity": 2, "seller_sku": "P1001",
             "payment": Decimal("398.00"), "order_status": "TRADE_FINISHED",
             "refund_status": "NO_REFUND"},
            {"sub_order_id": "10021", "order_id": "1002", "item_title": "修护眼霜 15g",
             "price": Decimal("259.00"), "quantity": 1, "payment": Decimal("259.00"),
             "order_status": "WAIT_SELLER_SEND_GOODS", "refund_status": "NO_REFUND"},
            {"sub_order_id": "10022", "order_id": "1002", "item_title": "旅行装小样 5ml (赠品)",
             "price": Decimal("0.00"), "quantity": 1, "payment": Decimal("0.00"),
             "order_status": "WAIT_SELLER_SEND_GOODS", "refund_status": "NO_REFUND"},
        ],
    )  # fmt: skip
    out = by_line(rows)
    assert set(out) == {("1001", "1001"), ("1002", "10021"), ("1002", "10022")}
    first = out["1001", "1001"]
    assert (first.sku, first.quantity, first.unit_price, first.line_amount, first.currency) == (
        "P1001",
        2,
        Decimal("199.00"),
        Decimal("398.00"),
        "CNY",
    )
    assert (first.status, first.status_code, first.refund_status) == (
        "completed",
        "TRADE_FINISHED",
        "none",
    )
    assert out["1002", "10021"].status == "paid"
    assert out["1002", "10022"].free_line
    assert not first.free_line
    assert first.order_ts is None
    assert first.lateness_days is None


def test_product_rows_take_the_product_id_as_line_id_or_their_position(spark):
    rows = lines(
        spark,
        "jd.orders",
        [
            {"order_id": "J1", "sku_id": "100001", "item_title": "面膜", "item_quantity": 3,
             "unit_price": Decimal("59.90"), "payment": Decimal("209.60"),
             "order_status": "FINISHED_L", "created": T0},
            {"order_id": "J1", "sku_id": "100002", "item_title": "精华", "item_quantity": 1,
             "unit_price": Decimal("30.00"), "payment": Decimal("209.60"),
             "order_status": "FINISHED_L", "created": T0},
            # the same product on a second line of the order
            {"order_id": "J1", "sku_id": "100001", "item_title": "面膜", "item_quantity": 1,
             "unit_price": Decimal("0.00"), "payment": Decimal("209.60"),
             "order_status": "FINISHED_L", "created": T0},
            # no product id: the line's position among the order's lines in the file
            {"order_id": "J2", "item_title": "面膜", "item_quantity": 1,
             "unit_price": Decimal("10.00"), "order_status": "WAIT_SELLER_STOCK_OUT",
             "created": T0},
            {"order_id": "J2", "item_title": "精华", "item_quantity": 1,
             "unit_price": Decimal("20.00"), "order_status": "WAIT_SELLER_STOCK_OUT",
             "created": T0},
        ],
    )  # fmt: skip
    out = by_line(rows)
    assert set(out) == {("J1", "100001"), ("J1", "100002"), ("J1", "100001#2"), ("J2", "1"),
                        ("J2", "2")}  # fmt: skip
    # 京东价 is the unit price: the line's amount is price x quantity, not the order's payment
    assert out["J1", "100001"].line_amount == Decimal("179.70")
    assert out["J1", "100001"].sku_id == "100001"
    assert (out["J2", "1"].title, out["J2", "2"].title) == ("面膜", "精华")
    assert out["J2", "1"].status == "paid"


def test_douyin_cells_with_a_leading_tab_are_trimmed_and_after_sale_maps_to_refund_state(spark):
    rows = lines(
        spark,
        "douyin.orders",
        [
            {"order_id": "\t6926", "sku_id": "\t3589", "seller_sku": "P1004",
             "item_title": "玻尿酸面膜 10片装", "item_quantity": 2, "unit_price": Decimal("129.00"),
             "order_status": "CLOSED", "after_sale_status": "售后完成", "created": T0},
        ],
    )  # fmt: skip
    (line,) = rows
    assert (line.order_id, line.line_id, line.sku) == ("6926", "3589", "P1004")
    assert line.line_amount == Decimal("258.00")
    assert (line.status, line.refund_status) == ("refunded", "succeeded")


def test_one_order_row_is_one_line_numbered_1(spark):
    rows = lines(
        spark,
        "pdd.orders",
        [
            {"order_id": "P1", "item_title": "精华", "item_quantity": 2, "sku_id": "5321",
             "payment": Decimal("119.80"), "goods_total": Decimal("139.80"),
             "order_status": "RECEIVED", "after_sale_status": "无售后或售后取消", "created": T0},
        ],
    )  # fmt: skip
    (line,) = rows
    assert (line.line_id, line.sku_id, line.quantity) == ("1", "5321", 2)
    # what the buyer paid for the line; the unit price is that over the quantity
    assert (line.line_amount, line.unit_price) == (Decimal("119.80"), Decimal("59.90"))
    assert (line.status, line.refund_status) == ("completed", "none")
    pos = lines(
        spark,
        "pos.orders",
        [{"order_id": "R1", "sku": "P1003", "item_title": "防晒霜", "item_quantity": 1,
          "payment": Decimal("139.00"), "order_status": "VOID", "created": T0}],
    )  # fmt: skip
    assert (pos[0].line_id, pos[0].sku, pos[0].status) == ("1", "P1003", "closed")


def test_a_json_list_of_lines_reads_the_first_from_mapped_fields_and_the_rest_from_extra(spark):
    extra = {
        "orders.0.oid": "70011", "orders.0.num": "2", "orders.0.num_iid": "6123",
        "orders.0.price": "199.00", "orders.0.payment": "398.00",
        "orders.0.status": "TRADE_FINISHED", "orders.0.refund_status": "NO_REFUND",
        "orders.1.oid": "70012", "orders.1.title": "旅行装小样 5ml (赠品)", "orders.1.num": "1",
        "orders.1.outer_iid": "G9001", "orders.1.price": "0.00", "orders.1.payment": "0.00",
        "orders.1.status": "TRADE_CLOSED", "orders.1.refund_status": "SUCCESS",
        "discount_fee": "0.00",
    }  # fmt: skip
    rows = lines(
        spark,
        "tmall.trades",
        [{"order_id": "7001", "order_status": "TRADE_FINISHED", "num": 0, "created": T0,
          "item_title": "保湿精华液 30ml", "seller_sku": "P1001", "payment": Decimal("398.00"),
          "_extra": json.dumps(extra)}],
    )  # fmt: skip
    out = by_line(rows)
    assert set(out) == {("7001", "70011"), ("7001", "70012")}
    first, second = out["7001", "70011"], out["7001", "70012"]
    assert (first.title, first.sku, first.sku_id, first.quantity) == (
        "保湿精华液 30ml",
        "P1001",
        "6123",
        2,
    )
    assert (first.line_amount, first.status) == (Decimal("398.00"), "completed")
    assert (second.title, second.sku, second.category) == (
        "旅行装小样 5ml (赠品)",
        "G9001",
        "sample",
    )
    # a sub-order closed after its refund went through (TOP's per-sub-order status)
    assert (second.status, second.refund_status) == ("refunded", "succeeded")


def test_a_list_without_line_ids_numbers_its_lines_and_order_cells_repeat_on_each(spark):
    mini = lines(
        spark,
        "miniprogram.orders",
        [{"order_id": "MP1", "order_status": "COMPLETED", "item_title": "旅行套装",
          "item_quantity": 2, "payment": Decimal("198.90"), "created": T0,
          "_extra": json.dumps({"items.0.num": "1", "items.0.price": "59.90",
                                "items.0.sku_id": "P1006", "items.1.num": "1",
                                "items.1.price": "139.00", "items.1.sku_id": "P1003",
                                "items.1.title": "防晒霜", "invoice": "null"})}],
    )  # fmt: skip
    out = by_line(mini)
    assert set(out) == {("MP1", "1"), ("MP1", "2")}
    assert (out["MP1", "1"].title, out["MP1", "1"].sku, out["MP1", "1"].quantity) == (
        "旅行套装",
        "P1006",
        1,
    )
    assert (out["MP1", "2"].title, out["MP1", "2"].line_amount) == ("防晒霜", Decimal("139.00"))
    youzan = lines(
        spark,
        "youzan.orders",
        [{"order_id": "E1", "status": "TRADE_CLOSED", "refund_state": 12, "item_title": "面膜",
          "item_num": 1, "created": T0,
          "_extra": json.dumps({"full_order_info.orders.0.oid": "E101",
                                "full_order_info.orders.0.payment": "129.00"})}],
    )  # fmt: skip
    (line,) = youzan
    assert (line.line_id, line.quantity, line.line_amount) == ("E101", 1, Decimal("129.00"))
    # the order's refund_state, an order-level cell, is on its line: closed and fully refunded
    assert (line.refund_status, line.status) == ("succeeded", "refunded")


def test_a_row_with_neither_a_mapped_first_line_nor_a_listed_one_gives_no_line(spark):
    rows = lines(
        spark,
        "miniprogram.orders",
        [{"order_id": "MP2", "order_status": "PAID", "created": T0, "_extra": "not json"}],
    )
    assert rows == []


# --- rules --------------------------------------------------------------------------------------


def test_a_resynced_line_keeps_the_latest_modification_then_ingestion(spark):
    base = {"order_id": "7002", "order_status": "WAIT_SELLER_SEND_GOODS", "created": T0,
            "item_title": "面膜", "payment": Decimal("129.00")}  # fmt: skip
    later = T0 + timedelta(days=1)
    frame = lines_of(
        source("tmall.trades"),
        spec_bronze(
            spark,
            "tmall.trades",
            [
                # modified later, but its file was ingested first: the modification time wins
                base | {"order_status": "TRADE_FINISHED", "modified": later,
                        "_extra": json.dumps({"orders.0.status": "TRADE_FINISHED"})},
                base | {"modified": T0, "_ingested_at": later, "_file": "f2",
                        "_extra": json.dumps({"orders.0.status": "WAIT_SELLER_SEND_GOODS"})},
            ],
        ),
        DAY,
        CATEGORIES,
    )  # fmt: skip
    (line,) = latest_per_line(frame).collect()
    assert line.status == "completed"
    pos = lines_of(
        source("pos.orders"),
        spec_bronze(
            spark,
            "pos.orders",
            [
                {"order_id": "R1", "order_status": "SALE", "created": T0, "payment": Decimal(1)},
                {"order_id": "R1", "order_status": "VOID", "created": T0, "payment": Decimal(1),
                 "_ingested_at": later},
            ],
        ),
        DAY,
        CATEGORIES,
    )  # fmt: skip
    (receipt,) = latest_per_line(pos).collect()
    assert receipt.status == "closed"  # no modification time: the later ingestion


def test_the_higher_priority_dataset_wins_a_line_both_give(spark):
    export = lines_of(
        source("tmall.order_items"),
        spec_bronze(spark, "tmall.order_items", [
            {"sub_order_id": "7003", "order_id": "7003", "item_title": "面膜", "quantity": 1,
             "payment": Decimal("129.00"), "order_status": "WAIT_SELLER_SEND_GOODS"}]),
        DAY,
        CATEGORIES,
    )  # fmt: skip
    api = lines_of(
        source("tmall.trades"),
        spec_bronze(spark, "tmall.trades", [
            {"order_id": "7003", "order_status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0,
             "modified": T0, "item_title": "面膜", "_ingested_at": T0 - timedelta(hours=1),
             "_extra": json.dumps({"orders.0.oid": "7003", "orders.0.num": "1",
                                   "orders.0.status": "WAIT_BUYER_CONFIRM_GOODS"})}]),
        DAY,
        CATEGORIES,
    )  # fmt: skip
    (line,) = latest_per_line(export.unionByName(api)).collect()
    assert (line.dataset, line.status) == ("tmall.trades", "shipped")


def test_category_is_the_first_whose_keyword_is_in_the_title(spark):
    df = spark.createDataFrame(
        [("精华液 小样",), ("玻尿酸面膜",), ("测试商品 请勿发货",), (None,)], "title string"
    )
    got = [r.c for r in df.select(category_of(F.col("title"), CATEGORIES).alias("c")).collect()]
    assert got == ["sample", "mask", None, None]
    assert category_of(F.col("title"), {}) is not None  # no rules: a null column
    shipped = load_categories()
    assert next(iter(shipped)) == "sample"  # a free sample of a product is a sample first


def test_an_explicit_category_wins_over_keywords(spark):
    from dataclasses import replace

    src = replace(source("pos.orders"), fields=source("pos.orders").fields | {"category": "sku"})
    out = lines_of(
        src,
        spec_bronze(spark, "pos.orders", [{"order_id": "R1", "sku": "护肤", "item_title": "面膜",
                                      "payment": Decimal(1), "created": T0}]),
        DAY,
        CATEGORIES,
    ).collect()  # fmt: skip
    assert out[0].category == "护肤"


def test_money_and_quantities_in_full_width_or_with_a_currency_sign_are_read(spark):
    rows = lines(
        spark,
        "miniprogram.orders",
        [{"order_id": "MP3", "order_status": "PAID", "item_title": "面膜", "created": T0,
          "_extra": json.dumps({"items.0.num": "２", "items.0.price": "¥1,299.00"})}],
    )  # fmt: skip
    (line,) = rows
    assert (line.quantity, line.unit_price, line.line_amount) == (
        2,
        Decimal("1299.00"),
        Decimal("2598.00"),
    )


def test_a_completed_line_with_a_refund_keeps_its_state(spark):
    rows = lines(
        spark,
        "tmall.order_items",
        [{"sub_order_id": "1", "order_id": "1", "order_status": "TRADE_FINISHED",
          "refund_status": "SUCCESS", "payment": Decimal(1)},
         {"sub_order_id": "2", "order_id": "2", "order_status": "TRADE_CLOSED",
          "refund_status": "NO_REFUND", "payment": Decimal(1)},
         {"sub_order_id": "3", "order_id": "3", "order_status": "SOMETHING_NEW",
          "refund_status": "UNHEARD_OF", "payment": Decimal(1)}],
    )  # fmt: skip
    out = {r.order_id: r for r in rows}
    assert (out["1"].status, out["1"].refund_status) == ("completed", "succeeded")
    assert (out["2"].status, out["2"].refund_status) == ("closed", "none")
    # codes no map knows: null (the suite warns), never guessed
    assert (out["3"].status, out["3"].refund_status, out["3"].status_code) == (
        None,
        None,
        "SOMETHING_NEW",
    )


def test_lateness_is_the_days_between_the_order_and_the_files_day(spark):
    rows = lines(
        spark,
        "pos.orders",
        [{"order_id": "R1", "created": T0 - timedelta(days=3), "payment": Decimal(1)},
         {"order_id": "R2", "created": T0, "payment": Decimal(1)}],
    )  # fmt: skip
    out = {r.order_id: r for r in rows}
    assert (out["R1"].lateness_days, out["R1"].order_date) == (3, DAY - timedelta(days=3))
    assert out["R2"].lateness_days == 0


def test_every_refund_code_maps_into_the_vocabulary():
    for codes in REFUND_CODES.values():
        assert set(codes.values()) <= set(REFUND_STATES)


# --- amounts ------------------------------------------------------------------------------------


def test_order_totals_and_their_check_against_order_amounts(spark):
    items = spark.createDataFrame(
        [("jd", "J1", Decimal("179.70"), 3), ("jd", "J1", Decimal("30.00"), 1),
         ("jd", "J2", Decimal("10.00"), 1), ("pdd", "P1", Decimal("5.00"), 1)],
        "source string, order_id string, line_amount decimal(18,2), quantity long",
    )  # fmt: skip
    totals = order_item_totals(items)
    got = {(r.source, r.order_id): r for r in totals.collect()}
    assert (got["jd", "J1"].items_amount, got["jd", "J1"].items_quantity) == (Decimal("209.70"), 4)
    assert got["jd", "J1"].lines == 2
    orders = spark.createDataFrame(
        [("jd", "J1", Decimal("209.70")), ("jd", "J2", Decimal("15.00")),
         ("pdd", "P1", Decimal("5.00")), ("jd", "J9", Decimal("1.00"))],
        "source string, order_id string, amount decimal(18,2)",
    )  # fmt: skip
    check = {r.order_id: r for r in items_vs_orders(orders, totals).collect()}
    assert set(check) == {"J1", "J2", "P1"}  # an order without lines is not checked
    assert check["J1"].consistent
    assert check["P1"].consistent
    assert (check["J2"].consistent, check["J2"].difference) == (False, Decimal("5.00"))
    loose = {
        r.order_id: r.consistent for r in items_vs_orders(orders, totals, relative=0.5).collect()
    }
    assert loose["J2"]


# --- the table ----------------------------------------------------------------------------------


def test_build_unions_the_datasets_and_gives_one_row_per_line(spark):
    trades = spec_bronze(spark, "tmall.trades", [
        {"order_id": "7004", "order_status": "TRADE_FINISHED", "created": T0, "modified": T0,
         "item_title": "面膜", "_extra": json.dumps({"orders.0.oid": "7004", "orders.0.num": "1"})},
    ])  # fmt: skip
    export = spec_bronze(spark, "tmall.order_items", [
        {"sub_order_id": "7004", "order_id": "7004", "item_title": "面膜", "quantity": 1,
         "order_status": "TRADE_FINISHED", "payment": Decimal("1.00")},
        {"sub_order_id": "7005", "order_id": "7005", "item_title": "精华", "quantity": 1,
         "order_status": "TRADE_FINISHED", "payment": Decimal("2.00")},
    ])  # fmt: skip
    batch = Batch(DAY, b"k", bronze={"tmall_trades": trades, "tmall_order_items": export})
    out = build_items(batch)
    assert out.columns == ITEM_COLUMNS
    assert sorted((r.source, r.order_id, r.line_id) for r in out.collect()) == [
        ("tmall", "7004", "7004"),
        ("tmall", "7005", "7005"),
    ]
    assert build_items(Batch(DAY, b"k", bronze={"tmall_trades": None})) is None


@pytest.fixture(scope="module")
def good_items(spark):
    rows = spec_bronze(spark, "jd.orders", [
        {"order_id": "J1", "sku_id": "1", "item_title": "面膜", "item_quantity": 1,
         "unit_price": Decimal("10.00"), "order_status": "FINISHED_L", "created": T0},
        {"order_id": "J1", "sku_id": "2", "item_title": "精华", "item_quantity": 2,
         "unit_price": Decimal("0.00"), "order_status": "FINISHED_L", "created": T0},
    ])  # fmt: skip
    return build_items(Batch(DAY, b"k", bronze={"jd_orders": rows}))


def _blocking(report) -> set:
    return {(r.expectation, r.column) for r in report.failed_blocking}


def test_the_suite_passes_good_lines_and_blocks_bad_ones(good_items):
    report = validate(good_items, "silver.order_items", run_id="t", expectations_dir=EXPECTATIONS)
    assert report.success_blocking, report.failed_blocking
    bad = good_items.unionByName(good_items.where("line_id = '1'")).withColumns(
        {
            "status": F.when(F.col("line_id") == "2", F.lit("lost")).otherwise(F.col("status")),
            "line_amount": F.when(F.col("line_id") == "2", F.lit(-1).cast("decimal(18,2)"))
            .otherwise(F.col("line_amount")),
        }
    )  # fmt: skip
    report = validate(bad, "silver.order_items", run_id="t", expectations_dir=EXPECTATIONS)
    assert _blocking(report) == {
        ("expect_compound_columns_to_be_unique", "source,order_id,line_id"),
        ("expect_column_values_to_be_in_set", "status"),
        ("expect_column_values_to_be_between", "line_amount"),
    }


def test_the_suites_vocabularies_are_the_codes():
    suite = json.loads((EXPECTATIONS / "silver.order_items.json").read_text(encoding="utf-8"))
    sets = {
        e["kwargs"]["column"]: e["kwargs"]["value_set"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set"
    }
    assert sets == {"status": list(ORDER_STATES), "refund_status": list(REFUND_STATES)}
