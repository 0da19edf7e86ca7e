"""cdp_daily: the daily batch for one business date (a calendar day in Asia/Shanghai).

landing files -> bronze (quarantine, reconciliation) -> GX gate -> silver orders and customers
(PII tokenized) -> dbt customer 360 marts -> segment exports. Orchestration only: every task
calls a step in `jobs.daily`, which is idempotent for its date, so a rerun or a backfill of a day
replaces that day. Nothing heavy is imported at parse time.

Dates: the timetable has data intervals of one Shanghai day ending at 02:00, after the platforms'
nightly exports land; the run processes the day its interval starts in. A manual run or
`airflow dags test cdp_daily 2026-11-22` processes 2026-11-22.
"""

from __future__ import annotations

from datetime import date, timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, chain, dag, task

from jobs.common.settings import get_settings
from jobs.daily import STEPS  # light: the steps import Spark only when they run

TIMEZONE = "Asia/Shanghai"
_settings = get_settings()


def business_date(logical_date: pendulum.DateTime | None) -> date:
    if logical_date is None:
        raise ValueError("cdp_daily needs a logical date: trigger it with one (-l YYYY-MM-DD)")
    local = pendulum.instance(logical_date).in_timezone(TIMEZONE)
    # A plain datetime.date: Spark rejects pendulum's Date subclass in DataFrame rows.
    return date(local.year, local.month, local.day)


@dag(
    dag_id="cdp_daily",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-eng",
        "retries": _settings.airflow.retries,
        "retry_delay": timedelta(minutes=_settings.airflow.retry_delay_minutes),
    },
    tags=["cdp", "batch", "customer-360"],
    doc_md=__doc__,
)
def cdp_daily():
    chain(*(_step_task(step.__name__)() for step in STEPS))


def _step_task(name: str):
    """A task running `jobs.daily.<name>` for the run's business date."""

    @task(task_id=name)
    def run_step(logical_date=None) -> dict:
        from jobs import daily

        return getattr(daily, name)(business_date(logical_date))

    return run_step


cdp_daily_dag = cdp_daily()
