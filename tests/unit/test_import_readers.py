"""Excel and Parquet readers: typed cells become the same records and rejections as CSV text."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from jobs.ingest import sheets
from jobs.ingest.records import Record, Rejected, parse_parquet, parse_xlsx
from jobs.ingest.spec import Column, SourceSpec
from jobs.ingest.values import coerce, typed_cell

COLUMNS = (
    Column("订单号", "order_id", "string"),
    Column("会员ID", "buyer_id", "string"),
    Column("手机", "phone", "string"),
    Column("下单时间", "created", "datetime"),
    Column("实付金额", "payment", "decimal"),
    Column("状态", "status", "string"),
    Column("数量", "item_quantity", "int"),
)
HEADER = [c.header for c in COLUMNS]
VALUES = {"status": {"已完成": "completed", "已关闭": "closed"}}


def spec(fmt: str, sheet: str | None = None) -> SourceSpec:
    return SourceSpec(
        source="brand",
        dataset="orders",
        format=fmt,
        schema="import/order/1-0-0",
        bronze_table="import_brand_orders",
        columns=COLUMNS,
        values=VALUES,
        sheet=sheet,
    )


# As a spreadsheet holds them: a phone typed as a number, amounts as floats, real datetimes.
GOOD = ["A1001", "M-7", 13800138000, datetime(2026, 11, 22, 10, 31, 5), 258.5, "已完成", 2.0]


def xlsx(*rows: list | None, header=HEADER, lead_blank: int = 0, sheets=("Sheet",)) -> bytes:
    book = Workbook()
    first = book.active
    first.title = sheets[0]
    for extra in sheets[1:]:
        book.create_sheet(extra)
    ws = book[sheets[-1]]
    for _ in range(lead_blank):
        ws.append([])
    ws.append(header)
    for row in rows:
        ws.append(row or [])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def parquet(table: pa.Table, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


def row_table(*rows: list, header=HEADER) -> pa.Table:
    """Rows as a Parquet table of strings (how a hand-made export often types everything)."""
    return pa.table(
        {
            h: pa.array([None if r[i] is None else str(r[i]) for r in rows])
            for i, h in enumerate(header)
        }
    )


def with_(index: int, value, row: list = GOOD) -> list:
    row = list(row)
    row[index] = value
    return row


# The same order as a text-typed Parquet file holds it.
GOOD_TEXT = ["A1001", "M-7", "13800138000", "2026-11-22 10:31:05", "258.50", "已完成", "2"]


# --- Excel -------------------------------------------------------------------------------------


def test_xlsx_typed_cells_become_the_values_csv_would_give():
    items = list(parse_xlsx(xlsx(GOOD, lead_blank=2), spec("xlsx")))
    [rec] = items
    assert isinstance(rec, Record)
    assert rec.line == 4  # two blank rows, the header on row 3, the order on row 4
    assert rec.values == {
        "order_id": "A1001",
        "buyer_id": "M-7",
        "phone": "13800138000",
        "created": "2026-11-22T10:31:05",
        "payment": Decimal("258.5"),
        "status": "completed",
        "item_quantity": 2,
    }


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        (with_(4, "12..5"), "payment", "expected a decimal amount"),
        (with_(3, "yesterday"), "created", "expected a date-time"),
        (with_(0, None), "order_id", "required field 'order_id'"),
        (with_(0, 202611220100000123), "order_id", "more digits than a spreadsheet keeps"),
        ([*GOOD[:1], None, None, *GOOD[3:]], "buyer_id", "at least one of"),
    ],
)
def test_xlsx_bad_rows_are_rejected_with_row_field_and_reason(bad, field, reason):
    other = with_(0, "A1002")
    items = list(parse_xlsx(xlsx(GOOD, bad, other), spec("xlsx")))
    assert [type(i) for i in items] == [Record, Rejected, Record]
    rejected = items[1]
    assert rejected.line == 3
    assert rejected.field == field
    assert reason in rejected.reason
    assert '"订单号"' in rejected.raw  # the row as header -> cell JSON


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        (with_(6, 2.5), "item_quantity", "expected a whole number"),
        (with_(5, "未知"), "status", "unknown value; expected one of 已完成, 已关闭"),
    ],
)
def test_xlsx_bad_optional_fields_become_null_with_the_reason_and_text_kept(bad, field, reason):
    [_good, row] = parse_xlsx(xlsx(GOOD, bad), spec("xlsx"))
    assert isinstance(row, Record)
    assert row.values[field] is None
    [issue] = row.issues
    assert issue.field == field
    assert reason in issue.reason
    assert issue.value in ("2.5", "未知")


def test_xlsx_empty_row_inside_is_rejected_but_trailing_blank_rows_are_not_data():
    data = xlsx(GOOD, None, with_(0, "A1002"), None, None)
    items = list(parse_xlsx(data, spec("xlsx")))
    assert [(type(i), i.line) for i in items] == [(Record, 2), (Rejected, 3), (Record, 4)]
    assert items[1].reason == "empty row"


def test_xlsx_missing_required_column_rejects_every_row_naming_it():
    header = [h if h != "实付金额" else "金额" for h in HEADER]
    items = list(parse_xlsx(xlsx(GOOD, with_(0, "A1002"), header=header), spec("xlsx")))
    assert len(items) == 2
    assert all(isinstance(i, Rejected) and "实付金额" in i.reason for i in items)
    assert {i.field for i in items} == {"payment"}


def test_xlsx_unknown_columns_are_kept_as_extra():
    data = xlsx([*GOOD, "旗舰店", 3.0], header=[*HEADER, "门店"])
    [rec] = parse_xlsx(data, spec("xlsx"))
    assert rec.extra == {"门店": "旗舰店", "column_9": "3"}


def test_xlsx_reads_the_named_sheet_and_names_the_sheets_when_absent():
    data = xlsx(GOOD, sheets=("说明", "订单"))
    [rec] = parse_xlsx(data, spec("xlsx", sheet="订单"))
    assert isinstance(rec, Record)
    [bad] = parse_xlsx(data, spec("xlsx", sheet="Orders"))
    assert isinstance(bad, Rejected)
    assert "no sheet 'Orders'" in bad.reason
    assert "说明, 订单" in bad.reason


def test_not_a_workbook_is_one_rejection_not_a_crash():
    [bad] = parse_xlsx(b"order_id,payment\n1,2\n", spec("xlsx"))
    assert isinstance(bad, Rejected)
    assert "not a readable .xlsx workbook" in bad.reason


# --- Parquet -----------------------------------------------------------------------------------


def test_parquet_typed_columns_are_coerced_like_text():
    table = pa.table(
        {
            "订单号": pa.array(["A1001"]),
            "会员ID": pa.array([None], pa.string()),
            "手机": pa.array([13800138000], pa.int64()),
            # An aware timestamp is read in China time: 02:31:05Z is 10:31:05 in Shanghai.
            "下单时间": pa.array(
                [datetime(2026, 11, 22, 2, 31, 5, tzinfo=UTC)], pa.timestamp("ms", "UTC")
            ),
            "实付金额": pa.array([Decimal("258.50")], pa.decimal128(12, 2)),
            "状态": pa.array(["已完成"]),
            "数量": pa.array([2], pa.int32()),
            "标签": pa.array([["vip", "new"]], pa.list_(pa.string())),
        }
    )
    [rec] = parse_parquet(parquet(table), spec("parquet"))
    assert isinstance(rec, Record), rec
    assert rec.line == 1
    assert rec.values["phone"] == "13800138000"
    assert rec.values["buyer_id"] is None
    assert rec.values["created"] == "2026-11-22T10:31:05"
    assert rec.values["payment"] == Decimal("258.50")
    assert rec.values["item_quantity"] == 2
    assert rec.extra == {"标签": '["vip", "new"]'}


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        (with_(4, "12..5", GOOD_TEXT), "payment", "expected a decimal amount"),
        (with_(3, "yesterday", GOOD_TEXT), "created", "expected a date-time"),
    ],
)
def test_parquet_bad_rows_are_rejected(bad, field, reason):
    items = list(parse_parquet(parquet(row_table(GOOD_TEXT, bad)), spec("parquet")))
    assert [type(i) for i in items] == [Record, Rejected]
    assert (items[1].line, items[1].field) == (2, field)
    assert reason in items[1].reason
    assert '"订单号": "A1001"' in items[1].raw


@pytest.mark.parametrize(
    ("bad", "field"),
    [(with_(5, "未知", GOOD_TEXT), "status"), (with_(6, "2.0", GOOD_TEXT), "item_quantity")],
)
def test_parquet_bad_optional_fields_become_null_and_are_counted(bad, field):
    [_good, row] = parse_parquet(parquet(row_table(GOOD_TEXT, bad)), spec("parquet"))
    assert isinstance(row, Record)
    assert row.values[field] is None
    assert [i.field for i in row.issues] == [field]


def test_parquet_empty_row_and_missing_required_column():
    good = GOOD_TEXT
    items = list(parse_parquet(parquet(row_table(good, [None] * 7)), spec("parquet")))
    assert isinstance(items[1], Rejected)
    assert items[1].reason == "empty row"

    header = [h if h != "下单时间" else "时间" for h in HEADER]
    items = list(parse_parquet(parquet(row_table(good, good, header=header)), spec("parquet")))
    assert all(isinstance(i, Rejected) and "下单时间" in i.reason for i in items)
    assert len(items) == 2


def test_parquet_streams_batches_and_row_numbers_run_on(monkeypatch):
    monkeypatch.setattr(sheets, "PARQUET_BATCH_ROWS", 3)
    rows = [[f"A{n}", *GOOD_TEXT[1:]] for n in range(1, 9)]
    bad_at = 5
    rows[bad_at - 1][4] = "n/a"
    items = list(parse_parquet(parquet(row_table(*rows), row_group_size=4), spec("parquet")))
    assert [i.line for i in items] == list(range(1, len(rows) + 1))
    assert [i.line for i in items if isinstance(i, Rejected)] == [bad_at]


def test_not_parquet_is_one_rejection():
    [bad] = parse_parquet(b"PAR1 nope", spec("parquet"))
    assert isinstance(bad, Rejected)
    assert "not a readable Parquet file" in bad.reason


# --- typed cells -> coerce ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        (13800138000.0, "string", "13800138000"),
        (13800138000, "string", "13800138000"),
        (3.0, "int", 3),
        (258.0, "decimal", Decimal("258.0")),
        (0.1, "decimal", Decimal("0.1")),
        (1e15, "decimal", Decimal("1000000000000000")),
        (Decimal("12.30"), "decimal", Decimal("12.30")),
        (datetime(2026, 1, 2, 3, 4, 5, 678), "datetime", "2026-01-02T03:04:05"),
        (date(2026, 1, 2), "datetime", "2026-01-02T00:00:00"),
        (date(2026, 1, 2), "string", "2026-01-02"),
        (True, "string", "true"),
        (b"\xe7\x8e\x8b", "string", "王"),
        (None, "decimal", None),
    ],
)
def test_typed_cells_round_trip_through_coerce(value, type_, expected):
    text = typed_cell(value, type_)
    assert (None if text is None else coerce(text, type_)) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "expected a number"),
        (1.2345678901234567e17, "export the column as text"),
        ({"a": 1}, "expected a scalar value"),
    ],
)
def test_typed_cells_that_cannot_be_text_say_why(value, message):
    with pytest.raises(ValueError, match=message):
        typed_cell(value, "string")
