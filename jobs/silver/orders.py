"""Bronze platform orders -> silver.orders (one row per (source, order_id) across platforms) and
silver.order_status_history (every state each order was seen in, and when).

How a dataset's rows read is data: its spec's `silver:` section, parsed into a SilverMapping
(jobs/common/silver_mapping.py). The steps, each a public function DataFrame -> DataFrame:

- `standardize`: bronze fields -> the standard order fields (renames, `_extra:` paths), status
  code -> the one state machine (jobs/common/order_states.py) with the transition time `status_at`,
  money as decimal(18,2) with its currency; an ERP's re-exports of platforms ingested directly
  are left out (they would count those orders twice).
- `latest_per_order`: re-synced duplicates collapse to the latest state: by the platform's own
  modification time where it has one (a newer one is trusted, even backwards), else by state
  (a re-sync never moves an order back along the state machine), then by ingestion order.
- `row_flags` (jobs/silver/flags.py): test orders (0 yuan, test keywords), before the receiver's
  name is tokenized.
- `with_identity`: no raw contact detail leaves: the phone (E.164, jobs/common/clean/phones.py),
  the receiver's name and address become tokens, masks and vault-bound values
  (jobs/silver/vault.py); a masked phone is kept as `phone_partial`, never a key. The platform's
  buyer ids stay in clear (`buyer_id`, `buyer_id_type`). `customer_key` is, as before, the
  phone token, else a token of the first buyer id (`key_type` says which): customer 360 reads it
  until One-ID replaces it.
- `one_row_per_order`: the datasets of one platform (Tmall's export and its API) and the order
  as silver holds it already become one row: the highest-priority dataset gives the order's
  identity, the state follows the same rules as re-syncs, so a late file never rolls an order
  back; `status_at`, `lateness_days` keep the earliest, `flags` the union of the row rules.

The day-grained fake-order rules run after the merge: `flag_orders` is silver.orders' `refresh`.
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.clean.addresses import address_from_parts, mask_address, standardize_address
from jobs.common.clean.dates import business_date
from jobs.common.clean.money import MONEY, to_money
from jobs.common.clean.names import mask_name, normalize_name
from jobs.common.clean.phones import mask_phone, normalize_phone, partial_phone
from jobs.common.order_states import RANK
from jobs.common.pii import hmac_sha256_hex
from jobs.common.silver_mapping import EXTRA_PREFIX, SilverMapping
from jobs.silver.common import blank_to_null, lateness_days
from jobs.silver.flags import FLAGS, flag_orders, row_flags, with_verdicts
from jobs.silver.table import Batch, SilverTable
from jobs.silver.vault import pii_columns, token

if TYPE_CHECKING:
    from datetime import date

    from jobs.ingest.spec import SourceSpec
    from jobs.silver.flags import FlagRules

KEYS = ("source", "order_id")
DATASET_KEYS = ("source", "dataset", "order_id")  # an order as one dataset holds it
# silver.orders, as written (the build takes the `_pii_*` columns off to the vault).
ORDER_COLUMNS = [
    "order_id",
    "source",
    "dataset",
    "customer_key",
    "key_type",
    "phone_token",
    "phone_masked",
    "phone_partial",
    "buyer_id",
    "buyer_id_type",
    "receiver_name_token",
    "receiver_name_masked",
    "receiver_address_token",
    "receiver_address_masked",
    "receiver_province",
    "receiver_city",
    "receiver_district",
    "receiver_province_code",
    "receiver_city_code",
    "receiver_district_code",
    "device_id",
    "order_ts",
    "order_date",
    "paid_ts",
    "shipped_ts",
    "completed_ts",
    "closed_ts",
    "status",
    "status_code",
    "status_at",
    "modified_at",
    "amount",
    "refund_amount",
    "currency",
    "item_quantity",
    "linked_order_ref",
    "is_test",
    "is_fake",
    "flags",
    "lateness_days",
    "source_file",
    "source_line",
    "_batch_id",
    "updated_at",
]
SILVER_ORDER_COLUMNS = ORDER_COLUMNS
# The vault-bound normalized values riding along (jobs/silver/vault.py).
PII_COLUMNS = [
    "_pii_phone__phone",
    "_pii_name__receiver_name",
    "_pii_address__receiver_address",
]
HISTORY_KEYS = ("source", "order_id", "status")
HISTORY_COLUMNS = [
    "source",
    "order_id",
    "status",
    "status_code",
    "first_seen_at",
    "dataset",
    "_batch_id",
    "updated_at",
]
# The columns that follow the order's state (not its identity) when rows are combined.
_TIMES = ("paid_ts", "shipped_ts", "completed_ts", "closed_ts")
# Receiver details the identity row may lack (Tmall's API ciphers the receiver): taken, each
# group whole, from the highest-priority row that has them. The phone is not: it is the key.
_FILLED = {
    "receiver_name_token": ("receiver_name_token", "receiver_name_masked"),
    "receiver_address_token": ("receiver_address_token", "receiver_address_masked"),
    "receiver_province": (
        "receiver_province",
        "receiver_city",
        "receiver_district",
        "receiver_province_code",
        "receiver_city_code",
        "receiver_district_code",
    ),
    "phone_partial": ("phone_partial",),
    "device_id": ("device_id",),
    "item_quantity": ("item_quantity",),
}
_TOKENS = {  # vault-bound column -> its token
    "_pii_phone__phone": "phone_token",
    "_pii_name__receiver_name": "receiver_name_token",
    "_pii_address__receiver_address": "receiver_address_token",
}


def _literal_map(mapping: dict) -> Column:
    if not mapping:
        return F.create_map().cast("map<string,string>")
    return F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv])


def state_rank(status: Column) -> Column:
    """How far along the state machine a status is (states.RANK); -1 for none."""
    ranks = F.create_map(*[F.lit(x) for kv in RANK.items() for x in kv])
    return F.coalesce(ranks[status], F.lit(-1))


class _Reader:
    """The bronze column of a standard field (its rename, an `_extra:` path, or null when the
    dataset lacks it)."""

    def __init__(self, bronze: DataFrame, mapping: SilverMapping):
        self.present = set(bronze.columns)
        self.mapping = mapping

    def raw(self, name: str | None) -> Column:
        """A bronze field by its own name (or `_extra:` path)."""
        if not name:
            return F.lit(None)
        if name.startswith(EXTRA_PREFIX):
            if "_extra" not in self.present:
                return F.lit(None).cast("string")
            extra = F.from_json(F.col("_extra"), "map<string,string>")
            return blank_to_null(extra[name.removeprefix(EXTRA_PREFIX)])
        return F.col(name) if name in self.present else F.lit(None)

    def __call__(self, standard: str) -> Column:
        return self.raw(self.mapping.field(standard))

    def time(self, standard: str) -> Column:
        return self(standard).cast("timestamp")

    def text(self, standard: str) -> Column:
        return blank_to_null(self(standard))


def status_time() -> Column:
    """When the order entered its current status: the platform's own time of that transition
    (pending -> created, paid -> pay_time, shipped -> shipped_time, completed -> finished_time,
    closed/refunded -> closed_time), else the platform's modification time, else, for a closed
    or refunded order, the latest time known; else the ingestion time. Reads the standardized
    columns."""
    status = F.col("status")
    own = (
        F.when(status == "pending", F.col("created"))
        .when(status == "paid", F.col("pay_time"))
        .when(status == "shipped", F.col("shipped_time"))
        .when(status == "completed", F.col("finished_time"))
        .when(status.isin("closed", "refunded"), F.col("closed_time"))
    )
    latest_known = F.greatest(
        F.col("created"), F.col("pay_time"), F.col("shipped_time"), F.col("finished_time")
    )
    ended = F.when(status.isin("closed", "refunded"), latest_known)
    return F.coalesce(own, F.col("modified_at"), ended, F.col("updated_at"))


def standardize(
    bronze: DataFrame,
    source: str,
    mapping: SilverMapping,
    *,
    dataset: str | None = None,
    logical_date: date | None = None,
    timezone: str = "Asia/Shanghai",
) -> DataFrame:
    """One dataset's bronze rows as standard order rows (raw personal values still in them:
    never written). One row per bronze row; for `lines` exports (one row per product line)
    the order's quantity is the sum of its lines in one file and its titles are joined."""
    field = _Reader(bronze, mapping)
    rows = bronze
    linked = mapping.linked_order
    linked_ref = F.lit(None).cast("string")
    if linked:
        platform = field.raw(linked.platform_field).cast("string")
        linked_ref = F.concat(platform, F.lit(":"), field.raw(linked.order_id_field).cast("string"))
        if linked.ingested_directly:
            rows = rows.where(platform.isNull() | ~platform.isin(*linked.ingested_directly))
    code = field("order_status").cast("string")
    refund = (
        to_money(field.raw(mapping.refund_field))
        if mapping.refund_field
        else F.lit(None).cast(MONEY)
    )
    refunded = code.isin(*mapping.refunded_when_refund) & (refund > 0)
    status = F.when(refunded, F.lit("refunded")).otherwise(_literal_map(mapping.status)[code])
    buyer_values = []
    for buyer in mapping.buyer_ids:
        value = blank_to_null(field.raw(buyer.field))
        if buyer.qualifier_field:
            qualifier = blank_to_null(field.raw(buyer.qualifier_field))
            value = F.concat(qualifier, F.lit(":"), value)
        buyer_values.append(value)
    modified = field.raw(mapping.modified_field).cast("timestamp")
    logical = (
        F.lit(logical_date)
        if logical_date is not None
        else (F.col("_logical_date") if "_logical_date" in field.present else F.lit(None))
    ).cast("date")
    created = field.time("created")
    order_date = business_date(created, timezone)
    out = rows.select(
        field("order_id").cast("string").alias("order_id"),
        F.lit(source).alias("source"),
        F.lit(dataset).cast("string").alias("dataset"),
        code.alias("status_code"),
        status.alias("status"),
        created.alias("created"),
        field.time("pay_time").alias("pay_time"),
        field.time("shipped_time").alias("shipped_time"),
        field.time("finished_time").alias("finished_time"),
        field.time("closed_time").alias("closed_time"),
        modified.alias("modified_at"),
        to_money(field("payment")).alias("amount"),
        refund.alias("refund_amount"),
        F.coalesce(F.upper(field.text("currency")), F.lit(mapping.currency)).alias("currency"),
        field.text("receiver_mobile").alias("receiver_mobile"),
        field.text("receiver_name").alias("receiver_name"),
        field.text("receiver_address").alias("receiver_address"),
        field.text("receiver_province").alias("receiver_province"),
        field.text("receiver_city").alias("receiver_city"),
        field.text("receiver_district").alias("receiver_district"),
        field.text("item_title").alias("item_title"),
        field("item_quantity").cast("long").alias("item_quantity"),
        field.text("device_id").alias("device_id"),
        F.array(*buyer_values).cast("array<string>").alias("_buyer_values"),
        F.array(*(F.lit(b.namespace) for b in mapping.buyer_ids))
        .cast("array<string>")
        .alias("_buyer_types"),
        linked_ref.alias("linked_order_ref"),
        order_date.alias("order_date"),
        lateness_days(order_date, logical).alias("lateness_days"),
        F.col("_file").alias("source_file"),
        F.col("_line").cast("long").alias("source_line"),
        F.col("_batch_id"),
        F.col("_ingested_at").alias("updated_at"),
    )
    if mapping.lines:  # one export of the order: all its lines in one file
        lines = Window.partitionBy("order_id", "source_file")
        titles = F.array_join(F.array_distinct(F.collect_list("item_title").over(lines)), "，")
        out = out.withColumn("item_quantity", F.sum("item_quantity").over(lines)).withColumn(
            "item_title", F.when(titles != "", titles)
        )
    return out.withColumn("status_at", status_time())


def latest_per_order(
    rows: DataFrame,
    order_id: str = "order_id",
    *,
    modified: str | None = None,
    status: str | None = None,
    keys: tuple[str, ...] = (),
) -> DataFrame:
    """Each order's latest sync (re-syncs carry changed statuses). With `modified` (the
    platform's own modification time), an older modification never wins over a newer one,
    whatever its state; with `status`, a row without a newer modification time never moves
    the order back along the state machine; then the latest ingestion (`_ingested_at` or
    `updated_at`, `_file`/`source_file`, `_line`/`source_line`) wins."""
    cols = set(rows.columns)
    at = "_ingested_at" if "_ingested_at" in cols else "updated_at"
    file = "_file" if "_file" in cols else "source_file"
    line = "_line" if "_line" in cols else "source_line"
    by = Window.partitionBy(*(keys or (order_id,)))
    order: list[Column] = []
    if modified:
        newest = F.max(modified).over(by)
        eligible = F.col(modified).isNull() | (F.col(modified) == newest)
        order.append(eligible.desc())
    if status:
        order.append(state_rank(F.col(status)).desc())
    if modified:
        order.append(F.col(modified).desc_nulls_last())
    order += [F.col(at).desc_nulls_last(), F.col(file).desc_nulls_last(), F.col(line).desc()]
    w = by.orderBy(*order)
    return rows.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def with_buyer(rows: DataFrame) -> DataFrame:
    """`buyer_id` (the first present of the row's buyer ids, `_buyer_values`, in clear) and
    `buyer_id_type` (its namespace, from `_buyer_types`): the one dataset-specific step before
    `with_identity`, so a day's datasets are united first and cleaned in one pass."""
    pairs = F.arrays_zip(F.col("_buyer_values"), F.col("_buyer_types"))
    first = F.get(F.filter(pairs, lambda p: p["_buyer_values"].isNotNull()), 0)
    return rows.withColumns(
        {"buyer_id": first["_buyer_values"], "buyer_id_type": first["_buyer_types"]}
    )


def with_identity(rows: DataFrame, hmac_key: bytes) -> DataFrame:
    """The standardized rows (with `with_buyer`'s columns) with their personal values replaced
    by tokens, masks and the vault-bound normalized values; the buyer ids in clear;
    `customer_key` (the phone's token, else the buyer id's in its namespace) and `key_type`."""
    phone = normalize_phone(F.col("receiver_mobile"))
    phone_cols = pii_columns("phone", phone, mask_phone(phone), hmac_key, name="phone")
    phone_token = token("phone", phone, hmac_key)
    name = normalize_name(F.col("receiver_name"))
    name_cols = pii_columns("name", name, mask_name(name), hmac_key, name="receiver_name")
    parts = ("receiver_province", "receiver_city", "receiver_district")
    split = F.coalesce(*(F.col(p) for p in parts)).isNotNull()
    address = F.when(
        split,
        address_from_parts(*(F.col(p) for p in parts), F.col("receiver_address")),
    ).otherwise(standardize_address(F.col("receiver_address")))
    rows = rows.withColumn("_address", address)
    # Without its detail line (Tmall's API ciphers it) a district is no one's address: the
    # division columns are kept, no token.
    address_key = F.when(F.col("receiver_address").isNotNull(), F.col("_address.address_key"))
    address_cols = pii_columns(
        "address", address_key, mask_address(F.col("_address")), hmac_key, name="receiver_address"
    )
    # HMAC("<namespace>:<id>"): the token of the buyer id in its namespace.
    id_token = hmac_sha256_hex(
        F.concat(F.col("buyer_id_type"), F.lit(":"), F.col("buyer_id")), hmac_key
    )
    key_type = (
        F.when(phone_token.isNotNull(), F.lit("phone"))
        .when(F.col("buyer_id").isNotNull(), F.col("buyer_id_type"))
        .otherwise(F.lit("unidentified"))
    )
    times = {
        "paid_ts": F.col("pay_time"),
        "shipped_ts": F.when(
            F.col("status").isin("shipped", "completed", "refunded", "closed"),
            F.col("shipped_time"),
        ),
        "completed_ts": F.when(
            F.col("status").isin("completed", "refunded"), F.col("finished_time")
        ),
        "closed_ts": F.when(F.col("status").isin("closed", "refunded"), F.col("closed_time")),
    }
    division = {
        p: F.coalesce(F.col(f"_address.{p.removeprefix('receiver_')}"), F.col(p)) for p in parts
    }
    out = {
        "order_id": F.col("order_id"),
        "source": F.col("source"),
        "dataset": F.col("dataset"),
        "customer_key": F.coalesce(phone_token, id_token),
        "key_type": key_type,
        "phone_partial": partial_phone(F.col("receiver_mobile")),
        "buyer_id": F.col("buyer_id"),
        "buyer_id_type": F.col("buyer_id_type"),
        **division,
        "receiver_province_code": F.col("_address.province_code"),
        "receiver_city_code": F.col("_address.city_code"),
        "receiver_district_code": F.col("_address.district_code"),
        "device_id": F.col("device_id"),
        "order_ts": F.col("created"),
        "order_date": F.col("order_date"),
        **times,
        "status": F.col("status"),
        "status_code": F.col("status_code"),
        "status_at": F.col("status_at"),
        "modified_at": F.col("modified_at"),
        "amount": F.col("amount"),
        "refund_amount": F.col("refund_amount"),
        "currency": F.col("currency"),
        "item_quantity": F.col("item_quantity"),
        "linked_order_ref": F.col("linked_order_ref"),
        "is_test": F.col("is_test"),
        "is_fake": F.col("is_fake"),
        "flags": F.col("flags"),
        "lateness_days": F.col("lateness_days").cast("int"),
        "source_file": F.col("source_file"),
        "source_line": F.col("source_line"),
        "_batch_id": F.col("_batch_id"),
        "updated_at": F.col("updated_at"),
    }
    # pii_columns' own columns, already named (<name>_token, <name>_masked, _pii_<kind>__<name>)
    named = {
        column: c
        for cols, prefix in (
            (phone_cols, "phone"),
            (name_cols, "receiver_name"),
            (address_cols, "receiver_address"),
        )
        for column, c in zip((f"{prefix}_token", f"{prefix}_masked"), cols[:2], strict=True)
    }
    vault = {
        "_pii_phone__phone": phone_cols[2],
        "_pii_name__receiver_name": name_cols[2],
        "_pii_address__receiver_address": address_cols[2],
    }
    return rows.select(
        *(named[c] if c in named else out[c].alias(c) for c in ORDER_COLUMNS),
        *(vault[c] for c in PII_COLUMNS),
    )


def to_silver(
    bronze: DataFrame,
    source: str,
    mapping: SilverMapping,
    key: bytes,
    *,
    dataset: str | None = None,
    logical_date: date | None = None,
    timezone: str = "Asia/Shanghai",
    rules: FlagRules | None = None,
) -> DataFrame:
    """One dataset's bronze orders -> silver order rows (ORDER_COLUMNS + the vault-bound
    PII_COLUMNS), one per order, as its spec's typed `silver:` mapping says. Pure.

    An order with neither a usable phone nor a buyer id keeps a null customer_key (key_type
    `unidentified`) until One-ID can match it on other evidence. `lateness_days` counts from
    `logical_date` (else the bronze rows' `_logical_date`).
    """
    from jobs.silver.flags import load_rules

    rows = prepare(
        bronze,
        source,
        mapping,
        dataset=dataset,
        logical_date=logical_date,
        timezone=timezone,
        rules=rules or load_rules(),
    )
    return with_identity(rows, key)


def prepare(
    bronze: DataFrame,
    source: str,
    mapping: SilverMapping,
    *,
    dataset: str | None,
    logical_date: date | None,
    timezone: str,
    rules: FlagRules,
) -> DataFrame:
    """A dataset's bronze orders standardized, one (latest) row per order, its row flags and
    buyer id: everything before the contact details are cleaned (`with_identity`)."""
    rows = standardize(
        bronze, source, mapping, dataset=dataset, logical_date=logical_date, timezone=timezone
    )
    return settle(rows, rules)


def settle(rows: DataFrame, rules: FlagRules) -> DataFrame:
    """Standardized rows of one or more datasets: one (latest) row per order of each dataset,
    its row flags and buyer id. Datasets are united before this, so the rules' expressions
    are planned once per day, not once per dataset."""
    return (
        latest_per_order(rows, modified="modified_at", status="status", keys=DATASET_KEYS)
        .withColumn("paid_ts", F.col("pay_time"))
        .transform(lambda df: row_flags(df, rules))
        .transform(with_buyer)
    )


def one_row_per_order(
    parts: list[tuple[DataFrame, int]],
    current: DataFrame | None = None,
    priorities: dict[str, int] | None = None,
) -> DataFrame:
    """Silver order rows of several datasets (each with its spec's `priority`) and, optionally,
    the rows silver.orders holds for the same orders (`current`; their priority from
    `priorities`, keyed "<source>.<dataset>") as one frame, one row per (source, order_id).

    The identity (buyer, amount, lineage) comes from the highest-priority row, the newer first
    (a brand pulling Tmall's export and its API keeps the API's row), the receiver's details it
    lacks from the next row that has them (the export's name and address); the state
    (status, status_code, modified_at, refund_amount) from the row furthest along the state
    machine among those no newer platform modification time supersedes (`latest_per_order`'s
    rules): a re-sync never moves an order back unless the platform says so. `status_at` is
    the earliest time the chosen status was seen, the stage times the first known,
    `lateness_days` the smallest (the first arrival's), `flags` the union of the rows'.
    """
    frames = [df.withColumn("_priority", F.lit(p)) for df, p in parts]
    union = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    return resolve_orders(union, current, priorities)


def _priority_of(priorities: dict[str, int] | None, columns: list[str]) -> Column:
    """A row's dataset priority from `priorities` ("<source>.<dataset>" -> priority), else 0."""
    if not priorities or "dataset" not in columns:
        return F.lit(0)
    ranks = F.create_map(*[F.lit(x) for kv in priorities.items() for x in kv])
    return F.coalesce(ranks[F.concat_ws(".", "source", "dataset")], F.lit(0))


def resolve_orders(
    union: DataFrame,
    current: DataFrame | None = None,
    priorities: dict[str, int] | None = None,
) -> DataFrame:
    """`one_row_per_order` of the day's rows of every dataset in one frame (`_priority` per
    row, else looked up in `priorities`), against `current`."""
    if "_priority" not in union.columns:
        union = union.withColumn("_priority", _priority_of(priorities, union.columns))
    union = union.withColumn("_fresh", F.lit(1))
    columns = [c for c in union.columns if c not in ("_priority", "_fresh")]
    if current is not None:
        known = current.select(*(c for c in columns if c in current.columns))
        keys = [*KEYS, "order_date"] if "order_date" in current.columns else list(KEYS)
        known = known.join(union.select(*keys).distinct(), keys, "left_semi")
        lookup = _priority_of(priorities, known.columns)
        known = known.withColumn("_priority", lookup).withColumn("_fresh", F.lit(0))
        union = union.unionByName(known, allowMissingColumns=True)
    present = set(union.columns)

    def col(name: str) -> Column:
        return F.col(name) if name in present else F.lit(None)

    by = Window.partitionBy(*KEYS)
    everything = (Window.unboundedPreceding, Window.unboundedFollowing)
    rank = state_rank(col("status"))
    newest = F.max(col("modified_at")).over(by)
    eligible = col("modified_at").isNull() | (col("modified_at") == newest)
    identity = by.orderBy(
        F.col("_priority").desc(),
        F.col("_fresh").desc(),
        col("updated_at").desc_nulls_last(),
        rank.desc(),
        col("source_file").desc_nulls_last(),
        col("source_line").desc_nulls_last(),
    )
    state = by.orderBy(
        eligible.desc(),
        rank.desc(),
        col("modified_at").desc_nulls_last(),
        F.col("_fresh").desc(),
        col("updated_at").desc_nulls_last(),
        col("source_file").desc_nulls_last(),
        col("source_line").desc_nulls_last(),
    ).rowsBetween(*everything)
    first_by_identity = identity.rowsBetween(*everything)
    out = union.withColumn("_winner", F.row_number().over(identity))
    replaced: dict[str, Column] = {}
    if "status" in present:
        chosen = F.first(col("status")).over(state)
        replaced["status"] = chosen
        for name in ("status_code", "modified_at"):
            if name in present:
                replaced[name] = F.first(col(name)).over(state)
        if "refund_amount" in present:
            replaced["refund_amount"] = F.first(col("refund_amount"), ignorenulls=True).over(state)
        if "status_at" in present:
            replaced["status_at"] = F.min(F.when(col("status") == chosen, col("status_at"))).over(
                by
            )
    for name in _TIMES:
        if name in present:
            replaced[name] = F.first(col(name), ignorenulls=True).over(first_by_identity)
    if "lateness_days" in present:
        replaced["lateness_days"] = F.min(col("lateness_days")).over(by)
    if "flags" in present:
        every = F.flatten(F.collect_list(F.coalesce(col("flags"), F.array().cast(FLAGS))).over(by))
        replaced["flags"] = F.array_sort(F.array_distinct(every)).cast(FLAGS)
    for key, group in _FILLED.items():  # details the winner lacks, from the next row with them
        group = tuple(c for c in group if c in present)
        if key in present and group:
            found = F.first(
                F.when(col(key).isNotNull(), F.struct(*(col(c) for c in group))), ignorenulls=True
            ).over(first_by_identity)
            replaced |= {c: found[c] for c in group}
    # Few, wide projections: each DataFrame call re-analyses the whole plan.
    out = out.withColumns({f"_new_{name}": value for name, value in replaced.items()})
    # The vault value of the token kept, from a row with that token.
    tokens = {pii: tok for pii, tok in _TOKENS.items() if pii in present and tok in present}
    out = out.withColumns(
        {
            f"_kept_{tok}": F.col(f"_new_{tok}")
            if tok in replaced
            else F.first(col(tok)).over(first_by_identity)
            for tok in tokens.values()
        }
    )
    out = out.withColumns(
        {
            f"_new_{pii}": F.first(
                F.when(col(tok) == F.col(f"_kept_{tok}"), col(pii)), ignorenulls=True
            ).over(first_by_identity)
            for pii, tok in tokens.items()
        }
    )
    out = out.where(F.col("_winner") == 1)
    out = out.withColumns({name: F.col(f"_new_{name}") for name in [*replaced, *tokens]})
    if "status" in present:
        out = _guard_times(out)
    if {"flags", "is_test", "is_fake"} <= present:
        out = with_verdicts(out)
    return out.select(*columns)


def _guard_times(df: DataFrame) -> DataFrame:
    """A stage time only where the chosen state has reached that stage."""
    status = F.col("status")
    guards = {
        "shipped_ts": status.isin("shipped", "completed", "refunded", "closed"),
        "completed_ts": status.isin("completed", "refunded"),
        "closed_ts": status.isin("closed", "refunded"),
    }
    present = set(df.columns)
    return df.withColumns(
        {name: F.when(reached, F.col(name)) for name, reached in guards.items() if name in present}
    )


def status_history(rows: DataFrame) -> DataFrame:
    """Every state the standardized rows show each order in, first seen at its transition time
    (`status_at`: the platform's, else the ingestion time). One row per (source, order_id,
    status)."""
    seen = rows.where(F.col("status").isNotNull())
    return seen.groupBy(*HISTORY_KEYS).agg(
        F.min_by("status_code", "status_at").alias("status_code"),
        F.min("status_at").alias("first_seen_at"),
        F.min_by("dataset", "status_at").alias("dataset"),
        F.max_by("_batch_id", "updated_at").alias("_batch_id"),
        F.max("updated_at").alias("updated_at"),
    )


def keep_first_seen(history: DataFrame, current: DataFrame | None = None) -> DataFrame:
    """The day's history rows merged with those silver holds for the same keys: a state keeps
    the earliest time it was seen."""
    rows = history.select(*HISTORY_COLUMNS)
    if current is not None:
        known = current.select(*(c for c in HISTORY_COLUMNS if c in current.columns))
        known = known.join(rows.select(*HISTORY_KEYS), list(HISTORY_KEYS), "left_semi")
        rows = rows.unionByName(known, allowMissingColumns=True)
    return (
        rows.groupBy(*HISTORY_KEYS)
        .agg(
            F.min_by("status_code", "first_seen_at").alias("status_code"),
            F.min("first_seen_at").alias("first_seen_at"),
            F.min_by("dataset", "first_seen_at").alias("dataset"),
            F.max_by("_batch_id", "updated_at").alias("_batch_id"),
            F.max("updated_at").alias("updated_at"),
        )
        .select(*HISTORY_COLUMNS)
    )


# --- the silver tables ----------------------------------------------------------------------


def order_specs() -> list[SourceSpec]:
    """The specs whose mapping makes silver orders (`orders: true`)."""
    from jobs.ingest.spec import load_specs

    return [s for s in load_specs().values() if s.silver is not None and s.silver.orders]


def _standardized(batch: Batch) -> list[DataFrame]:
    """The day's bronze rows of every order dataset, standardized (`standardize`)."""
    parts = []
    for spec in order_specs():
        bronze = batch.bronze.get(spec.bronze_table)
        if bronze is not None:
            parts.append(
                standardize(
                    bronze,
                    spec.source,
                    spec.silver,
                    dataset=spec.dataset,
                    logical_date=batch.logical_date,
                    timezone=batch.timezone,
                )
            )
    return parts


def build_orders(batch: Batch) -> DataFrame | None:
    """silver.orders rows of the day: every order dataset's bronze rows, one row per order,
    resolved against the rows silver holds (`batch.silver("orders")`, when given)."""
    from jobs.silver.flags import load_rules

    standardized = _standardized(batch)
    if not standardized:
        return None
    # The datasets united first: the rules and the contact-detail cleaning (Python UDFs) are
    # planned and run once over the day's rows, not once per dataset (a few hundred rows on a
    # demo day, where what costs is planning).
    day = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), standardized)
    day = settle(day, load_rules())
    day = with_identity(day, batch.hmac_key)
    priorities = {spec.key: spec.silver.priority for spec in order_specs()}
    return resolve_orders(day, current=batch.silver("orders"), priorities=priorities)


def build_status_history(batch: Batch) -> DataFrame | None:
    """silver.order_status_history rows of the day (every state seen in the day's bronze rows),
    the earliest sighting kept against the rows silver holds."""
    standardized = _standardized(batch)
    if not standardized:
        return None
    day = status_history(reduce(lambda a, b: a.unionByName(b), standardized))
    return keep_first_seen(day, batch.silver("order_status_history"))


def _order_inputs() -> tuple[str, ...]:
    return tuple(dict.fromkeys(spec.bronze_table for spec in order_specs()))


TABLES = (
    SilverTable(
        "orders",
        build=build_orders,
        keys=KEYS,
        inputs=_order_inputs(),
        partition_by="order_date",
        refresh=flag_orders,
        refresh_by="order_date",
    ),
    SilverTable(
        "order_status_history",
        build=build_status_history,
        keys=HISTORY_KEYS,
        inputs=_order_inputs(),
    ),
)
