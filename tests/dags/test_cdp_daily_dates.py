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


def test_tasks_are_the_daily_steps_in_order():
    from jobs.daily import STEPS

    dag = runpy.run_path(str(DAG_FILE))["cdp_daily_dag"]
    names = [step.__name__ for step in STEPS]
    assert sorted(dag.task_ids) == sorted(names)
    for upstream, downstream in itertools.pairwise(names):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert dag.get_task(names[0]).upstream_task_ids == set()
