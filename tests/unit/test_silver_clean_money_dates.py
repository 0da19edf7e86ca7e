"""Money (decimal(18,2), fen, currency) and dates (birthdays, client timestamps with an offset,
business dates, unix times)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from jobs.common.clean import dates, money
from jobs.simulator.mess import to_fullwidth

MONEY_CASES = [
    ("1,234.50", Decimal("1234.50")),
    ("¥99.00", Decimal("99.00")),
    ("￥１２．５０", Decimal("12.50")),
    (to_fullwidth("1234.50"), Decimal("1234.50")),  # the simulator's full-width amount
    ("99元", Decimal("99.00")),
    ("RMB 88.8", Decimal("88.80")),
    ("-3.50", Decimal("-3.50")),
    ("12.345", Decimal("12.35")),  # to cents, half up
    ("-", None),  # 抖店's "no value"
    ("--", None),
    ("无退款申请", None),  # Tmall's refund column
    ("", None),
    (None, None),
]


def test_to_money_text(spark):
    df = spark.createDataFrame(list(enumerate(r for r, _ in MONEY_CASES)), "i int, raw string")
    out = df.select("i", money.to_money("raw").alias("m"))
    assert dict(out.dtypes)["m"] == "decimal(18,2)"
    got = {r.i: r.m for r in out.collect()}
    assert [got[i] for i in range(len(MONEY_CASES))] == [e for _, e in MONEY_CASES]


def test_to_money_numbers_and_fen(spark):
    df = spark.createDataFrame(
        [(12.5, 100, "12345", 12345.0), (None, 0, "12.5", None), (None, None, "abc", 1.0e7)],
        "d double, fen long, fen_text string, fen_float double",
    )
    out = df.select(
        money.to_money("d").alias("d"),
        money.fen_to_money("fen").alias("fen"),
        money.fen_to_money("fen_text").alias("fen_text"),
        money.fen_to_money("fen_float").alias("fen_float"),
    ).collect()
    assert [tuple(r) for r in out] == [
        (Decimal("12.50"), Decimal("1.00"), Decimal("123.45"), Decimal("123.45")),
        (None, Decimal("0.00"), None, None),  # fen are whole: 12.5 fen is not an amount
        (None, None, None, Decimal("100000.00")),
    ]


def test_currency_of(spark):
    raws = ["HK$10", "US$5", "10 美元", "€3", "¥5", "5", None]
    df = spark.createDataFrame(list(enumerate(raws)), "i int, raw string")
    got = {r.i: r.c for r in df.select("i", money.currency_of("raw").alias("c")).collect()}
    assert [got[i] for i in range(len(raws))] == ["HKD", "USD", "USD", "EUR", "CNY", "CNY", None]


BIRTHDAY_CASES = [
    ("1990-01-02", dt.date(1990, 1, 2)),
    ("19900102", dt.date(1990, 1, 2)),
    ("1990/1/2", dt.date(1990, 1, 2)),
    ("1990.1.2", dt.date(1990, 1, 2)),  # the simulator's store form
    ("1990.01.02", dt.date(1990, 1, 2)),
    ("1990年1月2日", dt.date(1990, 1, 2)),
    ("1990 年 1 月 2 日", dt.date(1990, 1, 2)),
    ("１９９０－０１－０２", dt.date(1990, 1, 2)),
    ("1990-01-02 00:00:00", dt.date(1990, 1, 2)),  # a date cell exported with its time
    ("32874", dt.date(1990, 1, 1)),  # an Excel serial day number
    ("1990-02-30", None),
    ("1990-13-01", None),
    ("1899-12-31", None),
    ("1900-01-01", None),  # the usual "unknown" default
    ("1900-01-02", dt.date(1900, 1, 2)),
    ("2999-01-01", None),
    ("1990", None),
    ("abc", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("raw", "expected"), BIRTHDAY_CASES)
def test_parse_birthday_py(raw, expected):
    assert dates.parse_birthday_py(raw) == expected


def test_parse_birthday_spark(spark):
    raws = [r for r, _ in BIRTHDAY_CASES]
    df = spark.createDataFrame(list(enumerate(raws)), "i int, raw string")
    got = {r.i: r.d for r in df.select("i", dates.parse_birthday("raw").alias("d")).collect()}
    assert [got[i] for i in range(len(raws))] == [e for _, e in BIRTHDAY_CASES]


def _micros(*args, tz=dt.UTC) -> int:
    instant = dt.datetime(*args, tzinfo=tz)
    return int(instant.timestamp()) * 1_000_000 + instant.microsecond


SHANGHAI = dt.timezone(dt.timedelta(hours=8))
CLIENT_TS_CASES = [
    ("2026-11-18T10:00:00.123+08:00", _micros(2026, 11, 18, 2, 0, 0, 123000)),
    ("2026-11-18T02:00:00Z", _micros(2026, 11, 18, 2)),
    ("2026-11-18T02:00:00z", _micros(2026, 11, 18, 2)),
    ("2026-11-18T10:00:00+0800", _micros(2026, 11, 18, 2)),
    ("2026-11-18T10:00:00+08", _micros(2026, 11, 18, 2)),
    ("2026-11-17T21:00:00-05:00", _micros(2026, 11, 18, 2)),
    ("2026-11-18 10:00:00", _micros(2026, 11, 18, 10, tz=SHANGHAI)),  # no offset: Shanghai
    ("1794967200123", _micros(2026, 11, 18, 2, 0, 0, 123000)),  # unix ms
    ("1794967200", _micros(2026, 11, 18, 2)),  # unix s
    ("garbage", None),
    (None, None),
]


def test_parse_client_ts_is_the_right_instant(spark):
    raws = [r for r, _ in CLIENT_TS_CASES]
    df = spark.createDataFrame(list(enumerate(raws)), "i int, raw string")
    out = df.select("i", F.unix_micros(dates.parse_client_ts("raw")).alias("us"))
    got = {r.i: r.us for r in out.collect()}
    assert [got[i] for i in range(len(raws))] == [e for _, e in CLIENT_TS_CASES]


def test_business_date_does_not_depend_on_the_session_zone(spark):
    # 2026-11-17 17:30 UTC is 2026-11-18 01:30 in Shanghai and 12:30 on the 17th in New York.
    df = spark.createDataFrame([("2026-11-17T17:30:00Z",)], "raw string")
    ts = dates.parse_client_ts("raw")
    cols = [
        dates.business_date(ts).alias("sh"),
        dates.business_date(ts, "UTC").alias("utc"),
        dates.business_date(ts, "America/New_York").alias("ny"),
    ]
    expected = (dt.date(2026, 11, 18), dt.date(2026, 11, 17), dt.date(2026, 11, 17))
    zone = spark.conf.get("spark.sql.session.timeZone")
    try:
        for session_zone in ("Asia/Shanghai", "UTC", "America/Los_Angeles"):
            spark.conf.set("spark.sql.session.timeZone", session_zone)
            assert tuple(df.select(*cols).first()) == expected
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)


def test_unix_times(spark):
    df = spark.createDataFrame(
        [(1794967200, "1794967200", 1794967200123.0), (0, "-1", 0.0), (None, "x", None)],
        "s long, s_text string, ms double",
    )
    out = df.select(
        F.unix_micros(dates.from_unix_seconds("s")).alias("s"),
        F.unix_micros(dates.from_unix_seconds("s_text")).alias("s_text"),
        F.unix_micros(dates.from_unix_millis("ms")).alias("ms"),
    ).collect()
    second = _micros(2026, 11, 18, 2)
    assert [tuple(r) for r in out] == [
        (second, second, second + 123000),
        (None, None, None),  # 0 and negatives are "unset"
        (None, None, None),
    ]
