"""`cdp rfm` and `cdp ltv`: the daily job's scoring, on any order file, without the lake.

The same SQL as the daily job (jobs/marts/rfm.py, ltv.py) runs in DuckDB over the file's paid
orders (jobs/marts/orderfile.py), so a brand can score an export before onboarding, or check
our figures against its own tools.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from jobs.common.output import console, print_rows
from jobs.marts import ltv, rfm
from jobs.marts.orderfile import OrderFile, read_orders, write_table
from jobs.marts.sql import DUCKDB

RFM_COLUMNS = [
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "rfm_score",
    "rfm_segment",
    "rfm_class",
]
LTV_COLUMNS = [
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "expected_purchases_90d",
    "expected_spend",
    "clv_12m",
    "churn_risk",
    "churn_reason",
]


def _run(sql: str, orders: pd.DataFrame, before: tuple[str, ...] = ()) -> pd.DataFrame:
    """`sql` over `orders`, registered as the table `orders`, in a DuckDB of its own, after
    the statements `before`."""
    con = duckdb.connect()
    try:
        con.register("orders", orders)
        for statement in before:
            con.execute(statement)
        return con.execute(sql).df()
    finally:
        con.close()


def rfm_frame(orders: pd.DataFrame, as_of: date, rules: rfm.RfmRules | None = None):
    """RFM of `orders` (customer_id, order_id, order_date, amount), one row per customer."""
    values = (
        f"create temp table customer_values as {rfm.values_sql('orders', as_of, DUCKDB, rules)}"
    )
    scored = _run(rfm.scores_sql("customer_values", rules), orders, (values,))
    return scored[RFM_COLUMNS].sort_values("customer_id", ignore_index=True)


def ltv_frame(orders: pd.DataFrame, as_of: date, rules: ltv.LtvRules | None = None):
    """(LTV per customer, Fit) of `orders`."""
    summary = _run(ltv.summary_sql("orders", as_of, DUCKDB, rules), orders)
    scores, fit = ltv.predict(summary.sort_values("customer_id", ignore_index=True), as_of, rules)
    return scores[LTV_COLUMNS], fit


def _report_read(read: OrderFile, path: Path) -> None:
    console.print(
        f"{path.name}: {read.rows} row(s) read, {len(read.orders)} paid order(s) of "
        f"{read.orders['customer_id'].nunique()} customer(s)"
    )
    for reason, count in read.skipped.most_common():
        lines = ", ".join(map(str, read.lines[reason]))
        console.print(f"  skipped {count}: {reason} (line {lines}{', ...' if count > 3 else ''})")


def rfm_file(path: Path, mapping: Path, as_of: date, out: Path) -> pd.DataFrame:
    read = read_orders(path, mapping)
    _report_read(read, path)
    scored = rfm_frame(read.orders, as_of)
    write_table(scored, out)
    counts = scored["rfm_segment"].value_counts()
    print_rows(["segment", "customers"], list(counts.items()), title=f"RFM as of {as_of} -> {out}")
    return scored


def ltv_file(path: Path, mapping: Path, as_of: date, out: Path, freq: str | None) -> pd.DataFrame:
    read = read_orders(path, mapping)
    _report_read(read, path)
    rules = ltv.load_rules()
    if freq:
        rules = rules.model_copy(update={"freq": freq})
    console.print(f"fitting BG/NBD and Gamma-Gamma (period {rules.freq}) ...")
    scores, fit = ltv_frame(read.orders, as_of, rules)
    write_table(scores, out)
    if fit.skipped:
        console.print(f"[yellow]{fit.skipped}[/yellow]")
    params = [("BG/NBD", k, f"{v:.6g}") for k, v in fit.bgnbd.items()]
    params += [("Gamma-Gamma", k, f"{v:.6g}") for k, v in fit.gamma_gamma.items()]
    if params:
        print_rows(["model", "parameter", "value"], params, title="fitted parameters (ML)")
    console.print(
        f"{fit.customers} customer(s), {fit.repeat_customers} with repeat purchases, "
        f"{int(scores['churn_risk'].sum())} churn risk(s) -> {out}"
    )
    return scores
