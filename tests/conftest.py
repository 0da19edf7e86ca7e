"""Shared fixtures: one SparkSession for the whole run, and an isolated lake per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from jobs.common.settings import get_settings

TEST_HMAC_KEY = "test-only-key-0123456789abcdef0123456789abcdef"

# Before any settings are read: tests never touch the developer's var/ or a real key.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ["CDP_PII_HMAC_KEY"] = TEST_HMAC_KEY

pytest_plugins = ["tests.integration.kafka_fixtures", "tests.integration.silver_world"]


def _lake_env(root: Path) -> dict[str, str]:
    return {
        "CDP_LAKE_ROOT": str(root / "lake"),
        "CDP_VAR_DIR": str(root / "var"),
        "CDP_LANDING_ROOT": str(root / "landing"),
        "CDP_EXPORTS_DIR": str(root / "exports"),
        "CDP_AIRFLOW__HOME": str(root / "airflow"),
        "CDP_STREAM__CHECKPOINT_DIR": str(root / "checkpoints"),
    }


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cdp")


@pytest.fixture(scope="session")
def spark(session_root):
    """The one SparkSession of the test run (Spark takes ~20 s to start)."""
    from jobs.common.spark import get_spark

    mp = pytest.MonkeyPatch()
    for k, v in _lake_env(session_root / "spark").items():
        mp.setenv(k, v)
    get_settings.cache_clear()
    session = get_spark("cdp-tests")
    mp.undo()
    get_settings.cache_clear()
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _release_spark_caches():
    """After each test, the run's one session forgets the tables the test read (Delta keeps
    each table's log and snapshot plans an hour: a whole run's worth filled the heap)."""
    yield
    from pyspark.sql import SparkSession

    from jobs.common.spark import release_caches

    session = SparkSession.getActiveSession() or SparkSession._instantiatedSession
    if session is not None:
        release_caches(session)


@pytest.fixture
def lake(tmp_path, monkeypatch):
    """Settings pointing at a fresh, empty lake (and var, landing, exports) under tmp_path."""
    for k, v in _lake_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
