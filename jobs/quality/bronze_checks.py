"""What the bronze gate needs besides the suite: the day's rows and the run-time parameters.

Bronze suites run on one day's slice of a table, read through delta-rs into an Arrow-backed
pandas frame (GX's pandas engine): a day is small, and a Spark job per suite cost seconds of
fixed overhead per source. Their type expectations therefore name Python value types (``str``,
``Decimal``, ``datetime``), not Spark's.

Two expectations in every bronze suite depend on the day being judged, so their bounds are GX
``$PARAMETER`` values computed here:

- volume: ``volume_min`` / ``volume_max``, the median row count of the trailing days that had
  data, plus or minus the tolerance (a day 30% off its trailing median is an anomaly: a stuck
  export, a missed file, a duplicated one). Too little history: no bounds.
- freshness: ``freshness_min``, the oldest acceptable newest record: the end of the logical day
  minus the maximum age. A "new" export whose newest order is days old is a stale file. Also
  as unix seconds and milliseconds (``freshness_min_epoch_s`` / ``_ms``) for sources that date
  records that way.
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from jobs.common.settings import QualitySettings

if TYPE_CHECKING:
    import pandas as pd


def volume_bounds(
    history: dict[date, int], day: date, settings: QualitySettings
) -> tuple[int, int | None]:
    """(min, max) rows expected for `day` from the trailing window's days with data.

    Days without rows (quiet or missing exports) don't count towards the median; with fewer
    than `volume_min_history_days` such days there is no judgement: (0, None).
    """
    window = [
        n
        for d, n in history.items()
        if day - timedelta(days=settings.volume_window_days) <= d < day and n > 0
    ]
    if len(window) < settings.volume_min_history_days:
        return 0, None
    median = statistics.median(window)
    low = math.floor(median * (1 - settings.volume_tolerance))
    high = math.ceil(median * (1 + settings.volume_tolerance))
    return max(low, 0), high


def freshness_min(day: date, settings: QualitySettings, timezone: str) -> datetime:
    """The oldest acceptable newest record of `day`'s export, as an aware UTC instant."""
    end_of_day = datetime.combine(day + timedelta(days=1), time.min, ZoneInfo(timezone))
    return (end_of_day - timedelta(hours=settings.freshness_max_age_hours)).astimezone(UTC)


def parameters(
    history: dict[date, int], day: date, settings: QualitySettings, timezone: str
) -> dict[str, object]:
    low, high = volume_bounds(history, day, settings)
    fresh = freshness_min(day, settings, timezone)
    return {
        "volume_min": low,
        "volume_max": high,
        "freshness_min": fresh,
        # the same instant for sources that send unix time (WeCom, Official Account)
        "freshness_min_epoch_s": int(fresh.timestamp()),
        "freshness_min_epoch_ms": int(fresh.timestamp() * 1000),
    }


# --- I/O: delta-rs, no Spark --------------------------------------------------------------------


def rows_per_day(path: str) -> dict[date, int]:
    """Rows per `_logical_date` partition, from the Delta log's file statistics (no data read)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    # delta-rs answers in arro3; pa.table() takes it over the Arrow C interface, no copy.
    actions = pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pydict()
    counts: dict[date, int] = {}
    for value, n in zip(actions["partition._logical_date"], actions["num_records"], strict=True):
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
        counts[day] = counts.get(day, 0) + int(n or 0)
    return counts


def read_day(path: str, day: date) -> pd.DataFrame:
    """One logical date of a bronze table as an Arrow-backed pandas frame."""
    import pandas as pd
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(path).to_pyarrow_dataset().to_table(filter=pc.field("_logical_date") == day)
    return table.to_pandas(types_mapper=pd.ArrowDtype)
