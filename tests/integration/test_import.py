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


CUSTOMER_HEADER = "会员号,姓名,性别,生日,手机,邮箱,身份证,同意营销,同意时间,标签"
CUSTOMER_MAPPING = {
    "columns": {
        "会员号": "customer_id",
        "姓名": "name",
        "性别": "gender",
        "生日": "birthday",
        "手机": "phone",
        "邮箱": "email",
        "身份证": "id_card",
        "同意营销": "marketing_consent",
        "同意时间": "consent_at",
        "标签": "tags",
    }
}


def test_import_customers_nulls_bad_optional_values_and_silver_reads_them(spark, lake, tmp_path):
    """A member list under schema 1-1-0, landing in a bronze table an older (1-0-0) import
    created: bad optional values land as null, counted by reason in ops.field_issues; only a
    bad customer_id is quarantined; silver.imported_customers reads the table."""
    import dataclasses

    from jobs.silver import imported

    older = tmp_path / "old.csv"
    older.write_text("customer_id,name,birthday\nM0,老会员,1980-01-01\n", encoding="utf-8")
    old_spec = dataclasses.replace(
        importer.build_spec(
            {"columns": {"customer_id": "customer_id", "name": "name", "birthday": "birthday"}},
            source="brand_crm",
            dataset="customers",
            fmt="csv",
        ),
        schema="import/customer/1-0-0",
    )
    assert importer.run_import(older, old_spec, DAY, settings=lake).rows_bronze == 1

    path = tmp_path / "members.csv"
    lines = [
        CUSTOMER_HEADER,
        "M1,张伟,男,19910228,13957112233,zhangwei@163.com,11010519491231002X,同意,"
        "2026-11-01 10:00:00,高价值，复购",
        "M2,李娜,女,1991-02-30,12345,not-an-email,110105194912310021,也许,,",
        ",无编号,女,,,,,,,",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = importer.build_spec(CUSTOMER_MAPPING, source="brand_crm", dataset="customers", fmt="csv")
    result = importer.run_import(path, spec, DAY, settings=lake)
    assert result.reconciled
    assert (result.rows_read, result.rows_bronze, result.rows_quarantined) == (3, 2, 1)
    assert result.rows_with_issues == 1

    bronze_path = lake_io.table_path("bronze", "import_brand_crm_customers", lake)
    bronze = spark.read.format("delta").load(bronze_path)
    rows = {r.customer_id: r for r in bronze.collect()}
    assert set(rows) == {"M0", "M1", "M2"}
    assert rows["M1"].phone == "13957112233"  # kept as given
    assert rows["M1"].gender == "M"
    assert rows["M1"].marketing_consent == "yes"
    assert rows["M0"]._schema_version == "1-0-0"
    assert rows["M1"]._schema_version == "1-1-0"
    bad = rows["M2"]
    assert (bad.phone, bad.email, bad.id_card, bad.birthday, bad.marketing_consent) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert bad.name == "李娜"  # the member is kept

    issues = (
        spark.read.format("delta")
        .load(lake_io.table_path("ops", "field_issues", lake))
        .where(F.col("dataset") == "customers")
    )
    counted = {r.field: r.rows for r in issues.collect()}
    assert counted == dict.fromkeys(
        ["birthday", "phone", "email", "id_card", "marketing_consent"], 1
    )
    assert not any("12345" in r.reason for r in issues.collect())
    [q] = (
        spark.read.format("delta")
        .load(lake_io.table_path("quarantine", "records", lake))
        .where(F.col("dataset") == "customers")
        .collect()
    )
    assert q.field == "customer_id"

    day = bronze.where(F.col("_logical_date") == F.lit(DAY))
    silver = imported.imported_customers({"import_brand_crm_customers": day}, b"k" * 32)
    out = {r.customer_id: r for r in silver.collect()}
    assert set(out) == {"M0", "M1", "M2"}
    assert out["M1"].marketing_consent is True
    assert out["M1"].tags == ["高价值", "复购"]
    assert len(out["M1"].phone_token) == 64
    assert out["M2"].phone_token is None
    assert out["M0"].birth_year == 1980
    assert {r.source for r in out.values()} == {"brand_crm"}
