"""silver.orders and silver.order_status_history (jobs/silver/orders.py) on tiny bronze frames in
each spec's real bronze schema."""

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.ingest.spec import get_spec, load_specs
from jobs.quality import gate
from jobs.silver.orders import (
    HISTORY_COLUMNS,
    ORDER_COLUMNS,
    PII_COLUMNS,
    TABLES,
    build_orders,
    build_status_history,
    keep_first_seen,
    one_row_per_order,
    standardize,
    status_history,
    to_silver,
)
from jobs.silver.table import Batch
from tests.fixtures.bronze import DAY, T0, spec_bronze

KEY = b"silver-unit-test-key-0123456789abcdef"
PHONE = "13957101234"  # a plain mainland mobile (not one of junk.yaml's fillers)


def _token(ns: str, value: str) -> str:
    return hmac.new(KEY, f"{ns}{value}".encode(), hashlib.sha256).hexdigest()


def silver(spark, key: str, rows: list[dict], **kwargs) -> dict:
    spec = get_spec(key)
    frame = to_silver(spec_bronze(spark, key, rows), spec.source, spec.silver, KEY, **kwargs)
    return {r.order_id: r for r in frame.collect()}


# --- to_silver: one dataset ------------------------------------------------------------------


def test_tmall_export_to_silver(spark):
    spec = get_spec("tmall.orders")
    t2 = T0 + timedelta(days=1)
    rows = [
        # re-synced order: the later sync wins
        {"order_id": "1001", "buyer_nick": "tb01", "payment": Decimal("100.00"),
         "order_status": "WAIT_SELLER_SEND_GOODS", "receiver_mobile": PHONE, "created": T0,
         "pay_time": T0},
        {"order_id": "1001", "buyer_nick": "tb01", "payment": Decimal("100.00"),
         "order_status": "TRADE_FINISHED", "receiver_mobile": PHONE, "created": T0,
         "pay_time": T0, "_ingested_at": t2, "_file": "f2"},
        # masked phone: keyed on the platform id, the mask kept as a weak partial id
        {"order_id": "1002", "buyer_nick": "tb02", "payment": Decimal("50.00"),
         "order_status": "TRADE_CLOSED", "receiver_mobile": "139****5678", "created": T0,
         "refund_fee": Decimal("50.00")},
        # full-width digits: the same phone as 1001
        {"order_id": "1003", "buyer_nick": "tb03", "payment": Decimal("20.00"),
         "order_status": "TRADE_CLOSED", "receiver_mobile": "１３９５７１０１２３４",
         "created": T0},
    ]  # fmt: skip
    frame = to_silver(spec_bronze(spark, "tmall.orders", rows), "tmall", spec.silver, KEY)
    assert frame.columns == [*ORDER_COLUMNS, *PII_COLUMNS]
    out = {r.order_id: r for r in frame.collect()}
    assert set(out) == {"1001", "1002", "1003"}
    phone = _token("phone:", f"+86{PHONE}")  # the vault's namespace and E.164 form
    assert out["1001"].status == "completed"
    assert (out["1001"].customer_key, out["1001"].key_type) == (phone, "phone")
    assert out["1001"].phone_masked is not None
    assert PHONE not in out["1001"].phone_masked
    assert out["1001"]._pii_phone__phone == f"+86{PHONE}"
    assert (out["1001"].buyer_id, out["1001"].buyer_id_type) == ("tb01", "tmall_nick")
    assert out["1001"].order_date == DAY
    assert out["1002"].status == "refunded"
    assert out["1002"].phone_token is None
    assert out["1002"].phone_partial == "139****5678"
    assert (out["1002"].customer_key, out["1002"].key_type) == (
        _token("tmall_nick:", "tb02"),
        "tmall_nick",
    )
    assert out["1002"].refund_amount == Decimal("50.00")
    assert out["1003"].customer_key == phone
    assert out["1003"].status == "closed"


def test_money_is_decimal_with_its_currency_and_refunds_unknown_stay_null(spark):
    out = silver(
        spark,
        "miniprogram.orders",
        [
            {"order_id": "M1", "order_status": "PAID", "payment": Decimal("99.90"),
             "refund_fee": Decimal("0.00"), "created": T0, "appid": "wx1", "openid": "o1",
             "_extra": json.dumps({"payment.amount.currency": "hkd"})},
            {"order_id": "M2", "order_status": "PAID", "payment": Decimal("10"), "created": T0,
             "appid": "wx1", "openid": "o2"},
        ],
    )  # fmt: skip
    assert (out["M1"].amount, out["M1"].currency) == (Decimal("99.90"), "HKD")
    assert out["M1"].refund_amount == Decimal("0.00")
    assert out["M2"].currency == "CNY"  # the mapping's default
    jd = silver(
        spark,
        "jd.orders",
        [{"order_id": "J1", "order_status": "FINISHED_L", "payment": Decimal("5"), "created": T0}],
    )
    assert jd["J1"].refund_amount is None  # JD's export has no refund amount: unknown, not 0
    schema = {f.name: f.dataType.simpleString() for f in to_silver_schema(spark)}
    assert schema["amount"] == schema["refund_amount"] == "decimal(18,2)"


def to_silver_schema(spark):
    spec = get_spec("jd.orders")
    return to_silver(spec_bronze(spark, "jd.orders", []), "jd", spec.silver, KEY).schema.fields


def test_status_at_is_the_time_the_order_entered_its_status(spark):
    paid, shipped, done = T0 + timedelta(minutes=5), T0 + timedelta(hours=20), T0 + timedelta(2)
    pdd = silver(
        spark,
        "pdd.orders",
        [
            {"order_id": "P0", "order_status": "UNPAID", "created": T0},
            {"order_id": "P1", "order_status": "WAIT_SHIP", "created": T0, "pay_time": paid},
            {"order_id": "P2", "order_status": "SHIPPED", "created": T0, "pay_time": paid,
             "shipped_time": shipped},
            {"order_id": "P3", "order_status": "RECEIVED", "created": T0, "pay_time": paid,
             "shipped_time": shipped, "received_time": done},
        ],
    )  # fmt: skip
    assert pdd["P0"].status_at == T0
    assert (pdd["P1"].status_at, pdd["P1"].paid_ts) == (paid, paid)
    assert (pdd["P2"].status_at, pdd["P2"].shipped_ts) == (shipped, shipped)
    assert (pdd["P3"].status_at, pdd["P3"].completed_ts) == (done, done)
    assert pdd["P1"].shipped_ts is None
    ingested = T0 + timedelta(days=3)
    tmall = silver(
        spark,
        "tmall.orders",
        [
            # the export has no ship time nor modification time: the ingestion time
            {"order_id": "S", "order_status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0,
             "pay_time": paid, "_ingested_at": ingested},
            # closed: the latest time the export knows
            {"order_id": "C", "order_status": "TRADE_CLOSED_BY_TAOBAO", "created": T0,
             "pay_time": paid, "_ingested_at": ingested},
        ],
    )  # fmt: skip
    assert tmall["S"].status_at == ingested
    assert tmall["C"].status_at == paid
    assert tmall["C"].closed_ts is None  # the export gives no close time
    closed_at = T0 + timedelta(hours=30)
    trades = silver(
        spark,
        "tmall.trades",
        [
            {"order_id": "R", "order_status": "TRADE_CLOSED", "created": T0, "pay_time": paid,
             "modified": closed_at, "buyer_open_uid": "AAG1"},
            {"order_id": "W", "order_status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0,
             "pay_time": paid, "modified": shipped, "buyer_open_uid": "AAG1"},
        ],
    )  # fmt: skip
    assert (trades["R"].status, trades["R"].status_at) == ("refunded", closed_at)
    assert (trades["R"].closed_ts, trades["R"].modified_at) == (closed_at, closed_at)
    assert trades["W"].status_at == shipped  # no ship time: the platform's modification time
    assert trades["W"].closed_ts is None  # `modified` is a close time only for a closed trade


def test_youzan_times_and_address_parts_come_from_extra(spark):
    extra = {
        "full_order_info.order_info.consign_time": "2026-11-21 15:00:00",
        "full_order_info.order_info.success_time": "",
        "full_order_info.address_info.delivery_province": "浙江省",
        "full_order_info.address_info.delivery_city": "杭州市",
        "full_order_info.address_info.delivery_district": "西湖区",
    }
    [row] = silver(
        spark,
        "youzan.orders",
        [{"order_id": "E1", "status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0, "pay_time": T0,
          "update_time": T0, "yz_open_id": "yz1", "receiver_address": "文三路1号",
          "create_device_id": "dev-1", "_extra": json.dumps(extra, ensure_ascii=False)}],
    ).values()  # fmt: skip
    consigned = spark.sql("select timestamp'2026-11-21 15:00:00' as t").first().t  # wall time
    assert row.shipped_ts == consigned == row.status_at
    assert row.completed_ts is None  # '' is no time
    assert (row.receiver_province, row.receiver_city, row.receiver_district) == (
        "浙江省",
        "杭州市",
        "西湖区",
    )
    assert row.receiver_address_token is not None
    assert row.device_id == "dev-1"


def test_personal_values_leave_as_tokens_masks_and_vault_values_only(spark):
    name, address = "王 伟", "浙江省杭州市西湖区文三路1号2单元301室"
    [row] = silver(
        spark,
        "jd.orders",
        [{"order_id": "J1", "order_status": "FINISHED_L", "payment": Decimal("5"),
          "created": T0, "buyer_pin": "jd_1", "receiver_name": name,
          "receiver_address": address, "receiver_mobile": "139****1234"}],
    ).values()  # fmt: skip
    public = {c: row[c] for c in ORDER_COLUMNS}
    text = json.dumps(public, default=str, ensure_ascii=False)
    for raw in ("王伟", "王 伟", "文三路", "2单元301室"):
        assert raw not in text, raw
    assert row.receiver_name_token == _token("name:", row._pii_name__receiver_name)
    assert row.receiver_name_masked.startswith("王")
    assert row.receiver_address_token == _token("address:", row._pii_address__receiver_address)
    assert row.receiver_address_masked.endswith("***")
    assert (row.receiver_province, row.receiver_district_code) == ("浙江省", "330106")
    assert row.phone_partial == "139****1234"
    assert row.phone_token is None  # a masked phone is never a token


def test_a_district_without_its_address_line_is_no_address_token(spark):
    [row] = silver(
        spark,
        "tmall.trades",
        [{"order_id": "T1", "order_status": "TRADE_FINISHED", "created": T0,
          "buyer_open_uid": "AAG1", "receiver_state": "浙江省", "receiver_city": "杭州市",
          "receiver_district": "西湖区", "receiver_address_cipher": "#abc#def"}],
    ).values()  # fmt: skip
    assert (row.receiver_province, row.receiver_city, row.receiver_district) == (
        "浙江省",
        "杭州市",
        "西湖区",
    )
    assert row.receiver_address_token is None
    assert row._pii_address__receiver_address is None
    assert "#abc#def" not in json.dumps(row.asDict(), default=str)


def test_a_newer_platform_modification_time_wins_even_backwards(spark):
    early, late = T0, T0 + timedelta(hours=5)
    rows = [
        {"order_id": "E1", "status": "TRADE_SUCCESS", "created": T0, "update_time": early,
         "yz_open_id": "yz1", "_ingested_at": T0 + timedelta(days=1)},
        {"order_id": "E1", "status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0,
         "update_time": late, "yz_open_id": "yz1"},
    ]  # fmt: skip
    out = silver(spark, "youzan.orders", rows)
    assert (out["E1"].status, out["E1"].modified_at) == ("shipped", late)


def test_a_resync_without_modification_time_never_moves_back(spark):
    rows = [
        {"order_id": "1", "order_status": "TRADE_FINISHED", "created": T0},
        {"order_id": "1", "order_status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0,
         "_ingested_at": T0 + timedelta(days=1), "_file": "f2"},
        {"order_id": "2", "order_status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0},
        {"order_id": "2", "order_status": "TRADE_CLOSED_BY_TAOBAO", "created": T0,
         "_ingested_at": T0 + timedelta(days=1), "_file": "f2"},
    ]  # fmt: skip
    out = silver(spark, "tmall.orders", rows)
    assert out["1"].status == "completed"
    assert out["2"].status == "closed"


def test_lateness_counts_days_from_order_date_to_the_logical_date(spark):
    rows = [
        {"order_id": "on", "order_status": "PAID", "created": T0, "appid": "a", "openid": "o"},
        {"order_id": "late", "order_status": "PAID", "created": T0 - timedelta(days=3),
         "appid": "a", "openid": "o"},
        {"order_id": "ahead", "order_status": "PAID", "created": T0 + timedelta(days=1),
         "appid": "a", "openid": "o"},
    ]  # fmt: skip
    out = silver(spark, "miniprogram.orders", rows, logical_date=DAY)
    assert {k: r.lateness_days for k, r in out.items()} == {"on": 0, "late": 3, "ahead": 0}
    assert out["late"].order_date == DAY - timedelta(days=3)
    # without a logical date: the bronze rows' own _logical_date
    bronze_rows = [{**rows[1], "_logical_date": DAY + timedelta(days=1)}]
    assert silver(spark, "miniprogram.orders", bronze_rows)["late"].lateness_days == 4


def test_row_flags_run_on_the_raw_titles_and_names(spark):
    out = silver(
        spark,
        "douyin.orders",
        [
            # a per-line export: the test title is on the second line of the order
            {"order_id": "D1", "order_status": "COMPLETED", "payment": Decimal("0.00"),
             "item_title": "面霜", "item_quantity": 1, "created": T0, "pay_time": T0},
            {"order_id": "D1", "order_status": "COMPLETED", "payment": Decimal("0.00"),
             "item_title": "测试商品 请勿发货", "item_quantity": 2, "created": T0, "pay_time": T0},
            {"order_id": "D2", "order_status": "COMPLETED", "payment": Decimal("30.00"),
             "receiver_name": "测试", "created": T0, "pay_time": T0},
            {"order_id": "D3", "order_status": "COMPLETED", "payment": Decimal("30.00"),
             "receiver_name": "李娜", "item_title": "面霜", "created": T0, "pay_time": T0},
        ],
    )  # fmt: skip
    assert out["D1"].item_quantity == 3
    assert {f.rule for f in out["D1"].flags} == {"test_keyword", "test_zero_amount"}
    assert out["D2"].is_test
    assert out["D2"].receiver_name_token is None  # 测试 is a junk name: no token either
    assert (out["D3"].is_test, out["D3"].is_fake, out["D3"].flags) == (False, False, [])


def test_other_platforms_follow_their_spec(spark):
    youzan = silver(
        spark,
        "youzan.orders",
        [{"order_id": "E1", "status": "TRADE_SUCCESS", "payment": Decimal("88.00"),
          "buyer_phone": PHONE, "yz_open_id": "yzA", "created": T0, "item_num": 2}],
    )["E1"]  # fmt: skip
    assert (youzan.status, youzan.key_type, youzan.item_quantity) == ("completed", "phone", 2)
    assert youzan.customer_key == _token("phone:", f"+86{PHONE}")
    assert (youzan.buyer_id, youzan.buyer_id_type) == ("yzA", "youzan_open_id")
    jd = silver(
        spark,
        "jd.orders",
        [{"order_id": "9001", "order_status": "FINISHED_L", "payment": Decimal("10.00"),
          "receiver_mobile": "139****5678", "buyer_pin": "jd_pin_1", "created": T0}],
    )["9001"]  # fmt: skip
    assert (jd.status, jd.key_type) == ("completed", "jd_pin")
    assert jd.customer_key == _token("jd_pin:", "jd_pin_1")
    pdd_spec = get_spec("pdd.orders")
    status = next(iter(pdd_spec.silver.status))
    pdd = silver(
        spark,
        "pdd.orders",
        [{"order_id": "231122-1", "order_status": status, "payment": Decimal("59.00"),
          "receiver_mobile": "139****5678", "created": T0}],
    )["231122-1"]  # fmt: skip
    assert (pdd.customer_key, pdd.key_type, pdd.buyer_id) == (None, "unidentified", None)
    assert pdd.status == pdd_spec.silver.status[status]


def test_miniprogram_prefers_phone_then_unionid_then_openid_per_app(spark):
    a, b = "wx5f1c2a9b3d7e4f60", "wx8a2d4c6e0b1f3a57"

    def row(oid, appid, phone, openid, unionid, status="COMPLETED", refund="0"):
        return {"order_id": oid, "appid": appid, "order_status": status,
                "payment": Decimal("99.00"), "refund_fee": Decimal(refund),
                "buyer_phone": phone, "openid": openid, "unionid": unionid,
                "created": T0}  # fmt: skip

    out = silver(
        spark,
        "miniprogram.orders",
        [
            row("MP1", a, PHONE, "oA1", "oU1"),
            row("MP2", a, None, "oA1", "oU1", status="REFUNDED", refund="99.00"),
            row("MP3", b, None, "oB1", "oU1"),  # same person in the other app: same unionid
            row("MP4", a, None, "oA2", None),
            row("MP5", b, "", "oA2", ""),  # same openid text under another app: another key
        ],
    )
    assert (out["MP1"].key_type, out["MP1"].customer_key) == (
        "phone",
        _token("phone:", f"+86{PHONE}"),
    )
    assert out["MP1"].buyer_id == "oU1"
    assert out["MP2"].key_type == "unionid"
    assert out["MP2"].customer_key == _token("unionid:", "oU1") == out["MP3"].customer_key
    assert out["MP2"].status == "refunded"
    assert (out["MP4"].key_type, out["MP4"].buyer_id) == ("openid", f"{a}:oA2")
    assert out["MP4"].customer_key == _token("openid:", f"{a}:oA2")
    assert out["MP5"].customer_key == _token("openid:", f"{b}:oA2")
    assert out["MP5"].buyer_id_type == "openid"  # a blank unionid is no id


def test_pos_member_card_and_walk_ins(spark):
    t = datetime(2026, 11, 22, 15)
    out = silver(
        spark,
        "pos.orders",
        [
            {"order_id": "SH1", "order_status": "SALE", "payment": Decimal("199.00"),
             "member_mobile": PHONE, "member_card": "812345678901", "created": t},
            {"order_id": "SH2", "order_status": "SALE", "payment": Decimal("89.00"),
             "member_card": "812345678901", "created": t},
            {"order_id": "SH3", "order_status": "VOID", "payment": Decimal("59.90"),
             "created": t},
        ],
    )  # fmt: skip
    first, second, walk_in = out["SH1"], out["SH2"], out["SH3"]
    assert (first.key_type, first.customer_key) == ("phone", _token("phone:", f"+86{PHONE}"))
    assert (second.key_type, second.customer_key) == ("card", _token("card:", "812345678901"))
    assert (walk_in.customer_key, walk_in.key_type, walk_in.status) == (
        None,
        "unidentified",
        "closed",
    )
    assert first.paid_ts == first.order_ts == first.completed_ts == first.status_at
    assert walk_in.completed_ts is None  # a voided receipt never completed


def test_erp_rows_of_directly_ingested_platforms_are_not_counted_twice(spark):
    spec = get_spec("erp.orders")
    rows = [
        ("101", "2026112207000001", "tmall", "Sent", "tb_abc"),
        ("102", "XHS2611220000000102", "xiaohongshu", "Sent", "xhs_1"),
        ("103", "KS2611220000000103", "kuaishou", "Cancelled", "xhs_1"),
    ]
    out = silver(
        spark,
        "erp.orders",
        [
            {"erp_order_id": e, "online_order_id": o, "platform": p, "order_status": s,
             "buyer_account": b, "receiver_mobile": "139****5678", "payment": Decimal("59.90"),
             "created": T0}
            for e, o, p, s, b in rows
        ],
    )  # fmt: skip
    assert "tmall" in spec.silver.linked_order.ingested_directly
    assert set(out) == {"102", "103"}  # the Tmall order comes from Tmall's own export
    assert {r.source for r in out.values()} == {"erp"}
    assert out["102"].linked_order_ref == "xiaohongshu:XHS2611220000000102"
    assert out["102"].key_type == "erp_buyer"
    # the same buyer text on two platforms is two accounts
    assert out["102"].customer_key == _token("erp_buyer:", "xiaohongshu:xhs_1")
    assert out["103"].customer_key == _token("erp_buyer:", "kuaishou:xhs_1")
    assert out["103"].status == "closed"


def test_new_order_specs_map_every_status_and_id_field():
    for key in ("miniprogram.orders", "pos.orders", "erp.orders"):
        spec = get_spec(key)
        fields = {c.field for c in spec.columns}
        schema_statuses = set(spec.json_schema()["properties"]["order_status"]["enum"])
        assert schema_statuses == set(spec.silver.status), key
        for buyer in spec.silver.buyer_ids:
            assert buyer.field in fields
            assert (buyer.qualifier_field or buyer.field) in fields
        assert {v for v in spec.silver.fields.values() if not v.startswith("_extra:")} <= fields


# --- one row per order, across datasets and days ----------------------------------------------


def _resolved(spark, parts, current=None, priorities=None):
    frames = []
    for key, rows, priority in parts:
        spec = get_spec(key)
        frame = to_silver(
            spec_bronze(spark, key, rows), spec.source, spec.silver, KEY, dataset=spec.dataset
        )
        frames.append((frame, priority))
    out = one_row_per_order(frames, current=current, priorities=priorities)
    return {r.order_id: r for r in out.collect()}


def test_the_apis_row_wins_the_identity_and_the_furthest_state_the_status(spark):
    api = [{"order_id": "1", "order_status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0,
            "modified": T0 + timedelta(hours=1), "buyer_open_uid": "AAG1",
            "receiver_state": "北京市", "receiver_city": "北京市", "receiver_district": "朝阳区",
            "receiver_address_cipher": "#x#y"}]  # fmt: skip
    export = [{"order_id": "1", "order_status": "TRADE_FINISHED", "created": T0,
               "buyer_nick": "tb1", "receiver_name": "测试", "item_quantity": 2,
               "receiver_address": "北京市朝阳区建国路1号", "receiver_mobile": "139****5678",
               "_ingested_at": T0 + timedelta(hours=2)}]  # fmt: skip
    [row] = _resolved(spark, [("tmall.trades", api, 1), ("tmall.orders", export, 0)]).values()
    assert (row.buyer_id_type, row.dataset) == ("tmall_open_uid", "trades")
    assert row.status == "completed"  # the export knows more; the API's time is not newer
    assert row.is_test  # the export's row flag (its receiver name) is kept
    # the receiver details the API ciphers come from the export, each with its vault value
    assert row.receiver_address_token is not None
    assert row.receiver_address_token == _token("address:", row._pii_address__receiver_address)
    assert (row.phone_partial, row.item_quantity) == ("139****5678", 2)
    assert row.receiver_district == "朝阳区"


def test_a_late_file_never_rolls_silver_back_unless_the_platform_is_newer(spark):
    spec = get_spec("tmall.orders")
    done = [{"order_id": "1", "order_status": "TRADE_FINISHED", "created": T0,
             "pay_time": T0, "buyer_nick": "tb1", "receiver_mobile": PHONE}]  # fmt: skip
    current = to_silver(spec_bronze(spark, "tmall.orders", done), "tmall", spec.silver, KEY).drop(
        *PII_COLUMNS
    )
    stale = [{"order_id": "1", "order_status": "WAIT_SELLER_SEND_GOODS", "created": T0,
              "pay_time": T0, "buyer_nick": "tb1", "receiver_mobile": PHONE,
              "_ingested_at": T0 + timedelta(days=2)}]  # fmt: skip
    [row] = _resolved(spark, [("tmall.orders", stale, 0)], current=current).values()
    assert row.status == "completed"
    assert row.updated_at == T0 + timedelta(days=2)
    assert row._pii_phone__phone == f"+86{PHONE}"  # the day's row's value of that token

    spec = get_spec("youzan.orders")
    first = [{"order_id": "E", "status": "TRADE_SUCCESS", "created": T0, "update_time": T0,
              "yz_open_id": "yz"}]  # fmt: skip
    current = to_silver(spec_bronze(spark, "youzan.orders", first), "youzan", spec.silver, KEY)
    newer = [{"order_id": "E", "status": "TRADE_CLOSED", "created": T0,
              "update_time": T0 + timedelta(days=1), "yz_open_id": "yz"}]  # fmt: skip
    older = [{**newer[0], "status": "WAIT_BUYER_PAY", "update_time": T0 - timedelta(hours=1)}]
    assert _resolved(spark, [("youzan.orders", newer, 0)], current)["E"].status == "closed"
    assert _resolved(spark, [("youzan.orders", older, 0)], current)["E"].status == "completed"


def test_status_at_and_lateness_keep_the_first_sighting(spark):
    spec = get_spec("tmall.orders")
    first = [{"order_id": "1", "order_status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0,
              "buyer_nick": "tb1", "_ingested_at": T0 + timedelta(hours=1)}]  # fmt: skip
    current = to_silver(
        spec_bronze(spark, "tmall.orders", first), "tmall", spec.silver, KEY, logical_date=DAY
    )
    again = [
        {**first[0], "_ingested_at": T0 + timedelta(days=2), "_logical_date": DAY + timedelta(2)}
    ]
    [row] = _resolved(spark, [("tmall.orders", again, 0)], current=current).values()
    assert row.status_at == T0 + timedelta(hours=1)  # shipped when first seen shipped
    assert row.lateness_days == 0  # a re-sync is not a late record


def test_a_higher_priority_row_silver_holds_keeps_the_identity(spark):
    trades = get_spec("tmall.trades")
    api = [{"order_id": "1", "order_status": "WAIT_BUYER_CONFIRM_GOODS", "created": T0,
            "modified": T0, "buyer_open_uid": "AAG1"}]  # fmt: skip
    current = to_silver(
        spec_bronze(spark, "tmall.trades", api), "tmall", trades.silver, KEY, dataset="trades"
    ).drop(*PII_COLUMNS)
    export = [{"order_id": "1", "order_status": "TRADE_FINISHED", "created": T0,
               "buyer_nick": "tb1", "receiver_mobile": PHONE,
               "_ingested_at": T0 + timedelta(days=1)}]  # fmt: skip
    priorities = {"tmall.trades": 1, "tmall.orders": 0}
    [row] = _resolved(spark, [("tmall.orders", export, 0)], current, priorities).values()
    assert (row.buyer_id_type, row.status) == ("tmall_open_uid", "completed")
    assert row.phone_token is None
    assert row._pii_phone__phone is None  # never a value under another row's token


def test_one_row_per_order_keeps_the_columns_it_is_given(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame(
        [("1", "tmall", T0), ("1", "tmall", T0)],
        "order_id string, source string, updated_at timestamp",
    )
    out = one_row_per_order([(df.withColumn("x", F.lit(1)), 0)])
    assert out.columns == ["order_id", "source", "updated_at", "x"]
    assert out.count() == 1


# --- status history --------------------------------------------------------------------------


def test_status_history_keeps_every_state_seen_first_seen_at_its_transition(spark):
    spec = get_spec("pdd.orders")
    paid, shipped = T0 + timedelta(minutes=1), T0 + timedelta(hours=5)
    rows = [
        {"order_id": "P", "order_status": "WAIT_SHIP", "created": T0, "pay_time": paid},
        {"order_id": "P", "order_status": "SHIPPED", "created": T0, "pay_time": paid,
         "shipped_time": shipped, "_file": "f2"},
        {"order_id": "P", "order_status": "WAIT_SHIP", "created": T0, "pay_time": paid,
         "_file": "f3", "_ingested_at": T0 + timedelta(days=1)},
    ]  # fmt: skip
    std = standardize(spec_bronze(spark, "pdd.orders", rows), "pdd", spec.silver, dataset="orders")
    history = status_history(std)
    assert history.columns == HISTORY_COLUMNS
    out = {r.status: r for r in history.collect()}
    assert set(out) == {"paid", "shipped"}
    assert (out["paid"].first_seen_at, out["paid"].status_code) == (paid, "WAIT_SHIP")
    assert out["shipped"].first_seen_at == shipped
    current = spark.createDataFrame(
        [("pdd", "P", "paid", "WAIT_SHIP", T0 - timedelta(days=9), "orders", "b0", T0)],
        "source string, order_id string, status string, status_code string, "
        "first_seen_at timestamp, dataset string, _batch_id string, updated_at timestamp",
    )
    merged = {r.status: r for r in keep_first_seen(history, current).collect()}
    assert merged["paid"].first_seen_at == T0 - timedelta(days=9)
    assert merged["shipped"].first_seen_at == shipped


# --- the silver tables -----------------------------------------------------------------------


def test_tables_read_every_order_dataset(spark):
    orders, history = TABLES
    order_specs = [s for s in load_specs().values() if s.silver and s.silver.orders]
    assert set(orders.inputs) == {s.bronze_table for s in order_specs} == set(history.inputs)
    assert "tmall_order_items" not in orders.inputs  # lines only (`orders: false`)
    assert (orders.name, orders.keys, orders.mode) == ("orders", ("source", "order_id"), "merge")
    assert (orders.partition_by, orders.refresh_by) == ("order_date", "order_date")
    assert orders.refresh is not None
    assert (history.name, history.keys) == (
        "order_status_history",
        ("source", "order_id", "status"),
    )
    empty = Batch(logical_date=DAY, hmac_key=KEY, bronze=dict.fromkeys(orders.inputs))
    assert orders.build(empty) is None
    assert history.build(empty) is None


def test_build_gives_one_row_per_order_across_datasets(spark):
    export = [{"order_id": "1", "order_status": "TRADE_FINISHED", "created": T0,
               "buyer_nick": "tb1"}]  # fmt: skip
    api = [{"order_id": "1", "order_status": "TRADE_FINISHED", "created": T0,
            "buyer_open_uid": "AAG1", "modified": T0}]  # fmt: skip
    jd = [{"order_id": "1", "order_status": "WAIT_PAY", "created": T0, "buyer_pin": "p"}]
    batch = Batch(
        logical_date=DAY,
        hmac_key=KEY,
        bronze={
            "tmall_orders": spec_bronze(spark, "tmall.orders", export),
            "tmall_trades": spec_bronze(spark, "tmall.trades", api),
            "jd_orders": spec_bronze(spark, "jd.orders", jd),
            "pdd_orders": None,  # not landed yet
        },
    )
    out = {(r.source, r.order_id): r for r in build_orders(batch).collect()}
    assert set(out) == {("tmall", "1"), ("jd", "1")}
    assert out[("tmall", "1")].dataset == "trades"
    assert out[("jd", "1")].status == "pending"
    history = {(r.source, r.status) for r in build_status_history(batch).collect()}
    assert history == {("tmall", "completed"), ("jd", "pending")}


# --- the quality suites ----------------------------------------------------------------------


def _suite_frame(spark, **overrides):
    spec = get_spec("jd.orders")
    rows = [{"order_id": "J1", "order_status": "FINISHED_L", "payment": Decimal("10.00"),
             "created": T0, "buyer_pin": "p1", "receiver_mobile": "139****5678"},
            {"order_id": "J2", "order_status": "WAIT_PAY", "payment": Decimal("0.00"),
             "created": T0, "receiver_name": "李娜",
             "receiver_address": "北京市朝阳区建国路1号"}]  # fmt: skip
    frame = to_silver(
        spec_bronze(spark, "jd.orders", rows), "jd", spec.silver, KEY, logical_date=DAY
    )
    for name, value in overrides.items():
        frame = frame.withColumn(name, value)
    return frame.drop(*PII_COLUMNS)


def _validate(frame, suite):
    report = gate.validate(frame, suite, run_id="t", expectations_dir=Path("expectations"))
    return {(r.expectation, r.column) for r in report.failed_blocking}


def test_the_orders_suite_passes_good_rows_and_blocks_bad_ones(spark):
    from pyspark.sql import functions as F

    assert _validate(_suite_frame(spark), "silver.orders") == set()
    bad = _suite_frame(
        spark,
        status=F.lit("delivered"),
        refund_amount=F.col("amount") + 1,
        phone_partial=F.lit("13957101234"),
    )
    failed = _validate(bad.unionByName(bad), "silver.orders")
    assert {
        ("expect_column_values_to_be_in_set", "status"),
        ("expect_column_pair_values_a_to_be_greater_than_b", "amount,refund_amount"),
        ("expect_column_values_to_match_regex", "phone_partial"),
        ("expect_compound_columns_to_be_unique", "source,order_id"),
    } <= failed


def test_the_history_suite_passes_good_rows_and_blocks_bad_ones(spark):
    from pyspark.sql import functions as F

    spec = get_spec("jd.orders")
    rows = [{"order_id": "J1", "order_status": "FINISHED_L", "created": T0}]
    history = status_history(standardize(spec_bronze(spark, "jd.orders", rows), "jd", spec.silver))
    assert _validate(history, "silver.order_status_history") == set()
    bad = history.withColumn("status", F.lit("lost"))
    assert ("expect_column_values_to_be_in_set", "status") in _validate(
        bad, "silver.order_status_history"
    )


@pytest.mark.parametrize("suite", ["silver.orders", "silver.order_status_history"])
def test_suites_block_on_the_key(suite):
    expectations = json.loads(Path(f"expectations/{suite}.json").read_text(encoding="utf-8"))
    unique = [e for e in expectations["expectations"] if e["type"].endswith("to_be_unique")]
    assert unique
    assert unique[0]["meta"]["level"] == "block"
