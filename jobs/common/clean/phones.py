"""Phone numbers -> E.164 ("+8613800138000"), the only form a phone token is computed from.

Most rows are a plain mainland mobile, perhaps with +86/0086, spaces, dashes or full-width
digits: those are cleaned with native Spark expressions. Only what is left (landlines,
Hong Kong/Macau/Taiwan and other foreign numbers, odd spellings) goes to Google's libphonenumber
(the `phonenumbers` port) in a pandas UDF. Spark evaluates a Python UDF for every row of its
input even inside `when/otherwise`, so the UDF is handed null for every row the native path
already decided, and returns at once for those.

What carries no identity becomes null, never a token: masked numbers (138****1234, kept apart as
`partial_phone`, a weak identifier), relay numbers with an extension (13800138000-1234,
13800138000转1234: a marketplace's privacy number reaches nobody's own phone), numbers with any
extension (a switchboard), company hotlines (400/800), and the junk numbers of junk.yaml.
Landlines are kept: a fixed line is still a way to reach the customer.
"""

from __future__ import annotations

import re

import pandas as pd
import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from jobs.common.clean._text import first_match, fold_width, is_junk_py, junk_regex, nfkc

# Mainland mobiles: 1[3-9] and nine more digits, with an optional country prefix.
_MOBILE = r"^(?:\+86|0086|86)?(1[3-9]\d{9})$"
# Separators people put inside a number (spaces, dashes, brackets, dots), and the ".0" a
# spreadsheet number cell gains when read as a float (13912345678.0).
_SEPARATORS = r"\.0+$|[\s\u00a0\-().]"
# An extension: a relay (privacy) number 13800138000-1234, or any number followed by 转/分机/ext/#.
_RELAY = r"^(?:\+86|0086|86)?-?1\d{10}[-_,]\d{1,6}$"
_EXTENSION = r"(?i)(转|分机|ext\.?|#)\d{1,6}$"
# A masked number: stars (or x's) where digits were.
_MASKED = r"\*|\d[xX]{3,}\d"
_PARTIAL = r"^(?:\+86|0086|86)?(1[3-9]\d)[*xX]{3,6}(\d{4})$"
# Types that can be one person's line; hotlines (400: SHARED_COST, 800: TOLL_FREE), premium,
# VoIP, pagers and voicemail cannot.
_KEEP_TYPES = frozenset(
    {
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.PERSONAL_NUMBER,
    }
)
# Forms often drop the "+" of the places closest to the mainland: 85291234567.
_PLUS_OPTIONAL = ("852", "853", "886")


def is_junk_mobile_py(digits: str) -> bool:
    """`digits` (11 mainland digits) is in junk.yaml's phones list."""
    return is_junk_py(digits, "phones")


def _mainland_e164(digits: Column) -> Column:
    """The E.164 form ("+86" + 11 digits) unless junk.yaml lists the digits: one regex, with
    `digits` referenced once (inside a CASE branch Spark does not share subexpressions, so
    every reference would be computed again)."""
    unlisted = rf"^\+86(?!(?:{junk_regex('phones', anchored=False)})$)1\d{{10}}$"
    return first_match(F.concat(F.lit("+86"), digits), unlisted)


def _other_number_py(compact: str) -> str | None:
    """A number that is not a plain mainland mobile, through libphonenumber (region CN unless it
    carries its country code)."""
    if not re.fullmatch(r"\+?\d{5,17}", compact):
        return None
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    candidates = [compact]
    if compact.startswith(_PLUS_OPTIONAL):
        candidates.append("+" + compact)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, None if candidate.startswith("+") else "CN")
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(number) or number.extension:
            continue
        if phonenumbers.number_type(number) not in _KEEP_TYPES:
            return None
        national = str(number.national_number)
        if number.country_code == 86 and re.fullmatch(_MOBILE, national):
            return None if is_junk_mobile_py(national) else "+86" + national
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return None


def normalize_phone_py(s: str | None) -> str | None:
    """E.164 of a phone as typed, or None when it is masked, junk, a relay number with an
    extension, a hotline or not a phone. The reference for `normalize_phone`."""
    if s is None:
        return None
    text = nfkc(str(s)).strip()
    if not text or re.search(_MASKED, text):
        return None
    no_space = re.sub(r"\s", "", text)
    if re.search(_RELAY, no_space) or re.search(_EXTENSION, no_space):
        return None
    compact = re.sub(_SEPARATORS, "", text)
    mobile = re.fullmatch(_MOBILE, compact)
    if mobile:
        return None if is_junk_mobile_py(mobile[1]) else "+86" + mobile[1]
    return _other_number_py(compact)


@F.pandas_udf(StringType())
def _phone_udf(values: pd.Series) -> pd.Series:
    # Most of a batch is null (rows the native path decided): only the rest reaches Python.
    out = pd.Series(None, index=values.index, dtype=object)
    todo = values.notna()
    if todo.any():
        out[todo] = [normalize_phone_py(v) for v in values[todo]]
    return out


def normalize_phone(col: Column | str) -> Column:
    """E.164 string ("+8613800138000") or null (masked, junk, relay number with extension,
    hotline, not a phone). Plain mainland mobiles natively; the rest through libphonenumber."""
    col = F.col(col) if isinstance(col, str) else col
    # 1. Nearly every row: 11 digits, maybe +86/0086/86: one regex on the raw text.
    plain = col.rlike(_MOBILE)
    # 2. Full-width digits, separators, masks, extensions: only rows that are not plain reach
    #    these (a CASE evaluates a branch only for the rows that get there).
    half = fold_width(col)
    no_space = F.regexp_replace(half, r"\s", "")
    compact = F.regexp_replace(half, _SEPARATORS, "")
    mobile = F.regexp_extract(compact, _MOBILE, 1)
    dropped = (
        half.rlike(_MASKED) | no_space.rlike(_RELAY) | no_space.rlike(_EXTENSION) | (compact == "")
    )
    native = F.when(plain, _mainland_e164(col.substr(-11, 11))).when(
        ~dropped & (mobile != ""), _mainland_e164(mobile)
    )
    # 3. The rest (landlines, foreign numbers, odd spellings): libphonenumber in a pandas UDF.
    #    Spark runs a UDF on every row of its input, so decided rows are handed null.
    decided = F.when(col.isNull() | plain, F.lit(True)).otherwise(dropped | (mobile != ""))
    leftover = _phone_udf(F.when(~decided, col))
    # The UDF's answer is null for every decided row and `native` null for every leftover one.
    return F.coalesce(leftover, native)


def partial_phone_py(s: str | None) -> str | None:
    """Python twin of `partial_phone`: "138****1234" for a masked mainland mobile, else None."""
    if s is None:
        return None
    m = re.fullmatch(_PARTIAL, re.sub(_SEPARATORS, "", nfkc(str(s))))
    return f"{m[1]}****{m[2]}" if m else None


def partial_phone(col: Column | str) -> Column:
    """Canonical "138****1234" (first three and last four digits) for a masked mainland mobile
    ("138****1234", "+86 138 **** 1234", full-width, 3 to 6 stars or x's), else null. A weak
    partial identifier: never a token, never a join key."""
    col = F.col(col) if isinstance(col, str) else col
    compact = F.regexp_replace(fold_width(col), _SEPARATORS, "")
    canonical = F.regexp_replace(compact, _PARTIAL, "$1****$2")
    return first_match(canonical, r"^1[3-9]\d\*{4}\d{4}$")


def mask_phone(col: Column | str) -> Column:
    """Display form of a normalized (E.164) phone: "+86 138****8000" for a mainland mobile,
    else the number with all but its first (length - 8) characters and last four hidden
    ("+852****4567")."""
    col = F.col(col) if isinstance(col, str) else col
    mainland_mobile = col.rlike(r"^\+861\d{10}$")
    return F.when(
        mainland_mobile,
        F.concat(F.lit("+86 "), col.substr(4, 3), F.lit("****"), col.substr(-4, 4)),
    ).when(
        col.isNotNull(),
        F.concat(
            col.substr(F.lit(1), F.greatest(F.length(col) - 8, F.lit(1))),
            F.lit("****"),
            col.substr(-4, 4),
        ),
    )
