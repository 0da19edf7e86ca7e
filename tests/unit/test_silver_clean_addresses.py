"""Addresses: divisions and GB/T 2260 codes through cpca, the address key, what stays
unplaced, the simulator's address variants, split addresses and masks."""

from __future__ import annotations

import pytest

from jobs.common.clean import addresses
from jobs.simulator.mess import address_variant
from jobs.simulator.world import REGIONS

HANGZHOU = "浙江省杭州市西湖区文三路1号3栋2单元301室"


def test_a_full_address():
    assert addresses.standardize_address_py(HANGZHOU) == {
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "province_code": "330000",
        "city_code": "330100",
        "district_code": "330106",
        "detail": "文三路1号3栋2单元301室",
        "address_key": "浙江省杭州市西湖区文三路1号3-2-301",
    }


def test_a_municipality_is_its_own_city():
    a = addresses.standardize_address_py("上海市浦东新区世纪大道100号")
    assert (a["province"], a["city"], a["district"]) == ("上海市", "上海市", "浦东新区")
    assert (a["province_code"], a["city_code"], a["district_code"]) == (
        "310000",
        "310100",
        "310115",
    )
    assert a["address_key"] == "上海市浦东新区世纪大道100号"


@pytest.mark.parametrize(
    ("raw", "district_code"),
    [
        ("上海浦东世纪大道100号", "310115"),  # 浦东 for 浦东新区, 市 dropped
        ("四川成都武侯人民南路1号", "510107"),  # short names all the way
        ("广东深圳南山科技园路1号", "440305"),
        ("浦东新区世纪大道1号", "310115"),  # a district alone that only one city has
    ],
)
def test_short_names_are_placed(raw, district_code):
    assert addresses.standardize_address_py(raw)["district_code"] == district_code


@pytest.mark.parametrize(
    ("raw", "province", "detail"),
    [
        ("香港九龙弥敦道123号", "香港特别行政区", "九龙弥敦道123号"),
        ("澳門特別行政區大堂區", "澳门特别行政区", "大堂区"),  # traditional -> simplified
        ("臺北市信義區市府路1號", None, "台北市信义区市府路1号"),
        (
            "1600 Amphitheatre Pkwy, Mountain View, CA",
            None,
            "1600 Amphitheatre Pkwy, Mountain View, CA",
        ),
        ("朝阳区建国路1号", None, "朝阳区建国路1号"),  # Beijing's or Changchun's: not guessed
        ("西湖区文三路1号", None, "西湖区文三路1号"),  # Hangzhou's or Nanchang's
        ("南京路100号", None, "南京路100号"),  # a street named after a city
        ("中山路1号", None, "中山路1号"),
    ],
)
def test_unplaced_addresses_keep_their_text_without_codes(raw, province, detail):
    a = addresses.standardize_address_py(raw)
    assert (a["province_code"], a["city_code"], a["district_code"]) == (None, None, None)
    assert (a["province"], a["detail"]) == (province, detail)
    assert a["address_key"]


def test_foreign_key_is_lower_case_without_punctuation():
    a = addresses.standardize_address_py("1600 Amphitheatre Pkwy, Mountain View, CA")
    assert a["address_key"] == "1600amphitheatrepkwymountainviewca"


def test_a_street_named_after_a_city_keeps_the_province():
    a = addresses.standardize_address_py("广东省中山路1号")
    assert (a["province_code"], a["city_code"], a["detail"]) == ("440000", None, "中山路1号")


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_blank_is_null(raw):
    assert addresses.standardize_address_py(raw) is None


class _Kind:
    """An rng that makes `address_variant` take variant `kind` (and pick the first choice)."""

    def __init__(self, kind: int):
        self.kind = kind

    def randrange(self, n: int) -> int:
        return self.kind

    def choice(self, options):
        return options[-1]


@pytest.mark.parametrize("kind", range(5))
@pytest.mark.parametrize("region", REGIONS)
def test_simulator_variants_share_the_key_and_codes(region, kind):
    province, city, district = region
    head = province if province == city else province + city
    address = f"{head}{district}中山路88号14栋2单元2204室"
    variant = address_variant(_Kind(kind), address)
    original = addresses.standardize_address_py(address)
    typed = addresses.standardize_address_py(variant)
    assert original["district_code"] is not None
    assert typed["district_code"] == original["district_code"]
    assert typed["address_key"] == original["address_key"]


def test_spark_matches_the_twin_and_masks(spark):
    raws = [
        HANGZHOU,
        "上海浦东世纪大道100号",
        "香港九龙弥敦道123号",
        "1600 Amphitheatre Pkwy, Mountain View, CA",
        "",
        None,
    ]
    df = spark.createDataFrame(list(enumerate(raws)), "i int, raw string")
    out = df.select("i", addresses.standardize_address("raw").alias("a"))
    out = out.select("i", "a", addresses.mask_address("a").alias("m"))
    got = {r.i: r for r in out.collect()}
    for i, raw in enumerate(raws):
        row = got[i].a
        assert (row.asDict() if row else None) == addresses.standardize_address_py(raw)
    assert [got[i].m for i in range(len(raws))] == [
        "浙江省杭州市西湖区***",
        "上海市浦东新区***",
        "香港特别行政区***",
        "***",
        None,
        None,
    ]


def test_address_from_parts(spark):
    rows = [
        ("上海", "上海市", "浦东新区", None),  # Tmall trades: a municipality twice, no detail
        ("浙江省", "杭州市", "西湖区", "文三路1号"),  # Youzan: the detail line alone
        ("湖北省", "武汉市", "洪山区", "湖北武汉洪山区文三路1号"),  # a detail repeating them
        ("湖北省", "武汉市", "洪山区", "湖北武汉文三路1号"),  # repeating some of them
        (None, None, None, None),
    ]
    df = spark.createDataFrame(
        list(enumerate(rows)), "i int, parts struct<p:string,c:string,d:string,x:string>"
    )
    out = df.select(
        "i", addresses.address_from_parts("parts.p", "parts.c", "parts.d", "parts.x").alias("a")
    )
    got = {r.i: r.a for r in out.collect()}
    assert (got[0].district_code, got[0].city, got[0].detail) == ("310115", "上海市", None)
    assert got[0].address_key == "上海市浦东新区"
    assert (got[1].district_code, got[1].detail) == ("330106", "文三路1号")
    assert got[2].detail == got[3].detail == "文三路1号"
    assert got[2].address_key == got[3].address_key == "湖北省武汉市洪山区文三路1号"
    assert got[4] is None
    for i, parts in enumerate(rows):
        twin = addresses.address_from_parts_py(*parts)
        assert (got[i].asDict() if got[i] else None) == twin


def test_parts_disagreeing_with_the_detail_keep_both():
    a = addresses.address_from_parts_py("浙江省", "杭州市", "西湖区", "北京市朝阳区建国路1号")
    assert a["district_code"] == "330106"
    assert a["detail"] == "北京市朝阳区建国路1号"
