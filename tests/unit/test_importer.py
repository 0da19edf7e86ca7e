"""`cdp import`: one export in every format gives the same dry run; bad mappings fail early."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from openpyxl import Workbook
from typer.testing import CliRunner

from jobs.cli import app
from jobs.common.errors import CdpError
from jobs.ingest import importer
from jobs.ingest.records import Record

HEADER = ["订单编号", "会员编号", "手机号码", "下单时间", "实付金额", "订单状态", "备注"]
MAPPING = {
    "columns": {
        "订单编号": "order_id",
        "会员编号": "buyer_id",
        "手机号码": "phone",
        "下单时间": {"field": "created", "type": "datetime"},
        "实付金额": "payment",
        "订单状态": {"field": "status", "values": {"已完成": "completed", "已关闭": "closed"}},
    }
}
# The brand's rows, each with the rejection it must get (None: it lands).
ROWS: list[tuple[list[str | None], str | None]] = [
    (["E1", "M1", "13800138000", "2026-11-22 10:31:05", "258.50", "已完成", "首单"], None),
    (["E2", "M2", None, "2026-11-22 11:00:00", "12..5", "已完成", None], "decimal amount"),
    (["E3", None, "13900139000", "昨天", "99.00", "已关闭", None], "date-time"),
    (["E4", "M4", None, "2026-11-22 12:00:00", "10.00", "丢失", "备注"], None),
    (["E5", None, None, "2026-11-22 12:30:00", "10.00", "已完成", None], "at least one of"),
    (["E6", "M6", None, "2026-11-22 13:00:00", "abc", "已完成", None], "decimal amount"),
    (["E7", "M7", None, "2026-11-22 13:30:00", "￥1,288.50", "已关闭", None], None),
]
# Rows that land with a bad optional value nulled, and the reason counted: id -> (field, reason).
NULLED = {"E4": ("status", "unknown value")}
FIRST_LINE = {"csv": 2, "xlsx": 2, "parquet": 1, "jsonl": 1}  # line of the first data row


def write_export(tmp_path: Path, kind: str, rows=ROWS, header=HEADER) -> Path:
    cells = [r for r, _ in rows]
    if kind in ("csv-gbk", "csv-utf8-bom"):
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows([["" if c is None else c for c in r] for r in cells])
        path = tmp_path / "orders.csv"
        path.write_bytes(buf.getvalue().encode("gbk" if kind == "csv-gbk" else "utf-8-sig"))
    elif kind == "xlsx":
        book = Workbook()
        book.active.append(header)
        for r in cells:
            book.active.append(r)
        path = tmp_path / "orders.xlsx"
        book.save(path)
    elif kind == "parquet":
        path = tmp_path / "orders.parquet"
        columns = {h: pa.array([r[i] for r in cells], pa.string()) for i, h in enumerate(header)}
        pq.write_table(pa.table(columns), path)
    else:
        path = tmp_path / "orders.jsonl"
        objects = [{h: c for h, c in zip(header, r, strict=True) if c is not None} for r in cells]
        path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects))
    return path


def spec_for(path: Path, mapping: dict = MAPPING, source: str = "brand_erp"):
    fmt = importer.file_format(path)
    return importer.build_spec(mapping, source=source, dataset="orders", fmt=fmt)


@pytest.mark.parametrize(
    ("kind", "encoding"),
    [
        ("csv-gbk", "gb18030"),
        ("csv-utf8-bom", "utf-8-sig"),
        ("xlsx", None),
        ("parquet", None),
        ("jsonl", "utf-8"),
    ],
)
def test_dry_run_is_the_same_whatever_the_format(tmp_path, kind, encoding):
    path = write_export(tmp_path, kind)
    spec = spec_for(path)
    report = importer.dry_run(path, spec, preview=1)

    first = FIRST_LINE[spec.format]
    bad = {first + i: reason for i, (_, reason) in enumerate(ROWS) if reason}
    assert report.encoding == encoding
    assert report.rows_read == len(ROWS)
    assert report.would_land == len(ROWS) - len(bad)
    assert report.would_quarantine == len(bad)
    # Every bad row is under a reason that says what was wrong, at its own line.
    grouped = {line: g.pattern for g in report.reasons.values() for line in g.lines}
    assert set(grouped) == set(bad)
    for line, expected in bad.items():
        assert expected in grouped[line]
    # The two bad amounts are one reason, not two.
    amounts = [g for g in report.reasons.values() if "decimal amount" in g.pattern]
    assert [g.rows for g in amounts] == [2]

    # The bad optional value lands as null and is counted by reason, at its line.
    [issue] = report.issues.values()
    assert NULLED["E4"][0] in issue.pattern
    assert NULLED["E4"][1] in issue.pattern
    assert issue.lines == [first + 3]

    [rec] = report.preview
    assert isinstance(rec, Record)
    assert rec.line == first
    assert rec.values["order_id"] == "E1"
    assert rec.values["status"] == "completed"
    assert str(rec.values["payment"]) == "258.50"
    assert rec.extra == {"备注": "首单"}
    assert report.unmapped_columns == ["备注"]


def test_mapping_naming_columns_the_file_lacks_fails_before_any_row(tmp_path):
    path = write_export(tmp_path, "csv-gbk")
    mapping = {"columns": {**MAPPING["columns"], "付款时间": "paid_at", "门店": "store"}}
    with pytest.raises(CdpError) as exc:
        importer.dry_run(path, spec_for(path, mapping))
    message = str(exc.value)
    assert "付款时间, 门店" in message
    assert "the file has: " + ", ".join(HEADER) in message


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"columns": {**MAPPING["columns"], "积分": "points"}}, "maps to 'points'"),
        ({"columns": {k: v for k, v in MAPPING["columns"].items() if k != "实付金额"}}, "payment"),
        (
            {
                "columns": {
                    k: v for k, v in MAPPING["columns"].items() if v not in ("buyer_id", "phone")
                }
            },
            "at least one of buyer_id, phone",
        ),
        (
            {"columns": {**MAPPING["columns"], "实付金额": {"field": "payment", "type": "int"}}},
            "is a decimal",
        ),
        (
            {"columns": {**MAPPING["columns"], "会员号": "buyer_id"}},
            "several columns map to buyer_id",
        ),
        ({**MAPPING, "sheet": "订单"}, "`sheet:` is for .xlsx"),
        ({**MAPPING, "encoding": "klingon"}, "unknown encoding"),
        ({**MAPPING, "colums": {}}, "unknown key(s) ['colums']"),
        ({"columns": []}, "`columns:` must map"),
    ],
)
def test_bad_mappings_say_what_is_wrong(mapping, message):
    with pytest.raises(CdpError, match=None) as exc:
        importer.build_spec(mapping, source="brand_erp", dataset="orders", fmt="csv")
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("source", "name", "message"),
    [
        ("tmall", "o.csv", "platform source ingested every day"),
        ("Brand ERP", "o.csv", "lowercase letters"),
        ("brand_erp", "o.xls", "save it as .xlsx"),
        ("brand_erp", "o.txt", "unknown file type"),
    ],
)
def test_source_names_and_file_types_are_checked(source, name, message):
    with pytest.raises(CdpError) as exc:
        importer.build_spec(
            MAPPING, source=source, dataset="orders", fmt=importer.file_format(Path(name))
        )
    assert message in str(exc.value)


def test_every_dataset_has_a_target_with_its_required_fields():
    assert importer.target("orders").one_of == ("buyer_id", "phone")
    assert {"order_id", "created", "payment"} <= set(importer.target("orders").required)
    assert importer.target("customers").required == ("customer_id",)
    events = importer.target("events")
    assert set(events.required) == {"event_type", "ts"}
    assert "anonymous_id" in events.one_of
    assert importer.target("orders").types["payment"] == "decimal"
    assert importer.target("events").types["ts"] == "datetime"
    with pytest.raises(CdpError, match="orders, customers, events"):
        importer.target("payments")


def test_example_mapping_in_docs_is_valid():
    example = Path(importer.__file__).parents[2] / "docs/examples/import_orders_mapping.yaml"
    spec = importer.load_mapping(example, source="brand_erp", dataset="orders", fmt="xlsx")
    assert spec.sheet
    assert {"order_id", "created", "payment", "buyer_id"} <= {c.field for c in spec.columns}


def test_json_array_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "orders.json"
    path.write_text(json.dumps([{"订单编号": "E1"}]))
    with pytest.raises(CdpError, match="export JSON lines"):
        importer.inspect_file(path, spec_for(path))


def test_reason_pattern_masks_values_only():
    a = "field 'payment' (实付金额): expected a decimal amount like 128.00, got '12..5'"
    b = "field 'payment' (实付金额): expected a decimal amount like 128.00, got 'abc'"
    assert importer.reason_pattern(a) == importer.reason_pattern(b)
    c = "field 'phone': '12x' does not match '^1[0-9]{10}$'"
    assert importer.reason_pattern(c) == "field 'phone': … does not match '^1[0-9]{10}$'"


def test_cli_dry_run_prints_preview_counts_and_reasons(tmp_path, lake):
    path = write_export(tmp_path, "xlsx")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING, allow_unicode=True), encoding="utf-8")
    args = ["import", "orders", str(path), "--source", "brand_erp", "--mapping", str(mapping)]
    result = CliRunner().invoke(app, [*args, "--dry-run", "--preview", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    bad = sum(1 for _, reason in ROWS if reason)
    assert f"rows read {len(ROWS)}: would land {len(ROWS) - bad}, would be quarantined {bad}" in (
        result.output
    )
    assert "first 2 rows that would land" in result.output
    assert "at least one of the fields 'buyer_id', 'phone'" in result.output
    assert "bronze.import_brand_erp_orders" in result.output
    assert not Path(lake.lake_root).exists()  # a dry run writes nothing

    missing = CliRunner().invoke(app, [*args[:5], "--mapping", str(tmp_path / "no.yaml")])
    assert isinstance(missing.exception, CdpError)
    assert "does not exist" in str(missing.exception)
