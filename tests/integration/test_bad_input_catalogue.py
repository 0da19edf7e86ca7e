"""The bad-input catalogue: every class of hostile or messy input a brand's files bring, through
`cdp import`, `cdp ingest` and `cdp query`, with the outcome it must get.

Each case is one class: a file (or a command) and what must happen — quarantined with a reason,
refused with a one-line error naming what is wrong, or accepted with the correct value (a bad
optional value accepted as null, its reason counted). For everything that runs, the physical
lines of the file must equal the lines in bronze plus the lines in quarantine, read back from
the Delta tables. docs/bad_input.md lists the same cases as a table; a test keeps them in step.

Real delta-rs and DuckDB on a fresh lake per case; no Spark (each case takes well under a second).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml
from deltalake import DeltaTable
from openpyxl import Workbook
from typer.testing import CliRunner

from jobs.cli import app
from jobs.common import lake as lake_io
from jobs.common.errors import CdpError

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 22)
ROOT = Path(__file__).resolve().parents[2]

ORDERS = "order_id,buyer_id,phone,created,payment,status,note"
GOOD = "A1,M1,13800138001,2026-11-22 10:00:00,128.00,已完成,ok"
ORDERS_MAPPING = {
    "columns": {
        "order_id": "order_id",
        "buyer_id": "buyer_id",
        "phone": "phone",
        "created": "created",
        "payment": "payment",
        "status": {"field": "status", "values": {"已完成": "completed", "已关闭": "closed"}},
        "note": "item_title",
    }
}
CUSTOMERS = "customer_id,name,phone,birthday,points,email"
CUSTOMER = "C1,张伟,13900139001,1991-02-28,120,zw@example.com"
CUSTOMERS_MAPPING = {"columns": {h: h for h in CUSTOMERS.split(",")}}


def row(**cells: str) -> str:
    """The good order line with some cells replaced."""
    values = dict(zip(ORDERS.split(","), GOOD.split(","), strict=True))
    values.update(cells)
    return ",".join(values.values())


def customer(**cells: str) -> str:
    values = dict(zip(CUSTOMERS.split(","), CUSTOMER.split(","), strict=True))
    values.update(cells)
    return ",".join(values.values())


def text_file(*lines: str, header: str = ORDERS, eol: str = "\n", encoding="utf-8") -> bytes:
    return (eol.join([header, *lines]) + eol).encode(encoding)


def workbook(sheets: dict[str, list[list[object]]], merge: str | None = None) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        ws = book.create_sheet(title)
        for r in rows:
            ws.append(r)
        if merge and title == next(iter(sheets)):
            ws.merge_cells(merge)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


SHEET = [c for c in ORDERS.split(",")]
SHEET_ROW = ["X1", "M1", "13800138001", datetime(2026, 11, 22, 10), 128.0, "已完成", "ok"]


# --- running a case ---------------------------------------------------------------------------


@dataclass
class Run:
    """What a command did: exit code, output, and the error line if it was refused."""

    code: int
    out: str
    error: str | None


def cdp(*args: str) -> Run:
    """Run a `cdp` command in-process as `jobs.cli.main` would: a CdpError is one line."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    out = " ".join(result.stdout.split())  # Rich wraps long lines: compare words
    if isinstance(result.exception, CdpError):
        return Run(1, out, f"error: {result.exception}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, out, None)


@dataclass
class Lake:
    settings: object
    tmp: Path

    def table(self, layer: str, name: str):
        path = lake_io.table_path(layer, name, self.settings)
        if not lake_io.is_delta(path):
            return []
        return DeltaTable(path).to_pyarrow_table().to_pylist()

    def bronze(self, dataset: str = "orders", source: str = "brand") -> list[dict]:
        return self.table("bronze", f"import_{source}_{dataset}")

    def quarantine(self) -> list[dict]:
        return self.table("quarantine", "records")

    def issues(self) -> list[dict]:
        return self.table("ops", "field_issues")

    def write(self, name: str, data: bytes) -> Path:
        path = self.tmp / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def mapping(self, mapping: dict | str, name: str = "mapping.yaml") -> Path:
        text = mapping if isinstance(mapping, str) else yaml.safe_dump(mapping, allow_unicode=True)
        return self.write(name, text.encode("utf-8"))

    def import_(
        self,
        name: str,
        data: bytes,
        *,
        dataset: str = "orders",
        mapping: dict | str | None = None,
        day: date = DAY,
        extra: tuple[str, ...] = (),
    ) -> Run:
        mapping = mapping or (ORDERS_MAPPING if dataset == "orders" else CUSTOMERS_MAPPING)
        path = self.write(name, data)
        return cdp(
            "import",
            dataset,
            path,
            "--source",
            "brand",
            "--mapping",
            self.mapping(mapping),
            "--date",
            day.isoformat(),
            *extra,
        )

    def dry_run(self, data: bytes) -> Run:
        """`cdp import customers … --dry-run` of a customer file."""
        path = self.write("c.csv", data)
        mapping = self.mapping(CUSTOMERS_MAPPING)
        return cdp(
            "import", "customers", path, "--source", "brand", "--mapping", mapping, "--dry-run"
        )

    def land(self, source: str, dataset: str, name: str, data: bytes, day: date = DAY) -> Path:
        folder = Path(self.settings.landing_root) / source / dataset / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        return folder / name

    def accounted(self) -> tuple[int, int]:
        """(lines in bronze, lines in quarantine) over the whole lake, read back from Delta."""
        bronze = 0
        for layer, _name, path in lake_io.list_tables(self.settings):
            if layer == "bronze":
                table = DeltaTable(path).to_pyarrow_table(columns=["_lines"])
                bronze += int(pc.sum(table.column("_lines")).as_py() or 0)
        quarantined = sum(r["lines"] or 1 for r in self.quarantine())
        return bronze, quarantined


@pytest.fixture
def world(lake, tmp_path) -> Lake:
    return Lake(lake, tmp_path)


def data_lines(data: bytes) -> int:
    """Physical lines after the header: what reconciliation must account for."""
    return len(re.split(rb"\r\n|\r|\n", data.rstrip(b"\r\n"))) - 1


def one_line_error(run: Run, *needles: str) -> None:
    assert run.code == 1, run.out
    assert run.error is not None, run.out
    assert "\n" not in run.error, run.error
    for needle in needles:
        assert needle in run.error, run.error


def quarantined(world: Lake, line: int, *needles: str, field: str | None = None) -> dict:
    [q] = [q for q in world.quarantine() if q["line"] == line]
    for needle in needles:
        assert needle in q["reason"], q["reason"]
    if field is not None:
        assert q["field"] == field
    return q


def landed(world: Lake, order_id: str, dataset: str = "orders") -> dict:
    key = "order_id" if dataset == "orders" else "customer_id"
    [r] = [r for r in world.bronze(dataset) if r[key] == order_id]
    return r


def issue_of(r: dict, field: str) -> dict:
    issues = json.loads(r["_issues"])
    return issues[field]


# --- the cases --------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    outcome: str  # quarantined | refused | accepted | nulled | flagged
    run: Callable[[Lake], None]
    reconcile: bool = True  # check lines read = bronze + quarantine afterwards
    lines: int | None = None  # physical data lines the case read (None: not checked here)
    notes: list[str] = field(default_factory=list)


CASES: list[Case] = []


def case(id: str, outcome: str, *, reconcile: bool = True):
    def register(fn: Callable[[Lake], int | None]) -> Callable:
        CASES.append(Case(id, outcome, fn, reconcile))
        return fn

    return register


# Values


@case("decimal-comma", "quarantined")
def _(w):
    w.import_("o.csv", text_file(GOOD, row(order_id="A2", payment='"1.288,50"')))
    quarantined(w, 3, "ambiguous", field="payment")
    assert landed(w, "A1")["payment"] == Decimal("128.00")


@case("misplaced-grouping", "quarantined")
def _(w):
    w.import_("o.csv", text_file(row(payment='"1,2,3,4"')))
    quarantined(w, 2, "between groups of three digits", field="payment")


@case("grouped-amount", "accepted")
def _(w):
    w.import_("o.csv", text_file(row(payment='"1,288.50"')))
    assert landed(w, "A1")["payment"] == Decimal("1288.50")


@case("currency-symbol", "accepted")
def _(w):
    w.import_("o.csv", text_file(row(payment="￥128"), row(order_id="A2", payment="¥ 9.9")))
    assert landed(w, "A1")["payment"] == Decimal("128.00")
    assert landed(w, "A2")["payment"] == Decimal("9.90")


@case("full-width-digits", "accepted")
def _(w):
    w.import_("o.csv", text_file(row(payment="１２８.５０")))
    assert landed(w, "A1")["payment"] == Decimal("128.50")


@case("amount-overflow", "quarantined")
def _(w):
    w.import_("o.csv", text_file(row(payment="99999999999999999")))
    quarantined(w, 2, "below 10^16", field="payment")


@case("int-overflow-optional", "nulled")
def _(w):
    w.import_(
        "c.csv",
        text_file(customer(points="99999999999999999999"), header=CUSTOMERS),
        dataset="customers",
    )
    r = landed(w, "C1", "customers")
    assert r["points"] is None
    assert "64 bits" in issue_of(r, "points")["reason"]
    assert issue_of(r, "points")["value"] == "99999999999999999999"


@case("int-overflow-dry-run-agrees", "nulled", reconcile=False)
def _(w):
    run = w.dry_run(text_file(customer(points="99999999999999999999"), header=CUSTOMERS))
    assert run.code == 0
    assert "would land 1" in run.out
    assert "64 bits" in run.out


@case("calendar-date-invalid", "nulled")
def _(w):
    w.import_(
        "c.csv", text_file(customer(birthday="1991-02-30"), header=CUSTOMERS), dataset="customers"
    )
    r = landed(w, "C1", "customers")
    assert r["birthday"] is None
    assert "calendar date" in issue_of(r, "birthday")["reason"]


@case("birthday-valid-is-a-date", "accepted")
def _(w):
    w.import_(
        "c.csv", text_file(customer(birthday="1991/2/28"), header=CUSTOMERS), dataset="customers"
    )
    assert landed(w, "C1", "customers")["birthday"] == date(1991, 2, 28)


@case("year-0001-optional", "nulled")
def _(w):
    w.import_(
        "c.csv", text_file(customer(birthday="0001-01-01"), header=CUSTOMERS), dataset="customers"
    )
    r = landed(w, "C1", "customers")
    assert r["birthday"] is None
    assert "between 1900 and 2099" in issue_of(r, "birthday")["reason"]


@case("year-0001-required", "quarantined")
def _(w):
    w.import_("o.csv", text_file(row(created="0001-01-01 00:00:00")))
    quarantined(w, 2, "between 1900 and 2099", field="created")


@case("excel-serial-as-date", "quarantined")
def _(w):
    w.import_("o.csv", text_file(row(created="45253.5")))
    quarantined(w, 2, "expected a date-time", field="created")


@case("datetime-with-offset", "accepted")
def _(w):
    w.import_("o.csv", text_file(row(created="2026-11-22T02:00:00Z")))
    created = landed(w, "A1")["created"]
    assert created.isoformat() == "2026-11-22T02:00:00+00:00"  # 10:00 in Shanghai


@case("nul-byte-in-identifier", "quarantined")
def _(w):
    w.import_("o.csv", text_file(row(order_id="A\x001")))
    quarantined(w, 2, "control character", "U+0000", field="order_id")


@case("control-character-in-optional", "nulled")
def _(w):
    w.import_("o.csv", text_file(row(note="bad\x07bell")))
    r = landed(w, "A1")
    assert r["item_title"] is None
    assert "U+0007" in issue_of(r, "item_title")["reason"]


@case("unknown-status-value", "nulled")
def _(w):
    w.import_("o.csv", text_file(row(status="已失踪")))
    r = landed(w, "A1")
    assert r["status"] is None
    assert issue_of(r, "status")["value"] == "已失踪"
    [counted] = w.issues()
    assert (counted["field"], counted["rows"], counted["first_line"]) == ("status", 1, 2)
    assert "已失踪" not in counted["reason"]  # ops is analyst-readable: no values


@case("required-field-empty", "quarantined")
def _(w):
    w.import_("o.csv", text_file(row(order_id="")))
    quarantined(w, 2, "required field 'order_id'")


@case("placeholder-dashes", "accepted")
def _(w):
    w.import_("o.csv", text_file(row(phone="-------")))
    r = landed(w, "A1")
    assert r["phone"] is None  # "-", "--", "/" mean no value in exports
    assert r["_issues"] is None


# Identifiers: never silently nulled


@case("phone-seven-zeros", "flagged")
def _(w):
    w.import_("o.csv", text_file(row(phone="0000000")))
    r = landed(w, "A1")
    assert r["phone"] == "0000000"  # kept for identity rules to block, flagged
    assert "not a phone number" in issue_of(r, "phone")["reason"]


@case("phone-ten-digits", "flagged")
def _(w):
    w.import_("o.csv", text_file(row(phone="1380000111")))
    r = landed(w, "A1")
    assert r["phone"] == "1380000111"
    assert "not a phone number" in issue_of(r, "phone")["reason"]


@case("phone-junk-but-valid", "accepted")
def _(w):
    w.import_("o.csv", text_file(row(phone="13800138000")))
    r = landed(w, "A1")
    assert (r["phone"], r["_issues"]) == ("13800138000", None)


@case("phone-with-spaces-and-prefix", "accepted")
def _(w):
    w.import_("o.csv", text_file(row(phone="+86 138 0000 1111")))
    r = landed(w, "A1")
    assert (r["phone"], r["_issues"]) == ("+86 138 0000 1111", None)


@case("identifier-too-long", "quarantined")
def _(w):
    w.import_(
        "c.csv", text_file(customer(customer_id="C" * 200), header=CUSTOMERS), dataset="customers"
    )
    quarantined(w, 2, "longer than 128", field="customer_id")


# Encodings


@case("gbk-file", "accepted")
def _(w):
    w.import_("c.csv", text_file(CUSTOMER, header=CUSTOMERS, encoding="gbk"), dataset="customers")
    assert landed(w, "C1", "customers")["name"] == "张伟"


@case("utf8-bom", "accepted")
def _(w):
    w.import_(
        "c.csv", text_file(CUSTOMER, header=CUSTOMERS, encoding="utf-8-sig"), dataset="customers"
    )
    assert landed(w, "C1", "customers")["name"] == "张伟"


@case("mixed-encodings", "quarantined")
def _(w):
    lines = [
        CUSTOMERS,
        CUSTOMER,
        customer(customer_id="C2", name="李娜"),
        customer(customer_id="C3"),
    ]
    data = (
        b"\n".join(line.encode("gbk" if i == 2 else "utf-8") for i, line in enumerate(lines))
        + b"\n"
    )
    w.import_("c.csv", data, dataset="customers")
    quarantined(w, 3, "mixed encodings", "GB18030")
    assert {r["customer_id"]: r["name"] for r in w.bronze("customers")} == {
        "C1": "张伟",
        "C3": "张伟",
    }


@case("undecodable-bytes", "quarantined")
def _(w):
    data = text_file(GOOD, header=ORDERS) + b"A2,M2,\x81\x20,2026-11-22 10:00:00,1,\xff\xfe,x\n"
    w.import_("o.csv", data)
    quarantined(w, 3, "undecodable bytes")
    assert landed(w, "A1")


# Lines and quotes


@case("unbalanced-quote", "quarantined")
def _(w):
    lines = [row(order_id=f"A{i}") for i in range(1, 6)]
    lines[2] = row(order_id="A3", note='"VIP 客户')  # the quote never closes
    w.import_("o.csv", text_file(*lines))
    quarantined(w, 4, "unbalanced quote")
    assert sorted(r["order_id"] for r in w.bronze()) == ["A1", "A2", "A4", "A5"]


@case("quoted-line-break", "accepted")
def _(w):
    w.import_("o.csv", text_file(row(note='"上海市\n浦东新区"'), row(order_id="A2")))
    r = landed(w, "A1")
    assert r["item_title"] == "上海市\n浦东新区"
    assert (r["_line"], r["_lines"]) == (2, 2)
    assert landed(w, "A2")["_line"] == 4


@case("cr-only-line-endings", "accepted")
def _(w):
    w.import_("o.csv", text_file(GOOD, row(order_id="A2"), eol="\r"))
    assert len(w.bronze()) == 2


@case("crlf-line-endings", "accepted")
def _(w):
    w.import_("o.csv", text_file(GOOD, row(order_id="A2"), eol="\r\n"))
    assert landed(w, "A2")["item_title"] == "ok"


@case("one-megabyte-field", "quarantined")
def _(w):
    w.import_("o.csv", text_file(GOOD, row(order_id="A2", note="x" * 1_048_576)))
    quarantined(w, 3, "characters, over the 65,536")
    assert landed(w, "A1")


@case("one-megabyte-line", "quarantined")
def _(w):
    w.import_("o.csv", text_file(GOOD, "y" * 1_048_576))
    quarantined(w, 3, "expected 7 fields, got 1")


@case("empty-line-inside", "quarantined")
def _(w):
    w.import_("o.csv", text_file(GOOD, ",,,,,,", row(order_id="A2")))
    quarantined(w, 3, "empty line")


@case("too-few-fields", "quarantined")
def _(w):
    w.import_("o.csv", text_file("A1,M1,138"))
    quarantined(w, 2, "expected 7 fields, got 3")


@case("too-many-fields", "quarantined")
def _(w):
    w.import_("o.csv", text_file(GOOD + ",extra,cells"))
    quarantined(w, 2, "expected 7 fields, got 9")


# Headers and delimiters


@case("duplicated-mapped-header-import", "refused", reconcile=False)
def _(w):
    run = w.import_("o.csv", text_file(GOOD + ",13900000000", header=ORDERS + ",phone"))
    one_line_error(run, "o.csv", "'phone' more than once", "columns 3, 8")
    assert w.bronze() == []


@case("duplicated-mapped-header-landing", "quarantined")
def _(w):
    from jobs.ingest.spec import get_spec

    spec = get_spec("tmall.orders")
    header = ",".join(c.header for c in spec.columns)
    mobile = next(c.header for c in spec.columns if c.field == "receiver_mobile")
    line = (
        "2026112201000001,AAGxyz0123456789abcdefgh,258.00,交易成功,王伟,13912345678,上海市,"
        "2026-11-22 10:31:05,2026-11-22 10:35:00,精华液,2,0.00"
    )
    w.land("tmall", "orders", "orders.csv", f"{header},{mobile}\n{line},\n".encode())
    run = cdp("ingest", "tmall.orders", "--date", DAY.isoformat())
    assert run.code == 0
    quarantined(w, 2, "more than once", field="receiver_mobile")


@case("duplicated-unmapped-header", "accepted")
def _(w):
    w.import_("o.csv", text_file(GOOD + ",a,b", header=ORDERS + ",tag,tag"))
    extra = json.loads(landed(w, "A1")["_extra"])
    assert extra == {"tag": "a", "tag (column 9)": "b"}


@case("semicolon-delimited", "refused", reconcile=False)
def _(w):
    run = w.import_("o.csv", text_file(GOOD.replace(",", ";"), header=ORDERS.replace(",", ";")))
    one_line_error(run, "o.csv", "';'-delimited", "delimiter")


@case("tab-delimited", "refused", reconcile=False)
def _(w):
    run = w.import_(
        "o.tsv.csv", text_file(GOOD.replace(",", "\t"), header=ORDERS.replace(",", "\t"))
    )
    one_line_error(run, "a tab-delimited")


@case("semicolon-with-delimiter-setting", "accepted")
def _(w):
    mapping = {**ORDERS_MAPPING, "delimiter": ";"}
    w.import_(
        "o.csv",
        text_file(row(payment="9.90").replace(",", ";"), header=ORDERS.replace(",", ";")),
        mapping=mapping,
    )
    assert landed(w, "A1")["payment"] == Decimal("9.90")


@case("mapped-column-missing", "refused", reconcile=False)
def _(w):
    run = w.import_("o.csv", text_file("A1,M1", header="order_id,buyer_id"))
    one_line_error(run, "o.csv", "does not have", "created")


# Mappings


@case("mapping-duplicate-key", "refused", reconcile=False)
def _(w):
    mapping = "columns:\n  order_id: order_id\n  phone: phone\n  phone: buyer_id\n"
    run = w.import_("o.csv", text_file(GOOD), mapping=mapping)
    one_line_error(run, "mapping", "'phone' appears twice", "lines 3 and 4")


@case("mapping-unknown-field", "refused", reconcile=False)
def _(w):
    run = w.import_("o.csv", text_file(GOOD), mapping={"columns": {"order_id": "orderid"}})
    one_line_error(run, "maps to 'orderid'")


# JSON lines


@case("json-nan-identifier", "quarantined")
def _(w):
    lines = [
        '{"order_id": "J1", "buyer_id": NaN, "created": "2026-11-22 10:00:00", "payment": 1}',
        '{"order_id": "J2", "buyer_id": "M2", "created": "2026-11-22 10:00:00", "payment": 1}',
    ]
    mapping = {"columns": {k: k for k in ("order_id", "buyer_id", "created", "payment")}}
    w.import_("o.jsonl", ("\n".join(lines) + "\n").encode(), mapping=mapping)
    quarantined(w, 1, "NaN", field="buyer_id")
    assert [r["buyer_id"] for r in w.bronze()] == ["M2"]


@case("json-nan-optional", "nulled")
def _(w):
    line = (
        '{"order_id": "J1", "buyer_id": "M1", "created": "2026-11-22 10:00:00", "payment": 1,'
        ' "note": NaN}'
    )
    mapping = {
        "columns": {
            **{k: k for k in ("order_id", "buyer_id", "created", "payment")},
            "note": "item_title",
        }
    }
    w.import_("o.jsonl", (line + "\n").encode(), mapping=mapping)
    assert landed(w, "J1")["item_title"] is None


@case("json-duplicate-key", "quarantined")
def _(w):
    line = (
        '{"order_id": "J1", "order_id": "J9", "buyer_id": "M1", "created": "2026-11-22 10:00:00",'
        ' "payment": 1}'
    )
    mapping = {"columns": {k: k for k in ("order_id", "buyer_id", "created", "payment")}}
    w.import_("o.jsonl", (line + "\n").encode(), mapping=mapping)
    quarantined(w, 1, "appears twice")


@case("json-truncated-line", "quarantined")
def _(w):
    good = '{"order_id": "J1", "buyer_id": "M1", "created": "2026-11-22 10:00:00", "payment": 1}'
    mapping = {"columns": {k: k for k in ("order_id", "buyer_id", "created", "payment")}}
    w.import_("o.jsonl", (good + "\n" + good[:30] + "\n").encode(), mapping=mapping)
    quarantined(w, 2, "malformed JSON")


@case("json-array-file", "refused", reconcile=False)
def _(w):
    mapping = {"columns": {k: k for k in ("order_id", "buyer_id", "created", "payment")}}
    run = w.import_("o.json", b'[{"order_id": "J1"}]\n', mapping=mapping)
    one_line_error(run, "o.json", "JSON array")


# Excel


@case("excel-second-sheet", "refused", reconcile=False)
def _(w):
    data = workbook({"part1": [SHEET, SHEET_ROW], "part2": [SHEET, ["X2", *SHEET_ROW[1:]]]})
    run = w.import_("o.xlsx", data)
    one_line_error(run, "o.xlsx", "2 sheets", "part1, part2", "sheet:")
    # Naming each sheet imports each as its own part.
    for sheet in ("part1", "part2"):
        assert w.import_("o.xlsx", data, mapping={**ORDERS_MAPPING, "sheet": sheet}).code == 0
    assert sorted(r["order_id"] for r in w.bronze()) == ["X1", "X2"]


@case("excel-second-sheet-landing", "quarantined")
def _(w):
    from jobs.ingest.spec import get_spec

    spec = get_spec("erp.orders")
    header = [c.header for c in spec.columns]
    other = [None] * len(header)  # part 2 of the export, on a sheet the spec does not read
    data = workbook(
        {spec.sheet: [header], "第2页": [header, other, ["x", *other[1:]]], "说明": [["notes"]]}
    )
    w.land("erp", "orders", "orders.xlsx", data)
    assert cdp("ingest", "erp.orders", "--date", DAY.isoformat()).code == 0
    reasons = [q["reason"] for q in w.quarantine()]
    # Its header row and its data row; the blank row between is no data; a sheet with another
    # header (notes) is not a part of the export.
    assert len(reasons) == 2, reasons
    assert all("sheet '第2页' is not read" in r for r in reasons), reasons


@case("excel-formula-without-value", "quarantined")
def _(w):
    data = workbook(
        {"s": [SHEET, ["X1", "M1", "1", datetime(2026, 11, 22, 10), "=SUM(1,2)", "已完成", "=A1"]]}
    )
    w.import_("o.xlsx", data)
    quarantined(w, 2, "formula", "=SUM(1,2)", field="payment")


@case("excel-merged-status", "accepted")
def _(w):
    rows = [SHEET, SHEET_ROW, ["X2", *SHEET_ROW[1:5], None, "ok"]]
    w.import_("o.xlsx", workbook({"s": rows}, merge="F2:F3"))
    assert {r["order_id"]: r["status"] for r in w.bronze()} == {
        "X1": "completed",
        "X2": "completed",
    }


@case("excel-rounded-long-number", "quarantined")
def _(w):
    w.import_("o.xlsx", workbook({"s": [SHEET, [202611220100000123, *SHEET_ROW[1:]]]}))
    quarantined(w, 2, "more digits than a spreadsheet keeps", field="order_id")


# Files, parts and re-sends


@case("two-parts-same-date", "accepted")
def _(w):
    w.import_("part1.csv", text_file(GOOD))
    w.import_("part2.csv", text_file(row(order_id="A2")))
    assert sorted(r["order_id"] for r in w.bronze()) == ["A1", "A2"]


@case("re-sent-file-replaces-only-itself", "accepted")
def _(w):
    w.import_("part1.csv", text_file(GOOD))
    w.import_("part2.csv", text_file(row(order_id="A2")))
    w.import_("part2.csv", text_file(row(order_id="A2", payment="5.00"), row(order_id="A3")))
    assert {r["order_id"]: r["payment"] for r in w.bronze()} == {
        "A1": Decimal("128.00"),
        "A2": Decimal("5.00"),
        "A3": Decimal("128.00"),
    }


@case("same-file-twice", "accepted")
def _(w):
    for _ in range(2):
        w.import_("o.csv", text_file(GOOD, row(order_id="A2", payment="x")))
    assert len(w.bronze()) == 1
    assert len(w.quarantine()) == 1
    assert len(w.table("ops", "ingestion_log")) == 1


@case("same-bytes-other-date", "accepted")
def _(w):
    w.import_("o.csv", text_file(GOOD))
    run = w.import_("copy.csv", text_file(GOOD), day=date(2026, 11, 23))
    assert "skipped copy.csv: same bytes as" in run.out
    assert len(w.bronze()) == 1


@case("header-only-first-time", "accepted")
def _(w):
    run = w.import_("o.csv", text_file())
    assert run.code == 0
    assert "0 lines read" in run.out


@case("header-only-resend", "refused")
def _(w):
    w.import_("o.csv", text_file(GOOD, row(order_id="A2")))
    run = w.import_("o.csv", text_file())
    one_line_error(run, "o.csv", "0 data line(s)", "had 2", "--allow-shrink")
    assert len(w.bronze()) == 2


@case("empty-file-resend", "refused")
def _(w):
    w.import_("o.csv", text_file(GOOD))
    one_line_error(w.import_("o.csv", b""), "had 1", "--allow-shrink")
    assert len(w.bronze()) == 1


@case("shrinking-resend-with-flag", "accepted")
def _(w):
    w.import_("o.csv", text_file(GOOD, row(order_id="A2")))
    one_line_error(w.import_("o.csv", text_file(GOOD)), "had 2")
    assert w.import_("o.csv", text_file(GOOD), extra=("--allow-shrink",)).code == 0
    assert [r["order_id"] for r in w.bronze()] == ["A1"]


@case("retract-a-file", "accepted")
def _(w):
    w.import_("good.csv", text_file(GOOD))
    w.import_("wrong.csv", text_file(row(order_id="W1"), row(order_id="W2", payment="x")))
    key = f"import/brand/orders/dt={DAY}/wrong.csv"
    run = cdp("retract", "brand.orders", key)
    assert run.code == 0, run.error
    assert [r["order_id"] for r in w.bronze()] == ["A1"]
    assert w.quarantine() == []
    again = w.import_("wrong.csv", text_file(row(order_id="W1"), row(order_id="W2", payment="x")))
    assert "retracted" in again.out
    assert [r["order_id"] for r in w.bronze()] == ["A1"]


@case("file-name-with-quote", "accepted")
def _(w):
    for _ in range(2):
        w.import_("o'brien.csv", text_file(GOOD))
    assert len(w.bronze()) == 1


@case("upper-case-extension-landing", "accepted")
def _(w):
    from jobs.ingest.spec import get_spec

    header = ",".join(c.header for c in get_spec("jd.orders").columns)
    w.land("jd", "orders", "ORDERS.CSV", (header + "\n").encode())
    run = cdp("ingest", "jd.orders", "--date", DAY.isoformat())
    assert "from 1 file(s)" in run.out


@case("stray-files-in-landing", "accepted")
def _(w):
    from jobs.ingest.spec import get_spec

    header = ",".join(c.header for c in get_spec("jd.orders").columns)
    w.land("jd", "orders", "orders.csv", (header + "\n").encode())
    w.land("jd", "orders", "readme.txt", b"notes")
    w.land("jd", "orders", "orders2.csv.part", b"half")
    run = cdp("ingest", "jd.orders", "--date", DAY.isoformat())
    assert "ignored orders2.csv.part: still being written" in run.out
    assert "ignored readme.txt: not a .csv file" in run.out


@case("concurrent-writer", "refused", reconcile=False)
def _(w):
    from jobs.ingest import journal

    with journal.exclusive("brand.orders", DAY, w.settings):
        run = w.import_("o.csv", text_file(GOOD))
    one_line_error(run, "brand.orders", "another ingestion is writing", "pid")
    assert w.bronze() == []


# Analyst access


@case("query-read-parquet", "refused", reconcile=False)
def _(w):
    w.import_("o.csv", text_file(GOOD))
    files = f"{w.settings.lake_root}/bronze/**/*.parquet"
    one_line_error(cdp("query", f"select phone from read_parquet('{files}')"), "query failed")


@case("query-read-text", "refused", reconcile=False)
def _(w):
    one_line_error(cdp("query", "select * from read_text('/etc/hostname')"), "query failed")


@case("query-glob", "refused", reconcile=False)
def _(w):
    one_line_error(cdp("query", "select * from glob('/etc/*')"), "query failed")


@case("query-copy-to-file", "refused", reconcile=False)
def _(w):
    out = w.tmp / "leak.csv"
    one_line_error(cdp("query", f"copy (select 1) to '{out}'"), "query failed")
    assert not out.exists()


@case("query-set-external-access", "refused", reconcile=False)
def _(w):
    one_line_error(cdp("query", "set enable_external_access = true"), "query failed")


@case("query-bronze-without-raw", "refused", reconcile=False)
def _(w):
    w.import_("o.csv", text_file(GOOD))
    one_line_error(cdp("query", "select phone from bronze.import_brand_orders"), "query failed")


@case("quarantine-list-masks-phones", "accepted", reconcile=False)
def _(w):
    w.import_("o.csv", text_file(row(order_id="", phone="13912345678")))
    run = cdp("quarantine", "list")
    assert run.code == 0, run.error
    assert "required field 'order_id'" in run.out
    assert "13912345678" not in run.out


@case("dry-run-preview-masks", "accepted", reconcile=False)
def _(w):
    run = w.dry_run(text_file(customer(phone="13912345678"), header=CUSTOMERS))
    assert run.code == 0
    assert "13912345678" not in run.out
    assert "张伟" not in run.out


# --- the test ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_class(world, case):
    case.run(world)
    if not case.reconcile:
        return
    # Everything read is accounted for, by physical line, as the ingestion log says and as the
    # tables hold.
    log = world.table("ops", "ingestion_log")
    read = sum(r["rows_read"] for r in log)
    assert all(r["status"] == "ok" for r in log), log
    assert read == sum(r["rows_bronze"] + r["rows_quarantined"] for r in log)
    manifest = {r["file"]: r["rows"] for r in world.table("ops", "ingest_manifest")}
    assert world.accounted() == (
        sum(r["rows_bronze"] for r in log),
        sum(r["rows_quarantined"] for r in log),
    )
    assert sum(manifest.values()) == read


def test_physical_lines_are_counted_from_the_file(world):
    """The reconciliation above counts what the parser says; this pins it to the file itself."""
    data = text_file(
        GOOD,
        row(order_id="A2", note='"line\nbreak"'),
        row(order_id="A3", note='"open'),
        row(order_id="A4", payment="x"),
        "",
        row(order_id="A5"),
        eol="\r\n",
    )
    world.import_("o.csv", data)
    [log] = world.table("ops", "ingestion_log")
    assert log["rows_read"] == data_lines(data) == 7
    assert world.accounted() == (4, 3)  # A1, A2 (2 lines), A5 | A3, A4, the empty line


def test_the_catalogue_is_documented():
    doc = (ROOT / "docs" / "bad_input.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", doc, flags=re.M))
    assert listed == {c.id for c in CASES}
    assert len(CASES) >= 45
    for c in CASES:
        assert re.search(rf"^\| `{c.id}` \| {c.outcome} \|", doc, flags=re.M), c.id
