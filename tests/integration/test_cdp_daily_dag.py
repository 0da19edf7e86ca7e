"""The real `cdp_daily` DAG through Airflow 3 (`airflow dags test`, SQLite) on a temporary lake.

Every expected count is derived from the simulated input files, not written down.
"""

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs.common import duck
from jobs.common.airflow_env import dags_test, task_seconds, task_states
from jobs.common.errors import CdpError
from jobs.common.lake import list_tables
from jobs.daily import source_families
from jobs.ingest.records import Record, parse_file
from jobs.ingest.spec import load_specs
from jobs.segments.definitions import load_segments
from jobs.simulator import simulate

pytestmark = [pytest.mark.slow, pytest.mark.integration]
DAY = date(2026, 11, 22)
FAST_FAIL = {"CDP_AIRFLOW__RETRIES": "0"}
QUICK_SENSORS = {
    "CDP_AIRFLOW__SENSOR_POKE_SECONDS": "1",
    "CDP_AIRFLOW__SENSOR_TIMEOUT_MINUTES": "0.1",
}


def _rows(lake, layer, table):
    return DeltaTable(f"{lake.lake_root}/{layer}/{table}").to_pyarrow_table().to_pylist()


def _parsed_landing(lake, skip: set[str] = frozenset()):
    """source key -> (records, rejected) of every spec's landing files for DAY."""
    out = {}
    for key, spec in load_specs().items():
        if key in skip:
            continue
        folder = Path(lake.landing_root) / spec.source / spec.dataset / f"dt={DAY}"
        items = [i for f in sorted(folder.glob(f"*.{spec.format}")) for i in parse_file(f, spec)]
        out[key] = (
            [i for i in items if isinstance(i, Record)],
            [i for i in items if not isinstance(i, Record)],
        )
    return out


def _silver_order_ids(spec, good) -> set[tuple[str, str]]:
    """(source, order id) silver should hold for these bronze records, read off the spec:
    the order id field may be renamed; an ERP's re-exports of directly ingested platforms are
    left out (they would count those orders twice)."""
    order_id = spec.silver.field("order_id")
    linked = spec.silver.linked_order
    direct = set(linked.ingested_directly) if linked else set()
    return {
        (spec.source, str(r.values[order_id]))
        for r in good
        if not (linked and r.values.get(linked.platform_field) in direct)
    }


def test_cdp_daily_runs_every_task_and_fills_every_table(lake):
    simulate(Path(lake.landing_root), customers=400, days=1, seed=11, end=DAY, bad_rate=0.05)
    specs = load_specs()
    # One family's exports never come: its sensor gives up, the other families flow on.
    families = source_families(lake)
    late = next(f for f in families if f not in ("marketplaces", "own_channels"))
    for key in families[late]:
        shutil.rmtree(Path(lake.landing_root) / specs[key].source / specs[key].dataset)
    landing = _parsed_landing(lake, skip=set(families[late]))
    orders_landing = {k: v for k, v in landing.items() if specs[k].dataset == "orders"}
    assert all(good for good, _bad in orders_landing.values()), "every platform has orders"
    assert sum(len(bad) for _good, bad in landing.values()) > 0

    dags_test("cdp_daily", DAY, lake, extra_env={**FAST_FAIL, **QUICK_SENSORS}, timeout=1500)

    states = task_states("cdp_daily", DAY, lake)
    assert states[(f"ingest_{late}.wait_for_exports", -1)] == "skipped"
    assert {s for (t, _i), s in states.items() if t.startswith(f"ingest_{late}.")} == {"skipped"}
    others = {(t, i): s for (t, i), s in states.items() if not t.startswith(f"ingest_{late}.")}
    assert set(others.values()) == {"success"}, others
    mapped = sorted(i for (t, i) in states if t == "ingest_marketplaces.ingest")
    assert mapped == list(range(len(families["marketplaces"])))
    seconds = task_seconds("cdp_daily", DAY, lake)  # what `cdp demo` prints per run
    assert set(seconds) == {t for t, _ in states}
    assert seconds["build_silver"] > 0
    assert list(seconds.values()) == sorted(seconds.values())[::-1]

    quarantine = _rows(lake, "quarantine", "records")
    for key, (good, bad) in landing.items():
        spec = specs[key]
        assert len(_rows(lake, "bronze", spec.bronze_table)) == len(good), key
        mine = [r for r in quarantine if (r["source"], r["dataset"]) == (spec.source, spec.dataset)]
        assert len(mine) == len(bad), key
    for key in families[late]:
        assert not (Path(lake.lake_root) / "bronze" / specs[key].bronze_table).exists()
    assert all(r["reason"] and r["raw"] is not None for r in quarantine)

    orders = _rows(lake, "silver", "orders")
    assert {(o["source"], o["order_id"]) for o in orders} == {
        order
        for key, (good, _bad) in landing.items()
        if specs[key].silver and specs[key].silver.orders
        for order in _silver_order_ids(specs[key], good)
    }
    identified = [o for o in orders if o["customer_key"] is not None]
    assert all(len(o["customer_key"]) == 64 for o in identified)
    assert {o["key_type"] for o in orders if o["customer_key"] is None} <= {"unidentified"}
    # silver never holds a raw phone, whichever platform it came from
    phones = {
        str(v)
        for good, _bad in orders_landing.values()
        for r in good
        for k, v in r.values.items()
        if k in ("receiver_mobile", "buyer_phone") and v and "*" not in str(v)
    }
    assert phones
    assert not any(p in json.dumps(o, default=str) for o in orders for p in phones)
    # Full phones reach the brand from Youzan (the buyer's login phone) and the mini-program
    # (phone authorization); marketplaces mask them, so Tmall buyers are keyed by their ids.
    assert {o["source"] for o in orders if o["key_type"] == "phone"} >= {"youzan"}
    assert "phone" not in {o["key_type"] for o in orders if o["source"] in ("tmall", "jd")}

    # One-ID gave every identified genuine order a customer; test orders and 刷单 stay in
    # silver.orders, flagged, and are no one's history
    one_id_of = {
        r["record_key"]: r["one_id"]
        for r in _rows(lake, "silver", "identity_records")
        if r["rule"] == "order_buyer"
    }
    genuine = [
        o
        for o in identified
        if not o["is_test"] and not o["is_fake"] and one_id_of.get(f"{o['source']}|{o['order_id']}")
    ]
    assert len(genuine) > len(identified) / 2
    customers = {c["one_id"] for c in _rows(lake, "silver", "customers")}

    c360 = {r["one_id"]: r for r in _rows(lake, "gold", "customer_360")}
    assert set(c360) == customers  # every profile, buyer or not
    buyers = {k: r for k, r in c360.items() if r["orders_count"] > 0}
    assert set(buyers) == {one_id_of[f"{o['source']}|{o['order_id']}"] for o in genuine}
    for key, row in buyers.items():
        # test and fake (刷单) orders stay in silver, flagged, and are no one's history
        mine = [o for o in genuine if one_id_of[f"{o['source']}|{o['order_id']}"] == key]
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

    log = {(r["source"], r["dataset"]): r for r in _rows(lake, "ops", "ingestion_log")}
    assert set(log) == {(specs[k].source, specs[k].dataset) for k in landing}
    for key, (good, bad) in landing.items():
        row = log[(specs[key].source, specs[key].dataset)]
        assert (row["rows_read"], row["rows_bronze"], row["status"]) == (
            len(good) + len(bad),
            len(good),
            "ok",
        )
    with_suite = {
        f"bronze.{specs[k].bronze_table}"
        for k in landing
        if (Path(lake.expectations_dir) / f"bronze.{specs[k].bronze_table}.json").is_file()
    }
    assert {"bronze.tmall_orders", "bronze.jd_orders", "bronze.youzan_orders"} <= with_suite
    suites = {r["suite"] for r in _rows(lake, "ops", "quality_results")}
    written = {f"silver.{name}" for layer, name, _ in list_tables(lake) if layer == "silver"}
    has_suite = {p.stem for p in Path(lake.expectations_dir).glob("silver.*.json")}
    assert {"silver.orders", "silver.order_items"} <= suites
    assert suites == with_suite | (written & has_suite)
    reports = Path(lake.quality.reports_dir) / f"dt={DAY}"
    assert {p.stem for p in reports.glob("*.txt")} == suites

    con = duck.connect(lake)
    exported = 0
    for name, segment in load_segments().items():
        manifest = json.loads(
            (Path(lake.exports_dir) / name / DAY.isoformat() / "manifest.json").read_text()
        )
        expected = con.execute(
            f"select count(*) from gold.customer_360 where {segment.where}"
        ).fetchone()[0]
        counts = manifest["counts"]
        assert counts["members"] + counts["no_consent"] == expected  # consent: the only filter
        exported += counts["members"]
    assert exported > 0  # customers who granted a purpose are exported


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
            extra_env={**FAST_FAIL, **QUICK_SENSORS, "CDP_EXPECTATIONS_DIR": str(suites)},
            timeout=900,
        )
    message = str(failed.value)
    assert "expect_table_row_count_to_be_between" in message
    assert "bronze.tmall_orders" in message
    assert (Path(lake.lake_root) / "bronze" / "tmall_orders").is_dir()
    assert not (Path(lake.lake_root) / "silver" / "orders").exists()
    assert not (Path(lake.lake_root) / "gold" / "customer_360").exists()
