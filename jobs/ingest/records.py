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
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator

from jobs.common.masking import mask_value
from jobs.ingest.spec import Column, SourceSpec, field_roles

if TYPE_CHECKING:
    from jobs.ingest.landing import LandingFile


# A cell this long is a broken file (a quote that swallowed the rest), not a value: the row is
# quarantined whole, whatever the field. The csv module's own limit (128 KiB) would instead
# abort the whole file with a stack trace.
MAX_CELL_CHARS = 65_536
# A quoted field may hold line breaks (an address, a review); one spanning more lines than this
# is an unbalanced quote.
MAX_RECORD_LINES = 200
csv.field_size_limit(2**31 - 1)


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


class BadValue(ValueError):
    """A cell that is not what its field needs; `expected` says what would have been right."""

    def __init__(self, expected: str, value: str) -> None:
        super().__init__(f"expected {expected}, got {value!r}")
        self.expected = expected

    def why(self) -> str:
        """What is wrong, without the value."""
        return f"expected {self.expected}"

    def reason(self, shown: str) -> str:
        """What is wrong, quoting the value as it may be shown (masked)."""
        return f"{self.why()}, got {shown!r}"


class UnknownValue(BadValue):
    """A value outside a spec's value map (a status the platform added since)."""

    def __init__(self, known: list[str], value: str) -> None:
        super().__init__(f"one of {', '.join(known)}", value)
        self.value = value

    def why(self) -> str:
        return f"unknown value; expected {self.expected}"

    def reason(self, shown: str) -> str:
        return f"unknown value {shown!r}; expected {self.expected}"


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding) of a whole file, strictly. Brands' exports come as UTF-8 (often with a
    BOM) or GBK. `encoding` pins it (a mapping's ``encoding:``). Raises ValueError when the bytes
    are not that (or, unpinned, neither UTF-8 nor GB18030). See `decode_lines` for the lenient,
    line-by-line reading ingestion uses.
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


_EOL = re.compile(r"\r\n|\r|\n")
_EOL_BYTES = re.compile(rb"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """A text's physical lines: split at CRLF, CR or LF (old Mac exports end lines with CR),
    but not at U+2028 and friends, which are text. A final line break ends the last line."""
    lines = _EOL.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _line_bytes(data: bytes) -> list[bytes]:
    lines = _EOL_BYTES.split(data)
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "gb18030": "GB18030"}


def decode_lines(data: bytes, encoding: str | None = None) -> tuple[list[str], str, dict[int, str]]:
    """(physical lines, encoding, {line number: why}) of a text export, never guessing.

    A line whose bytes are neither UTF-8 nor GB18030 (or not the pinned `encoding`), and, in a
    file that mixes encodings line by line (a UTF-8 export with one GBK line pasted in), every
    line in the minority encoding, is kept (decoded as well as it can be, for quarantine's `raw`)
    and reported: the parser rejects exactly those lines with the reason, instead of reading
    the whole file as GB18030 and storing mojibake (张伟 as 寮犱紵).
    """
    if encoding is not None:
        try:
            return split_lines(decode(data, encoding)[0]), encoding, {}
        except ValueError:
            pass
        candidates = [encoding]
    elif data.startswith(b"\xef\xbb\xbf"):
        data, candidates, encoding = data[3:], ["utf-8"], "utf-8-sig"
    else:
        try:
            return split_lines(data.decode("utf-8")), "utf-8", {}
        except UnicodeDecodeError:
            candidates = ["utf-8", "gb18030"]
    raw_lines = _line_bytes(data)
    kinds: list[str | None] = []  # per line: the first candidate that decodes it (None: none)
    for chunk in raw_lines:
        if chunk.isascii():
            kinds.append("ascii")
            continue
        for candidate in candidates:
            try:
                chunk.decode(candidate)
            except UnicodeDecodeError:
                continue
            kinds.append(candidate)
            break
        else:
            kinds.append(None)
    if encoding is None:
        counts = {c: kinds.count(c) for c in candidates}
        # Unpinned: UTF-8 unless no line is; a tie goes to the header's encoding.
        utf8, gbk = counts["utf-8"], counts["gb18030"]
        header_gbk = bool(kinds) and kinds[0] == "gb18030"
        encoding = "gb18030" if utf8 == 0 or gbk > utf8 or (gbk == utf8 and header_gbk) else "utf-8"
    main = "utf-8" if encoding == "utf-8-sig" else encoding
    lines: list[str] = []
    bad: dict[int, str] = {}
    for number, (chunk, kind) in enumerate(zip(raw_lines, kinds, strict=True), start=1):
        if kind in ("ascii", main):
            lines.append(chunk.decode(main))
        elif kind is None:
            lines.append(chunk.decode(main, errors="replace"))
            at = _first_undecodable(chunk, main)
            bad[number] = (
                f"undecodable bytes at column {at + 1} ({chunk[at : at + 4].hex(' ')}): the "
                f"line is neither {' nor '.join(_NAMES.get(c, c.upper()) for c in candidates)}"
            )
        else:
            lines.append(chunk.decode(kind))
            bad[number] = (
                f"mixed encodings: this line is {_NAMES.get(kind, kind)} while the file is "
                f"{_NAMES.get(main, main.upper())}; re-export the file in one encoding (the "
                "line is not guessed)"
            )
    return lines, encoding, bad


def _first_undecodable(chunk: bytes, encoding: str) -> int:
    try:
        chunk.decode(encoding)
    except UnicodeDecodeError as exc:
        return exc.start
    return 0


def decode_lenient(data: bytes, encoding: str | None = None) -> tuple[str, str, dict[int, str]]:
    """`decode_lines` joined into one text (lines separated by LF)."""
    lines, used, bad = decode_lines(data, encoding)
    return "\n".join(lines), used, bad


_SHANGHAI = ZoneInfo("Asia/Shanghai")
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")
_ISO_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$")
_AMOUNT = re.compile(r"^[+-]?\d+(\.\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_WHOLE = re.compile(r"^[+-]?\d+$")
_CURRENCY = re.compile(r"^(?:¥|\$|RMB|CNY)\s*|\s*元$", re.IGNORECASE)
# What exports write for "no value": empty, null, and runs of dashes or slashes ("-", "--", "/").
_PLACEHOLDER = re.compile(r"|null|NULL|[-—–/]+")
# Control characters other than tab and line breaks: never part of a value (a NUL in an id).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_INT64 = 2**63
_MAX_AMOUNT = Decimal(10) ** 16  # bronze amounts are decimal(18, 2)
_FIRST_YEAR, _LAST_YEAR = 1900, 2099  # 0001-01-01 is a placeholder, not a date


def _in_range(value: datetime | date, original: str, what: str) -> None:
    if not _FIRST_YEAR <= value.year <= _LAST_YEAR:
        raise BadValue(f"{what} between {_FIRST_YEAR} and {_LAST_YEAR}", original)


def _coerce_datetime(value: str, original: str) -> str:
    if _ISO_SECONDS.match(value):  # the common shape: fromisoformat is ~10x strptime
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            _in_range(parsed, original, "a date-time")
            return f"{value[:10]}T{value[11:]}"
    if len(value) > 10 and value[:4].isdigit() and value[4] == "-":
        try:  # ISO 8601 with an offset or fractions: 2026-11-22T10:31:05.123+08:00
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(_SHANGHAI).replace(tzinfo=None)
            _in_range(parsed, original, "a date-time")
            return parsed.strftime("%Y-%m-%dT%H:%M:%S")
    for fmt in _DATETIME_FORMATS:
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        _in_range(parsed, original, "a date-time")
        return parsed.strftime("%Y-%m-%dT%H:%M:%S")
    raise BadValue("a date-time like 2026-11-22 10:31:05", original)


def _coerce_date(value: str, original: str) -> str:
    text = value[:10] if re.fullmatch(r"\d{4}-\d{2}-\d{2}[ T]00:00(:00)?", value) else value
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        _in_range(parsed, original, "a date")
        return parsed.isoformat()
    if re.fullmatch(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}", text):
        raise BadValue("a calendar date (that day does not exist)", original)
    raise BadValue("a date like 1991-02-28", original)


def coerce(value: str, type_: str) -> object:
    """Coerce one export cell; raises `BadValue` (a ValueError) saying what was expected.

    Only what is unambiguous is accepted: an amount with ',' only between groups of three
    digits (1,288.50, never 1.288,50 or 1,2,3), calendar dates between 1900 and 2099, whole
    numbers that fit 64 bits. Full-width digits (１２８) read as digits.
    """
    original = value
    value = value.strip()
    if _PLACEHOLDER.fullmatch(value):
        return None
    control = _CONTROL.search(value)
    if control:
        raise BadValue(
            f"text without control characters (found U+{ord(control.group()):04X})", original
        )
    if type_ == "string":
        return value
    value = unicodedata.normalize("NFKC", value).strip()
    if type_ == "decimal":
        text = _CURRENCY.sub("", value).replace(" ", "")
        if "," in text:
            if not _GROUPED.match(text):
                raise BadValue(
                    "an amount like 1288.50 or 1,288.50 (',' only between groups of three "
                    "digits; '1.288,50' or '1,2,3' is ambiguous)",
                    original,
                )
            text = text.replace(",", "")
        if not _AMOUNT.match(text):
            raise BadValue("a decimal amount like 128.00", original)
        amount = Decimal(text)
        if abs(amount) >= _MAX_AMOUNT:
            raise BadValue("an amount below 10^16", original)
        return amount
    if type_ == "int":
        text = value.replace(",", "") if _GROUPED.match(value) else value
        if not _WHOLE.match(text):
            raise BadValue("a whole number", original)
        number = int(text)
        if not -_INT64 <= number < _INT64:
            raise BadValue("a whole number that fits 64 bits", original)
        return number
    if type_ == "datetime":
        return _coerce_datetime(value, original)
    if type_ == "date":
        return _coerce_date(value, original)
    raise ValueError(f"unknown type {type_!r}")


_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_PHONE_EXTENSION = re.compile(r"(?:转|ext\.?|x|#|,|-)\s*\d{1,6}$", re.IGNORECASE)
_PHONE_SHAPES = (
    re.compile(r"1\d{10}"),  # a mainland mobile (junk like 13800138000 is identity's to block)
    re.compile(r"1\d{2}\*{4}\d{4}|1[\d*]{10}"),  # a masked mobile, as marketplaces send them
    re.compile(r"0\d{9,11}"),  # area code + number
    re.compile(r"[2-9]\d{6,7}"),  # a local number without area code
    re.compile(r"[48]00\d{7}|95\d{3,6}"),  # service numbers
)


def phone_problem(value: str) -> str | None:
    """Why `value` is not a phone number (None when it is one), without quoting it."""
    text = unicodedata.normalize("NFKC", value).strip()
    for candidate in (text, _PHONE_EXTENSION.sub("", text)):
        core = _PHONE_SEPARATORS.sub("", candidate)
        if core.startswith("+86"):
            core = core[3:]
        elif core.startswith("0086"):
            core = core[4:]
        elif core.startswith("86") and len(core) == 13:
            core = core[2:]
        elif core.startswith("+") or core.startswith("00"):
            if re.fullmatch(r"(\+|00)[1-9]\d{5,14}", core):
                return None
            continue
        if any(shape.fullmatch(core) for shape in _PHONE_SHAPES):
            return None
    digits = sum(ch.isdigit() for ch in text)
    return (
        f"not a phone number ({digits} digits): expected a mainland mobile (11 digits, maybe "
        "masked as 138****1111), an area code and number, or +country code"
    )


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

    def nullable(self, field: str) -> bool:
        """May a bad value of `field` become null (counted), instead of quarantining the row?"""
        return field not in self.required and field not in self.identifiers


def _schema_checks(spec: SourceSpec) -> _Checks:
    """The spec's JSON Schema as a validator and its field classes (one read of the file).

    Fields of an at-least-one-of rule count as required: an empty one must be absent, not null.
    """
    schema = spec.json_schema()
    roles = field_roles()
    fields = [c.field for c in spec.columns]
    return _Checks(
        validator=SchemaValidator(schema),
        required=frozenset(schema.get("required", [])) | frozenset(_required_alternatives(schema)),
        identifiers=frozenset(f for f in fields if roles.is_identifier(f)),
        phones=frozenset(f for f in fields if roles.is_phone(f)),
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


_OTHER_DELIMITERS = {";": "';'", "\t": "a tab", "|": "'|'", ",": "','"}


def delimiter_hint(header: list[str], delimiter: str) -> str:
    """'; the header looks ';'-delimited …' when one header cell holds another separator."""
    if len(header) != 1:
        return ""
    for sep, name in _OTHER_DELIMITERS.items():
        if sep != delimiter and header[0].count(sep) >= 1:
            return (
                f"; the header is one column that looks {name}-delimited: set "
                f"`delimiter: {sep!r}` (the file is read as {_OTHER_DELIMITERS[delimiter]}-"
                "delimited)"
            )
    return ""


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


def _cell_value(column: Column, cell: str, spec: SourceSpec) -> object:
    """Coerce and value-map one cell; BadValue/ValueError says what was expected."""
    if len(cell) > MAX_CELL_CHARS:
        raise _Oversize(len(cell))
    value = coerce(cell, column.type)
    mapped = spec.values.get(column.field)
    if mapped is not None and value is not None:
        if value not in mapped:
            raise UnknownValue(list(mapped), str(value))
        value = mapped[value]
    return value


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
    values: dict[str, object] = {c.field: None for c in spec.columns}
    texts: dict[str, tuple[str, str]] = {}  # field -> (label, text) of every given cell
    issues = list(issues)
    for name, cell in extra.items():
        if len(cell) > MAX_CELL_CHARS:
            return Rejected(line, None, f"column {name!r}: {_Oversize(len(cell))}", raw, lines)
    for column, label, cell in cells:
        if cell is None:
            continue
        texts[column.field] = (label, cell)
        try:
            value = _cell_value(column, cell, spec)
        except _Oversize as exc:
            return Rejected(
                line, column.field, f"field {column.field!r} ({label}): {exc}", raw, lines
            )
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
            label, text = texts.get(field, (field, str(values[field])))
            issues.append(Issue(field, f"{label}: {_schema_message(err)}", text))
            values[field] = None
            nulled = True
        if not nulled:
            field, reason = _schema_error(errors[0], values)
            return Rejected(line, field, reason, raw, lines)
    raise AssertionError("unreachable: every round nulls a field or returns")  # pragma: no cover


def _parse_one(text: str, delimiter: str) -> tuple[list[str] | None, str | None]:
    """One CSV record read from `text`: (cells, None); (None, "open") when a quoted field is
    still open at its end; (None, why) when it is not exactly one record."""
    if '"' not in text:
        return text.split(delimiter), None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        row = next(reader)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            return None, "open"
        if "\n" in text:
            return None, str(exc)
        # A stray quote inside a quoted cell ("a"b): read the line as spreadsheets do.
        return next(csv.reader([text], delimiter=delimiter)), None
    except StopIteration:
        return [""], None
    if next(reader, None) is not None:
        return None, "more than one record"
    return row, None


def _closing_line(
    lines: list[str], start: int, delimiter: str, width: int | None, bad: dict[int, str]
) -> tuple[int, list[str]] | None:
    """(last line, cells) of a record whose quoted field opens on line index `start` and closes
    on a later line, or None when it does not close where a record can end (an unbalanced
    quote): the quote never closes, the record would have the wrong number of fields, or a
    line it would swallow reads as a record of its own."""
    quotes = 0
    for end in range(start + 1, min(len(lines), start + MAX_RECORD_LINES)):
        line = lines[end]
        if end + 1 in bad or (width and width > 2 and line.count(delimiter) >= width - 1):
            return None
        quotes += line.count('"')
        if quotes % 2 == 0:  # still inside the quoted field
            continue
        cells, problem = _parse_one("\n".join(lines[start : end + 1]), delimiter)
        if problem == "open":
            quotes = 0  # the field closed, and another one opened: look further
            continue
        if cells is None or (width is not None and len(cells) != width):
            return None
        return end, cells
    return None


def csv_records(
    lines: list[str], delimiter: str = ",", bad: dict[int, str] | None = None
) -> Iterator[tuple[int, int, list[str] | None, str | None]]:
    """(first line number, physical lines spanned, cells or None, why not) of every record.

    The first record is the header; its width is what a data record may have. A quoted field
    that opens and does not close on its line may span lines (an address with a line break),
    but only when it closes and the record then has the header's width: otherwise the quote is
    unbalanced, that one line is rejected and the lines after it are read on their own
    (instead of being swallowed into one broken row).
    """
    bad = bad or {}
    width: int | None = None
    i = 0
    while i < len(lines):
        number = i + 1
        if number in bad:
            yield number, 1, None, bad[number]
            i += 1
            continue
        cells, problem = _parse_one(lines[i], delimiter)
        if problem is None:
            yield number, 1, cells, None
            width = len(cells) if width is None else width
            i += 1
            continue
        found = _closing_line(lines, i, delimiter, width, bad) if problem == "open" else None
        if found is None:
            yield (
                number,
                1,
                None,
                (
                    "unbalanced quote: a quoted field opens on this line and does not close where "
                    "a record could end; this line is quarantined and the next ones are read on "
                    "their own"
                ),
            )
            i += 1
            continue
        end, cells = found
        yield number, end - i + 1, cells, None
        width = len(cells) if width is None else width
        i = end + 1


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
        for column in spec.columns:
            found = _lookup(obj, column.path)
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
_EXACT_DIGITS = 10**15


@dataclass(frozen=True)
class Uncalculated:
    """An Excel formula cell with no saved result (the file was written by a program that does
    not calculate): its value is unknown, never an empty cell."""

    formula: str


def typed_cell(value: object, type_: str) -> str | None:
    """A typed cell (Excel, Parquet) as the text `coerce` expects for a column of `type_`.

    A datetime becomes "YYYY-MM-DD HH:MM:SS" (an aware one in Asia/Shanghai first; a midnight
    one in a date column just the date), a date "YYYY-MM-DD" (plus " 00:00:00" in a datetime
    column), an integral float "123" (so a phone or id typed as a number never reads
    "1.3800138e10"), an amount its plain decimal text.
    Raises ValueError saying what is wrong.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Uncalculated):
        raise ValueError(
            f"the cell holds a formula (={value.formula[:60]}) with no saved result: the file "
            "was written by a program that does not calculate; open and save it in Excel or WPS"
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_SHANGHAI).replace(tzinfo=None)
        if type_ == "date" and value.time() == time(0):
            return value.date().isoformat()
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
        (header[i] if i < len(header) and header[i] else f"column_{i + 1}"): (
            f"={value.formula}" if isinstance(value, Uncalculated) else value
        )
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
    by `typed_cell`, then mapped, coerced and validated by `_to_record` exactly as CSV cells are,
    under the same bad-value policy. Cells beyond the header are kept in `extra` as
    ``column_N``; a repeated header name in `extra` gains its column number.
    """
    by_header, checks, lacking = _header_checks(spec, header)
    names = _unique_header(header)
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


_SHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _merged_ranges(ws) -> list[tuple[int, int, int, int]]:
    """(min_col, min_row, max_col, max_row) of every merged range spanning rows, read from the
    sheet's XML (openpyxl's read-only mode does not keep them)."""
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.cell import range_boundaries

    ranges = []
    try:
        source = ws._get_source()
    except (AttributeError, KeyError):  # pragma: no cover - not a read-only worksheet
        return []
    with source:
        for _event, element in iterparse(source):
            if element.tag == f"{_SHEET_NS}mergeCell":
                min_col, min_row, max_col, max_row = range_boundaries(element.get("ref"))
                if max_row > min_row:
                    ranges.append((min_col, min_row, max_col, max_row))
            element.clear()
    return ranges


def sheets_with_data(data: bytes) -> list[str]:
    """Names of the sheets of a workbook that hold at least one non-blank cell."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException flavours
        raise ValueError(f"not a readable .xlsx workbook ({exc})") from exc
    try:
        return [
            ws.title
            for ws in book.worksheets
            if any(not all(_blank(v) for v in row) for row in ws.iter_rows(values_only=True))
        ]
    finally:
        book.close()


def xlsx_rows(
    data: bytes, sheet: str | None = None
) -> tuple[list[str], Iterator[tuple[int, Sequence[object]]]]:
    """(header, rows) of one sheet, streamed from the read-only workbook.

    The header is the first non-empty row; each row is (its row number on the sheet, its cells,
    from column A). What a person sees is what is read: a cell of a merged range spanning rows
    (a status merged over an order's two lines) reads as the range's value, and a formula with
    no saved result reads as `Uncalculated` (never as an empty cell). Blank rows between data
    rows come through (and are rejected as empty rows); the blank rows a spreadsheet keeps
    formatted after the last data row are not data and are not returned.
    Raises ValueError naming the sheets when `sheet` does not exist or nothing is on it.
    """
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        formulas = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException flavours
        raise ValueError(f"not a readable .xlsx workbook ({exc})") from exc
    if sheet is not None and sheet not in book.sheetnames:
        book.close()
        formulas.close()
        raise ValueError(f"no sheet {sheet!r}; the workbook has {', '.join(book.sheetnames)}")
    ws = book[sheet] if sheet is not None else book.worksheets[0]
    merged = _merged_ranges(ws)
    # Row numbers come from position: read-only mode fills gaps between stored rows.
    pairs = zip(
        ws.iter_rows(min_row=1, min_col=1, values_only=True),
        formulas[ws.title].iter_rows(min_row=1, min_col=1, values_only=True),
        strict=False,
    )
    anchors: dict[tuple[int, int], object] = {}

    def seen(line: int, values: tuple, texts: tuple) -> list[object]:
        cells = [
            Uncalculated(str(f)[1:])
            if v is None and isinstance(f, str) and f.startswith("=")
            else v
            for v, f in zip(values, texts, strict=False)
        ]
        for min_col, min_row, max_col, max_row in merged:
            if line == min_row and min_col <= len(cells):
                anchors[(min_row, min_col)] = cells[min_col - 1]
            elif min_row < line <= max_row:
                value = anchors.get((min_row, min_col))
                cells.extend([None] * (max_col - len(cells)))
                for col in range(min_col, max_col + 1):
                    cells[col - 1] = value
        return cells

    numbered = ((line, seen(line, v, f)) for line, (v, f) in enumerate(pairs, start=1))
    header: list[str] | None = None
    for _line, row in numbered:
        if not all(_blank(v) for v in row):
            header = [("" if v is None else str(v)).strip() for v in row]
            while header and not header[-1]:
                header.pop()
            break
    if header is None:
        book.close()
        formulas.close()
        raise ValueError(f"sheet {ws.title!r} is empty: no header row")

    def rows() -> Iterator[tuple[int, Sequence[object]]]:
        blank_from: int | None = None  # first of a run of blank rows not yet returned
        try:
            for line, cells in numbered:
                if all(_blank(v) for v in cells):
                    blank_from = line if blank_from is None else blank_from
                    continue
                if blank_from is not None:
                    for blank in range(blank_from, line):
                        yield blank, ()
                    blank_from = None
                while cells and _blank(cells[-1]) and len(cells) > len(header):
                    cells.pop()
                yield line, cells
        finally:
            book.close()
            formulas.close()

    return header, rows()


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
