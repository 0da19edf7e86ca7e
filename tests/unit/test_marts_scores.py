"""The daily scoring step (jobs/marts/scores.py) on Spark: which orders count, RFM as its
definition says (the same rows as `cdp rfm`'s DuckDB), LTV's summary as DuckDB's, ops.ltv_fits."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import pandas as pd
import pytest
from deltalake import DeltaTable

from jobs.common.lake import overwrite, table_path
from jobs.marts import ltv, rfm
from jobs.marts.scores import score_customers
from jobs.marts.sql import DUCKDB
from tests.unit.marts_reference import rfm_reference
from tests.unit.test_marts_rfm import AS_OF, random_orders

pytestmark = pytest.mark.slow


def _write_silver(spark, settings, orders: list[tuple], others: list[tuple]) -> None:
    """orders: paid (customer, order_id, day, amount); others: (customer, order_id, day,
    amount, status, is_test, is_fake) that must not count."""
    rows = [(c, o, d, a, "completed", False, False) for c, o, d, a in orders] + others
    silver = [
        (o, "tmall", datetime(d.year, d.month, d.day, 12), d, Decimal(str(a)), None, st, t, f)
        for _, o, d, a, st, t, f in rows
    ]
    schema = (
        "order_id string, source string, order_ts timestamp, order_date date, "
        "amount decimal(18,2), refund_amount decimal(18,2), status string, is_test boolean, "
        "is_fake boolean"
    )
    overwrite(spark.createDataFrame(silver, schema), table_path("silver", "orders", settings))
    # One-ID's records: the customer of every order but one nobody could be given
    records = [("order_buyer", f"tmall|{o}", c) for c, o, *_ in rows if c != "nobody"]
    overwrite(
        spark.createDataFrame(records, "rule string, record_key string, one_id string"),
        table_path("silver", "identity_records", settings),
    )


def _read(settings, layer: str, name: str) -> pd.DataFrame:
    return DeltaTable(table_path(layer, name, settings)).to_pandas()


def test_scores_count_only_paid_real_identified_orders_and_match_the_definition(spark, lake):
    orders = random_orders(seed=9)
    day = AS_OF - timedelta(days=2)
    others = [
        ("c000", "refunded", day, 500.0, "refunded", False, False),
        ("c000", "closed", day, 500.0, "closed", False, False),
        ("c000", "pending", day, 500.0, "pending", False, False),
        ("c001", "test", day, 0.0, "paid", True, False),
        ("c002", "fake", day, 1.0, "paid", False, True),
        ("nobody", "unidentified", day, 50.0, "paid", False, False),
    ]
    _write_silver(spark, lake, orders, others)

    result = score_customers(AS_OF, AS_OF, lake)

    got = _read(lake, "silver", "customer_rfm")
    assert set(got["as_of"]) == {AS_OF}
    expected = rfm_reference(orders, AS_OF, rfm.load_rules())
    actual = {
        r["one_id"]: {
            k: (round(float(v), 2) if k == "monetary" else v)
            for k, v in r.items()
            if k not in ("one_id", "as_of", "rfm_score")
        }
        for r in got.to_dict("records")
    }
    assert actual == expected
    assert result["rfm_customers"] == len(expected)

    # LTV: Spark's summary is DuckDB's (the SQL `cdp ltv` runs), and the models were fitted
    ltv_rows = _read(lake, "silver", "customer_ltv").sort_values("one_id", ignore_index=True)
    con = duckdb.connect()
    con.register(
        "orders", pd.DataFrame(orders, columns=["customer_id", "order_id", "order_date", "amount"])
    )
    duck = con.execute(ltv.summary_sql("orders", AS_OF, DUCKDB)).df()
    duck = duck.sort_values("customer_id", ignore_index=True)
    assert list(ltv_rows["one_id"]) == list(duck["customer_id"])
    for column in ("frequency", "recency", "T", "monetary_value"):
        pd.testing.assert_series_equal(ltv_rows[column], duck[column], check_names=False)
    assert ltv_rows["p_alive"].between(0, 1).all()
    fits = _read(lake, "ops", "ltv_fits")
    assert len(fits) == 1
    assert fits["skipped"].isna().all()
    assert fits["customers"].iloc[0] == len(duck)

    # a second run replaces the scores and appends its fit
    score_customers(AS_OF, AS_OF, lake)
    assert len(_read(lake, "silver", "customer_rfm")) == len(expected)
    assert len(_read(lake, "ops", "ltv_fits")) == 2

    # features: a row for every customer One-ID named (here: no silver.customers, so its
    # records), the paid orders' figures as RFM counts them
    feats = _read(lake, "silver", "customer_features").set_index("one_id")
    assert set(feats.index) == {c for c, *_ in orders} | {"c000", "c001", "c002"}
    for one_id, want in expected.items():
        assert feats.loc[one_id, "orders"] >= want["frequency"]  # RFM counts the window only
    assert result["feature_customers"] == len(feats)


def test_without_identity_records_the_step_says_so(spark, lake):
    day = date(2026, 1, 1)
    assert "run One-ID first" in score_customers(day, day, lake)["skipped"]
