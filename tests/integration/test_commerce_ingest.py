"""One day of each commerce dataset into bronze on real Spark and Delta: every line ends in
bronze or quarantine, with the reason naming the file, line and field."""

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.common import lake as lake_io
from jobs.ingest.bronze import ingest
from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.spec import get_spec
from jobs.silver.orders import to_silver
from jobs.simulator import simulate

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY = date(2026, 11, 22)
# The brand's own systems and the datasets that hang off the marketplaces' orders.
COMMERCE = (
    "miniprogram.orders", "pos.orders", "erp.orders", "tmall.order_items", "tmall.refunds",
    "tmall.reviews", "crm.points", "crm.tier_changes", "crm.coupons", "crm.members",
    "pos.members", "crm.consents", "sms.replies",
)  # fmt: skip
THIN = {"sms.replies", "crm.tier_changes"}  # a handful of lines a day: maybe none spoiled


def test_commerce_datasets_reconcile_into_bronze_and_quarantine(spark, lake):
    landing = Path(lake.landing_root)
    # Five times the default order rate: every order dataset gets enough lines to spoil some.
    simulate(
        landing, customers=2000, days=1, seed=9, end=DAY, bad_rate=0.1, orders_per_customer_day=0.25
    )
    quarantine_path = lake_io.table_path("quarantine", "records", lake)
    for key in COMMERCE:
        spec = get_spec(key)
        files = sorted(
            (landing / spec.source / spec.dataset / f"dt={DAY}").glob(f"*.{spec.format}")
        )
        items = [i for f in files for i in parse_file(f, spec)]
        good = sum(isinstance(i, Record) for i in items)
        bad = [i for i in items if isinstance(i, Rejected)]

        result = ingest(key, DAY, settings=lake)
        assert result.reconciled, key
        assert (result.rows_read, result.rows_bronze, result.rows_quarantined) == (
            len(items),
            good,
            len(bad),
        ), key
        bronze = spark.read.format("delta").load(
            lake_io.table_path("bronze", spec.bronze_table, lake)
        )
        assert bronze.count() == good
        assert (
            bronze.where(F.col("_file").startswith(f"{spec.source}/{spec.dataset}/")).count()
            == good
        )
        quarantined = (
            spark.read.format("delta")
            .load(quarantine_path)
            .where((F.col("source") == spec.source) & (F.col("dataset") == spec.dataset))
            .collect()
        )
        assert len(quarantined) == len(bad), key
        assert bad or key in THIN, key
        for row in quarantined:
            assert f"{files[0].name} line {row.line}" in row.reason, row.reason
            assert row.field is None or row.field in row.reason
            assert row.raw


def test_new_order_sources_reach_silver_without_counting_erp_twice(spark, lake):
    landing = Path(lake.landing_root)
    simulate(landing, customers=1500, days=1, seed=4, end=DAY, bad_rate=0.0)
    frames = {}
    for key in ("miniprogram.orders", "pos.orders", "erp.orders"):
        spec = get_spec(key)
        assert ingest(key, DAY, settings=lake).rows_bronze > 0
        bronze = spark.read.format("delta").load(
            lake_io.table_path("bronze", spec.bronze_table, lake)
        )
        frames[key] = (bronze, to_silver(bronze, spec.source, spec.silver, b"k" * 32))
    bronze, silver = frames["erp.orders"]
    direct = get_spec("erp.orders").silver.linked_order.ingested_directly
    erp_only = bronze.where(~F.col("platform").isin(*direct))
    assert bronze.count() > erp_only.count() > 0
    assert silver.count() == erp_only.count()
    assert silver.where(F.col("linked_order_ref").isNull()).count() == 0
    bronze, silver = frames["pos.orders"]
    # A walk-in's receipt is blank, or carries the counter phone the clerk typed (one phone on
    # many strangers' receipts: silver keys them by it; identity resolution must not merge them).
    walk_ins = bronze.where(F.col("member_card").isNull())
    blank = walk_ins.where(F.col("member_mobile").isNull()).count()
    assert silver.where(F.col("key_type") == "unidentified").count() == blank > 0
    assert walk_ins.count() > blank
    _bronze, silver = frames["miniprogram.orders"]
    assert {r.key_type for r in silver.select("key_type").distinct().collect()} <= {
        "phone",
        "unionid",
        "openid",
    }
    assert silver.where(F.col("customer_key").isNull()).count() == 0
