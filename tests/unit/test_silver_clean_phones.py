"""Phones: E.164 through the native fast path and libphonenumber, masked, relay and junk
numbers, partial (masked) phones, display masks, with the mess the simulator makes."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from jobs.common.clean import phones
from jobs.common.clean._text import junk
from jobs.simulator import ids
from jobs.simulator.files import masked_phone
from jobs.simulator.mess import JUNK_PHONES, to_fullwidth

SEED = 7

# (as typed, E.164 or None). 13912345670 is a plain mobile that no junk rule lists.
CASES = [
    ("13912345670", "+8613912345670"),
    ("+86 139 1234 5670", "+8613912345670"),
    ("+86-139-1234-5670", "+8613912345670"),
    ("0086 139 1234 5670", "+8613912345670"),
    ("8613912345670", "+8613912345670"),
    ("(139) 1234-5670", "+8613912345670"),
    ("１３９１２３４５６７０", "+8613912345670"),  # full-width digits (simulator)
    ("＋８６　１３９１２３４５６７０", "+8613912345670"),  # full-width plus, ideographic space
    ("13912345670.0", "+8613912345670"),  # a spreadsheet number cell read as a float
    # Masked: a partial identifier, not a phone.
    ("139****5670", None),
    ("１３９＊＊＊＊５６７０", None),
    ("139xxxx5670", None),
    # Relay (privacy) numbers with an extension, and any extension.
    ("17058430806-6878", None),
    ("13912345670转1234", None),
    ("13912345670 转 1234", None),
    ("021-12345678 ext. 12", None),
    ("010-12345678-801", None),
    # Junk (junk.yaml).
    ("13800138000", None),
    ("+86 138 0013 8000", None),
    ("13333333333", None),
    ("18600000000", None),
    ("13812345678", None),
    ("12345678901", None),
    ("00000000000", None),
    ("11111111111", None),
    # Landlines are phones.
    ("021-12345678", "+862112345678"),
    ("(0571)87654321", "+8657187654321"),
    ("+86 21 1234 5678", "+862112345678"),
    # Hotlines are not a person's line.
    ("400-812-3123", None),
    ("800-820-8820", None),
    # Outside the mainland.
    ("+852 9123 4567", "+85291234567"),
    ("85291234567", "+85291234567"),  # the + forgotten
    ("+853 6612 3456", "+85366123456"),
    ("+886 912 345 678", "+886912345678"),
    ("+1 650 253 0000", "+16502530000"),
    ("+44 20 7946 0000", "+442079460000"),
    # Not a phone.
    ("1391234567", None),
    ("abc", None),
    ("", None),
    ("   ", None),
    (None, None),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_normalize_phone_py(raw, expected):
    assert phones.normalize_phone_py(raw) == expected


def test_normalize_phone_spark_matches_cases_and_twin(spark):
    df = spark.createDataFrame([(i, raw) for i, (raw, _) in enumerate(CASES)], "i int, raw string")
    got = {
        r.i: r.phone
        for r in df.select("i", phones.normalize_phone(F.col("raw")).alias("phone")).collect()
    }
    assert [got[i] for i in range(len(CASES))] == [expected for _, expected in CASES]


def test_only_leftover_rows_reach_the_udf(spark):
    """Spark runs a Python UDF for every row of its input: decided rows must be handed null."""
    df = spark.createDataFrame([("13912345670",)], "raw string")
    plan = df.select(phones.normalize_phone("raw"))._jdf.queryExecution().executedPlan().toString()
    assert "_phone_udf(CASE WHEN" in plan


def test_every_listed_junk_number_is_blocked(spark):
    listed = junk("phones")["exact"]
    assert listed, "junk.yaml lists no phone"
    assert all(phones.normalize_phone_py(n) is None for n in listed)
    df = spark.createDataFrame([(n,) for n in listed], "raw string")
    assert df.select(phones.normalize_phone("raw").alias("p")).where("p is not null").count() == 0


def test_junk_patterns_leave_ordinary_numbers_alone():
    ordinary = [ids.phone(SEED, slot) for slot in range(200)]
    assert all(phones.normalize_phone_py(n) == "+86" + n for n in ordinary)


def test_simulator_mess():
    phone = ids.phone(SEED, 3)
    assert phones.normalize_phone_py(to_fullwidth(phone)) == "+86" + phone
    assert phones.normalize_phone_py(masked_phone(phone)) is None
    assert phones.partial_phone_py(masked_phone(phone)) == f"{phone[:3]}****{phone[-4:]}"
    assert phones.normalize_phone_py(ids.virtual_phone(SEED, "douyin:1")) is None
    burner = ids.burner_phone(SEED, "RING-x-00")
    assert phones.normalize_phone_py(burner) == "+86" + burner  # a real SIM: a real number
    assert all(phones.normalize_phone_py(j) is None for j in JUNK_PHONES)


PARTIAL_CASES = [
    ("138****1234", "138****1234"),
    ("+86 138 **** 1234", "138****1234"),
    ("１３８＊＊＊＊１２３４", "138****1234"),
    ("138***1234", "138****1234"),  # another platform's star count
    ("138xxxx1234", "138****1234"),
    ("13812341234", None),  # a full number is not a partial one
    ("****1234", None),
    ("17058430806-6878", None),
    (None, None),
]


@pytest.mark.parametrize(("raw", "expected"), PARTIAL_CASES)
def test_partial_phone_py(raw, expected):
    assert phones.partial_phone_py(raw) == expected


def test_partial_and_mask_spark(spark):
    rows = [(i, raw) for i, (raw, _) in enumerate(PARTIAL_CASES)]
    df = spark.createDataFrame(rows, "i int, raw string")
    got = {r.i: r.p for r in df.select("i", phones.partial_phone("raw").alias("p")).collect()}
    assert [got[i] for i in range(len(PARTIAL_CASES))] == [e for _, e in PARTIAL_CASES]

    masks = spark.createDataFrame(
        [("+8613912345670",), ("+85291234567",), ("+862112345678",), (None,)], "p string"
    )
    assert [r.m for r in masks.select(phones.mask_phone("p").alias("m")).collect()] == [
        "+86 139****5670",
        "+852****4567",
        "+8621****5678",
        None,
    ]
