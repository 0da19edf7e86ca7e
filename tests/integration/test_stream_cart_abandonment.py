"""The cart-abandonment stream on a real Kafka broker, Spark and Delta: one trigger for the cart
left alone, none for the cart that became an order, the malformed message quarantined; and a
replayed micro-batch is not appended twice to the audit table."""

import json
import threading
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer
from pyspark.sql import functions as F

from jobs.common import lake as lake_io
from jobs.common.settings import get_settings
from jobs.stream import broker, job
from jobs.stream.triggers import TRIGGER_TYPE, trigger_id

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]
TS = "2026-11-22T10:00:0{}+08:00"


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for value in values:
            producer.send(topic, value)
        producer.flush(timeout=20)
    finally:
        producer.close()


def _event(event_id, event_type, customer, product=None, second=0) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": event_type,
            "customer_key": customer,
            "product_id": product,
            "ts": TS.format(second),
        }
    ).encode()


def _wait_for_trigger(bootstrap: str, topic: str, customer: str, deadline: float) -> list[dict]:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=2000
    )
    seen: list[dict] = []
    try:
        while time.monotonic() < deadline:
            seen += [json.loads(m.value) | {"_key": m.key.decode()} for m in consumer]
            if any(t["customer_key"] == customer for t in seen):
                break
    finally:
        consumer.close()
    return seen


def test_cart_abandonment_end_to_end(spark, lake, kafka_broker, monkeypatch):
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("CDP_KAFKA__EVENTS_TOPIC", f"test.events.{suffix}")
    monkeypatch.setenv("CDP_KAFKA__TRIGGERS_TOPIC", f"test.triggers.{suffix}")
    get_settings.cache_clear()
    settings = get_settings()
    bootstrap = kafka_broker.bootstrap_servers
    events, triggers = settings.kafka.events_topic, settings.kafka.triggers_topic
    broker.ensure_topics(bootstrap, [events, triggers])
    _produce(
        bootstrap,
        events,
        [
            _event("a1", "add_to_cart", "A", "p1"),
            _event("a2", "add_to_cart", "A", "p2", second=1),
            _event("b1", "add_to_cart", "B", "p1"),
            _event("b2", "order_paid", "B", second=2),  # within the window: no trigger
            _event("c1", "page_view", "C", "p3"),
            b"{not json",
        ],
    )

    result = {}
    runner = threading.Thread(
        target=lambda: result.update(
            summary=job.run(
                bootstrap, timeout_seconds=5, run_seconds=240, trigger_interval="2 seconds"
            )
        )
    )
    runner.start()
    try:
        seen = _wait_for_trigger(bootstrap, triggers, "A", time.monotonic() + 200)
    finally:
        job.stop(spark)
        runner.join(timeout=90)
    assert not runner.is_alive()
    summary = result["summary"]
    assert (summary.triggers, summary.quarantined) == (1, 1)

    # Kafka: exactly A's trigger (B ordered; C only browsed)
    assert [(t["_key"], t["trigger_id"]) for t in seen] == [("A", trigger_id("A", "a1"))]
    assert seen[0]["trigger_type"] == TRIGGER_TYPE
    assert seen[0]["items"] == ["p1", "p2"]
    assert seen[0]["cart_started_at"] == "2026-11-22T10:00:00.000+08:00"

    audit = spark.read.format("delta").load(lake_io.table_path("ops", "trigger_audit"))
    rows = audit.collect()
    assert [(r.customer_key, r.trigger_id, r.abandon_after_seconds) for r in rows] == [
        ("A", trigger_id("A", "a1"), 5)
    ]
    assert rows[0].emitted_at >= rows[0].cart_started_at

    quarantine = spark.read.format("delta").load(lake_io.table_path("quarantine", "stream_events"))
    bad = quarantine.collect()
    assert [(r.raw_value, r.reason, r.kafka_topic, r.kafka_offset) for r in bad] == [
        ("{not json", "malformed_json", events, 5)
    ]


def test_replayed_batch_is_not_appended_twice(spark, lake, tmp_path):
    """foreachBatch is at-least-once; the Delta txnAppId/txnVersion options make it exactly-once."""
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "metadata").write_text(json.dumps({"id": str(uuid.uuid4())}))
    audit_path = lake_io.table_path("ops", "trigger_audit")
    writer = job.BatchWriter(
        checkpoint=str(checkpoint),
        audit_path=audit_path,
        quarantine_path=lake_io.table_path("quarantine", "stream_events"),
        bootstrap_servers=None,  # Delta only
        triggers_topic="unused",
    )
    trigger = F.struct(
        F.lit("t1").alias("trigger_id"),
        F.lit(TRIGGER_TYPE).alias("trigger_type"),
        F.lit("A").alias("customer_key"),
        F.lit("a1").alias("first_event_id"),
        F.current_timestamp().alias("cart_started_at"),
        F.array(F.lit("p1")).alias("items"),
        F.lit(5).cast("long").alias("abandon_after_seconds"),
        F.current_timestamp().alias("emitted_at"),
    )
    batch = spark.range(1).select(
        F.lit(job.KIND_TRIGGER).alias("kind"),
        trigger.alias("trigger"),
        F.lit(None).cast("struct<raw_value:string>").alias("quarantine"),
    )

    writer(batch, 0)
    writer(batch, 0)  # the replay of batch 0 after a crash
    assert spark.read.format("delta").load(audit_path).count() == 1
    writer(batch, 1)  # the next batch is written
    assert spark.read.format("delta").load(audit_path).count() == 2
