"""Money: decimal(18,2) amounts with their currency.

Exports write amounts as text ("1,234.50", "¥99.00", "￥１２．５０", "99元", "-" for none,
"无退款申请" in Tmall's refund column); APIs send strings in yuan or integers in fen (分:
WeChat Pay, Douyin). Binary floats never hold money here: text goes straight to a decimal.
A value that is not an amount becomes null (never 0: "no refund" and "refund of 0" differ).
The currency is a separate column: `currency_of` reads the marker a text carries, defaulting to
CNY, which every platform here uses.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.common.clean._text import fold_width

MONEY = "decimal(18,2)"
DEFAULT_CURRENCY = "CNY"

# Currency markers and what they mean (checked in this order: HK$ before $).
_CURRENCIES = (
    (r"(?i)hk\$|hkd|港币|港元", "HKD"),
    (r"(?i)nt\$|twd|新台币", "TWD"),
    (r"(?i)mop|澳门币", "MOP"),
    (r"(?i)us\$|usd|美元", "USD"),
    (r"(?i)eur|€|欧元", "EUR"),
    (r"(?i)rmb|cny|¥|￥|人民币|元", "CNY"),
    (r"\$", "USD"),
)
# Everything that may surround the digits: markers, thousands separators, spaces.
_NOISE = (
    r"(?i)hk\$|nt\$|us\$|hkd|twd|mop|usd|eur|rmb|cny"
    r"|港币|港元|新台币|澳门币|美元|欧元|人民币|[¥￥$€元,\s]"
)


def to_money(col: Column | str) -> Column:
    """decimal(18,2) from a number or a text amount (¥, ￥, commas, spaces, full-width digits and
    currency words stripped); null when the text is not an amount ("-", "无退款申请")."""
    col = F.col(col) if isinstance(col, str) else col
    text = F.regexp_replace(fold_width(col.cast("string")), _NOISE, "")
    return text.try_cast(MONEY)


def fen_to_money(col: Column | str) -> Column:
    """decimal(18,2) yuan from an integer amount in fen (分): 12345 -> 123.45."""
    col = F.col(col) if isinstance(col, str) else col
    amount = F.regexp_replace(fold_width(col.cast("string")), r"[,\s]", "").try_cast(
        "decimal(22,2)"
    )
    return F.when(amount == F.floor(amount), (amount / F.lit(100)).cast(MONEY))


def currency_of(col: Column | str, default: str = DEFAULT_CURRENCY) -> Column:
    """ISO 4217 code of the currency a text amount names (HK$, US$, 美元, ¥ ...), else
    `default` (null stays null)."""
    col = F.col(col) if isinstance(col, str) else col
    text = fold_width(col.cast("string"))
    out = F.when(col.isNull(), F.lit(None).cast("string"))
    for pattern, code in _CURRENCIES:
        out = out.when(text.rlike(pattern), F.lit(code))
    return out.otherwise(F.lit(default))
