"""Mainland resident identity card numbers (居民身份证号码, GB 11643-1999).

18 characters: a 6-digit region code, the birth date (YYYYMMDD), a 3-digit sequence and a check
character, ISO 7064 MOD 11-2 over the first 17 digits ("X" stands for 10). The old 15-digit form
(issued until 1999: YYMMDD birth date, no check character) converts to 18 by inserting "19"
before the year and appending the check character. A number whose check character or birth date
is wrong is a typo or made up: null. Natively in Spark (digits times weights, mod 11).
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.common.clean._text import fold_width, nfkc

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"  # indexed by (sum of digit * weight) mod 11
_TZ = ZoneInfo("Asia/Shanghai")


def check_char_py(first17: str) -> str:
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def normalize_id_card_py(s: str | None) -> str | None:
    """The 18-character number (X upper-cased; a 15-digit one converted), or None when invalid."""
    if s is None:
        return None
    v = re.sub(r"[\s\-]", "", nfkc(str(s))).upper()
    if re.fullmatch(r"[1-9]\d{14}", v):
        v = v[:6] + "19" + v[6:]
        v += check_char_py(v)
    if not re.fullmatch(r"[1-9]\d{16}[\dX]", v) or check_char_py(v[:17]) != v[17]:
        return None
    try:
        born = dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return None
    return v if dt.date(1900, 1, 1) <= born <= dt.datetime.now(_TZ).date() else None


def _digit(number: Column, place: int) -> Column:
    """The decimal digit of `number` at `place` (0 = units): arithmetic, no string work."""
    return F.floor(number / 10**place) % 10


def normalize_id_card(col: Column | str) -> Column:
    """18 characters, check character valid, X upper-cased; a 15-digit number converted to 18;
    spaces, dashes and full-width digits tolerated; null when invalid."""
    col = F.col(col) if isinstance(col, str) else col
    v = F.upper(F.regexp_replace(fold_width(col), r"[\s\-]", ""))
    # 15 digits -> 17 (19 before the 2-digit year); 18 stay 18; the rest fail the shape test.
    # (Java reads "$119" as group 1 then "19": a group 11 does not exist.)
    v = F.regexp_replace(v, r"^([1-9]\d{5})(\d{9})$", "$119$2")
    # The 17 digits as three integers (region, birth date, sequence): the weighted sum and the
    # birth date are then arithmetic, with no per-digit substring (try_cast: ANSI mode would
    # fail the job on a letter).
    region, born, seq = (F.substring(v, a, n).try_cast("int") for a, n in ((1, 6), (7, 8), (15, 3)))
    parts = ((region, 6, WEIGHTS[:6]), (born, 8, WEIGHTS[6:14]), (seq, 3, WEIGHTS[14:]))
    total = sum(
        (_digit(x, width - 1 - i) * w for x, width, ws in parts for i, w in enumerate(ws)),
        F.lit(0),
    )
    check = F.substring(F.lit(CHECK_CHARS), (total % 11 + 1).cast("int"), 1)
    given = F.substring(v, 18, 1)
    birth = F.to_date(
        F.try_make_timestamp_ntz(
            F.floor(born / 10000),
            F.floor(born / 100) % 100,
            born % 100,
            F.lit(0),
            F.lit(0),
            F.lit(0),
        )
    )
    valid = (
        v.rlike(r"^[1-9]\d{16}[\dX]?$")
        & ((given == "") | (given == check))
        & (birth >= F.lit(dt.date(1900, 1, 1)))
        & (birth <= F.current_date())
    )
    return F.when(valid, F.concat(F.substring(v, 1, 17), check))


def mask_id_card(col: Column | str) -> Column:
    """Display form: the first four and last four characters ("1101**********002X")."""
    col = F.col(col) if isinstance(col, str) else col
    return F.when(
        col.isNotNull(), F.concat(F.substring(col, 1, 4), F.lit("*" * 10), F.substring(col, -4, 4))
    )
