"""Which business date a cdp_daily run processes (Asia/Shanghai calendar days)."""

import itertools
import runpy
from datetime import date
from pathlib import Path

import pendulum
import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "cdp_daily.py"


@pytest.fixture(scope="module")
def business_date():
    return runpy.run_path(str(DAG_FILE))["business_date"]


@pytest.mark.parametrize(
    ("logical", "expected"),
    [
        # `airflow dags test cdp_daily 2026-11-22`: midnight UTC is 08:00 in Shanghai
        (pendulum.datetime(2026, 11, 22, tz="UTC"), date(2026, 11, 22)),
        # a scheduled run: its interval starts 02:00 Shanghai on the day it processes
        (pendulum.datetime(2026, 11, 21, 2, tz="Asia/Shanghai"), date(2026, 11, 21)),
        # 17:00 UTC is already the next day in Shanghai
        (pendulum.datetime(2026, 11, 21, 17, tz="UTC"), date(2026, 11, 22)),
    ],
)
def test_business_date_is_the_shanghai_day_as_a_plain_date(business_date, logical, expected):
    got = business_date(logical)
    assert got == expected
    assert type(got) is date


def test_a_run_without_logical_date_is_refused(business_date):
    with pytest.raises(ValueError, match="logical date"):
        business_date(None)


def test_every_family_waits_then_maps_ingestion_between_pull_and_the_gate():
    from jobs.daily import source_families

    dag = runpy.run_path(str(DAG_FILE))["cdp_daily_dag"]
    families = source_families()
    assert {"marketplaces", "own_channels"} <= set(families)
    ingests = set()
    for family in families:
        sensor = dag.get_task(f"ingest_{family}.wait_for_exports")
        ingest = dag.get_task(f"ingest_{family}.ingest")
        assert sensor.upstream_task_ids == {"pull"}
        assert sensor.soft_fail
        assert sensor.mode == "reschedule"  # frees its worker slot between pokes
        assert ingest.upstream_task_ids == {sensor.task_id}
        # mapped over the family's source datasets
        assert ingest.op_kwargs_expand_input.value["source_key"] == families[family]
        ingests.add(ingest.task_id)
    gate = dag.get_task("check_bronze")
    assert gate.upstream_task_ids == ingests
    # a skipped family doesn't stop the others; all of them skipped: nothing to check
    assert gate.trigger_rule == "none_failed_min_one_success"
    chain = [
        "check_bronze",
        "build_silver",
        "resolve_identity",
        "score_customers",
        "publish_marts",
        "export_segments",
        "maintain_lake",
    ]
    for upstream, downstream in itertools.pairwise(chain):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.get_task("pull").upstream_task_ids == {"preflight"}
    assert dag.get_task("preflight").upstream_task_ids == set()
    assert dag.get_task("preflight").retries == 0
    # an all-done leaf would hide failed runs
    assert dag.get_task("maintain_lake").trigger_rule == "all_success"
    steps = {"preflight", "pull", *chain}
    sensors = {f"ingest_{f}.wait_for_exports" for f in families}
    assert set(dag.task_ids) == steps | ingests | sensors
