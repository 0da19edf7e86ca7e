"""Rules every silver module shares: a blank value is no value, re-synced rows collapse to the
latest, lateness counts in days, `_extra` reads as a map.

Each is a Column or DataFrame -> DataFrame function; the domain modules add their own order
(a platform's modification time, a dataset's priority) in front of the shared tie-breakers.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

EXTRA_TYPE = "map<string,string>"


def blank_to_null(col: Column) -> Column:
    """The value as trimmed text; null when empty or blank (an empty CSV cell, an empty XML
    element, an SDK's "" for "none")."""
    text = F.trim(col.cast("string"))
    return F.when(text != "", text)


def first_per_key(df: DataFrame, keys: list[str] | tuple[str, ...], *order: Column) -> DataFrame:
    """One row per key: the first by `order`."""
    w = Window.partitionBy(*keys).orderBy(*order)
    return df.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def latest_landed(df: DataFrame, keys: list[str] | tuple[str, ...], *first: Column) -> DataFrame:
    """Bronze rows, one per key: the first by `first` (e.g. the platform's own modification
    time), then the latest landing (`_ingested_at`, `_file`, `_line`): a re-sync, a re-export,
    a retried callback or a re-pulled archive."""
    return first_per_key(
        df,
        keys,
        *first,
        F.col("_ingested_at").desc_nulls_last(),
        F.col("_file").desc_nulls_last(),
        F.col("_line").desc_nulls_last(),
    )


def latest_stored(df: DataFrame, keys: list[str] | tuple[str, ...], *first: Column) -> DataFrame:
    """Silver-shaped rows (lineage in `updated_at`, `source_file`, `source_line`), one per key:
    the first by `first`, then the latest ingested."""
    return first_per_key(
        df,
        keys,
        *first,
        F.col("updated_at").desc_nulls_last(),
        F.col("source_file").desc_nulls_last(),
        F.col("source_line").desc_nulls_last(),
    )


def lateness_days(event_date: Column, logical_date: date | Column) -> Column:
    """Days between the event's business date and the logical date of the files that brought
    it: 0 on time, null when the event's date is unknown."""
    logical = logical_date if isinstance(logical_date, Column) else F.lit(logical_date)
    late = F.datediff(logical, event_date)
    return F.when(late.isNotNull(), F.greatest(late, F.lit(0)))


def extra_map(col: str = "_extra") -> Column:
    """Bronze `_extra` (unmapped leaves, dotted paths) as a map; null when there are none."""
    return F.from_json(F.col(col), EXTRA_TYPE)
