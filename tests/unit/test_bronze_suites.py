"""Every bronze dataset has a suite the gate can run: the data of the suites, checked."""

from __future__ import annotations

import json
import re

import pytest

from jobs.ingest.spec import load_specs
from jobs.quality import gate

SPECS = {spec.bronze_table: spec for spec in load_specs().values()}


def _suite(table: str) -> dict:
    return gate.load_suite(f"bronze.{table}")


@pytest.mark.parametrize("table", sorted(SPECS))
def test_every_bronze_table_has_a_suite_with_volume_and_columns_it_knows(table):
    suite = _suite(table)
    spec = SPECS[table]
    fields = {c.field for c in spec.columns} | {
        "_extra", "_source", "_file", "_line", "_batch_id", "_schema_version", "_ingested_at",
        "_logical_date",
    }  # fmt: skip
    types = [e["type"] for e in suite["expectations"]]
    assert "expect_table_row_count_to_be_between" in types
    volume = suite["expectations"][types.index("expect_table_row_count_to_be_between")]
    assert volume["kwargs"]["min_value"] == {"$PARAMETER": "volume_min"}
    for exp in suite["expectations"]:
        kwargs = exp["kwargs"]
        for key in ("column", "column_A", "column_B"):
            if key in kwargs:
                assert kwargs[key] in fields, (table, exp["type"], kwargs[key])
        for column in kwargs.get("column_set", []):
            assert column in fields, (table, column)


@pytest.mark.parametrize("table", sorted(SPECS))
def test_dated_datasets_check_freshness(table):
    spec = SPECS[table]
    dated = [c.field for c in spec.columns if c.type == "datetime" or "unix" in c.field]
    dated += [c.field for c in spec.columns if c.field.endswith("_ms")]
    fresh = [
        e for e in _suite(table)["expectations"] if e["type"] == "expect_column_max_to_be_between"
    ]
    if not dated:  # e.g. order items: dated by their order
        assert fresh == []
        return
    assert fresh, f"bronze.{table} has dated records but no freshness expectation"
    assert fresh[0]["kwargs"]["column"] in dated
    assert fresh[0]["kwargs"]["min_value"]["$PARAMETER"].startswith("freshness_min")


def test_bronze_suites_name_python_types_for_the_pandas_engine():
    for table in SPECS:
        text = json.dumps(_suite(table))
        assert not re.search(r'"(String|Long|Decimal|Double|Timestamp\w*)Type"', text), table
