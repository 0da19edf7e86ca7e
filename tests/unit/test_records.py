"""The Tmall order export parser: every line ends as a record or a rejection with a reason."""

from decimal import Decimal

import pytest

from jobs.ingest.decoding import decode
from jobs.ingest.records import Record, Rejected, parse_csv
from jobs.ingest.spec import get_spec
from jobs.ingest.values import coerce

SPEC = get_spec("tmall.orders")
HEADER = ",".join(c.header for c in SPEC.columns)
GOOD = (
    "2026112201000001,AAGxyz0123456789abcdefgh,258.00,交易成功,王伟,13912345678,"
    "上海市浦东新区1号,2026-11-22 10:31:05,2026-11-22 10:35:00,保湿精华液 30ml,2,0.00"
)


def _parse(*lines: str, encoding: str = "utf-8") -> list:
    return list(parse_csv(("\r\n".join([HEADER, *lines]) + "\r\n").encode(encoding), SPEC))


def test_good_line_is_mapped_and_coerced():
    [rec] = _parse(GOOD)
    assert isinstance(rec, Record)
    assert rec.line == 2
    assert rec.values["order_id"] == "2026112201000001"
    assert rec.values["payment"] == Decimal("258.00")
    assert rec.values["order_status"] == "TRADE_FINISHED"
    assert rec.values["created"] == "2026-11-22T10:31:05"
    assert rec.values["item_quantity"] == 2
    assert rec.extra == {}


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_gbk_and_bom_files_decode(encoding):
    [rec] = _parse(GOOD, encoding=encoding)
    assert isinstance(rec, Record)
    assert rec.values["receiver_name"] == "王伟"


def test_decode_reports_encoding():
    assert decode("王".encode("gbk"))[1] == "gb18030"
    assert decode(b"\xef\xbb\xbfabc") == ("abc", "utf-8-sig")


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda c: c[:5], None, "expected 12 fields, got 5"),
        (lambda c: [*c[:2], "12..5", *c[3:]], "payment", "expected a decimal amount"),
        (
            lambda c: [*c[:3], "交易状态未知", *c[4:]],
            "order_status",
            "unknown value '交易状态未知'",
        ),
        (lambda c: ["", *c[1:]], "order_id", "required field 'order_id'"),
        (lambda c: ["12ab", *c[1:]], "order_id", "does not match"),
        (lambda c: [*c[:7], "yesterday", *c[8:]], "created", "expected a date-time"),
        (lambda c: [*c[:2], "-5.00", *c[3:]], "payment", "less than the minimum"),
    ],
)
def test_bad_lines_are_rejected_with_field_and_reason(mutate, field, reason):
    line = ",".join(mutate(GOOD.split(",")))
    items = _parse(GOOD, line, GOOD.replace("0000001", "0000002"))
    assert [type(i) for i in items] == [Record, Rejected, Record]
    bad = items[1]
    assert bad.line == 3
    assert bad.field == field
    assert reason in bad.reason
    assert bad.raw == line


def test_bad_optional_field_becomes_null_with_its_reason_and_text_kept():
    cells = GOOD.split(",")
    cells[10] = "two"
    [rec] = _parse(",".join(cells))
    assert isinstance(rec, Record)
    assert rec.values["item_quantity"] is None
    [issue] = rec.issues
    assert (issue.field, issue.value) == ("item_quantity", "two")
    assert "expected a whole number" in issue.reason
    assert "two" not in issue.reason  # reasons are counted and shown: no values in them


def test_empty_line_is_rejected_not_dropped():
    items = _parse(GOOD, ",,,,,,,,,,,")
    assert isinstance(items[1], Rejected)
    assert items[1].reason == "empty line"


def test_unknown_column_is_kept_as_extra():
    data = (HEADER + ",店铺名称\r\n" + GOOD + ",旗舰店\r\n").encode()
    [rec] = parse_csv(data, SPEC)
    assert rec.extra == {"店铺名称": "旗舰店"}


def test_missing_required_column_rejects_every_line():
    header = HEADER.replace("买家实际支付金额", "实付")
    data = (header + "\r\n" + GOOD + "\r\n" + GOOD + "\r\n").encode()
    items = list(parse_csv(data, SPEC))
    assert len(items) == 2
    assert all(isinstance(i, Rejected) and "买家实际支付金额" in i.reason for i in items)


def test_multiline_quoted_cell_keeps_line_numbers():
    cells = GOOD.split(",")
    cells[6] = '"上海市\n浦东新区1号"'
    items = _parse(",".join(cells), GOOD.replace("0000001", "0000009"))
    assert [i.line for i in items] == [2, 4]
    assert all(isinstance(i, Record) for i in items)


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ("¥1,288.50", "decimal", Decimal("1288.50")),
        ("", "decimal", None),
        ("2026/11/22 10:31", "datetime", "2026-11-22T10:31:00"),
        ("  x ", "string", "x"),
    ],
)
def test_coerce(value, type_, expected):
    assert coerce(value, type_) == expected


def test_fast_and_full_schema_checks_agree(tmp_path, monkeypatch):
    """fastjsonschema (the fast path) and jsonschema must judge every record alike."""
    from datetime import date

    from jobs.ingest.records import SchemaValidator, parse_file
    from jobs.ingest.spec import load_specs
    from jobs.simulator import simulate

    simulate(tmp_path, customers=1500, days=1, end=date(2026, 11, 22), bad_rate=0.3)
    seen: list[dict] = []
    disagreements: list[tuple[str, dict]] = []
    original = SchemaValidator.errors

    def judge(validator, record):
        try:
            validator._fast(record)
            fast_ok = True
        except validator._invalid:
            fast_ok = False
        if fast_ok != (not list(validator.full.iter_errors(record))):
            disagreements.append((validator.full.schema.get("$id", "?"), record))
        return fast_ok

    def both(self, record):
        seen.append(record)
        judge(self, record)
        # and, for a sample, the same record with each value damaged: empty, long, wrong type
        for key in list(record)[:8] if len(seen) % 7 == 0 else []:
            for bad in ("", "x" * 300, 12, None):
                judge(self, {**record, key: bad})
        return original(self, record)

    monkeypatch.setattr(SchemaValidator, "errors", both)
    for spec in load_specs().values():
        folder = tmp_path / spec.source / spec.dataset
        for path in sorted(folder.glob(f"dt=*/*.{spec.format}")):
            for _ in parse_file(path, spec):
                pass
    assert len(seen) > 1000
    assert not disagreements, disagreements[:3]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_undecodable_lines_are_rejected_and_the_rest_of_the_file_lands(fmt):
    """A file with garbage bytes on one line (a truncated GBK character, a binary paste) is
    neither UTF-8 nor GB18030 as a whole: only that line is lost to quarantine, with its line."""
    from jobs.ingest.records import parse_jsonl

    garbage = b"\x81\x20"  # a GB18030 lead byte followed by a byte that can't trail it
    if fmt == "csv":
        good = GOOD.encode("gbk")
        data = b"\r\n".join([HEADER.encode("gbk"), good, good[:20] + garbage + good[20:], good])
        items = list(parse_csv(data + b"\r\n", SPEC))
        first = 2
    else:
        line = b'{"full_order_info": {"order_info": {"tid": "E1"}}}'
        data = b"\n".join([line, line[:10] + garbage + line[10:], line]) + b"\n"
        items = list(parse_jsonl(data, get_spec("youzan.orders")))
        first = 1
    assert len(items) == 3  # every line accounted for
    bad = [i for i in items if isinstance(i, Rejected) and "undecodable" in i.reason]
    assert [(b.line, b.field) for b in bad] == [(first + 1, None)]
    assert "81 20" in bad[0].reason
    assert "neither UTF-8 nor GB18030" in bad[0].reason
    assert all("undecodable" not in getattr(i, "reason", "") for i in items if i is not bad[0])
    if fmt == "csv":
        assert [i.line for i in items if isinstance(i, Record)] == [2, 4]
