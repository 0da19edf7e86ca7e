"""The brand's two member lists in silver: the CRM's (`members`, by member card) and the store
system's own (`store_members`, by its member number).

Why two tables: the lists share no id (the store system numbers its members VIP + 8 digits, the
CRM by card), hold different things (the CRM: sign-up channel, guide, unionid, Taobao ouid; the
store list: level, a clerk's phone in the wrong column) and are linked only by name, birthday and
address evidence, which is One-ID's job. One table with a source column would be half nulls and
a key that means two things.

Raw contact details never reach silver: names, phones, emails and addresses become a token, a
masked form and a vault value (jobs/silver/vault.py); an address also keeps its province, city,
district and division codes in clear. Platform ids (member card, unionid, Taobao ouid) stay in
clear. A CRM member appears again when the CRM updates them: the latest `updated_at` wins.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.clean.addresses import mask_address, standardize_address
from jobs.common.clean.dates import parse_birthday
from jobs.common.clean.emails import mask_email, normalize_email
from jobs.common.clean.names import mask_name, normalize_name
from jobs.common.clean.phones import mask_phone, normalize_phone, partial_phone
from jobs.silver.common import blank_to_null, latest_landed
from jobs.silver.crm import (
    lineage,
    phone_outputs,
    pii_outputs,
    with_phone,
    with_pii,
)
from jobs.silver.table import Batch, SilverTable
from jobs.silver.vault import pii_columns

GENDERS = ("M", "F", "U")
MEMBER_CHANNELS = ("tmall", "miniprogram", "store", "crm")
STORE_LEVELS = {"NORMAL": "normal", "SILVER": "silver", "GOLD": "gold"}
ADDRESS_PARTS = ("province", "city", "district", "province_code", "city_code", "district_code")
# A clerk's "王女士" / "李先生": a surname and a title, not a name to match on.
_TITLE_ONLY = r"^.{1,2}(女士|先生|小姐|太太|阿姨)$"
# A mainland mobile in free text (备注 "手机13800138000"): 11 digits not inside a longer run.
_MOBILE_IN_TEXT = r"(?:^|[^0-9])((?:\+?86)?1[3-9][0-9]{9})(?:[^0-9]|$)"


def gender(col: Column) -> Column:
    """M/F/U as the spec maps 男/女/未知; anything else unknown to the spec is null."""
    g = F.upper(F.trim(col))
    return F.when(g.isin(*GENDERS), g)


def with_birthday(raw: Column) -> Callable[[DataFrame], DataFrame]:
    """A transform adding `birthday` (a plausible date: clean.dates.parse_birthday over its
    text) and `birth_year`."""
    return lambda df: df.withColumn("birthday", parse_birthday(raw.cast("string"))).withColumn(
        "birth_year", F.year(F.col("birthday"))
    )


def with_name(raw: Column, key: bytes) -> Callable[[DataFrame], DataFrame]:
    return with_pii("name", normalize_name(raw), mask_name, key)


def with_email(raw: Column, key: bytes) -> Callable[[DataFrame], DataFrame]:
    return with_pii("email", normalize_email(raw), mask_email, key)


def with_address(raw: Column, key: bytes) -> Callable[[DataFrame], DataFrame]:
    """A transform adding the address's token, masked form and vault value (its normalized
    text, `address_key`, which matching compares), and its province/city/district with their
    division codes in clear (clean.addresses.standardize_address, standardized once)."""

    def add(df: DataFrame) -> DataFrame:
        std = F.col("_address_std")
        out = pii_columns("address", std["address_key"], mask_address(std), key)
        parts = [std[part].alias(part) for part in ADDRESS_PARTS]
        return (
            df.withColumn("_address_std", standardize_address(blank_to_null(raw)))
            .select("*", *out, *parts)
            .drop("_address_std")
        )

    return add


PERSON_OUTPUTS = [
    "birthday",
    "birth_year",
    *pii_outputs("name"),
]
CONTACT_OUTPUTS = [*pii_outputs("address"), *ADDRESS_PARTS]


# A member's row is replaced by one the CRM modified later (a CRM re-exporting a stale copy on
# a later day never rolls the member back); without the CRM's time on both, the later day wins.
CRM_NEWER = (
    "(s.crm_updated_at IS NOT NULL AND t.crm_updated_at IS NOT NULL"
    " AND s.crm_updated_at >= t.crm_updated_at)"
    " OR ((s.crm_updated_at IS NULL OR t.crm_updated_at IS NULL)"
    " AND (t._logical_date IS NULL OR s._logical_date >= t._logical_date))"
)


# --- the CRM's members --------------------------------------------------------------------------


def crm_members(bronze: DataFrame, key: bytes) -> DataFrame:
    """Bronze CRM member rows -> one row per member card, the latest by the CRM's own
    `updated_at` (then the latest ingested). The CRM's time is kept as `crm_updated_at`;
    `updated_at` is when it reached the lake, as everywhere in silver."""
    rows = (
        latest_landed(bronze, ["member_card"], F.col("updated_at").desc_nulls_last())
        .withColumnRenamed("updated_at", "crm_updated_at")
        .transform(with_birthday(F.col("birthday")))
        .transform(with_name(F.col("name"), key))
        .transform(with_phone(F.col("mobile"), key))
        .transform(with_email(F.col("email"), key))
        .transform(with_address(F.col("address"), key))
    )
    return rows.select(
        F.col("member_card"),
        F.col("registered_at").cast("timestamp").alias("registered_at"),
        blank_to_null(F.lower(F.trim(F.col("channel")))).alias("channel"),
        blank_to_null(F.trim(F.col("home_store"))).alias("home_store"),
        blank_to_null(F.trim(F.col("guide"))).alias("guide"),
        blank_to_null(F.trim(F.col("unionid"))).alias("unionid"),
        blank_to_null(F.trim(F.col("tmall_open_uid"))).alias("tmall_open_uid"),
        gender(F.col("gender")).alias("gender"),
        *PERSON_OUTPUTS,
        *phone_outputs(),
        *pii_outputs("email"),
        *CONTACT_OUTPUTS,
        F.col("crm_updated_at").cast("timestamp").alias("crm_updated_at"),
        *lineage(),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )


# --- the store system's members ----------------------------------------------------------------


def store_phone(mobile: Column, contact_phone: Column, note: Column) -> tuple[Column, Column]:
    """(the member's phone, normalized; where it was found): 手机号码 first, else 联系电话 (clerks
    put it there), else a mobile written in 备注; a junk or invalid number counts as none. The
    columns given are expected to hold each candidate normalized already (`store_members`)."""
    candidates = (("mobile", mobile), ("contact_phone", contact_phone), ("note", note))
    where = F.lit(None).cast("string")
    for name, c in reversed(candidates):
        where = F.when(c.isNotNull(), F.lit(name)).otherwise(where)
    return F.coalesce(*(c for _, c in candidates)), where


def phone_in_text(text: Column) -> Column:
    """A mainland mobile written in free text (备注 "手机13800138000"), as written, or null."""
    found = F.regexp_extract(
        F.translate(text, "０１２３４５６７８９＋", "0123456789+"), _MOBILE_IN_TEXT, 1
    )
    return F.when(found != "", found)


def store_members(bronze: DataFrame, key: bytes) -> DataFrame:
    """Bronze store-system member rows -> one row per (store_code, store_member_id), the latest
    ingested. Names with a title only (王女士) are flagged `name_is_title`; the phone is taken
    from whichever column the clerk used (`phone_source`); 备注 itself stays in bronze
    (`has_note`)."""
    rows = (
        latest_landed(bronze, ["store_code", "store_member_id"])
        .withColumn("_mobile", normalize_phone(F.col("mobile").cast("string")))
        .withColumn("_contact", normalize_phone(F.col("contact_phone").cast("string")))
        .withColumn("_in_note", normalize_phone(phone_in_text(F.col("note"))))
    )
    phone, where = store_phone(F.col("_mobile"), F.col("_contact"), F.col("_in_note"))
    rows = (
        rows.withColumn("phone_source", where)
        .transform(with_pii("phone", phone, mask_phone, key))
        .withColumn("phone_partial", partial_phone(F.col("mobile").cast("string")))
        .transform(with_birthday(F.col("birthday")))
        .transform(with_name(F.col("name"), key))
        .transform(with_address(F.col("address"), key))
    )
    level = F.upper(F.trim(F.col("level")))
    level_map = F.create_map(*[F.lit(x) for kv in STORE_LEVELS.items() for x in kv])
    return rows.select(
        F.col("store_code"),
        F.col("store_member_id"),
        blank_to_null(F.col("store_name")).alias("store_name"),
        gender(F.col("gender")).alias("gender"),
        *PERSON_OUTPUTS,
        F.coalesce(F.col("_pii_name__name").rlike(_TITLE_ONLY), F.lit(False)).alias(
            "name_is_title"
        ),
        *phone_outputs(),
        "phone_source",
        *CONTACT_OUTPUTS,
        F.coalesce(level_map[level], F.lower(level)).alias("level"),
        F.col("registered").cast("date").alias("registered_on"),
        F.coalesce(blank_to_null(F.col("note")).isNotNull(), F.lit(False)).alias("has_note"),
        *lineage(),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )


def _build_members(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("crm_members")
    return None if bronze is None else crm_members(bronze, batch.hmac_key)


def _build_store_members(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("pos_members")
    return None if bronze is None else store_members(bronze, batch.hmac_key)


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="members",
        build=_build_members,
        keys=("member_card",),
        inputs=("crm_members",),
        update_when=CRM_NEWER,
    ),
    SilverTable(
        name="store_members",
        build=_build_store_members,
        keys=("store_code", "store_member_id"),
        inputs=("pos_members",),
    ),
)
