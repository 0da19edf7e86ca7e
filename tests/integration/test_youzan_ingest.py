"""Youzan API (personal fields as per-shop ciphertext) -> the connector decrypts -> landing JSON
lines -> bronze (plaintext) + quarantine on real Spark and Delta."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from jobs.common import lake as lake_io
from jobs.ingest.bronze import ingest
from jobs.ingest.youzan import YouzanClient, pull_orders
from tests.fixtures.youzan_server import YouzanServer, make_order

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY = date(2026, 11, 22)


def test_pulled_day_ingests_and_reconciles_with_one_quarantined(spark, lake):
    orders = [
        make_order(
            f"E20261122{i:015d}",
            f"{DAY} 1{i}:00:00",
            f"{100 + i}.00",
            buyer_phone=f"139{i:08d}",
            yz_open_id=f"yzOpenId{i:012d}",
            outer_user_id=f"oOpenid{i:021d}",
            receiver_name=f"王{i}",
            fenxiao=("160012345", f"F{i}") if i == 4 else None,  # a distributor shop's key
        )
        for i in range(5)
    ]
    broken = make_order("E20261122999999999999999", f"{DAY} 09:00:00", "一百元")
    next_day = make_order("E20261123000000000000001", "2026-11-23 08:00:00")
    with YouzanServer(
        [*orders, broken, next_day], page_size_cap=2, rate_limit_first=1, rate_limit_code=500100004
    ) as server:
        served = server.served(orders[3])["full_order_info"]["buyer_info"]["buyer_phone"]
        assert served.startswith("$")
        assert served.endswith("$1$")
        client = YouzanClient(
            server.base_url,
            server.client_id,
            server.client_secret,
            server.kdt_id,
            sleep=lambda _s: None,
        )
        path = pull_orders(DAY, settings=lake, client=client)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 6

    result = ingest("youzan.orders", DAY, settings=lake)
    assert result.reconciled
    assert (result.rows_read, result.rows_bronze, result.rows_quarantined) == (6, 5, 1)

    bronze = spark.read.format("delta").load(lake_io.table_path("bronze", "youzan_orders", lake))
    assert bronze.count() == 5
    row = bronze.where(F.col("order_id") == "E20261122000000000000003").first()
    assert row.payment == Decimal("103.00")
    assert row.buyer_phone == "13900000003"  # decrypted; a string: a leading zero survives
    assert (row.receiver_name, row.receiver_tel) == ("王3", "13900000003")
    assert row.outer_user_id == f"oOpenid{3:021d}"
    assert row.refund_state == 0
    fx = bronze.where(F.col("order_id") == "E20261122000000000000004").first()
    assert (fx.fx_kdt_id, fx.buyer_phone, fx.receiver_name) == ("160012345", "13900000004", "王4")
    for column in ("buyer_phone", "receiver_name", "receiver_tel", "receiver_address"):
        assert bronze.where(F.col(column).startswith("$")).count() == 0, column
    assert row._source == "youzan"
    assert row._file == f"youzan/orders/dt={DAY}/orders.jsonl"
    # Wall time in the session time zone (collect() would convert to the driver's local zone).
    [(created,)] = (
        bronze.where(F.col("order_id") == "E20261122000000000000003")
        .select(F.date_format("created", "yyyy-MM-dd HH:mm:ss"))
        .collect()
    )
    assert created == "2026-11-22 13:00:00"

    quarantine = spark.read.format("delta").load(lake_io.table_path("quarantine", "records", lake))
    [bad] = quarantine.where(F.col("source") == "youzan").collect()
    assert bad.field == "payment"
    assert "orders.jsonl line " in bad.reason
    assert "expected a decimal amount" in bad.reason
    assert "E20261122999999999999999" in bad.raw
