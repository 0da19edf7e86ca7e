"""One customer's 360 without Spark: `cdp profile ONE_ID`, and what a profile API will serve.

gold.customer_360 is written sorted by one_id (dbt), so each of its files holds a range of ids
and delta-rs (DataFusion) reads only the file whose statistics can hold the asked id. The
customer's segments come from silver.segment_members' latest export date, the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.common import lake
from jobs.common.errors import CdpError
from jobs.common.settings import Settings, get_settings


@dataclass(frozen=True)
class Profile:
    one_id: str
    row: dict  # the customer_360 row
    segments: list[str]  # the segments of the latest export holding the customer


def _segments(one_id: str, settings: Settings) -> list[str]:
    """The segments whose latest export (ops.segment_exports) holds the customer: only those
    dates' partitions of silver.segment_members are read."""
    log = lake.table_path("ops", "segment_exports", settings)
    members = lake.table_path("silver", "segment_members", settings)
    if not (lake.is_delta(log) and lake.is_delta(members)):
        return []
    exports = lake.read_arrow(log, columns=["segment", "as_of"]).to_pylist()
    last: dict[str, object] = {}
    for e in exports:
        last[e["segment"]] = max(e["as_of"], last.get(e["segment"], e["as_of"]))
    if not last:
        return []
    days = sorted(set(last.values()))
    rows = lake.read_arrow(
        members,
        f"{lake.sql_in('as_of', days)} and one_id = {lake.sql_literal(one_id)}",
        ["segment", "as_of"],
    ).to_pylist()
    return sorted({r["segment"] for r in rows if last.get(r["segment"]) == r["as_of"]})


def customer_360(one_id: str, settings: Settings | None = None) -> Profile:
    """The customer's row of gold.customer_360 and current segments (CdpError when unknown)."""
    settings = settings or get_settings()
    path = lake.table_path("gold", "customer_360", settings)
    if not lake.is_delta(path):
        raise CdpError("gold.customer_360 does not exist yet: run the daily batch first")
    rows = lake.read_arrow(path, f"one_id = {lake.sql_literal(one_id)}").to_pylist()
    if not rows:
        raise CdpError(f"no customer {one_id!r} in gold.customer_360")
    return Profile(one_id, rows[0], _segments(one_id, settings))
