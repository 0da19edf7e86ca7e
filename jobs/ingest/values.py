"""One export cell -> one typed value, or a `BadValue` saying what was expected. Only what is
unambiguous is accepted (see `coerce`); typed cells from Excel and Parquet become the text
`coerce` reads (`typed_cell`)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo


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
_PLACEHOLDER_START = "nN-—–/"
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


def _coerce_datetime_or_date(value: str, original: str) -> str:
    """A date-time, or a bare date read as its midnight (order files for `cdp rfm` and `cdp ltv`
    have either)."""
    try:
        return _coerce_date(value, original) + "T00:00:00"
    except BadValue:
        pass
    try:
        return _coerce_datetime(value, original)
    except BadValue:
        raise BadValue(
            "a date like 2026-11-22 or a date-time like 2026-11-22 10:31:05", original
        ) from None


def coerce(value: str, type_: str) -> object:
    """Coerce one export cell; raises `BadValue` (a ValueError) saying what was expected.

    Only what is unambiguous is accepted: an amount with ',' only between groups of three
    digits (1,288.50, never 1.288,50 or 1,2,3), calendar dates between 1900 and 2099, whole
    numbers that fit 64 bits. Full-width digits (１２８) read as digits.
    """
    original = value
    value = value.strip()
    if not value or (value[0] in _PLACEHOLDER_START and _PLACEHOLDER.fullmatch(value)):
        return None
    if not value.isprintable():  # fast: almost every cell is printable
        control = _CONTROL.search(value)
        if control:
            raise BadValue(
                f"text without control characters (found U+{ord(control.group()):04X})", original
            )
    if type_ == "string":
        return value
    if not value.isascii():
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
    if type_ == "datetime_or_date":  # not a mapping type: a reader that takes either sets it
        return _coerce_datetime_or_date(value, original)
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
    if len(value) == 11 and value[0] == "1" and value.replace("*", "").isdigit():
        return None  # the common shapes: a mobile, or one masked as 138****1111
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
