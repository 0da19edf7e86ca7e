"""RFM (jobs/marts/rfm.py): fair scores, the segment and class rules, the window, the YAML.

The SQL runs in DuckDB here (as `cdp rfm` runs it) and is held to tests/unit/marts_reference.py,
a loop over customers written from the definition; test_marts_scores.py holds Spark to it.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from jobs.common.errors import CdpError
from jobs.marts import rfm
from jobs.marts.files import rfm_frame
from tests.unit.marts_reference import rfm_reference

AS_OF = date(2026, 11, 30)


def _frame(orders: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(orders, columns=["customer_id", "order_id", "order_date", "amount"])


def random_orders(seed: int, customers: int = 300) -> list[tuple]:
    """Paid orders with many ties: most customers buy once, amounts from a short price list."""
    rng = random.Random(seed)
    orders = []
    for c in range(customers):
        for _ in range(rng.choice([1, 1, 1, 1, 2, 2, 3, 5])):
            day = AS_OF - timedelta(days=rng.choice([0, 1, 3, 7, 30, 90, 200, 364, 365, 500]))
            amount = rng.choice([9.9, 59.0, 99.0, 99.0, 199.0, 1288.5])
            orders.append((f"c{c:03d}", f"o{len(orders)}", day, amount))
    return orders


def _as_dicts(frame: pd.DataFrame) -> dict[str, dict]:
    rows = frame.to_dict("records")
    return {
        r["customer_id"]: {
            k: (round(float(v), 2) if k == "monetary" else v)
            for k, v in r.items()
            if k not in ("customer_id", "rfm_score")
        }
        for r in rows
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scores_segments_and_classes_follow_the_definition(seed):
    orders = random_orders(seed)
    got = _as_dicts(rfm_frame(_frame(orders), AS_OF))
    assert got == rfm_reference(orders, AS_OF, rfm.load_rules())


def test_equal_values_always_get_equal_scores_whatever_the_row_order():
    # 7 customers with one order and 3 with two: a row-number quintile would split the seven
    orders = [(f"one{i}", f"a{i}", AS_OF, 10.0) for i in range(7)]
    orders += [(f"two{i}", f"b{i}{j}", AS_OF, 5.0) for i in range(3) for j in range(2)]
    first = rfm_frame(_frame(orders), AS_OF)
    shuffled = orders[:]
    random.Random(4).shuffle(shuffled)
    again = rfm_frame(_frame(shuffled), AS_OF)
    pd.testing.assert_frame_equal(first, again)
    f = dict(zip(first["customer_id"], first["f_score"], strict=True))
    assert {f[f"one{i}"] for i in range(7)} == {1}  # no customer strictly worse
    assert {f[f"two{i}"] for i in range(3)} == {1 + (5 * 7) // 10}  # 7 of 10 are worse: 4
    assert set(first["r_score"]) == {1}  # everyone bought today
    assert set(first["m_score"]) == {1}  # everyone spent 10


def test_only_the_window_counts_and_customers_outside_it_get_no_row():
    orders = [
        ("old", "o1", AS_OF - timedelta(days=365), 50.0),  # the day before the window
        ("edge", "o2", AS_OF - timedelta(days=364), 50.0),  # the window's first day
        ("edge", "o3", AS_OF - timedelta(days=400), 999.0),
        ("late", "o4", AS_OF + timedelta(days=1), 50.0),  # after the as-of date
    ]
    got = rfm_frame(_frame(orders), AS_OF).set_index("customer_id")
    assert list(got.index) == ["edge"]
    assert (got.loc["edge", "frequency"], float(got.loc["edge", "monetary"])) == (1, 50.0)
    assert got.loc["edge", "recency_days"] == 364


def test_frequency_can_count_days_instead_of_orders():
    orders = [("a", "o1", AS_OF, 10.0), ("a", "o2", AS_OF, 10.0), ("b", "o3", AS_OF, 10.0)]
    rules = rfm.load_rules().model_copy(update={"frequency": "days"})
    got = rfm_frame(_frame(orders), AS_OF, rules).set_index("customer_id")
    assert got["frequency"].to_dict() == {"a": 1, "b": 1}


def test_the_eight_classes_compare_raw_values_with_the_mean():
    # a: recent, 3 orders, 300; b: old, 1 order, 10; c: recent, 1 order, 300 (means: recency 4,
    # frequency 5/3, monetary 610/3)
    orders = [("a", f"a{i}", AS_OF, 100.0) for i in range(3)]
    orders += [("b", "b1", AS_OF - timedelta(days=12), 10.0), ("c", "c1", AS_OF, 300.0)]
    got = rfm_frame(_frame(orders), AS_OF).set_index("customer_id")["rfm_class"].to_dict()
    assert got == {"a": "重要价值客户", "b": "一般挽留客户", "c": "重要发展客户"}


def _rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rfm.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _yaml(segments: str) -> str:
    names = "\n".join(
        f"    {k}: x{k}" for k in ("HHH", "HHL", "HLH", "HLL", "LHH", "LHL", "LLH", "LLL")
    )
    return f"bins: 5\nsegments:\n{segments}\nclasses:\n  names:\n{names}\n"


def test_the_default_segments_give_every_score_exactly_one_first_match():
    rules = rfm.load_rules()
    assert len(rules.segments) == 11
    names = {
        next(s.name for s in rules.segments if s.holds({"r": r, "f": f, "m": m, "fm": fm}))
        for r in range(1, 6)
        for f in range(1, 6)
        for m in range(1, 6)
        for fm in [rfm.fm_score(f, m)]
    }
    assert names == {s.name for s in rules.segments}  # and none is dead


def test_segments_leaving_a_score_out_are_refused_naming_it(tmp_path):
    path = _rules_file(tmp_path, _yaml("  - {name: Top, r: [4, 5]}\n  - {name: Rest, r: [1, 2]}"))
    with pytest.raises(CdpError, match=r"no segment takes r=3 f=1 m=1"):
        rfm.load_rules(path)


def test_a_range_outside_the_scores_and_a_missing_class_are_refused(tmp_path):
    path = _rules_file(tmp_path, _yaml("  - {name: All, r: [0, 5]}"))
    with pytest.raises(CdpError, match=r"segment 'All': r range \[0, 5\] must lie within 1..5"):
        rfm.load_rules(path)
    text = _yaml("  - {name: All}").replace("    LLL: xLLL\n", "")
    with pytest.raises(CdpError, match=r"missing \['LLL'\]"):
        rfm.load_rules(_rules_file(tmp_path, text))
