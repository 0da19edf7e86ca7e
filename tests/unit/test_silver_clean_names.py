"""Names: NFKC, spaces, traditional -> simplified (OpenCC), junk names, masks."""

from __future__ import annotations

import random

import pytest

from jobs.common.clean import names

CASES = [
    (" 张 三 ", "张三"),
    ("马 飞华", "马飞华"),  # how the simulator's store clerks type a name
    ("王 芳 芳", "王芳芳"),
    ("張偉", "张伟"),  # traditional
    ("歐陽娜娜", "欧阳娜娜"),
    ("ＷＡＮＧ　ＦＡＮＧ", "Wang Fang"),  # full-width, all capitals
    ("john   smith", "John Smith"),
    ("McDonald", "McDonald"),  # mixed case kept as typed
    ("买买提 • 艾力", "买买提·艾力"),  # look-alike middle dot
    ("买买提・艾力", "买买提·艾力"),
    ("张女士", "张女士"),  # surname + honorific keeps its surname
    # Junk.
    ("先生", None),
    ("女士", None),
    ("小姐", None),
    ("测试", None),
    ("TEST", None),
    ("-", None),
    ("无", None),
    ("13800138000", None),
    ("", None),
    ("   ", None),
    (None, None),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_normalize_name_py(raw, expected):
    assert names.normalize_name_py(raw) == expected


def test_normalize_name_and_mask_spark(spark):
    df = spark.createDataFrame([(i, raw) for i, (raw, _) in enumerate(CASES)], "i int, raw string")
    out = df.select("i", names.normalize_name("raw").alias("n"))
    out = out.select("i", "n", names.mask_name("n").alias("m"))
    got = {r.i: (r.n, r.m) for r in out.collect()}
    assert [got[i][0] for i in range(len(CASES))] == [e for _, e in CASES]
    masks = {got[i][0]: got[i][1] for i in range(len(CASES)) if got[i][0]}
    assert masks["张三"] == "张*"
    assert masks["欧阳娜娜"] == "欧***"
    assert masks["Wang Fang"] == "W" + "*" * 8
    assert all(got[i][1] is None for i in range(len(CASES)) if got[i][0] is None)


def test_single_character_name_mask_hides_something(spark):
    df = spark.createDataFrame([("张",)], "n string")
    assert df.select(names.mask_name("n").alias("m")).first().m == "张*"


def test_simulated_store_variants_match_the_name():
    from jobs.simulator.world import GIVEN_F, SURNAMES

    rng = random.Random(1)
    for _ in range(50):
        name = rng.choice(SURNAMES) + rng.choice(GIVEN_F) + rng.choice(GIVEN_F)
        spaced = f"{name[0]} {name[1:]}"  # jobs/simulator/members.py _store_name
        assert names.normalize_name_py(spaced) == names.normalize_name_py(name) == name
