"""Turning a platform's export file into validated records, line by line. Pure: no Spark, no lake.

Every input line ends as exactly one of: a `Record` (mapped, coerced, schema-valid) or a
`Rejected` (with file, line, field and a reason a person can act on, plus the raw line). The
caller counts both, so a batch always reconciles: lines read = records + rejected.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from jsonschema import Draft202012Validator

from jobs.ingest.spec import Column, SourceSpec


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


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding). Brands' exports come as UTF-8 (often with a BOM) or GBK."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # GB18030 is a superset of GBK and GB2312; strict, so garbage still fails loudly.
        return data.decode("gb18030"), "gb18030"


_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M")
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
        for fmt in _DATETIME_FORMATS:
            try:
                return datetime.strptime(value, fmt).strftime("%Y-%m-%dT%H:%M:%S")
            except ValueError:
                continue
        raise ValueError(f"expected a date-time like 2026-11-22 10:31:05, got {value!r}")
    raise ValueError(f"unknown type {type_!r}")


def _schema_error(validator: Draft202012Validator, record: dict) -> tuple[str | None, str] | None:
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
    if not errors:
        return None
    err = errors[0]
    field = ".".join(str(p) for p in err.path) or None
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else None
        return missing, f"required field {missing!r} is missing or empty"
    return field, f"field {field!r}: {err.message}"


def _jsonable(values: dict[str, object]) -> dict[str, object]:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


def _schema_checks(spec: SourceSpec) -> tuple[Draft202012Validator, set[str]]:
    """The spec's JSON Schema as a validator and its required fields (one read of the file)."""
    schema = spec.json_schema()
    return Draft202012Validator(schema), set(schema.get("required", []))


def _to_record(
    line: int,
    cells: list[tuple[Column, str, str | None]],
    extra: dict[str, str],
    raw: str,
    spec: SourceSpec,
    validator: Draft202012Validator,
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
    text, _encoding = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    lines = text.splitlines()
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    by_header = {c.header: c for c in spec.columns}
    missing = [c.header for c in spec.columns if c.header not in header]
    validator, required = _schema_checks(spec)
    missing_required = [by_header[h].field for h in missing if by_header[h].field in required]
    start = reader.line_num + 1
    for row in reader:
        line = start
        start = reader.line_num + 1
        raw = "\n".join(lines[line - 1 : reader.line_num])
        if not any(cell.strip() for cell in row):
            yield Rejected(line, None, "empty line", raw)
            continue
        if missing_required:
            yield Rejected(
                line,
                missing_required[0],
                f"file header lacks required column(s) {', '.join(missing)}",
                raw,
            )
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
    text, _encoding = decode(data)
    validator, required = _schema_checks(spec)
    mapped_paths = {c.header for c in spec.columns}
    # Split on "\n" only: str.splitlines() would also break at U+2028 and friends, which JSON
    # allows unescaped inside strings.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line, raw in enumerate(lines, start=1):
        raw = raw.removesuffix("\r")
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


_READERS = {"csv": parse_csv, "jsonl": parse_jsonl}


def parse_file(path: Path, spec: SourceSpec) -> Iterator[Record | Rejected]:
    reader = _READERS.get(spec.format)
    if reader is None:
        raise NotImplementedError(f"{spec.key}: format {spec.format!r} has no reader yet")
    return reader(path.read_bytes(), spec)


def extra_json(extra: dict[str, str]) -> str | None:
    return json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
