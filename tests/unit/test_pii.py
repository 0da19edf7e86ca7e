import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from jobs.common.pii import hmac_sha256_hex

KEY = b"unit-test-key-that-is-long-enough-0123456789"


@pytest.mark.parametrize("key", [KEY, b"k" * 64, b"x" * 100])
def test_spark_hmac_matches_python_hmac(spark, key):
    values = ["13912345678", "王小明", "", "a" * 200]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = [r.h for r in df.select(hmac_sha256_hex(F.col("v"), key).alias("h")).collect()]
    expected = [hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in values]
    assert got == expected


def test_namespace_separates_identical_values(spark):
    df = spark.createDataFrame([("123",)], "v string")
    row = df.select(
        hmac_sha256_hex(F.col("v"), KEY, namespace="phone:").alias("a"),
        hmac_sha256_hex(F.col("v"), KEY, namespace="tmall_open_uid:").alias("b"),
    ).first()
    assert row.a != row.b
    assert row.a == hmac.new(KEY, b"phone:123", hashlib.sha256).hexdigest()
