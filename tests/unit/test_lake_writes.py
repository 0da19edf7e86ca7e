"""The idempotent Delta write helpers every job uses: reruns replace, never duplicate."""

from datetime import date

import pytest

from jobs.common import lake as lake_io

SCHEMA = "id long, source string, v string, day date"
D1, D2 = date(2026, 11, 21), date(2026, 11, 22)


def _read(spark, path):
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())


def test_replace_partition_replaces_only_that_day(spark, lake):
    path = lake_io.table_path("bronze", "t", lake)
    day1 = spark.createDataFrame([(1, "a", "x", D1), (2, "a", "y", D1)], SCHEMA)
    day2 = spark.createDataFrame([(3, "a", "z", D2)], SCHEMA)
    lake_io.replace_partition(day1, path, date_column="day", logical_date=D1)
    lake_io.replace_partition(day2, path, date_column="day", logical_date=D2)
    rerun = spark.createDataFrame([(1, "a", "x2", D1)], SCHEMA)
    lake_io.replace_partition(rerun, path, date_column="day", logical_date=D1)
    lake_io.replace_partition(rerun, path, date_column="day", logical_date=D1)
    assert _read(spark, path) == [(1, "a", "x2", D1), (3, "a", "z", D2)]


def test_replace_partition_refuses_rows_of_another_day(spark, lake):
    path = lake_io.table_path("bronze", "t", lake)
    wrong = spark.createDataFrame([(1, "a", "x", D2)], SCHEMA)
    lake_io.replace_partition(
        spark.createDataFrame([(9, "a", "x", D1)], SCHEMA), path, date_column="day", logical_date=D1
    )
    with pytest.raises(Exception, match=r"(?i)replaceWhere|DELTA_REPLACE_WHERE"):
        lake_io.replace_partition(wrong, path, date_column="day", logical_date=D1)


def test_extra_condition_scopes_a_shared_table(spark, lake):
    path = lake_io.table_path("quarantine", "records", lake)
    a = spark.createDataFrame([(1, "a", "x", D1)], SCHEMA)
    b = spark.createDataFrame([(2, "b", "y", D1)], SCHEMA)
    lake_io.replace_partition(
        a, path, date_column="day", logical_date=D1, extra_condition="source = 'a'"
    )
    lake_io.replace_partition(
        b, path, date_column="day", logical_date=D1, extra_condition="source = 'b'"
    )
    lake_io.replace_partition(
        spark.createDataFrame([], SCHEMA),
        path,
        date_column="day",
        logical_date=D1,
        extra_condition="source = 'a'",
    )
    assert _read(spark, path) == [(2, "b", "y", D1)]


def test_merge_upsert_inserts_then_updates(spark, lake):
    path = lake_io.table_path("silver", "t", lake)
    lake_io.merge_upsert(
        spark.createDataFrame([(1, "a", "x", D1)], SCHEMA), path, keys=["source", "id"]
    )
    lake_io.merge_upsert(
        spark.createDataFrame([(1, "a", "x2", D2), (1, "b", "new", D2)], SCHEMA),
        path,
        keys=["source", "id"],
    )
    assert _read(spark, path) == [(1, "a", "x2", D2), (1, "b", "new", D2)]


def test_register_tables_follows_the_lake(spark, lake, tmp_path, monkeypatch):
    path = lake_io.table_path("silver", "reg", lake)
    lake_io.overwrite(spark.createDataFrame([(1, "a", "x", D1)], SCHEMA), path)
    assert "silver.reg" in lake_io.register_tables(spark, lake)
    assert spark.table("silver.reg").count() == 1

    other = lake.model_copy(update={"lake_root": str(tmp_path / "other")})
    lake_io.overwrite(
        spark.createDataFrame([(1, "a", "x", D1), (2, "a", "y", D1)], SCHEMA),
        lake_io.table_path("silver", "reg", other),
    )
    lake_io.register_tables(spark, other)
    assert spark.table("silver.reg").count() == 2


def test_unknown_layer_is_refused(lake):
    with pytest.raises(ValueError, match="unknown layer"):
        lake_io.table_path("platinum", "t", lake)
