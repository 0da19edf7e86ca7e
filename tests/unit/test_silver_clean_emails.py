"""Emails: trimmed, lower-cased, full-width folded, syntax-checked, junk blocked."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from jobs.common.clean import emails
from jobs.simulator import ids
from jobs.simulator.mess import JUNK_EMAIL

CASES = [
    (" Zhang.Wei@QQ.com ", "zhang.wei@qq.com"),
    ("ｚｈａｎｇ＠１６３．ｃｏｍ", "zhang@163.com"),  # typed in full-width mode
    ("li @ 126.com", "li@126.com"),
    ("mailto:li@126.com", "li@126.com"),
    ("user+tag@gmail.com", "user+tag@gmail.com"),
    ("xiaoming@qq.com", "xiaoming@qq.com"),  # a QQ mail alias, not a number: fine
    ("10001@qq.com", "10001@qq.com"),  # a five-digit QQ number: fine
    ("2876543210@qq.com", "2876543210@qq.com"),
    # Junk.
    (JUNK_EMAIL, None),  # test@test.com, the simulator's placeholder
    ("TEST@qq.com", None),
    ("noreply@brand.cn", None),
    ("someone@example.com", None),
    ("someone@mail.example", None),
    ("a@a.com", None),
    ("aa@aaa.com", None),
    ("123@qq.com", None),
    ("1234@qq.com", None),
    ("123456@qq.com", None),
    ("111111@qq.com", None),
    # Not an address.
    ("bad@@x.com", None),
    ("no-at-sign.com", None),
    ("x@y", None),
    ("zhang@qq", None),
    (".a@qq.com", None),
    ("a..b@qq.com", None),
    ("a.@qq.com", None),
    ("a@-qq.com", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_normalize_email_py(raw, expected):
    assert emails.normalize_email_py(raw) == expected


def test_normalize_email_spark(spark):
    df = spark.createDataFrame([(i, raw) for i, (raw, _) in enumerate(CASES)], "i int, raw string")
    out = df.select("i", emails.normalize_email(F.col("raw")).alias("e"))
    got = {r.i: r.e for r in out.collect()}
    assert [got[i] for i in range(len(CASES))] == [e for _, e in CASES]


def test_simulated_emails_survive():
    simulated = [ids.email(3, person) for person in range(100)]
    assert [emails.normalize_email_py(e) for e in simulated] == simulated


def test_mask_email(spark):
    df = spark.createDataFrame([("zhang.wei@qq.com",), (None,)], "e string")
    assert [r.m for r in df.select(emails.mask_email("e").alias("m")).collect()] == [
        "z***@qq.com",
        None,
    ]
