"""LTV: BG/NBD and Gamma-Gamma per customer, with pymc-marketing, and a churn warning.

The per-customer summary follows the buy-till-you-die definitions (Fader, Hardie & Lee 2005), as
`lifetimes` and pymc-marketing's `rfm_summary` compute them, so results can be checked against
those implementations (a test does):

- purchases in one period (a day, or an ISO week with ``freq: W``) are one purchase;
- ``frequency``: the number of periods with a purchase after the first (repeat purchases);
- ``recency``: the age, in periods, of the customer at their last purchase (0 without repeats);
- ``T``: their age at the end of observation (the as-of date's period);
- ``monetary_value``: the mean value of the repeat periods (0 without repeats).

`summary_sql` computes it in SQL both engines read (Spark in the daily job, DuckDB in `cdp
ltv`); `predict` fits the models and scores every customer. The models are fitted by maximum a
posteriori with flat priors (pymc-marketing's ``HalfFlat``), which is maximum likelihood: the
same estimates `lifetimes` publishes, not pulled towards pymc-marketing's default priors.
"""

from __future__ import annotations

import logging
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from jobs.marts.config import Strict, load_config
from jobs.marts.sql import Dialect, date_literal, week_start

RULES = Path(__file__).parent / "ltv.yaml"
PERIOD_DAYS = {"D": 1, "W": 7}
PREDICTIONS = ("p_alive", "expected_purchases_90d", "expected_spend", "clv_12m")


class Churn(Strict):
    p_alive_below: float = Field(default=0.3, gt=0, lt=1)
    cycle_multiple: float = Field(default=2.0, gt=0)
    cycle_min_orders: int = Field(default=3, ge=2)


class LtvRules(Strict):
    freq: Literal["D", "W"] = "D"
    history_days: int | None = Field(default=None, ge=1)
    clv_months: int = Field(default=12, ge=1)
    monthly_discount_rate: float = Field(default=0.01, ge=0, lt=1)
    min_repeat_customers: int = Field(default=20, ge=1)
    min_history_days: int = Field(default=90, ge=1)
    refit_days: int = Field(default=7, ge=0)
    churn: Churn = Churn()


@lru_cache(maxsize=8)
def load_rules(path: Path = RULES) -> LtvRules:
    return load_config(path, LtvRules)


def summary_sql(orders: str, as_of: date, dialect: Dialect, rules: LtvRules | None = None) -> str:
    """The buy-till-you-die summary of `orders` (customer_id, order_date date, amount; paid
    orders only) as of `as_of`, one row per customer with a purchase on or before it."""
    rules = rules or load_rules()
    unit = PERIOD_DAYS[rules.freq]
    period = "order_date" if rules.freq == "D" else week_start("order_date")
    end = date_literal(as_of) if rules.freq == "D" else week_start(date_literal(as_of))
    since = (
        f"and order_date >= {date_literal(as_of - timedelta(days=rules.history_days - 1))}"
        if rules.history_days
        else ""
    )
    return f"""
        with periods as (
            select customer_id, {period} as period, min(order_date) as first_date,
                   max(order_date) as last_date, sum(amount) as value
            from {orders}
            where customer_id is not null and order_date <= {date_literal(as_of)} {since}
            group by customer_id, {period}
        ),
        spans as (
            select customer_id, min(period) as first_period, max(period) as last_period,
                   min(first_date) as first_order_date, max(last_date) as last_order_date,
                   count(*) - 1 as repeats
            from periods
            group by customer_id
        )
        select
            s.customer_id,
            cast(s.repeats as double) as frequency,
            cast({dialect.days_between("s.first_period", "s.last_period")} as double) / {unit}
                as recency,
            cast({dialect.days_between("s.first_period", end)} as double) / {unit} as T,
            coalesce(cast(avg(case when p.period > s.first_period then p.value end) as double),
                     0.0) as monetary_value,
            s.first_order_date,
            s.last_order_date
        from spans s
        join periods p on p.customer_id = s.customer_id
        group by s.customer_id, s.repeats, s.first_period, s.last_period, s.first_order_date,
                 s.last_order_date
    """


@dataclass
class Fit:
    """What was fitted, for the run's log and `cdp ltv`'s printout."""

    customers: int
    repeat_customers: int
    bgnbd: dict[str, float] = field(default_factory=dict)  # r, alpha, a, b
    gamma_gamma: dict[str, float] = field(default_factory=dict)  # p, q, v
    skipped: str | None = None  # why the models were not fitted (predictions are null)


def _flat(names: str) -> dict:
    from pymc_extras.prior import Prior

    return {name: Prior("HalfFlat") for name in names.split()}


def _values(array, index: pd.Series) -> pd.Series:
    """A MAP prediction (chain, draw, customer_id) as a series in `index`'s order."""
    squeezed = array.mean(dim=[d for d in ("chain", "draw") if d in array.dims])
    return squeezed.to_series().reindex(index.to_numpy()).reset_index(drop=True)


@contextmanager
def _quiet():
    """pymc and pytensor talk a lot while fitting (notices, progress); keep it out of output."""
    for name in ("pymc", "pytensor", "pymc_marketing", "arviz"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def predict(
    summary: pd.DataFrame,
    as_of: date,
    rules: LtvRules | None = None,
    fitted: Fit | None = None,
) -> tuple:
    """Fit BG/NBD (purchases) and Gamma-Gamma (spend) on `summary` and score each customer:
    p_alive, expected_purchases_90d, expected_spend, clv_12m, churn_risk, churn_reason.
    With `fitted` (an earlier fit's parameters), score with those instead of fitting: the
    daily delta between refits. Returns (scores, Fit)."""
    rules = rules or load_rules()
    out = summary.reset_index(drop=True).copy()
    repeaters = out[(out["frequency"] > 0) & (out["monetary_value"] > 0)]
    fit = Fit(customers=len(out), repeat_customers=len(repeaters))
    for column in PREDICTIONS:
        out[column] = float("nan")
    history = int(out["T"].max() * PERIOD_DAYS[rules.freq]) if len(out) else 0
    if fitted is not None:
        fit.bgnbd, fit.gamma_gamma, fit.skipped = fitted.bgnbd, fitted.gamma_gamma, fitted.skipped
        if fitted.bgnbd and len(out):
            _fit_models(out, repeaters, rules, fit, given=fitted)
    elif len(repeaters) < rules.min_repeat_customers:
        fit.skipped = (
            f"{len(repeaters)} repeat customers, fewer than min_repeat_customers "
            f"({rules.min_repeat_customers}): the models were not fitted"
        )
    elif history < rules.min_history_days:
        fit.skipped = (
            f"the history spans {history} days, fewer than min_history_days "
            f"({rules.min_history_days}): the models were not fitted"
        )
    else:
        _fit_models(out, repeaters, rules, fit)
    out["churn_risk"], out["churn_reason"] = _churn(out, as_of, rules)
    return out, fit


def _posterior(model, params: dict[str, float]) -> None:
    """Give a built model `params` as its fit (one chain, one draw): its predictions are then
    the library's own formulas at those values, as after `fit`."""
    import arviz as az
    import xarray as xr

    model.build_model()
    model.idata = az.InferenceData(
        posterior=xr.Dataset(
            {k: (("chain", "draw"), [[v]]) for k, v in params.items()},
            coords={"chain": [0], "draw": [0]},
        )
    )


def _fit_models(
    out: pd.DataFrame,
    repeaters: pd.DataFrame,
    rules: LtvRules,
    fit: Fit,
    given: Fit | None = None,
) -> None:
    """Fit both models (or, `given`, take its parameters) and score every customer of `out`."""
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    with _quiet():
        data = out[["customer_id", "frequency", "recency", "T", "monetary_value"]]
        bg = BetaGeoModel(data=data, model_config=_flat("r alpha a b"))
        if given is None:
            bg.fit(method="map", progressbar=False)
            fit.bgnbd = {k: float(bg.fit_result[k].mean()) for k in ("r", "alpha", "a", "b")}
        else:
            _posterior(bg, given.bgnbd)
        ids = out["customer_id"]
        out["p_alive"] = _values(bg.expected_probability_alive(data=data), ids)
        horizon = 90 / PERIOD_DAYS[rules.freq]
        out["expected_purchases_90d"] = _values(
            bg.expected_purchases(data=data, future_t=horizon), ids
        )
        if given is not None and (not given.gamma_gamma or repeaters.empty):
            return
        gg = GammaGammaModel(
            data=repeaters[["customer_id", "frequency", "monetary_value"]],
            model_config=_flat("p q v"),
        )
        if given is None:
            gg.fit(method="map", progressbar=False)
            fit.gamma_gamma = {k: float(gg.fit_result[k].mean()) for k in ("p", "q", "v")}
        else:
            _posterior(gg, given.gamma_gamma)
        if fit.gamma_gamma["q"] <= 1:
            fit.skipped = (
                f"Gamma-Gamma's q = {fit.gamma_gamma['q']:.3f} <= 1: mean spend is unbounded, "
                "no spend or CLV estimates"
            )
            return
        out["expected_spend"] = _values(gg.expected_customer_spend(data=data), ids)
        clv = gg.expected_customer_lifetime_value(
            transaction_model=bg,
            data=data,
            future_t=rules.clv_months,
            discount_rate=rules.monthly_discount_rate,
            time_unit=rules.freq,
        )
        out["clv_12m"] = _values(clv, ids)


def _churn(out: pd.DataFrame, as_of: date, rules: LtvRules) -> tuple[pd.Series, pd.Series]:
    """Churn risk from p_alive, or from the days since the last purchase against the customer's
    own cycle (mean days between their purchase periods)."""
    c = rules.churn
    reasons = []
    for p_alive, repeats, first, last in zip(
        out["p_alive"],
        out["frequency"],
        out["first_order_date"],
        out["last_order_date"],
        strict=True,
    ):
        if not math.isnan(p_alive) and p_alive < c.p_alive_below:
            reasons.append(f"p_alive {p_alive:.2f} < {c.p_alive_below}")
            continue
        purchases = int(repeats) + 1
        if purchases >= c.cycle_min_orders:
            cycle = (_day(last) - _day(first)).days / repeats
            since = (as_of - _day(last)).days
            if cycle > 0 and since > c.cycle_multiple * cycle:
                reasons.append(
                    f"{since} days since the last purchase > {c.cycle_multiple:g} x own cycle "
                    f"({cycle:.0f} days)"
                )
                continue
        reasons.append(None)
    reason = pd.Series(reasons, dtype="object")
    return reason.notna(), reason


def _day(value) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value
