"""The real `cdp_daily` DAG through Airflow 3 (`airflow dags test`, SQLite) on a temporary lake.

Every expected count is derived from the simulated input files, not written down.
"""

import json
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs.common import duck
from jobs.common.airflow_env import dags_test
from jobs.common.errors import CdpError
from jobs.ingest.records import Record, parse_file
from jobs.ingest.simulate import simulate
from jobs.ingest.spec import get_spec
from jobs.segments.export import load_segments

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY = date(2026, 11, 22)
FAST_FAIL = {"CDP_AIRFLOW__RETRIES": "0"}


def _rows(lake, layer, table):
    return DeltaTable(f"{lake.lake_root}/{layer}/{table}").to_pyarrow_table().to_pylist()


def test_cdp_daily_runs_every_task_and_fills_every_table(lake):
    simulate(Path(lake.landing_root), customers=400, days=1, seed=11, end=DAY, bad_rate=0.05)
    spec = get_spec("tmall.orders")
    files = sorted((Path(lake.landing_root) / "tmall/orders" / f"dt={DAY}").glob("*.csv"))
    parsed = [i for f in files for i in parse_file(f, spec)]
    good = [i for i in parsed if isinstance(i, Record)]
    assert good
    assert len(good) < len(parsed)

    proc = dags_test("cdp_daily", DAY, lake, extra_env=FAST_FAIL, timeout=1200)
    output = proc.stdout + proc.stderr
    for task in ("ingest", "check_bronze", "build_silver", "publish_marts", "export_segments"):
        assert f"task_id={task}" in output or task in output

    bronze = _rows(lake, "bronze", "tmall_orders")
    quarantine = _rows(lake, "quarantine", "records")
    assert len(bronze) == len(good)
    assert len(quarantine) == len(parsed) - len(good)
    assert all(r["reason"] and r["raw"] is not None for r in quarantine)

    orders = _rows(lake, "silver", "orders")
    assert {o["order_id"] for o in orders} == {r.values["order_id"] for r in good}
    assert all(len(o["customer_key"]) == 64 for o in orders)
    # silver never holds a raw phone
    phones = {r.values["receiver_mobile"] for r in good if r.values["receiver_mobile"]}
    assert not any(p in json.dumps(o, default=str) for o in orders for p in phones)

    customers = _rows(lake, "silver", "customers")
    assert len(customers) == len({o["customer_key"] for o in orders})

    c360 = {r["customer_key"]: r for r in _rows(lake, "gold", "customer_360")}
    assert set(c360) == {c["customer_key"] for c in customers}
    for key, row in c360.items():
        mine = [o for o in orders if o["customer_key"] == key]
        assert row["orders_count"] == len(mine)
        assert float(row["total_amount"]) == pytest.approx(
            float(
                sum(
                    o["amount"]
                    for o in mine
                    if o["status"] not in ("refunded", "closed", "pending")
                )
            )
        )

    log = _rows(lake, "ops", "ingestion_log")
    assert [(r["rows_read"], r["rows_bronze"], r["status"]) for r in log] == [
        (len(parsed), len(good), "ok")
    ]
    suites = {r["suite"] for r in _rows(lake, "ops", "quality_results")}
    assert suites == {"bronze.tmall_orders", "silver.orders"}

    con = duck.connect(lake)
    for name, segment in load_segments().items():
        manifest = json.loads(
            (Path(lake.exports_dir) / name / DAY.isoformat() / "manifest.json").read_text()
        )
        expected = con.execute(
            f"select count(*) from gold.customer_360 where {segment.where}"
        ).fetchone()[0]
        assert manifest["counts"]["members"] == expected


def test_blocking_expectation_stops_downstream_and_says_why(lake, tmp_path):
    simulate(Path(lake.landing_root), customers=50, days=1, seed=5, end=DAY, bad_rate=0.0)
    suites = tmp_path / "expectations"
    suites.mkdir()
    strict = {
        "name": "bronze.tmall_orders",
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 1_000_000},
                "meta": {"level": "block"},
            }
        ],
    }
    (suites / "bronze.tmall_orders.json").write_text(json.dumps(strict))
    with pytest.raises(CdpError) as failed:
        dags_test(
            "cdp_daily",
            DAY,
            lake,
            extra_env={**FAST_FAIL, "CDP_EXPECTATIONS_DIR": str(suites)},
            timeout=900,
        )
    message = str(failed.value)
    assert "expect_table_row_count_to_be_between" in message
    assert "bronze.tmall_orders" in message
    assert (Path(lake.lake_root) / "bronze" / "tmall_orders").is_dir()
    assert not (Path(lake.lake_root) / "silver" / "orders").exists()
    assert not (Path(lake.lake_root) / "gold" / "customer_360").exists()
