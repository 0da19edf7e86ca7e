"""`cdp import` into real bronze and quarantine Delta tables: everything read is accounted for."""

from datetime import date
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from jobs.common import lake as lake_io
from jobs.ingest import importer
from tests.unit.test_importer import MAPPING, ROWS, write_export

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY = date(2026, 11, 22)


def test_import_lands_good_rows_quarantines_bad_ones_and_reimport_adds_nothing(
    spark, lake, tmp_path
):
    path = write_export(tmp_path, "xlsx")
    spec = importer.build_spec(MAPPING, source="brand_erp", dataset="orders", fmt="xlsx")
    good = {r[0] for r, reason in ROWS if reason is None}
    bad_lines = {i + 2 for i, (_, reason) in enumerate(ROWS) if reason}  # row 1 is the header

    first = importer.run_import(path, spec, DAY, settings=lake)
    assert first.reconciled
    assert first.rows_read == len(ROWS)
    assert first.rows_read == first.rows_bronze + first.rows_quarantined
    assert first.rows_bronze == len(good)

    bronze_path = lake_io.table_path("bronze", "import_brand_erp_orders", lake)
    bronze = spark.read.format("delta").load(bronze_path)
    rows = {r.order_id: r for r in bronze.collect()}
    assert set(rows) == good
    assert rows["E7"].payment == Decimal("1288.50")
    assert rows["E1"].status == "completed"
    assert rows["E1"]._file == f"import/brand_erp/orders/dt={DAY}/{path.name}"
    assert rows["E4"].status is None  # a bad optional value lands as null, its text kept
    assert "丢失" in rows["E4"]._issues
    assert dict(bronze.dtypes)["created"] == "timestamp"

    quarantine = (
        spark.read.format("delta")
        .load(lake_io.table_path("quarantine", "records", lake))
        .where((F.col("source") == "brand_erp") & (F.col("dataset") == "orders"))
    )
    assert {r.line for r in quarantine.collect()} == bad_lines
    assert all(
        r.reason.startswith(f"import/brand_erp/orders/dt={DAY}/{path.name} line ")
        for r in quarantine.collect()
    )

    again = importer.run_import(path, spec, DAY, settings=lake)
    assert (again.rows_bronze, again.rows_quarantined) == (
        first.rows_bronze,
        first.rows_quarantined,
    )
    assert spark.read.format("delta").load(bronze_path).count() == len(good)
    assert quarantine.count() == len(bad_lines)

    # Replay re-reads an import from the copy it kept, with the mapping it used: nothing
    # changed, so nothing is released, and nothing is duplicated.
    from jobs.ingest.replay import replay

    path.unlink()  # the brand's file may be gone: the copy under landing/_imports stays
    [result] = replay(settings=lake)
    assert (result.source_key, result.logical_date) == ("brand_erp.orders", DAY)
    assert (result.quarantined_before, result.released, result.bronze_after) == (
        len(bad_lines),
        0,
        len(good),
    )
    assert spark.read.format("delta").load(bronze_path).count() == len(good)
