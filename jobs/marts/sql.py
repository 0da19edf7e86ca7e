"""The few SQL spellings Spark and DuckDB do not share, for the marts' engine-neutral SQL.

The customer scores (RFM, the buy-till-you-die summary) are written once, as SQL both engines
read alike: Spark runs it in the daily job over the lake, DuckDB in `cdp rfm` / `cdp ltv` over
any order file, and a test holds the two to the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Dialect:
    name: str

    def days_between(self, start: str, end: str) -> str:
        """Whole days from the date `start` to the date `end`."""
        if self.name == "spark":
            return f"datediff({end}, {start})"
        return f"date_diff('day', {start}, {end})"


SPARK = Dialect("spark")
DUCKDB = Dialect("duckdb")


def date_literal(day: date) -> str:
    return f"date '{day.isoformat()}'"


def week_start(day: str) -> str:
    """The Monday of the ISO week holding the date `day`, as a date in both engines."""
    return f"cast(date_trunc('week', {day}) as date)"
