"""PII tokenization for silver: keyed HMAC-SHA256, computed natively in Spark.

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


_FULL_WIDTH = "０１２３４５６７８９＋"
_HALF_WIDTH = "0123456789+"


def normalize_cn_mobile(value: Column) -> Column:
    """A mainland mobile number as 11 digits, or null when it is masked, junk or not a mobile.

    Accepts full-width digits, spaces, dashes and a +86/0086/86 prefix. Masked numbers
    (138****1234) and privacy numbers with an extension (13800138000-1234) carry no identity
    and become null. Well-known junk numbers are blocked.
    """
    half = F.translate(value, _FULL_WIDTH, _HALF_WIDTH)
    # Privacy (virtual) numbers with an extension, as Douyin shows them: 13800138000-1234.
    virtual = half.rlike(r"^\s*1\d{10}\s*[-转]\s*\d{1,6}\s*$")
    digits = F.regexp_replace(half, r"[\s\-()]", "")
    digits = F.regexp_replace(digits, r"^(\+86|0086|86)(?=1\d{10}$)", "")
    valid = digits.rlike(r"^1[3-9]\d{9}$") & ~digits.isin(*JUNK_MOBILES) & ~virtual
    return F.when(valid, digits)


# Numbers people type when a form insists on a phone. Identity rules will move to YAML (One-ID).
JUNK_MOBILES = ("13800138000", "13000000000", "13888888888", "13900000000", "18888888888")
