"""Consent in silver: one ledger of every grant and withdrawal, and the current state per person
and purpose that exports and triggers read.

Why this shape:
- Consent comes from many places: the member system's consent log (crm.consents: the SMS opt-in
  on the sign-up form, the mini-program's personalisation agreement, member-centre opt-outs),
  an imported member list's marketing_consent, SMS 退订 replies, Official Account follows and
  unfollows, a WeCom customer adding or deleting the guide. `silver.consents` holds each as a
  row: who (subject_type, subject_id), purpose, granted or withdrawn, channel, source, time,
  the notice version in force and a reference back to the source record.
- Until One-ID merges identifiers, a person is an identifier: a record carrying a member card,
  a phone and a unionid gives one ledger row for each, so an export keyed by any of them finds
  the opt-out. Subjects: `member_card`, `phone_token` (never the phone itself), `unionid`,
  `openid` (`<appid or OA id>:<openid>`: an openid means nothing without its app) and
  `external_userid` (`<corp_id>:<external_userid>`).
- What grants or withdraws a purpose, each purpose's default, source priorities, the notice
  versions and the SMS opt-out keywords are data: jobs/silver/consent_purposes.yaml, loaded into
  one typed object (`ConsentConfig`) and checked when loaded.
- The ledger is rebuilt (mode "replace") from silver tables that keep their whole history
  (crm_consents and sms_replies here, members, events, wecom_contact_events, oa_events and
  imported_customers elsewhere); a table not built yet is skipped. Tables only a source that
  grants nothing reads are not read at all (the default reads no browse events).
- `silver.consent_state`: per (subject, purpose) the latest event wins. Two events at the same
  instant are ordered by the source's priority (the consent system of record and a person's own
  words over what a platform action implies), then a withdrawal over a grant (when the order is
  unknowable, do not message), then the source reference (deterministic). `since` is when the
  current state began (the first of the latest run of equal decisions). A subject and purpose the
  state does not hold has the purpose's configured default (`default_state`).
"""

from __future__ import annotations

from datetime import date
from functools import cache, reduce
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.clean.dates import business_date
from jobs.common.errors import CdpError
from jobs.common.yamlio import load_yaml
from jobs.silver.common import blank_to_null, lateness_days, latest_landed
from jobs.silver.crm import (
    lineage,
    phone_outputs,
    with_phone,
)
from jobs.silver.table import Batch, SilverTable

CONFIG_PATH = Path(__file__).with_name("consent_purposes.yaml")

PURPOSES: tuple[str, ...] = (
    "marketing_sms",
    "marketing_wecom",
    "marketing_oa",
    "ads_audience",
    "personalization",
)
SUBJECT_TYPES: tuple[str, ...] = (
    "member_card",
    "phone_token",
    "unionid",
    "openid",
    "external_userid",
)
# What each source can say: sources that both grant and withdraw carry the decision in the row.
GRANTING = frozenset({"wecom_add", "oa_subscribe", "crm_signup", "miniprogram_authorization"})
WITHDRAWING = frozenset({"wecom_delete", "oa_unsubscribe", "sms_optout"})
EITHER = frozenset({"crm_consents", "import"})
SOURCES: tuple[str, ...] = tuple(sorted(GRANTING | WITHDRAWING | EITHER))

LEDGER_KEYS = ("subject_type", "subject_id", "purpose", "source", "source_ref")
LEDGER_COLUMNS = (
    *LEDGER_KEYS[:3],
    "granted",
    "channel",
    LEDGER_KEYS[3],
    "occurred_at",
    "occurred_date",
    "notice_version",
    "notice_inferred",
    LEDGER_KEYS[4],
    "updated_at",
)
STATE_KEYS = ("subject_type", "subject_id", "purpose")
_CANDIDATE = (
    "subject_type",
    "subject_id",
    "purpose",
    "granted",
    "channel",
    "source",
    "occurred_at",
    "notice_version",
    "source_ref",
    "updated_at",
)

# --- configuration ------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PurposeRule(_Strict):
    default: bool = False
    granted_by: tuple[str, ...] = ()
    withdrawn_by: tuple[str, ...] = ()


class SourceRule(_Strict):
    priority: int
    match: tuple[str, ...] = ()  # event types / change types / OA events that count
    purposes: tuple[str, ...] = ()  # for a source that names no purpose (import): which


class Notice(_Strict):
    version: str
    effective: date


class Notices(_Strict):
    default: str
    versions: tuple[Notice, ...] = ()


class SmsOptout(_Strict):
    exact: tuple[str, ...] = ()
    contains: tuple[str, ...] = ()


class ConsentConfig(_Strict):
    purposes: dict[str, PurposeRule]
    sources: dict[str, SourceRule]
    notices: Notices
    sms_optout: SmsOptout = Field(default_factory=SmsOptout)

    @model_validator(mode="after")
    def _consistent(self) -> ConsentConfig:
        unknown = sorted(set(self.purposes) - set(PURPOSES))
        if unknown:
            raise ValueError(f"unknown purpose(s) {unknown}; expected some of {list(PURPOSES)}")
        unknown = sorted(set(self.sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; expected some of {list(SOURCES)}")
        for purpose, rule in self.purposes.items():
            for name, listed, wrong in (
                ("granted_by", rule.granted_by, WITHDRAWING),
                ("withdrawn_by", rule.withdrawn_by, GRANTING),
            ):
                for source in listed:
                    if source not in self.sources:
                        raise ValueError(f"{purpose}.{name}: source {source!r} has no entry")
                    if source in wrong:
                        raise ValueError(f"{purpose}.{name}: {source!r} cannot do that")
        for source, rule in self.sources.items():
            bad = sorted(set(rule.purposes) - set(self.purposes))
            if bad:
                raise ValueError(f"sources.{source}.purposes: unknown purpose(s) {bad}")
        return self

    def purposes_of(self, source: str, granted: bool) -> tuple[str, ...]:
        """The purposes an event of `source` grants (or withdraws): those listing it, narrowed
        to the source's own `purposes` when it names some."""
        listed = tuple(
            p
            for p, rule in self.purposes.items()
            if source in (rule.granted_by if granted else rule.withdrawn_by)
        )
        only = self.sources[source].purposes if source in self.sources else ()
        return tuple(p for p in listed if p in only) if only else listed

    def uses(self, source: str) -> bool:
        return bool(self.purposes_of(source, True) or self.purposes_of(source, False))

    def match(self, source: str) -> tuple[str, ...]:
        rule = self.sources.get(source)
        return rule.match if rule else ()

    def priority(self, source: str) -> int:
        rule = self.sources.get(source)
        return rule.priority if rule else 0


def parse_config(raw: object, where: str = "consent purposes") -> ConsentConfig:
    try:
        return ConsentConfig.model_validate(raw)
    except ValidationError as e:
        raise CdpError(f"{where}: {e}") from e


@cache
def load_config(path: Path = CONFIG_PATH) -> ConsentConfig:
    """consent_purposes.yaml as one checked object (loaded once)."""
    return parse_config(load_yaml(path), str(path))


def default_state(purpose: str, config: ConsentConfig | None = None) -> bool:
    """A purpose's state for a subject silver.consent_state does not hold."""
    rule = (config or load_config()).purposes.get(purpose)
    return bool(rule and rule.default)


# --- helpers ------------------------------------------------------------------------------------


def _col(df: DataFrame, name: str, type_: str = "string") -> Column:
    """A column of another helper's table, or null when that table lacks it."""
    return F.col(name) if name in df.columns else F.lit(None).cast(type_)


def _text(df: DataFrame, name: str) -> Column:
    return blank_to_null(F.trim(_col(df, name).cast("string")))


def _scoped(scope: Column, value: Column) -> Column:
    """`<scope>:<value>` (an openid under its app, an external_userid under its corp)."""
    return F.when(scope.isNotNull() & value.isNotNull(), F.concat(scope, F.lit(":"), value))


def as_bool(col: Column) -> Column:
    """A yes/no as booleans or text (true/false, yes/no, 1/0, granted/withdrawn, 同意/撤回)."""
    text = F.lower(F.trim(col.cast("string")))
    yes = ("true", "yes", "y", "1", "granted", "同意", "是")
    no = ("false", "no", "n", "0", "withdrawn", "撤回", "拒绝", "否")
    return F.when(text.isin(*yes), F.lit(True)).when(text.isin(*no), F.lit(False))


def _candidates(df: DataFrame, subjects: list[tuple[str, Column]], **cols: Column) -> DataFrame:
    """One candidate ledger row per non-null subject of each record of `df`."""
    structs = [
        F.struct(F.lit(kind).alias("subject_type"), value.cast("string").alias("subject_id"))
        for kind, value in subjects
    ]
    present = F.filter(F.array(*structs), lambda s: s["subject_id"].isNotNull())
    fields = {name: cols.get(name, F.lit(None)) for name in _CANDIDATE[2:]}
    out = df.select(
        F.explode(present).alias("_subject"),
        *(c.alias(name) for name, c in fields.items()),
    )
    return out.select(
        F.col("_subject.subject_type").alias("subject_type"),
        F.col("_subject.subject_id").alias("subject_id"),
        F.col("purpose").cast("string"),
        F.col("granted").cast("boolean"),
        F.col("channel").cast("string"),
        F.col("source").cast("string"),
        F.col("occurred_at").cast("timestamp"),
        F.col("notice_version").cast("string"),
        F.col("source_ref").cast("string"),
        F.col("updated_at").cast("timestamp"),
    )


# --- silver.crm_consents (the member system's consent log) --------------------------------------


def crm_consent_log(bronze: DataFrame, key: bytes, logical_date: date, tz: str) -> DataFrame:
    """Bronze consent-log rows -> one row per consent_id: who (member card, the phone as a token,
    the mini-program's appid/openid and unionid in clear), purpose, granted (bool), time,
    channel (member_signup | miniprogram | member_centre), notice version."""
    changed = F.col("changed_at").cast("timestamp")
    rows = latest_landed(bronze, ["consent_id"]).transform(with_phone(F.col("mobile"), key))
    return rows.select(
        F.col("consent_id"),
        blank_to_null(F.trim(F.col("member_card"))).alias("member_card"),
        *phone_outputs(),
        blank_to_null(F.trim(F.col("appid"))).alias("appid"),
        blank_to_null(F.trim(F.col("openid"))).alias("openid"),
        blank_to_null(F.trim(F.col("unionid"))).alias("unionid"),
        F.lower(F.trim(F.col("purpose"))).alias("purpose"),
        as_bool(F.col("granted")).alias("granted"),
        changed.alias("changed_at"),
        business_date(changed, tz).alias("changed_date"),
        lateness_days(business_date(changed, tz), logical_date).alias("lateness_days"),
        blank_to_null(F.lower(F.trim(F.col("channel")))).alias("channel"),
        blank_to_null(F.trim(F.col("notice_version"))).alias("notice_version"),
        *lineage(),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )


# --- silver.sms_replies -------------------------------------------------------------------------

_FULLWIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALFWIDTH = "".join(chr(c) for c in range(0x21, 0x7F)) + " "


def reply_text(content: Column) -> Column:
    """An SMS reply as the opt-out rules read it: full-width folded to half-width, punctuation
    and symbols to single spaces, trimmed, upper-cased."""
    text = F.upper(F.translate(content, _FULLWIDTH, _HALFWIDTH))
    return F.trim(F.regexp_replace(text, r"[\s\p{P}\p{S}]+", " "))


def optout_keyword(text: Column, rules: SmsOptout) -> Column:
    """The opt-out keyword a reply (as `reply_text` gives it) matches, or null: it is one of
    `exact`, starts with one as its first word, or contains one of `contains`."""
    first = F.split(text, " ").getItem(0)
    found = F.lit(None).cast("string")
    for word in reversed(rules.contains):
        found = F.when(F.instr(text, word.upper()) > 0, F.lit(word)).otherwise(found)
    for word in reversed(rules.exact):
        found = F.when((text == word.upper()) | (first == word.upper()), F.lit(word)).otherwise(
            found
        )
    return F.when(text.isNotNull(), found)


def sms_replies(
    bronze: DataFrame, key: bytes, logical_date: date, tz: str, rules: SmsOptout
) -> DataFrame:
    """Bronze SMS replies (上行短信) -> one row per gateway sequence_id: the sender's phone as a
    token, when it came, the campaign's extension code and signature, and whether it reads as
    an opt-out (`is_optout`, the keyword it matched). What the customer typed stays in bronze
    (only its length comes along)."""
    received = F.col("received").cast("timestamp")
    rows = (
        latest_landed(bronze, ["sequence_id"])
        .transform(with_phone(F.col("phone"), key))
        .withColumn("_reply", reply_text(F.col("content")))
        .withColumn("optout_keyword", optout_keyword(F.col("_reply"), rules))
    )
    return rows.select(
        F.col("sequence_id").cast("long").alias("sequence_id"),
        *phone_outputs(),
        received.alias("received_at"),
        business_date(received, tz).alias("received_date"),
        lateness_days(business_date(received, tz), logical_date).alias("lateness_days"),
        blank_to_null(F.trim(F.col("dest_code"))).alias("dest_code"),
        blank_to_null(F.trim(F.col("sign_name"))).alias("sign_name"),
        F.col("optout_keyword").isNotNull().alias("is_optout"),
        F.col("optout_keyword"),
        F.length(F.col("content")).alias("content_length"),
        *lineage(),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )


# --- ledger sources -----------------------------------------------------------------------------


def from_crm_consents(log: DataFrame) -> DataFrame:
    """The consent log's rows (silver.crm_consents): explicit, one purpose each."""
    openid = _scoped(_text(log, "appid"), _text(log, "openid"))
    return _candidates(
        log,
        [
            ("member_card", _text(log, "member_card")),
            ("phone_token", _text(log, "phone_token")),
            ("unionid", _text(log, "unionid")),
            ("openid", openid),
        ],
        purpose=F.col("purpose"),
        granted=F.col("granted"),
        channel=F.col("channel"),
        source=F.lit("crm_consents"),
        occurred_at=F.col("changed_at"),
        notice_version=F.col("notice_version"),
        source_ref=F.col("consent_id"),
        updated_at=_col(log, "updated_at", "timestamp"),
    )


def from_member_signups(members: DataFrame) -> DataFrame:
    """A member joining (silver.members registered_at): grants what the config lists."""
    return _candidates(
        members.where(F.col("registered_at").isNotNull()),
        [
            ("member_card", _text(members, "member_card")),
            ("phone_token", _text(members, "phone_token")),
            ("unionid", _text(members, "unionid")),
        ],
        granted=F.lit(True),
        channel=_col(members, "channel"),
        source=F.lit("crm_signup"),
        occurred_at=F.col("registered_at"),
        source_ref=F.col("member_card"),
        updated_at=_col(members, "updated_at", "timestamp"),
    )


def from_miniprogram_authorizations(events: DataFrame, event_types: tuple[str, ...]) -> DataFrame:
    """Mini-program authorization moments (silver.events of `event_types`, e.g. phone_bind:
    getPhoneNumber): grant what the config lists, to the openid, unionid, phone and card."""
    moments = events.where(
        (F.col("source") == "miniprogram") & F.col("event_type").isin(*event_types)
    )
    return _candidates(
        moments,
        [
            ("openid", _scoped(_text(events, "appid"), _text(events, "openid"))),
            ("unionid", _text(events, "unionid")),
            ("phone_token", _text(events, "phone_token")),
            ("member_card", _text(events, "user_id")),
        ],
        granted=F.lit(True),
        channel=F.lit("miniprogram"),
        source=F.lit("miniprogram_authorization"),
        occurred_at=F.col("event_ts"),
        source_ref=F.col("event_id"),
        updated_at=_col(events, "updated_at", "timestamp"),
    )


def from_imported(imported: DataFrame) -> DataFrame:
    """An imported member list's marketing_consent (silver.imported_customers). Its time is
    consent_at; a list without one dates a yes as old as it can be (registration, else the
    import) and a no at the import: an undated list never overrides a later withdrawal, and its
    withdrawal is not lost behind an older grant."""
    granted = as_bool(F.col("marketing_consent"))
    consent_at = _col(imported, "consent_at", "timestamp")
    registered = _col(imported, "registered_at", "timestamp")
    loaded = _col(imported, "updated_at", "timestamp")
    occurred = F.when(granted, F.coalesce(consent_at, registered, loaded)).otherwise(
        F.coalesce(consent_at, loaded)
    )
    return _candidates(
        imported.where(granted.isNotNull()),
        [
            ("member_card", _text(imported, "member_card")),
            ("phone_token", _text(imported, "phone_token")),
            ("unionid", _text(imported, "wechat_unionid")),
        ],
        granted=granted,
        channel=F.lit("import"),
        source=F.lit("import"),
        occurred_at=occurred,
        source_ref=F.concat_ws(":", _col(imported, "source"), F.col("customer_id")),
        updated_at=loaded,
    )


def from_oa_events(
    oa: DataFrame, subscribe: tuple[str, ...], unsubscribe: tuple[str, ...]
) -> DataFrame:
    """Official Account follows and unfollows (silver.oa_events), for the openid under the
    account and the unionid when WeChat gave one."""
    event = F.lower(F.col("event"))
    moves = oa.where(event.isin(*subscribe, *unsubscribe))
    is_follow = event.isin(*subscribe)
    ts = F.col("event_ts")
    return _candidates(
        moves,
        [
            ("openid", _scoped(_text(oa, "account_id"), _text(oa, "openid"))),
            ("unionid", _text(oa, "unionid")),
        ],
        granted=is_follow,
        channel=F.lit("oa"),
        source=F.when(is_follow, F.lit("oa_subscribe")).otherwise(F.lit("oa_unsubscribe")),
        occurred_at=ts,
        source_ref=F.concat_ws(
            ":", F.col("account_id"), F.col("openid"), event, F.date_format(ts, "yyyyMMddHHmmss")
        ),
        updated_at=_col(oa, "updated_at", "timestamp"),
    )


def from_wecom_contact_events(
    wecom: DataFrame, add: tuple[str, ...], delete: tuple[str, ...]
) -> DataFrame:
    """A customer adding a guide or deleting them (silver.wecom_contact_events), for the
    external_userid under its corp and the unionid when the corp sees one."""
    change = F.col("change_type")
    moves = wecom.where(change.isin(*add, *delete))
    is_add = change.isin(*add)
    ts = F.col("event_ts")
    return _candidates(
        moves,
        [
            ("external_userid", _scoped(_text(wecom, "corp_id"), _text(wecom, "external_userid"))),
            ("unionid", _text(wecom, "unionid")),
        ],
        granted=is_add,
        channel=F.lit("wecom"),
        source=F.when(is_add, F.lit("wecom_add")).otherwise(F.lit("wecom_delete")),
        occurred_at=ts,
        source_ref=F.concat_ws(
            ":",
            F.col("corp_id"),
            F.col("guide_user_id"),
            F.col("external_userid"),
            change,
            F.date_format(ts, "yyyyMMddHHmmss"),
        ),
        updated_at=_col(wecom, "updated_at", "timestamp"),
    )


def from_sms_replies(sms: DataFrame) -> DataFrame:
    """SMS replies read as an opt-out (silver.sms_replies is_optout), for the sender's phone."""
    return _candidates(
        sms.where(F.col("is_optout")),
        [("phone_token", _text(sms, "phone_token"))],
        granted=F.lit(False),
        channel=F.lit("sms"),
        source=F.lit("sms_optout"),
        occurred_at=F.col("received_at"),
        source_ref=F.col("sequence_id").cast("string"),
        updated_at=_col(sms, "updated_at", "timestamp"),
    )


# --- the ledger and the state -------------------------------------------------------------------


def notice_in_force(day: Column, notices: Notices) -> Column:
    """The privacy-notice version in force on `day` (the configured history), else the default."""
    version = F.lit(notices.default)
    for notice in sorted(notices.versions, key=lambda n: n.effective):
        version = F.when(day >= F.lit(notice.effective), F.lit(notice.version)).otherwise(version)
    return version


def _purpose_map(config: ConsentConfig, granted: bool) -> Column:
    pairs = [
        (
            F.lit(source),
            F.array(*(F.lit(p) for p in config.purposes_of(source, granted))).cast("array<string>"),
        )
        for source in SOURCES
    ]
    return F.create_map(*[x for pair in pairs for x in pair])


def consent_ledger(parts: list[DataFrame], config: ConsentConfig, tz: str) -> DataFrame:
    """Candidate rows of every source -> the ledger: a row that names its purpose is kept when
    the config lets its source grant (or withdraw) that purpose; a row that names none becomes
    one row per purpose its source grants (withdraws). The notice version is the source's, else
    the one in force (`notice_inferred`). One row per ledger key (a re-sent event once)."""
    rows = reduce(DataFrame.unionByName, parts)
    allowed = F.when(F.col("granted"), _purpose_map(config, True)[F.col("source")]).otherwise(
        _purpose_map(config, False)[F.col("source")]
    )
    allowed = F.coalesce(allowed, F.array().cast("array<string>"))
    expanded = rows.where(F.col("granted").isNotNull()).withColumn(
        "purpose",
        F.explode(
            F.when(F.col("purpose").isNull(), allowed).otherwise(
                F.when(
                    F.array_contains(allowed, F.col("purpose")), F.array(F.col("purpose"))
                ).otherwise(F.array().cast("array<string>"))
            )
        ),
    )
    given = blank_to_null(F.col("notice_version"))
    day = business_date(F.col("occurred_at"), tz)
    ledger = expanded.select(
        *(F.col(c) for c in _CANDIDATE if c != "notice_version"),
        F.coalesce(given, notice_in_force(day, config.notices)).alias("notice_version"),
        given.isNull().alias("notice_inferred"),
        day.alias("occurred_date"),
    )
    w = Window.partitionBy(*LEDGER_KEYS).orderBy(F.col("updated_at").desc_nulls_last())
    ledger = ledger.withColumn("_rank", F.row_number().over(w)).where("_rank = 1")
    return ledger.select(*LEDGER_COLUMNS)


def consent_state(ledger: DataFrame, config: ConsentConfig) -> DataFrame:
    """The ledger -> one row per (subject_type, subject_id, purpose): the latest decision
    (`granted`), `since` when that state began, and the source, channel, notice version and
    reference of the event that set it; ties as the module's docstring says."""
    priority = F.create_map(*[x for s in SOURCES for x in (F.lit(s), F.lit(config.priority(s)))])[
        F.col("source")
    ]
    order = [
        F.col("occurred_at").asc_nulls_first(),
        F.coalesce(priority, F.lit(0)).asc(),
        F.col("granted").desc(),  # a withdrawal sorts after a grant at the same instant
        F.col("source_ref").asc(),
    ]
    ordered = Window.partitionBy(*STATE_KEYS).orderBy(*order)
    whole = Window.partitionBy(*STATE_KEYS)
    starts = F.lag("granted").over(ordered).isNull() | (
        F.lag("granted").over(ordered) != F.col("granted")
    )
    marked = (
        ledger.withColumn("_n", F.row_number().over(ordered))
        .withColumn("_start", F.when(starts, F.col("_n")))
        .withColumn("_last_start", F.max("_start").over(whole))
        .withColumn(
            "_since",
            F.max(F.when(F.col("_n") == F.col("_last_start"), F.col("occurred_at"))).over(whole),
        )
        .withColumn("_events", F.count(F.lit(1)).over(whole))
        .withColumn("_last", F.max("_n").over(whole))
    )
    return marked.where(F.col("_n") == F.col("_last")).select(
        *STATE_KEYS,
        "granted",
        F.col("_since").alias("since"),
        "source",
        "channel",
        "notice_version",
        "source_ref",
        F.col("occurred_at").alias("last_event_at"),
        F.col("_events").alias("events"),
        "updated_at",
    )


# --- the tables ---------------------------------------------------------------------------------


def _build_crm_consents(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("crm_consents")
    if bronze is None:
        return None
    return crm_consent_log(bronze, batch.hmac_key, batch.logical_date, batch.timezone)


def _build_sms_replies(batch: Batch) -> DataFrame | None:
    bronze = batch.bronze.get("sms_replies")
    if bronze is None:
        return None
    rules = load_config().sms_optout
    return sms_replies(bronze, batch.hmac_key, batch.logical_date, batch.timezone, rules)


def ledger_parts(batch: Batch, config: ConsentConfig) -> list[DataFrame]:
    """The candidate rows of every source whose silver table exists and that the config lets
    grant or withdraw something."""
    parts = []

    def table(name: str, *sources: str) -> DataFrame | None:
        return batch.silver(name) if any(config.uses(s) for s in sources) else None

    if (log := table("crm_consents", "crm_consents")) is not None:
        parts.append(from_crm_consents(log))
    if (sms := table("sms_replies", "sms_optout")) is not None:
        parts.append(from_sms_replies(sms))
    if (members := table("members", "crm_signup")) is not None:
        parts.append(from_member_signups(members))
    if (events := table("events", "miniprogram_authorization")) is not None:
        parts.append(
            from_miniprogram_authorizations(events, config.match("miniprogram_authorization"))
        )
    if (imported := table("imported_customers", "import")) is not None:
        parts.append(from_imported(imported))
    if (oa := table("oa_events", "oa_subscribe", "oa_unsubscribe")) is not None:
        subscribe, unsubscribe = config.match("oa_subscribe"), config.match("oa_unsubscribe")
        parts.append(from_oa_events(oa, subscribe, unsubscribe))
    if (wecom := table("wecom_contact_events", "wecom_add", "wecom_delete")) is not None:
        add, delete = config.match("wecom_add"), config.match("wecom_delete")
        parts.append(from_wecom_contact_events(wecom, add, delete))
    return parts


def _build_consents(batch: Batch) -> DataFrame | None:
    config = load_config()
    parts = ledger_parts(batch, config)
    return consent_ledger(parts, config, batch.timezone) if parts else None


def _build_consent_state(batch: Batch) -> DataFrame | None:
    ledger = batch.silver("consents")
    return None if ledger is None else consent_state(ledger, load_config())


TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="crm_consents",
        build=_build_crm_consents,
        keys=("consent_id",),
        inputs=("crm_consents",),
    ),
    SilverTable(
        name="sms_replies",
        build=_build_sms_replies,
        keys=("sequence_id",),
        inputs=("sms_replies",),
    ),
    SilverTable(
        name="consents",
        build=_build_consents,
        keys=LEDGER_KEYS,
        depends_on=(
            "crm_consents",
            "sms_replies",
            "members",
            "events",
            "imported_customers",
            "oa_events",
            "wecom_contact_events",
        ),
        mode="replace",
    ),
    SilverTable(
        name="consent_state",
        build=_build_consent_state,
        keys=STATE_KEYS,
        depends_on=("consents",),
        mode="replace",
    ),
)
