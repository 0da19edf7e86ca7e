"""What a silver table is: the bronze (or silver) tables it reads, the pure transform that builds
it, its key, and how a day's output is written. Every domain module of jobs/silver declares its
tables as `TABLES: tuple[SilverTable, ...]`; `jobs.silver.build` runs them in order.

The contract a transform keeps:

- `build(batch) -> DataFrame` is pure: it reads only `batch` (the day's bronze rows of its
  inputs, the silver tables it depends on, the PII key, the time zone) and returns the rows to
  write. No I/O, no `collect()`.
- The output has every column of `keys`, unique per row. Raw contact details never appear in it:
  a phone, email, ID number, name or address becomes a token (`<kind>_token`, keyed HMAC) and a
  masked display form. The normalized raw value, which matching and activation need, rides along
  in a column named `_pii_<kind>` next to `<kind>_token`; the build writes those pairs to the PII
  vault (`vault.pii`) and drops every `_pii_*` column before silver is written.
- `mode="merge"`: the day's rows are upserted on `keys`, versioned by `_logical_date` (a rerun
  of an older day never rolls a key back). `partition_by` (a date column that is a function of
  the key, such as an event's business date) partitions the table and prunes the merge to the
  partitions the day touched.
- `mode="replace"`: a state derived from whole silver tables (a follower's current state, a
  running balance); `build` reads them through `batch.silver(name)` and the table is replaced.
- `refresh`: a day-grained rule (fake-order flags look at one day's orders from an address) is
  re-applied, after the merge, to the rows whose `refresh_by` date the day's rows touched or
  `ops.recompute_days` marked: late records change the verdict on the day they belong to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass
class Batch:
    """What a transform may read: the day's bronze rows of each input (None when that bronze
    table does not exist yet), the silver tables as they are now, the PII key and time zone."""

    logical_date: date
    hmac_key: bytes
    timezone: str = "Asia/Shanghai"
    bronze: dict[str, DataFrame | None] = field(default_factory=dict)
    silver_tables: dict[str, DataFrame | None] = field(default_factory=dict)

    def silver(self, name: str) -> DataFrame | None:
        """A silver table as it is now (after this run's earlier tables), or None."""
        return self.silver_tables.get(name)


@dataclass(frozen=True)
class SilverTable:
    name: str  # silver.<name>
    build: Callable[[Batch], DataFrame | None]  # None: nothing to write today
    keys: tuple[str, ...]
    inputs: tuple[str, ...] = ()  # bronze tables (the day's rows are in batch.bronze)
    depends_on: tuple[str, ...] = ()  # silver tables read (built earlier in the same run)
    mode: Literal["merge", "replace"] = "merge"
    partition_by: str | None = None
    refresh: Callable[[DataFrame], DataFrame] | None = None
    refresh_by: str | None = None  # the date column `refresh` works per day of
    suite: str | None = None  # GX suite, default "silver.<name>" when that file exists
    # A merge's condition for replacing an existing row, over `s` (new) and `t` (existing),
    # instead of "the same or a later `_logical_date`": events keep their earliest received copy.
    update_when: str | None = None

    @property
    def suite_name(self) -> str:
        return self.suite or f"silver.{self.name}"
