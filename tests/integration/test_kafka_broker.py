"""The local broker lifecycle (start/status/stop, idempotent) against a real Kafka JVM."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from jobs.common.errors import CdpError
from jobs.common.settings import get_settings
from jobs.stream import broker

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def isolated_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CDP_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CDP_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    get_settings.cache_clear()
    try:
        yield tmp_path / "var"
    finally:
        broker.stop()  # never leave a JVM behind, even when an assertion failed
        get_settings.cache_clear()


def _roundtrip(bootstrap: str, topic: str, n: int = 5) -> list[bytes]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        for i in range(n):
            producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        producer.flush(timeout=20)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15000,
    )
    values: list[bytes] = []
    try:
        for record in consumer:
            values.append(record.value)
            if len(values) == n:
                break
    finally:
        consumer.close()
    return values


def test_broker_lifecycle(isolated_var: Path) -> None:
    assert broker.status() is None
    with pytest.raises(CdpError, match="no Kafka broker"):
        broker.bootstrap_servers()

    info = broker.start(wait_seconds=90)
    kafka_dir = isolated_var / "kafka"
    assert info.bootstrap_servers.startswith("127.0.0.1:")
    assert json.loads((kafka_dir / "broker.json").read_text())["pid"] == info.pid
    assert (kafka_dir / "config" / "server.properties").exists()
    assert (kafka_dir / "data" / "meta.properties").exists()
    assert broker.status() == info
    assert broker.bootstrap_servers() == info.bootstrap_servers
    assert broker.start().pid == info.pid  # idempotent: same JVM

    broker.ensure_topics(info.bootstrap_servers, ["cdp.test.events"], partitions=2)
    broker.ensure_topics(info.bootstrap_servers, ["cdp.test.events"])  # exists: no error
    # two partitions: order holds per key, not across the topic
    assert sorted(_roundtrip(info.bootstrap_servers, "cdp.test.events")) == [
        f"v{i}".encode() for i in range(5)
    ]
    # auto.create.topics.enable: producing to an unknown topic creates it
    assert len(_roundtrip(info.bootstrap_servers, "cdp.test.auto", n=3)) == 3

    assert broker.stop() is True
    assert broker.status() is None
    assert not (kafka_dir / "broker.json").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(info.pid, 0)
    assert broker.stop() is False  # idempotent


def test_configured_bootstrap_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_KAFKA__BOOTSTRAP_SERVERS", "kafka-1.example:9092")
    get_settings.cache_clear()
    try:
        assert broker.bootstrap_servers() == "kafka-1.example:9092"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_session_fixture_serves(kafka_broker: broker.BrokerInfo) -> None:
    # `kafka_broker` comes from tests/integration/kafka_fixtures.py (a pytest plugin in conftest)
    assert broker.status() is None or broker.status() != kafka_broker  # not the default var dir
    assert _roundtrip(kafka_broker.bootstrap_servers, "cdp.test.fixture", n=2) == [b"v0", b"v1"]
