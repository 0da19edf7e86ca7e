"""Bronze Official Account (公众号) event pushes -> silver: events, followers, template-message
results, menu clicks.

Following the account is what grants its messages (the consent ledger reads `oa_events`), the
parametric QR code that brought a follower (`qrscene_<scene>`) is the channel, and the unionid
(present only because the account is bound to the brand's open platform) links the openid to the
brand's other WeChat identities.

WeChat retries a push it got no answer to within 5 s, up to three times, with the same content;
its docs advise deduplicating event pushes on FromUserName + CreateTime. A push has no id, so
silver keys an event by (account_id, openid, event, event_ts): the spec's record identity
(FromUserName, Event, CreateTime) within the account. Two different pushes of one event type to
one follower within the same second would collapse; template reports, the only plausible case,
keep their own table keyed by the template message id.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.clean.dates import business_date, from_unix_seconds
from jobs.silver.common import blank_to_null, extra_map, lateness_days, latest_landed
from jobs.silver.table import Batch, SilverTable

EVENT_KEYS = ("account_id", "openid", "event", "event_ts")
EVENTS = ("subscribe", "unsubscribe", "scan", "click", "view", "templatesendjobfinish")
EVENT_COLUMNS = [
    "account_id",
    "openid",
    "unionid",
    "msg_type",
    "event",
    "event_key",
    "scene",
    "subscribe_scene",
    "event_ts",
    "event_date",
    "lateness_days",
    "_batch_id",
    "updated_at",
]
FOLLOWER_KEYS = ("account_id", "openid")
FOLLOWER_COLUMNS = [
    "account_id",
    "openid",
    "following",
    "followed_at",
    "first_followed_at",
    "unfollowed_at",
    "scene",
    "subscribe_scene",
    "unionid",
    "follows",
    "unfollows",
    "last_event_at",
    "updated_at",
]
TEMPLATE_KEYS = ("account_id", "template_msg_id")
# TEMPLATESENDJOBFINISH's Status, spaces and case folded -> ours.
TEMPLATE_STATUS = {
    "success": "success",
    "failed:userblock": "failed_user_block",
    "failed:systemfailed": "failed_system",
}
TEMPLATE_STATUSES = ("success", "failed_user_block", "failed_system", "failed_other", "unknown")
TEMPLATE_COLUMNS = [
    "account_id",
    "template_msg_id",
    "openid",
    "status",
    "status_raw",
    "sent_at",
    "lateness_days",
    "_batch_id",
    "updated_at",
]
MENU_KEYS = ("account_id", "openid", "event", "clicked_at")
MENU_COLUMNS = [
    "account_id",
    "openid",
    "event",
    "menu_key",
    "clicked_at",
    "click_date",
    "lateness_days",
    "_batch_id",
    "updated_at",
]
QR_PREFIX = "qrscene_"
# Events only a follower can cause (a menu, a rescan while following, a template message): a
# history that starts mid-follow still says the openid follows.
FOLLOWER_ACTIVITY = ("scan", "click", "view", "templatesendjobfinish")


def scene() -> Column:
    """The parametric QR code's scene: a follow through one has EventKey `qrscene_<scene>` (else
    an empty EventKey; user/info's qr_scene_str, from our receiver's enrichment, then says it);
    a rescan by a follower (SCAN) carries the bare scene."""
    key = blank_to_null(F.col("event_key"))
    qr = F.when(key.startswith(QR_PREFIX), F.substring(key, len(QR_PREFIX) + 1, 2000))
    enriched = blank_to_null(extra_map()["_enriched.user_info.qr_scene_str"])
    return (
        F.when(F.col("event") == "subscribe", F.coalesce(blank_to_null(qr), enriched))
        .when(F.col("event") == "scan", key)
        .otherwise(F.lit(None).cast("string"))
    )


def conform(bronze: DataFrame, logical_date: date, tz: str = "Asia/Shanghai") -> DataFrame:
    """The day's pushes, deduplicated, typed, with every column the OA tables take (the event
    columns plus template_msg_id and template_status)."""
    events = (
        bronze.withColumn("event", F.lower(F.trim("event")))
        .withColumn("event_ts", from_unix_seconds(F.col("create_time_unix").cast("long")))
        .where(
            F.col("account_id").isNotNull()
            & F.col("openid").isNotNull()
            & F.col("event").isNotNull()
            & F.col("event_ts").isNotNull()
        )
        .transform(lambda df: latest_landed(df, EVENT_KEYS))
    )
    event_date = business_date(F.col("event_ts"), tz)
    return events.select(
        "account_id",
        "openid",
        blank_to_null(F.col("unionid")).alias("unionid"),
        F.lower(F.trim("msg_type")).alias("msg_type"),
        "event",
        blank_to_null(F.col("event_key")).alias("event_key"),
        scene().alias("scene"),
        blank_to_null(F.col("subscribe_scene")).alias("subscribe_scene"),
        "event_ts",
        event_date.alias("event_date"),
        lateness_days(event_date, logical_date).alias("lateness_days"),
        blank_to_null(F.col("template_msg_id")).alias("template_msg_id"),
        F.col("template_status"),
        "_batch_id",
        F.col("_ingested_at").alias("updated_at"),
    )


def oa_events(conformed: DataFrame) -> DataFrame:
    """silver.oa_events: every push (event lower-cased, scene parsed)."""
    return conformed.select(*EVENT_COLUMNS)


def template_status(raw: Column) -> Column:
    """WeChat's Status ("success", "failed:user block", "failed: system failed") -> success |
    failed_user_block | failed_system; another failure -> failed_other; absent -> unknown."""
    folded = F.regexp_replace(F.lower(raw), r"\s+", "")
    mapping = F.create_map(*[F.lit(x) for kv in TEMPLATE_STATUS.items() for x in kv])
    return F.coalesce(
        mapping[folded],
        F.when(folded.startswith("failed"), F.lit("failed_other")),
        F.lit("unknown"),
    )


def template_results(conformed: DataFrame) -> DataFrame:
    """silver.oa_template_results: one row per template message (MsgID) with its delivery
    report. `sent_at` is the report's time (TEMPLATESENDJOBFINISH is pushed once the send job
    finished; the send itself carries no other time)."""
    reports = conformed.where(
        (F.col("event") == "templatesendjobfinish") & F.col("template_msg_id").isNotNull()
    )
    w = Window.partitionBy(*TEMPLATE_KEYS).orderBy(F.col("updated_at").desc(), F.col("event_ts"))
    return (
        reports.withColumn("_rank", F.row_number().over(w))
        .where("_rank = 1")
        .select(
            "account_id",
            "template_msg_id",
            "openid",
            template_status(F.col("template_status")).alias("status"),
            F.col("template_status").alias("status_raw"),
            F.col("event_ts").alias("sent_at"),
            "lateness_days",
            "_batch_id",
            "updated_at",
        )
    )


def menu_clicks(conformed: DataFrame) -> DataFrame:
    """silver.oa_menu_clicks: CLICK (menu_key = the menu's key) and VIEW (menu_key = the URL)."""
    return conformed.where(F.col("event").isin("click", "view")).select(
        "account_id",
        "openid",
        "event",
        F.col("event_key").alias("menu_key"),
        F.col("event_ts").alias("clicked_at"),
        F.col("event_date").alias("click_date"),
        "lateness_days",
        "_batch_id",
        "updated_at",
    )


def followers(events: DataFrame) -> DataFrame:
    """silver.oa_events (all of it) -> one row per (account, openid): the follower's state.

    `following`: the latest of the follower's events is not an unsubscribe (a subscribe, or an
    event only a follower causes: a menu click, a rescan, a template message; an unsubscribe
    sorts last within its second). `followed_at` / `first_followed_at`: the latest / first
    subscribe; `scene` and `subscribe_scene`: those of the latest subscribe; `unfollowed_at`:
    the unsubscribe that ended the follow, null while following. A history that starts
    mid-follow (a click, no subscribe) follows with a null `followed_at`."""
    is_sub = F.col("event") == "subscribe"
    is_unsub = F.col("event") == "unsubscribe"
    state_event = is_sub | is_unsub | F.col("event").isin(*FOLLOWER_ACTIVITY)
    order = F.struct(F.col("event_ts"), is_unsub.cast("int"))
    last_state = F.max_by(F.col("event"), F.when(state_event, order))
    following = F.coalesce(last_state != "unsubscribe", F.lit(False))
    last_sub = F.when(is_sub, order)
    return (
        events.groupBy(*FOLLOWER_KEYS)
        .agg(
            following.alias("following"),
            F.max(F.when(is_sub, F.col("event_ts"))).alias("followed_at"),
            F.min(F.when(is_sub, F.col("event_ts"))).alias("first_followed_at"),
            F.max(F.when(is_unsub, F.col("event_ts"))).alias("_last_unsub"),
            F.max_by(F.col("scene"), last_sub).alias("scene"),
            F.max_by(F.col("subscribe_scene"), last_sub).alias("subscribe_scene"),
            F.max_by(F.col("unionid"), F.when(F.col("unionid").isNotNull(), order)).alias(
                "unionid"
            ),
            F.sum(is_sub.cast("int")).alias("follows"),
            F.sum(is_unsub.cast("int")).alias("unfollows"),
            F.max("event_ts").alias("last_event_at"),
            F.max("updated_at").alias("updated_at"),
        )
        .withColumn("unfollowed_at", F.when(~F.col("following"), F.col("_last_unsub")))
        .select(*FOLLOWER_COLUMNS)
    )


# --- the tables -------------------------------------------------------------------------------


def _conformed(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("oa_events")
    return None if bronze is None else conform(bronze, batch.logical_date, batch.timezone)


def build_events(batch: Batch) -> DataFrame | None:
    conformed = _conformed(batch)
    return None if conformed is None else oa_events(conformed)


def build_followers(batch: Batch) -> DataFrame | None:
    events = batch.silver("oa_events")
    return None if events is None else followers(events)


def build_template_results(batch: Batch) -> DataFrame | None:
    conformed = _conformed(batch)
    return None if conformed is None else template_results(conformed)


def build_menu_clicks(batch: Batch) -> DataFrame | None:
    conformed = _conformed(batch)
    return None if conformed is None else menu_clicks(conformed)


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="oa_events",
        build=build_events,
        keys=EVENT_KEYS,
        inputs=("oa_events",),
    ),
    SilverTable(
        name="oa_followers",
        build=build_followers,
        keys=FOLLOWER_KEYS,
        depends_on=("oa_events",),
        mode="replace",
    ),
    SilverTable(
        name="oa_template_results",
        build=build_template_results,
        keys=TEMPLATE_KEYS,
        inputs=("oa_events",),
    ),
    SilverTable(
        name="oa_menu_clicks",
        build=build_menu_clicks,
        keys=MENU_KEYS,
        inputs=("oa_events",),
    ),
)
