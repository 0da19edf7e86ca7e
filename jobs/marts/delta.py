"""The daily delta of the customer scores: which customers a day can change, and the scores of
all customers from those customers' new rows and everyone else's last ones.

A customer's own figures (features, RFM's raw values, the buy-till-you-die summary) depend on
their records and on the as-of date. Between two runs they change only for:

- the customers of the rows silver took since the last run (`_logical_date` from the day after
  the last run's date, or the run's own date for a rerun or a backfill; a state rebuilt whole,
  such as WeCom relationships or Official Account followers, by its `updated_at`), and of the
  orders silver flagged again in place (every order of the days those orders fall on, and of
  the days ops.recompute_days marks);
- the customers of dated rows that the new as-of date now counts (dated after the last as-of
  date, up to this one) or that a window lets go (RFM's `window_days`, LTV's `history_days`,
  the browse features' `activity_days`), and of add-to-carts that became abandoned;
- the profiles One-ID re-resolved since the scores last ran (silver.identity_touched: the old
  profiles of every merge, split or record move, and the new ones), and profiles new to
  silver.customers.

Those are scored again from silver (`affected`); every other customer keeps their figures, with
the day-counting ones moved on by the days between the runs (recency, T). What compares
customers with one another (RFM's scores and classes, price bands, the LTV predictions) is then
computed over everyone, as a full run does. A delta therefore writes what a full run of the
same silver writes (a test holds it to that), for the cost of the day's customers.

A full run instead when there is no earlier run, the rules changed (features.yaml, rfm.yaml,
ltv.yaml), the as-of date went back, or One-ID ran in full since (every profile may differ).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from jobs.common import lake
from jobs.common.settings import Settings
from jobs.identity import incremental as identity_delta
from jobs.marts import features, ltv, rfm

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

RUNS = "score_runs"  # ops: one row per scoring run
OUTPUTS = ("customer_features", "customer_rfm", "customer_ltv")  # silver: the delta's state


@dataclass(frozen=True)
class LastRun:
    logical_date: date
    as_of: date
    fingerprint: str
    started_at: datetime
    identity_through: datetime | None  # the last One-ID run the scores took in


def fingerprint() -> str:
    """What decides the scores besides silver: the rules of features, RFM and LTV."""
    text = "|".join(
        r.model_dump_json() for r in (features.load_settings(), rfm.load_rules(), ltv.load_rules())
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def last_run(settings: Settings) -> LastRun | None:
    runs = lake.read_rows(lake.table_path("ops", RUNS, settings))
    if not runs:
        return None
    r = max(runs, key=lambda r: r["finished_at"])
    return LastRun(
        r["logical_date"], r["as_of"], r["fingerprint"], r["started_at"], r["identity_through"]
    )


def record_run(settings: Settings, row: dict) -> None:
    import pyarrow as pa

    schema = pa.schema(
        [
            ("logical_date", pa.date32()),
            ("as_of", pa.date32()),
            ("mode", pa.string()),
            ("why", pa.string()),
            ("fingerprint", pa.string()),
            ("started_at", pa.timestamp("us", tz="UTC")),
            ("finished_at", pa.timestamp("us", tz="UTC")),
            ("identity_through", pa.timestamp("us", tz="UTC")),
            ("seconds", pa.float64()),
            ("customers", pa.int64()),
            ("rescored", pa.int64()),
        ]
    )
    lake.append_arrow(pa.Table.from_pylist([row], schema), lake.table_path("ops", RUNS, settings))


def identity_runs(settings: Settings, after: datetime | None) -> list[dict]:
    """One-ID's runs that finished after `after` (all of them when None)."""
    runs = lake.read_rows(lake.table_path("ops", identity_delta.RUNS, settings))
    return [r for r in runs if after is None or r["finished_at"] > after]


def choose_mode(
    requested: str, last: LastRun | None, as_of: date, new_identity: list[dict], settings: Settings
) -> tuple[str, str]:
    """('full' | 'incremental', why)."""
    if requested == "full":
        return "full", "asked for"
    if last is None or not all(
        lake.is_delta(lake.table_path("silver", n, settings)) for n in (*OUTPUTS, "customers")
    ):
        return "full", "no earlier run's scores"
    if last.fingerprint != fingerprint():
        return "full", "the rules of features, RFM or LTV changed"
    if as_of < last.as_of:
        return "full", f"the last scores are as of a later date ({last.as_of})"
    if any(r["mode"] != "incremental" or not r.get("run_id") for r in new_identity):
        return "full", "One-ID ran in full since the last scores"
    return "incremental", "the day's customers"


def since(last: LastRun, day: date) -> date:
    """The first `_logical_date` whose rows the delta reads: the day after the last run's, or
    the day itself for a rerun or a backfill (as One-ID's delta does)."""
    return day if day <= last.logical_date else last.logical_date + timedelta(days=1)


# --- the customers a day changes ------------------------------------------------------------


def _dated(column: Column, after: date, through: date) -> Column:
    """`column` (a date) in (after, through]."""
    from pyspark.sql import functions as F

    return (column > F.lit(after)) & (column <= F.lit(through))


def recomputed_days(first: date, logical_date: date, settings: Settings) -> list[date]:
    """The earlier business days late records of the runs from `first` to `logical_date` made
    silver recompute (ops.recompute_days): their orders' flags may have changed."""
    from jobs.ingest.bronze import days_to_recompute

    days: set[date] = set()
    day = first
    while day <= logical_date:
        days.update(days_to_recompute(day, settings))
        day += timedelta(days=1)
    return sorted(days)


def changed_rows(
    df: DataFrame,
    table: str,
    first: date,
    last: LastRun,
    as_of: date,
    recomputed: Sequence[date] = (),
) -> Column | None:
    """The rows of silver.`table` (`df`) that can change their customer's scores since `last`,
    as a condition (None: every row, when the table cannot tell). `recomputed`: the days whose
    orders silver flagged again (`recomputed_days`)."""
    from pyspark.sql import functions as F

    previous = last.as_of
    columns = set(df.columns)
    if table in ("wecom_relationships", "oa_followers"):  # states rebuilt whole each day
        if "updated_at" not in columns:
            return None
        return F.col("updated_at") > F.lit(last.started_at)
    if "_logical_date" not in columns:
        return None
    cond = F.col("_logical_date") >= F.lit(first)

    def counted_now(column: Column) -> None:  # dated rows the new as-of date counts
        nonlocal cond
        cond = cond | _dated(column, previous, as_of)

    def let_go(column: Column, days: int | None) -> None:  # rows a window of `days` drops
        nonlocal cond
        if days:
            cond = cond | _dated(column, previous - timedelta(days), as_of - timedelta(days))

    settings = features.load_settings()
    if table == "orders":
        # silver re-flags (刷单 rings, test orders) every order of the days the day's orders
        # fall on, and of the recomputed days, in place: those orders keep their _logical_date
        day_dates = df.where(cond).select("order_date").distinct().collect()
        flagged = {r[0] for r in day_dates if r[0] is not None} | set(recomputed)
        if flagged:
            cond = cond | F.col("order_date").isin(sorted(flagged))
        counted_now(F.col("order_date"))
        let_go(F.col("order_date"), rfm.load_rules().window_days)
        let_go(F.col("order_date"), ltv.load_rules().history_days)
    elif table == "events":
        day = F.col("event_date")
        counted_now(day)
        let_go(day, settings.activity_days)
        # add-to-carts the new as-of date may find abandoned (cart_hours passed, no order)
        waited = math.ceil(settings.cart_hours / 24)
        cond = cond | (
            (F.lower("event_type") == "add_to_cart")
            & _dated(day, previous - timedelta(days=waited + 1), as_of)
        )
    elif table == "wecom_messages":
        counted_now(F.to_date("msg_ts"))
    elif table == "points_ledger":
        counted_now(F.to_date("occurred_at"))
    elif table == "coupons":
        counted_now(F.to_date("redeemed_at"))
    return cond


def affected(spark: SparkSession, inputs: features.Inputs, settings: Settings, run_ids: list[str]):
    """The one_ids whose own figures a delta computes again (a DataFrame of `one_id`): those
    of `inputs` (silver's changed rows, each with its one_id; order lines by their order's),
    the profiles One-ID's runs `run_ids` touched, and customers the last scores do not have."""
    from pyspark.sql import functions as F

    parts = [
        df.select("one_id")
        for df in (
            inputs.orders,
            inputs.items,
            inputs.events,
            inputs.relationships,
            inputs.messages,
            inputs.followers,
            inputs.tiers,
            inputs.points,
            inputs.coupons,
        )
        if df is not None
    ]
    touched = lake.table_path("silver", identity_delta.TOUCHED, settings)
    if run_ids and lake.is_delta(touched):
        parts.append(
            spark.read.format("delta")
            .load(touched)
            .where(F.col("run_id").isin(run_ids))
            .select("one_id")
        )
    scored = spark.read.format("delta").load(
        lake.table_path("silver", "customer_features", settings)
    )
    parts.append(inputs.customers.select("one_id").join(scored, "one_id", "left_anti"))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out.where(F.col("one_id").isNotNull()).distinct()


def ltv_shift(previous: date, as_of: date) -> float:
    """How far T moves, in LTV's periods, from `previous` to `as_of` for a customer whose
    purchases did not change."""
    if ltv.load_rules().freq == "D":
        return float((as_of - previous).days)
    monday = lambda d: d - timedelta(days=d.weekday())  # noqa: E731
    return (monday(as_of) - monday(previous)).days / 7
