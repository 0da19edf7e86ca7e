"""Dates and times: birthdays as people type them, client timestamps with an offset, unix
times, and the business date.

Spark's TIMESTAMP is an instant (microseconds since the epoch, UTC); the session time zone
(Asia/Shanghai here) only decides how it prints and how a text without an offset is read. So a
client time "2026-11-18T10:00:00+08:00" and "2026-11-18T02:00:00Z" parse to the same TIMESTAMP
whatever the session zone, and `business_date` asks for the date in a named zone explicitly.

Spark runs with ANSI mode on: an impossible date (30 February) would fail the job with
`make_date` or `cast`; every parse here uses the `try_` functions, so it becomes null instead.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.common.clean._text import fold_width, nfkc

BUSINESS_TZ = "Asia/Shanghai"
# 1900-01-01 is the default many systems store for "unknown": implausible as a real birthday.
EARLIEST_BIRTHDAY = dt.date(1900, 1, 2)
EXCEL_EPOCH = dt.date(1899, 12, 30)  # Excel's day 0 (with its 1900 leap-year bug folded in)

# Every accepted form in one regex, so Spark reads a birthday in one pass: YYYY-M-D (separators
# - / . or 年月日, spaces around them) or YYYYMMDD, then maybe a time. Rewritten as "Y-M-D".
_BIRTHDAY = (
    r"^\s*(\d{4})(?:\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?|(\d{2})(\d{2}))"
    r"(?:[T ]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\s*$"
)
_EXCEL_SERIAL = r"^\s*\d{5}\s*$"  # 10000..99999: 1927-05-18 on; 4 digits would read as a year


def parse_birthday_py(s: str | None) -> dt.date | None:
    """Python twin of `parse_birthday`."""
    if s is None:
        return None
    text = nfkc(str(s))
    m = re.fullmatch(_BIRTHDAY, text)
    try:
        if m:
            day = dt.date(int(m[1]), int(m[2] or m[4]), int(m[3] or m[5]))
        elif re.fullmatch(_EXCEL_SERIAL, text):
            day = EXCEL_EPOCH + dt.timedelta(days=int(text))
        else:
            return None
    except ValueError:
        return None
    today = dt.datetime.now(ZoneInfo(BUSINESS_TZ)).date()
    return day if EARLIEST_BIRTHDAY <= day <= today else None


def _within(day: Column, low: Column, high: Column) -> Column:
    """`day` when low <= day <= high, else null, with `day` evaluated once (Spark shares no
    subexpression inside a CASE branch, where callers often put this)."""
    kept = F.filter(F.array(day), lambda d: (d >= low) & (d <= high))
    return F.try_element_at(kept, F.lit(1))


def parse_birthday(col: Column | str) -> Column:
    """A date from YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD, YYYY.MM.DD, YYYY年M月D日 (one-digit month
    and day allowed, spaces and a trailing time ignored, full-width digits folded) or an Excel
    serial day number (5 digits); null when impossible (30 February) or implausible (before
    1900-01-02, the usual "unknown" default, or in the future)."""
    col = F.col(col) if isinstance(col, str) else col
    ymd = F.regexp_replace(fold_width(col), _BIRTHDAY, "$1-$2$4-$3$5")
    serial = F.when(ymd.rlike(_EXCEL_SERIAL), F.date_add(F.lit(EXCEL_EPOCH), ymd.try_cast("int")))
    # The serial branch runs only for rows that are not a Y-M-D date.
    day = F.coalesce(F.try_to_date(ymd, "y-M-d"), serial)
    return _within(day, F.lit(EARLIEST_BIRTHDAY), F.current_date())


def parse_client_ts(col: Column | str) -> Column:
    """The instant of a client's ISO 8601 time with its offset ("2026-11-18T10:00:00.123+08:00",
    "...Z", "...+0800", "...+08"), as a TIMESTAMP. A text without an offset is read as
    Asia/Shanghai wall time (the session zone); 10 or 13 digits are unix seconds or
    milliseconds; anything else is null."""
    col = F.col(col) if isinstance(col, str) else col
    text = F.regexp_replace(F.trim(col.cast("string")), r"[zZ]$", "+00:00")
    return (
        F.when(text.rlike(r"^\d{13}$"), F.timestamp_millis(text.try_cast("long")))
        .when(text.rlike(r"^\d{10}$"), F.timestamp_seconds(text.try_cast("long")))
        .otherwise(text.try_cast("timestamp"))
    )


def business_date(ts_col: Column | str, tz: str = BUSINESS_TZ) -> Column:
    """The calendar date of an instant in `tz` (default Asia/Shanghai), whatever the session's
    time zone."""
    ts_col = F.col(ts_col) if isinstance(ts_col, str) else ts_col
    wall = F.convert_timezone(F.current_timezone(), F.lit(tz), ts_col.cast("timestamp_ntz"))
    return F.to_date(wall)


def from_unix_seconds(col: Column | str) -> Column:
    """TIMESTAMP from unix seconds (integer or fractional, number or text); null for <= 0, the
    "unset" value of many APIs."""
    col = F.col(col) if isinstance(col, str) else col
    seconds = col.try_cast("double")
    return F.when(seconds > 0, F.timestamp_micros((seconds * 1_000_000).cast("long")))


def from_unix_millis(col: Column | str) -> Column:
    """TIMESTAMP from unix milliseconds (number or text; a float column such as WeCom's
    msgtime is fine); null for <= 0."""
    col = F.col(col) if isinstance(col, str) else col
    millis = col.try_cast("double")
    return F.when(millis > 0, F.timestamp_micros((millis * 1000).cast("long")))
