"""Rerunning an older day (a backfill, a fix) never rolls silver or gold back to that day.

Two days of hand-written Tmall bronze: day 2 re-syncs two day-1 orders (one refunded, one
completed) and brings two new customers. After day 2, rerunning day 1 (its bronze re-ingested,
silver, marts) must leave silver.orders, silver.customers and gold.customer_360 as day 2 left
them. Before the fix the rerun put the re-synced orders back to their day-1 status and dropped
gold to the day-1 customers (dbt's as_of_date was the rerun's date).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from jobs import daily
from jobs.common.lake import table_path
from jobs.ingest.bronze import bronze_schema
from jobs.ingest.spec import get_spec

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY1, DAY2 = date(2026, 1, 5), date(2026, 1, 6)
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Re-ingesting a day stamps its rows anew: when they were ingested is not part of the state.
INGESTION_TIME = {"updated_at"}

# order_id, buyer_nick, receiver_mobile, status, payment, refund_fee, created day
DAY1_ORDERS = [
    ("T1", "uidA", "13900000001", "WAIT_SELLER_SEND_GOODS", "100.00", "0.00", DAY1),
    ("T2", "uidB", "13900000002", "WAIT_BUYER_CONFIRM_GOODS", "50.00", "0.00", DAY1),
    ("T3", "uidC", "139****0003", "TRADE_FINISHED", "30.00", "0.00", DAY1),
    ("T4", "uidA", "13900000001", "TRADE_FINISHED", "20.00", "0.00", DAY1),
]
DAY2_ORDERS = [
    ("T1", "uidA", "13900000001", "TRADE_CLOSED", "100.00", "100.00", DAY1),  # refunded
    ("T2", "uidB", "13900000002", "TRADE_FINISHED", "50.00", "0.00", DAY1),  # completed
    ("T5", "uidD", "13900000004", "WAIT_SELLER_SEND_GOODS", "80.00", "0.00", DAY2),
    ("T6", "uidE", "139****0005", "TRADE_FINISHED", "60.00", "0.00", DAY2),
]


def _write_bronze(settings, day: date, orders: list[tuple]) -> None:
    """One day of bronze.tmall_orders, as ingestion writes it (the day replaced)."""
    spec = get_spec("tmall.orders")
    rows = [
        {
            "order_id": oid,
            "buyer_nick": uid,
            "receiver_mobile": phone,
            "order_status": status,
            "payment": Decimal(payment),
            "refund_fee": Decimal(refund),
            "item_quantity": 1,
            "created": datetime(created.year, created.month, created.day, 10, tzinfo=SHANGHAI),
            "_source": "tmall",
            "_file": f"tmall/orders/dt={day}/orders.csv",
            "_line": line,
            "_batch_id": f"batch-{day}",
            "_schema_version": spec.schema_version,
            "_ingested_at": datetime.now(UTC),
            "_logical_date": day,
        }
        for line, (oid, uid, phone, status, payment, refund, created) in enumerate(orders, 2)
    ]
    write_deltalake(
        table_path("bronze", spec.bronze_table, settings),
        pa.Table.from_pylist(rows, schema=bronze_schema(spec)),
        mode="overwrite",
        predicate=f"_logical_date = '{day}'",
        partition_by=["_logical_date"],
    )


def _rows(settings, layer: str, table: str, key: tuple[str, ...]) -> list[dict]:
    rows = DeltaTable(table_path(layer, table, settings)).to_pyarrow_table().to_pylist()
    rows = [{k: v for k, v in r.items() if k not in INGESTION_TIME} for r in rows]
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in key))


def _state(settings) -> dict[str, list[dict]]:
    return {
        "silver.orders": _rows(settings, "silver", "orders", ("source", "order_id")),
        "silver.customers": _rows(settings, "silver", "customers", ("one_id",)),
        "gold.customer_360": _rows(settings, "gold", "customer_360", ("one_id",)),
    }


def _run(day: date, orders: list[tuple], settings) -> dict:
    _write_bronze(settings, day, orders)
    daily.build_silver(day, settings)
    daily.resolve_identity(day, settings)
    daily.score_customers(day, settings)
    return daily.publish_marts(day, settings)


def test_rerunning_an_older_day_keeps_the_latest_state(spark, lake):
    _write_bronze(lake, DAY1, DAY1_ORDERS)
    daily.build_silver(DAY1, lake)  # (day 1's marts: one dbt build less, same silver)
    daily.resolve_identity(DAY1, lake)
    assert len(_rows(lake, "silver", "customers", ("one_id",))) == 3
    assert _run(DAY2, DAY2_ORDERS, lake)["as_of"] == str(DAY2)
    latest = _state(lake)

    status = {r["order_id"]: r["status"] for r in latest["silver.orders"]}
    assert status == {
        "T1": "refunded",
        "T2": "completed",
        "T3": "completed",
        "T4": "completed",
        "T5": "paid",
        "T6": "completed",
    }
    assert len(latest["silver.customers"]) == len(latest["gold.customer_360"]) == 5
    assert sorted(r["orders_count"] for r in latest["gold.customer_360"]) == [1, 1, 1, 1, 2]
    assert {r["days_since_last_order"] for r in latest["gold.customer_360"]} == {0, 1}

    # The rerun of day 1: its files ingested again, silver and marts rebuilt.
    rerun = _run(DAY1, DAY1_ORDERS, lake)
    again = _state(lake)
    for table, rows in latest.items():
        assert again[table] == rows, table
    assert rerun["as_of"] == str(DAY2)  # the rerun published the latest state
