"""Every file in dags/ parses with Airflow 3.3 and follows our DAG rules, without starting Spark.

The Airflow scheduler re-imports DAG files every few seconds in its DAG processor, so a DAG file
must import fast and must not pull in Spark, Great Expectations or dbt at module level: those are
imported inside the task bodies. Each check runs Airflow in a subprocess with the project's
Airflow environment (`jobs.common.airflow_env`), so nothing Airflow configures leaks into the
pytest process and the files see the same configuration as under `airflow dags test`.

Set CDP_DAGS_DIR to check another folder (the default is the repository's dags/).
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

# Loads the folder twice, with opposite defaults for catchup and max_active_runs: a DAG whose
# value follows the default did not set it. The DagBag raises on cycles; check_cycle() again
# makes the check explicit.
_DAGBAG_PROBE = textwrap.dedent(
    """
    import json, os, sys
    from airflow.dag_processing.dagbag import DagBag

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
                    t.task_id: {"owner": t.owner, "retries": t.retries} for t in dag.tasks
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
            if (task["retries"] or 0) < 1:
                problems.append(f"{dag_id}.{task_id}: retries={task['retries']}, need >= 1")
    assert not problems, "DAG rule violations:\n" + "\n".join(problems)


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
