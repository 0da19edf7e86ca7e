"""Run Airflow 3 commands against this project: one SQLite metadata DB, our dags/, no network.

Airflow reads its configuration from AIRFLOW__<SECTION>__<KEY> environment variables, so instead
of a hand-edited airflow.cfg every Airflow subprocess gets the environment built here. The CDP_*
settings are exported too, so tasks running inside Airflow see the same lake, Spark and Kafka
settings as the process that started them.

`airflow dags test` runs a whole DAG run in one process with no scheduler and no executor; it is
what `cdp dag-test` and the integration tests use to run the real DAG locally. `cdp airflow`
runs the real scheduler, API server and DAG processor on the same DB (`jobs.common.airflow_local`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from jobs.common.errors import CdpError
from jobs.common.settings import PROJECT_ROOT, Settings, get_settings

DAGS_FOLDER = PROJECT_ROOT / "dags"
_OUTPUT_TAIL_LINES = 60
# Written next to the DB after a successful `airflow db migrate`: "<airflow version> <revision>".
_MIGRATED_MARKER = ".cdp_db_migrated"
# Noise Airflow 3.3.2 prints on every `airflow dags ...` run; neither affects us:
# graphviz is only for `dags show`, and the httpx deprecation comes from FastAPI's TestClient,
# which `dags test` uses to serve the execution API in-process.
_QUIET_WARNINGS = (
    "ignore:Could not import graphviz:UserWarning",
    "ignore:Using `httpx` with `starlette.testclient` is deprecated",
)
# The pool of the steps that write shared silver/gold/ops tables (see `ensure_pool`).
LAKE_WRITERS_SLOTS = 1
LAKE_WRITERS_DESCRIPTION = (
    "cdp_daily steps writing the shared silver, gold and ops tables, one at a time across runs"
)


def db_path(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return Path(settings.airflow.home) / "airflow.db"


def _flatten(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flatten(f"{prefix}__{key.upper()}", item))
        return out
    if value is None:
        return {}
    if isinstance(value, list | tuple):
        return {prefix: json.dumps(value)}
    return {prefix: str(value)}


def cdp_env(settings: Settings) -> dict[str, str]:
    """The settings as CDP_* variables, so a subprocess rebuilds exactly these settings."""
    data = settings.model_dump(exclude={"pii_hmac_key"})
    env: dict[str, str] = {}
    for key, value in data.items():
        env.update(_flatten(f"CDP_{key.upper()}", value))
    if settings.pii_hmac_key is not None:
        env["CDP_PII_HMAC_KEY"] = settings.pii_hmac_key.get_secret_value()
    return env


def airflow_env(settings: Settings | None = None) -> dict[str, str]:
    """The environment for an Airflow subprocess: os.environ plus our Airflow and CDP settings."""
    settings = settings or get_settings()
    home = Path(settings.airflow.home)
    env = dict(os.environ)
    env.update(cdp_env(settings))
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # Absolute path: Airflow refuses a relative SQLite path.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db_path(settings)}",
            # The only local executor in Airflow 3 core, and the one `cdp airflow`'s scheduler
            # runs tasks with (`airflow dags test` uses none). Since Airflow 3.0 it may run
            # several tasks at once on SQLite: Airflow opens the DB in WAL mode (many readers,
            # one writer; apache/airflow#44839). Keep `parallelism` small all the same: every
            # state change of every task is a write waiting for that one writer, and each task
            # is a Python process (Spark ones a JVM too) on a laptop's few cores.
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(settings.airflow.parallelism),
            # Every visitor is admin (below), so the API server listens on loopback only; tasks
            # reach its execution API there too (the default URL says localhost, which may
            # resolve to ::1 where nothing listens).
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(settings.airflow.api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                f"http://127.0.0.1:{settings.airflow.api_port}/execution/"
            ),
            # A local single-user install: the API server lets everyone in as admin.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # Plain log lines: they end up in captured output and CdpError messages.
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            # Nothing that phones home or needs a collector.
            "AIRFLOW__SENTRY__SENTRY_ON": "False",
            "AIRFLOW__METRICS__STATSD_ON": "False",
            "AIRFLOW__METRICS__OTEL_ON": "False",
            "AIRFLOW__TRACES__OTEL_ON": "False",
        }
    )
    if settings.spark.master.startswith("local"):
        # Spark otherwise warns that the hostname resolves to a loopback address, on every run.
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    inherited = env.get("PYTHONWARNINGS")
    env["PYTHONWARNINGS"] = ",".join(filter(None, [inherited, *_QUIET_WARNINGS]))
    return env


def _airflow(
    args: list[str], env: dict[str, str], timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _tail(proc: subprocess.CompletedProcess[str], lines: int = _OUTPUT_TAIL_LINES) -> str:
    output = (proc.stdout or "") + (proc.stderr or "")
    return "\n".join(output.strip().splitlines()[-lines:])


def metadata_value(path: Path, sql: str, params: tuple = ()) -> Any:
    """The first column of the first row of a query on the SQLite metadata DB, read-only;
    None when the DB, the table or the row is not there (yet)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute(sql, params).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _db_revision(path: Path) -> str | None:
    return metadata_value(path, "SELECT version_num FROM alembic_version")


def ensure_db(settings: Settings | None = None) -> bool:
    """Create or upgrade the metadata DB with `airflow db migrate`, and make sure the lake
    writers' pool exists (`ensure_pool`). Returns True if the migration ran.

    Cheap when nothing changed: the revision in the DB is compared with the one recorded after
    the last migration by this Airflow version, and the pool read from the DB, without
    starting Airflow.
    """
    settings = settings or get_settings()
    migrated = _migrate(settings)
    ensure_pool(settings)
    return migrated


def _migrate(settings: Settings) -> bool:
    path = db_path(settings)
    marker = path.parent / _MIGRATED_MARKER
    airflow_version = version("apache-airflow-core")
    revision = _db_revision(path)
    if revision and marker.exists() and marker.read_text().split() == [airflow_version, revision]:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = _airflow(["db", "migrate"], airflow_env(settings))
    if proc.returncode != 0:
        raise CdpError(f"`airflow db migrate` failed for {path}:\n{_tail(proc)}")
    revision = _db_revision(path)
    if revision is None:
        raise CdpError(f"`airflow db migrate` left no alembic revision in {path}")
    marker.write_text(f"{airflow_version} {revision}\n")
    return True


def _pool_slots(path: Path, pool: str) -> int | None:
    return metadata_value(path, "SELECT slots FROM slot_pool WHERE pool = ?", (pool,))


def ensure_pool(settings: Settings | None = None) -> bool:
    """Create (or reset to one slot) the pool the lake-writing steps of `cdp_daily` share, with
    `airflow pools set` (idempotent). Returns True if it had to.

    One slot: build_silver, resolve_identity, publish_marts, export_segments and maintain_lake
    rewrite the shared silver, gold and ops tables, so two dates running side by side take turns
    for them. A task naming a pool that doesn't exist is never scheduled, so every way we start
    Airflow calls this.
    """
    settings = settings or get_settings()
    pool = settings.airflow.lake_writers_pool
    if _pool_slots(db_path(settings), pool) == LAKE_WRITERS_SLOTS:
        return False
    proc = _airflow(
        ["pools", "set", pool, str(LAKE_WRITERS_SLOTS), LAKE_WRITERS_DESCRIPTION],
        airflow_env(settings),
    )
    if proc.returncode != 0:
        raise CdpError(f"`airflow pools set {pool}` failed:\n{_tail(proc)}")
    return True


def logical_datetime(day: date) -> datetime:
    """The logical date `dags_test` gives the run for `day`: midnight UTC.

    Tasks then see `ds == day.isoformat()` (Airflow renders ds from the UTC logical date) and
    also `logical_date.in_timezone("Asia/Shanghai").date() == day` (08:00 there), so both
    ways a task may read its day agree. A bare date on the `airflow dags test` command line
    means the same, as [core] default_timezone stays UTC.
    """
    return datetime.combine(day, time(0), tzinfo=UTC)


def dags_test(
    dag_id: str,
    logical_date: date,
    settings: Settings | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one DAG run in-process with `airflow dags test`; CdpError with the log tail on failure.

    A date becomes midnight UTC (see `logical_datetime`); pass a timezone-aware datetime to
    choose the exact logical date. Tasks run in one process (the `airflow` CLI process), one
    after the other, so a SparkSession made by the first task is reused by the next ones.
    Failed tasks are retried as their `retries`/`retry_delay` say, so a failing run takes at
    least retries x retry_delay before this raises.
    """
    settings = settings or get_settings()
    ensure_db(settings)
    env = airflow_env(settings)
    env.update(extra_env or {})
    when = logical_date if isinstance(logical_date, datetime) else logical_datetime(logical_date)
    try:
        proc = _airflow(["dags", "test", dag_id, when.isoformat()], env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CdpError(f"`airflow dags test {dag_id}` did not finish in {timeout} s") from exc
    if proc.returncode != 0:
        raise CdpError(
            f"`airflow dags test {dag_id} {when.isoformat()}` failed "
            f"(exit {proc.returncode}):\n{_tail(proc)}"
        )
    return proc


def task_instances(
    dag_id: str, logical_date: date, settings: Settings | None = None
) -> list[tuple[str, int, str, float | None]]:
    """(task_id, map_index, state, duration in seconds) of each task instance of the run
    `dags_test` made for `logical_date`, read from the SQLite metadata DB (map_index is -1 for
    a task that isn't mapped)."""
    settings = settings or get_settings()
    when = logical_datetime(logical_date).strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(f"file:{db_path(settings)}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT ti.task_id, ti.map_index, ti.state, ti.duration FROM task_instance ti "
            "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
            "WHERE ti.dag_id = ? AND substr(dr.logical_date, 1, 19) = ?",
            (dag_id, when),
        ).fetchall()


def task_states(
    dag_id: str, logical_date: date, settings: Settings | None = None
) -> dict[tuple[str, int], str]:
    """(task_id, map_index) -> state of the run `dags_test` made for `logical_date`."""
    rows = task_instances(dag_id, logical_date, settings)
    return {(task_id, map_index): state for task_id, map_index, state, _ in rows}


def task_seconds(
    dag_id: str, logical_date: date, settings: Settings | None = None
) -> dict[str, float]:
    """task_id -> seconds its instances of the run took (a mapped task's summed), slowest
    first."""
    seconds: dict[str, float] = {}
    for task_id, _, _, duration in task_instances(dag_id, logical_date, settings):
        seconds[task_id] = seconds.get(task_id, 0.0) + (duration or 0.0)
    return dict(sorted(seconds.items(), key=lambda kv: -kv[1]))
