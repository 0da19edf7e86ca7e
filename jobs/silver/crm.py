"""The CRM's loyalty exports in silver: coupon lifecycles, the points ledger with its running
balance, and tier history with each tier's validity.

Why this shape:
- A coupon's events arrive on different days (issued Monday, redeemed Thursday, expired a week
  later), one row per status change. Merging a lifecycle row per day would overwrite Monday's
  `issued_at` with Thursday's nulls, so the events are kept as they come (`coupon_events`, one
  row per coupon and status) and `coupons` is derived from them: each day rebuilds the lifecycle
  of the coupons that day's file touched, from all of their events (merge, not a full replace:
  a day costs the coupons it touched).
- A running balance needs the member's whole ledger: the day's rows are merged, then `refresh`
  (keyed on `member_card`) recomputes the balance over every ledger row of the members the day
  touched, so a late entry (an earlier movement arriving days later) corrects the balances after
  it. Members who joined before the first export carry a balance the ledger never shows: the
  opening balance is what the first reported balance implies (`balance - points` up to it), and
  `balance_mismatch` says where the CRM's own balance disagrees with that arithmetic (a missing
  or late movement, a manual correction outside the ledger).
- Tier validity (valid_from/valid_to) likewise needs the member's whole tier history: the same
  refresh by `member_card`.

Phones (the CRM's `mobile`) become a token, a masked form and a vault value (jobs/silver/vault.py);
member cards and coupon codes stay in clear. Labels the CRM writes in Chinese become codes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.clean.dates import business_date
from jobs.common.clean.money import to_money
from jobs.common.clean.phones import mask_phone, normalize_phone, partial_phone
from jobs.silver.common import blank_to_null, lateness_days, latest_landed
from jobs.silver.table import Batch, SilverTable
from jobs.silver.vault import pii_columns

CURRENCY = "CNY"  # the CRM's face values and thresholds are yuan

# Channel labels the brand's systems write -> one code (the CRM's coupon and points exports, and
# the sign-up channels of crm.members). A code given as such is kept; anything else is "other".
CHANNEL_CODES: dict[str, str] = {
    "门店": "store",
    "线下门店": "store",
    "天猫": "tmall",
    "天猫会员通": "tmall",
    "淘宝": "tmall",
    "微信小程序": "miniprogram",
    "小程序": "miniprogram",
    "企业微信": "wecom",
    "公众号": "oa",
    "微信公众号": "oa",
    "官网": "web",
    "京东": "jd",
    "抖音": "douyin",
    "有赞": "youzan",
    "系统": "system",
}
CHANNELS: tuple[str, ...] = (*sorted(set(CHANNEL_CODES.values())), "crm", "other")

COUPON_STATUSES: tuple[str, ...] = ("issued", "redeemed", "expired", "voided")
# A coupon's lifecycle order: at equal times the later stage wins (issued, then used or ended).
COUPON_STAGE = {s: i for i, s in enumerate(COUPON_STATUSES)}

CHANGE_TYPES: tuple[str, ...] = ("earn", "redeem", "expire", "adjust")
TIER_CHANGE_TYPES: tuple[str, ...] = ("join", "upgrade", "downgrade")


# --- shared rules (members.py and consents.py use them too) -------------------------------------


def channel_code(col: Column) -> Column:
    """A channel label (门店, 天猫, 微信小程序, 企业微信, 系统) -> its code; null stays null."""
    label = F.trim(col)
    mapped = F.create_map(*[F.lit(x) for kv in CHANNEL_CODES.items() for x in kv])[label]
    code = F.lower(label)
    return (
        F.when(blank_to_null(col).isNull(), F.lit(None).cast("string"))
        .when(mapped.isNotNull(), mapped)
        .when(code.isin(*CHANNELS), code)
        .otherwise(F.lit("other"))
    )


def with_pii(
    kind: str, normalized: Column, mask: Callable[[Column], Column], key: bytes, name: str = ""
) -> Callable[[DataFrame], DataFrame]:
    """A transform adding `<name>_token`, `<name>_masked` and the vault-bound value of one
    contact detail (jobs/silver/vault.py). The value is normalized once, in its own column,
    before the token and mask read it: inlined, the cleaning expression would be repeated in
    each of them (Spark does not collapse a projection that duplicates an expensive one)."""
    name = name or kind
    tmp = f"_{name}_normalized"

    def add(df: DataFrame) -> DataFrame:
        value = F.col(tmp)
        out = pii_columns(kind, value, mask(value), key, name=name)
        return df.withColumn(tmp, normalized).select("*", *out).drop(tmp)

    return add


def pii_outputs(kind: str, name: str = "") -> list[str]:
    """The columns `with_pii` adds."""
    name = name or kind
    return [f"{name}_token", f"{name}_masked", f"_pii_{kind}__{name}"]


def with_phone(raw: Column, key: bytes, name: str = "phone") -> Callable[[DataFrame], DataFrame]:
    """`with_pii` for a full phone (clean.phones, E.164), plus `phone_partial` ("138****1234")
    when the cell holds a masked mobile instead: a weak identifier, never a token."""
    pii = with_pii("phone", normalize_phone(raw), mask_phone, key, name)
    return lambda df: pii(df).withColumn(_partial(name), partial_phone(raw))


def phone_outputs(name: str = "phone") -> list[str]:
    """The columns `with_phone` adds."""
    return [*pii_outputs("phone", name), _partial(name)]


def _partial(name: str) -> str:
    return "phone_partial" if name == "phone" else f"{name}_partial"


def lineage() -> list[Column]:
    return [F.col("_file").alias("source_file"), F.col("_line").alias("source_line")]


# --- coupons ------------------------------------------------------------------------------------


def coupon_events(bronze: DataFrame, key: bytes, logical_date: date, tz: str) -> DataFrame:
    """Bronze coupon events -> one row per (coupon_code, status): the status change as the CRM
    reported it (ISSUED/REDEEMED/EXPIRED/VOIDED -> issued/redeemed/expired/voided), its time,
    channel code, money as decimals with the currency, the phone tokenized. A re-export of the
    same event keeps its latest copy."""
    status = F.lower(F.trim(F.col("status")))
    rows = latest_landed(bronze.withColumn("status", status), ["coupon_code", "status"])
    return rows.transform(with_phone(F.col("mobile"), key)).select(
        F.col("coupon_code"),
        F.col("status"),
        blank_to_null(F.col("template_id")).alias("template_id"),
        blank_to_null(F.col("template_name")).alias("template_name"),
        blank_to_null(F.col("member_card")).alias("member_card"),
        *phone_outputs(),
        channel_code(F.col("channel")).alias("channel"),
        to_money(F.col("face_value")).alias("face_value"),
        to_money(F.col("threshold")).alias("threshold"),
        F.lit(CURRENCY).alias("currency"),
        F.col("event_time").cast("timestamp").alias("event_at"),
        business_date(F.col("event_time").cast("timestamp"), tz).alias("event_date"),
        lateness_days(business_date(F.col("event_time").cast("timestamp"), tz), logical_date).alias(
            "lateness_days"
        ),
        *lineage(),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )


def coupon_lifecycle(events: DataFrame) -> DataFrame:
    """Coupon events (all of a coupon's, from any day) -> one row per coupon: its status (the
    latest event; at equal times the later stage), when it was issued, redeemed, expired or
    voided, the channel that issued it and the one it was redeemed in. `missing_issue`: the
    coupon was used or ended but its issue was never seen (issued before the first export)."""
    stage = F.create_map(*[F.lit(x) for kv in COUPON_STAGE.items() for x in kv])[F.col("status")]
    order = F.struct(F.col("event_at"), F.coalesce(stage, F.lit(-1)), F.col("updated_at"))
    attrs = F.struct(
        "status",
        "template_id",
        "template_name",
        "member_card",
        "phone_token",
        "phone_masked",
        "face_value",
        "threshold",
        "currency",
        "_batch_id",
    )

    def at(status: str) -> Column:
        return F.min(F.when(F.col("status") == status, F.col("event_at"))).alias(f"{status}_at")

    grouped = events.groupBy("coupon_code").agg(
        F.max_by(attrs, order).alias("_latest"),
        *(at(s) for s in COUPON_STATUSES),
        F.first(F.when(F.col("status") == "issued", F.col("channel")), ignorenulls=True).alias(
            "channel"
        ),
        F.first(F.when(F.col("status") == "redeemed", F.col("channel")), ignorenulls=True).alias(
            "redeem_channel"
        ),
        F.max("event_at").alias("last_event_at"),
        F.count(F.lit(1)).alias("events"),
        F.max("updated_at").alias("updated_at"),
    )
    latest_row = F.col("_latest")
    return grouped.select(
        "coupon_code",
        latest_row["status"].alias("status"),
        latest_row["template_id"].alias("template_id"),
        latest_row["template_name"].alias("template_name"),
        latest_row["member_card"].alias("member_card"),
        latest_row["phone_token"].alias("phone_token"),
        latest_row["phone_masked"].alias("phone_masked"),
        "channel",
        "redeem_channel",
        latest_row["face_value"].alias("face_value"),
        latest_row["threshold"].alias("threshold"),
        latest_row["currency"].alias("currency"),
        *(f"{s}_at" for s in COUPON_STATUSES),
        F.col("issued_at").isNull().alias("missing_issue"),
        "last_event_at",
        "events",
        latest_row["_batch_id"].alias("_batch_id"),
        "updated_at",
    )


def coupons_touched(events: DataFrame, today: DataFrame) -> DataFrame:
    """The lifecycles of the coupons `today` (the day's bronze coupon rows) touched, from all of
    their events."""
    codes = today.select("coupon_code").distinct()
    return coupon_lifecycle(events.join(codes, on="coupon_code", how="left_semi"))


# --- points -------------------------------------------------------------------------------------

_BALANCE_COLUMNS = ("opening_balance", "running_balance", "balance_mismatch")


def points_movements(bronze: DataFrame, key: bytes, logical_date: date, tz: str) -> DataFrame:
    """Bronze points movements -> one row per ledger_id: change type (获得/使用/过期/调整 as
    earn/redeem/expire/adjust), signed points (redeem and expire negative, earn positive,
    adjust as given; `sign_corrected` when the source's sign said otherwise), the CRM's balance
    after the movement (`balance_reported`), channel code, the order it refers to; then the
    running balance over the rows at hand (`running_balance`)."""
    change_type = F.lower(F.trim(F.col("change_type")))
    raw = F.col("points").cast("long")
    points = (
        F.when(change_type.isin("redeem", "expire"), -F.abs(raw))
        .when(change_type == "earn", F.abs(raw))
        .otherwise(raw)
    )
    occurred = F.col("occurred").cast("timestamp")
    rows = latest_landed(bronze, ["ledger_id"]).transform(with_phone(F.col("mobile"), key))
    rows = rows.select(
        F.col("ledger_id"),
        blank_to_null(F.col("member_card")).alias("member_card"),
        *phone_outputs(),
        change_type.alias("change_type"),
        points.alias("points"),
        (points != raw).alias("sign_corrected"),
        F.col("balance").cast("long").alias("balance_reported"),
        occurred.alias("occurred_at"),
        business_date(occurred, tz).alias("occurred_date"),
        lateness_days(business_date(occurred, tz), logical_date).alias("lateness_days"),
        channel_code(F.col("channel")).alias("channel"),
        blank_to_null(F.col("ref_order_id")).alias("ref_order_id"),
        *lineage(),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )
    return rows.transform(running_balance)


def running_balance(ledger: DataFrame) -> DataFrame:
    """Each member's balance after every movement, over the rows given (the `refresh` passes a
    member's whole ledger): movements in (occurred_at, ledger_id) order, starting from the
    opening balance the first reported balance implies (reported - points summed up to that
    row; 0 when the CRM reports none). `balance_mismatch`: the CRM's balance differs from the
    running one (null when it reports none). Other columns pass through; rerunning gives the
    same result."""
    ledger = ledger.drop(*(c for c in _BALANCE_COLUMNS if c in ledger.columns))
    ordered = Window.partitionBy("member_card").orderBy(
        F.col("occurred_at").asc_nulls_first(), F.col("ledger_id")
    )
    whole = ordered.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    cumulative = F.sum(F.coalesce(F.col("points"), F.lit(0))).over(ordered)
    implied = F.col("balance_reported") - F.col("_cumulative")
    return (
        ledger.withColumn("_cumulative", cumulative)
        .withColumn(
            "opening_balance",
            F.coalesce(F.first(implied, ignorenulls=True).over(whole), F.lit(0)).cast("long"),
        )
        .withColumn(
            "running_balance", (F.col("opening_balance") + F.col("_cumulative")).cast("long")
        )
        .withColumn(
            "balance_mismatch",
            F.when(
                F.col("balance_reported").isNotNull(),
                F.col("balance_reported") != F.col("running_balance"),
            ),
        )
        .drop("_cumulative")
    )


# --- tiers --------------------------------------------------------------------------------------

_VALIDITY_COLUMNS = ("valid_from", "valid_to", "is_current", "history_gap")


def tier_changes(bronze: DataFrame, key: bytes, logical_date: date, tz: str) -> DataFrame:
    """Bronze tier changes -> one row per change_id: the tier before and after (the brand's tier
    names, as the CRM writes them; none before a join), change type (入会/升级/降级 as
    join/upgrade/downgrade), reason, time and lifetime points; then each tier's validity over
    the rows at hand (`tier_validity`)."""
    changed = F.col("changed_at").cast("timestamp")
    rows = latest_landed(bronze, ["change_id"]).transform(with_phone(F.col("mobile"), key))
    rows = rows.select(
        F.col("change_id"),
        blank_to_null(F.col("member_card")).alias("member_card"),
        *phone_outputs(),
        blank_to_null(F.trim(F.col("old_tier"))).alias("old_tier"),
        blank_to_null(F.trim(F.col("new_tier"))).alias("new_tier"),
        F.lower(F.trim(F.col("change_type"))).alias("change_type"),
        blank_to_null(F.col("reason")).alias("reason"),
        changed.alias("changed_at"),
        business_date(changed, tz).alias("changed_date"),
        lateness_days(business_date(changed, tz), logical_date).alias("lateness_days"),
        F.col("lifetime_points").cast("long").alias("lifetime_points"),
        *lineage(),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )
    return rows.transform(tier_validity)


def tier_validity(history: DataFrame) -> DataFrame:
    """Each change's new tier is valid from its time until the member's next change (valid_to
    null and `is_current` for the latest). `history_gap`: the tier this change starts from is
    not the one the member's previous change left them in (a change is missing). Over the rows
    given (the `refresh` passes a member's whole history); other columns pass through."""
    history = history.drop(*(c for c in _VALIDITY_COLUMNS if c in history.columns))
    ordered = Window.partitionBy("member_card").orderBy(
        F.col("changed_at").asc_nulls_first(), F.col("change_id")
    )
    previous_tier = F.lag("new_tier").over(ordered)
    return (
        history.withColumn("valid_from", F.col("changed_at"))
        .withColumn("valid_to", F.lead("changed_at").over(ordered))
        .withColumn("is_current", F.col("valid_to").isNull())
        .withColumn(
            "history_gap",
            previous_tier.isNotNull() & ~F.col("old_tier").eqNullSafe(previous_tier),
        )
    )


# --- the tables ---------------------------------------------------------------------------------


def _build_coupon_events(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("crm_coupons")
    if bronze is None:
        return None
    return coupon_events(bronze, batch.hmac_key, batch.logical_date, batch.timezone)


def _build_coupons(batch: Batch) -> DataFrame | None:
    bronze, events = batch.bronze.get("crm_coupons"), batch.silver("coupon_events")
    if bronze is None or events is None:
        return None
    return coupons_touched(events, bronze)


def _build_points(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("crm_points")
    if bronze is None:
        return None
    return points_movements(bronze, batch.hmac_key, batch.logical_date, batch.timezone)


def _build_tiers(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("crm_tier_changes")
    if bronze is None:
        return None
    return tier_changes(bronze, batch.hmac_key, batch.logical_date, batch.timezone)


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="coupon_events",
        build=_build_coupon_events,
        keys=("coupon_code", "status"),
        inputs=("crm_coupons",),
    ),
    SilverTable(
        name="coupons",
        build=_build_coupons,
        keys=("coupon_code",),
        inputs=("crm_coupons",),
        depends_on=("coupon_events",),
    ),
    SilverTable(
        name="points_ledger",
        build=_build_points,
        keys=("ledger_id",),
        inputs=("crm_points",),
        refresh=running_balance,
        refresh_by="member_card",
    ),
    SilverTable(
        name="tier_history",
        build=_build_tiers,
        keys=("change_id",),
        inputs=("crm_tier_changes",),
        refresh=tier_validity,
        refresh_by="member_card",
    ),
)
