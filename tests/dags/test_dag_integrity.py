"""Every file in dags/ parses with Airflow 3.3 and follows our DAG rules, without starting Spark.

The Airflow scheduler re-imports DAG files every few seconds in its DAG processor, so a DAG file
must import fast and must not pull in Spark, Great Expectations or dbt at module level: those are
imported inside the task bodies. Each check runs Airflow in a subprocess with the project's
Airflow environment (`jobs.common.airflow_env`), so nothing Airflow configures leaks into the
pytest process and the files see the same configuration as under `airflow dags test`.

Sensors must not hold worker slots while they wait (reschedule or deferrable, with a timeout):
under the real scheduler a poke-mode sensor waiting hours for a late export starves every other
run. Set CDP_DAGS_DIR to check another folder (the default is the repository's dags/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from jobs.common.airflow_env import DAGS_FOLDER, airflow_env
from jobs.common.settings import get_settings

DAGS_DIR = Path(os.environ.get("CDP_DAGS_DIR", DAGS_FOLDER)).resolve()
DAG_FILES = sorted(p for p in DAGS_DIR.rglob("*.py") if "__pycache__" not in p.parts)

# What a DAG file may add on top of importing airflow.sdk (which alone costs ~2 s of CPU).
IMPORT_BUDGET_SECONDS = 2.0
# Top-level packages a DAG file must leave to its task bodies.
HEAVY_MODULES = frozenset({"pyspark", "py4j", "delta", "great_expectations", "dbt"})
# A max_active_runs_per_dag default no one would choose, to tell "unset" from "set".
_SENTINEL_MAX_ACTIVE_RUNS = 987_654
# Longest a sensor may wait before its run moves on (Airflow's default is 7 days).
MAX_SENSOR_TIMEOUT_SECONDS = 24 * 3600
# cdp_daily's steps that rewrite tables shared by every date (silver, gold, ops): they must take
# turns across runs through the one-slot pool, in the order of the chain.
CDP_DAILY_LAKE_WRITERS = (
    "build_silver",
    "resolve_identity",
    "score_customers",
    "publish_marts",
    "export_segments",
    "maintain_lake",
)

# Loads the folder twice, with opposite defaults for catchup and max_active_runs: a DAG whose
# value follows the default did not set it. The DagBag raises on cycles; check_cycle() again
# makes the check explicit.
_DAGBAG_PROBE = textwrap.dedent(
    """
    import json, os, sys
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.bases.sensor import BaseSensorOperator

    folder, sentinel, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    loads = []
    for catchup_default, max_runs_default in (("True", 16), ("False", sentinel)):
        os.environ["AIRFLOW__SCHEDULER__CATCHUP_BY_DEFAULT"] = catchup_default
        os.environ["AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG"] = str(max_runs_default)
        bag = DagBag(dag_folder=folder)
        dags = {}
        for dag_id, dag in bag.dags.items():
            try:
                dag.check_cycle()
                cycle = None
            except Exception as exc:
                cycle = f"{type(exc).__name__}: {exc}"
            dags[dag_id] = {
                "fileloc": dag.fileloc,
                "tags": sorted(dag.tags or []),
                "catchup": dag.catchup,
                "max_active_runs": dag.max_active_runs,
                "cycle": cycle,
                "tasks": {
                    t.task_id: {
                        "owner": t.owner,
                        "retries": t.retries,
                        "pool": t.pool,
                        "weight_rule": str(getattr(t.weight_rule, "value", t.weight_rule)),
                        "sensor": isinstance(t, BaseSensorOperator),
                        "mode": getattr(t, "mode", None),
                        "deferrable": bool(getattr(t, "deferrable", False)),
                        "timeout": getattr(t, "timeout", None),
                        "soft_fail": getattr(t, "soft_fail", None),
                    }
                    for t in dag.tasks
                },
            }
        loads.append({"import_errors": dict(bag.import_errors), "dags": dags})
    with open(out, "w") as fh:
        json.dump(loads, fh)
    """
)

# Imports airflow.sdk first (the DAG processor already has it), then runs the DAG file the way
# Airflow does, with its folder on sys.path, and reports the time and the new top-level modules.
_IMPORT_PROBE = textwrap.dedent(
    """
    import json, os, runpy, sys, time
    import pendulum
    import airflow.sdk

    path, out = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.dirname(path))
    wall, cpu = time.perf_counter(), time.process_time()
    runpy.run_path(path, run_name="dag_file_probe")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    top_level = sorted({name.split(".")[0] for name in sys.modules})
    with open(out, "w") as fh:
        json.dump({"wall": wall, "cpu": cpu, "modules": top_level}, fh)
    """
)


# Tasks whose failure a retry cannot fix, so they fail at once: a settings check.
NEVER_RETRIED = {"cdp_daily.preflight"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The project's Airflow environment with a throwaway AIRFLOW_HOME (no metadata DB needed)."""
    settings = get_settings().model_copy(deep=True)
    settings.airflow.home = str(tmp_path_factory.mktemp("airflow_home"))
    result = airflow_env(settings)
    result["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_DIR)
    return result


def _run_probe(code: str, args: list[str], env: dict[str, str], out: Path) -> Any:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        pytest.fail(f"probe subprocess failed (exit {proc.returncode}):\n{tail}")
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def dagbag(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not DAG_FILES:
        return {"import_errors": {}, "dags": {}, "defaults_flipped": {}}
    out = tmp_path_factory.mktemp("dagbag") / "dagbag.json"
    catchup_true, catchup_false = _run_probe(
        _DAGBAG_PROBE, [str(DAGS_DIR), str(_SENTINEL_MAX_ACTIVE_RUNS)], env, out
    )
    return {
        "import_errors": catchup_true["import_errors"],
        "dags": catchup_true["dags"],
        "defaults_flipped": catchup_false["dags"],
    }


@pytest.fixture(scope="module")
def import_probe(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("import_probe")

    @cache
    def probe(path: Path) -> dict[str, Any]:
        return _run_probe(_IMPORT_PROBE, [str(path)], env, tmp / f"{path.stem}.json")

    return probe


def _dag_ids(dagbag: dict[str, Any]) -> list[str]:
    return sorted(dagbag["dags"])


def test_dags_folder_has_dags(dagbag: dict[str, Any]) -> None:
    assert DAG_FILES, f"no DAG files in {DAGS_DIR}"
    assert dagbag["dags"], f"no DAGs found in {DAGS_DIR}"


def test_no_import_errors(dagbag: dict[str, Any]) -> None:
    errors = dagbag["import_errors"]
    assert not errors, "DAG import errors:\n" + "\n\n".join(
        f"{path}:\n{message}" for path, message in errors.items()
    )


def test_dag_rules(dagbag: dict[str, Any]) -> None:
    problems: list[str] = []
    for dag_id in _dag_ids(dagbag):
        dag = dagbag["dags"][dag_id]
        flipped = dagbag["defaults_flipped"].get(dag_id, dag)
        if not dag["tags"]:
            problems.append(f"{dag_id}: no tags")
        if dag["catchup"] != flipped["catchup"]:
            problems.append(f"{dag_id}: catchup not set explicitly (it follows the default)")
        if _SENTINEL_MAX_ACTIVE_RUNS in (dag["max_active_runs"], flipped["max_active_runs"]):
            problems.append(f"{dag_id}: max_active_runs not set explicitly")
        if dag["cycle"]:
            problems.append(f"{dag_id}: cycle: {dag['cycle']}")
        if not dag["tasks"]:
            problems.append(f"{dag_id}: no tasks")
        for task_id, task in sorted(dag["tasks"].items()):
            if not task["owner"] or task["owner"] == "airflow":
                problems.append(f"{dag_id}.{task_id}: owner is {task['owner']!r}, set a team")
            if (task["retries"] or 0) < 1 and f"{dag_id}.{task_id}" not in NEVER_RETRIED:
                problems.append(f"{dag_id}.{task_id}: retries={task['retries']}, need >= 1")
            if task["sensor"]:
                problems.extend(f"{dag_id}.{task_id}: {p}" for p in _sensor_problems(task))
    assert not problems, "DAG rule violations:\n" + "\n".join(problems)


def _sensor_problems(task: dict[str, Any]) -> list[str]:
    """A sensor in poke mode holds a worker slot for as long as it waits (hours for a late
    export), starving every other run of the executor's few slots: it must reschedule (free
    the slot between pokes) or defer (wait in the triggerer), and give up within a day."""
    problems = []
    if task["mode"] != "reschedule" and not task["deferrable"]:
        problems.append(f"sensor mode={task['mode']!r}: use mode='reschedule' or a deferrable one")
    if not 0 < (task["timeout"] or 0) <= MAX_SENSOR_TIMEOUT_SECONDS:
        problems.append(f"sensor timeout={task['timeout']} s: set one of at most a day")
    return problems


def test_cdp_daily_runs_dates_side_by_side_and_serializes_lake_writers(
    dagbag: dict[str, Any],
) -> None:
    if "cdp_daily" not in dagbag["dags"]:
        pytest.skip(f"no cdp_daily in {DAGS_DIR}")
    dag = dagbag["dags"]["cdp_daily"]
    settings = get_settings().airflow
    # A date waiting for its exports (or failed) never holds the others back.
    assert dag["max_active_runs"] > 1
    assert dag["max_active_runs"] == settings.max_active_runs
    pools = {task_id: task["pool"] for task_id, task in dag["tasks"].items()}
    writers = {t: p for t, p in pools.items() if t in CDP_DAILY_LAKE_WRITERS}
    assert writers == dict.fromkeys(CDP_DAILY_LAKE_WRITERS, settings.lake_writers_pool)
    # ... and nothing else competes for that one slot.
    assert {t for t, p in pools.items() if p == settings.lake_writers_pool} == set(writers)
    # The run furthest down the chain goes first when the slot frees up.
    assert {dag["tasks"][t]["weight_rule"] for t in writers} == {"upstream"}
    sensors = [task for task in dag["tasks"].values() if task["sensor"]]
    assert sensors, "cdp_daily waits for the day's exports with sensors"
    # A family whose exports never come is skipped, so its run ends instead of failing the day.
    assert all(task["mode"] == "reschedule" and task["soft_fail"] for task in sensors)
    assert {task["timeout"] for task in sensors} == {settings.sensor_timeout_minutes * 60}


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_fast(path: Path, import_probe) -> None:
    result = import_probe(path)
    assert result["wall"] < IMPORT_BUDGET_SECONDS, (
        f"{path.name} takes {result['wall']:.2f} s to import ({result['cpu']:.2f} s CPU) on top "
        f"of airflow.sdk; budget {IMPORT_BUDGET_SECONDS} s. Move work into the task bodies."
    )


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_leaves_heavy_imports_to_tasks(path: Path, import_probe) -> None:
    heavy = sorted(HEAVY_MODULES & set(import_probe(path)["modules"]))
    assert not heavy, (
        f"{path.name} imports {heavy} at module level; import them inside the task bodies"
    )
