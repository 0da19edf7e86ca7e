"""The cart-abandonment stream job: Kafka events in; triggers to Kafka and to a Delta audit table.

Why one query with one foreachBatch (rather than one query per sink): quarantined events and
triggers then share one checkpoint and one batch id, so a micro-batch is either fully recorded or
redone as a whole. Both branches of the plan (triggers from the stateful processor, bad records
from the parser) are unioned into one envelope stream and split again inside the batch.

Delivery guarantees, per sink:
  * Delta audit table and quarantine table: exactly-once. Each write carries Delta's idempotent
    write options ``txnAppId`` (this query's id, which lives in the checkpoint) and
    ``txnVersion`` (the batch id); Delta skips a (appId, version) it has already committed, so a
    batch replayed after a crash does not append twice. A new checkpoint is a new query id, so a
    fresh start is not mistaken for a replay.
  * Kafka triggers topic: at-least-once (Kafka's sink has no transactions in Spark). Consumers
    deduplicate on ``trigger_id``, which is deterministic.
The audit table is written before Kafka, so anything on the topic is also in the audit table.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from jobs.common import lake
from jobs.common.errors import CdpError
from jobs.common.settings import get_settings
from jobs.common.spark import get_spark
from jobs.stream.triggers import (
    cart_abandonment,
    parse_events,
    quarantined_events,
    to_kafka_records,
    valid_events,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

QUERY_NAME = "cart_abandonment"
AUDIT_TABLE = ("ops", "trigger_audit")
QUARANTINE_TABLE = ("quarantine", "stream_events")
KIND_TRIGGER = "trigger"
KIND_QUARANTINE = "quarantine"


def stream_outputs(source_df: DataFrame, timeout_seconds: int) -> DataFrame:
    """Kafka-shaped records -> one envelope stream: (kind, trigger struct, quarantine struct).

    Pure (no I/O), so it runs the same on a Kafka source and on a file source in tests.
    """
    parsed = parse_events(source_df)
    triggers = cart_abandonment(valid_events(parsed), timeout_seconds)
    bad = quarantined_events(parsed)
    trigger_type = triggers.select(F.struct(*triggers.columns).alias("t")).schema["t"].dataType
    bad_type = bad.select(F.struct(*bad.columns).alias("q")).schema["q"].dataType
    return triggers.select(
        F.lit(KIND_TRIGGER).alias("kind"),
        F.struct(*triggers.columns).alias("trigger"),
        F.lit(None).cast(bad_type).alias("quarantine"),
    ).unionByName(
        bad.select(
            F.lit(KIND_QUARANTINE).alias("kind"),
            F.lit(None).cast(trigger_type).alias("trigger"),
            F.struct(*bad.columns).alias("quarantine"),
        )
    )


def _query_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query's id, persisted in the checkpoint's `metadata` file at first start."""
    first = spark.read.text(f"{checkpoint.rstrip('/')}/metadata").first()
    if first is None:
        raise CdpError(f"streaming checkpoint {checkpoint} has an empty metadata file")
    return str(json.loads(first[0])["id"])


class BatchWriter:
    """The foreachBatch function: quarantine + audit (idempotent Delta) + Kafka (at-least-once)."""

    def __init__(
        self,
        *,
        checkpoint: str,
        audit_path: str,
        quarantine_path: str,
        bootstrap_servers: str | None,
        triggers_topic: str,
    ) -> None:
        self.checkpoint = checkpoint
        self.audit_path = audit_path
        self.quarantine_path = quarantine_path
        self.bootstrap_servers = bootstrap_servers
        self.triggers_topic = triggers_topic
        self._app_id: str | None = None
        self.batches = 0
        self.triggers = 0
        self.quarantined = 0

    def app_id(self, spark: SparkSession) -> str:
        if self._app_id is None:
            self._app_id = f"cdp.stream.{QUERY_NAME}.{_query_id(spark, self.checkpoint)}"
        return self._app_id

    def _append_once(self, df: DataFrame, path: str, batch_id: int) -> None:
        (
            df.write.format("delta")
            .mode("append")
            .option("txnAppId", self.app_id(df.sparkSession))
            .option("txnVersion", batch_id)
            .save(path)
        )

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        # The batch plan (Kafka read, parse, stateful processor) must run once: it feeds up to
        # three writes, and the stateful part must not be recomputed per write.
        batch_df = batch_df.persist()
        try:
            counts = {r["kind"]: r["count"] for r in batch_df.groupBy("kind").count().collect()}
            log.debug("batch %s: computed in %.1fs", batch_id, time.monotonic() - started)
            if counts.get(KIND_QUARANTINE):
                bad = (
                    batch_df.filter(F.col("kind") == KIND_QUARANTINE)
                    .select("quarantine.*")
                    .withColumn("batch_id", F.lit(batch_id).cast("long"))
                    .withColumn("quarantined_at", F.current_timestamp())
                )
                self._append_once(bad.coalesce(1), self.quarantine_path, batch_id)
                log.debug(
                    "batch %s: quarantine written at %.1fs", batch_id, time.monotonic() - started
                )
            if counts.get(KIND_TRIGGER):
                triggers = batch_df.filter(F.col("kind") == KIND_TRIGGER).select("trigger.*")
                audit = triggers.withColumn("batch_id", F.lit(batch_id).cast("long"))
                self._append_once(audit.coalesce(1), self.audit_path, batch_id)
                log.debug("batch %s: audit written at %.1fs", batch_id, time.monotonic() - started)
                if self.bootstrap_servers:
                    (
                        to_kafka_records(triggers)
                        .write.format("kafka")
                        .option("kafka.bootstrap.servers", self.bootstrap_servers)
                        .option("topic", self.triggers_topic)
                        .save()
                    )
            self.batches += 1
            self.triggers += counts.get(KIND_TRIGGER, 0)
            self.quarantined += counts.get(KIND_QUARANTINE, 0)
            if counts:
                log.info(
                    "batch %s: %d triggers, %d quarantined (%.1fs)",
                    batch_id,
                    counts.get(KIND_TRIGGER, 0),
                    counts.get(KIND_QUARANTINE, 0),
                    time.monotonic() - started,
                )
        finally:
            batch_df.unpersist()


@dataclass(frozen=True)
class RunSummary:
    """What one `run` did (counts are for this run only, not the whole checkpoint)."""

    query_id: str
    checkpoint: str
    batches: int
    triggers: int
    quarantined: int


def _stop_gracefully(query: StreamingQuery, wait_seconds: float = 60) -> None:
    """Stop between micro-batches when possible, so a demo does not cut a batch in half.

    An interrupted batch is safe (it is redone on the next start, and the Delta writes are
    idempotent) but noisy: Spark logs the interrupt of the foreachBatch function at length.
    """
    deadline = time.monotonic() + wait_seconds
    while query.isActive and time.monotonic() < deadline:
        if not query.status.get("isTriggerActive"):
            break
        time.sleep(0.05)
    query.stop()


def stop(spark: SparkSession | None = None, wait_seconds: float = 60) -> bool:
    """Gracefully stop this session's running cart-abandonment query (e.g. from the thread that
    is not blocked in `run`); `run` then returns. True if a query was running."""
    spark = spark or get_spark("cdp-stream-cart-abandonment")
    for query in spark.streams.active:
        if query.name == QUERY_NAME:
            _stop_gracefully(query, wait_seconds)
            return True
    return False


def run(
    bootstrap_servers: str | None = None,
    *,
    timeout_seconds: int | None = None,
    run_seconds: float | None = None,
    checkpoint_dir: str | None = None,
    starting_offsets: str = "earliest",
    trigger_interval: str = "5 seconds",
) -> RunSummary:
    """Run the cart-abandonment stream from the events topic.

    timeout_seconds: N of "no order within N seconds" (default stream.cart_abandon_seconds).
    run_seconds: stop gracefully this long after the query started (demos, tests); None = run
    until terminated (Ctrl-C, or `stop` from another thread).
    checkpoint_dir: default {stream.checkpoint_dir}/cart_abandonment.
    trigger_interval: micro-batch period. Processing-time timers fire only when a micro-batch
    runs, so a trigger is emitted between N and N + interval seconds after the cart.
    """
    from jobs.stream import broker

    settings = get_settings()
    bootstrap = bootstrap_servers or broker.bootstrap_servers(settings)
    timeout = int(
        settings.stream.cart_abandon_seconds if timeout_seconds is None else timeout_seconds
    )
    checkpoint = checkpoint_dir or f"{settings.stream.checkpoint_dir.rstrip('/')}/{QUERY_NAME}"
    events_topic, triggers_topic = settings.kafka.events_topic, settings.kafka.triggers_topic
    broker.ensure_topics(bootstrap, [events_topic, triggers_topic])

    spark = get_spark("cdp-stream-cart-abandonment")
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", events_topic)
        .option("startingOffsets", starting_offsets)
        .load()
    )
    writer = BatchWriter(
        checkpoint=checkpoint,
        audit_path=lake.table_path(*AUDIT_TABLE, settings=settings),
        quarantine_path=lake.table_path(*QUARANTINE_TABLE, settings=settings),
        bootstrap_servers=bootstrap,
        triggers_topic=triggers_topic,
    )
    query = (
        stream_outputs(source, timeout)
        .writeStream.queryName(QUERY_NAME)
        .outputMode("update")
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime=trigger_interval)
        .foreachBatch(writer)
        .start()
    )
    log.info("stream %s started (query id %s, checkpoint %s)", QUERY_NAME, query.id, checkpoint)
    try:
        if run_seconds is None:
            query.awaitTermination()
        else:
            query.awaitTermination(run_seconds)
    except KeyboardInterrupt:
        log.info("interrupted: stopping %s", QUERY_NAME)
    finally:
        if query.isActive:
            _stop_gracefully(query)
    error = query.exception()
    if error is not None:
        first_line = (str(error).strip().splitlines() or ["unknown error"])[0]
        raise CdpError(f"stream {QUERY_NAME} failed: {first_line}") from error
    return RunSummary(
        query_id=str(query.id),
        checkpoint=checkpoint,
        batches=writer.batches,
        triggers=writer.triggers,
        quarantined=writer.quarantined,
    )
