"""Turning a platform's export file into validated records, line by line. Pure: no Spark, no lake.

Every physical line (of a CSV or JSON-lines file; a sheet or Parquet row) ends in exactly one of:
a `Record` (mapped, coerced, schema-valid; `lines` says how many physical lines it spans) or a
`Rejected` (with line, field and a reason a person can act on, plus the raw text). The caller
counts both, so a batch always reconciles: lines read = lines of records + lines rejected.

Here lives the bad-value policy every format shares (`_to_record`, jobs/ingest/field_roles.yaml);
reading the bytes is in decoding.py, cutting CSV into records in csvlines.py, Excel and Parquet
in sheets.py, single values in values.py.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from jsonschema import Draft202012Validator

from jobs.common.masking import mask_value
from jobs.ingest.csvlines import csv_records, delimiter_hint
from jobs.ingest.decoding import decode_lines
from jobs.ingest.sheets import is_blank, parquet_rows, sheets_with_data, xlsx_rows
from jobs.ingest.spec import Column, SourceSpec, field_roles
from jobs.ingest.values import (
    BadValue,
    Uncalculated,
    UnknownValue,
    coerce,
    phone_problem,
    typed_cell,
)

if TYPE_CHECKING:
    from jobs.ingest.landing import LandingFile


# A cell this long is a broken file (a quote that swallowed the rest), not a value: the row is
# quarantined whole, whatever the field. The csv module's own limit (128 KiB) would instead
# abort the whole file with a stack trace.
MAX_CELL_CHARS = 65_536


@dataclass(frozen=True)
class Issue:
    """A bad value the row survived: an optional field nulled, or an identifier kept as given."""

    field: str
    reason: str  # what is wrong, without the value: safe to count and to show
    value: str  # the text as the file gave it (kept in bronze `_issues`, never shown)


@dataclass(frozen=True)
class Record:
    line: int
    values: dict[str, object]
    extra: dict[str, str]  # columns the spec does not know yet: kept, never dropped
    lines: int = 1  # physical lines the record spans (a quoted cell may hold line breaks)
    issues: tuple[Issue, ...] = ()


@dataclass(frozen=True)
class Rejected:
    line: int
    field: str | None
    reason: str
    raw: str
    lines: int = 1


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


def _schema_message(err) -> str:
    """A JSON Schema error without the offending value (so it can be counted and shown)."""
    limit = err.validator_value
    messages = {
        "pattern": f"does not match the pattern {limit}",
        "maxLength": f"is longer than {limit} characters",
        "minLength": f"is shorter than {limit} characters",
        "minimum": f"is less than the minimum {limit}",
        "maximum": f"is greater than the maximum {limit}",
        "exclusiveMinimum": f"is not greater than {limit}",
        "exclusiveMaximum": f"is not less than {limit}",
        "enum": "is not one of "
        + (
            ", ".join("null" if v is None else str(v) for v in limit)
            if isinstance(limit, list)
            else ""
        ),
        "type": f"is not of type {limit}",
        "format": f"is not a valid {limit}",
    }
    return messages.get(err.validator, err.message)


def _first_field(err) -> str | None:
    return str(err.path[0]) if err.path else None


def _schema_error(err, values: dict[str, object]) -> tuple[str | None, str]:
    """(field, reason) of the schema error that rejects a row; a quoted value is masked."""
    field = _first_field(err)
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else None
        return missing, f"required field {missing!r} is missing or empty"
    alternatives = _required_alternatives(err.schema) if err.validator == "anyOf" else []
    if alternatives:
        names = ", ".join(repr(a) for a in alternatives)
        return alternatives[0], f"at least one of the fields {names} is required; all are empty"
    if field is None:
        return None, err.message
    shown = mask_value(field, values.get(field))
    return field, f"field {field!r}: {shown!r} {_schema_message(err)}"


def _jsonable(values: dict[str, object]) -> dict[str, object]:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


def _required_alternatives(schema: dict) -> list[str]:
    """Fields of an ``anyOf: [{required: [a]}, {required: [b]}]`` (at least one of a, b)."""
    branches = schema.get("anyOf", [])
    if not branches or not all(set(b) == {"required"} for b in branches):
        return []
    return [name for b in branches for name in b["required"]]


@dataclass(frozen=True)
class _Checks:
    """What every row of a file is held to: the schema, and the bad-value policy per field."""

    validator: SchemaValidator
    required: frozenset[str]  # a bad value quarantines the row
    identifiers: frozenset[str]  # never nulled: kept (phone shape) or the row quarantined
    phones: frozenset[str]  # identifiers whose shape is checked
    fields: tuple[str, ...] = ()  # the spec's fields, in order
    # field -> (parser, what it expects): a schema's `x-parse` (see `_parsers`)
    parsers: Mapping[str, tuple[Callable[[str], object], str]] = dataclass_field(
        default_factory=dict
    )

    def nullable(self, field: str) -> bool:
        """May a bad value of `field` become null (counted), instead of quarantining the row?"""
        return field not in self.required and field not in self.identifiers


def _parsers(properties: dict, fields: list[str]) -> dict[str, tuple[Callable, str]]:
    """The `x-parse` of each field that has one: ``"module:function"``, a function that returns
    None for a value that does not parse (``jobs.common.clean.phones:normalize_phone_py``), and
    `x-expected`, what a good value is. A value it rejects is a bad value like any other (the
    field's policy applies); one it accepts is kept as given."""
    found = {}
    for name in fields:
        prop = properties.get(name) or {}
        if "x-parse" in prop:
            module, _, function = prop["x-parse"].partition(":")
            parser = getattr(importlib.import_module(module), function)
            found[name] = (parser, prop.get("x-expected", f"a value {function} accepts"))
    return found


def _schema_checks(spec: SourceSpec) -> _Checks:
    """The spec's JSON Schema as a validator and its field classes (one read of the file).

    Fields of an at-least-one-of rule count as required: an empty one must be absent, not null.
    A property marked ``"x-bad-value": "null"`` is nulled (counted) when bad even if its name
    makes it an identifier (a brand's member list: a bad phone must not cost the member).
    """
    schema = spec.json_schema()
    roles = field_roles()
    fields = [c.field for c in spec.columns]
    properties = schema.get("properties") or {}
    nulled = {f for f in fields if (properties.get(f) or {}).get("x-bad-value") == "null"}
    return _Checks(
        validator=SchemaValidator(schema),
        required=frozenset(schema.get("required", [])) | frozenset(_required_alternatives(schema)),
        identifiers=frozenset(f for f in fields if roles.is_identifier(f) and f not in nulled),
        phones=frozenset(f for f in fields if roles.is_phone(f)),
        fields=tuple(fields),
        parsers=_parsers(properties, fields),
    )


def _header_checks(
    spec: SourceSpec, header: list[str]
) -> tuple[dict[str, Column], _Checks, tuple[str, str] | None]:
    """What a tabular file's header means for every row: columns by header, the checks, and,
    when the header cannot be read as the spec's (a required column missing, a mapped column
    named twice), the (field, reason) every row is rejected with.
    """
    by_header = {c.header: c for c in spec.columns}
    checks = _schema_checks(spec)
    twice = [h for h in by_header if header.count(h) > 1]
    if twice:
        name = twice[0]
        where = ", ".join(str(i + 1) for i, h in enumerate(header) if h == name)
        return (
            by_header,
            checks,
            (
                by_header[name].field,
                f"the header names column {name!r} more than once (columns {where}): which one "
                f"is {by_header[name].field!r} is ambiguous; rename or remove one",
            ),
        )
    missing = [c.header for c in spec.columns if c.header not in header]
    missing_required = [
        by_header[h].field for h in missing if by_header[h].field in checks.required
    ]
    if not missing_required:
        return by_header, checks, None
    reason = f"file header lacks required column(s) {', '.join(missing)}"
    hint = delimiter_hint(header, spec.delimiter)
    return by_header, checks, (missing_required[0], reason + hint)


def _unique_header(header: list[str]) -> list[str]:
    """Header names for `extra`: a blank one becomes column_N, a repeated one gains ' (N)'."""
    out: list[str] = []
    for i, name in enumerate(header):
        name = name or f"column_{i + 1}"
        out.append(f"{name} (column {i + 1})" if name in out else name)
    return out


def _bad_cell(
    line: int,
    column: Column,
    label: str,
    cell: str,
    error: ValueError,
    raw: str,
    lines: int,
    checks: _Checks,
) -> Rejected | Issue:
    """The policy for a cell that is not what its field needs: quarantine the row (a required
    field or an identifier) or null the field and keep the reason and the text (`Issue`).
    A `BadValue` says what was expected; a quoted value is masked when it is personal data."""
    if isinstance(error, BadValue):
        why, reason = error.why(), error.reason(mask_value(column.field, cell))
    else:
        why = reason = str(error)
    if checks.nullable(column.field):
        return Issue(column.field, f"{label}: {why}", cell)
    return Rejected(line, column.field, f"field {column.field!r} ({label}): {reason}", raw, lines)


class _Oversize(ValueError):
    def __init__(self, size: int) -> None:
        super().__init__(
            f"{size:,} characters, over the {MAX_CELL_CHARS:,} a value may have (a broken "
            "file or a quote that swallowed lines)"
        )


def _to_record(
    line: int,
    cells: list[tuple[Column, str, str | None]],
    extra: dict[str, str],
    raw: str,
    spec: SourceSpec,
    checks: _Checks,
    lines: int = 1,
    *,
    issues: Sequence[Issue] = (),
) -> Record | Rejected:
    """One line's (column, label, cell) triples -> coerced, value-mapped, schema-valid Record.

    Shared by every format so a field is coerced, validated and judged by the same policy
    whatever the file (see jobs/ingest/field_roles.yaml): a bad required field or identifier
    quarantines the row; any other bad field becomes null, its text and reason kept as an
    `Issue`; a phone-shaped identifier that is not a phone is kept, with an Issue.
    `label` is what the source calls the column (a CSV header, a JSON path); None cells are absent.
    """
    values: dict[str, object] = dict.fromkeys(checks.fields)
    issues = list(issues)
    for name, cell in extra.items():
        if len(cell) > MAX_CELL_CHARS:
            return Rejected(line, None, f"column {name!r}: {_Oversize(len(cell))}", raw, lines)
    value_maps = spec.values
    for column, label, cell in cells:
        if cell is None:
            continue
        try:  # inlined (the hot loop of ingestion): size, coerce, value map
            if len(cell) > MAX_CELL_CHARS:
                return Rejected(
                    line,
                    column.field,
                    f"field {column.field!r} ({label}): {_Oversize(len(cell))}",
                    raw,
                    lines,
                )
            value = coerce(cell, column.type)
            if value is not None and column.field in value_maps:
                known = value_maps[column.field]
                if value not in known:
                    raise UnknownValue(list(known), str(value))
                value = known[value]
            parser = checks.parsers.get(column.field) if checks.parsers else None
            if parser is not None and value is not None and parser[0](str(value)) is None:
                raise BadValue(parser[1], cell)
        except ValueError as exc:
            verdict = _bad_cell(line, column, label, cell, exc, raw, lines, checks)
            if isinstance(verdict, Rejected):
                return verdict
            issues.append(verdict)
            continue
        if column.field in checks.phones and isinstance(value, str):
            problem = phone_problem(value)
            if problem is not None:
                issues.append(Issue(column.field, f"{label}: {problem}", cell))
        values[column.field] = value
    for _attempt in range(len(values) + 1):
        record = _jsonable(
            {k: v for k, v in values.items() if v is not None or k not in checks.required}
        )
        errors = sorted(checks.validator.errors(record), key=lambda e: list(e.path))
        if not errors:
            return Record(line, values, extra, lines, tuple(issues))
        nulled = False
        for err in errors:
            field = _first_field(err)
            if field is None or values.get(field) is None or not checks.nullable(field):
                continue
            label, text = next(
                ((lab, cell) for col, lab, cell in cells if col.field == field and cell),
                (field, str(values[field])),
            )
            issues.append(Issue(field, f"{label}: {_schema_message(err)}", text))
            values[field] = None
            nulled = True
        if not nulled:
            field, reason = _schema_error(errors[0], values)
            return Rejected(line, field, reason, raw, lines)
    raise AssertionError("unreachable: every round nulls a field or returns")  # pragma: no cover


def parse_csv(data: bytes, spec: SourceSpec) -> Iterator[Record | Rejected]:
    """Records and rejections of one CSV export, in line order; every physical line is in
    exactly one of them (`lines` says how many a record spans)."""
    lines, _encoding, bad = decode_lines(data, spec.encoding)
    records = csv_records(lines, spec.delimiter, bad)
    header_line = next(records, None)
    if header_line is None:
        return
    number, span, cells, problem = header_line
    if cells is None:
        # No header to read the rows by: every line of the file is quarantined with the reason.
        for n, raw in enumerate(lines, start=1):
            yield Rejected(n, None, f"the header (line {number}) is unreadable: {problem}", raw)
        return
    header = [h.strip() for h in cells]
    names = _unique_header(header)
    by_header, checks, lacking = _header_checks(spec, header)
    for number, span, cells, problem in records:
        raw = "\n".join(lines[number - 1 : number - 1 + span])
        if cells is None:
            yield Rejected(number, None, problem or "unreadable line", raw, span)
            continue
        if not any(cell.strip() for cell in cells):
            yield Rejected(number, None, "empty line", raw, span)
            continue
        if lacking is not None:
            yield Rejected(number, lacking[0], lacking[1], raw, span)
            continue
        if len(cells) != len(header):
            yield Rejected(
                number,
                None,
                f"malformed line: expected {len(header)} fields, got {len(cells)}",
                raw,
                span,
            )
            continue
        fields: list[tuple[Column, str, str | None]] = []
        extra: dict[str, str] = {}
        for name, key, cell in zip(header, names, cells, strict=True):
            column = by_header.get(name)
            if column is None:
                extra[key] = cell
            else:
                fields.append((column, name, cell))
        yield _to_record(number, fields, extra, raw, spec, checks, span)


_MISSING = object()


class _NonFinite:
    """NaN / Infinity in a JSON line: Python's json accepts them, standard JSON does not."""

    def __init__(self, name: str) -> None:
        self.name = name


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(
            f"key {twice!r} appears twice in one object (which one holds is ambiguous)"
        )
    return obj


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
    if isinstance(value, _NonFinite):
        raise BadValue("a value (NaN and Infinity are not standard JSON)", value.name)
    if isinstance(value, bool):
        raise BadValue("a scalar value", json.dumps(value))
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise BadValue("a scalar value", f"a JSON {type(value).__name__}")


def _json_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, _NonFinite):
        return value.name
    return json.dumps(value, ensure_ascii=False, default=lambda v: getattr(v, "name", str(v)))


def parse_jsonl(data: bytes, spec: SourceSpec) -> Iterator[Record | Rejected]:
    """Records and rejections of one JSON-lines file (one API object per line), in line order.

    Fields come from the spec's JSON paths; every other leaf is kept in `extra` under its path,
    so nothing the API sent is dropped.
    """
    lines, _encoding, undecodable = decode_lines(data, spec.encoding)
    checks = _schema_checks(spec)
    mapped_paths = {c.header for c in spec.columns}
    paths = [(column, column.path) for column in spec.columns]  # split once, not per line
    for line, raw in enumerate(lines, start=1):
        if line in undecodable:
            yield Rejected(line, None, undecodable[line], raw)
            continue
        if not raw.strip():
            yield Rejected(line, None, "empty line", raw)
            continue
        try:
            obj = json.loads(raw, parse_constant=_NonFinite, object_pairs_hook=_no_duplicate_keys)
        except ValueError as exc:  # JSONDecodeError, or a key given twice
            yield Rejected(line, None, f"malformed JSON: {exc}", raw)
            continue
        if not isinstance(obj, dict):
            yield Rejected(line, None, f"expected a JSON object, got {type(obj).__name__}", raw)
            continue
        cells: list[tuple[Column, str, str | None]] = []
        issues: list[Issue] = []
        error: Rejected | None = None
        for column, path in paths:
            found = _lookup(obj, path)
            try:
                cells.append((column, column.header, _json_cell(found)))
            except BadValue as exc:
                verdict = _bad_cell(
                    line,
                    column,
                    column.header,
                    _json_text(found),
                    exc,
                    raw,
                    1,
                    checks,
                )
                if isinstance(verdict, Rejected):
                    error = verdict
                    break
                issues.append(verdict)
        if error is not None:
            yield error
            continue
        extra = {
            path: _json_text(value) for path, value in _leaves(obj) if path not in mapped_paths
        }
        yield _to_record(line, cells, extra, raw, spec, checks, issues=issues)


# Excel keeps 15 significant digits: a longer id typed into a number cell is already rounded.


def _raw_row(header: list[str], row: Sequence[object]) -> str:
    """A sheet or Parquet row as the JSON object quarantine keeps (header -> cell)."""
    obj = {
        (header[i] if i < len(header) and header[i] else f"column_{i + 1}"): (
            f"={value.formula}" if isinstance(value, Uncalculated) else value
        )
        for i, value in enumerate(row)
    }
    return json.dumps(obj, ensure_ascii=False, default=str)


def parse_rows(
    header: list[str], rows: Iterable[tuple[int, Sequence[object]]], spec: SourceSpec
) -> Iterator[Record | Rejected]:
    """Records and rejections of typed rows under `header`: the Excel and Parquet readers' core.

    Each row is (line, cells); cells may be typed (numbers, datetimes) and are turned into text
    by `typed_cell`, then mapped, coerced and validated by `_to_record` exactly as CSV cells are,
    under the same bad-value policy. Cells beyond the header are kept in `extra` as
    ``column_N``; a repeated header name in `extra` gains its column number.
    """
    by_header, checks, lacking = _header_checks(spec, header)
    names = _unique_header(header)
    for line, row in rows:
        raw = _raw_row(header, row)
        if all(is_blank(v) for v in row):
            yield Rejected(line, None, "empty row", raw)
            continue
        if lacking is not None:
            yield Rejected(line, lacking[0], lacking[1], raw)
            continue
        cells: list[tuple[Column, str, str | None]] = []
        extra: dict[str, str] = {}
        issues: list[Issue] = []
        problem: Rejected | None = None
        for i, value in enumerate(row):
            name = header[i] if i < len(header) and header[i] else f"column_{i + 1}"
            key = names[i] if i < len(names) else name
            column = by_header.get(name)
            if column is None and isinstance(value, list | dict):  # nested Parquet, unmapped
                extra[key] = json.dumps(value, ensure_ascii=False, default=str)
                continue
            try:
                text = typed_cell(value, column.type if column else "string")
            except ValueError as exc:
                if column is None:
                    extra[key] = (
                        f"={value.formula}" if isinstance(value, Uncalculated) else str(value)
                    )
                    continue
                shown = f"={value.formula}" if isinstance(value, Uncalculated) else str(value)
                verdict = _bad_cell(line, column, name, shown, exc, raw, 1, checks)
                if isinstance(verdict, Rejected):
                    problem = verdict
                    break
                issues.append(verdict)
                continue
            if column is None:
                if text is not None:
                    extra[key] = text
            else:
                cells.append((column, name, text))
        yield problem or _to_record(line, cells, extra, raw, spec, checks, issues=issues)


def _file_error(spec: SourceSpec, exc: ValueError) -> Rejected:
    return Rejected(0, None, f"unreadable {spec.format} file: {exc}", "")


def parse_xlsx(data: bytes, spec: SourceSpec) -> Iterator[Record | Rejected]:
    """Records and rejections of one Excel workbook's sheet (`spec.sheet`, else the first).

    Line numbers are the sheet's row numbers, as the person fixing the file sees them. When the
    spec names no sheet and other sheets hold data too (part 2 of an export on a second sheet),
    their rows are quarantined, each with a reason naming its sheet: never ignored.
    """
    try:
        header, rows = xlsx_rows(data, spec.sheet)
        others = sheets_with_data(data)
    except ValueError as exc:
        yield _file_error(spec, exc)
        return
    read = spec.sheet or others[0]
    yield from parse_rows(header, rows, spec)
    for name in others:
        if name == read:
            continue
        other_header, other_rows = xlsx_rows(data, name)
        if spec.sheet is not None and other_header != header:
            continue  # the spec names its sheet; a sheet with another header is not data
        reason = (
            f"sheet {name!r} is not read: the spec reads sheet {read!r} only and this "
            "workbook has data on more; export one sheet per file, or name each (`sheet:`)"
        )
        yield Rejected(1, None, reason, json.dumps(other_header, ensure_ascii=False))
        for line, row in other_rows:
            if row:
                yield Rejected(line, None, reason, _raw_row(other_header, row))


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
