"""The idempotent Delta write helpers every job uses: reruns replace, never duplicate."""

from datetime import date

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from jobs.common import lake as lake_io

SCHEMA = "id long, source string, v string, day date"
D1, D2 = date(2026, 11, 21), date(2026, 11, 22)


def _read(spark, path):
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())


def _day_rows(rows: list[tuple]) -> pa.Table:
    """(id, source, v, day) rows as the Arrow tables ingestion writes."""
    names = ["id", "source", "v", "_logical_date"]
    types = [pa.int64(), pa.string(), pa.string(), pa.date32()]
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 4
    return pa.table({n: pa.array(c, t) for n, c, t in zip(names, columns, types, strict=True)})


def _arrow_read(path):
    return sorted(tuple(r.values()) for r in DeltaTable(path).to_pyarrow_table().to_pylist())


def _day(d: date) -> str:
    return f"_logical_date = '{d.isoformat()}'"


def test_replace_day_replaces_only_that_day(lake):
    path = lake_io.table_path("bronze", "t", lake)
    lake_io.replace_day_arrow(
        _day_rows([(1, "a", "x", D1), (2, "a", "y", D1)]), path, _day(D1), partition=True
    )
    lake_io.replace_day_arrow(_day_rows([(3, "a", "z", D2)]), path, _day(D2), partition=True)
    rerun = _day_rows([(1, "a", "x2", D1)])
    lake_io.replace_day_arrow(rerun, path, _day(D1), partition=True)
    lake_io.replace_day_arrow(rerun, path, _day(D1), partition=True)
    assert _arrow_read(path) == [(1, "a", "x2", D1), (3, "a", "z", D2)]


def test_replace_day_refuses_rows_of_another_day(lake):
    path = lake_io.table_path("bronze", "t", lake)
    lake_io.replace_day_arrow(_day_rows([(9, "a", "x", D1)]), path, _day(D1), partition=True)
    with pytest.raises(Exception, match=r"failed validation check"):
        lake_io.replace_day_arrow(_day_rows([(1, "a", "x", D2)]), path, _day(D1), partition=True)


def test_extra_condition_scopes_a_shared_table(lake):
    path = lake_io.table_path("quarantine", "records", lake)
    for source, row in [("a", (1, "a", "x", D1)), ("b", (2, "b", "y", D1))]:
        lake_io.replace_day_arrow(
            _day_rows([row]), path, f"{_day(D1)} AND source = '{source}'", partition=True
        )
    lake_io.replace_day_arrow(_day_rows([]), path, f"{_day(D1)} AND source = 'a'", partition=True)
    assert _arrow_read(path) == [(2, "b", "y", D1)]


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


def test_merge_upsert_never_rolls_a_key_back_to_an_older_version(spark, lake):
    path = lake_io.table_path("silver", "t", lake)
    keys = ["source", "id"]
    # a table written before the version column existed: it gets the column, any version wins
    lake_io.overwrite(
        spark.createDataFrame([(1, "a", "old")], "id long, source string, v string"), path
    )
    lake_io.merge_upsert(
        spark.createDataFrame([(1, "a", "day2", D2)], SCHEMA), path, keys=keys, version="day"
    )
    assert _read(spark, path) == [(1, "a", "day2", D2)]
    # rerun of day 1: an older state is ignored, a key only day 1 has is still inserted
    lake_io.merge_upsert(
        spark.createDataFrame([(1, "a", "day1", D1), (2, "a", "only1", D1)], SCHEMA),
        path,
        keys=keys,
        version="day",
    )
    assert _read(spark, path) == [(1, "a", "day2", D2), (2, "a", "only1", D1)]
    # a rerun of the same day still replaces its state
    lake_io.merge_upsert(
        spark.createDataFrame([(1, "a", "day2-fixed", D2)], SCHEMA), path, keys=keys, version="day"
    )
    assert _read(spark, path) == [(1, "a", "day2-fixed", D2), (2, "a", "only1", D1)]


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


def test_merge_arrow_keeps_the_rows_it_rewrites_when_a_column_turns_nullable(tmp_path):
    """A transform whose column became nullable (a new version of its rule) merging into a
    table that has the column NOT NULL: the untouched rows keep their values (delta-rs 1.6
    would write them null and refuse the merge), and a new null is refused naming the column."""
    from jobs.common.errors import CdpError

    path = str(tmp_path / "t")

    def rows(ids, late, day, *, nullable):
        schema = pa.schema(
            [
                pa.field("id", pa.int64(), nullable=False),
                pa.field("late", pa.int32(), nullable=nullable),
                pa.field("_logical_date", pa.date32(), nullable=False),
            ]
        )
        return pa.table({"id": ids, "late": late, "_logical_date": [day] * len(ids)}, schema)

    lake_io.merge_arrow(rows([1, 2, 3], [0, 1, 2], D1, nullable=False), path, keys=["id"])
    later = rows([1, 4], [5, 6], D2, nullable=True)
    lake_io.merge_arrow(later, path, keys=["id"], version="_logical_date")
    assert _arrow_read(path) == [(1, 5, D2), (2, 1, D1), (3, 2, D1), (4, 6, D2)]
    with pytest.raises(CdpError, match="column late is NOT NULL; 1 new row"):
        lake_io.merge_arrow(rows([5], [None], D2, nullable=True), path, keys=["id"])
