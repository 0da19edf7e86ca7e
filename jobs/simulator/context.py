"""What a writer gets: one `Day` object (no signature inspection), and what it hands on."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple

from jobs.simulator.files import dumps_line, spoil_json, spoil_row, spoil_sheet_row
from jobs.simulator.mess import Account, MessBook
from jobs.simulator.truth import TruthBook
from jobs.simulator.world import Person, World

TMALL_RATE = 0.05  # default Tmall orders per person per day; the other platforms scale with it
PRODUCTS = [
    ("P1001", "保湿精华液 30ml", 199.0),
    ("P1002", "氨基酸洁面乳 120g", 89.0),
    ("P1003", "防晒霜 SPF50+ 50ml", 139.0),
    ("P1004", "玻尿酸面膜 10片装", 129.0),
    ("P1005", "修护眼霜 15g", 259.0),
    ("P1006", "旅行套装", 59.9),
]


class Written(NamedTuple):
    records: int  # records (lines, rows) written
    spoiled: int  # of them, damaged on purpose (the connector must quarantine each)


@dataclass(frozen=True)
class Sold:
    """An order a platform writer wrote today, for the writers that hang off it (Tmall items,
    refunds and reviews; the ERP's copy of marketplace orders)."""

    platform: str
    order_id: str
    buyer: Person | Account
    created: datetime
    paid: datetime | None
    status: str  # the export's status text
    lines: tuple[tuple[str, str, float, int], ...]  # (sku, title, unit price, quantity)
    payment: str  # as written
    refund: str
    receiver_name: str = ""
    receiver_phone: str = ""  # as written
    receiver_address: str = ""
    flags: tuple[str, ...] = ()  # the record's truth flags ("test", "fake", "resync", ...)


class OrderNumbers:
    """Order numbers unique across writers and days of one run."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


@dataclass
class Day:
    """One dataset's day: where to write, who exists, the day's random stream, the mess, truth."""

    out: Path
    day: date
    index: int  # day number in the run (0 = first)
    world: World
    seed: int
    rng: random.Random  # this dataset's own stream for the day
    bad_rate: float  # share of lines to damage
    mess: MessBook
    volume: float  # order-rate multiplier (orders_per_customer_day / TMALL_RATE)
    truth: TruthBook
    seq: OrderNumbers
    handoff: dict[str, list[Sold]]  # the day's orders by platform, for later writers
    stream: list[dict] = field(default_factory=list)  # real-time events (web/events/events.jsonl)

    def record(
        self,
        dataset: str,
        record_id: str,
        person_id: str,
        *,
        flags: Iterable[str] = (),
        ids: Iterable[tuple[str, object]] = (),
        evidence: Iterable[str] = (),
        receiver: str = "",
    ) -> None:
        """Ground truth of one written record (see `TruthBook.record`)."""
        self.truth.record(
            dataset, record_id, person_id, self.day,
            flags=flags, ids=ids, evidence=evidence, receiver=receiver,
        )  # fmt: skip

    def spoil(self) -> bool:
        """Whether to damage the next line (draws from the day's stream)."""
        return self.rng.random() < self.bad_rate

    # A line to write and the flags it adds to its record: ["spoiled"] when it is damaged the way
    # the connector must quarantine (on a `bad_rate` share of the spoilable lines: a `spoil()`
    # draw, made only for a spoilable line, then the draws of the `files` function that damages
    # it, all from the day's stream), else [].

    def csv_row(
        self,
        cells: dict,
        fields: list[str],
        *,
        amount: str,
        status: str,
        key: str,
        spoilable: bool = True,
    ) -> tuple[list, list[str]]:
        """(CSV row, flags): `cells` in column order (`fields`), maybe damaged by `spoil_row`
        in the fields named `amount`, `status` or `key`."""
        row = [cells[f] for f in fields]
        if not (spoilable and self.spoil()):
            return row, []
        at = fields.index
        return spoil_row(self.rng, row, at(amount), at(status), at(key)), ["spoiled"]

    def sheet_row(
        self, cells: dict, fields: list[str], *, key: str, amount: str, status: str, when: str
    ) -> tuple[list, list[str]]:
        """(spreadsheet row, flags): `cells` in column order, maybe damaged by
        `spoil_sheet_row` (its arguments name fields)."""
        row = [cells[f] for f in fields]
        if not self.spoil():
            return row, []
        index = {f: i for i, f in enumerate(fields)}
        damaged = spoil_sheet_row(
            self.rng, row, index, key=key, amount=amount, status=status, when=when
        )
        return damaged, ["spoiled"]

    def json_line(
        self, obj: dict, damage: dict | Callable[[], dict], *, spoilable: bool = True
    ) -> tuple[str, list[str]]:
        """(JSON line, flags): `obj` as one line, maybe damaged by `spoil_json` with the keyword
        arguments `damage`, or that `damage()` gives when they draw from the stream too (called
        only for a line to damage, after the `spoil()` draw)."""
        if not (spoilable and self.spoil()):
            return dumps_line(obj), []
        line, _kind = spoil_json(self.rng, obj, **(damage() if callable(damage) else damage))
        return line, ["spoiled"]

    def sold(self, platform: str) -> list[Sold]:
        return self.handoff.get(platform, [])


Writer = Callable[[Day], Written]


def stream_event(
    rng: random.Random, kind: str, buyer: Person | Account, ts: datetime, sku: str
) -> dict:
    """A real-time cart or payment event as the Tmall message service would push it: platform
    ids only (the buyer's open_uid under the brand's app key), never a truth id."""
    open_uid = buyer.tmall_open_uid()
    return {
        "event_id": f"e{rng.getrandbits(64):016x}",
        "event_type": kind,
        "platform": "tmall",
        "buyer_open_uid": open_uid,
        "customer_key": f"tmall:{open_uid}",
        "product_id": sku,
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
    }


@dataclass(frozen=True)
class DatasetTruth:
    """How truth finds a dataset's records and identifiers in the written files, read back
    through the ingestion spec (`parse_file`): what the world-consistency test checks.

    `record_id(values)` gives, from a parsed record's values (spec field -> value), the record_id
    the writer gave truth; `identifiers` maps spec fields that carry a full identifier (never a
    masked phone or a relay number) to their identifier_type; `receiver_fields` are those that
    name the receiver, who is another person on a gift."""

    record_id: Callable[[dict], str]
    identifiers: dict[str, str]
    receiver_fields: frozenset[str] = frozenset()


def field_id(name: str) -> Callable[[dict], str]:
    """A record id that is one field's value."""
    return lambda values: str(values.get(name) or "")


# Flags a record can carry in `_truth/records.csv` (writers use only these):
FLAGS = {
    "spoiled": "a damaged line the connector must quarantine",
    "test": "the shop's own 0-yuan test order (no customer behind it)",
    "fake": "a 刷单 order by a ring's account (its own person, never a real customer)",
    "resync": "an order exported again later with a new status",
    "late": "created days before the file's day",
    "name_typo": "a homophone or swapped characters in the name",
    "address_variant": "the address written another way",
    "junk_id": "a placeholder phone (13800138000, ...) instead of the person's",
    "fullwidth_phone": "full-width digits in the phone",
    "fullwidth_amount": "full-width digits in an amount",
    "household": "the person lives with another person of the world (one address)",
    "household_phone": "the household gives one phone (the first person's)",
    "family_tablet": "an event on the household's shared tablet",
    "recycled_number": "the person's number was someone else's before, or went to someone",
    "stale_phone": "the phone on the record is no longer the person's (never updated)",
    "namesake": "another, unrelated person has the same name and birthday",
    "gift": "the receiver is another person than the buyer",
    "clerk_phone": "the store clerk's counter phone typed instead of the customer's",
    "shared_tablet": "an event on a store's shared tablet",
}
