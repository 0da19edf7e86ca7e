"""Masking for text people read outside the raw layers (quality results, reports, logs).

Bronze and quarantine hold raw personal data for the pipeline; anything derived for people
(ops.quality_results, the quality reports) must not carry a phone number or an email address
that a failing expectation happened to quote. Long digit runs (phones, ids; ASCII or full-width)
keep their first 3 and last 2 digits, emails their first character and domain.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9０-９]{7,}")
_EMAIL = re.compile(r"([^\s@'\"]{1})[^\s@'\"]*@([^\s@'\"]+)")


def mask_pii(text: str) -> str:
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _DIGITS.sub(lambda m: m.group()[:3] + "*" * (len(m.group()) - 5) + m.group()[-2:], text)
