"""RFM computed straight from its definition, in plain Python, to hold the SQL to.

Not imported by the platform: the tests compare jobs/marts/rfm.py's SQL (DuckDB and Spark) with
this loop over customers.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import date, timedelta

from jobs.marts.rfm import RfmRules, fm_score


def rfm_reference(orders: list[tuple], as_of: date, rules: RfmRules) -> dict[str, dict]:
    """orders: (customer_id, order_id, order_date, amount) of paid orders."""
    start = as_of - timedelta(days=rules.window_days - 1) if rules.window_days else date.min
    by_customer: dict[str, list[tuple]] = defaultdict(list)
    for customer, order_id, day, amount in orders:
        if start <= day <= as_of:
            by_customer[customer].append((order_id, day, amount))
    values = {}
    for customer, rows in by_customer.items():
        counted = {r[0] for r in rows} if rules.frequency == "orders" else {r[1] for r in rows}
        values[customer] = {
            "recency_days": (as_of - max(r[1] for r in rows)).days,
            "frequency": len(counted),
            "monetary": round(sum(float(r[2]) for r in rows), 2),
        }
    n = len(values)

    def score(customer: str, column: str, lower_is_better: bool) -> int:
        mine = values[customer][column]
        worse = sum(
            1
            for v in values.values()
            if (v[column] > mine if lower_is_better else v[column] < mine)
        )
        return 1 + math.floor(rules.bins * worse / n)

    def threshold(column: str, how) -> float:
        column_values = [v[column] for v in values.values()]
        if how == "mean":
            return sum(column_values) / n
        if how == "median":
            return statistics.median(column_values)
        return float(how)

    c = rules.classes
    limits = {
        "recency_days": threshold("recency_days", c.recency),
        "frequency": threshold("frequency", c.frequency),
        "monetary": threshold("monetary", c.monetary),
    }
    out = {}
    for customer, v in values.items():
        r = score(customer, "recency_days", True)
        f = score(customer, "frequency", False)
        m = score(customer, "monetary", False)
        scores = {"r": r, "f": f, "m": m, "fm": fm_score(f, m)}
        key = (
            ("H" if v["recency_days"] <= limits["recency_days"] else "L")
            + ("H" if v["frequency"] >= limits["frequency"] else "L")
            + ("H" if v["monetary"] >= limits["monetary"] else "L")
        )
        out[customer] = v | {
            "r_score": r,
            "f_score": f,
            "m_score": m,
            "rfm_segment": next(s.name for s in rules.segments if s.holds(scores)),
            "rfm_class": c.names[key],
        }
    return out
