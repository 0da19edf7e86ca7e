"""Flags on silver.orders, never deletions: test orders and fake orders (刷单), with the rule and
a human reason for each (rules and thresholds in jobs/silver/order_flags.yaml).

Two kinds of rules:
- row rules look at one order (`row_flags`): a paid 0-yuan order, test keywords in the titles or
  the receiver's name. They run in the build, before the name is tokenized, and their flags are
  kept in `flags` from then on.
- day rules look at every order of a business date (`flag_orders`): a ring signal (one address,
  device or buyer behind many orders that day) together with an order signal (a tiny amount, an
  instant confirmation). silver.orders declares `flag_orders` as its `refresh` by `order_date`, so
  the build re-applies it to every order of the dates a day's rows (late ones included) touched.

`flags` is array<struct<rule, reason>>; `is_test` / `is_fake` say whether any test / fake rule
fired.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.common.errors import CdpError, validation_problems
from jobs.common.yamlio import load_yaml

RULES_FILE = Path(__file__).parent / "order_flags.yaml"
FLAG = T.StructType(
    [T.StructField("rule", T.StringType()), T.StructField("reason", T.StringType())]
)
FLAGS = T.ArrayType(FLAG)
# Rule names as `flags` records them.
ZERO_AMOUNT = "test_zero_amount"
TEST_KEYWORD = "test_keyword"
ROW_RULES = (ZERO_AMOUNT, TEST_KEYWORD)
TEST_RULES = ROW_RULES
FAKE_PREFIX = "fake_"  # day rules: fake_<ring>_ring (fake_address_ring, ...)
PAID_STATES = ("paid", "shipped", "completed", "refunded")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZeroAmount(_Strict):
    enabled: bool = True
    exempt_title_keywords: tuple[str, ...] = ()


class Keywords(_Strict):
    names: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()


class TestRules(_Strict):
    zero_amount: ZeroAmount = ZeroAmount()
    keywords: Keywords = Keywords()


class Ring(_Strict):
    column: str
    min_orders: int = Field(ge=2)
    label: str


class FakeRules(_Strict):
    rings: dict[str, Ring] = Field(default_factory=dict)
    tiny_amount_max: Decimal = Field(ge=0)
    instant_confirmation_minutes: int = Field(ge=0)
    instant_exempt_sources: tuple[str, ...] = ()


class FlagRules(_Strict):
    test: TestRules = TestRules()
    fake: FakeRules


def parse_rules(raw: dict, where: str = str(RULES_FILE)) -> FlagRules:
    """The typed rules of an order_flags.yaml mapping; a CdpError naming `where` if invalid."""
    from pydantic import ValidationError

    try:
        return FlagRules.model_validate(raw)
    except ValidationError as exc:
        raise CdpError(f"{where}: invalid order flag rules: {validation_problems(exc)}") from exc


@cache
def load_rules(path: Path = RULES_FILE) -> FlagRules:
    return parse_rules(load_yaml(path), str(path))


# --- row rules -------------------------------------------------------------------------------


def _flag(rule: str, reason: Column) -> Column:
    return F.struct(F.lit(rule).alias("rule"), reason.cast("string").alias("reason"))


def _first_keyword(text: Column, keywords: tuple[str, ...]) -> Column:
    """The first of `keywords` found in `text` (case-insensitive), else null."""
    lowered = F.lower(text)
    found = F.lit(None).cast("string")
    for word in reversed(keywords):
        found = F.when(F.instr(lowered, word.lower()) > 0, F.lit(word)).otherwise(found)
    return F.when(text.isNotNull(), found)


def zero_amount_flag(rules: FlagRules) -> Column:
    """A 0.00 order that went through payment (not pending; closed only with a payment time),
    unless its title says it is a gift or a redemption. Reads amount, status, paid_ts and
    item_title."""
    rule = rules.test.zero_amount
    if not rule.enabled:
        return F.lit(None).cast(FLAG)
    paid = F.col("status").isin(*PAID_STATES) | (
        (F.col("status") == "closed") & F.col("paid_ts").isNotNull()
    )
    exempt = _first_keyword(F.col("item_title"), rule.exempt_title_keywords).isNotNull()
    hit = (F.col("amount") == 0) & paid & ~F.coalesce(exempt, F.lit(False))
    reason = F.concat(F.lit("0-yuan "), F.col("status"), F.lit(" order"))
    return F.when(hit, _flag(ZERO_AMOUNT, reason))


def test_keyword_flag(rules: FlagRules) -> Column:
    """A test keyword in the receiver's name or the product titles. The reason names the
    keyword and where it was found, never the name itself. Reads receiver_name and item_title."""
    words = rules.test.keywords
    in_name = _first_keyword(F.col("receiver_name"), words.names)
    in_title = _first_keyword(F.col("item_title"), words.titles)
    return (
        F.when(
            in_name.isNotNull(),
            _flag(TEST_KEYWORD, F.concat(F.lit("test keyword '"), in_name, F.lit("' in name"))),
        )
        .when(
            in_title.isNotNull(),
            _flag(TEST_KEYWORD, F.concat(F.lit("test keyword '"), in_title, F.lit("' in title"))),
        )
        .otherwise(F.lit(None).cast(FLAG))
    )


def with_verdicts(df: DataFrame) -> DataFrame:
    """`is_test` / `is_fake` from `flags`."""
    flags = F.coalesce(F.col("flags"), F.array().cast(FLAGS))
    return df.withColumns(
        {
            "is_test": F.exists(flags, lambda f: f["rule"].isin(*TEST_RULES)),
            "is_fake": F.exists(flags, lambda f: f["rule"].startswith(FAKE_PREFIX)),
        }
    )


def row_flags(df: DataFrame, rules: FlagRules) -> DataFrame:
    """`flags` (the row rules that fire), `is_test` and `is_fake` of each order. Needs amount,
    status, paid_ts, item_title and receiver_name (raw, before tokenization)."""
    hits = F.array(zero_amount_flag(rules), test_keyword_flag(rules))
    flags = F.array_sort(F.filter(hits, lambda f: f.isNotNull()))
    return df.withColumn("flags", flags.cast(FLAGS)).transform(with_verdicts)


# --- day rules -------------------------------------------------------------------------------


def tiny_amount(rules: FlagRules) -> Column:
    """The order signal of a token amount: 0 < amount <= tiny_amount_max."""
    limit = F.lit(rules.fake.tiny_amount_max).cast("decimal(18,2)")
    return (F.col("amount") > 0) & (F.col("amount") <= limit)


def confirmation_minutes() -> Column:
    """Minutes from payment to completion (null without both times)."""
    seconds = F.unix_timestamp("completed_ts") - F.unix_timestamp("paid_ts")
    return F.floor(seconds / 60)


def instant_confirmation(rules: FlagRules) -> Column:
    """The order signal of a completion within minutes of payment, where the source gives both
    times (and a sale does not complete at payment by nature, as at a till)."""
    minutes = confirmation_minutes()
    exempt = F.col("source").isin(*rules.fake.instant_exempt_sources)
    return (
        minutes.isNotNull()
        & (minutes >= 0)
        & (minutes <= rules.fake.instant_confirmation_minutes)
        & ~exempt
    )


def _signal_reason(rules: FlagRules) -> Column:
    tiny = F.when(
        tiny_amount(rules),
        F.concat_ws(
            " ",
            F.lit("amount"),
            F.col("amount").cast("string"),
            F.col("currency"),
            F.lit(f"(<= {rules.fake.tiny_amount_max})"),
        ),
    )
    instant = F.when(
        instant_confirmation(rules),
        F.concat(
            F.lit("completed "),
            confirmation_minutes().cast("string"),
            F.lit(f" min after payment (<= {rules.fake.instant_confirmation_minutes})"),
        ),
    )
    return F.concat_ws(", ", tiny, instant)


def flag_orders(orders: DataFrame, rules: FlagRules | None = None) -> DataFrame:
    """Re-apply the day rules to all orders of some business dates (`order_date`): the row
    rules' flags are kept, the day rules' recomputed. Same columns out as in.

    Needs order_date, source, amount, currency, paid_ts, completed_ts, flags and the rings'
    columns (receiver_address_token, device_id, customer_key); a ring column the frame lacks
    gives no signal. Test orders neither count towards a ring nor are flagged fake.
    """
    rules = rules or load_rules()
    columns = orders.columns
    kept = F.filter(
        F.coalesce(F.col("flags"), F.array().cast(FLAGS)),
        lambda f: f["rule"].isin(*ROW_RULES),
    )
    df = orders.withColumn("_kept", kept).withColumn(
        "_test", F.exists(F.col("_kept"), lambda f: f["rule"].isin(*TEST_RULES))
    )
    signal = (tiny_amount(rules) | instant_confirmation(rules)) & ~F.col("_test")
    signal_reason = _signal_reason(rules)
    found = []
    for name, ring in rules.fake.rings.items():
        if ring.column not in columns:
            continue
        key = F.col(ring.column)
        counted = F.when(key.isNotNull() & ~F.col("_test"), 1)
        n = F.sum(counted).over(Window.partitionBy("order_date", ring.column))
        hit = key.isNotNull() & F.col("order_date").isNotNull() & (n >= ring.min_orders) & signal
        reason = F.concat(
            n.cast("string"),
            F.lit(f" orders from one {ring.label} on "),
            F.col("order_date").cast("string"),
            F.lit(f" (>= {ring.min_orders}); "),
            signal_reason,
        )
        found.append(F.when(hit, _flag(f"{FAKE_PREFIX}{name}_ring", reason)))
    rings = F.filter(F.array(*found), lambda f: f.isNotNull()) if found else F.array()
    flags = F.array_sort(F.concat(F.col("_kept"), rings.cast(FLAGS))).cast(FLAGS)
    return (
        df.withColumn("flags", flags)
        .drop("_kept", "_test")
        .transform(with_verdicts)
        .select(*columns, *(c for c in ("is_test", "is_fake") if c not in columns))
    )
