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
from jobs.ingest.spec import load_specs
from jobs.segments.export import load_segments

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY = date(2026, 11, 22)
FAST_FAIL = {"CDP_AIRFLOW__RETRIES": "0"}


def _rows(lake, layer, table):
    return DeltaTable(f"{lake.lake_root}/{layer}/{table}").to_pyarrow_table().to_pylist()


def _parsed_landing(lake):
    """source -> (records, rejected) of every order spec's landing files for DAY."""
    out = {}
    for spec in load_specs().values():
        folder = Path(lake.landing_root) / spec.source / spec.dataset / f"dt={DAY}"
        items = [i for f in sorted(folder.glob(f"*.{spec.format}")) for i in parse_file(f, spec)]
        out[spec.source] = (
            [i for i in items if isinstance(i, Record)],
            [i for i in items if not isinstance(i, Record)],
        )
    return out


def test_cdp_daily_runs_every_task_and_fills_every_table(lake):
    simulate(Path(lake.landing_root), customers=400, days=1, seed=11, end=DAY, bad_rate=0.05)
    landing = _parsed_landing(lake)
    assert all(good for good, _bad in landing.values()), "every platform has orders"
    assert sum(len(bad) for _good, bad in landing.values()) > 0

    dags_test("cdp_daily", DAY, lake, extra_env=FAST_FAIL, timeout=1200)

    quarantine = _rows(lake, "quarantine", "records")
    for spec in load_specs().values():
        good, bad = landing[spec.source]
        assert len(_rows(lake, "bronze", spec.bronze_table)) == len(good), spec.key
        assert sum(r["source"] == spec.source for r in quarantine) == len(bad), spec.key
    assert all(r["reason"] and r["raw"] is not None for r in quarantine)

    orders = _rows(lake, "silver", "orders")
    assert {(o["source"], o["order_id"]) for o in orders} == {
        (source, r.values["order_id"]) for source, (good, _bad) in landing.items() for r in good
    }
    identified = [o for o in orders if o["customer_key"] is not None]
    assert all(len(o["customer_key"]) == 64 for o in identified)
    assert {o["key_type"] for o in orders if o["customer_key"] is None} <= {"unidentified"}
    # silver never holds a raw phone, whichever platform it came from
    phones = {
        str(v)
        for good, _bad in landing.values()
        for r in good
        for k, v in r.values.items()
        if k in ("receiver_mobile", "buyer_phone") and v
    }
    assert phones
    assert not any(p in json.dumps(o, default=str) for o in orders for p in phones)
    # Youzan shares full phones: its buyers meet their Tmall orders under one key
    assert {o["source"] for o in orders if o["key_type"] == "phone"} >= {"tmall", "youzan"}

    customers = _rows(lake, "silver", "customers")
    assert len(customers) == len({o["customer_key"] for o in identified})

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

    log = {r["source"]: r for r in _rows(lake, "ops", "ingestion_log")}
    assert set(log) == set(landing)
    for source, (good, bad) in landing.items():
        row = log[source]
        assert (row["rows_read"], row["rows_bronze"], row["status"]) == (
            len(good) + len(bad),
            len(good),
            "ok",
        )
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
