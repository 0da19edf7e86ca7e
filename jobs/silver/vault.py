"""Raw contact details stay out of analyst-readable tables: the PII vault.

Silver, gold and ops hold a keyed-HMAC token (`<name>_token`, stable for one key, so joins across
sources work) and a masked display form (`<name>_masked`) of each phone, email, ID number, name
and address. Their normalized forms, which probabilistic matching and activation (hashed-phone
exports, messages) need, go to one restricted table, `vault.pii` (kind, token, value), that only
pipeline code reads, like bronze.

A transform emits the three columns with `pii_columns`; the normalized value rides in a column
named `_pii_<kind>__<name>` that `split_pii` takes off before silver is written.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.common.pii import hmac_sha256_hex

# What the vault holds: one kind per sort of contact detail, each with its own token namespace.
PII_KINDS = ("phone", "email", "id_card", "name", "address")
PII_PREFIX = "_pii_"
VAULT_COLUMNS = ("kind", "token", "value")


def token(kind: str, normalized: Column, key: bytes) -> Column:
    """The keyed HMAC of a normalized value in its kind's namespace (`phone:+8613800138000`)."""
    if kind not in PII_KINDS:
        raise ValueError(f"unknown PII kind {kind!r}; expected one of {', '.join(PII_KINDS)}")
    return hmac_sha256_hex(normalized, key, namespace=f"{kind}:")


def pii_columns(
    kind: str, normalized: Column, masked: Column, key: bytes, name: str | None = None
) -> list[Column]:
    """`<name>_token`, `<name>_masked` and the vault-bound `_pii_<kind>__<name>` of one value
    (`name` defaults to the kind: `phone_token`, `phone_masked`). Null in, nulls out."""
    name = name or kind
    return [
        token(kind, normalized, key).alias(f"{name}_token"),
        F.when(normalized.isNotNull(), masked).alias(f"{name}_masked"),
        normalized.alias(f"{PII_PREFIX}{kind}__{name}"),
    ]


def pii_fields(df: DataFrame) -> list[tuple[str, str, str]]:
    """(column, kind, token column) of each vault-bound column of `df`."""
    return [(c, *_kind_and_token(c)) for c in df.columns if c.startswith(PII_PREFIX)]


def split_pii(df: DataFrame) -> tuple[DataFrame, DataFrame | None]:
    """(the rows without their `_pii_*` columns, the vault rows (kind, token, value) they carry,
    distinct and non-null; None when `df` carries none)."""
    fields = pii_fields(df)
    if not fields:
        return df, None
    parts = [
        df.select(F.lit(kind).alias("kind"), F.col(tok).alias("token"), F.col(col).alias("value"))
        for col, kind, tok in fields
    ]
    # A row may carry a token without its value (a transform kept the token silver already
    # had): that must not overwrite the value the vault holds.
    vault = (
        reduce(DataFrame.unionByName, parts)
        .where(F.col("token").isNotNull() & F.col("value").isNotNull())
        .distinct()
    )
    return df.drop(*(col for col, _, _ in fields)), vault


def split_pii_arrow(table):
    """`split_pii` for an Arrow table (a small day's output, already computed)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fields = [(c, *_kind_and_token(c)) for c in table.column_names if c.startswith(PII_PREFIX)]
    if not fields:
        return table, None
    parts = []
    for col, kind, tok in fields:
        part = pa.table(
            {
                "kind": pa.array([kind] * table.num_rows, pa.string()),
                "token": table[tok].cast(pa.string()),
                "value": table[col].cast(pa.string()),
            }
        )
        parts.append(part.filter(pc.and_(pc.is_valid(part["token"]), pc.is_valid(part["value"]))))
    return table.drop_columns([c for c, _, _ in fields]), pa.concat_tables(parts)


def _kind_and_token(column: str) -> tuple[str, str]:
    kind, _, name = column.removeprefix(PII_PREFIX).partition("__")
    return kind, f"{name or kind}_token"
