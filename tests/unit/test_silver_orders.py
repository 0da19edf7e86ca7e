import hashlib
import hmac
from datetime import date, datetime
from decimal import Decimal

from jobs.identity.customers import customers_from_orders
from jobs.ingest.spec import get_spec
from jobs.silver.orders import SILVER_ORDER_COLUMNS, to_silver

KEY = b"silver-unit-test-key-0123456789abcdef"
BRONZE = (
    "order_id string, buyer_nick string, payment decimal(18,2), order_status string, "
    "receiver_mobile string, created timestamp, pay_time timestamp, refund_fee decimal(18,2), "
    "item_quantity long, _file string, _line long, _batch_id string, _ingested_at timestamp"
)


def _token(ns: str, value: str) -> str:
    return hmac.new(KEY, f"{ns}{value}".encode(), hashlib.sha256).hexdigest()


def _row(order_id, nick, amount, status, mobile, created, ingested, refund="0", line=2):
    return (
        order_id,
        nick,
        Decimal(amount),
        status,
        mobile,
        created,
        created,
        Decimal(refund),
        1,
        "f.csv",
        line,
        "b1",
        ingested,
    )


def test_tmall_to_silver(spark):
    t1, t2 = datetime(2026, 11, 21, 9), datetime(2026, 11, 22, 9)
    bronze = spark.createDataFrame(
        [
            # re-synced order: the later sync wins
            _row(
                "1001",
                "tb0000000001",
                "100.00",
                "WAIT_SELLER_SEND_GOODS",
                "13912345678",
                datetime(2026, 11, 21, 10, 30),
                t1,
            ),
            _row(
                "1001",
                "tb0000000001",
                "100.00",
                "TRADE_FINISHED",
                "13912345678",
                datetime(2026, 11, 21, 10, 30),
                t2,
            ),
            # masked phone: keyed on the platform id
            _row(
                "1002",
                "tb0000000002",
                "50.00",
                "TRADE_CLOSED",
                "139****5678",
                datetime(2026, 11, 22, 23, 59),
                t2,
                refund="50.00",
            ),
            _row(
                "1003",
                "tb0000000003",
                "20.00",
                "TRADE_CLOSED",
                "１３９１２３４５６７８",
                datetime(2026, 11, 22, 8),
                t2,
            ),
        ],
        BRONZE,
    )
    silver = to_silver(bronze, "tmall", get_spec("tmall.orders").silver, KEY)
    out = {r.order_id: r for r in silver.collect()}
    assert set(out) == {"1001", "1002", "1003"}
    assert list(silver.columns) == SILVER_ORDER_COLUMNS

    phone = _token("phone:", "13912345678")
    assert out["1001"].status == "completed"
    assert out["1001"].customer_key == phone
    assert out["1001"].key_type == "phone"
    assert out["1001"].order_date == date(2026, 11, 21)
    assert out["1002"].status == "refunded"
    assert out["1002"].phone_token is None
    # the seller-center export's only buyer id is the nick (买家会员名)
    assert out["1002"].customer_key == _token("tmall_nick:", "tb0000000002")
    assert out["1002"].key_type == "tmall_nick"
    # full-width digits normalize to the same person as order 1001
    assert out["1003"].customer_key == phone
    assert out["1003"].status == "closed"


def test_other_platforms_follow_their_spec(spark):
    t = datetime(2026, 11, 22, 9)
    youzan = spark.createDataFrame(
        [("E1", "TRADE_SUCCESS", Decimal("88.00"), "13912345678", "yzA", t, 2, "f", 1, "b", t)],
        "order_id string, status string, payment decimal(18,2), buyer_phone string, "
        "yz_open_id string, created timestamp, item_num long, _file string, _line long, "
        "_batch_id string, _ingested_at timestamp",
    )
    [y] = to_silver(youzan, "youzan", get_spec("youzan.orders").silver, KEY).collect()
    assert (y.status, y.key_type, y.item_quantity) == ("completed", "phone", 2)
    # the same person as on Tmall: one phone token across platforms
    assert y.customer_key == _token("phone:", "13912345678")

    jd = spark.createDataFrame(
        [("9001", "FINISHED_L", Decimal("10.00"), "139****5678", "jd_pin_1", t, "f", 1, "b", t)],
        "order_id string, order_status string, payment decimal(18,2), receiver_mobile string, "
        "buyer_pin string, created timestamp, _file string, _line long, _batch_id string, "
        "_ingested_at timestamp",
    )
    [j] = to_silver(jd, "jd", get_spec("jd.orders").silver, KEY).collect()
    assert (j.status, j.key_type) == ("completed", "jd_pin")
    assert j.customer_key == _token("jd_pin:", "jd_pin_1")

    pdd_spec = get_spec("pdd.orders")
    status = next(iter(pdd_spec.silver["status"]))
    pdd = spark.createDataFrame(
        [("231122-123456789012345", status, Decimal("59.00"), "139****5678", t, "f", 1, "b", t)],
        "order_id string, order_status string, payment decimal(18,2), receiver_mobile string, "
        "created timestamp, _file string, _line long, _batch_id string, _ingested_at timestamp",
    )
    [p] = to_silver(pdd, "pdd", pdd_spec.silver, KEY).collect()
    assert p.customer_key is None
    assert p.key_type == "unidentified"
    assert p.status == pdd_spec.silver["status"][status]
    assert p.item_quantity is None  # a field missing from bronze stays null


def test_customers_from_orders(spark):
    orders = spark.createDataFrame(
        [
            ("k1", "phone", "t1", date(2026, 11, 1), "tmall", datetime(2026, 11, 2)),
            ("k1", "phone", "t1", date(2026, 11, 5), "jd", datetime(2026, 11, 6)),
            ("k2", "tmall_open_uid", None, date(2026, 11, 3), "tmall", datetime(2026, 11, 3)),
            (None, "unidentified", None, date(2026, 11, 3), "pdd", datetime(2026, 11, 3)),
        ],
        "customer_key string, key_type string, phone_token string, order_date date, "
        "source string, updated_at timestamp",
    )
    rows = {r.customer_key: r for r in customers_from_orders(orders).collect()}
    assert rows["k1"].first_order_date == date(2026, 11, 1)
    assert rows["k1"].last_order_date == date(2026, 11, 5)
    assert rows["k1"].sources == ["jd", "tmall"]
    assert rows["k2"].phone_token is None
    assert set(rows) == {"k1", "k2"}  # unidentified orders make no customer


MINI = (
    "order_id string, appid string, order_status string, payment decimal(18,2), "
    "refund_fee decimal(18,2), buyer_phone string, openid string, unionid string, "
    "created timestamp, pay_time timestamp, item_quantity long, _file string, _line long, "
    "_batch_id string, _ingested_at timestamp"
)


def test_miniprogram_prefers_phone_then_unionid_then_openid_per_app(spark):
    t = datetime(2026, 11, 22, 9)
    a, b = "wx5f1c2a9b3d7e4f60", "wx8a2d4c6e0b1f3a57"

    def row(oid, appid, phone, openid, unionid, status="COMPLETED", refund="0"):
        return (oid, appid, status, Decimal("99.00"), Decimal(refund), phone, openid, unionid)

    rows = [
        row("MP1", a, "13912345678", "oA1", "oU1"),
        row("MP2", a, None, "oA1", "oU1", status="REFUNDED", refund="99.00"),
        row("MP3", b, None, "oB1", "oU1"),  # same person in the other app: same unionid
        row("MP4", a, None, "oA2", None),
        row("MP5", b, None, "oA2", None),  # same openid text under another app: another key
    ]
    frame = spark.createDataFrame([(*r, t, t, 1, "f", i, "b", t) for i, r in enumerate(rows)], MINI)
    spec = get_spec("miniprogram.orders")
    out = {r.order_id: r for r in to_silver(frame, "miniprogram", spec.silver, KEY).collect()}
    assert (out["MP1"].key_type, out["MP1"].customer_key) == (
        "phone",
        _token("phone:", "13912345678"),
    )
    assert out["MP2"].key_type == "unionid"
    assert out["MP2"].customer_key == _token("unionid:", "oU1") == out["MP3"].customer_key
    assert out["MP2"].status == "refunded"
    assert out["MP4"].key_type == "openid"
    assert out["MP4"].customer_key == _token("openid:", f"{a}:oA2")
    assert out["MP5"].customer_key == _token("openid:", f"{b}:oA2")
    assert out["MP4"].customer_key != out["MP5"].customer_key


def test_pos_member_card_and_walk_ins(spark):
    t = datetime(2026, 11, 22, 15)
    frame = spark.createDataFrame(
        [
            ("SH001261122000001", "SALE", Decimal("199.00"), "13912345678", "812345678901"),
            ("SH001261122000002", "SALE", Decimal("89.00"), None, "812345678901"),
            ("SH001261122000003", "VOID", Decimal("59.90"), None, None),
        ],
        "order_id string, order_status string, payment decimal(18,2), member_mobile string, "
        "member_card string",
    ).selectExpr(
        "*",
        "timestamp'2026-11-22 15:00:00' as created",
        "'f' as _file",
        "1L as _line",
        "'b' as _batch_id",
        f"timestamp'{t}' as _ingested_at",
    )
    spec = get_spec("pos.orders")
    out = {r.order_id: r for r in to_silver(frame, "pos", spec.silver, KEY).collect()}
    first, second, walk_in = (out[f"SH001261122{n:06d}"] for n in (1, 2, 3))
    assert (first.key_type, first.customer_key) == ("phone", _token("phone:", "13912345678"))
    assert (second.key_type, second.customer_key) == ("card", _token("card:", "812345678901"))
    assert (walk_in.customer_key, walk_in.key_type, walk_in.status) == (
        None,
        "unidentified",
        "closed",
    )
    assert first.paid_ts == first.order_ts  # paid at the till


def test_erp_rows_of_directly_ingested_platforms_are_not_counted_twice(spark):
    t = datetime(2026, 11, 22, 9)
    frame = spark.createDataFrame(
        [
            ("101", "2026112207000001", "tmall", "Sent", "tb_abc", "139****5678"),
            ("102", "XHS2611220000000102", "xiaohongshu", "Sent", "xhs_1", "139****5678"),
            ("103", "KS2611220000000103", "kuaishou", "Cancelled", "xhs_1", None),
        ],
        "erp_order_id string, online_order_id string, platform string, order_status string, "
        "buyer_account string, receiver_mobile string",
    ).selectExpr(
        "*",
        "cast(59.90 as decimal(18,2)) as payment",
        "timestamp'2026-11-22 09:00:00' as created",
        "'f' as _file",
        "1L as _line",
        "'b' as _batch_id",
        f"timestamp'{t}' as _ingested_at",
    )
    spec = get_spec("erp.orders")
    silver = to_silver(frame, "erp", spec.silver, KEY)
    out = {r.order_id: r for r in silver.collect()}
    direct = set(spec.silver["linked_order"]["ingested_directly"])
    assert "tmall" in direct
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
        assert schema_statuses == set(spec.silver["status"]), key
        for buyer in spec.silver["buyer_ids"]:
            assert buyer["field"] in fields
            assert buyer.get("qualifier_field", buyer["field"]) in fields
        renamed = set(spec.silver.get("fields", {}).values())
        assert renamed <= fields, key
