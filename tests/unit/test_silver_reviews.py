"""silver.reviews (jobs/silver/reviews.py): Tmall TradeRates -> buyers' reviews with metadata
instead of words, on tiny frames in the spec's bronze schema; and the GX suite."""

from datetime import timedelta
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from jobs.common.settings import PROJECT_ROOT
from jobs.quality.gate import validate
from jobs.silver.reviews import (
    REVIEW_COLUMNS,
    TABLES,
    build_reviews,
    rating,
    text_metadata,
    tmall_reviews,
)
from jobs.silver.table import Batch
from tests.fixtures.bronze import DAY, T0, spec_bronze

EXPECTATIONS = PROJECT_ROOT / "expectations"
WORDS = "质地很好，吸收快，会回购"


def rate(order_id="T1", sub_order_id=None, **cells) -> dict:
    return {
        "order_id": order_id,
        "sub_order_id": sub_order_id or order_id,
        "role": "buyer",
        "nick": "t**7",
        "buyer_open_uid": "AAGFcI6qYgIg76Dn6aiyctSU",
        "result": "good",
        "created": T0,
        "item_title": "面膜",
        "item_price": Decimal("129.00"),
        "content": WORDS,
    } | cells


def reviews(spark, rows: list[dict]) -> dict:
    frame = tmall_reviews(spec_bronze(spark, "tmall.reviews", rows), DAY)
    return {(r.order_id, r.line_id): r for r in frame.collect()}


def test_a_review_links_its_order_and_line_and_keeps_platform_ids_in_clear(spark):
    out = reviews(spark, [rate("T1"), rate("T2", "T21")])
    r = out["T1", "T1"]
    assert (r.source, r.buyer_open_uid, r.nick) == ("tmall", "AAGFcI6qYgIg76Dn6aiyctSU", "t**7")
    assert ("T2", "T21") in out  # the sub-order is the line (silver.order_items' line_id)
    assert (r.item_title, r.item_price, r.currency) == ("面膜", Decimal("129.00"), "CNY")
    assert (r.created_at, r.review_date, r.lateness_days) == (T0, DAY, 0)


def test_the_words_stay_in_bronze(spark):
    out = reviews(spark, [rate("T1", append_content="用了一个月", reply="感谢")])
    assert not {"content", "append_content", "reply"} & set(REVIEW_COLUMNS)
    values = [v for v in out["T1", "T1"].asDict().values() if isinstance(v, str)]
    assert not any(WORDS in v or "用了一个月" in v or "感谢" in v for v in values)


def test_result_becomes_a_five_point_rating_and_is_kept(spark):
    out = reviews(
        spark,
        [rate("G", result="good"), rate("N", result=" Neutral"), rate("B", result="bad"),
         rate("X", result="great")],
    )  # fmt: skip
    got = {k[0]: (r.result, r.rating) for k, r in out.items()}
    assert got == {"G": ("good", 5), "N": ("neutral", 3), "B": ("bad", 1), "X": ("great", None)}


def test_rating_map(spark):
    df = spark.createDataFrame([("good",), ("bad",), (None,)], "r string")
    assert [x.v for x in df.select(rating(F.col("r")).alias("v")).collect()] == [5, 1, None]


def test_only_buyers_reviews_are_kept(spark):
    out = reviews(
        spark,
        [rate("T1"), rate("T2", role="seller"), rate("T3", role=None), rate("T4", role="Buyer")],
    )
    assert {k[0] for k in out} == {"T1", "T3", "T4"}


def test_text_metadata_counts_characters_and_placeholders_are_no_text(spark):
    df = spark.createDataFrame(
        [(WORDS,), ("  好  ",), ("",), (None,), ("此用户没有填写评价。",),
         ("评价方未及时做出评价,系统默认好评!",), ("系统默认好评",)],
        "t string",
    )  # fmt: skip
    meta = text_metadata(F.col("t"))
    got = [
        (r.h, r.d, r.n)
        for r in df.select(
            meta["has_text"].alias("h"),
            meta["default_text"].alias("d"),
            meta["text_length"].alias("n"),
        ).collect()
    ]
    assert got == [
        (True, False, len(WORDS)),
        (True, False, 1),
        (False, False, 0),
        (False, False, 0),
        (False, True, 0),
        (False, True, 0),
        (False, True, 0),
    ]


def test_follow_up_and_reply_are_flags(spark):
    later = T0 + timedelta(hours=5)
    out = reviews(
        spark,
        [rate("A", append_content="继续回购", append_created=later, reply="感谢亲的支持"),
         rate("B", append_content="", reply=" "),
         rate("C", append_created=later)],
    )  # fmt: skip
    a, b, c = out["A", "A"], out["B", "B"], out["C", "C"]
    assert (a.has_append, a.appended_at, a.has_reply) == (True, later, True)
    assert (b.has_append, b.appended_at, b.has_reply) == (False, None, False)
    assert c.has_append  # a follow-up with its time but no words is still a follow-up


def test_a_review_pulled_again_keeps_its_latest_row_and_late_ones_say_so(spark):
    later = T0 + timedelta(days=1)
    out = reviews(
        spark,
        [rate("T1"),
         rate("T1", append_content="后来还是有点干", _ingested_at=later, _file="f2"),
         rate("T2", created=T0 - timedelta(days=4)),
         rate(None)],
    )  # fmt: skip
    assert set(out) == {("T1", "T1"), ("T2", "T2")}  # no order id: nothing to link
    assert out["T1", "T1"].has_append
    assert out["T2", "T2"].lateness_days == 4


@pytest.fixture(scope="module")
def good_reviews(spark):
    frame = build_reviews(
        Batch(
            DAY,
            b"k",
            bronze={"tmall_reviews": spec_bronze(spark, "tmall.reviews", [rate("T1"), rate("T2")])},
        )
    )
    assert build_reviews(Batch(DAY, b"k", bronze={})) is None
    return frame


def test_the_table(good_reviews):
    assert good_reviews.columns == REVIEW_COLUMNS
    assert TABLES[0].keys == ("source", "order_id", "line_id")
    assert TABLES[0].inputs == ("tmall_reviews",)


def test_the_suite_passes_good_reviews_and_blocks_bad_ones(good_reviews):
    report = validate(good_reviews, "silver.reviews", run_id="t", expectations_dir=EXPECTATIONS)
    assert report.success_blocking, report.failed_blocking
    t2 = F.col("order_id") == "T2"
    bad = good_reviews.unionByName(good_reviews.where("order_id = 'T1'")).withColumns(
        {
            "result": F.when(t2, F.lit("great")).otherwise(F.col("result")),
            "rating": F.when(t2, F.lit(4)).otherwise(F.col("rating")),
        }
    )
    report = validate(bad, "silver.reviews", run_id="t", expectations_dir=EXPECTATIONS)
    assert {(r.expectation, r.column) for r in report.failed_blocking} == {
        ("expect_compound_columns_to_be_unique", "source,order_id,line_id"),
        ("expect_column_values_to_be_in_set", "result"),
        ("expect_column_values_to_be_in_set", "rating"),
    }
