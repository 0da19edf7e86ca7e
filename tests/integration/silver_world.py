"""One simulated world processed once per test run: landing -> bronze -> silver -> gold.

Integration tests of silver (and later One-ID and customer 360) share it, so `make test` pays for
one world, not one per test. The world has the simulator's usual mess (bad lines, re-syncs, late
records, test orders, 刷单 rings, gifts, households) and canary contact details planted into its
first day and into a brand's member list imported on the second
(tests/fixtures/canaries.py). Each day runs the daily steps in this process, as
`cdp run daily` does: ingest, the bronze gate, silver, One-ID, the scores; the last day also
publishes the marts.

Loaded by tests/conftest.py as a plugin, like the Kafka broker. Tests get the world's Settings
and must pass them explicitly (the session's environment is restored after the build).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs.common.settings import Settings, get_settings

END = date(2026, 3, 12)
DAYS = 3
CUSTOMERS = 600
SEED = 11


@dataclass(frozen=True)
class SilverWorld:
    settings: Settings
    landing: Path
    days: tuple[date, ...]
    results: dict  # day -> build_silver's result
    planted: dict  # dataset -> file the canaries went into
    scores: dict  # day -> score_customers' result


@pytest.fixture(scope="session")
def silver_world(tmp_path_factory: pytest.TempPathFactory, spark) -> SilverWorld:
    from jobs import daily
    from jobs.identity.controls import add_blocks, read_block_file
    from jobs.ingest import importer
    from jobs.simulator import simulate
    from jobs.simulator.run import STORE_DEVICES
    from tests.conftest import _lake_env
    from tests.fixtures import canaries

    root = tmp_path_factory.mktemp("silver-world")
    mp = pytest.MonkeyPatch()
    for k, v in _lake_env(root).items():
        mp.setenv(k, v)
    get_settings.cache_clear()
    settings = get_settings()
    try:
        landing = Path(settings.landing_root)
        simulate(landing, customers=CUSTOMERS, days=DAYS, seed=SEED, end=END)
        # The brand's register of its store tablets, as the demo applies it.
        add_blocks(read_block_file(landing / STORE_DEVICES), settings)
        days = tuple(END - timedelta(days=DAYS - 1 - i) for i in range(DAYS))
        planted = canaries.plant(landing, days[0])
        members = canaries.member_list(root)
        spec = importer.build_spec(
            canaries.MEMBER_LIST_MAPPING, source="brand_crm", dataset="customers", fmt="csv"
        )
        planted["import.customers"] = str(members)
        results, scores = {}, {}
        for day in days:
            if day == days[1]:  # a brand imports its member list on the second day
                importer.run_import(members, spec, day, settings=settings)
            daily.ingest(day, settings)
            daily.check_bronze(day, settings)
            results[day] = daily.build_silver(day, settings)
            daily.resolve_identity(day, settings)
            # scored every day, as cdp_daily does: the first in full, then the day's deltas
            scores[day] = daily.score_customers(day, settings)
        daily.publish_marts(days[-1], settings)
    finally:
        mp.undo()
        get_settings.cache_clear()
    return SilverWorld(settings, landing, days, results, planted, scores)
