"""Brands' own member lists (`cdp import customers`) in silver: `silver.imported_customers`, one
row per (source, customer_id), the latest imported file winning.

Why this shape:
- Every `cdp import customers --source NAME` lands in its own bronze table,
  `import_<NAME>_customers`, holding only the columns its mapping named (a store list has a
  phone and a name, a CRM export twenty fields). The build passes every such table
  (`inputs=("import_*_customers",)`, a glob the build expands); each is conformed to the full
  field list of the import schema (absent fields are typed nulls) and the tables are unioned.
- A brand re-exports its member list: the latest file wins per key (`_ingested_at`, then
  `_file` and `_line`), and across days the merge keeps the latest logical date's row.
- Bronze keeps what the brand sent (gender and consent read through the importer's value maps,
  other values as given or null when they did not parse); silver conforms it with the cleaning
  library (jobs/common/clean): names, phones, emails, ID numbers and addresses become a token,
  a masked form and a vault value (jobs/silver/vault.py); the address comes from the one-line
  `address`, or from the street plus district, city and province, with its divisions and codes
  as plain columns. Member cards, WeChat ids and the brand's customer ids stay in clear.
- Rows of a table imported under schema 1-0-0 (free-text gender, consent yes/no) read the same:
  gender and consent go through the same value maps the importer applies.
"""

from __future__ import annotations

import fnmatch
import re
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.clean.addresses import address_from_parts, mask_address
from jobs.common.clean.dates import parse_birthday
from jobs.common.clean.emails import mask_email, normalize_email
from jobs.common.clean.id_cards import mask_id_card, normalize_id_card
from jobs.common.clean.names import mask_name, normalize_name
from jobs.common.clean.phones import mask_phone, normalize_phone, partial_phone
from jobs.ingest.importer import DEFAULT_VALUES, target
from jobs.silver.common import blank_to_null, latest_landed
from jobs.silver.table import Batch, SilverTable
from jobs.silver.vault import pii_columns

INPUTS = "import_*_customers"  # a glob: one bronze table per imported source
_SOURCE_OF_TABLE = re.compile(r"^import_(.+)_customers$")
CURRENCY = "CNY"  # brands' member lists state spend in yuan
GENDERS = ("M", "F", "U")
# Separators of a tags cell: , ， ; ； | ｜ (a brand's CRM writes 高价值，复购 or VIP|新客).
TAG_SEPARATORS = r"[,，;；|｜]"
_SPARK_TYPES = {
    "string": "string",
    "decimal": "decimal(18,2)",
    "int": "bigint",
    "datetime": "timestamp",
    "date": "date",
}
_META_TYPES = {
    "_source": "string",
    "_file": "string",
    "_line": "bigint",
    "_batch_id": "string",
    "_ingested_at": "timestamp",
}


def field_types() -> dict[str, str]:
    """Every field of the import customer schema -> its Spark type (the importer's target)."""
    return {name: _SPARK_TYPES[t] for name, t in target("customers").types.items()}


# --- conform and collapse -----------------------------------------------------------------------


def conform(bronze: DataFrame, source: str | None = None) -> DataFrame:
    """One bronze import table -> every field of the schema, typed, in schema order (a field its
    mapping did not name is null), plus the bookkeeping columns; `_source` falls back to
    `source` (from the table's name)."""
    present = set(bronze.columns)
    types = {**field_types(), **_META_TYPES}

    cols = {
        name: (F.col(name) if name in present else F.lit(None)).cast(type_)
        for name, type_ in types.items()
    }
    if source is not None:
        cols["_source"] = F.coalesce(cols["_source"], F.lit(source))
    return bronze.select(*(col.alias(name) for name, col in cols.items()))


def union_imports(frames: dict[str, DataFrame | None]) -> DataFrame | None:
    """The day's rows of every `import_<source>_customers` table, conformed and unioned (None
    when there are none)."""
    parts = []
    for name, df in sorted(frames.items()):
        if df is None or not fnmatch.fnmatchcase(name, INPUTS):
            continue
        match = _SOURCE_OF_TABLE.match(name)
        parts.append(conform(df, match.group(1) if match else None))
    return reduce(DataFrame.unionByName, parts) if parts else None


# --- field rules --------------------------------------------------------------------------------


def _lookup(mapping: dict[str, str], col: Column) -> Column:
    return F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv])[F.trim(col)]


def gender_code(col: Column) -> Column:
    """M, F or U: a code as given, or a spelling the importer maps (男, female, 1, 保密 ...);
    anything else null."""
    spellings = {**DEFAULT_VALUES["customers"]["gender"], **{g: g for g in GENDERS}}
    return _lookup(spellings, col)


def consent_flag(col: Column) -> Column:
    """Marketing consent as a boolean: "yes" -> true, "no" -> false (and the spellings the
    importer maps: 同意/拒绝, true/false, 1/0 ...); anything else null (unknown, not refused)."""
    spellings = {**DEFAULT_VALUES["customers"]["marketing_consent"], "yes": "yes", "no": "no"}
    code = _lookup(spellings, col)
    return F.when(code == "yes", F.lit(True)).when(code == "no", F.lit(False))


def full_name(name: Column, family: Column, given: Column) -> Column:
    """The name as given, else family and given name joined: 张 + 伟 -> 张伟 (Chinese order, no
    space, when either part has a Han character), Smith + John -> "John Smith"."""
    family, given = blank_to_null(family), blank_to_null(given)
    han = family.rlike(r"\p{IsHan}") | given.rlike(r"\p{IsHan}")
    joined = F.when(
        F.coalesce(han, F.lit(False)) | family.isNull() | given.isNull(),
        F.concat_ws("", family, given),
    ).otherwise(F.concat_ws(" ", given, family))
    return F.coalesce(blank_to_null(name), blank_to_null(joined))


def customer_address(
    address: Column, street: Column, district: Column, city: Column, province: Column
) -> Column:
    """The standardized address (struct of clean.addresses) of a member: the one-line address
    when given, else the street with its district, city and province in front, else those
    divisions alone (for their names and codes). One pass of the address UDF per row."""
    one_line = blank_to_null(address)

    def part(col: Column) -> Column:
        return F.when(one_line.isNull(), blank_to_null(col))

    detail = F.coalesce(one_line, blank_to_null(street))
    return address_from_parts(part(province), part(city), part(district), detail)


def has_address(address: Column, street: Column) -> Column:
    """Is there an address to tokenize: a one-line address or a street? A province or city
    alone is where someone lives, not an address."""
    return blank_to_null(address).isNotNull() | blank_to_null(street).isNotNull()


def divisions(
    standardized: Column, district: Column, city: Column, province: Column
) -> dict[str, Column]:
    """Province, city, district and their codes: as the standardized address found them, else
    the province/city/district columns as given (no division matched them: no codes)."""
    raw = {"province": province, "city": city, "district": district}
    out = {name: F.coalesce(standardized[name], blank_to_null(col)) for name, col in raw.items()}
    for name in raw:
        out[f"{name}_code"] = standardized[f"{name}_code"]
    return out


def split_tags(col: Column) -> Column:
    """A tags cell -> array<string>: split on , ， ; ； | ｜, trimmed, blanks and repeats
    dropped; null when nothing is left."""
    tags = F.array_distinct(
        F.filter(F.transform(F.split(col, TAG_SEPARATORS), lambda t: F.trim(t)), lambda t: t != "")
    )
    return F.when(F.size(tags) > 0, tags)


# --- the transform ------------------------------------------------------------------------------


def to_silver(df: DataFrame, hmac_key: bytes) -> DataFrame:
    """Conformed bronze customers (one row per key) -> the silver model: ids in clear, gender,
    birthday, PII as token + masked + vault value, divisions, consent as a boolean, money as a
    decimal with its currency, tags as an array."""
    # "" for no name: the name UDF fails on a batch of nulls only (and reads "" as no name).
    given = full_name(F.col("name"), F.col("family_name"), F.col("given_name"))
    name = normalize_name(F.coalesce(given, F.lit("")))
    phone = normalize_phone(F.col("phone"))
    email = normalize_email(F.col("email"))
    id_card = normalize_id_card(F.col("id_card"))
    birthday = parse_birthday(F.date_format(F.col("birthday"), "yyyy-MM-dd"))
    total_spent = F.col("total_spent").cast("decimal(18,2)")
    return (
        df.withColumn(
            "_address",
            customer_address(
                F.col("address"),
                F.col("street_address"),
                F.col("district"),
                F.col("city"),
                F.col("province"),
            ),
        )
        .withColumn(
            "_address_key",
            F.when(
                has_address(F.col("address"), F.col("street_address")),
                blank_to_null(F.col("_address")["address_key"]),
            ),
        )
        .select(
            F.col("_source").alias("source"),
            F.col("customer_id"),
            blank_to_null(F.col("member_card")).alias("member_card"),
            blank_to_null(F.col("wechat_unionid")).alias("wechat_unionid"),
            blank_to_null(F.col("wechat_openid")).alias("wechat_openid"),
            blank_to_null(F.col("wechat_appid")).alias("wechat_appid"),
            gender_code(F.col("gender")).alias("gender"),
            birthday.alias("birthday"),
            F.year(birthday).alias("birth_year"),
            *pii_columns("name", name, mask_name(name), hmac_key),
            *pii_columns("phone", phone, mask_phone(phone), hmac_key),
            partial_phone(F.col("phone")).alias("phone_partial"),
            *pii_columns("email", email, mask_email(email), hmac_key),
            *pii_columns("id_card", id_card, mask_id_card(id_card), hmac_key),
            *pii_columns(
                "address",
                F.col("_address_key"),
                mask_address(F.col("_address")),
                hmac_key,
            ),
            *(
                col.alias(col_name)
                for col_name, col in divisions(
                    F.col("_address"), F.col("district"), F.col("city"), F.col("province")
                ).items()
            ),
            blank_to_null(F.col("postcode")).alias("postcode"),
            F.col("registered_at").cast("timestamp").alias("registered_at"),
            consent_flag(F.col("marketing_consent")).alias("marketing_consent"),
            F.col("consent_at").cast("timestamp").alias("consent_at"),
            blank_to_null(F.col("member_level")).alias("member_level"),
            F.col("points").cast("bigint").alias("points"),
            total_spent.alias("total_spent"),
            F.when(total_spent.isNotNull(), F.lit(CURRENCY)).alias("currency"),
            split_tags(F.col("tags")).alias("tags"),
            F.col("_file").alias("source_file"),
            F.col("_line").alias("source_line"),
            F.col("_batch_id"),
            F.col("_ingested_at").alias("updated_at"),
        )
    )


def imported_customers(frames: dict[str, DataFrame | None], hmac_key: bytes) -> DataFrame | None:
    """The day's bronze import tables -> silver rows (None when no customers were imported)."""
    union = union_imports(frames)
    if union is None:
        return None
    # One row per (source, customer_id): the latest imported file wins, within a file the last line.
    latest = latest_landed(union, ["_source", "customer_id"])
    return to_silver(latest, hmac_key)


def _build(batch: Batch) -> DataFrame | None:
    return imported_customers(batch.bronze, batch.hmac_key)


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="imported_customers",
        build=_build,
        keys=("source", "customer_id"),
        inputs=(INPUTS,),
    ),
)
