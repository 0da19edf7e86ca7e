"""Airflow's scheduler, API server (with the UI) and DAG processor on the embedded default.

`cdp airflow` runs them as child processes of one foreground command instead of `airflow
standalone`, so that every one gets the project's environment (`airflow_env`: the SQLite DB
under `airflow.home`, our dags/, LocalExecutor, the CDP_* settings the tasks read), the metadata
DB is migrated and the lake writers' pool exists before the scheduler looks at a DAG, and Ctrl-C
stops all of them, with their task processes, Spark JVMs included.

No triggerer: nothing in dags/ defers (the sensors reschedule instead), and the health check
reports a triggerer that never ran as absent, not unhealthy. Each child leads its own process
group, so one signal reaches a component's whole tree and the terminal's Ctrl-C reaches only us:
we stop the components ourselves, the scheduler first so it hands out no new task.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobs.common.airflow_env import airflow_env, db_path, ensure_db, metadata_value
from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings

# Start order; they stop in the same order (the scheduler first: no new tasks while we stop).
COMPONENTS = ("scheduler", "dag-processor", "api-server")
# Health the API server must report for each component before we call Airflow ready.
_REQUIRED_HEALTH = ("metadatabase", "scheduler", "dag_processor")
_LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def ui_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.airflow.api_port}"


def health(settings: Settings, timeout: float = 2.0) -> dict[str, Any] | None:
    """The API server's /api/v2/monitor/health answer (needs no login), or None if it doesn't
    answer on loopback yet."""
    url = f"{ui_url(settings)}/api/v2/monitor/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError):  # refused, timed out, HTTP error, not JSON yet
        return None


def is_healthy(answer: dict[str, Any] | None) -> bool:
    return answer is not None and all(
        (answer.get(part) or {}).get("status") == "healthy" for part in _REQUIRED_HEALTH
    )


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def registered_dags(
    settings: Settings, errors_since: datetime | None = None
) -> tuple[set[str], dict[str, str]]:
    """(DAG ids the DAG processor has stored, {file: import error} recorded since
    `errors_since`, UTC) from the metadata DB."""
    since = (errors_since or datetime.min).strftime("%Y-%m-%d %H:%M:%S.%f")
    try:
        with sqlite3.connect(f"file:{db_path(settings)}?mode=ro", uri=True) as conn:
            dags = {row[0] for row in conn.execute("SELECT dag_id FROM dag WHERE NOT is_stale")}
            errors = dict(
                conn.execute(
                    "SELECT filename, stacktrace FROM import_error WHERE timestamp >= ?", (since,)
                )
            )
    except sqlite3.Error:
        return set(), {}
    return dags, errors


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Linux: the component gets SIGTERM when `cdp airflow` dies, even by SIGKILL, instead of
    living on as an orphan holding the port and the DB (prctl PR_SET_PDEATHSIG survives exec)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def is_paused(settings: Settings, dag_id: str) -> bool | None:
    """Whether the DAG is paused (None: not in the metadata DB yet)."""
    paused = metadata_value(
        db_path(settings), "SELECT is_paused FROM dag WHERE dag_id = ?", (dag_id,)
    )
    return None if paused is None else bool(paused)


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def returncode(self) -> int | None:
        return self.process.poll()

    def tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def group_alive(self) -> bool:
        """Is any process of the component's group (workers, tasks, JVMs) still there?"""
        try:
            os.killpg(self.process.pid, 0)
        except (ProcessLookupError, PermissionError):  # none left (or an id since reused)
            return False
        return True

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


class LocalAirflow:
    """The components as child processes; a context manager that always stops them."""

    def __init__(self, settings: Settings | None = None, log_dir: Path | None = None) -> None:
        self.settings = settings or get_settings()
        self.log_dir = log_dir or Path(self.settings.airflow.home) / "logs" / "services"
        self.components: list[Component] = []
        self.started_at: datetime | None = None

    def __enter__(self) -> LocalAirflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        port = self.settings.airflow.api_port
        if _port_taken(port):
            raise CdpError(
                f"127.0.0.1:{port} is taken (another `cdp airflow`?): stop it, or choose "
                f"another port with --port or CDP_AIRFLOW__API_PORT"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = airflow_env(self.settings)
        # Naive UTC, as Airflow stores times in SQLite: import errors older than this are stale.
        self.started_at = datetime.now(UTC).replace(tzinfo=None)
        for name in COMPONENTS:
            log = self.log_dir / f"{name}.log"
            with log.open("wb") as out:  # the child keeps its own descriptor
                process = subprocess.Popen(
                    [sys.executable, "-m", "airflow", name],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            self.components.append(Component(name, process, log))

    def check_alive(self) -> None:
        """CdpError with the log tail if a component has exited."""
        for component in self.components:
            code = component.returncode()
            if code is not None:
                raise CdpError(
                    f"airflow {component.name} exited (code {code}); the end of "
                    f"{component.log}:\n{component.tail()}"
                )

    def wait_ready(
        self, dag_ids: Iterable[str] = ("cdp_daily",), timeout: float = 180.0, poll: float = 1.0
    ) -> float:
        """Wait until the API server reports the DB, scheduler and DAG processor healthy and the
        DAGs are parsed. Returns the seconds it took; CdpError on a timeout, an exited
        component or an import error in dags/."""
        wanted = set(dag_ids)
        started = time.monotonic()
        answer: dict[str, Any] | None = None
        dags: set[str] = set()
        while True:
            self.check_alive()
            answer = health(self.settings)
            dags, errors = registered_dags(self.settings, self.started_at)
            if errors:
                file, trace = next(iter(errors.items()))
                raise CdpError(f"the DAG processor cannot import {file}:\n{trace}")
            if is_healthy(answer) and wanted <= dags:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                missing = sorted(wanted - dags)
                raise CdpError(
                    f"Airflow was not ready after {timeout:.0f} s (health: {answer}; DAGs not "
                    f"parsed yet: {missing}); logs in {self.log_dir}"
                )
            time.sleep(poll)

    def stop(self, grace: float = 30.0) -> list[str]:
        """Stop the components one after the other, each with SIGTERM, then SIGKILL to whatever
        is left of its process group (executor workers, task processes, Spark JVMs) after
        `grace` seconds. The scheduler goes first and waits for its running tasks, which report
        to the API server, so that one goes last. A second Ctrl-C skips the waiting. Returns the
        names of the components that had to be killed."""
        killed = []
        try:
            for component in self.components:
                if not _stop(component, grace):
                    killed.append(component.name)
        except KeyboardInterrupt:
            for component in self.components:
                component.signal_group(signal.SIGKILL)
                killed.append(component.name)
        for component in self.components:
            with contextlib.suppress(subprocess.TimeoutExpired):  # unkillable (D state)
                component.process.wait(timeout=10)
        self.components = []
        return killed


def _stop(component: Component, grace: float) -> bool:
    """True if the component ended by itself within `grace` seconds of SIGTERM."""
    if component.returncode() is None:
        component.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while component.returncode() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if component.returncode() is None or component.group_alive():
        component.signal_group(signal.SIGKILL)
        return False
    return True


def run_airflow(args: list[str], settings: Settings | None = None) -> int:
    """Run `airflow <args>` with the project's environment, attached to this terminal."""
    settings = settings or get_settings()
    ensure_db(settings)
    return subprocess.call([sys.executable, "-m", "airflow", *args], env=airflow_env(settings))
