"""Parsing of stream events (static DataFrame) and the cart-abandonment processor (TwsTester)."""

import json
from datetime import datetime

import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.sql.streaming import TwsTester

from jobs.stream.triggers import (
    TRIGGER_TYPE,
    CartAbandonmentProcessor,
    parse_events,
    quarantined_events,
    trigger_id,
    valid_events,
)

TS = "2026-11-22T10:00:00+08:00"


def _event(**overrides):
    event = {
        "event_id": "e1",
        "event_type": "add_to_cart",
        "customer_key": "c1",
        "product_id": "p1",
        "ts": TS,
    }
    event.update(overrides)
    return json.dumps({k: v for k, v in event.items() if v is not ...})


def _kafka_df(spark, values):
    rows = [
        (None if v is None else v.encode(), "cdp.events", 0, offset, None)
        for offset, v in enumerate(values)
    ]
    return spark.createDataFrame(
        rows, "value binary, topic string, partition int, offset long, timestamp timestamp"
    )


def test_parse_events_keeps_good_rows_and_gives_every_bad_row_a_reason(spark):
    values = [
        _event(),
        _event(event_id="e2", event_type="order_paid", product_id=None),
        "{not json",
        _event(event_id="e3", customer_key=...),
        _event(event_id="e4", customer_key="  "),
        _event(event_id=...),
        _event(event_id="e6", event_type=...),
        _event(event_id="e7", ts=...),
        _event(event_id="e8", ts="yesterday"),
        None,
    ]
    parsed = parse_events(_kafka_df(spark, values))
    assert parsed.count() == len(values)

    good = valid_events(parsed).orderBy("event_id").collect()
    assert [(r.event_id, r.event_type, r.customer_key, r.product_id) for r in good] == [
        ("e1", "add_to_cart", "c1", "p1"),
        ("e2", "order_paid", "c1", None),
    ]
    epoch = valid_events(parsed).where("event_id = 'e1'").select(F.unix_seconds("ts")).first()[0]
    assert epoch == int(datetime.fromisoformat(TS).timestamp())  # the offset is honoured

    bad = {r.kafka_offset: r for r in quarantined_events(parsed).collect()}
    assert {offset: r.reason for offset, r in bad.items()} == {
        2: "malformed_json",
        3: "missing_customer_key",
        4: "missing_customer_key",
        5: "missing_event_id",
        6: "missing_event_type",
        7: "missing_ts",
        8: "invalid_ts",
        9: "empty_value",
    }
    assert bad[2].raw_value == "{not json"
    assert (bad[2].kafka_topic, bad[2].kafka_partition) == ("cdp.events", 0)


def _events(customer, *rows):
    return pd.DataFrame(
        [
            {
                "customer_key": customer,
                "event_id": eid,
                "event_type": etype,
                "product_id": pid,
                "ts_ms": ts_ms,
            }
            for eid, etype, pid, ts_ms in rows
        ]
    )


@pytest.fixture
def tester():
    tester = TwsTester(CartAbandonmentProcessor(5), timeMode="ProcessingTime", outputMode="Update")
    tester.setProcessingTime(1_000)
    return tester


def test_cart_without_order_fires_once_after_the_timeout(tester):
    tester.testInPandas(
        "A",
        _events(
            "A",
            ("a1", "add_to_cart", "p1", 10),
            ("a2", "add_to_cart", "p2", 11),
            ("a3", "add_to_cart", "p1", 12),
        ),
    )
    assert tester.setProcessingTime(5_999).empty  # timer at 1_000 + 5 s

    fired = tester.setProcessingTime(6_000).to_dict("records")
    assert fired == [
        {
            "trigger_id": trigger_id("A", "a1"),
            "trigger_type": TRIGGER_TYPE,
            "customer_key": "A",
            "first_event_id": "a1",
            "cart_started_ms": 10,
            "items": ["p1", "p2"],
            "abandon_after_seconds": 5,
            "emitted_ms": 6_000,
        }
    ]
    assert tester.peekValueState("cart", "A") is None
    assert tester.setProcessingTime(60_000).empty


def test_order_within_the_window_cancels_the_cart(tester):
    tester.testInPandas("B", _events("B", ("b1", "add_to_cart", "p1", 10)))
    tester.setProcessingTime(3_000)
    tester.testInPandas("B", _events("B", ("b2", "order_paid", None, 20)))
    assert tester.peekValueState("cart", "B") is None
    assert tester.setProcessingTime(60_000).empty


def test_events_of_one_batch_apply_in_event_time_order(tester):
    # add then order (same batch, rows out of order): no cart left
    tester.testInPandas(
        "B", _events("B", ("b2", "order_created", None, 20), ("b1", "add_to_cart", "p1", 10))
    )
    assert tester.peekValueState("cart", "B") is None
    # order then add: the cart stays open
    tester.testInPandas(
        "C", _events("C", ("c2", "add_to_cart", "p1", 20), ("c1", "order_paid", None, 10))
    )
    assert tester.peekValueState("cart", "C")[0] == "c2"


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        CartAbandonmentProcessor(0)
