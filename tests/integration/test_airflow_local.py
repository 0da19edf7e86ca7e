"""`cdp airflow` starts the real scheduler, API server and DAG processor on the SQLite DB of a
temporary AIRFLOW_HOME, answers healthy on loopback, and leaves no process behind when stopped."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.common.airflow_env import LAKE_WRITERS_SLOTS

pytestmark = [pytest.mark.slow, pytest.mark.integration]
STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_of(airflow_home: str) -> list[int]:
    """Processes holding a file under this AIRFLOW_HOME open: every component writes its log
    there, and its workers, task processes and JVMs inherit that stdout; all use the DB."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            targets = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(target.startswith(airflow_home + "/") for target in targets):
            found.append(int(proc.name))
    return found


def _cdp(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", *args]


def _start(port: int) -> tuple[subprocess.Popen, list[str]]:
    """`cdp airflow` in the background, once it says it is up (with what it printed)."""
    proc = subprocess.Popen(
        _cdp("airflow", "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops Airflow" in line:
            break
    return proc, lines


def _stop(proc: subprocess.Popen) -> None:
    """However a test ended: Ctrl-C, as a user would, so no component outlives it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_until_gone(airflow_home: str, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _processes_of(airflow_home)) and time.monotonic() < deadline:
        time.sleep(1.0)
    return left


def test_check_starts_every_component_healthy_then_stops_them(lake):
    port = _free_port()
    started = time.monotonic()
    out = subprocess.run(
        _cdp("airflow", "--check", "--port", str(port), "--timeout", str(STARTUP_SECONDS)),
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=STARTUP_SECONDS + 60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"http://127.0.0.1:{port}" in out.stdout
    assert "login: none" in out.stdout
    assert "Airflow stopped" in out.stdout
    assert time.monotonic() - started < STARTUP_SECONDS
    assert not _listening(port)
    assert not _processes_of(lake.airflow.home)
    with sqlite3.connect(Path(lake.airflow.home) / "airflow.db") as conn:
        pools = dict(conn.execute("SELECT pool, slots FROM slot_pool"))
        dags = {row[0] for row in conn.execute("SELECT dag_id FROM dag")}
    assert pools[lake.airflow.lake_writers_pool] == LAKE_WRITERS_SLOTS
    assert "cdp_daily" in dags
    for name in ("scheduler", "dag-processor", "api-server"):
        assert (Path(lake.airflow.home) / "logs" / "services" / f"{name}.log").stat().st_size


def test_ctrl_c_stops_every_component_and_run_passes_airflow_commands(lake):
    port = _free_port()
    proc, lines = _start(port)
    try:
        assert any("Airflow is up" in line for line in lines), "".join(lines)
        assert _listening(port)
        assert len(_processes_of(lake.airflow.home)) >= 3

        pools = subprocess.run(
            _cdp("airflow", "run", "--", "pools", "get", lake.airflow.lake_writers_pool),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert pools.returncode == 0, pools.stderr
        assert lake.airflow.lake_writers_pool in pools.stdout

        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    finally:
        _stop(proc)
    assert proc.returncode == 0, rest
    assert "Airflow stopped" in rest
    assert not _listening(port)
    assert not _processes_of(lake.airflow.home)


def test_components_stop_when_cdp_airflow_itself_is_killed(lake):
    """SIGKILL leaves no chance to clean up: the components get SIGTERM from the kernel
    (parent-death signal) rather than living on, holding the port and the DB."""
    port = _free_port()
    proc, lines = _start(port)
    try:
        assert any("Airflow is up" in line for line in lines), "".join(lines)
        proc.kill()
        proc.wait(timeout=10)
        assert not _wait_until_gone(lake.airflow.home)
        assert not _listening(port)
    finally:
        _stop(proc)
