"""Publishing events to Kafka: the demo's and tests' stand-in for the apps' event collectors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from jobs.common.settings import get_settings


def produce(
    events: Iterable[dict | bytes],
    *,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    rate: float = 0.0,
) -> int:
    """Send events (dicts as JSON, bytes as they are), keyed by customer_key; returns the count."""
    from kafka import KafkaProducer

    from jobs.stream import broker

    settings = get_settings()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers or broker.bootstrap_servers(settings),
        acks="all",
        linger_ms=5,
    )
    topic = topic or settings.kafka.events_topic
    n = 0
    try:
        for event in events:
            if isinstance(event, bytes):
                key, value = None, event
            else:
                key = str(event.get("customer_key") or "").encode() or None
                value = json.dumps(event, ensure_ascii=False).encode()
            producer.send(topic, key=key, value=value)
            n += 1
            if rate > 0:
                time.sleep(1.0 / rate)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    return n


def read_events(path: Path, limit: int | None = None) -> list[dict]:
    events = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                events.append(json.loads(line))
    return events[-limit:] if limit else events


def produce_file(path: Path, *, rate: float = 0.0, limit: int | None = None) -> int:
    return produce(read_events(path, limit), rate=rate)
