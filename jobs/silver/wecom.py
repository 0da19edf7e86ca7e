"""Bronze WeCom (企业微信) -> silver: contact events, customer-guide relationships, chat metadata.

Private-domain marketing hangs on the relationship between a customer (external_userid, per
corp) and a guide (the corp member's userid): the live code's `state` says which channel brought
the customer, the guide's corp tags say what the guide knows, and a deletion on either side ends
the relationship (and, for the consent ledger, withdraws WeCom messaging).

- `silver.wecom_contact_events`: one row per change_external_contact callback, with what the
  connector's externalcontact/get enrichment said about *this* guide's follow_user entry (tags,
  the live code's state, add_way, the remark mobile the guide typed: tokenized).
- `silver.wecom_relationships`: the state of each (corp, guide, customer), replayed from all its
  events: active, deleted by the guide, deleted by the customer, or moved by a transfer.
- `silver.wecom_messages`: chat-archive metadata (who, to whom or which room, type, time, recalled).
  The text stays in bronze: silver keeps has_text and text_length.

A recall (action=recall, revoke.pre_msgid) can arrive on a later day than the message it takes
back (a recall near midnight, a late archive pull), so `revoked` is computed over the group of a
message and its recalls: `origin_msgid` is the message's own id, or for a recall the id it takes
back. The same function flags today's rows in `build` and is the table's `refresh`, keyed by
`refresh_by="origin_msgid"`: the build re-reads every stored row of the groups the day touched and
merges the re-flagged rows back, so a recall on day D+1 flips the day-D message to revoked.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.clean.dates import business_date, from_unix_millis, from_unix_seconds
from jobs.common.clean.phones import mask_phone, normalize_phone
from jobs.silver.common import blank_to_null, extra_map, lateness_days, latest_landed
from jobs.silver.table import Batch, SilverTable
from jobs.silver.vault import pii_columns

CONTACT_EVENT = "change_external_contact"
ADDS = ("add_external_contact", "add_half_external_contact")
EDITS = ("edit_external_contact",)
GUIDE_DELETE = "del_external_contact"  # the guide deleted the customer (or a transfer did)
CUSTOMER_DELETE = "del_follow_user"  # the customer deleted the guide
DELETES = (GUIDE_DELETE, CUSTOMER_DELETE)
BY_TRANSFER = "DELETE_BY_TRANSFER"  # Source of a del_external_contact made by 在职继承
# The changes that say something about a relationship's state. transfer_fail names the takeover
# guide, who never got the customer; msg_audit_approved is consent to archiving, not a change.
RELATIONSHIP_CHANGES = ADDS + EDITS + DELETES
# Same-second order: an add comes before an edit, which comes before a delete.
CHANGE_ORDER = {
    "add_external_contact": 0,
    "add_half_external_contact": 0,
    "edit_external_contact": 1,
    "msg_audit_approved": 1,
    "transfer_fail": 2,
    "del_external_contact": 3,
    "del_follow_user": 3,
}
RELATIONSHIP_STATUSES = ("active", "deleted_by_guide", "deleted_by_customer", "transferred")

# Unmapped leaves of the callback's enrichment land flattened in bronze `_extra` (a JSON object
# of dotted paths): _enriched.follow_user.<i>.{userid, state, createtime, add_way,
# remark_mobiles.<j>, tags.<k>.{group_name, tag_name, type, tag_id}}.
FOLLOW = "_enriched.follow_user."
FOLLOW_USERID = r"^_enriched\.follow_user\.(\d+)\.userid$"
FOLLOW_TAG = r"^_enriched\.follow_user\.(\d+)\.tags\.(\d+)\.tag_id$"
TOLIST = r"^tolist\.(\d+)$"  # the chat archive's receivers after the first (mapped) one

TAG_TYPE = "array<struct<group_name:string,tag_name:string,type:int,tag_id:string>>"

CONTACT_EVENT_KEYS = ("corp_id", "external_userid", "guide_user_id", "change_type", "event_ts")
CONTACT_EVENT_COLUMNS = [
    "corp_id",
    "guide_user_id",
    "external_userid",
    "change_type",
    "event_ts",
    "event_date",
    "state",
    "add_way",
    "delete_source",
    "fail_reason",
    "unionid",
    "phone_token",
    "phone_masked",
    "guide_tags",
    "follow_created_at",
    "lateness_days",
    "_batch_id",
    "updated_at",
]
RELATIONSHIP_KEYS = ("corp_id", "guide_user_id", "external_userid")
RELATIONSHIP_COLUMNS = [
    "corp_id",
    "guide_user_id",
    "external_userid",
    "status",
    "added_at",
    "first_added_at",
    "follow_created_at",
    "first_state",
    "state",
    "add_way",
    "deleted_at",
    "deleted_by",
    "last_event_at",
    "unionid",
    "phone_token",
    "phone_masked",
    "guide_tags",
    "events",
    "updated_at",
]
MESSAGE_ACTIONS = ("send", "recall", "switch")
SENDER_TYPES = ("guide", "external", "bot")
CHAT_TYPES = ("single", "group")
MESSAGE_COLUMNS = [
    "msgid",
    "action",
    "sender",
    "sender_type",
    "receivers",
    "roomid",
    "chat_type",
    "guide_user_id",
    "external_userid",
    "msgtype",
    "msg_ts",
    "msg_date",
    "revoked_msgid",
    "origin_msgid",
    "revoked",
    "has_text",
    "text_length",
    "image_size",
    "lateness_days",
    "_batch_id",
    "updated_at",
]
# 会话内容存档: `from`/`tolist` hold a corp member's userid inside the corp and an
# external_userid outside it ("wo"/"wm" + ~30 chars); robots also appear as external ids, "wb...".
EXTERNAL_ID = r"^w[om][0-9A-Za-z_-]{16,}$"
BOT_ID = r"^wb[0-9A-Za-z_-]{16,}$"


# --- shared -----------------------------------------------------------------------------------


# --- contact events ---------------------------------------------------------------------------


def with_follow_user(df: DataFrame) -> DataFrame:
    """What the enrichment said about the callback's own guide.

    externalcontact/get lists every guide following the customer (`follow_user[]`); the entry of
    the callback's guide is the one whose userid is the callback's UserID. The spec maps
    follow_user.0's add_way and remark_mobiles.0 to columns; for another index they are read
    from `_extra`. Adds `_follow` (the entry's path prefix, null when the enrichment has no
    entry for this guide or there is no enrichment) and `_x` (the `_extra` map)."""
    m = F.col("_x")
    keys = F.map_keys(m)
    userid_keys = F.filter(keys, lambda k: k.rlike(FOLLOW_USERID))
    mine = F.filter(userid_keys, lambda k: m[k] == F.col("guide_user_id"))
    enriched = F.exists(keys, lambda k: k.startswith(FOLLOW))
    index = F.when(F.size(mine) > 0, F.regexp_extract(F.get(mine, 0), FOLLOW_USERID, 1))
    # An entry without its userid (none listed at all) can only be the callback's guide's.
    index = index.when(enriched & (F.size(userid_keys) == 0), F.lit("0"))
    return df.withColumn("_x", extra_map()).withColumn(
        "_follow", F.concat(F.lit(FOLLOW), index, F.lit("."))
    )


def follow_field(name: str) -> Column:
    """A leaf of the guide's follow_user entry from `_extra` (see with_follow_user)."""
    return F.col("_x")[F.concat(F.col("_follow"), F.lit(name))]


def guide_tags() -> Column:
    """The guide's corp tags (企业标签) on the customer, in the API's order, as
    array<struct<group_name, tag_name, type, tag_id>>: empty when the enrichment lists none, null
    without an enrichment for this guide (deletes carry none)."""
    m = F.col("_x")
    index = F.regexp_extract(F.col("_follow"), r"follow_user\.(\d+)\.$", 1)
    tag_keys = F.filter(
        F.map_keys(m), lambda k: k.rlike(FOLLOW_TAG) & (F.regexp_extract(k, FOLLOW_TAG, 1) == index)
    )
    order = F.array_sort(
        F.transform(tag_keys, lambda k: F.regexp_extract(k, FOLLOW_TAG, 2).cast("int"))
    )

    def leaf(i: Column, name: str) -> Column:
        return m[F.concat(F.col("_follow"), F.lit("tags."), i.cast("string"), F.lit("." + name))]

    tags = F.transform(
        order,
        lambda i: F.struct(
            leaf(i, "group_name").alias("group_name"),
            leaf(i, "tag_name").alias("tag_name"),
            leaf(i, "type").cast("int").alias("type"),
            leaf(i, "tag_id").alias("tag_id"),
        ),
    )
    return F.when(F.col("_follow").isNotNull(), tags).cast(TAG_TYPE)


def contact_events_to_silver(
    bronze: DataFrame, logical_date: date, hmac_key: bytes, tz: str = "Asia/Shanghai"
) -> DataFrame:
    """Bronze change_external_contact callbacks -> silver.wecom_contact_events.

    One row per (corp, customer, guide, change, second): WeCom retries a callback it got no
    answer to, so repeats collapse to the latest landing. `state` is the callback's State (set on
    adds through a live code) or, on an edit, the state the enrichment reports for the guide:
    both name the live code's channel; empty -> null. The remark mobile the guide typed becomes a
    phone token (vault-bound normalized value alongside)."""
    first = F.col("_follow") == F.lit(FOLLOW + "0.")
    no_extra = F.col("_x").isNull()
    events = (
        bronze.where(F.lower(F.trim("event")) == CONTACT_EVENT)
        .withColumn("event_ts", from_unix_seconds(F.col("create_time_unix").cast("long")))
        .withColumn("change_type", F.lower(F.trim("change_type")))
        .where(
            F.col("corp_id").isNotNull()
            & F.col("external_userid").isNotNull()
            & F.col("guide_user_id").isNotNull()
            & F.col("change_type").isNotNull()
            & F.col("event_ts").isNotNull()
        )
        .transform(lambda df: latest_landed(df, CONTACT_EVENT_KEYS))
        .transform(with_follow_user)
    )
    add_way = F.when(first | no_extra, F.col("add_way").cast("int")).otherwise(
        follow_field("add_way").cast("int")
    )
    remark_mobile = F.when(first | no_extra, F.col("remark_mobile")).otherwise(
        follow_field("remark_mobiles.0")
    )
    phone = normalize_phone(remark_mobile.cast("string"))
    event_date = business_date(F.col("event_ts"), tz)
    return events.select(
        "corp_id",
        "guide_user_id",
        "external_userid",
        "change_type",
        "event_ts",
        event_date.alias("event_date"),
        F.coalesce(blank_to_null(F.col("state")), blank_to_null(follow_field("state"))).alias(
            "state"
        ),
        add_way.alias("add_way"),
        blank_to_null(F.col("delete_source")).alias("delete_source"),
        blank_to_null(F.col("fail_reason")).alias("fail_reason"),
        blank_to_null(F.col("unionid")).alias("unionid"),
        *pii_columns("phone", phone, mask_phone(phone), hmac_key),
        guide_tags().alias("guide_tags"),
        from_unix_seconds(follow_field("createtime").cast("long")).alias("follow_created_at"),
        lateness_days(event_date, logical_date).alias("lateness_days"),
        "_batch_id",
        F.col("_ingested_at").alias("updated_at"),
    )


# --- relationships ----------------------------------------------------------------------------


def _order_key() -> Column:
    """History order: time, then add < edit < delete within the same second."""
    rank = F.create_map(*[F.lit(x) for kv in CHANGE_ORDER.items() for x in kv])
    return F.struct(F.col("event_ts"), F.coalesce(rank[F.col("change_type")], F.lit(1)))


def relationships(events: DataFrame) -> DataFrame:
    """silver.wecom_contact_events (all of it) -> one row per (corp, guide, customer).

    The history is replayed in time order. The latest add opens the current period (`added_at`;
    a re-add after a deletion opens a new one); the first deletion after it closes it and says
    who ended it: the customer (del_follow_user: `deleted_by_customer`), the guide
    (del_external_contact: `deleted_by_guide`), or a transfer to another guide
    (del_external_contact with Source DELETE_BY_TRANSFER: `transferred`). A later deletion of the
    same period (the guide cleaning up a customer who already left) does not change who ended
    it. Edits change tags, never the status: a guide can still edit a customer who deleted them.
    A history that starts mid-relationship (an edit, no add) is `active` with a null `added_at`.
    first_state / state: the channel of the earliest / latest event that names one."""
    e = events.where(F.col("change_type").isin(*RELATIONSHIP_CHANGES)).withColumn(
        "_o", _order_key()
    )
    is_add = F.col("change_type").isin(*ADDS)
    last_add = Window.partitionBy(*RELATIONSHIP_KEYS)
    e = e.withColumn("_last_add", F.max(F.when(is_add, F.col("_o"))).over(last_add))
    closing = F.col("change_type").isin(*DELETES) & (
        F.col("_last_add").isNull() | (F.col("_o") > F.col("_last_add"))
    )
    ender = (
        F.when(F.col("change_type") == CUSTOMER_DELETE, F.lit("customer"))
        .when(F.col("delete_source") == BY_TRANSFER, F.lit("transfer"))
        .otherwise(F.lit("guide"))
    )
    e = e.withColumn("_closing", F.when(closing, F.struct(F.col("_o"), ender.alias("by"))))

    def latest(col: str) -> Column:
        return F.max_by(F.col(col), F.when(F.col(col).isNotNull(), F.col("_o")))

    first_close = F.min("_closing")
    deleted_by = first_close["by"]
    status = (
        F.when(deleted_by.isNull(), F.lit("active"))
        .when(deleted_by == "customer", F.lit("deleted_by_customer"))
        .when(deleted_by == "transfer", F.lit("transferred"))
        .otherwise(F.lit("deleted_by_guide"))
    )
    return (
        e.groupBy(*RELATIONSHIP_KEYS)
        .agg(
            status.alias("status"),
            F.max(F.when(is_add, F.col("event_ts"))).alias("added_at"),
            F.min(F.when(is_add, F.col("event_ts"))).alias("first_added_at"),
            latest("follow_created_at").alias("follow_created_at"),
            F.min_by(F.col("state"), F.when(F.col("state").isNotNull(), F.col("_o"))).alias(
                "first_state"
            ),
            latest("state").alias("state"),
            latest("add_way").alias("add_way"),
            first_close["_o"]["event_ts"].alias("deleted_at"),
            deleted_by.alias("deleted_by"),
            F.max("event_ts").alias("last_event_at"),
            latest("unionid").alias("unionid"),
            latest("phone_token").alias("phone_token"),
            latest("phone_masked").alias("phone_masked"),
            latest("guide_tags").alias("guide_tags"),
            F.count(F.lit(1)).alias("events"),
            F.max("updated_at").alias("updated_at"),
        )
        .select(*RELATIONSHIP_COLUMNS)
    )


# --- chat archive -----------------------------------------------------------------------------


def id_type(col: Column) -> Column:
    """guide (a corp member's userid), external (a customer's external_userid) or bot."""
    return (
        F.when(col.isNull(), F.lit(None).cast("string"))
        .when(col.rlike(BOT_ID), F.lit("bot"))
        .when(col.rlike(EXTERNAL_ID), F.lit("external"))
        .otherwise(F.lit("guide"))
    )


def receivers() -> Column:
    """The whole tolist: the mapped first receiver, then tolist.1, tolist.2, ... from `_extra`."""
    m = extra_map()
    order = F.array_sort(
        F.transform(
            F.filter(F.map_keys(m), lambda k: k.rlike(TOLIST)),
            lambda k: F.regexp_extract(k, TOLIST, 1).cast("int"),
        )
    )
    others = F.transform(order, lambda i: m[F.concat(F.lit("tolist."), i.cast("string"))])
    return F.when(
        F.col("receiver").isNotNull(),
        F.concat(F.array(F.col("receiver")), F.coalesce(others, F.array().cast("array<string>"))),
    )


def flag_revoked(messages: DataFrame) -> DataFrame:
    """`revoked`: a sent message that a recall in the frame takes back (its group, by
    `origin_msgid`, holds a recall). Recalls and switches are never revoked themselves. Used on
    the day's rows and as the table's refresh over every stored row of the touched groups."""
    group = Window.partitionBy("origin_msgid")
    recalled = F.max((F.col("action") == "recall").cast("int")).over(group) == 1
    return messages.withColumn(
        "revoked", F.coalesce((F.col("action") == "send") & recalled, F.lit(False))
    )


def messages_to_silver(
    bronze: DataFrame, logical_date: date, tz: str = "Asia/Shanghai"
) -> DataFrame:
    """Bronze chat-archive messages -> silver.wecom_messages (metadata only, no content).

    An archive pull that overlaps the previous one brings a message again: one row per msgid,
    the latest landing. `switch` records (a member switching corps in the app) carry only their
    time and user: sender = the user, no receivers, no chat type. Times are the archive's UTC
    milliseconds. For a 1:1 chat, guide_user_id / external_userid name the guide and the customer
    whichever way the message went; in a group only the sender is placed."""
    msgs = latest_landed(bronze.where(F.col("msgid").isNotNull()), ["msgid"])
    action = F.lower(F.trim("action"))
    msgtype = F.lower(F.trim("msgtype"))
    sender = F.coalesce(F.col("sender"), F.col("switch_user"))
    room = blank_to_null(F.col("roomid"))
    conversational = action.isin("send", "recall")
    msg_ts = from_unix_millis(F.coalesce(F.col("msgtime_ms"), F.col("switch_time_ms")))
    text = F.when(msgtype == "text", F.coalesce(F.col("text_content"), F.lit("")))
    out = msgs.select(
        F.col("msgid"),
        action.alias("action"),
        sender.alias("sender"),
        id_type(sender).alias("sender_type"),
        receivers().alias("receivers"),
        room.alias("roomid"),
        F.when(conversational, F.when(room.isNotNull(), "group").otherwise("single")).alias(
            "chat_type"
        ),
        msgtype.alias("msgtype"),
        msg_ts.alias("msg_ts"),
        business_date(msg_ts, tz).alias("msg_date"),
        blank_to_null(F.col("revoked_msgid")).alias("revoked_msgid"),
        F.col("image_filesize").cast("long").alias("image_size"),
        (F.length(F.trim(text)) > 0).alias("has_text"),
        F.length(text).alias("text_length"),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )
    single = F.col("chat_type") == "single"

    def party(kind: str) -> Column:
        in_list = F.filter(F.col("receivers"), lambda r: id_type(r) == kind)
        return F.when(F.col("sender_type") == kind, F.col("sender")).when(single, F.get(in_list, 0))

    return (
        out.withColumn("has_text", F.coalesce(F.col("has_text"), F.lit(False)))
        .withColumn("guide_user_id", F.when(F.col("action") != "switch", party("guide")))
        .withColumn("external_userid", party("external"))
        .withColumn("origin_msgid", F.coalesce(F.col("revoked_msgid"), F.col("msgid")))
        .withColumn("lateness_days", lateness_days(F.col("msg_date"), logical_date))
        .transform(flag_revoked)
        .select(*MESSAGE_COLUMNS)
    )


# --- the tables -------------------------------------------------------------------------------


def build_contact_events(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("wecom_contact_events")
    if bronze is None:
        return None
    return contact_events_to_silver(bronze, batch.logical_date, batch.hmac_key, batch.timezone)


def build_relationships(batch: Batch) -> DataFrame | None:
    events = batch.silver("wecom_contact_events")
    return None if events is None else relationships(events)


def build_messages(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("wecom_messages")
    if bronze is None:
        return None
    return messages_to_silver(bronze, batch.logical_date, batch.timezone)


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="wecom_contact_events",
        build=build_contact_events,
        keys=CONTACT_EVENT_KEYS,
        inputs=("wecom_contact_events",),
    ),
    SilverTable(
        name="wecom_relationships",
        build=build_relationships,
        keys=RELATIONSHIP_KEYS,
        depends_on=("wecom_contact_events",),
        mode="replace",
    ),
    SilverTable(
        name="wecom_messages",
        build=build_messages,
        keys=("msgid",),
        inputs=("wecom_messages",),
        partition_by="msg_date",
        refresh=flag_revoked,
        refresh_by="origin_msgid",
    ),
)
