"""Lifecycle stages and dynamic tags (jobs/marts/tags.py): the rules file and its evaluation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from jobs.common.errors import CdpError
from jobs.marts import tags

pytestmark = pytest.mark.slow

AS_OF = date(2026, 11, 30)
SCHEMA = (
    "one_id string, orders bigint, days_since_last_order int, last_gap_days int, "
    "m_score int, top_category string, top_category_share double, churn_risk boolean"
)


def _rules(tmp_path: Path, text: str) -> tags.TagRules:
    path = tmp_path / "tags.yaml"
    path.write_text(text, encoding="utf-8")
    return tags.load_rules(path)


RULES = """\
lifecycle:
  - {stage: prospect, when: "coalesce(orders, 0) = 0"}
  - {stage: win_back, when: "days_since_last_order <= 30 and last_gap_days > 180"}
  - {stage: active, when: "days_since_last_order <= 90"}
  - {stage: lost, when: "true"}
tags:
  - {name: high_value, when: "m_score >= 4"}
  - {name: "prefers_{top_category}", when: "top_category_share >= 0.5"}
  - {name: churn_risk, when: "churn_risk"}
"""


def test_stages_take_the_first_rule_that_holds_and_tags_every_one(spark, tmp_path):
    rows = [
        ("p", 0, None, None, None, None, None, False),
        ("w", 3, 10, 200, 5, "Serum", 0.8, False),  # back after 200 days: win_back, not active
        ("a", 2, 40, 20, 2, "mask", 0.4, True),
        ("l", 1, 400, None, 1, None, None, True),
    ]
    inputs = spark.createDataFrame(rows, SCHEMA)
    got = tags.memberships(inputs, _rules(tmp_path, RULES), AS_OF).collect()
    assert {r["as_of"] for r in got} == {AS_OF}
    stages = {r["one_id"]: r["tag"] for r in got if r["kind"] == "stage"}
    assert stages == {"p": "prospect", "w": "win_back", "a": "active", "l": "lost"}
    held = {(r["one_id"], r["tag"]) for r in got if r["kind"] == "tag"}
    # a {column} tag takes the value, lower-cased; a share under 0.5 or a null makes none
    assert held == {
        ("w", "high_value"),
        ("w", "prefers_serum"),
        ("a", "churn_risk"),
        ("l", "churn_risk"),
    }


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            '{name: big, when: "spend >= 100"}',
            r"tags\.yaml line 7: tag 'big': does not compile: .*spend",
        ),
        ('{name: big, when: "m_score +"}', r"tags\.yaml line 7: tag 'big': does not compile"),
        (
            '{name: big, when: "m_score + 1"}',
            r"line 7: tag 'big': `when: m_score \+ 1` gives integer values, not a condition",
        ),
        ('{name: "by_{nothing}", when: "true"}', r"line 7: tag 'by_\{nothing\}': does not compile"),
    ],
)
def test_a_rule_that_does_not_compile_is_named_with_its_line(spark, tmp_path, rule, message):
    inputs = spark.createDataFrame([], SCHEMA)
    rules = _rules(
        tmp_path, RULES.replace("  - {name: high_value", f"  - {rule}\n  - {{name: hv", 1)
    )
    with pytest.raises(CdpError, match=message):
        tags.memberships(inputs, rules, AS_OF)


def test_the_rules_file_is_checked_on_load(tmp_path):
    with pytest.raises(CdpError, match="tags named twice: churn_risk"):
        _rules(tmp_path, RULES + '  - {name: churn_risk, when: "true"}\n')
    with pytest.raises(CdpError, match=r"line 7: tag name 'High Value'"):
        _rules(tmp_path, RULES.replace("name: high_value", "name: High Value"))
    with pytest.raises(CdpError, match=r"line 2: a stage is \{stage: ..., when: ...\}"):
        _rules(tmp_path, RULES.replace("{stage: prospect,", "{stage: prospect, note: x,"))


def test_the_shipped_rules_compile_against_the_real_inputs(spark):
    from jobs.marts.features import FEATURE_COLUMNS

    columns = ", ".join(f"`{c}` {t}" for c, t in FEATURE_COLUMNS)
    features = spark.createDataFrame([], f"one_id string, as_of date, {columns}")
    rfm = spark.createDataFrame(
        [],
        "one_id string, r_score int, f_score int, m_score int, rfm_segment string, "
        "rfm_class string",
    )
    ltv = spark.createDataFrame(
        [],
        "one_id string, p_alive double, expected_purchases_90d double, clv_12m double, "
        "churn_risk boolean",
    )
    inputs = tags.tag_inputs(features, rfm, ltv, AS_OF)
    tags.check(tags.load_rules(), inputs)  # raises if a shipped rule does not compile
