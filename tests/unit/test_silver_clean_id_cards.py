"""Resident ID numbers: ISO 7064 MOD 11-2 check character, 15 -> 18 digits, birth date."""

from __future__ import annotations

import pytest

from jobs.common.clean import id_cards


def iso7064_check(first17: str) -> str:
    """Independent oracle: ISO 7064 MOD 11-2 in its recursive form (not the weights table)."""
    p = 0
    for ch in first17:
        p = (p + int(ch)) * 2 % 11
    value = (12 - p) % 11
    return "X" if value == 10 else str(value)


def with_check(first17: str) -> str:
    return first17 + iso7064_check(first17)


# GB 11643-1999's own example: Beijing Chaoyang, born 1949-12-31, check character X.
EXAMPLE = "11010519491231002X"

CASES = [
    (EXAMPLE, EXAMPLE),
    (EXAMPLE.lower(), EXAMPLE),
    ("110105491231002", EXAMPLE),  # the 15-digit form of the same person
    ("１１０１０５１９４９１２３１００２Ｘ", EXAMPLE),
    ("110105 19491231 002X", EXAMPLE),
    ("110105-19491231-002X", EXAMPLE),
    (with_check("32010619850315123"), with_check("32010619850315123")),
    ("110105194912310021", None),  # wrong check character
    (with_check("11010519490230002"), None),  # 30 February: checksum right, date impossible
    (with_check("44052418800101001"), None),  # born 1880: implausible
    (with_check("11010529990101001"), None),  # born in the future
    (with_check("01010519491231002"), None),  # no region code starts with 0
    ("ABCDEFGHIJKLMNOPQR", None),  # letters must not fail the job (ANSI casts)
    ("1101051949123100", None),
    ("1101051949123100211", None),
    ("", None),
    (None, None),
]


def test_oracle_agrees_with_the_standard_example():
    assert iso7064_check(EXAMPLE[:17]) == "X"


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_normalize_id_card_py(raw, expected):
    assert id_cards.normalize_id_card_py(raw) == expected


def test_normalize_id_card_and_mask_spark(spark):
    df = spark.createDataFrame([(i, raw) for i, (raw, _) in enumerate(CASES)], "i int, raw string")
    out = df.select("i", id_cards.normalize_id_card("raw").alias("n"))
    out = out.select("i", "n", id_cards.mask_id_card("n").alias("m"))
    got = {r.i: (r.n, r.m) for r in out.collect()}
    assert [got[i][0] for i in range(len(CASES))] == [e for _, e in CASES]
    assert got[0][1] == "1101**********002X"
    assert got[len(CASES) - 1][1] is None
