"""Chinese postal addresses -> province, city, district with GB/T 2260 division codes, the rest
(detail), and an address key for matching.

The divisions come from cpca (Chinese Province, City and Area recognition; offline, with its
own adcode table, MIT): it reads full and short names (浙江省杭州市 / 浙江杭州) and infers the
parents of a district (浦东新区 -> 上海市). Around it this module adds what the simulator's and
real exports' mess needs:

- text first: NFKC (full-width digits), traditional -> simplified (OpenCC t2s), spaces dropped
  next to Chinese text (one kept between ASCII words: Room 1203);
- short district names (浦东 for 浦东新区, 武侯 for 武侯区) after a placed city (or a
  municipality), which cpca leaves in the detail;
- a division name that is really a street name (中山路, 南京路) is not a division;
- a district name alone that several cities share (朝阳区: Beijing and Changchun; 西湖区:
  Hangzhou and Nanchang) is not placed rather than guessed;
- municipalities: city = the province's name (上海市), city_code its 4 digits + "00";
- Hong Kong, Macau, Taiwan: the region's name is kept as `province` (a label for counting) but
  every division code is null, as for an address abroad or one no division matches: the
  normalized text is kept as `detail` and feeds the key.

`address_key` is for matching two records of one address: the standardized division names plus
the detail with punctuation and spaces removed, Latin letters lower-cased, and the building
written one way (14栋2单元2204室 and 14-2-2204 both become 14-2-2204).

cpca is Python: `standardize_address` is a pandas UDF over Arrow batches, each distinct text of
a batch parsed once (one household's, one 刷单 ring's address repeats).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from functools import cache

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.common.clean._text import nfkc
from jobs.common.clean.names import to_simplified

FIELDS = (
    "province",
    "city",
    "district",
    "province_code",
    "city_code",
    "district_code",
    "detail",
    "address_key",
)
ADDRESS_TYPE = StructType([StructField(f, StringType()) for f in FIELDS])

MUNICIPALITIES = ("11", "12", "31", "50")  # 北京, 天津, 上海, 重庆
NOT_MAINLAND = ("71", "81", "82")  # 台湾, 香港, 澳门: no GB/T 2260 codes below the region
# City-level names that are not cities: a municipality's districts and counties, and a
# province's directly administered county-level cities (仙桃市 ...).
_PSEUDO_CITIES = ("市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划")
# What a street name goes on with (中山路, 南京西路, 北京大街): the division before it is not one.
_STREET = re.compile(r"^(?:东|西|南|北|中)?(?:路|街|大街|大道|道|巷|弄|胡同|里)")
_DISTRICT_SUFFIX = re.compile(r"(?:新区|自治县|自治旗|林区|特区|区|县|市|旗)$")
_BUILDING = re.compile(r"(\d+)(?:栋|幢|号楼|座)(?:(\d+)单元)?(\d+)(?:室|号|房)?")


def _division_name(code: str) -> str | None:
    import cpca

    info = cpca.ad_2_addr_dict.get(code.ljust(12, "0"))
    return None if info is None else info.name


@cache
def _district_index() -> tuple[dict[str, list[tuple[str, str]]], Counter]:
    """(short district names by the 4-digit city code and the 2-digit code of a municipality,
    longest first: [(short name, adcode)]; how many districts bear each full name)."""
    import cpca

    by_parent: dict[str, list[tuple[str, str]]] = defaultdict(list)
    names: Counter = Counter()
    for info in cpca.ad_2_addr_dict.values():
        if info.rank != 2:  # counties and districts only
            continue
        names[info.name] += 1
        short = _DISTRICT_SUFFIX.sub("", info.name)
        if len(short) >= 2 and short != info.name:
            by_parent[info.adcode[:4]].append((short, info.adcode))
            if info.adcode[:2] in MUNICIPALITIES:
                by_parent[info.adcode[:2]].append((short, info.adcode))
    for entries in by_parent.values():
        entries.sort(key=lambda e: -len(e[0]))
    return dict(by_parent), names


def normalize_text(s: str) -> str:
    """NFKC, traditional -> simplified, whitespace dropped next to Chinese text (one space
    stays between two ASCII characters: Room 1203, Mountain View)."""
    text = to_simplified(re.sub(r"\s+", " ", nfkc(s)).strip())
    return re.sub(r"(?<=[^\x00-\x7f]) | (?=[^\x00-\x7f])", "", text)


def detail_key(text: str) -> str:
    """The matching form of a detail: building written one way, lower-cased, no punctuation or
    spaces (a "-" between digits stays)."""
    key = _BUILDING.sub(lambda m: "-".join(g for g in m.groups() if g), text.lower())
    key = re.sub(r"[^\w-]|_", "", key)
    return re.sub(r"(?<!\d)-+|-+(?!\d)", "", key)


def _unplaced(text: str, province: str | None = None, detail: str | None = None) -> dict:
    detail = text if detail is None else detail
    key = (province or "") + detail_key(detail)
    return dict.fromkeys(FIELDS) | {
        "province": province,
        "detail": detail or None,
        "address_key": key or None,
    }


def _placed(text: str, rec: dict) -> dict:
    """One cpca record checked and completed (see the module docstring)."""
    adcode, rest = rec["adcode"], rec["地址"] or ""
    positions = {0: rec["省_pos"], 1: rec["市_pos"], 2: rec["区_pos"]}
    matched = sorted((pos, rank) for rank, pos in positions.items() if pos >= 0)
    rank = 2 if not adcode.endswith("00") else 1 if not adcode.endswith("0000") else 0
    # The deepest name cpca matched, written short, goes on as a street name: not a division.
    deepest = _division_name(adcode[: 2 * (matched[-1][1] + 1)]) if matched else None
    if deepest and _STREET.match(rest) and not text.startswith(deepest, matched[-1][0]):
        pos, _ = matched.pop()
        rest = text[pos:]
        if not matched:
            return _unplaced(text)
        rank = max(r for _, r in matched)
        adcode = adcode[: 2 * (rank + 1)].ljust(6, "0")
    by_parent, names = _district_index()
    # A district name alone, borne by districts of several cities: do not guess.
    if [r for _, r in matched] == [2] and names[_division_name(adcode)] > 1:
        return _unplaced(text)
    province_code = adcode[:2] + "0000"
    if adcode[:2] in NOT_MAINLAND:
        return _unplaced(text, province=_division_name(province_code), detail=rest)
    # cpca does not know short district names: 上海浦东 / 成都武侯.
    if rank < 2 and (rank == 1 or adcode[:2] in MUNICIPALITIES):
        for short, code in by_parent.get(adcode[: 2 * (rank + 1)], ()):
            if rest.startswith(short) and not _STREET.match(rest[len(short) :]):
                adcode, rank, rest = code, 2, rest[len(short) :]
                break
    province = _division_name(province_code)
    city_code = adcode[:4] + "00" if rank >= 1 else None
    city = _division_name(city_code) if city_code else None
    if city in _PSEUDO_CITIES:
        city = province if adcode[:2] in MUNICIPALITIES else None
        city_code = city_code if adcode[:2] in MUNICIPALITIES else None
    district = _division_name(adcode) if rank == 2 else None
    heads = [province, city if city != province else None, district]
    return {
        "province": province,
        "city": city,
        "district": district,
        "province_code": province_code,
        "city_code": city_code,
        "district_code": adcode if rank == 2 else None,
        "detail": rest or None,
        "address_key": "".join(h for h in heads if h) + detail_key(rest),
    }


def standardize_addresses_py(values: list[str | None]) -> list[dict | None]:
    """`standardize_address_py` over a list, one cpca call for all of it."""
    import cpca

    texts = [None if v is None else normalize_text(str(v)) for v in values]
    todo = [t for t in texts if t]
    records = cpca.transform(todo, pos_sensitive=True).to_dict("records") if todo else []
    parsed = iter(records)
    out: list[dict | None] = []
    for text in texts:
        if not text:
            out.append(None)
            continue
        rec = next(parsed)
        out.append(_unplaced(text) if rec["adcode"] is None else _placed(text, rec))
    return out


def standardize_address_py(s: str | None) -> dict | None:
    """{province, city, district, province_code, city_code, district_code, detail,
    address_key} of one address; None for null or blank. The reference for
    `standardize_address`."""
    return standardize_addresses_py([s])[0]


@F.pandas_udf(ADDRESS_TYPE)
def _address_udf(values: pd.Series) -> pd.DataFrame:
    distinct = list(values.dropna().unique())
    parsed = dict(zip(distinct, standardize_addresses_py(distinct), strict=True))
    empty = dict.fromkeys(FIELDS)
    rows = [parsed.get(v) or empty if isinstance(v, str) else empty for v in values]
    return pd.DataFrame(rows, columns=list(FIELDS), index=values.index)


def standardize_address(col: Column | str) -> Column:
    """struct<province, city, district, province_code, city_code, district_code, detail,
    address_key>; null for a null or blank address. An address no division matches (abroad,
    Hong Kong, Macau, Taiwan, unusual) keeps its normalized text as detail and key, with null
    codes."""
    col = F.col(col) if isinstance(col, str) else col
    parsed = _address_udf(col)
    return F.when(parsed["address_key"].isNotNull(), parsed)


def _division_prefix(a: dict) -> str | None:
    """The code digits that name the most specific division placed: 2, 4 or 6 of them."""
    if a["district_code"]:
        return a["district_code"]
    if a["city_code"]:
        return a["city_code"][:4]
    return a["province_code"][:2] if a["province_code"] else None


def address_from_parts_py(
    province: str | None, city: str | None, district: str | None, detail: str | None
) -> dict | None:
    """Python twin of `address_from_parts`."""
    return _from_parts_batch([province], [city], [district], [detail])[0]


def _from_parts_batch(provinces, cities, districts, details) -> list[dict | None]:
    heads = []
    for p, c, d in zip(provinces, cities, districts, strict=True):
        same = p and c and re.sub("市$", "", p) == re.sub("市$", "", c)
        heads.append("".join(x for x in (p, None if same else c, d) if x))
    details = [d if isinstance(d, str) and d.strip() else None for d in details]
    parsed_heads = standardize_addresses_py([h or None for h in heads])
    parsed_details = standardize_addresses_py(details)
    texts = []
    for head, detail, h, d in zip(heads, details, parsed_heads, parsed_details, strict=True):
        # A detail that repeats divisions agreeing with the parts (湖北武汉洪山区文三路...) keeps
        # only what follows them; the parts, the platform's structured fields, name the divisions.
        hp, dp = (_division_prefix(h) if h else None), (_division_prefix(d) if d else None)
        if hp and dp and (hp.startswith(dp) or dp.startswith(hp)):
            detail = d["detail"]
        texts.append((head + (detail or "")) or None)
    return standardize_addresses_py(texts)


@F.pandas_udf(ADDRESS_TYPE)
def _parts_udf(
    province: pd.Series, city: pd.Series, district: pd.Series, detail: pd.Series
) -> pd.DataFrame:
    cols = [s.where(s.notna(), None).tolist() for s in (province, city, district, detail)]
    empty = dict.fromkeys(FIELDS)
    rows = [r or empty for r in _from_parts_batch(*cols)]
    return pd.DataFrame(rows, columns=list(FIELDS), index=province.index)


def address_from_parts(
    province: Column | str, city: Column | str, district: Column | str, detail: Column | str
) -> Column:
    """`standardize_address` of an address a source splits (Tmall trades' receiver_state,
    receiver_city, receiver_district with a null detail; Youzan's delivery_province/city/
    district beside its detail line). A municipality's city written again (上海 / 上海市) is
    written once; divisions the detail repeats, when they agree with the parts, are not
    repeated."""
    cols = [F.col(x) if isinstance(x, str) else x for x in (province, city, district, detail)]
    parsed = _parts_udf(*[c.cast("string") for c in cols])
    return F.when(parsed["address_key"].isNotNull(), parsed)


def mask_address(struct_col: Column | str) -> Column:
    """Display form: the divisions, then "***" for the rest ("浙江省杭州市西湖区***",
    "上海市浦东新区***"; "***" alone when no division matched)."""
    a = F.col(struct_col) if isinstance(struct_col, str) else struct_col
    city = F.when(a["city"] != a["province"], a["city"])
    return F.when(
        a.isNotNull(),
        F.concat(F.concat_ws("", a["province"], city, a["district"]), F.lit("***")),
    )
