"""`cdp import customers` (schema import/customer/1-1-0) and silver.imported_customers.

The import half runs the real parser (no Spark): a member whose optional field does not parse
keeps the row, with that field null and the reason counted; only a bad customer_id quarantines.
The silver half runs the transform on tiny inline bronze frames.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from jobs.common.clean.dates import BUSINESS_TZ
from jobs.common.clean.emails import normalize_email_py
from jobs.common.clean.id_cards import normalize_id_card_py
from jobs.common.clean.names import normalize_name_py
from jobs.common.clean.phones import normalize_phone_py
from jobs.ingest import importer
from jobs.ingest.records import Record, Rejected, parse_file
from jobs.silver import imported
from jobs.silver.table import Batch
from jobs.silver.vault import split_pii

KEY = b"imported-unit-test-key-0123456789abcdef"
ID_CARD = "11010519491231002X"  # the public example of a valid check digit
ID_CARD_BAD_CHECK = "110105194912310021"
PHONE = "13957112233"

# --- the import --------------------------------------------------------------------------------

HEADER = [
    "会员号",
    "姓名",
    "性别",
    "生日",
    "手机",
    "邮箱",
    "身份证",
    "OpenID",
    "是否同意营销",
    "积分",
    "累计消费",
]
MAPPING = {
    "columns": {
        "会员号": "customer_id",
        "姓名": "name",
        "性别": "gender",
        "生日": "birthday",
        "手机": "phone",
        "邮箱": "email",
        "身份证": "id_card",
        "OpenID": "wechat_openid",
        "是否同意营销": "marketing_consent",
        "积分": "points",
        "累计消费": "total_spent",
    }
}
GOOD = {
    "会员号": "C1",
    "姓名": "张伟",
    "性别": "男",
    "生日": "1991-02-28",
    "手机": PHONE,
    "邮箱": "zhangwei@163.com",
    "身份证": ID_CARD,
    "OpenID": "oABCDEFGHIJKLMNOPQRSTUVWXYZ0",
    "是否同意营销": "同意",
    "积分": "120",
    "累计消费": "1288.50",
}


def _csv(tmp_path: Path, *rows: dict[str, str], header=HEADER) -> Path:
    lines = [",".join(header)] + [",".join(r.get(h, "") for h in header) for r in rows]
    path = tmp_path / "members.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _spec(mapping=MAPPING):
    return importer.build_spec(mapping, source="brand_crm", dataset="customers", fmt="csv")


def _parse(tmp_path: Path, *rows: dict[str, str], mapping=MAPPING) -> list[Record | Rejected]:
    return list(parse_file(_csv(tmp_path, *rows), _spec(mapping)))


def _one(tmp_path: Path, mapping=MAPPING, **cells: str) -> Record:
    [item] = _parse(tmp_path, {**GOOD, **cells}, mapping=mapping)
    assert isinstance(item, Record), item
    return item


def _issue(record: Record, field: str) -> str:
    [reason] = [i.reason for i in record.issues if i.field == field]
    return reason


def test_customers_import_under_schema_1_1_0():
    spec = _spec()
    assert spec.schema == "import/customer/1-1-0"
    assert spec.bronze_table == "import_brand_crm_customers"
    types = importer.target("customers").types
    # The 1-0-0 fields keep their types (a table written under 1-0-0 takes 1-1-0 rows) ...
    assert (types["birthday"], types["registered_at"], types["points"]) == (
        "date",
        "datetime",
        "int",
    )
    assert types["total_spent"] == "decimal"
    # ... and what member lists hold is there.
    for field in (
        "family_name",
        "given_name",
        "id_card",
        "address",
        "street_address",
        "district",
        "postcode",
        "member_card",
        "wechat_appid",
        "consent_at",
    ):
        assert field in types, field
    assert types["consent_at"] == "datetime"
    assert importer.target("customers").required == ("customer_id",)


def test_a_good_member_lands_as_given(tmp_path):
    record = _one(tmp_path, 手机="+86 139 5711 2233", 邮箱=" ZhangWei@163.com ")
    assert record.issues == ()
    # bronze is raw: a value that parses is kept as the brand wrote it (trimmed), not normalized
    assert record.values["phone"] == "+86 139 5711 2233"
    assert record.values["email"] == "ZhangWei@163.com"
    assert record.values["id_card"] == ID_CARD
    assert record.values["gender"] == "M"
    assert record.values["marketing_consent"] == "yes"
    assert record.values["points"] == 120
    assert record.values["total_spent"] == Decimal("1288.50")


@pytest.mark.parametrize(
    ("cell", "field", "reason"),
    [
        ({"手机": "12345"}, "phone", "expected a phone number"),
        ({"手机": "138****2233"}, "phone", "expected a phone number"),  # masked: not a phone
        ({"邮箱": "zw@"}, "email", "expected an email address"),
        ({"身份证": ID_CARD_BAD_CHECK}, "id_card", "expected a national ID number"),
        ({"OpenID": "o" * 65}, "wechat_openid", "longer than 64"),
        ({"性别": "X"}, "gender", "unknown value"),
        ({"是否同意营销": "也许"}, "marketing_consent", "unknown value"),
        ({"生日": "1991-02-30"}, "birthday", "calendar date"),
        ({"生日": "昨天"}, "birthday", "expected a date"),
        ({"积分": "一百"}, "points", "whole number"),
        ({"累计消费": "-5"}, "total_spent", "less than the minimum 0"),
    ],
)
def test_a_bad_optional_value_is_nulled_and_counted_and_the_member_kept(
    tmp_path, cell, field, reason
):
    record = _one(tmp_path, **cell)
    assert record.values[field] is None
    assert reason in _issue(record, field)
    # every other field landed
    assert record.values["customer_id"] == "C1"
    assert record.values["name"] == "张伟"
    others = {f: v for f, v in record.values.items() if f != field}
    assert all(v is not None for v in others.values()), others


def test_an_identifier_with_a_control_character_is_nulled_not_quarantined(tmp_path):
    record = _one(tmp_path, OpenID="oABC\x01DEF")
    assert record.values["wechat_openid"] is None
    assert "control characters" in _issue(record, "wechat_openid")


@pytest.mark.parametrize("written", ["1991-02-28", "19910228", "1991/02/28", "1991/2/28"])
def test_birthday_in_common_forms(tmp_path, written):
    assert _one(tmp_path, 生日=written).values["birthday"] == "1991-02-28"


def test_a_birthday_in_the_future_is_nulled_and_counted(tmp_path):
    # Tomorrow where the brand does business: from 16:00 UTC, UTC's tomorrow is already today
    # in Shanghai, and a plausible birthday.
    tomorrow = (datetime.now(ZoneInfo(BUSINESS_TZ)).date() + timedelta(days=1)).isoformat()
    record = _one(tmp_path, 生日=tomorrow)
    assert record.values["birthday"] is None
    assert "plausible birthday" in _issue(record, "birthday")


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("男", "M"),
        ("女", "F"),
        ("male", "M"),
        ("Female", "F"),
        ("1", "M"),
        ("2", "F"),
        ("M", "M"),
        ("f", "F"),
        ("保密", "U"),
        ("未知", "U"),
    ],
)
def test_gender_spellings(tmp_path, written, code):
    assert _one(tmp_path, 性别=written).values["gender"] == code


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("TRUE", "yes"),
        ("false", "no"),
        ("1", "yes"),
        ("0", "no"),
        ("是", "yes"),
        ("否", "no"),
        ("同意", "yes"),
        ("拒绝", "no"),
    ],
)
def test_consent_spellings(tmp_path, written, code):
    assert _one(tmp_path, 是否同意营销=written).values["marketing_consent"] == code


def test_a_mappings_own_values_extend_the_defaults(tmp_path):
    mapping = {
        "columns": {
            **MAPPING["columns"],
            "性别": {"field": "gender", "values": {"先生": "M", "2": "U"}},
        }
    }
    assert _one(tmp_path, mapping, 性别="先生").values["gender"] == "M"
    assert _one(tmp_path, mapping, 性别="2").values["gender"] == "U"  # the brand's code wins
    assert _one(tmp_path, mapping, 性别="女").values["gender"] == "F"  # defaults still apply


@pytest.mark.parametrize(
    ("cells", "reason"),
    [({"会员号": ""}, "required field 'customer_id'"), ({"会员号": "C" * 129}, "longer than 128")],
)
def test_a_bad_customer_id_still_quarantines(tmp_path, cells, reason):
    [item] = _parse(tmp_path, {**GOOD, **cells})
    assert isinstance(item, Rejected)
    assert item.field == "customer_id"
    assert reason in item.reason


def test_the_import_report_counts_nulled_fields_by_reason(tmp_path):
    path = _csv(
        tmp_path,
        GOOD,
        {**GOOD, "会员号": "C2", "手机": "12345", "邮箱": "nope"},
        {**GOOD, "会员号": "C3", "手机": "999"},
        {**GOOD, "会员号": ""},
    )
    report = importer.dry_run(path, _spec())
    assert (report.rows_read, report.would_land, report.would_quarantine) == (4, 3, 1)
    by_field = {}
    for group in report.issues.values():
        field = group.pattern.split("'")[1]
        by_field[field] = (group.rows, group.lines)
    assert by_field == {"phone": (2, [3, 4]), "email": (1, [3])}
    # no value reaches the report
    assert not any("12345" in p or "nope" in p for p in report.issues)


def test_address_parts_and_names_land(tmp_path):
    header = ["会员号", "姓", "名", "省", "市", "区", "街道地址", "邮编", "注册时间", "同意时间"]
    mapping = {
        "columns": {
            "会员号": "customer_id",
            "姓": "family_name",
            "名": "given_name",
            "省": "province",
            "市": "city",
            "区": "district",
            "街道地址": "street_address",
            "邮编": "postcode",
            "注册时间": "registered_at",
            "同意时间": "consent_at",
        }
    }
    row = dict(
        zip(
            header,
            [
                "C9",
                "张",
                "伟",
                "浙江省",
                "杭州市",
                "西湖区",
                "文三路90号",
                "西湖区",  # a district in the postcode column: not a postcode
                "2024/5/1 10:00",
                "2024-05-01 10:00:05",
            ],
            strict=True,
        )
    )
    [record] = list(parse_file(_csv(tmp_path, row, header=header), _spec(mapping)))
    assert record.values["family_name"] == "张"
    assert record.values["street_address"] == "文三路90号"
    assert record.values["registered_at"] == "2024-05-01T10:00:00"
    assert record.values["consent_at"] == "2024-05-01T10:00:05"
    assert record.values["postcode"] is None
    assert "pattern" in _issue(record, "postcode")


# --- silver ------------------------------------------------------------------------------------

BRONZE = (
    "customer_id string, name string, family_name string, given_name string, phone string, "
    "email string, id_card string, wechat_unionid string, wechat_openid string, "
    "member_card string, gender string, birthday date, address string, street_address string, "
    "district string, city string, province string, postcode string, "
    "registered_at timestamp, member_level string, points bigint, total_spent decimal(18,2), "
    "marketing_consent string, consent_at timestamp, tags string, "
    "_source string, _file string, _line bigint, _batch_id string, _ingested_at timestamp"
)
T1, T2 = datetime(2026, 11, 20, 9), datetime(2026, 11, 21, 9)


def _token(kind: str, value: str) -> str:
    return hmac.new(KEY, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def _bronze_row(customer_id: str = "C1", **cells) -> dict:
    row = dict.fromkeys(c.split(" ")[0] for c in BRONZE.split(", "))
    row.update(
        customer_id=customer_id,
        _source="brand_crm",
        _file="import/brand_crm/customers/dt=2026-11-20/members.csv",
        _line=2,
        _batch_id="b1",
        _ingested_at=T1,
    )
    row.update(cells)
    return row


def _bronze(spark, *rows: dict):
    names = [c.split(" ")[0] for c in BRONZE.split(", ")]
    return spark.createDataFrame([tuple(r[n] for n in names) for r in rows], BRONZE)


def _silver(spark, *rows: dict) -> dict[str, dict]:
    df = imported.imported_customers({"import_brand_crm_customers": _bronze(spark, *rows)}, KEY)
    return {r["customer_id"]: r.asDict() for r in df.collect()}


def test_the_latest_file_wins_per_key(spark):
    later_file = "import/brand_crm/customers/dt=2026-11-21/members.csv"
    rows = _silver(
        spark,
        _bronze_row("C1", member_level="silver"),
        _bronze_row("C1", member_level="gold", _file=later_file, _ingested_at=T2),
        _bronze_row("C2", member_level="silver", _line=3),
        _bronze_row("C2", member_level="gold", _line=4),  # same file: the later line
    )
    assert rows["C1"]["member_level"] == "gold"
    assert rows["C1"]["source_file"] == later_file
    assert rows["C1"]["updated_at"] == T2
    assert rows["C2"]["member_level"] == "gold"
    assert rows["C2"]["source_line"] == 4


def test_every_import_table_is_read_whatever_columns_its_mapping_named(spark):
    store = spark.createDataFrame(
        [("S1", PHONE, "store_list", "f.csv", 2, "b2", T1)],
        "customer_id string, phone string, _source string, _file string, _line bigint, "
        "_batch_id string, _ingested_at timestamp",
    )
    crm = spark.createDataFrame(
        [("S1", "s1@qq.com", "f.csv", 2, "b3", T1)],
        "customer_id string, email string, _file string, _line bigint, _batch_id string, "
        "_ingested_at timestamp",
    )
    frames = {
        "import_store_list_customers": store,
        "import_brand_crm_customers": crm,  # no _source column: from the table's name
        "crm_members": crm,  # not an import: left alone
        "import_empty_customers": None,  # no such table yet
    }
    df = imported.imported_customers(frames, KEY)
    rows = {(r["source"], r["customer_id"]): r for r in df.collect()}
    assert set(rows) == {("store_list", "S1"), ("brand_crm", "S1")}
    assert rows[("store_list", "S1")]["phone_token"] == _token("phone", normalize_phone_py(PHONE))
    assert rows[("store_list", "S1")]["email_token"] is None
    assert rows[("brand_crm", "S1")]["email_token"] == _token(
        "email", normalize_email_py("s1@qq.com")
    )


def test_no_import_tables_build_nothing(spark):
    batch = Batch(logical_date=date(2026, 11, 20), hmac_key=KEY, bronze={"crm_members": None})
    assert imported.TABLES[0].build(batch) is None
    assert imported.TABLES[0].inputs == ("import_*_customers",)
    assert imported.TABLES[0].keys == ("source", "customer_id")


def test_contact_details_become_tokens_masks_and_vault_values(spark):
    raw = {
        "name": "張偉",
        "phone": "+86 139 5711 2233",
        "email": " ZhangWei@163.com",
        "id_card": ID_CARD.lower(),
        "address": "浙江省杭州市西湖区文三路90号",
    }
    df = imported.imported_customers(
        {"import_brand_crm_customers": _bronze(spark, _bronze_row("C1", **raw))}, KEY
    )
    clean, vault = split_pii(df)
    [row] = clean.collect()
    expected = {
        "name": normalize_name_py(raw["name"]),
        "phone": normalize_phone_py(raw["phone"]),
        "email": normalize_email_py(raw["email"]),
        "id_card": normalize_id_card_py(raw["id_card"]),
    }
    for kind, value in expected.items():
        assert value is not None, kind
        assert row[f"{kind}_token"] == _token(kind, value), kind
        assert row[f"{kind}_masked"] is not None, kind
    assert len(row["address_token"]) == 64
    assert row["address_masked"].endswith("***")
    # no raw value in any column
    text = " ".join(str(v) for v in row.asDict().values())
    for value in (*raw.values(), "13957112233", ID_CARD, "zhangwei@163.com", "文三路"):
        assert value.strip() not in text, value
    # the vault holds the normalized values, by kind and token
    vaulted = {(r["kind"], r["token"]): r["value"] for r in vault.collect()}
    for kind, value in expected.items():
        assert vaulted[(kind, _token(kind, value))] == value


def test_name_from_family_and_given_name(spark):
    rows = _silver(
        spark,
        _bronze_row("C1", family_name="张", given_name="伟"),
        _bronze_row("C2", family_name="Smith", given_name="John"),
        _bronze_row("C3", name="李娜", family_name="王", given_name="芳"),  # the name wins
        _bronze_row("C4", family_name="欧阳"),
    )
    for key, name in [("C1", "张伟"), ("C2", "John Smith"), ("C3", "李娜"), ("C4", "欧阳")]:
        assert rows[key]["name_token"] == _token("name", normalize_name_py(name)), key


def test_address_from_a_street_and_its_parts(spark):
    rows = _silver(
        spark,
        _bronze_row(
            "C1",
            province="浙江省",
            city="杭州市",
            district="西湖区",
            street_address="文三路90号",
        ),
        _bronze_row("C2", address="浙江省杭州市西湖区文三路90号"),
        _bronze_row("C3", province="浙江省", city="杭州市"),  # no street: no address
    )
    assert rows["C1"]["address_token"] is not None
    assert rows["C1"]["address_token"] == rows["C2"]["address_token"]
    assert rows["C3"]["address_token"] is None
    assert (rows["C3"]["province"], rows["C3"]["city"]) == ("浙江省", "杭州市")
    # the divisions alone still get their codes, the same as the full address's
    assert rows["C1"]["city_code"] is not None
    assert rows["C3"]["city_code"] == rows["C1"]["city_code"]
    assert rows["C2"]["district_code"] == rows["C1"]["district_code"]


def test_gender_and_consent(spark):
    rows = _silver(
        spark,
        _bronze_row("C1", gender="M", marketing_consent="yes"),
        _bronze_row("C2", gender="F", marketing_consent="no"),
        _bronze_row("C3", gender="男", marketing_consent="同意"),  # a 1-0-0 row, as given
        _bronze_row("C4", gender="?", marketing_consent="maybe"),
        _bronze_row("C5"),
    )
    got = {k: (r["gender"], r["marketing_consent"]) for k, r in rows.items()}
    assert got == {
        "C1": ("M", True),
        "C2": ("F", False),
        "C3": ("M", True),
        "C4": (None, None),
        "C5": (None, None),
    }


def test_birthday_birth_year_and_times(spark):
    registered, consented = datetime(2024, 5, 1, 10), datetime(2024, 5, 2, 11)
    rows = _silver(
        spark,
        _bronze_row(
            "C1", birthday=date(1991, 2, 28), registered_at=registered, consent_at=consented
        ),
        _bronze_row("C2", birthday=date.today() + timedelta(days=30)),  # not born yet
    )
    assert (rows["C1"]["birthday"], rows["C1"]["birth_year"]) == (date(1991, 2, 28), 1991)
    assert (rows["C1"]["registered_at"], rows["C1"]["consent_at"]) == (registered, consented)
    assert (rows["C2"]["birthday"], rows["C2"]["birth_year"]) == (None, None)


def test_money_points_and_tags(spark):
    rows = _silver(
        spark,
        _bronze_row(
            "C1", total_spent=Decimal("1288.50"), points=120, tags="高价值，复购;VIP|VIP| "
        ),
        _bronze_row("C2", tags=" , "),
    )
    assert rows["C1"]["total_spent"] == Decimal("1288.50")
    assert rows["C1"]["currency"] == "CNY"
    assert rows["C1"]["points"] == 120
    assert rows["C1"]["tags"] == ["高价值", "复购", "VIP"]
    assert (rows["C2"]["currency"], rows["C2"]["tags"]) == (None, None)


def test_ids_stay_in_clear(spark):
    rows = _silver(
        spark,
        _bronze_row("C1", member_card=" 8800001 ", wechat_unionid="uUNION", wechat_openid="oOPEN"),
    )
    got = rows["C1"]
    assert (got["member_card"], got["wechat_unionid"], got["wechat_openid"]) == (
        "8800001",
        "uUNION",
        "oOPEN",
    )
    assert got["source"] == "brand_crm"


def _validate(df):
    from jobs.quality.gate import validate

    return validate(
        df, "silver.imported_customers", run_id="t", expectations_dir=Path("expectations")
    )


def test_the_suite_passes_good_rows_and_blocks_bad_ones(spark):
    good = imported.imported_customers(
        {
            "import_brand_crm_customers": _bronze(
                spark,
                _bronze_row("C1", phone=PHONE, gender="F", total_spent=Decimal("10.00")),
                _bronze_row("C2", email="c2@163.com", birthday=date(1990, 1, 1)),
            )
        },
        KEY,
    )
    good, _vault = split_pii(good)
    report = _validate(good)
    assert report.success_blocking, report.failed_blocking

    from pyspark.sql import functions as F

    duplicate = good.unionByName(good.where(F.col("customer_id") == "C1"))
    assert not _validate(duplicate).success_blocking
    raw_phone = good.withColumn("phone_token", F.lit(PHONE))
    assert not _validate(raw_phone).success_blocking
