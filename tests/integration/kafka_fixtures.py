"""A real local Kafka broker (KRaft, loopback) shared by the integration tests of one session.

Loaded by tests/conftest.py as a plugin (`pytest_plugins`), so any test can request it.
The broker runs in its own tmp var dir, given through an explicit Settings object, so the
session's environment and the developer's own `cdp kafka start` broker are never touched.
Tests reach it through `kafka_broker.bootstrap_servers` (or by setting
CDP_KAFKA__BOOTSTRAP_SERVERS to it with monkeypatch). Startup costs ~7-10 s, once per session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobs.common.settings import Settings
from jobs.stream import broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[broker.BrokerInfo]:
    settings = Settings(var_dir=str(tmp_path_factory.mktemp("kafka-var")))
    info = broker.start(settings, wait_seconds=90)
    try:
        yield info
    finally:
        # At the end of the run: Spark caches Kafka producers, which would keep calling a
        # stopped broker (and log every second) while the rest of the session tears down.
        from pyspark.sql import SparkSession

        if (spark := SparkSession.getActiveSession()) is not None:
            spark.stop()
        broker.stop(settings, timeout=20)
