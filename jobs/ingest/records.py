"""Turning a platform's export file into validated records, line by line. Pure: no Spark, no lake.

Every input line (a CSV or JSON line, a sheet or Parquet row) ends as exactly one of: a `Record`
(mapped, coerced, schema-valid) or a `Rejected` (with file, line, field and a reason a person can
act on, plus the raw line). The caller counts both, so a batch always reconciles: lines read =
records + rejected.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator

from jobs.ingest.spec import Column, SourceSpec

if TYPE_CHECKING:
    from jobs.ingest.landing import LandingFile


@dataclass(frozen=True)
class Record:
    line: int
    values: dict[str, object]
    extra: dict[str, str]  # columns the spec does not know yet: kept, never dropped


@dataclass(frozen=True)
class Rejected:
    line: int
    field: str | None
    reason: str
    raw: str


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding). Brands' exports come as UTF-8 (often with a BOM) or GBK.

    `encoding` pins it (a mapping's ``encoding:``); undecodable bytes then raise ValueError.
    """
    if encoding is not None:
        try:
            return data.decode(encoding).removeprefix("\ufeff"), encoding
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"not valid {encoding} at byte {exc.start} ({exc.reason}); "
                "drop the fixed encoding to let it be detected"
            ) from exc
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # GB18030 is a superset of GBK and GB2312; strict, so garbage still fails loudly.
        return data.decode("gb18030"), "gb18030"


def decode_lenient(data: bytes, encoding: str | None = None) -> tuple[str, str, dict[int, str]]:
    """`decode`, but a file with a few undecodable lines still yields its good ones.

    Returns (text, encoding, {line number: why}) for the lines that are neither UTF-8 nor
    GB18030 (or not the pinned encoding); they are kept in the text with U+FFFD in place of
    the bad bytes, so the parser can reject exactly those lines with a reason.
    """
    try:
        text, used = decode(data, encoding)
        return text, used, {}
    except (UnicodeDecodeError, ValueError):
        pass
    candidates = (encoding,) if encoding else ("utf-8", "gb18030")
    data = data.removeprefix(b"\xef\xbb\xbf")
    texts: list[str] = []
    bad: dict[int, str] = {}
    for number, chunk in enumerate(data.split(b"\n"), start=1):
        for candidate in candidates:
            try:
                texts.append(chunk.decode(candidate))
                break
            except UnicodeDecodeError as exc:
                error = exc
        else:
            texts.append(chunk.decode(candidates[-1], errors="replace"))
            bad[number] = (
                f"undecodable bytes at column {error.start + 1} "
                f"({chunk[error.start : error.start + 4].hex(' ')}): the line is neither "
                f"{' nor '.join(c.upper() for c in candidates)}"
            )
    return "\n".join(texts), "mixed", bad


_SHANGHAI = ZoneInfo("Asia/Shanghai")
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M")
_ISO_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$")
_AMOUNT = re.compile(r"^-?\d+(\.\d+)?$")


def coerce(value: str, type_: str) -> object:
    """Coerce one export cell; raises ValueError with what was expected."""
    value = value.strip()
    if value in ("", "null", "NULL", "-"):
        return None
    if type_ == "string":
        return value
    if type_ == "decimal":
        cleaned = value.replace(",", "").replace("¥", "").replace("￥", "")
        if not _AMOUNT.match(cleaned):
            raise ValueError(f"expected a decimal amount like 128.00, got {value!r}")
        try:
            return Decimal(cleaned)
        except InvalidOperation as exc:  # pragma: no cover - guarded by the regex
            raise ValueError(f"expected a decimal amount, got {value!r}") from exc
    if type_ == "int":
        if not re.fullmatch(r"-?\d+", value):
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    if type_ == "datetime":
        if _ISO_SECONDS.match(value):  # the common shape: fromisoformat is ~10x strptime
            try:
                datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                return f"{value[:10]}T{value[11:]}"
        for fmt in _DATETIME_FORMATS:
            try:
                return datetime.strptime(value, fmt).strftime("%Y-%m-%dT%H:%M:%S")
            except ValueError:
                continue
        raise ValueError(f"expected a date-time like 2026-11-22 10:31:05, got {value!r}")
    raise ValueError(f"unknown type {type_!r}")


class SchemaValidator:
    """A JSON Schema check that is fast for the common case and precise for the rest.

    fastjsonschema compiles the schema to Python code (about 10x faster than jsonschema, which
    took ~70% of parsing time); only a record it rejects goes through jsonschema again, for the
    error a person can act on. Our schemas use draft-07 keywords only (`type`, `pattern`,
    `enum`, `if`/`then`, ...), on which both agree; tests/unit/test_records.py checks parity.
    """

    def __init__(self, schema: dict) -> None:
        import fastjsonschema

        self.full = Draft202012Validator(schema)
        draft7 = {k: v for k, v in schema.items() if k != "$schema"}
        self._fast = fastjsonschema.compile(draft7, use_default=False)
        self._invalid = fastjsonschema.JsonSchemaValueException

    def errors(self, record: dict) -> list:
        try:
            self._fast(record)
        except self._invalid:
            return list(self.full.iter_errors(record))
        return []


def _schema_error(validator: SchemaValidator, record: dict) -> tuple[str | None, str] | None:
    errors = sorted(validator.errors(record), key=lambda e: list(e.path))
    if not errors:
        return None
    err = errors[0]
    field = ".".join(str(p) for p in err.path) or None
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else None
        return missing, f"required field {missing!r} is missing or empty"
    alternatives = _required_alternatives(err.schema) if err.validator == "anyOf" else []
    if alternatives:
        names = ", ".join(repr(a) for a in alternatives)
        return alternatives[0], f"at least one of the fields {names} is required; all are empty"
    return field, f"field {field!r}: {err.message}"


def _jsonable(values: dict[str, object]) -> dict[str, object]:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


def _required_alternatives(schema: dict) -> list[str]:
    """Fields of an ``anyOf: [{required: [a]}, {required: [b]}]`` (at least one of a, b)."""
    branches = schema.get("anyOf", [])
    if not branches or not all(set(b) == {"required"} for b in branches):
        return []
    return [name for b in branches for name in b["required"]]


def _header_checks(
    spec: SourceSpec, header: list[str]
) -> tuple[dict[str, Column], SchemaValidator, set[str], tuple[str, str] | None]:
    """What a tabular file's header means for every row: columns by header, the schema checks,
    and, when the header lacks a required column, the (field, reason) each row is rejected with.
    """
    by_header = {c.header: c for c in spec.columns}
    missing = [c.header for c in spec.columns if c.header not in header]
    validator, required = _schema_checks(spec)
    missing_required = [by_header[h].field for h in missing if by_header[h].field in required]
    lacking = None
    if missing_required:
        lacking = (
            missing_required[0],
            f"file header lacks required column(s) {', '.join(missing)}",
        )
    return by_header, validator, required, lacking


def _schema_checks(spec: SourceSpec) -> tuple[SchemaValidator, set[str]]:
    """The spec's JSON Schema as a validator and its required fields (one read of the file).

    Fields of an at-least-one-of rule count as required: an empty one must be absent, not null.
    """
    schema = spec.json_schema()
    required = set(schema.get("required", [])) | set(_required_alternatives(schema))
    return SchemaValidator(schema), required


def _to_record(
    line: int,
    cells: list[tuple[Column, str, str | None]],
    extra: dict[str, str],
    raw: str,
    spec: SourceSpec,
    validator: SchemaValidator,
    required: set[str],
) -> Record | Rejected:
    """One line's (column, label, cell) triples -> coerced, value-mapped, schema-valid Record.

    Shared by every format so a field is coerced and validated the same way whatever the file.
    `label` is what the source calls the column (a CSV header, a JSON path); None cells are absent.
    """
    values: dict[str, object] = {c.field: None for c in spec.columns}
    for column, label, cell in cells:
        try:
            value = None if cell is None else coerce(cell, column.type)
        except ValueError as exc:
            return Rejected(line, column.field, f"field {column.field!r} ({label}): {exc}", raw)
        mapped = spec.values.get(column.field)
        if mapped is not None and value is not None:
            if value not in mapped:
                expected = ", ".join(mapped)
                return Rejected(
                    line,
                    column.field,
                    f"field {column.field!r} ({label}): unknown value {value!r}; "
                    f"expected one of {expected}",
                    raw,
                )
            value = mapped[value]
        values[column.field] = value
    problem = _schema_error(
        validator,
        _jsonable({k: v for k, v in values.items() if v is not None or k not in required}),
    )
    if problem is not None:
        return Rejected(line, problem[0], problem[1], raw)
    return Record(line, values, extra)


def parse_csv(data: bytes, spec: SourceSpec) -> Iterator[Record | Rejected]:
    """Records and rejections of one CSV export, in line order."""
    text, _encoding, undecodable = decode_lenient(data, spec.encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    lines = text.splitlines()
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    by_header, validator, required, lacking = _header_checks(spec, header)
    start = reader.line_num + 1
    for row in reader:
        line = start
        start = reader.line_num + 1
        raw = "\n".join(lines[line - 1 : reader.line_num])
        broken = [n for n in range(line, reader.line_num + 1) if n in undecodable]
        if broken:
            yield Rejected(line, None, undecodable[broken[0]], raw)
            continue
        if not any(cell.strip() for cell in row):
            yield Rejected(line, None, "empty line", raw)
            continue
        if lacking is not None:
            yield Rejected(line, lacking[0], lacking[1], raw)
            continue
        if len(row) != len(header):
            yield Rejected(
                line, None, f"malformed line: expected {len(header)} fields, got {len(row)}", raw
            )
            continue
        cells: list[tuple[Column, str, str | None]] = []
        extra: dict[str, str] = {}
        for name, cell in zip(header, row, strict=True):
            column = by_header.get(name)
            if column is None:
                extra[name] = cell
            else:
                cells.append((column, name, cell))
        yield _to_record(line, cells, extra, raw, spec, validator, required)


_MISSING = object()


def _lookup(obj: object, path: tuple[str, ...]) -> object:
    """The value at a dotted JSON path; a numeric segment indexes a list. _MISSING if absent."""
    for segment in path:
        if isinstance(obj, dict):
            if segment not in obj:
                return _MISSING
            obj = obj[segment]
        elif isinstance(obj, list) and segment.isdigit():
            index = int(segment)
            if index >= len(obj):
                return _MISSING
            obj = obj[index]
        else:
            return _MISSING
    return obj


def _leaves(obj: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, list) and obj:
        for index, value in enumerate(obj):
            yield from _leaves(value, f"{prefix}.{index}" if prefix else str(index))
    else:
        yield prefix, obj


def _json_cell(value: object) -> str | None:
    """A JSON scalar as the text `coerce` expects (API numbers arrive as 258.0 or "258.00")."""
    if value is None or value is _MISSING:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a scalar value, got {json.dumps(value)}")
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise ValueError(f"expected a scalar value, got a JSON {type(value).__name__}")


def parse_jsonl(data: bytes, spec: SourceSpec) -> Iterator[Record | Rejected]:
    """Records and rejections of one JSON-lines file (one API object per line), in line order.

    Fields come from the spec's JSON paths; every other leaf is kept in `extra` under its path,
    so nothing the API sent is dropped.
    """
    text, _encoding, undecodable = decode_lenient(data, spec.encoding)
    validator, required = _schema_checks(spec)
    mapped_paths = {c.header for c in spec.columns}
    # Split on "\n" only: str.splitlines() would also break at U+2028 and friends, which JSON
    # allows unescaped inside strings.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line, raw in enumerate(lines, start=1):
        raw = raw.removesuffix("\r")
        if line in undecodable:
            yield Rejected(line, None, undecodable[line], raw)
            continue
        if not raw.strip():
            yield Rejected(line, None, "empty line", raw)
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield Rejected(line, None, f"malformed JSON: {exc}", raw)
            continue
        if not isinstance(obj, dict):
            yield Rejected(line, None, f"expected a JSON object, got {type(obj).__name__}", raw)
            continue
        cells: list[tuple[Column, str, str | None]] = []
        error: Rejected | None = None
        for column in spec.columns:
            try:
                cells.append((column, column.header, _json_cell(_lookup(obj, column.path))))
            except ValueError as exc:
                error = Rejected(
                    line, column.field, f"field {column.field!r} ({column.header}): {exc}", raw
                )
                break
        if error is not None:
            yield error
            continue
        extra = {
            path: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            for path, value in _leaves(obj)
            if path not in mapped_paths
        }
        yield _to_record(line, cells, extra, raw, spec, validator, required)


# Excel keeps 15 significant digits: a longer id typed into a number cell is already rounded.
_EXACT_DIGITS = 10**15


def typed_cell(value: object, type_: str) -> str | None:
    """A typed cell (Excel, Parquet) as the text `coerce` expects for a column of `type_`.

    A datetime becomes "YYYY-MM-DD HH:MM:SS" (an aware one in Asia/Shanghai first), a date
    "YYYY-MM-DD" (plus " 00:00:00" in a datetime column), an integral float "123" (so a phone
    or id typed as a number never reads "1.3800138e10"), an amount its plain decimal text.
    Raises ValueError with what was expected.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_SHANGHAI).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat() + (" 00:00:00" if type_ == "datetime" else "")
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite():
            raise ValueError(f"expected a number, got {value}")
        if number == number.to_integral_value() and type_ != "decimal":
            if isinstance(value, float) and abs(number) >= _EXACT_DIGITS:
                raise ValueError(
                    f"the number {value:.15g} has more digits than a spreadsheet keeps (15), "
                    "so it was already rounded; export the column as text"
                )
            return str(int(number))
        return format(number, "f")
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("expected text, got bytes that are not UTF-8") from exc
    raise ValueError(f"expected a scalar value, got a {type(value).__name__}")


def _raw_row(header: list[str], row: Sequence[object]) -> str:
    """A sheet or Parquet row as the JSON object quarantine keeps (header -> cell)."""
    obj = {
        (header[i] if i < len(header) and header[i] else f"column_{i + 1}"): value
        for i, value in enumerate(row)
    }
    return json.dumps(obj, ensure_ascii=False, default=str)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_rows(
    header: list[str], rows: Iterable[tuple[int, Sequence[object]]], spec: SourceSpec
) -> Iterator[Record | Rejected]:
    """Records and rejections of typed rows under `header`: the Excel and Parquet readers' core.

    Each row is (line, cells); cells may be typed (numbers, datetimes) and are turned into text
    by `typed_cell`, then mapped, coerced and validated by `_to_record` exactly as CSV cells are.
    Cells beyond the header are kept in `extra` as ``column_N``.
    """
    by_header, validator, required, lacking = _header_checks(spec, header)
    for line, row in rows:
        raw = _raw_row(header, row)
        if all(_blank(v) for v in row):
            yield Rejected(line, None, "empty row", raw)
            continue
        if lacking is not None:
            yield Rejected(line, lacking[0], lacking[1], raw)
            continue
        cells: list[tuple[Column, str, str | None]] = []
        extra: dict[str, str] = {}
        problem: Rejected | None = None
        for i, value in enumerate(row):
            name = header[i] if i < len(header) and header[i] else f"column_{i + 1}"
            column = by_header.get(name)
            if column is None and isinstance(value, list | dict):  # nested Parquet, unmapped
                extra[name] = json.dumps(value, ensure_ascii=False, default=str)
                continue
            try:
                text = typed_cell(value, column.type if column else "string")
            except ValueError as exc:
                field = column.field if column else None
                problem = Rejected(line, field, f"field {field or name!r} ({name}): {exc}", raw)
                break
            if column is None:
                if text is not None:
                    extra[name] = text
            else:
                cells.append((column, name, text))
        yield problem or _to_record(line, cells, extra, raw, spec, validator, required)


def xlsx_rows(
    data: bytes, sheet: str | None = None
) -> tuple[list[str], Iterator[tuple[int, Sequence[object]]]]:
    """(header, rows) of one sheet, streamed from the read-only workbook.

    The header is the first non-empty row; each row is (its row number on the sheet, its cells).
    Blank rows between data rows come through (and are rejected as empty rows); the blank rows a
    spreadsheet keeps formatted after the last data row are not data and are not returned.
    Raises ValueError naming the sheets when `sheet` does not exist or nothing is on it.
    """
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException flavours
        raise ValueError(f"not a readable .xlsx workbook ({exc})") from exc
    if sheet is not None and sheet not in book.sheetnames:
        book.close()
        raise ValueError(f"no sheet {sheet!r}; the workbook has {', '.join(book.sheetnames)}")
    ws = book[sheet] if sheet is not None else book.worksheets[0]
    # Row numbers come from position: read-only mode fills gaps between stored rows.
    numbered = enumerate(ws.iter_rows(min_row=1, values_only=True), start=1)
    header: list[str] | None = None
    for _line, row in numbered:
        if not all(_blank(v) for v in row):
            header = [("" if v is None else str(v)).strip() for v in row]
            while header and not header[-1]:
                header.pop()
            break
    if header is None:
        book.close()
        raise ValueError(f"sheet {ws.title!r} is empty: no header row")

    def rows() -> Iterator[tuple[int, Sequence[object]]]:
        blank_from: int | None = None  # first of a run of blank rows not yet returned
        try:
            for line, row in numbered:
                if all(_blank(v) for v in row):
                    blank_from = line if blank_from is None else blank_from
                    continue
                if blank_from is not None:
                    for blank in range(blank_from, line):
                        yield blank, ()
                    blank_from = None
                cells = list(row)
                while cells and _blank(cells[-1]) and len(cells) > len(header):
                    cells.pop()
                yield line, cells
        finally:
            book.close()

    return header, rows()


def _file_error(spec: SourceSpec, exc: ValueError) -> Rejected:
    return Rejected(0, None, f"unreadable {spec.format} file: {exc}", "")


def parse_xlsx(data: bytes, spec: SourceSpec) -> Iterator[Record | Rejected]:
    """Records and rejections of one Excel workbook's sheet (`spec.sheet`, else the first).

    Line numbers are the sheet's row numbers, as the person fixing the file sees them.
    """
    try:
        header, rows = xlsx_rows(data, spec.sheet)
    except ValueError as exc:
        yield _file_error(spec, exc)
        return
    yield from parse_rows(header, rows, spec)


PARQUET_BATCH_ROWS = 10_000


def parquet_rows(data: bytes) -> tuple[list[str], Iterator[tuple[int, Sequence[object]]]]:
    """(column names, rows) of a Parquet file, read one record batch at a time (bounded memory).

    Row numbers start at 1. Raises ValueError when the bytes are not a Parquet file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a readable Parquet file ({exc})") from exc
    header = list(pf.schema_arrow.names)

    def rows() -> Iterator[tuple[int, Sequence[object]]]:
        line = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for row in zip(*columns, strict=True):
                line += 1
                yield line, row

    return header, rows()


def parse_parquet(data: bytes, spec: SourceSpec) -> Iterator[Record | Rejected]:
    """Records and rejections of one Parquet file; a column is a (top-level) column name."""
    try:
        header, rows = parquet_rows(data)
    except ValueError as exc:
        yield _file_error(spec, exc)
        return
    yield from parse_rows(header, rows, spec)


_READERS = {"csv": parse_csv, "jsonl": parse_jsonl, "xlsx": parse_xlsx, "parquet": parse_parquet}


def parse_file(path: Path | LandingFile, spec: SourceSpec) -> Iterator[Record | Rejected]:
    reader = _READERS.get(spec.format)
    if reader is None:
        raise NotImplementedError(f"{spec.key}: format {spec.format!r} has no reader yet")
    return reader(path.read_bytes(), spec)


def extra_json(extra: dict[str, str]) -> str | None:
    return json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
