"""The JSON-lines reader (Youzan API objects): every line ends as a record or a rejection."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.ingest.records import Record, Rejected, parse_file, parse_jsonl
from jobs.ingest.spec import get_spec
from tests.fixtures.youzan_server import make_order

SPEC = get_spec("youzan.orders")
GOOD = make_order(
    "E20261122103105000001",
    "2026-11-22 10:31:05",
    "258.00",
    pay_time="2026-11-22 10:35:00",
    fans_id=987654,
    num=2,
)


def _line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _parse(*lines: str) -> list:
    return list(parse_jsonl(("\n".join(lines) + "\n").encode(), SPEC))


def _mutate(change) -> str:
    obj = copy.deepcopy(GOOD)
    change(obj["full_order_info"])
    return _line(obj)


def test_spec_declares_json_paths():
    assert SPEC.format == "jsonl"
    assert SPEC.bronze_table == "youzan_orders"
    by_field = {c.field: c for c in SPEC.columns}
    assert by_field["order_id"].path == ("full_order_info", "order_info", "tid")


def test_good_line_is_mapped_and_coerced():
    [rec] = _parse(_line(GOOD))
    assert isinstance(rec, Record)
    assert rec.line == 1
    assert rec.values == {
        "order_id": "E20261122103105000001",
        "status": "TRADE_SUCCESS",
        "created": "2026-11-22T10:31:05",
        "pay_time": "2026-11-22T10:35:00",
        "payment": Decimal("258.00"),
        "buyer_phone": "13912345678",
        "yz_open_id": "yzOpenId0123456789",
        "fans_id": "987654",
        "item_title": "保湿精华液 30ml",
        "item_num": 2,
        # schema 1-0-1: ordering device, referral (销售员) and distributor (分销) fields
        "create_device_id": None,
        "salesman_nick_name": None,
        "salesman_mobile": None,
        "fx_kdt_id": None,
        "fx_order_no": None,
        # schema 1-1-0: update time, refund state, WeChat openid, receiver fields
        "update_time": "2026-11-22T10:35:00",
        "refund_state": 0,
        "outer_user_id": None,
        "receiver_name": "王伟",
        "receiver_tel": "13912345678",
        "receiver_address": "世纪大道1号",
    }
    # unmapped leaves are kept under their path, never dropped
    assert "full_order_info.address_info.receiver_name" not in rec.extra
    assert rec.extra["full_order_info.orders.0.oid"] == "E2026112210310500000101"
    assert "full_order_info.order_info.tid" not in rec.extra


def test_numeric_payment_and_unpaid_order():
    line = _mutate(
        lambda o: (o["pay_info"].update(payment=99.5), o["order_info"].update(pay_time=None))
    )
    [rec] = _parse(line)
    assert isinstance(rec, Record)
    assert rec.values["payment"] == Decimal("99.5")
    assert rec.values["pay_time"] is None


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"full_order_info": {"order_info": ', None, "malformed JSON: "),
        ("[1, 2]", None, "expected a JSON object"),
        (
            _mutate(lambda o: o["order_info"].pop("tid")),
            "order_id",
            "required field 'order_id' is missing",
        ),
        (
            _mutate(lambda o: o["pay_info"].update(payment="12..5")),
            "payment",
            "field 'payment' (full_order_info.pay_info.payment): expected a decimal amount",
        ),
        (
            _mutate(lambda o: o["pay_info"].update(payment="-5.00")),
            "payment",
            "less than the minimum",
        ),
        (_mutate(lambda o: o["order_info"].update(status="WHATEVER")), "status", "is not one of"),
        (_mutate(lambda o: o["order_info"].update(created="yesterday")), "created", "date-time"),
        (
            _mutate(lambda o: o["buyer_info"].update(buyer_phone={"a": 1})),
            "buyer_phone",
            "expected a scalar value",
        ),
    ],
)
def test_bad_lines_are_rejected_with_field_and_reason(line, field, reason):
    good2 = _mutate(lambda o: o["order_info"].update(tid="E20261122103105000002"))
    items = _parse(_line(GOOD), line, good2)
    assert [type(i) for i in items] == [Record, Rejected, Record]
    bad = items[1]
    assert bad.line == 2
    assert bad.field == field
    assert reason in bad.reason
    assert bad.raw == line


def test_empty_line_is_rejected_and_line_numbers_are_file_lines():
    items = _parse(_line(GOOD), "", _line(GOOD))
    assert [type(i) for i in items] == [Record, Rejected, Record]
    assert [i.line for i in items] == [1, 2, 3]
    assert items[1].reason == "empty line"


def test_unicode_line_separator_inside_a_string_does_not_split_the_line():
    line = _mutate(lambda o: o["remark_info"].update(buyer_message="请尽快\u2028发货"))
    items = _parse(line, _line(GOOD))
    assert [i.line for i in items] == [1, 2]
    assert all(isinstance(i, Record) for i in items)


def test_parse_file_dispatches_on_format(tmp_path: Path):
    path = tmp_path / "orders.jsonl"
    path.write_text(_line(GOOD) + "\n", encoding="utf-8")
    [rec] = parse_file(path, SPEC)
    assert isinstance(rec, Record)
