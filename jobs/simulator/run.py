"""`simulate`: write a simulated world's landing files, day by day, with its ground truth.

Deterministic for a seed, and bounded in memory so the benchmark world (1M people) runs on a
laptop: people are rebuilt from their index on demand (`World`), a day's actors are drawn per
platform, every file is streamed as it is produced, and truth is labelled at the end by DuckDB.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from jobs.common.progress import step, track
from jobs.simulator import (
    events,
    loyalty,
    marketplace,
    members,
    stores,
    tmall_details,
    wechat,
    wecom,
    youzan,
)
from jobs.simulator.context import (
    PRODUCTS,
    TMALL_RATE,
    DatasetTruth,
    Day,
    OrderNumbers,
    Writer,
    stream_event,
)
from jobs.simulator.files import day_start, dumps_line
from jobs.simulator.mess import Mess, MessBook
from jobs.simulator.truth import TruthBook, TruthStats
from jobs.simulator.world import STORES, World

# Every dataset, in the order a day is written: later writers read earlier ones' handoff (the
# Tmall details and the ERP hang off the day's Tmall orders; tier changes follow points).
SKUS = [sku for sku, _title, _price in PRODUCTS]
MODULES = (marketplace, youzan, wechat, stores, tmall_details, loyalty, members, events, wecom)


def writers() -> dict[str, Writer]:
    """Every dataset's writer by `source.dataset`, in run order."""
    out: dict[str, Writer] = {}
    for module in MODULES:
        out.update(module.WRITERS)
    return out


def datasets() -> dict[str, DatasetTruth]:
    """How truth finds each dataset's records and identifiers in the written files."""
    out: dict[str, DatasetTruth] = {}
    for module in MODULES:
        out.update(getattr(module, "TRUTH", {}))
    return out


@dataclass(frozen=True)
class SimulationSummary:
    out: Path
    customers: int
    days: int
    start: date
    end: date
    files: int
    records: dict[str, int]  # source dataset key ("tmall.orders", ...) -> records written
    bad_lines: int
    events: int  # the streaming job's cart/pay events (web/events/events.jsonl)
    flags: dict[str, int] = field(default_factory=dict)  # mess class -> records flagged in truth
    truth: TruthStats | None = None

    @property
    def orders(self) -> int:
        return sum(n for key, n in self.records.items() if key.endswith(".orders"))


STORE_DEVICES = Path("_brand") / "store_devices.csv"


def write_store_devices(out: Path, world: World) -> Path:
    """The brand's own register of its in-store tablets (master data, like its store list, not
    truth): `identifier_type,identifier,reason`, the shape `cdp identity block --file` reads, so
    One-ID never takes a kiosk that every visitor browses on for one of them."""
    import csv

    path = Path(out) / STORE_DEVICES
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["identifier_type", "identifier", "reason"])
        for store in STORES:
            for sdk in ("app", "miniprogram"):
                writer.writerow(
                    ["device_id", world.tablet_device(store, sdk), f"store tablet {store.store_id}"]
                )
    return path


def simulate(
    out: Path,
    *,
    customers: int = 1000,
    days: int = 3,
    seed: int = 7,
    end: date | None = None,
    bad_rate: float = 0.01,
    orders_per_customer_day: float = TMALL_RATE,
    mess: Mess | None = None,
    only: set[str] | None = None,
    progress: bool = False,
) -> SimulationSummary:
    """Write `days` days ending `end` of a world of `customers` people under `out`.

    `only` limits the datasets written (a benchmark of one format); writers that hang off
    another's orders run only with it. `orders_per_customer_day` is the Tmall rate; every other
    platform keeps its ratio to it (at the default 0.05 the order platforms together make ~0.145
    orders per person-day; 0.0095 gives ~10 orders per person per year). `mess=None` uses the
    demo's `Mess()` rates. `progress` shows a bar per day and the truth step (the CLI's).
    """
    out = Path(out)
    mess = Mess() if mess is None else mess
    registry = writers()
    if only is not None and not only <= set(registry):
        raise ValueError(
            f"unknown dataset(s) {sorted(only - set(registry))}: not in {sorted(registry)}"
        )
    end = end or (date.today() - timedelta(days=1))
    start = end - timedelta(days=days - 1)
    world = World(customers, seed, end, household_share=mess.household_rate)
    book = MessBook(mess, seed)
    truth = TruthBook(out, world)
    seq = OrderNumbers()
    volume = orders_per_customer_day / TMALL_RATE
    files = bad = n_events = 0
    records: dict[str, int] = {}
    ev_dir = out / "web" / "events"
    ev_dir.mkdir(parents=True, exist_ok=True)
    with (ev_dir / "events.jsonl").open("w", encoding="utf-8") as events_fh:
        offsets = track(range(days), "simulate days") if progress else range(days)
        for offset in offsets:
            day = start + timedelta(days=offset)
            book.day_index = offset
            handoff: dict = {}
            stream: list[dict] = []
            for key, writer in registry.items():
                if only is not None and key not in only:
                    continue
                # One random stream per dataset and day: adding a dataset never changes the others.
                ctx = Day(
                    out=out, day=day, index=offset, world=world, seed=seed,
                    rng=random.Random(f"{seed}:{key}:{day}"), bad_rate=bad_rate, mess=book,
                    volume=volume, truth=truth, seq=seq, handoff=handoff, stream=stream,
                )  # fmt: skip
                written = writer(ctx)
                records[key] = records.get(key, 0) + written.records
                bad += written.spoiled
                files += 1
            # Carts never paid for: the streaming job's cart-abandonment trigger.
            rng = random.Random(f"{seed}:stream:{day}")
            for person in world.users("tmall", rng, 0.02):
                ts = day_start(day) + timedelta(seconds=rng.randrange(86_400))
                sku = rng.choice(SKUS)
                stream.append(stream_event(rng, "add_to_cart", person, ts, sku))
            stream.sort(key=lambda e: e["ts"])
            events_fh.writelines(dumps_line(e) + "\n" for e in stream)
            n_events += len(stream)
    write_store_devices(out, world)
    with step("ground truth: identifiers, consent, labels") if progress else nullcontext():
        stats = truth.close()
    return SimulationSummary(
        out, customers, days, start, end, files, records, bad, n_events, stats.flags, stats
    )
