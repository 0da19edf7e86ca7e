"""cdp_daily: the daily batch for one business date (a calendar day in Asia/Shanghai).

preflight (settings, key, suites) -> pull (API sources) -> per source family: a sensor waits
for the day's landing files, then one mapped task per source dataset lands them in bronze
(quarantine, reconciliation) -> GX gate (completing a batch a crash interrupted first) ->
silver (PII tokenized) -> One-ID (identity graph, stable one_ids) -> customer scores (RFM,
LTV) -> dbt customer 360 marts -> segment exports -> compaction of the small files every source
adds to the shared tables.

Orchestration only: every task calls a function of `jobs.daily`, idempotent for its date, so a
rerun or a backfill of a day replaces that day. Nothing heavy is imported at parse time; the
family list comes from the source specs (small YAML files).

Waiting never blocks: the sensors reschedule (each poke is a short task; no worker slot is held
in between), a family whose files don't come before its sensor's timeout is skipped (soft fail)
and the others flow on, and a day with no files at all ends with its steps skipped. Dates run
side by side (`airflow.max_active_runs`), so a late day never holds another back; the steps
that rewrite the shared silver, gold and ops tables take turns across runs through a pool of
one slot (`airflow.lake_writers_pool`), a run that has started them going first.

Backfill a range: `airflow backfill create --dag-id cdp_daily --from-date
2026-11-01T02:00:00+08:00 --to-date 2026-11-07T02:00:00+08:00` (`cdp airflow run -- backfill
create ...` locally; catchup is off, so nothing runs by itself), or `cdp run daily --from
2026-11-01 --to 2026-11-07` in one process. A scheduled or backfilled run's logical date is
02:00 Shanghai of its day: a bare `--from-date 2026-11-01` (midnight UTC) would skip the 1st.

Dates: the timetable has data intervals of one Shanghai day ending at 02:00, after the platforms'
nightly exports land; the run processes the day its interval starts in. A manual run or
`airflow dags test cdp_daily 2026-11-22` processes 2026-11-22.
"""

from __future__ import annotations

from datetime import date, timedelta

import pendulum
from airflow.sdk import (
    CronDataIntervalTimetable,
    PokeReturnValue,
    TaskGroup,
    TriggerRule,
    WeightRule,
    chain,
    dag,
    task,
)

from jobs.common.settings import get_settings
from jobs.daily import source_families  # light: the steps import Spark only when they run

TIMEZONE = "Asia/Shanghai"
# In order; they rewrite tables every date shares, so they run one at a time across runs.
LAKE_WRITING_STEPS = (
    "build_silver",
    "resolve_identity",
    "score_customers",
    "publish_marts",
    "export_segments",
    "maintain_lake",
)
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
    max_active_runs=_settings.airflow.max_active_runs,
    default_args={
        "owner": "data-eng",
        "retries": _settings.airflow.retries,
        "retry_delay": timedelta(minutes=_settings.airflow.retry_delay_minutes),
    },
    tags=["cdp", "batch", "customer-360"],
    doc_md=__doc__,
)
def cdp_daily():
    # Settings, the PII key, suites, jars: checked first, so a bad key fails the run in a second
    # instead of after ingestion and the gate. Retrying would not fix it.
    checked_settings = _step_task("preflight", retries=0)()
    pulled = _step_task("pull")()
    chain(checked_settings, pulled)
    families = []
    for family, keys in source_families(_settings).items():
        with TaskGroup(group_id=f"ingest_{family}"):
            waited = wait_for_exports(family)
            ingested = ingest_source.expand(source_key=keys)
            chain(pulled, waited, ingested)
        families.append(ingested)
    # Skipped families (no files before the sensor's timeout) don't stop the rest; if every
    # family was skipped there is nothing to check or build, and the run ends skipped.
    checked = _step_task("check_bronze", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)()
    # maintain_lake last, only after a good day: an all-done leaf would mark a failed run
    # successful. A failed day's small files are compacted when its rerun succeeds.
    writers = [
        _step_task(
            name,
            pool=_settings.airflow.lake_writers_pool,
            # A step weighs more the further down the chain it is, so when the pool frees up
            # the run that is furthest along goes on, rather than another date starting.
            weight_rule=WeightRule.UPSTREAM,
        )()
        for name in LAKE_WRITING_STEPS
    ]
    chain(families, checked, *writers)


@task.sensor(
    task_id="wait_for_exports",
    # Between pokes the task ends and frees its worker slot; `airflow dags test` reruns it
    # in-process once the reschedule date passes, so the same DAG runs there too.
    mode="reschedule",
    poke_interval=_settings.airflow.sensor_poke_seconds,
    timeout=_settings.airflow.sensor_timeout_minutes * 60,
    soft_fail=True,
)
def wait_for_exports(family: str, logical_date=None) -> PokeReturnValue:
    """Done once any source of the family has a landing file for the day; returns which."""
    from jobs import daily

    arrived = daily.landed(family, business_date(logical_date))
    return PokeReturnValue(is_done=bool(arrived), xcom_value=arrived)


@task(task_id="ingest", map_index_template="{{ task.op_kwargs['source_key'] }}")
def ingest_source(source_key: str, logical_date=None) -> dict:
    from jobs import daily

    return daily.ingest_source(source_key, business_date(logical_date))


def _step_task(name: str, **task_kwargs):
    """A task running `jobs.daily.<name>` for the run's business date."""

    @task(task_id=name, **task_kwargs)
    def run_step(logical_date=None) -> dict:
        from jobs import daily

        return getattr(daily, name)(business_date(logical_date))

    return run_step


cdp_daily_dag = cdp_daily()
