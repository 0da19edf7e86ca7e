"""The customer scores at the 1M-customer world, full and as a 1% daily delta, and the marts.

Made on the simulated world's silver and One-ID (the identity benchmark's work dir: `python -m
bench.run --only scores --workdir DIR` builds what is missing). A copy of the silver tables that
One-ID and the scores read loses 1% of every table's rows (new orders, lines, events, chats,
coupons, points, tier changes, members, ...; the rebuilt-whole WeCom and Official Account
states lose 1% of their rows too). One-ID and the scores run in full on the rest; the rows come
back as the next day's, One-ID takes its delta (not timed here: the identity_delta benchmark
times it) and the scores take theirs (timed). Beside it, in the same run, the scores of the
same final silver in full (the baseline), which must write the same tables, and dbt's build of
the marts on that day.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.figures import result

SHARE = 0.01
SEED = 12
SCORED = ("customer_features", "customer_rfm", "customer_ltv")


def _copy(settings, copy, names: set[str]) -> None:
    from jobs.common import lake

    for name in sorted(names):
        src = lake.table_path("silver", name, settings)
        if lake.is_delta(src):
            shutil.copytree(src, lake.table_path("silver", name, copy))
    shutil.copytree(
        lake.table_path("vault", "pii", settings), lake.table_path("vault", "pii", copy)
    )
    controls = lake.table_path("ops", "identity_controls", settings)  # the blocked tablets
    if lake.is_delta(controls):
        shutil.copytree(controls, lake.table_path("ops", "identity_controls", copy))


def _hold_out(copy, names: set[str], share: float) -> tuple[dict, int]:
    """Take `share` of every table's rows out (kept to come back as the next day's)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import write_deltalake

    from jobs.common import lake

    rng = np.random.default_rng(SEED)
    held, rows = {}, 0
    for name in sorted(names):
        path = lake.table_path("silver", name, copy)
        if not lake.is_delta(path):
            continue
        table = lake.read_arrow(path)
        out = pa.array(rng.random(table.num_rows) < share)
        held[name] = table.filter(out)
        rows += held[name].num_rows
        write_deltalake(path, table.filter(pc.invert(out)), mode="overwrite")
    return held, rows


def _put_back(copy, held: dict, day: date) -> None:
    """The held rows as the rows silver took on `day` (rebuilt states: updated now)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from jobs.common import lake

    now = datetime.now(UTC)
    for name, table in held.items():
        names = table.schema.names
        if "_logical_date" in names:
            i = names.index("_logical_date")
            table = table.set_column(i, "_logical_date", pa.array([day] * len(table), pa.date32()))
        elif "updated_at" in names:
            i = names.index("updated_at")
            column = pa.array([now] * len(table), table.schema.field(i).type)
            table = table.set_column(i, "updated_at", column)
        write_deltalake(lake.table_path("silver", name, copy), table, mode="append")


def _same(a, b) -> bool:
    key = lambda r: tuple(str(v) for v in r.values())  # noqa: E731
    return sorted(a.to_pylist(), key=key) == sorted(b.to_pylist(), key=key)


def bench_scores(days_: list[date], share: float = SHARE) -> dict:
    from jobs.common import lake
    from jobs.common.errors import CdpError
    from jobs.common.settings import get_settings
    from jobs.identity.registry import load_registry
    from jobs.identity.run import rule_tables, run_identity
    from jobs.marts.scores import INPUTS, score_customers
    from jobs.profiles.dbt_runner import build

    settings = get_settings()
    if not lake.is_delta(lake.table_path("silver", "customers", settings)):
        raise SystemExit("no One-ID yet: run the identity benchmark in this work dir first")
    scratch = Path(settings.var_dir) / "tmp" / "scores"
    shutil.rmtree(scratch, ignore_errors=True)
    copy = settings.model_copy(
        update={"lake_root": str(scratch / "lake"), "var_dir": str(scratch / "var")}
    )
    registry = load_registry(settings.identity.registry)
    names = set(rule_tables(registry, settings)) | set(INPUTS.values())
    _copy(settings, copy, names)
    held, rows = _hold_out(copy, names, share)
    day, next_day = days_[-1], days_[-1] + timedelta(days=1)

    run_identity(day, copy, mode="full")
    started = time.perf_counter()
    first = score_customers(day, day, copy, mode="full")
    first_full = time.perf_counter() - started
    _put_back(copy, held, next_day)
    run_identity(next_day, copy, mode="incremental")

    started = time.perf_counter()
    delta = score_customers(next_day, next_day, copy)
    ours = time.perf_counter() - started
    after_delta = {n: lake.read_arrow(lake.table_path("silver", n, copy)) for n in SCORED}
    started = time.perf_counter()
    try:  # the marts on the delta's day: dbt is not incremental yet, a full build each day
        build(as_of=next_day, settings=copy)
        dbt_failed = None
    except CdpError as exc:
        dbt_failed = str(exc)
    marts = time.perf_counter() - started

    started = time.perf_counter()
    full = score_customers(next_day, next_day, copy, mode="full", refit=False)
    floor = time.perf_counter() - started
    same = {
        n: _same(after_delta[n], lake.read_arrow(lake.table_path("silver", n, copy)))
        for n in SCORED
    }
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        **result(
            "scores_delta",
            f"features, RFM, LTV, stages and tags of {full['feature_customers']:,} customers: "
            f"a day's delta of {rows:,} new rows ({share:.0%} of every table One-ID and the "
            f"scores read) -> {delta['rescored_customers']:,} customers scored again",
            rows,
            ours,
            "a full run of the same silver with the same LTV fit",
            rows,
            floor,
            digits=3,
        ),
        "delta": delta,
        "full": full,
        "first_full_seconds": round(first_full, 2),
        "first_full": first,
        "dbt_build_seconds": round(marts, 2),
        "dbt_failed": dbt_failed,
        "delta_equals_full": same,
        "runs": "one pass each; One-ID's delta before the scores' is not timed here",
    }
