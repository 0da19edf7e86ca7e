"""RFM: recency, frequency and monetary scores, the 11 named segments and the 8-class RFM.

One SQL text (`values_sql`, then `scores_sql`) scores a table of orders in Spark (the daily job,
jobs/marts/scores.py) and in DuckDB (`cdp rfm` on any order file); the rules are in rfm.yaml.

Scores treat ties fairly. A customer's score on a dimension is ``1 + floor(bins * worse / n)``,
where ``worse`` counts the customers strictly worse on it (an older last order, fewer orders,
less spent) and ``n`` every scored customer. Equal values always get equal scores, however many
share them: the usual quintile cut with a row-number tie-break would put two customers with
one order each into different quintiles by the order rows happened to arrive in. With most
customers on one order, the scores are uneven (every one-order buyer scores f=1, two orders
score f=4); that is what the data says, and the score is reproducible.

The 8-class RFM (重要价值客户 ... 一般挽留客户) compares each raw value with a threshold (the
mean or median of the scored customers, or a number) rather than the scores, as Chinese CRM
tools do.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from itertools import product
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from jobs.marts.config import Strict, load_config
from jobs.marts.sql import Dialect, date_literal

RULES = Path(__file__).parent / "rfm.yaml"
PAID_STATUSES = ("paid", "shipped", "completed")
Threshold = Literal["mean", "median"] | float


class SegmentRule(Strict):
    name: str = Field(min_length=1)
    r: tuple[int, int] | None = None
    f: tuple[int, int] | None = None
    m: tuple[int, int] | None = None
    fm: tuple[int, int] | None = None

    def ranges(self) -> dict[str, tuple[int, int]]:
        return {
            k: v for k, v in (("r", self.r), ("f", self.f), ("m", self.m), ("fm", self.fm)) if v
        }

    def holds(self, scores: dict[str, int]) -> bool:
        return all(lo <= scores[k] <= hi for k, (lo, hi) in self.ranges().items())


class Classes(Strict):
    recency: Threshold = "mean"
    frequency: Threshold = "mean"
    monetary: Threshold = "mean"
    names: dict[str, str]

    @model_validator(mode="after")
    def _all_eight(self) -> Classes:
        want = {"".join(c) for c in product("HL", repeat=3)}
        if set(self.names) != want:
            missing, extra = sorted(want - set(self.names)), sorted(set(self.names) - want)
            raise ValueError(
                f"names must give exactly the 8 keys {sorted(want)} (R F M, H or L); "
                f"missing {missing}, unknown {extra}"
            )
        return self


class RfmRules(Strict):
    window_days: int | None = Field(default=365, ge=1)
    bins: int = Field(default=5, ge=2, le=10)
    frequency: Literal["orders", "days"] = "orders"
    segments: list[SegmentRule] = Field(min_length=1)
    classes: Classes

    @model_validator(mode="after")
    def _segments_cover_every_score(self) -> RfmRules:
        for rule in self.segments:
            for key, (lo, hi) in rule.ranges().items():
                if not 1 <= lo <= hi <= self.bins:
                    raise ValueError(
                        f"segment {rule.name!r}: {key} range [{lo}, {hi}] must lie within "
                        f"1..{self.bins}, low end first"
                    )
        for r, f, m in product(range(1, self.bins + 1), repeat=3):
            scores = {"r": r, "f": f, "m": m, "fm": fm_score(f, m)}
            if not any(rule.holds(scores) for rule in self.segments):
                raise ValueError(
                    f"no segment takes r={r} f={f} m={m} (fm={scores['fm']}): add a rule or widen "
                    "one, every score must land in a segment"
                )
        return self


def paid_orders_sql(records: str = "silver.identity_records") -> str:
    """customer_id (one_id), source, order_id, order_date, amount of every silver order that
    counts: paid, shipped or completed, neither test nor fake, with a one_id (from `records`,
    One-ID's records or some of them). Spark (the daily scores) and DuckDB (`cdp report`) read
    it alike."""
    paid = ", ".join(f"'{s}'" for s in PAID_STATUSES)
    return f"""
        select r.one_id as customer_id, o.source, concat_ws('|', o.source, o.order_id) as order_id,
               cast(o.order_date as date) as order_date, cast(o.amount as decimal(18, 2)) as amount
        from silver.orders o
        join {records} r
          on r.rule = 'order_buyer' and r.record_key = concat_ws('|', o.source, o.order_id)
        where lower(o.status) in ({paid})
          and not coalesce(o.is_test, false) and not coalesce(o.is_fake, false)
    """


def fm_score(f: int, m: int) -> int:
    """The mean of the frequency and monetary scores, rounded up."""
    return (f + m + 1) // 2


@lru_cache(maxsize=8)
def load_rules(path: Path = RULES) -> RfmRules:
    return load_config(path, RfmRules)


def window_start(rules: RfmRules, as_of: date) -> date | None:
    """The first day whose orders count (None: all of history)."""
    return as_of - timedelta(days=rules.window_days - 1) if rules.window_days else None


def _score(values: str, column: str, bins: int, better: Literal["higher", "lower"]) -> str:
    """SQL over `values` scoring `column`: 1 + floor(bins * customers strictly worse / all)."""
    order = "desc" if better == "lower" else "asc"
    return f"""
        select {column} as value, cast(1 + floor(
            {bins} * (sum(k) over (order by {column} {order}
                      rows between unbounded preceding and current row) - k)
            / (select count(*) from {values})) as int) as score
        from (select {column}, count(*) as k from {values} group by {column}) counted
    """


def _threshold(values: str, column: str, threshold: Threshold) -> str:
    if isinstance(threshold, int | float):
        return repr(float(threshold))
    return f"(select {'avg' if threshold == 'mean' else 'median'}({column}) from {values})"


def values_sql(orders: str, as_of: date, dialect: Dialect, rules: RfmRules | None = None) -> str:
    """Each customer's raw recency_days, frequency and monetary in the window, from `orders`
    (customer_id, order_id, order_date date, amount; paid orders only). `scores_sql` reads it
    many times: callers materialize it (a cached view, a temporary table)."""
    rules = rules or load_rules()
    start = window_start(rules, as_of)
    since = f"and order_date >= {date_literal(start)}" if start else ""
    counted = "order_id" if rules.frequency == "orders" else "order_date"
    return f"""
        select
            customer_id,
            {dialect.days_between("max(order_date)", date_literal(as_of))} as recency_days,
            count(distinct {counted}) as frequency,
            cast(sum(amount) as decimal(18, 2)) as monetary
        from {orders}
        where customer_id is not null and order_date <= {date_literal(as_of)} {since}
        group by customer_id
    """


def scores_sql(values: str, rules: RfmRules | None = None) -> str:
    """The scores, segment and class of every customer of `values` (`values_sql`'s rows)."""
    rules = rules or load_rules()
    c = rules.classes
    recent = f"recency_days <= {_threshold(values, 'recency_days', c.recency)}"
    frequent = f"frequency >= {_threshold(values, 'frequency', c.frequency)}"
    spent = f"monetary >= {_threshold(values, 'monetary', c.monetary)}"
    key = (
        f"concat(case when {recent} then 'H' else 'L' end, "
        f"case when {frequent} then 'H' else 'L' end, case when {spent} then 'H' else 'L' end)"
    )
    classes = " ".join(f"when '{k}' then '{v}'" for k, v in sorted(c.names.items()))
    segments = " ".join(
        "when "
        + " and ".join(f"{k}_score between {lo} and {hi}" for k, (lo, hi) in r.ranges().items())
        + f" then '{_sql_text(r.name)}'"
        for r in rules.segments
    )
    return f"""
        with
        r_scores as ({_score(values, "recency_days", rules.bins, "lower")}),
        f_scores as ({_score(values, "frequency", rules.bins, "higher")}),
        m_scores as ({_score(values, "monetary", rules.bins, "higher")}),
        scored as (
            select
                v.customer_id, v.recency_days, v.frequency, v.monetary,
                r.score as r_score, f.score as f_score, m.score as m_score,
                cast(floor((f.score + m.score + 1) / 2) as int) as fm_score,
                {key} as class_key
            from {values} v
            join r_scores r on v.recency_days = r.value
            join f_scores f on v.frequency = f.value
            join m_scores m on v.monetary = m.value
        )
        select
            customer_id, recency_days, frequency, monetary, r_score, f_score, m_score,
            concat(cast(r_score as string), cast(f_score as string), cast(m_score as string))
                as rfm_score,
            case {segments} end as rfm_segment,
            case class_key {classes} end as rfm_class
        from scored
    """


def _sql_text(text: str) -> str:
    return text.replace("'", "''")
