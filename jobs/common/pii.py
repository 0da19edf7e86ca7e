"""PII tokenization for silver: keyed HMAC-SHA256, computed natively in Spark. (What is
tokenized, and how each value is normalized first: jobs/silver/vault.py, jobs/common/clean.)

A token is stable for a given key (so joins across sources work) and useless without the key
(PIPL: pseudonymized personal information). HMAC is spelled out with Spark's own sha2/unhex/concat
rather than a Python UDF, so tokenizing a billion rows never leaves the JVM; a unit test checks it
against Python's `hmac` byte for byte.
"""

from __future__ import annotations

import hashlib

from pyspark.sql import Column
from pyspark.sql import functions as F

_BLOCK = 64  # SHA-256 block size in bytes


def _pads(key: bytes) -> tuple[bytearray, bytearray]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    return bytearray(b ^ 0x36 for b in key), bytearray(b ^ 0x5C for b in key)


def hmac_sha256_hex(value: Column, key: bytes, *, namespace: str = "") -> Column:
    """HMAC-SHA256 of `namespace + value` (UTF-8) as 64 lowercase hex chars; null stays null."""
    ipad, opad = _pads(key)
    message = F.concat(F.lit(namespace), value) if namespace else value
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), message.cast("binary")), 256))
    return F.sha2(F.concat(F.lit(opad), inner), 256)
