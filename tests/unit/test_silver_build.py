"""The silver build's own rules (jobs/silver/build.py): table order, input globs, the small-day
reads through delta-rs and the Spark settings a small table is built with."""

from datetime import date

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from jobs.common import lake
from jobs.common.settings import get_settings
from jobs.common.spark import SMALL_DATA_CONF, small_data
from jobs.silver.build import (
    MAX_SQL_VALUES,
    _Run,
    all_tables,
    expand_inputs,
    in_dependency_order,
)
from jobs.silver.table import SilverTable

DAY = date(2026, 3, 12)


def _table(name: str, *depends_on: str) -> SilverTable:
    return SilverTable(name, build=lambda batch: None, keys=("id",), depends_on=depends_on)


def test_tables_come_after_the_tables_they_read():
    ordered = in_dependency_order([_table("c", "b"), _table("b", "a"), _table("a"), _table("x")])
    assert [t.name for t in ordered] == ["a", "b", "c", "x"]
    names = [t.name for t in all_tables()]
    for table in all_tables():
        for dep in table.depends_on:
            assert names.index(dep) < names.index(table.name), (dep, table.name)


def test_a_dependency_circle_is_refused_naming_it():
    with pytest.raises(ValueError, match="a -> b -> a"):
        in_dependency_order([_table("a", "b"), _table("b", "a")])


def test_input_globs_expand_to_the_tables_that_exist():
    existing = {"import_crm_customers", "import_shop_customers", "import_x_orders", "tmall_orders"}
    got = expand_inputs(("tmall_orders", "import_*_customers", "jd_orders"), existing)
    assert got == ["tmall_orders", "import_crm_customers", "import_shop_customers", "jd_orders"]


@pytest.fixture
def cards(tmp_path):
    path = str(tmp_path / "ledger")
    ids = [f"M{i:06d}" for i in range(10)]
    write_deltalake(path, pa.table({"member_card": ids, "points": list(range(10))}))
    return path


@pytest.mark.parametrize("extra", [0, MAX_SQL_VALUES * 3])
def test_local_reads_keep_the_rows_of_the_values_asked(spark, cards, extra):
    """A short list is a SQL `IN` pruned by DataFusion; a long one (thousands of member cards a
    day touches) is filtered in Arrow: the same rows either way."""
    run = _Run(spark, DAY, get_settings(), [], {})
    wanted = ["M000002", "M000007", *(f"X{i}" for i in range(extra))]
    rows = run.local_where(cards, "member_card", wanted).collect()
    assert sorted((r.member_card, r.points) for r in rows) == [("M000002", 2), ("M000007", 7)]


def test_read_arrow_keeps_the_tables_own_schema(cards):
    rows = lake.read_arrow(cards, lake.sql_in("member_card", ["M000001"]))
    assert rows.schema.field("member_card").type == pa.string()  # not DataFusion's string_view
    assert rows.to_pylist() == [{"member_card": "M000001", "points": 1}]


def test_a_small_table_is_built_with_its_settings_and_the_session_gets_its_own_back(spark):
    key = "spark.sql.shuffle.partitions"
    before = spark.conf.get(key)
    with small_data(spark, True):
        assert {k: spark.conf.get(k) for k in SMALL_DATA_CONF} == SMALL_DATA_CONF
    assert spark.conf.get(key) == before
    with pytest.raises(RuntimeError), small_data(spark, True):
        raise RuntimeError("a failing build")
    assert spark.conf.get(key) == before
    with small_data(spark, False):
        assert spark.conf.get(key) == before
