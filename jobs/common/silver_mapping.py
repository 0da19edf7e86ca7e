"""The `silver:` section of a source spec, parsed and validated into one typed object.

A spec's `silver:` says how a bronze row of an order dataset becomes a silver order (and, for
exports that carry order lines, a silver order item). It is loaded once with the spec and checked
here, so a typo (an unknown key, a status mapped to a state that does not exist, a field the
dataset does not have) fails when the specs load, with the file named, not deep inside a Spark
job.

A bronze field is named as the spec's `columns` name it, or, for a value the spec leaves unmapped
in `_extra`, as ``_extra:<json path>`` (Youzan's `consign_time` and receiver province, city and
district stay there: ``_extra:full_order_info.order_info.consign_time``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jobs.common.order_states import ORDER_STATES

EXTRA_PREFIX = "_extra:"

# The standard order fields a transform reads, each from the bronze field of the same name
# unless `fields` renames it. Times are the platform's (Asia/Shanghai wall times).
STANDARD_FIELDS: dict[str, str] = {
    "order_id": "the platform's order id",
    "order_status": "the platform's status code (mapped by `status`)",
    "payment": "the amount the buyer paid for the order, in `currency`",
    "currency": "a field holding the ISO currency code (else the mapping's `currency`)",
    "created": "when the order was placed",
    "pay_time": "when it was paid",
    "shipped_time": "when it was shipped (consign time)",
    "finished_time": "when it was completed (received, confirmed)",
    "closed_time": "when it was closed or refunded",
    "receiver_mobile": (
        "the phone silver keys on: the receiver's on marketplaces, the buyer's own (bound, "
        "login or member phone) where the source has it"
    ),
    "receiver_name": "the receiver's name",
    "receiver_address": "the receiver's address (the whole line, or the detail after the parts)",
    "receiver_province": "the receiver's province, where the source splits the address",
    "receiver_city": "the receiver's city, where the source splits the address",
    "receiver_district": "the receiver's district, where the source splits the address",
    "item_title": "the order's product title(s) (test-order keywords)",
    "item_quantity": "the order's item count (summed over lines with `lines: true`)",
    "device_id": "the device the order was placed from (fake-order rings)",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BuyerId(_Strict):
    """A platform's own buyer id: the field holding it, the identifier namespace it belongs to
    (`tmall_nick`, `jd_pin`, `unionid`, ...), and an optional qualifier field scoping it (the
    mini-program appid for an openid, the platform for an ERP's buyer account)."""

    field: str
    namespace: str
    qualifier_field: str | None = None


class LinkedOrder(_Strict):
    """A re-export of other platforms' orders (an ERP's): `linked_order_ref` is
    ``<platform>:<platform order id>``; rows of platforms in `ingested_directly` are left out,
    since that platform's own export already brings the order."""

    platform_field: str
    order_id_field: str
    ingested_directly: tuple[str, ...] = ()


class ItemsMapping(_Strict):
    """How a dataset's rows give order lines (`silver.order_items`): standard item field ->
    the bronze field holding it. Standard fields: line_id, order_id, sku, sku_id, title,
    category, quantity, unit_price, line_amount, status, refund_status."""

    fields: dict[str, str] = Field(default_factory=dict)
    # Bronze status codes of a line -> order state (defaults to the order's `status` map).
    status: dict[str, str] = Field(default_factory=dict)


class SilverMapping(_Strict):
    """One dataset's mapping to silver.orders (`orders: true`, the default) and/or
    silver.order_items (`items:`); Tmall's item export gives lines only (`orders: false`)."""

    orders: bool = True
    # Bronze status code -> one of ORDER_STATES.
    status: dict[str, str] = Field(default_factory=dict)
    # The platform's buyer ids in priority order.
    buyer_ids: tuple[BuyerId, ...] = ()
    # Renames of the standard fields (STANDARD_FIELDS: order_id, order_status, payment,
    # created, pay_time, receiver_mobile, ...) to this dataset's bronze fields (or `_extra:`).
    fields: dict[str, str] = Field(default_factory=dict)
    refund_field: str | None = None
    # Statuses that mean `refunded` when the refund amount is > 0 (Tmall's TRADE_CLOSED).
    refunded_when_refund: tuple[str, ...] = ()
    linked_order: LinkedOrder | None = None
    # One row per product line (JD's and 抖店's exports): the order's quantity is their sum.
    lines: bool = False
    # Of two datasets bringing the same (source, order_id), the higher priority wins.
    priority: int = 0
    # The platform's own modification time (Tmall trades `modified`, Youzan `update_time`):
    # re-syncs collapse by it, else by ingestion order, and a newer one may move an order
    # back along the state machine (the platform says so).
    modified_field: str | None = None
    items: ItemsMapping | None = None
    currency: str = "CNY"

    @field_validator("status")
    @classmethod
    def _known_states(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({s for s in value.values() if s not in ORDER_STATES})
        if bad:
            raise ValueError(
                f"unknown order state(s) {', '.join(bad)}; expected {', '.join(ORDER_STATES)}"
            )
        return value

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in value if k not in STANDARD_FIELDS)
        if bad:
            raise ValueError(
                f"unknown standard field(s) {', '.join(bad)}; expected one of "
                f"{', '.join(STANDARD_FIELDS)}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SilverMapping:
        unmapped = sorted(set(self.refunded_when_refund) - set(self.status))
        if unmapped:
            raise ValueError(f"refunded_when_refund {unmapped} are not in the status map")
        if self.refunded_when_refund and not self.refund_field:
            raise ValueError("refunded_when_refund needs a refund_field")
        if self.orders and not self.status:
            raise ValueError("an order dataset (orders: true) needs a status map")
        return self

    def field(self, name: str) -> str:
        """The bronze field of a standard field name (its rename, else the name itself)."""
        return self.fields.get(name, name)

    def bronze_fields(self) -> set[str]:
        """Every bronze field the order mapping names explicitly (not `_extra:` paths, not the
        standard names a dataset may simply lack)."""
        named = set(self.fields.values()) | {b.field for b in self.buyer_ids}
        named |= {b.qualifier_field for b in self.buyer_ids if b.qualifier_field}
        named |= {f for f in (self.refund_field, self.modified_field) if f}
        if self.linked_order:
            named |= {self.linked_order.platform_field, self.linked_order.order_id_field}
        return {f for f in named if not f.startswith(EXTRA_PREFIX)}


def parse_silver(
    raw: dict | None, where: str, known_fields: set[str] | None = None
) -> SilverMapping | None:
    """The typed mapping of a spec's `silver:` section (None when the spec has none); a
    CdpError naming `where` (the spec file) and the bad key when it does not validate, or when
    it names a bronze field not in `known_fields` (the spec's mapped fields)."""
    from pydantic import ValidationError

    from jobs.common.errors import CdpError, validation_problems

    if not raw:
        return None
    if not isinstance(raw, dict):
        raise CdpError(f"{where}: invalid silver mapping: expected a mapping, got {raw!r}")
    try:
        mapping = SilverMapping.model_validate(raw)
    except ValidationError as exc:
        problems = validation_problems(exc, prefix="silver.")
        raise CdpError(f"{where}: invalid silver mapping: {problems}") from exc
    if known_fields is not None:
        missing = sorted(mapping.bronze_fields() - set(known_fields))
        if missing:
            raise CdpError(
                f"{where}: invalid silver mapping: field(s) {', '.join(missing)} are not "
                "fields of this dataset (its `columns`)"
            )
    return mapping
