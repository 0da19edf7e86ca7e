"""What the cleaning modules share: width folding in Spark and Python, and the junk lists."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.common.yamlio import load_yaml

JUNK_FILE = Path(__file__).parent / "junk.yaml"

# NFKC for the characters people type in Chinese input methods' full-width mode: U+FF01..U+FF5E
# are ASCII ! .. ~ shifted by 0xFEE0, U+3000 is the ideographic space. That is all of NFKC that
# matters to digits, Latin letters and ASCII punctuation, and Spark's translate does it natively.
_FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000\u00a0"
_HALF = "".join(chr(c) for c in range(0x21, 0x7F)) + "  "


def fold_width(col: Column) -> Column:
    """Full-width ASCII (０-９, Ａ-ｚ, ＠, ＋, （）...) and ideographic spaces to plain ASCII.

    Spark's translate looks every character up in a map (several times the cost of a regex
    scan), so pure-ASCII text, nearly all of it, skips it."""
    return F.when(col.rlike(r"[^\x00-\x7f]"), F.translate(col, _FULL, _HALF)).otherwise(col)


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


@cache
def junk(kind: str) -> dict:
    """The `kind` section of junk.yaml ({"exact": [...], "patterns": [...]}, either optional)."""
    section = (load_yaml(JUNK_FILE) or {}).get(kind) or {}
    return {
        "exact": [str(v) for v in section.get("exact") or ()],
        "patterns": section.get("patterns") or [],
    }


def _shift_backrefs(pattern: str, offset: int) -> str:
    return re.sub(r"\\(\d)", lambda m: "\\" + str(int(m[1]) + offset), pattern)


@cache
def junk_regex(kind: str, *, anchored: bool = True) -> str:
    """One regular expression (Python and Java alike) matching every junk value of `kind`: the
    exact values and the patterns as alternatives, back-references renumbered. One regex costs
    Spark one pass per row instead of one per rule. `anchored=False` strips the patterns' own
    ^...$ (all must have them) for use inside a larger expression."""
    rules = junk(kind)
    alternatives = [re.escape(v) for v in rules["exact"]]
    offset = 0
    for pattern in rules["patterns"]:
        groups = re.compile(pattern).groups
        body = _shift_backrefs(pattern, offset)
        if not anchored:
            if not (body.startswith("^") and body.endswith("$")):
                raise ValueError(f"junk.yaml {kind}: {pattern!r} must match a whole value (^...$)")
            body = body[1:-1]
        alternatives.append(body)
        offset += groups
    if anchored:
        alternatives[: len(rules["exact"])] = [
            f"^{a}$" for a in alternatives[: len(rules["exact"])]
        ]
    return "|".join(f"(?:{a})" for a in alternatives) or "(?!)"


def first_match(text: Column, pattern: str) -> Column:
    """The whole match of `pattern` in `text`, or null, with `text` evaluated once: inside a CASE
    branch (where callers often put a cleaning function) Spark shares no subexpression, so each
    reference would be computed again, and `regexp_substr` expands to nullif(x, ''), two."""
    return F.try_element_at(F.regexp_extract_all(text, F.lit(pattern), F.lit(0)), F.lit(1))


def is_junk_py(value: str, kind: str) -> bool:
    return re.search(junk_regex(kind), value) is not None


def is_junk_col(value: Column, kind: str) -> Column:
    """Spark: `value` is listed (exactly, or by a pattern) as junk of `kind`; null for null."""
    return value.rlike(junk_regex(kind))
