"""LTV (jobs/marts/ltv.py): the buy-till-you-die summary, the fitted models and the churn warning.

The summary is held to pymc-marketing's `rfm_summary` (a port of `lifetimes`'), the BG/NBD fit
to a maximum of the paper's log-likelihood found here with scipy, and the parameters to those a
world was simulated with.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from jobs.marts import ltv
from jobs.marts.files import ltv_frame
from jobs.marts.sql import DUCKDB

AS_OF = date(2026, 11, 30)
START = AS_OF - timedelta(days=364)
TRUE = {"r": 0.6, "alpha": 15.0, "a": 0.9, "b": 3.0}


def simulate(customers: int, seed: int = 11) -> pd.DataFrame:
    """Paid orders of a BG/NBD world: Poisson purchases at a gamma-distributed rate while alive,
    a beta-distributed chance of dropping out after each repeat purchase; gamma spends."""
    rng = np.random.default_rng(seed)
    rows = []
    rates = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], customers)
    dropouts = rng.beta(TRUE["a"], TRUE["b"], customers)
    mean_spend = rng.gamma(4.0, 30.0, customers)
    for c in range(customers):
        t = float(rng.uniform(0, 300))  # first purchase
        first = True
        while t <= 364:
            day = START + timedelta(days=int(t))
            spend = round(float(rng.gamma(10.0, mean_spend[c] / 10.0)), 2)
            rows.append((f"c{c:05d}", f"o{len(rows)}", day, spend))
            if not first and rng.random() < dropouts[c]:
                break
            first = False
            t += rng.exponential(1 / rates[c])
    return pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "amount"])


def summary(orders: pd.DataFrame, rules: ltv.LtvRules) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("orders", orders)
    frame = con.execute(ltv.summary_sql("orders", AS_OF, DUCKDB, rules)).df()
    return frame.sort_values("customer_id", ignore_index=True)


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return simulate(6000)


@pytest.fixture(scope="module")
def fitted(world):
    return ltv_frame(world, AS_OF)


@pytest.mark.parametrize("freq", ["D", "W"])
def test_summary_is_the_buy_till_you_die_summary_of_pymc_marketing(freq):
    from pymc_marketing.clv.utils import rfm_summary

    orders = simulate(400, seed=3)
    # two orders on one day are one purchase period
    orders.loc[len(orders)] = ("c00000", "same-day", orders.iloc[0]["order_date"], 5.0)
    rules = ltv.load_rules().model_copy(update={"freq": freq})
    ours = summary(orders, rules).set_index("customer_id")
    reference = rfm_summary(
        orders.assign(order_date=pd.to_datetime(orders["order_date"])),
        "customer_id",
        "order_date",
        "amount",
        observation_period_end=pd.Timestamp(AS_OF),
        time_unit=freq,
    ).set_index("customer_id")
    columns = ["frequency", "recency", "T", "monetary_value"]
    pd.testing.assert_frame_equal(
        ours[columns], reference[columns].loc[ours.index], check_exact=False, rtol=1e-9
    )


def bgnbd_neg_log_likelihood(params, x, t_x, T):
    """-log L of BG/NBD (Fader, Hardie & Lee 2005, eq. 6), written out from the paper."""
    r, alpha, a, b = np.exp(params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(
        x > 0,
        np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return -np.sum(a1 + a2 + np.logaddexp(a3, a4))


def test_bgnbd_parameters_are_the_maximum_likelihood_and_near_the_truth(fitted, world):
    scores, fit = fitted
    assert fit.skipped is None
    # our own optimiser over the paper's likelihood, from another start
    x, t_x, T = (scores[c].to_numpy() for c in ("frequency", "recency", "T"))
    best = minimize(
        bgnbd_neg_log_likelihood,
        np.log([1.0, 1.0, 1.0, 1.0]),
        args=(x, t_x, T),
        method="Nelder-Mead",
        options={"maxiter": 20000, "xatol": 1e-8, "fatol": 1e-8},
    )
    reference = dict(zip(("r", "alpha", "a", "b"), np.exp(best.x), strict=True))
    for name, value in fit.bgnbd.items():
        assert value == pytest.approx(reference[name], rel=0.01), name
    # and the world's parameters are recovered
    for name, value in fit.bgnbd.items():
        assert value == pytest.approx(TRUE[name], rel=0.25), name


def test_predictions_are_in_range_and_rank_customers_sensibly(fitted):
    scores, fit = fitted
    assert fit.gamma_gamma["q"] > 1
    assert scores["p_alive"].between(0, 1).all()
    assert (scores["expected_purchases_90d"] >= 0).all()
    assert (scores["clv_12m"] >= 0).all()
    # of customers who bought as often over as long, the one who bought last more recently is
    # likelier alive
    groups = 0
    for _, group in scores[scores["frequency"] > 0].groupby(["frequency", "T"]):
        if group["recency"].nunique() > 1:
            groups += 1
            p_alive = group.sort_values("recency")["p_alive"].to_numpy()
            assert (np.diff(p_alive) >= -1e-12).all()
    assert groups > 50
    # a new customer is expected to spend the population's mean spend per purchase
    once = scores[scores["frequency"] == 0]["expected_spend"]
    assert once.nunique() == 1


def test_scoring_with_a_fits_parameters_gives_what_the_fit_gave(fitted, world):
    """The daily delta between refits scores with the last fit's parameters: the same
    predictions as the run that fitted them, however the customers are ordered."""
    scores, fit = fitted
    base = summary(world, ltv.load_rules())
    again, given = ltv.predict(base.iloc[::-1], AS_OF, fitted=fit)
    assert (given.bgnbd, given.gamma_gamma) == (fit.bgnbd, fit.gamma_gamma)
    again = again.set_index("customer_id").loc[scores["customer_id"]].reset_index()
    for column in (*ltv.PREDICTIONS, "churn_risk"):
        pd.testing.assert_series_equal(again[column], scores[column], rtol=1e-9)


def test_churn_flags_low_p_alive_and_silence_beyond_the_own_cycle(fitted):
    scores, _ = fitted
    rules = ltv.load_rules()
    low = scores["p_alive"] < rules.churn.p_alive_below
    assert scores.loc[low, "churn_risk"].all()
    assert scores.loc[low, "churn_reason"].str.startswith("p_alive").all()
    cycle = scores["churn_reason"].fillna("").str.contains("own cycle")
    assert cycle.any()
    # every flagged customer has a reason, every unflagged one none
    assert (scores["churn_risk"] == scores["churn_reason"].notna()).all()


def test_too_few_repeat_customers_fit_nothing_and_still_warn_by_cycle():
    orders = pd.DataFrame(
        [("a", f"a{i}", AS_OF - timedelta(days=100 - 10 * i), 50.0) for i in range(3)]
        + [("b", "b1", AS_OF, 20.0)],
        columns=["customer_id", "order_id", "order_date", "amount"],
    )
    scores, fit = ltv_frame(orders, AS_OF)
    assert "fewer than min_repeat_customers" in fit.skipped
    assert fit.bgnbd == {}
    assert scores[list(ltv.PREDICTIONS)].isna().all().all()
    by_id = scores.set_index("customer_id")
    # a bought every 10 days, last 80 days ago: 80 > 2 x 10
    assert by_id.loc["a", "churn_risk"]
    assert (
        "80 days since the last purchase > 2 x own cycle (10 days)"
        in by_id.loc["a", "churn_reason"]
    )
    assert not by_id.loc["b", "churn_risk"]


def test_a_short_history_fits_nothing_however_many_repeat(world):
    recent = world[world["order_date"] >= AS_OF - timedelta(days=29)]
    repeaters = recent.groupby("customer_id")["order_date"].nunique().gt(1).sum()
    assert repeaters > 100  # plenty of repeat customers, a month of history
    scores, fit = ltv_frame(recent, AS_OF)
    assert fit.skipped == (
        "the history spans 29 days, fewer than min_history_days (90): the models were not fitted"
    )
    assert scores["p_alive"].isna().all()
