"""Email addresses: trimmed, lower-cased, full-width folded, syntax-checked, junk blocked.

All native Spark: the only Unicode folding an email needs is full-width ASCII (＠, ｑｑ.ｃｏｍ),
which `fold_width` does with `translate`. The whole address is lower-cased: the local part is
case-sensitive in theory, but no mainstream provider (QQ, 163, Gmail, Outlook) treats it so, and
one person typing Zhang.Wei@ and zhang.wei@ must join. Typos in domains (qq.con, gmial.com) are
not repaired: a guess that is wrong would join two people. Junk addresses (test@, noreply@,
example.com, a@a.com, 123@qq.com ...) are listed in junk.yaml and become null.
"""

from __future__ import annotations

import re
from functools import cache

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.common.clean._text import first_match, fold_width, junk_regex, nfkc

# RFC 5322 dot-atom local part (no leading, trailing or doubled dot) @ LDH labels . a letter TLD.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
EMAIL_SYNTAX = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[a-z]{{2,24}}$"
_MAX_LENGTH = 254


def _prepared(col: Column) -> Column:
    e = F.lower(F.regexp_replace(fold_width(col), r"\s", ""))
    return F.regexp_replace(e, r"^mailto:", "")


@cache
def _valid_regex() -> str:
    """Syntax, length and junk in one regex: (not junk) (at most 254 characters) syntax."""
    return rf"^(?!.*(?:{junk_regex('emails')}))(?=.{{1,{_MAX_LENGTH}}}$){EMAIL_SYNTAX[1:]}"


def normalize_email(col: Column | str) -> Column:
    """The address trimmed (all whitespace removed), full-width folded and lower-cased, or null
    when it is not a syntactically valid address or is junk."""
    col = F.col(col) if isinstance(col, str) else col
    return first_match(_prepared(col), _valid_regex())


def normalize_email_py(s: str | None) -> str | None:
    """Python twin of `normalize_email` (NFKC instead of the full-width fold)."""
    if s is None:
        return None
    e = re.sub(r"^mailto:", "", re.sub(r"\s", "", nfkc(str(s))).lower())
    return e if re.search(_valid_regex(), e) else None


def mask_email(col: Column | str) -> Column:
    """Display form of a normalized address: first character of the local part, then "***@"
    and the domain ("t***@example.com")."""
    col = F.col(col) if isinstance(col, str) else col
    return F.when(
        col.isNotNull(),
        F.concat(F.substring(col, 1, 1), F.lit("***@"), F.substring_index(col, "@", -1)),
    )
