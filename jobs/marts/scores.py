"""The daily customer scores: features, RFM and LTV per one_id, from silver to silver (Spark).

`score_customers` (the `score_customers` task of cdp_daily, after One-ID, before dbt) reads
every paid order One-ID gave a customer, scores it with the SQL `cdp rfm` and `cdp ltv` run on
files (jobs/marts/rfm.py, ltv.py), computes the features (jobs/marts/features.py), and replaces:

- ``silver.customer_features``: one row per one_id of silver.customers;
- ``silver.customer_rfm``: one row per one_id with a paid order in the RFM window;
- ``silver.customer_ltv``: one row per one_id with a paid order, its buy-till-you-die summary,
  the models' predictions and the churn warning;
- ``silver.customer_tag_days``: the partition of the run's business date, each customer's
  lifecycle stage and tags (jobs/marts/tags.py), scored as of that date;
- ``ops.ltv_fits``: one row per fit, appended: the fitted parameters, or why nothing was fitted;
- ``ops.score_runs``: one row per run: full or the day's delta, why, customers scored again.

Daily, only the customers the day changed are scored again and everyone else's figures carried
over (jobs/marts/delta.py): `partials` computes customers' own figures in Spark (all of them, or
some), `finish` what compares them with one another over everyone, in DuckDB.

dbt publishes them as gold.customer_rfm, gold.customer_ltv, gold.customer_tags,
gold.customer_tag_history and in gold.customer_360.

Which orders count: paid, shipped or completed, neither test nor fake (silver flags them and
keeps them), with a one_id (an order One-ID could give no one scores no one). The amount is the
order's (refunded orders are left out whole; a partial refund is not netted yet).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from jobs.common import lake
from jobs.common.progress import step
from jobs.common.settings import Settings, get_settings
from jobs.common.spark import small_data
from jobs.marts import delta, features, ltv, rfm, tags
from jobs.marts.sql import SPARK

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ORDERS_VIEW = "scored_orders"
RECORDS_VIEW = "scored_records"
# Every input table of the features, by the name features.Inputs gives it.
INPUTS = {
    "orders": "orders",
    "items": "order_items",
    "events": "events",
    "relationships": "wecom_relationships",
    "messages": "wecom_messages",
    "followers": "oa_followers",
    "tiers": "tier_history",
    "points": "points_ledger",
    "coupons": "coupons",
}


def _ltv_schema():
    import pyarrow as pa

    number = pa.float64()
    return pa.schema(
        [("one_id", pa.string()), ("as_of", pa.date32())]
        + [(c, number) for c in ("frequency", "recency", "T", "monetary_value")]
        + [("first_order_date", pa.date32()), ("last_order_date", pa.date32())]
        + [(c, number) for c in ltv.PREDICTIONS]
        + [("churn_risk", pa.bool_()), ("churn_reason", pa.string())]
    )


def read_inputs(spark: SparkSession, *, rows: Callable | None = None, only=None) -> features.Inputs:
    """Silver's tables, each record with its customer's one_id: from One-ID's records (orders,
    browse events) or, for tables no rule keeps, from identity_map by their customer id.
    `rows(df, table)`: a condition keeping some rows of each table (None: all of them), before
    they get their one_id; `only`: a DataFrame of one_ids whose records alone are read."""
    from pyspark.sql import functions as F

    def table(name: str):
        if not spark.catalog.tableExists(f"silver.{name}"):
            return None
        df = spark.table(f"silver.{name}")
        if rows is not None:
            cond = rows(df, name)
            df = df if cond is None else df.where(cond)
        return df

    records = spark.table("silver.identity_records")
    if only is not None:
        records = records.join(only, "one_id", "left_semi")
    id_map = (
        spark.table("silver.identity_map")
        if spark.catalog.tableExists("silver.identity_map")
        else None
    )

    def by_record(df, rule: str, key):
        if df is None:
            return None
        kept = records.where(F.col("rule") == rule).select("record_key", "one_id")
        how = "left" if only is None else "inner"
        return df.join(kept, key == F.col("record_key"), how).drop("record_key")

    def by_id(df, lookups):
        if df is None or id_map is None:
            return None
        out = features.attach_one_id(df, id_map, lookups)
        return out if only is None else out.join(only, "one_id", "left_semi")

    card_or_phone = [("member_card", "member_card"), ("phone", "phone_token")]
    order_key = F.concat_ws("|", "source", "order_id")
    customers = (
        spark.table("silver.customers") if spark.catalog.tableExists("silver.customers") else None
    )
    if customers is None:  # One-ID writes it with its records; a lake from before it did not
        customers = records.select("one_id").where("one_id is not null")
    elif only is not None:
        customers = customers.join(only, "one_id", "left_semi")
    items = table(INPUTS["items"])
    if rows is not None:  # the changed lines' customers, by their order's buyer
        items = by_record(items, "order_buyer", order_key)
    return features.Inputs(
        customers=customers,
        orders=by_record(table("orders"), "order_buyer", order_key),
        items=items,
        events=by_record(table("events"), "event", F.col("event_id").cast("string")),
        relationships=by_id(
            table("wecom_relationships"),
            [("wecom_external_userid", "external_userid"), ("wechat_unionid", "unionid")],
        ),
        messages=by_id(table("wecom_messages"), [("wecom_external_userid", "external_userid")]),
        followers=by_id(
            table("oa_followers"), [("wechat_openid", "openid"), ("wechat_unionid", "unionid")]
        ),
        tiers=by_id(table("tier_history"), card_or_phone),
        points=by_id(table("points_ledger"), card_or_phone),
        coupons=by_id(table("coupons"), card_or_phone),
    )


@dataclass
class Partials:
    """Each customer's own figures as of one date (Arrow tables): what a delta computes for the
    day's customers only. The price band is null until `finish`."""

    features: object
    values: object  # RFM's raw values: customer_id, recency_days, frequency, monetary
    summary: object  # LTV's buy-till-you-die summary, a row per customer


@dataclass
class Scores:
    """Everything scored as of one date: Arrow tables (a row per customer) and the LTV fit."""

    as_of: date
    features: object
    rfm: object
    ltv: object
    fit: ltv.Fit


def partials(spark: SparkSession, as_of: date, only=None) -> Partials:
    """Features, RFM values and the LTV summary as of `as_of`, of every customer or (`only`, a
    DataFrame of one_ids) of those."""
    with _orders_view(spark, only):
        with step(f"RFM values as of {as_of}"):
            values = spark.sql(rfm.values_sql(ORDERS_VIEW, as_of, SPARK)).toArrow()
        with step(f"features as of {as_of}"):
            feature_table = features.customer_features(
                read_inputs(spark, only=only), as_of
            ).toArrow()
        with step(f"LTV summary as of {as_of}"):
            summary = spark.sql(ltv.summary_sql(ORDERS_VIEW, as_of, SPARK)).toArrow()
    return Partials(feature_table, values, summary)


def finish(p: Partials, as_of: date, fitted: ltv.Fit | None = None) -> Scores:
    """What compares customers with one another, over all of them (DuckDB and the models):
    RFM's scores, segments and classes, the price bands, the LTV fit (or `fitted`'s
    parameters) and predictions."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.register("customer_values", p.values)
        ranked = con.sql(rfm.scores_sql("customer_values") + " order by customer_id")
        scored = ranked.to_arrow_table()
        scored = scored.rename_columns(["one_id", *scored.column_names[1:]])
        rfm_table = scored.append_column("as_of", pa.array([as_of] * scored.num_rows, pa.date32()))
        con.register("customer_features", p.features)
        banded = con.sql(features.price_bands_sql("customer_features") + " order by one_id")
        feature_table = banded.to_arrow_table().cast(p.features.schema)
    finally:
        con.close()
    with step(f"LTV as of {as_of} ({'fitted' if fitted is None else 'last fit'})"):
        summary = p.summary.to_pandas().sort_values("customer_id", ignore_index=True)
        frame, fit = ltv.predict(summary, as_of, fitted=fitted)
        frame = frame.rename(columns={"customer_id": "one_id"})
        frame.insert(1, "as_of", as_of)
        ltv_table = pa.Table.from_pandas(frame, schema=_ltv_schema(), preserve_index=False)
    return Scores(as_of, feature_table, rfm_table, ltv_table, fit)


def compute(spark: SparkSession, as_of: date, fitted: ltv.Fit | None = None) -> Scores:
    """Features, RFM and LTV of every customer as of `as_of`: a full run's scores."""
    return finish(partials(spark, as_of), as_of, fitted)


def tag_days(spark: SparkSession, scored: Scores):
    """The day's stage and tags per customer (jobs/marts/tags.py) from its scores."""
    inputs = tags.tag_inputs(
        spark.createDataFrame(scored.features),
        spark.createDataFrame(scored.rfm),
        spark.createDataFrame(scored.ltv),
        scored.as_of,
    )
    return tags.memberships(inputs, tags.load_rules(), scored.as_of).toArrow()


@contextmanager
def _orders_view(spark: SparkSession, only=None) -> Iterator[None]:
    """The `scored_orders` view (of the customers of `only` when given) while scoring."""
    records = "silver.identity_records"
    if only is not None:
        spark.table(records).join(only, "one_id", "left_semi").createOrReplaceTempView(RECORDS_VIEW)
        records = RECORDS_VIEW
    spark.sql(rfm.paid_orders_sql(records)).createOrReplaceTempView(ORDERS_VIEW)
    try:
        yield
    finally:
        spark.catalog.dropTempView(ORDERS_VIEW)
        spark.catalog.dropTempView(RECORDS_VIEW)


def _day_delta(
    spark: SparkSession,
    logical_date: date,
    as_of: date,
    last: delta.LastRun,
    identity_run_ids: list[str],
    settings: Settings,
) -> tuple[Partials, int]:
    """The partials of every customer as of `as_of` from the customers the days since `last`
    changed (scored again) and the last run's rows of the others. Returns (partials, how
    many customers were scored again)."""
    import duckdb

    first = delta.since(last, logical_date)
    recomputed = delta.recomputed_days(first, logical_date, settings)
    with step("the customers the day changed"):
        changed = read_inputs(
            spark,
            rows=lambda df, name: delta.changed_rows(df, name, first, last, as_of, recomputed),
        )
        redo = delta.affected(spark, changed, settings, identity_run_ids).toArrow()
    only = spark.createDataFrame(redo, "one_id string").localCheckpoint()
    new = partials(spark, as_of, only)
    customers = spark.table("silver.customers").select("one_id").toArrow()
    old = {n: lake.read_arrow(lake.table_path("silver", n, settings)) for n in delta.OUTPUTS}
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        for name, table in (("redo", redo), ("customers", customers), *old.items()):
            con.register(name, table)
        for name, table in (
            ("new_features", new.features),
            ("new_values", new.values),
            ("new_summary", new.summary),
        ):
            con.register(name, table)
        kept = (  # the last run's rows of customers still there and not scored again
            " where one_id in (select one_id from customers)"
            " and one_id not in (select one_id from redo)"
        )
        days = (as_of - last.as_of).days
        shift = delta.ltv_shift(last.as_of, as_of)
        features_out = con.sql(
            f"select * replace (date '{as_of}' as as_of) from customer_features "
            + kept
            + " union all by name select * from new_features"
        ).to_arrow_table()
        values_out = con.sql(
            "select one_id as customer_id, cast(recency_days + "
            f"{days} as integer) as recency_days, frequency, monetary from customer_rfm "
            + kept
            + " union all by name select * from new_values"
        ).to_arrow_table()
        summary_out = con.sql(
            "select one_id as customer_id, frequency, recency, T + "
            f"{shift} as T, monetary_value, first_order_date, last_order_date from customer_ltv "
            + kept
            + " union all by name select * from new_summary"
        ).to_arrow_table()
    finally:
        con.close()
    return (
        Partials(
            features_out.cast(new.features.schema),
            values_out.cast(new.values.schema),
            summary_out.select(new.summary.column_names).cast(new.summary.schema),
        ),
        redo.num_rows,
    )


def _last_fit(settings: Settings, as_of: date) -> ltv.Fit | None:
    """The latest LTV fit, when the delta may score with it: made less than `refit_days`
    before `as_of`, with parameters."""
    rules = ltv.load_rules()
    if rules.refit_days == 0:
        return None
    fits = lake.read_rows(lake.table_path("ops", "ltv_fits", settings))
    fits = [r for r in fits if r.get("bgnbd")]
    if not fits:
        return None
    last = max(fits, key=lambda r: r["finished_at"])
    if (as_of - last["as_of"]).days >= rules.refit_days or not json.loads(last["bgnbd"]):
        return None
    return ltv.Fit(
        customers=last["customers"],
        repeat_customers=last["repeat_customers"],
        bgnbd=json.loads(last["bgnbd"]),
        gamma_gamma=json.loads(last["gamma_gamma"] or "{}"),
        skipped=last["skipped"],
    )


def score_customers(
    logical_date: date,
    as_of: date,
    settings: Settings | None = None,
    *,
    mode: str = "auto",
    refit: bool | None = None,
) -> dict:
    """Features, RFM and LTV as of `as_of` (the marts' date) replace the current tables; the
    stages and tags of `logical_date` replace that date's partition of
    silver.customer_tag_days (a backfill rebuilds its own date, scored as of it).

    `mode`: `auto` (the day's delta when the last run allows, jobs/marts/delta.py; else every
    customer), `full` or `incremental`. `refit`: fit the LTV models again (default: in a full
    run, and in a delta when the last fit is `refit_days` old); else score with the last fit."""
    import pyarrow as pa

    from jobs.common.spark import get_spark

    settings = settings or get_settings()
    started_at = datetime.now(UTC)
    started = time.monotonic()
    spark = get_spark("cdp-scores", settings)
    read = ["identity_records", "identity_map", "customers", *INPUTS.values()]
    lake.register_tables(spark, settings, only=[f"silver.{name}" for name in read])
    if not spark.catalog.tableExists("silver.identity_records"):
        return {"skipped": "silver.identity_records does not exist yet: run One-ID first"}
    last = delta.last_run(settings)
    new_identity = delta.identity_runs(settings, last.identity_through if last else None)
    chosen, why = delta.choose_mode(mode, last, as_of, new_identity, settings)
    fitted = None
    if refit is False or (refit is None and chosen == "incremental"):
        fitted = _last_fit(settings, as_of)
    with small_data(spark, lake.small_silver(settings)):
        if chosen == "incremental":
            run_ids = [r["run_id"] for r in new_identity]
            part, rescored = _day_delta(spark, logical_date, as_of, last, run_ids, settings)
        else:
            part = partials(spark, as_of)
            rescored = part.features.num_rows
        now = finish(part, as_of, fitted)
        for name, table in (
            ("customer_rfm", now.rfm),
            ("customer_features", now.features),
            ("customer_ltv", now.ltv),
        ):
            lake.overwrite_arrow(table, lake.table_path("silver", name, settings))
        day = now if logical_date == as_of else compute(spark, logical_date, fitted)
        with step(f"stages and tags of {logical_date}"):
            held = tag_days(spark, day)
            lake.replace_day_arrow(
                held,
                lake.table_path("silver", "customer_tag_days", settings),
                f"as_of = '{logical_date.isoformat()}'",
                partition=True,
                day_column="as_of",
            )
    fit = now.fit
    seconds = round(time.monotonic() - started, 1)
    if fitted is None:  # a fit was made (or refused): the run's parameters or why not
        run = {
            "logical_date": logical_date,
            "as_of": as_of,
            "finished_at": datetime.now(UTC),
            "customers": fit.customers,
            "repeat_customers": fit.repeat_customers,
            "bgnbd": json.dumps(fit.bgnbd),
            "gamma_gamma": json.dumps(fit.gamma_gamma),
            "skipped": fit.skipped,
            "seconds": seconds,
        }
        lake.append_arrow(pa.Table.from_pylist([run]), lake.table_path("ops", "ltv_fits", settings))
    finished = [r["finished_at"] for r in new_identity]
    delta.record_run(
        settings,
        {
            "logical_date": logical_date,
            "as_of": as_of,
            "mode": chosen,
            "why": why,
            "fingerprint": delta.fingerprint(),
            "started_at": started_at,
            "finished_at": datetime.now(UTC),
            "identity_through": max(finished) if finished else (last and last.identity_through),
            "seconds": seconds,
            "customers": now.features.num_rows,
            "rescored": rescored,
        },
    )
    return {
        "as_of": str(as_of),
        "mode": chosen,
        "why": why,
        "rescored_customers": rescored,
        "rfm_customers": now.rfm.num_rows,
        "feature_customers": now.features.num_rows,
        "ltv_customers": fit.customers,
        "ltv_skipped": fit.skipped,
        "ltv_fitted": fitted is None,
        "tag_rows": held.num_rows,
        "seconds": seconds,
    }
