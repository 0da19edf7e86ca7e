"""Cart-abandonment triggers from the live event stream: the pure, testable part of the stream job.

Why a stateful processor with processing-time timers (``transformWithStateInPandas``) rather than a
windowed join of carts against orders: "no order within N seconds" is an *absence* of an event, and
only a timer can fire on nothing happening. Per customer we keep at most one pending cart in the
RocksDB state store; an order clears it (and its timer); a timer that fires emits one trigger.

Why events are parsed here and not trusted: the topic is fed by shop front-ends we do not control.
A message that is not JSON, or lacks the customer it belongs to, is never dropped silently: it gets
an ``_error`` reason and the job writes it to the quarantine table with its Kafka coordinates.

Why the trigger id is a hash of (customer, first cart event): a replayed micro-batch, or a
restarted query, emits the same id, so the Kafka consumers (at-least-once) can deduplicate and the
audit table can be checked for exactly-once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.streaming.stateful_processor import (
    ExpiredTimerInfo,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)
from pyspark.sql.types import (
    ArrayType,
    LongType,
    StringType,
    StructField,
    StructType,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TRIGGER_TYPE = "cart_abandoned"
CART_EVENT = "add_to_cart"
ORDER_EVENTS = ("order_paid", "order_created")

# The JSON value of a message on the events topic. `ts` is ISO-8601 with an offset; it is read
# as a string and converted with try_cast so a bad timestamp becomes a quarantine reason, not a
# failed query (Spark 4 runs with ANSI casts on).
EVENT_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("event_type", StringType()),
        StructField("customer_key", StringType()),
        StructField("product_id", StringType()),
        StructField("ts", StringType()),
    ]
)

# Columns of a parsed event that the stateful processor sees (plus customer_key, the group key).
EVENT_COLUMNS = ("event_id", "event_type", "customer_key", "product_id", "ts")

# State kept per customer: the one pending cart.
CART_STATE_SCHEMA = StructType(
    [
        StructField("first_event_id", StringType()),
        StructField("cart_started_ms", LongType()),
        StructField("items", ArrayType(StringType())),
        StructField("timer_ms", LongType()),
    ]
)

# What the processor emits. Times are epoch milliseconds (longs) so no time zone is involved in
# the pandas <-> Arrow hop; `cart_abandonment` turns them into timestamps.
PROCESSOR_OUTPUT_SCHEMA = StructType(
    [
        StructField("trigger_id", StringType()),
        StructField("trigger_type", StringType()),
        StructField("customer_key", StringType()),
        StructField("first_event_id", StringType()),
        StructField("cart_started_ms", LongType()),
        StructField("items", ArrayType(StringType())),
        StructField("abandon_after_seconds", LongType()),
        StructField("emitted_ms", LongType()),
    ]
)


def trigger_id(customer_key: str, first_event_id: str) -> str:
    """Deterministic id of a trigger: the same cart always yields the same id."""
    return hashlib.sha256(f"{customer_key}|{first_event_id}".encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _blank(column: str) -> F.Column:
    return F.col(column).isNull() | (F.trim(F.col(column)) == "")


def parse_events(kafka_df: DataFrame) -> DataFrame:
    """Parse Kafka records (value, topic, partition, offset, timestamp) into events.

    Every input row comes out once, with ``_error`` null for a usable event or a short reason
    (``empty_value``, ``malformed_json``, ``missing_customer_key``, ``missing_event_id``,
    ``missing_event_type``, ``missing_ts``, ``invalid_ts``). Split with `valid_events` and
    `quarantined_events`.
    """
    raw = F.col("value").cast("string")
    parsed = kafka_df.select(
        raw.alias("raw_value"),
        F.from_json(raw, EVENT_SCHEMA).alias("e"),
        F.try_parse_json(raw).isNotNull().alias("_is_json"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
    ).select(
        "raw_value",
        "_is_json",
        F.col("e.event_id").alias("event_id"),
        F.col("e.event_type").alias("event_type"),
        F.col("e.customer_key").alias("customer_key"),
        F.col("e.product_id").alias("product_id"),
        F.col("e.ts").alias("ts_raw"),
        F.col("e.ts").try_cast("timestamp").alias("ts"),
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
    )
    error = (
        F.when(_blank("raw_value"), F.lit("empty_value"))
        .when(~F.col("_is_json"), F.lit("malformed_json"))
        .when(_blank("customer_key"), F.lit("missing_customer_key"))
        .when(_blank("event_id"), F.lit("missing_event_id"))
        .when(_blank("event_type"), F.lit("missing_event_type"))
        .when(_blank("ts_raw"), F.lit("missing_ts"))
        .when(F.col("ts").isNull(), F.lit("invalid_ts"))
    )
    return parsed.withColumn("_error", error).drop("_is_json", "ts_raw")


def valid_events(parsed: DataFrame) -> DataFrame:
    """The usable events of `parse_events`, with only the event columns."""
    return parsed.filter(F.col("_error").isNull()).select(*EVENT_COLUMNS)


def quarantined_events(parsed: DataFrame) -> DataFrame:
    """The unusable records of `parse_events`, shaped for the quarantine table."""
    return parsed.filter(F.col("_error").isNotNull()).select(
        "raw_value",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        F.col("_error").alias("reason"),
    )


# --------------------------------------------------------------------------------------------
# The stateful processor
# --------------------------------------------------------------------------------------------


class CartAbandonmentProcessor(StatefulProcessor):
    """Per customer: remember the first open cart; an order closes it; a timer emits a trigger.

    The timer is set once, N seconds (processing time) after the cart's first add_to_cart; further
    adds only append items. Within one micro-batch a customer's events are applied in event-time
    order, so "add then order" in the same batch produces no trigger.
    """

    def __init__(self, timeout_seconds: int) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.timeout_seconds = int(timeout_seconds)

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.cart = handle.getValueState("cart", CART_STATE_SCHEMA)

    def handleInputRows(
        self, key: Any, rows: Iterator[pd.DataFrame], timerValues: TimerValues
    ) -> Iterator[pd.DataFrame]:
        events = pd.concat(list(rows), ignore_index=True)
        events = events.sort_values(["ts_ms", "event_id"], kind="stable")
        now_ms = timerValues.getCurrentProcessingTimeInMs()

        cart = self.cart.get() if self.cart.exists() else None
        changed = False
        for event in events.itertuples(index=False):
            if event.event_type == CART_EVENT:
                product = None if pd.isna(event.product_id) else str(event.product_id)
                if cart is None:
                    timer_ms = now_ms + self.timeout_seconds * 1000
                    cart = (
                        event.event_id,
                        int(event.ts_ms),
                        [product] if product else [],
                        timer_ms,
                    )
                    self.handle.registerTimer(timer_ms)
                elif product and product not in cart[2]:
                    cart = (cart[0], cart[1], [*cart[2], product], cart[3])
                changed = True
            elif event.event_type in ORDER_EVENTS and cart is not None:
                self.handle.deleteTimer(cart[3])
                cart = None
                changed = True

        if changed:
            if cart is None:
                self.cart.clear()
            else:
                self.cart.update(cart)
        return iter([])

    def handleExpiredTimer(
        self, key: Any, timerValues: TimerValues, expiredTimerInfo: ExpiredTimerInfo
    ) -> Iterator[pd.DataFrame]:
        if not self.cart.exists():
            return
        first_event_id, started_ms, items, timer_ms = self.cart.get()
        if timer_ms != expiredTimerInfo.getExpiryTimeInMs():
            return  # a stale timer of an earlier cart; the current cart has its own
        customer_key = key[0]
        self.cart.clear()
        yield pd.DataFrame(
            {
                "trigger_id": [trigger_id(customer_key, first_event_id)],
                "trigger_type": [TRIGGER_TYPE],
                "customer_key": [customer_key],
                "first_event_id": [first_event_id],
                "cart_started_ms": [int(started_ms)],
                "items": [list(items or [])],
                "abandon_after_seconds": [self.timeout_seconds],
                "emitted_ms": [timerValues.getCurrentProcessingTimeInMs()],
            }
        )

    def close(self) -> None:
        pass


def cart_abandonment(events_df: DataFrame, timeout_seconds: int) -> DataFrame:
    """Streaming triggers: customers with an add_to_cart and no order within `timeout_seconds`.

    `events_df` is `valid_events(...)` (a streaming DataFrame). Output columns: trigger_id,
    trigger_type, customer_key, first_event_id, cart_started_at, items, abandon_after_seconds,
    emitted_at.
    """
    relevant = events_df.filter(F.col("event_type").isin(CART_EVENT, *ORDER_EVENTS)).select(
        "customer_key",
        "event_id",
        "event_type",
        "product_id",
        F.unix_millis("ts").alias("ts_ms"),
    )
    emitted = relevant.groupBy("customer_key").transformWithStateInPandas(
        statefulProcessor=CartAbandonmentProcessor(timeout_seconds),
        outputStructType=PROCESSOR_OUTPUT_SCHEMA,
        outputMode="Update",
        timeMode="ProcessingTime",
    )
    return emitted.select(
        "trigger_id",
        "trigger_type",
        "customer_key",
        "first_event_id",
        F.timestamp_millis("cart_started_ms").alias("cart_started_at"),
        "items",
        "abandon_after_seconds",
        F.timestamp_millis("emitted_ms").alias("emitted_at"),
    )


def to_kafka_records(triggers_df: DataFrame) -> DataFrame:
    """Triggers as Kafka records: key = customer_key (keeps a customer's triggers in order),
    value = the trigger as JSON with ISO-8601 timestamps carrying their offset."""
    value = F.to_json(
        F.struct(*[F.col(c) for c in triggers_df.columns]),
        {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"},
    )
    return triggers_df.select(
        F.col("customer_key").cast("string").alias("key"), value.alias("value")
    )
