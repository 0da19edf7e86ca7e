"""Bronze web, app and mini-program events -> `silver.events` (one model for the three SDKs) and
`silver.device_identities` (which device or anonymous id was seen with which person id).

Why the rules are what they are:

- Time. `ts` is the client's clock (ISO 8601 with its offset, a string in bronze); `received_at`
  the collector's. The client's clock says when the event happened (an offline queue sends it
  later), so it is the event time, parsed with its offset. But phones have wrong clocks: an event
  cannot reach the collector before it happened, so a client time more than
  `CLOCK_AHEAD_TOLERANCE_S` ahead of `received_at` is a wrong clock, and one more than
  `MAX_QUEUE_AGE_S` behind it is one too (a clock reset to 1970 after a flat battery, sooner
  than a week-old offline queue). Those rows keep `received_at` as their event time and carry
  the `clock_skew` flag; `client_received_lag_s` keeps what the client said (received_at minus
  the client's time). A missing or unparseable `ts` falls back to `received_at` as well;
  `ts_source` says which clock the event time is.
- Re-sent events (an SDK retries when the collector's answer was lost) share their event_id:
  the earliest received copy is the event.
- Flags, never deletions: a value an SDK cannot have meant (negative dwell, a quantity of 0)
  becomes null and the row says why in `flags`.
- PII: the phone of a phone bind or a kiosk sign-up is tokenized (`phone_token`, masked form,
  the normalized number to the vault); platform ids (member card, openid, unionid) and device
  ids stay in clear. URLs and search terms are free text an SDK copies from the page: a mobile
  number or an email in them is replaced by `[redacted]` (flag `pii_redacted`).
- `identifies` marks the moments that tie a device to a person (login, phone bind, sign-up);
  `silver.device_identities` is the identity graph's input built from them and from the ids
  every event carries.
"""

from __future__ import annotations

from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.clean.dates import business_date, parse_client_ts
from jobs.common.clean.phones import mask_phone, normalize_phone
from jobs.silver.common import blank_to_null
from jobs.silver.table import Batch, SilverTable
from jobs.silver.vault import pii_columns

# SDK -> its bronze table (the specs jobs/ingest/sources/<sdk>__events.yaml).
EVENT_SOURCES: dict[str, str] = {
    "web": "web_events",
    "app": "app_events",
    "miniprogram": "miniprogram_events",
}
# The event types the schemas (schemas/<sdk>/event/1-1-1.json) accept.
EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "product_view",
    "click",
    "search",
    "add_to_cart",
    "favorite",
    "share",
    "coupon_claim",
    "login",
    "phone_bind",
    "sign_up",
)
# The moments that tie a device or anonymous id to a person.
IDENTIFYING_EVENTS: tuple[str, ...] = ("login", "phone_bind", "sign_up")
TS_SOURCES: tuple[str, ...] = ("client", "received_at")
FLAGS: tuple[str, ...] = (
    "ts_missing",  # no client time: the event time is received_at
    "ts_unparseable",  # a client time that is no ISO 8601 instant with an offset
    "clock_skew",  # the client clock is off beyond belief: the event time is received_at
    "dwell_negative",  # dwell_ms < 0: nulled
    "dwell_too_long",  # dwell_ms over a day: nulled
    "quantity_invalid",  # quantity outside 1..999: nulled
    "phone_unusable",  # a phone was sent but is no usable number: no token
    "pii_redacted",  # a phone or email in page_url, referrer or search_term was redacted
)

CLOCK_AHEAD_TOLERANCE_S = 300  # a client clock may run this far ahead of the collector's
MAX_QUEUE_AGE_S = 7 * 86_400  # an SDK's offline queue holds events at most this long
MAX_DWELL_MS = 86_400_000  # a day: a longer page view is a tab left open, not a dwell
MAX_QUANTITY = 999

# Bronze field -> Spark type, the union of the three specs' fields (absent ones become null).
BRONZE_FIELDS: dict[str, str] = {
    "event_id": "string",
    "event_type": "string",
    "ts": "string",
    "received_at": "timestamp",
    "anonymous_id": "string",
    "device_id": "string",
    "user_id": "string",
    "session_id": "string",
    "page_url": "string",
    "referrer": "string",
    "utm_source": "string",
    "utm_medium": "string",
    "utm_campaign": "string",
    "product_id": "string",
    "dwell_ms": "long",
    "quantity": "int",
    "search_query": "string",
    "coupon_id": "string",
    "phone": "string",
    "phone_country_code": "string",
    "appid": "string",
    "openid": "string",
    "unionid": "string",
    "scene": "int",
    "os": "string",
    "app_version": "string",
    "_extra": "string",
    "_batch_id": "string",
    "_ingested_at": "timestamp",
    "_file": "string",
    "_line": "long",
}

EVENT_COLUMNS: list[str] = [
    "source",
    "event_id",
    "event_type",
    "event_ts",
    "ts_source",
    "received_at",
    "client_received_lag_s",
    "event_date",
    "lateness_days",
    "session_id",
    "anonymous_id",
    "device_id",
    "user_id",
    "appid",
    "openid",
    "unionid",
    "scene",
    "page_url",
    "page_path",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "product_id",
    "dwell_ms",
    "quantity",
    "search_term",
    "coupon_id",
    "element",
    "share_channel",
    "method",
    "os",
    "app_version",
    "identifies",
    "phone_token",
    "phone_masked",
    "phone_country_code",
    "flags",
    "_batch_id",
    "updated_at",
]
# Unmapped properties (in bronze `_extra`) silver keeps as columns.
EXTRA_PROPERTIES: tuple[str, ...] = ("element", "share_channel", "method")
PII_COLUMNS: list[str] = ["_pii_phone__phone"]  # the vault-bound phone, stripped by the build

# A mainland mobile (not inside a longer number) or an email (also URL-encoded: %40).
_PHONE_IN_TEXT = r"(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9]{9}(?![0-9])"
_EMAIL_IN_TEXT = r"[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
REDACTED = "[redacted]"
# Scheme and authority of a URL (`https://host`, `app://example-beauty`, `mp://pages`).
_URL_PATH = r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)?([^?#]*)"
# NFKC's width folding as text typed in a Chinese IME reaches a search box: full-width ASCII
# (U+FF01..U+FF5E) and the ideographic and no-break spaces become their ASCII forms.
_FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000\u00a0"
_HALF_WIDTH = "".join(chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)) + "  "


# --- small Column rules -------------------------------------------------------------------


def url_path(url: Column) -> Column:
    """The path of a URL without host, query or fragment ("/" for a bare host); null in, null
    out. Regex, not parse_url: a URL with a space or raw Chinese still has a path."""
    path = F.regexp_extract(url, _URL_PATH, 1)
    return F.when(url.isNotNull(), F.when(path != "", path).otherwise(F.lit("/")))


def url_param(url: Column, name: str) -> Column:
    """A query parameter of a URL, percent-decoded (`+` is a space), trimmed; null when absent,
    empty or badly encoded."""
    raw = F.regexp_extract(url, rf"(?i)[?&]{name}=([^&#]*)", 1)
    return blank_to_null(F.try_url_decode(F.when(raw != "", raw)))


def fold_width(col: Column) -> Column:
    """Full-width ASCII and the ideographic and no-break spaces to their ASCII forms (NFKC's
    width rule, the part a search box sees)."""
    return F.translate(col, _FULL_WIDTH, _HALF_WIDTH)


def has_pii(text: Column) -> Column:
    """Does free text (a URL, a search term) quote a mobile number or an email?"""
    return text.rlike(_PHONE_IN_TEXT) | text.rlike(_EMAIL_IN_TEXT)


def redact_pii(text: Column) -> Column:
    """Free text with every mobile number and email replaced by `[redacted]`."""
    return F.regexp_replace(
        F.regexp_replace(text, _EMAIL_IN_TEXT, REDACTED), _PHONE_IN_TEXT, REDACTED
    )


def search_term(query: Column) -> Column:
    """A search box's text as a term: width-folded (NFKC), trimmed, inner spaces collapsed,
    lower-cased; null when empty."""
    folded = F.regexp_replace(F.trim(fold_width(query)), r"\s+", " ")
    return F.when(folded != "", F.lower(folded))


def _add_flags(df: DataFrame, flags: dict[str, Column]) -> DataFrame:
    """Append the names of the flags whose condition holds to `flags` (array<string>)."""
    found = F.array_compact(F.array(*(F.when(c, F.lit(n)) for n, c in flags.items())))
    return df.withColumn("flags", F.concat(F.col("flags"), found))


# --- transforms ---------------------------------------------------------------------------


def standard_fields(bronze: DataFrame, source: str) -> DataFrame:
    """One SDK's bronze rows with every field of BRONZE_FIELDS (null where the SDK has none),
    typed, strings trimmed and "" as null, `source` set and `flags` empty."""
    present = set(bronze.columns)
    cols = [F.lit(source).alias("source")]
    for name, kind in BRONZE_FIELDS.items():
        value = F.col(name).try_cast(kind) if name in present else F.lit(None).cast(kind)
        if kind == "string":
            value = blank_to_null(value)
        cols.append(value.alias(name))
    cols.append(F.array().cast("array<string>").alias("flags"))
    return bronze.select(*cols)


def earliest_received(df: DataFrame) -> DataFrame:
    """One row per (source, event_id): the copy received first (an SDK re-sends an event whose
    answer it did not get); ties by ingestion, file and line, so a rerun picks the same."""
    w = Window.partitionBy("source", "event_id").orderBy(
        F.col("received_at").asc_nulls_last(),
        F.col("_ingested_at").asc_nulls_last(),
        F.col("_file").asc_nulls_last(),
        F.col("_line").asc_nulls_last(),
    )
    return df.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def with_event_time(df: DataFrame, logical_date: date, tz: str = "Asia/Shanghai") -> DataFrame:
    """event_ts (the client's instant, parsed with its offset, unless missing, unparseable or
    skewed: then received_at), ts_source, client_received_lag_s (received_at - the client's
    time, s), event_date (business date in `tz`), lateness_days (logical date - event_date)."""
    client, received = F.col("_client_ts"), F.col("received_at")
    lag = (F.unix_micros(received) - F.unix_micros(client)) / F.lit(1_000_000)
    skewed = (lag < -CLOCK_AHEAD_TOLERANCE_S) | (lag > MAX_QUEUE_AGE_S)
    trusted = client.isNotNull() & ~F.coalesce(skewed, F.lit(False))
    df = _add_flags(
        df.withColumn("_client_ts", parse_client_ts(F.col("ts"))),
        {
            "ts_missing": F.col("ts").isNull(),
            "ts_unparseable": F.col("ts").isNotNull() & client.isNull(),
            "clock_skew": skewed,
        },
    )
    return (
        df.withColumn("client_received_lag_s", F.round(lag, 3))
        .withColumn("event_ts", F.when(trusted, client).otherwise(received))
        .withColumn(
            "ts_source",
            F.when(trusted, F.lit("client")).when(received.isNotNull(), F.lit("received_at")),
        )
        .withColumn("event_date", business_date(F.col("event_ts"), tz))
        .withColumn("lateness_days", F.datediff(F.lit(logical_date), F.col("event_date")))
        .drop("_client_ts")
    )


def with_page_fields(df: DataFrame) -> DataFrame:
    """page_path; utm_source/medium/campaign from the SDK's campaign context, else from the
    page URL's utm_* parameters; a phone or email in page_url or referrer redacted."""
    url = F.col("page_url")
    for name in ("utm_source", "utm_medium", "utm_campaign"):
        df = df.withColumn(name, F.coalesce(F.col(name), url_param(url, name)))
    df = df.withColumn("page_path", url_path(url))
    df = _add_flags(
        df,
        {"pii_redacted": has_pii(F.col("page_url")) | has_pii(F.col("referrer"))},
    )
    for name in ("page_url", "referrer", "page_path"):
        df = df.withColumn(name, redact_pii(F.col(name)))
    return df


def with_properties(df: DataFrame) -> DataFrame:
    """dwell_ms and quantity an SDK cannot have meant nulled (and flagged); search_term from the
    query, without a phone or email someone typed into the box."""
    dwell, quantity = F.col("dwell_ms"), F.col("quantity")
    term = search_term(F.col("search_query"))
    bad_quantity = (quantity < 1) | (quantity > MAX_QUANTITY)
    df = _add_flags(
        df,
        {
            "dwell_negative": dwell < 0,
            "dwell_too_long": dwell > MAX_DWELL_MS,
            "quantity_invalid": bad_quantity,
            "pii_redacted": has_pii(term),
        },
    )
    return (
        df.withColumn("dwell_ms", F.when((dwell >= 0) & (dwell <= MAX_DWELL_MS), dwell))
        .withColumn("quantity", F.when(~bad_quantity, quantity))
        .withColumn("search_term", redact_pii(term))
    )


def with_extra_properties(df: DataFrame) -> DataFrame:
    """The properties the specs leave unmapped (bronze `_extra`, a JSON object keyed by JSON
    path) that say what happened: the clicked `element`, a share's `share_channel`, and the
    `method` of a login (password, sms, wechat), phone bind or sign-up (store_tablet, ...)."""
    extra = F.from_json(F.col("_extra"), "map<string,string>")
    for name in EXTRA_PROPERTIES:
        df = df.withColumn(name, blank_to_null(extra[f"properties.{name}"]))
    return df.drop("_extra")


def event_phone(phone: Column, country_code: Column) -> Column:
    """The phone as sent with its country code when the SDK gives one apart (getPhoneNumber's
    purePhoneNumber + countryCode: "+<code><number>"), ready for normalize_phone."""
    code = F.regexp_replace(country_code, r"[^0-9]", "")
    bare = ~phone.startswith("+") & ~phone.startswith("00")
    return F.when(
        code.isNotNull() & (code != "") & bare, F.concat(F.lit("+"), code, phone)
    ).otherwise(phone)


def with_identity(df: DataFrame, hmac_key: bytes) -> DataFrame:
    """identifies (login, phone bind, sign-up) and the phone as token, masked form and the
    vault-bound normalized number; the raw phone is dropped."""
    normalized = normalize_phone(event_phone(F.col("phone"), F.col("phone_country_code")))
    df = df.withColumn("_phone", normalized)
    df = _add_flags(df, {"phone_unusable": F.col("phone").isNotNull() & F.col("_phone").isNull()})
    phone = F.col("_phone")
    return df.select(
        "*",
        F.coalesce(F.col("event_type").isin(*IDENTIFYING_EVENTS), F.lit(False)).alias("identifies"),
        *pii_columns("phone", phone, mask_phone(phone), hmac_key),
    ).drop("phone", "_phone")


def conform_events(
    bronze: DataFrame,
    source: str,
    *,
    logical_date: date,
    hmac_key: bytes,
    tz: str = "Asia/Shanghai",
) -> DataFrame:
    """One SDK's bronze events of a day -> silver events (EVENT_COLUMNS + the vault column)."""
    return (
        standard_fields(bronze, source)
        .transform(earliest_received)
        .transform(lambda df: with_event_time(df, logical_date, tz))
        .transform(with_page_fields)
        .transform(with_properties)
        .transform(with_extra_properties)
        .transform(lambda df: with_identity(df, hmac_key))
        .withColumn("flags", F.array_sort(F.array_distinct(F.col("flags"))))
        .withColumnRenamed("_ingested_at", "updated_at")
        .select(*EVENT_COLUMNS, *PII_COLUMNS)
    )


def build_events(batch: Batch) -> DataFrame | None:
    """The day's events of every SDK whose bronze table exists, as one frame."""
    parts = [
        conform_events(
            bronze,
            source,
            logical_date=batch.logical_date,
            hmac_key=batch.hmac_key,
            tz=batch.timezone,
        )
        for source, table in EVENT_SOURCES.items()
        if (bronze := batch.bronze.get(table)) is not None
    ]
    if not parts:
        return None
    return reduce(DataFrame.unionByName, parts)


# --- silver.device_identities -------------------------------------------------------------

ANCHOR_TYPES: tuple[str, ...] = ("device_id", "anonymous_id", "wechat_openid")
IDENTIFIER_TYPES: tuple[str, ...] = (
    "member_card",
    "phone_token",
    "wechat_openid",
    "wechat_unionid",
)
DEVICE_IDENTITY_KEYS: tuple[str, ...] = (
    "source",
    "anchor_type",
    "anchor_id",
    "identifier_type",
    "identifier",
)
DEVICE_IDENTITY_COLUMNS: list[str] = [
    *DEVICE_IDENTITY_KEYS,
    "first_seen",
    "last_seen",
    "event_count",
    "identifying_events",
    "via",
]


def _openid(events: DataFrame) -> Column:
    """A mini-program openid scoped by its app ("<appid>:<openid>"): an openid is per app."""
    return F.when(
        F.col("openid").isNotNull(),
        F.concat_ws(":", F.coalesce(F.col("appid"), F.lit("")), F.col("openid")),
    )


def device_identities(events: DataFrame) -> DataFrame:
    """Which device, anonymous id or mini-program openid was seen with which person id (member
    card, phone token, openid, unionid): one row per pair and SDK with first and last seen,
    how many events carried it, how many of them were identifying ones and their types (`via`,
    empty when the pair only rode along, as on a remembered login). One-ID's stitching input;
    a shared device (a family or store tablet) shows as one anchor with many people."""
    anchors = {
        "device_id": F.col("device_id"),
        "anonymous_id": F.col("anonymous_id"),
        "wechat_openid": _openid(events),
    }
    identifiers = {
        "member_card": F.col("user_id"),
        "phone_token": F.col("phone_token"),
        "wechat_openid": _openid(events),
        "wechat_unionid": F.col("unionid"),
    }
    pairs = F.array(
        *(
            F.struct(
                F.lit(a).alias("anchor_type"),
                anchor.alias("anchor_id"),
                F.lit(i).alias("identifier_type"),
                ident.alias("identifier"),
            )
            for a, anchor in anchors.items()
            for i, ident in identifiers.items()
            if a != i
        )
    )
    edges = (
        events.select(
            "source",
            "event_ts",
            "event_type",
            "identifies",
            F.explode(pairs).alias("p"),
        )
        .select("source", "event_ts", "event_type", "identifies", "p.*")
        .where(F.col("anchor_id").isNotNull() & F.col("identifier").isNotNull())
    )
    return edges.groupBy(*DEVICE_IDENTITY_KEYS).agg(
        F.min("event_ts").alias("first_seen"),
        F.max("event_ts").alias("last_seen"),
        F.count(F.lit(1)).alias("event_count"),
        F.sum(F.col("identifies").cast("long")).alias("identifying_events"),
        F.array_sort(F.collect_set(F.when(F.col("identifies"), F.col("event_type")))).alias("via"),
    )


def build_device_identities(batch: Batch) -> DataFrame | None:
    events = batch.silver("events")
    return None if events is None else device_identities(events)


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="events",
        build=build_events,
        keys=("source", "event_id"),
        inputs=tuple(EVENT_SOURCES.values()),
        mode="merge",
        partition_by="event_date",
        # A copy re-sent on a later day never replaces the one first received (a rerun of the
        # same day still rewrites it, with the same values).
        update_when="s.received_at <= t.received_at",
    ),
    SilverTable(
        name="device_identities",
        build=build_device_identities,
        keys=DEVICE_IDENTITY_KEYS,
        depends_on=("events",),
        mode="replace",
    ),
)
