"""Person names: NFKC, spaces, traditional -> simplified (OpenCC), junk names blocked.

A Chinese name has no spaces (马 飞华 -> 马飞华); a Latin name keeps single spaces and is
title-cased only when typed all upper or all lower case (JOHN SMITH -> John Smith; McDonald
keeps its capitals). The middle dot of minority and transliterated names has many look-alikes
(•, ・, ‧, ∙); they become "·". Traditional characters become simplified with OpenCC's `t2s`
(張偉 -> 张伟), so one person registered on a Hong Kong or Taiwan keyboard matches.

An honorific alone (先生, 女士), a test marker (测试, test), "nothing" (无, -, ?) or a name
without a single letter (a phone number typed into the name box) becomes null: junk.yaml.

OpenCC has no Spark equivalent, so the whole rule runs in a pandas UDF (names are short; the
converter is built once per Python worker and each batch converts each distinct name once).
"""

from __future__ import annotations

import re
from functools import cache

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from jobs.common.clean._text import junk, nfkc

_CJK = r"\u3400-\u9fff\uf900-\ufaff"
_DOTS = r"[·•・‧∙.．]"  # look-alike middle dots


@cache
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(s: str) -> str:
    """Traditional Chinese characters to simplified (OpenCC t2s); other text unchanged."""
    return _t2s().convert(s)


def normalize_name_py(s: str | None) -> str | None:
    """The cleaned name, or None for a junk name. The reference for `normalize_name`."""
    if s is None:
        return None
    name = re.sub(r"\s+", " ", nfkc(str(s))).strip()
    # Spaces (and look-alike dots, kept as "·") between two CJK characters.
    name = re.sub(rf"(?<=[{_CJK}])\s*{_DOTS}\s*(?=[{_CJK}])", "·", name)
    name = re.sub(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])", "", name)
    name = to_simplified(name)
    if not name or not any(ch.isalpha() for ch in name):
        return None
    if name.lower() in junk("names")["exact"]:
        return None
    if name.isascii() and (name.isupper() or name.islower()):
        name = name.title()
    return name


@F.pandas_udf(StringType())
def _name_udf(values: pd.Series) -> pd.Series:
    distinct = values.dropna().unique()
    cleaned = {v: normalize_name_py(v) for v in distinct}
    # astype(object): a batch of nulls only would map to a float NaN series Arrow refuses.
    return values.map(cleaned).astype(object)


def normalize_name(col: Column | str) -> Column:
    """NFKC (full/half width), spaces collapsed (none between CJK characters), traditional ->
    simplified (OpenCC t2s); null for a junk name (先生 alone, 测试, test, -, 无 ...)."""
    col = F.col(col) if isinstance(col, str) else col
    return _name_udf(col)


def mask_name(col: Column | str) -> Column:
    """Display form of a normalized name: its first character, then one star per other
    character, at least one ("张*", "张**", "J*********")."""
    col = F.col(col) if isinstance(col, str) else col
    stars = F.repeat(F.lit("*"), F.greatest(F.length(col) - 1, F.lit(1)))
    return F.when(col.isNotNull(), F.concat(F.substring(col, 1, 1), stars))
