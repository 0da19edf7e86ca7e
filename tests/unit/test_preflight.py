"""Bad settings fail at the start, in one line, before anything is read or written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobs import cli
from jobs.common.errors import CdpError
from jobs.common.settings import get_settings
from jobs.daily import preflight

runner = CliRunner()


@pytest.fixture
def landing(lake):
    Path(lake.landing_root).mkdir(parents=True)
    return lake


def _nothing_written(settings) -> None:
    for folder in (settings.lake_root, settings.var_dir, settings.airflow.home):
        assert not Path(folder).exists(), folder


def test_good_settings_pass(landing):
    checked = preflight(None, landing)
    assert checked["lake_root"] == landing.lake_root
    _nothing_written(landing)


@pytest.mark.parametrize(
    "command", [["run", "daily", "--date", "2026-01-05"], ["dag-test", "--date", "2026-01-05"]]
)
def test_a_short_key_fails_at_once_with_one_line(landing, monkeypatch, command):
    monkeypatch.setenv("CDP_PII_HMAC_KEY", "too-short")
    get_settings.cache_clear()
    started = time.perf_counter()
    result = runner.invoke(cli.app, command)
    elapsed = time.perf_counter() - started
    assert isinstance(result.exception, CdpError), result.output
    message = str(result.exception)
    assert message.startswith("preflight failed")
    assert "at least 32 bytes" in message
    assert "\n" not in message
    assert "too-short" not in message
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    _nothing_written(get_settings())


def test_the_real_command_fails_in_well_under_a_second(landing):
    env = {**os.environ, "CDP_PII_HMAC_KEY": "too-short", "COLUMNS": "200"}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "run", "daily", "--date", "2026-01-05"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert out.returncode == 1
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert "at least 32 bytes" in lines[0]
    # interpreter start and imports included; the failing run took 35 s before the preflight
    assert elapsed < 3.0, f"took {elapsed:.2f} s"
    _nothing_written(landing)


def test_every_problem_is_named_at_once(lake, monkeypatch, tmp_path):
    monkeypatch.setenv("CDP_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("CDP_EXPECTATIONS_DIR", str(tmp_path / "no-suites"))
    monkeypatch.setenv("CDP_INGEST__SOURCES", '["tmall", "tmal"]')
    monkeypatch.delenv("CDP_PII_HMAC_KEY")
    get_settings.cache_clear()
    with pytest.raises(CdpError) as failed:
        preflight()
    message = str(failed.value)
    assert "\n" not in message
    for expected in (
        "no PII tokenization key",
        "'Mars/Olympus' is not a known time zone",
        f"landing root {lake.landing_root} does not exist",
        "no-suites does not exist",
        "no source spec for tmal",
    ):
        assert expected in message
    assert "tmall," not in message


def test_a_broken_suite_is_found_before_ingestion(landing, monkeypatch, tmp_path):
    (tmp_path / "bronze.tmall_orders.json").write_text("{not json", encoding="utf-8")
    monkeypatch.setenv("CDP_EXPECTATIONS_DIR", str(tmp_path))
    get_settings.cache_clear()
    with pytest.raises(CdpError, match=r"bronze\.tmall_orders\.json"):
        preflight()


def test_settings_that_do_not_load_are_one_line(lake, monkeypatch):
    monkeypatch.setenv("CDP_SPARK__SHUFFLE_PARTITIONS", "many")
    get_settings.cache_clear()
    with pytest.raises(CdpError) as failed:
        preflight()
    assert "spark.shuffle_partitions" in str(failed.value)
    assert "\n" not in str(failed.value)


def test_a_landing_uri_is_not_checked_on_disk(lake, monkeypatch):
    monkeypatch.setenv("CDP_LANDING_ROOT", "s3://brand-landing/cdp")
    get_settings.cache_clear()
    assert preflight()["landing_root"] == "s3://brand-landing/cdp"
