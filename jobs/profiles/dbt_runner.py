"""Run the dbt project (gold layer: customer_360) in-process, on this process's SparkSession.

Why in-process: dbt-spark's `session` method executes SQL with
`SparkSession.builder.getOrCreate()`, which returns the session already running here. So dbt
sees the lake tables we registered (`silver.orders`, ...), uses our Delta configuration, and
costs no second JVM or Thrift server. The price is that dbt and the caller share global state:
dbt must not run twice at once in one process, and the adapter forces
`spark.sql.ansi.enabled=false` on the session, which we put back afterwards.

Nothing is written into the repository (target/ and logs/ go to {var_dir}/dbt) and dbt never
goes to the network: no `dbt deps`, no packages, anonymous usage statistics off.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.common.errors import CdpError
from jobs.common.lake import list_tables, register_tables, small_silver, table_path
from jobs.common.settings import Settings, get_settings
from jobs.common.spark import get_spark, small_data

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

GOLD_ROOT_ENV = "CDP_DBT_GOLD_ROOT"
_FAILED_STATUSES = {"error", "fail", "runtime error"}
_ANSI = "spark.sql.ansi.enabled"
_HEADERS = ("Runtime Error in", "Database Error in", "Compilation Error in")


def dbt_dirs(settings: Settings) -> dict[str, str]:
    """Where dbt reads its project and profile and writes its artifacts and logs."""
    work = Path(settings.var_dir) / "dbt"
    return {
        "project_dir": settings.dbt.project_dir,
        "profiles_dir": settings.dbt.project_dir,
        "target_path": str(work / "target"),
        "log_path": str(work / "logs"),
    }


def project_tables(settings: Settings) -> list[str]:
    """The lake tables dbt reads or writes: every source the project declares
    (``<schema>.<table>``) and the gold tables its models write. Only these are registered
    for a run: each registration reads its table's log, and the lake holds many more."""
    from jobs.common.yamlio import load_yaml

    names = []
    for path in sorted(Path(settings.dbt.project_dir).glob("models/**/*.yml")):
        for source in (load_yaml(path) or {}).get("sources") or []:
            schema = source.get("schema") or source["name"]
            names += [f"{schema}.{table['name']}" for table in source.get("tables") or []]
    gold = [f"gold.{name}" for layer, name, _ in list_tables(settings) if layer == "gold"]
    return names + gold


def dbt_vars(as_of: date | None = None) -> dict[str, Any]:
    """The vars every dbt run gets: the order-state vocabulary (its one source is
    jobs/common/order_states.py; dbt's accepted-values tests read `var('order_states')`) and the
    as-of date of the marts."""
    from jobs.common.order_states import ORDER_STATES

    found: dict[str, Any] = {"order_states": list(ORDER_STATES)}
    if as_of is not None:
        found["as_of_date"] = as_of.isoformat()
    return found


def dbt_args(args: list[str], settings: Settings, as_of: date | None = None) -> list[str]:
    """The full dbt command line: the caller's args plus our paths and vars (`dbt_vars`; a
    caller's own `--vars` are added to them)."""
    dirs = dbt_dirs(settings)
    full = list(args)
    wanted = dbt_vars(as_of)
    if "--vars" in full:
        at = full.index("--vars")
        given = json.loads(full[at + 1]) if at + 1 < len(full) else {}
        if as_of is not None and "as_of_date" in given:
            raise ValueError("pass either as_of or --vars as_of_date, not both")
        wanted |= given
        del full[at : at + 2]
    for flag in ("project_dir", "profiles_dir", "target_path", "log_path"):
        full += [f"--{flag.replace('_', '-')}", dirs[flag]]
    return [*full, "--vars", json.dumps(wanted)]


@contextmanager
def _dbt_environment(settings: Settings) -> Iterator[None]:
    """Env vars dbt reads while it runs; restored afterwards so the process is left as found."""
    wanted = {
        GOLD_ROOT_ENV: table_path("gold", "", settings).rstrip("/"),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _short(message: str, limit: int = 300) -> str:
    """The first informative line of a dbt/Spark error (they repeat headers and dump plans)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    informative = [
        line for line in lines if not line.endswith(" Error") and not line.startswith(_HEADERS)
    ]
    text = (informative or lines or [message])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failures(result: Any) -> list[str]:
    """'node: message' for every node of a run/build/test result that errored or failed."""
    lines = []
    for node_result in getattr(result, "results", None) or []:
        status = str(getattr(node_result.status, "value", node_result.status)).lower()
        if status in _FAILED_STATUSES:
            node = getattr(node_result, "node", None)
            name = getattr(node, "unique_id", None) or getattr(node, "name", "?")
            lines.append(f"{name}: {_short(str(node_result.message or status))}")
    return lines


def run_dbt(
    args: list[str],
    *,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
    as_of: date | None = None,
) -> Any:
    """Invoke dbt (e.g. ["build"]) on this process's SparkSession; raise CdpError on failure.

    Returns dbt's result object (RunExecutionResult for run/build/test) for callers that want
    timings or row counts.
    """
    from dbt.cli.main import dbtRunner, dbtRunnerResult

    settings = settings or get_settings()
    spark = spark or get_spark("cdp-dbt", settings)
    register_tables(spark, settings, only=project_tables(settings))
    full_args = dbt_args(args, settings, as_of)

    # A small lake (a demo day) runs each of dbt's many small statements on small-data settings.
    small = small_silver(settings)
    ansi = spark.conf.get(_ANSI, None)
    try:
        with _dbt_environment(settings), small_data(spark, small):
            outcome: dbtRunnerResult = dbtRunner().invoke(full_args)
    finally:
        if ansi is None:
            spark.conf.unset(_ANSI)
        else:
            spark.conf.set(_ANSI, ansi)

    if outcome.success:
        return outcome.result
    command = " ".join(args[:1]) or "dbt"
    failures = _failures(outcome.result)
    if failures:
        raise CdpError(f"dbt {command} failed: " + "; ".join(failures))
    if outcome.exception is not None:
        raise CdpError(
            f"dbt {command} failed: {_short(str(outcome.exception))}"
        ) from outcome.exception
    raise CdpError(f"dbt {command} failed; see the log in {dbt_dirs(settings)['log_path']}/dbt.log")


def build(
    as_of: date | None = None,
    *,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> Any:
    """`dbt build` of the whole project (models, unit tests, data tests) for `as_of` (or today).

    Quiet: dbt prints only errors (which `run_dbt` also raises); the full log is in
    {var_dir}/dbt/logs.
    """
    return run_dbt(["build", "--quiet"], spark=spark, settings=settings, as_of=as_of)


def docs(
    as_of: date | None = None,
    *,
    spark: SparkSession | None = None,
    settings: Settings | None = None,
) -> Path:
    """`dbt docs generate --static` on the lake: every model, test, contract and column with its
    description, and the tables' columns as published (catalog.json). Returns the folder with
    index.html (to serve: it loads manifest.json and catalog.json beside it) and
    static_index.html (one file that opens from disk)."""
    settings = settings or get_settings()
    args = ["docs", "generate", "--static", "--quiet"]
    run_dbt(args, spark=spark, settings=settings, as_of=as_of)
    return Path(dbt_dirs(settings)["target_path"])
