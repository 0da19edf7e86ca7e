"""Segment export and one customer's 360 at 1M customers, each beside its floor.

The lake is made directly in the shapes the daily batch publishes (gold.customer_360 sorted by
one_id in ranged files, as dbt writes it; silver.identity_map; silver.consent_state; the PII
vault's phones), not by the simulator: these two paths read only those tables, and making them
takes seconds where the simulated world takes an hour and a half.

- segment_export: a segment of every customer, exported in full as CSV (consent per purpose,
  hashed phones, unionid, openid, external_userid, diff, manifest, membership kept); the
  floor is DuckDB selecting the segment's one_ids from the same Delta table into one CSV.
- customer_360_lookup: `jobs.marts.profile.customer_360` (delta-rs reads the one file whose
  statistics can hold the id); the floor is what `cdp query` does, DuckDB over the table's
  Arrow dataset, which scans every file. Median of 20 lookups of random customers each.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, date, datetime
from pathlib import Path

FILES = 8  # ranged files, as a Spark sort writes one per shuffle partition
LOOKUPS = 20


def _one_ids(customers: int) -> list[str]:
    return [f"c{i:08d}" for i in range(customers)]


def make_lake(lake_root: Path, customers: int, seed: int = 7) -> None:
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    rng = np.random.default_rng(seed)
    ids = _one_ids(customers)
    n = customers
    paid = rng.poisson(1.5, n)
    amount = np.round(rng.lognormal(5.0, 1.0, n) * (paid > 0), 2)
    stages = np.array(["new", "active", "at_risk", "dormant", "lost", "prospect"])
    tag_pool = ["repeat_buyer", "high_value", "active_30d", "dormant_90d", "guide_owned"]
    tags = [[t for t in tag_pool if rng.random() < 0.3] for _ in range(n)]
    segments = np.array(["Champions", "Loyal Customers", "At Risk", "Lost", "Hibernating"])
    mart = pa.table(
        {
            "one_id": ids,
            "phone_token": [f"tok{i:08d}" for i in range(n)],
            "member_card": [f"m{i}" if i % 3 == 0 else None for i in range(n)],
            "orders_count": paid + rng.poisson(0.2, n),
            "paid_orders_count": paid,
            "total_amount": amount,
            "avg_order_amount": np.where(paid > 0, amount / np.maximum(paid, 1), 0.0),
            "days_since_last_order": rng.integers(0, 720, n),
            "refund_rate": rng.random(n),
            "top_category": rng.choice(["美妆", "护肤", "彩妆", "香水"], n),
            "sessions_30d": rng.poisson(2, n),
            "is_wecom_friend": rng.random(n) < 0.2,
            "member_tier": rng.choice(["普通", "银卡", "金卡"], n),
            "points_balance": rng.integers(0, 5000, n),
            "lifecycle_stage": rng.choice(stages, n),
            "tags": pa.array(tags, pa.list_(pa.string())),
            "r_score": rng.integers(1, 6, n),
            "f_score": rng.integers(1, 6, n),
            "m_score": rng.integers(1, 6, n),
            "rfm_segment": rng.choice(segments, n),
            "p_alive": rng.random(n),
            "clv_12m": np.round(rng.lognormal(4.0, 1.0, n), 2),
        }
    )
    gold = str(lake_root / "gold" / "customer_360")
    step = -(-n // FILES)
    for start in range(0, n, step):  # one sorted range per file
        write_deltalake(gold, mart.slice(start, step), mode="append")

    # One-ID's map: a phone for 90%, unionid 50%, openid 60%, external_userid 20%.
    rows: dict[str, list] = {"one_id": [], "identifier_type": [], "identifier": [], "namespace": []}
    for kind, share, namespace in (
        ("phone", 0.9, None),
        ("wechat_unionid", 0.5, None),
        ("wechat_openid", 0.6, "wxapp"),
        ("wecom_external_userid", 0.2, "corp"),
    ):
        chosen = np.flatnonzero(rng.random(n) < share)
        rows["one_id"] += [ids[i] for i in chosen]
        rows["identifier_type"] += [kind] * len(chosen)
        rows["identifier"] += [
            f"tok{i:08d}" if kind == "phone" else f"{kind[:2]}{i:08d}" for i in chosen
        ]
        rows["namespace"] += [namespace] * len(chosen)
    write_deltalake(str(lake_root / "silver" / "identity_map"), pa.table(rows))
    phones = [t for t, k in zip(rows["identifier"], rows["identifier_type"], strict=True)
              if k == "phone"]  # fmt: skip
    write_deltalake(
        str(lake_root / "vault" / "pii"),
        pa.table(
            {
                "kind": ["phone"] * len(phones),
                "token": phones,
                "value": [f"+86139{int(t[3:]):08d}" for t in phones],
            }
        ),
    )
    # The ledger: 70% of phones granted SMS marketing, 5% withdrew.
    decided = rng.random(len(phones))
    keep = decided < 0.75
    at = datetime(2026, 1, 1, tzinfo=UTC)
    write_deltalake(
        str(lake_root / "silver" / "consent_state"),
        pa.table(
            {
                "subject_type": ["phone_token"] * int(keep.sum()),
                "subject_id": [p for p, k in zip(phones, keep, strict=True) if k],
                "purpose": ["marketing_sms"] * int(keep.sum()),
                "granted": decided[keep] < 0.70,
                "last_event_at": pa.array([at] * int(keep.sum()), pa.timestamp("us", tz="UTC")),
            }
        ),
    )


def bench_segment_export(settings, as_of: date, customers: int) -> dict:
    import duckdb
    import pyarrow.csv as pcsv
    from deltalake import DeltaTable

    from bench.figures import result as _result
    from jobs.common import lake
    from jobs.segments.definitions import get_segment
    from jobs.segments.export import export_segment

    # Every customer: a 1M-customer segment, cut down by consent only.
    definitions = Path(settings.var_dir) / "segments.yaml"
    definitions.write_text(
        "segments:\n  everyone: {purpose: marketing_sms, where: 'true'}\n", encoding="utf-8"
    )
    segment = get_segment("everyone", definitions)
    started = time.perf_counter()
    con = duckdb.connect()
    mart = DeltaTable(lake.table_path("gold", "customer_360", settings)).to_pyarrow_dataset()
    con.register("mart", mart)
    floor = con.sql(f"select one_id from mart where {segment.where}").to_arrow_table()
    pcsv.write_csv(floor, Path(settings.var_dir) / "floor.csv")
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    result = export_segment("everyone", as_of, settings, definitions=definitions)
    ours = time.perf_counter() - started
    r = _result(
        "segment_export",
        f"a segment of all {customers:,} customers exported in full: consent per purpose, hashed "
        "phones, unionid, openid, external_userid, diff, manifest, membership kept",
        result.rows,
        ours,
        "DuckDB: the segment's one_ids to one CSV",
        floor.num_rows,
        baseline,
    )
    r["members"], r["no_consent"] = result.members, result.no_consent
    return r


def bench_lookup(settings, customers: int) -> dict:
    import duckdb
    from deltalake import DeltaTable

    from bench.figures import result as _result
    from jobs.common import lake
    from jobs.marts.profile import customer_360

    picks = random.Random(3).sample(_one_ids(customers), LOOKUPS)
    path = lake.table_path("gold", "customer_360", settings)
    customer_360(picks[0], settings)  # warm: the log read once, as a serving process would
    ours = []
    for one_id in picks:
        started = time.perf_counter()
        customer_360(one_id, settings)
        ours.append(time.perf_counter() - started)
    con = duckdb.connect()
    con.register("mart", DeltaTable(path).to_pyarrow_dataset())
    floor = []
    for one_id in picks:
        started = time.perf_counter()
        con.execute("select * from mart where one_id = ?", [one_id]).fetchall()
        floor.append(time.perf_counter() - started)
    r = _result(
        "customer_360_lookup",
        f"one customer's 360 and segments without Spark (median of {LOOKUPS} lookups, "
        f"{customers:,} customers)",
        1,
        statistics.median(ours),
        "DuckDB over the table's Arrow dataset (cdp query)",
        1,
        statistics.median(floor),
    )
    r["milliseconds"] = round(statistics.median(ours) * 1000, 1)
    r["baseline_milliseconds"] = round(statistics.median(floor) * 1000, 1)
    return r


def bench_segments(customers: int, tmp: Path) -> list[dict]:
    from jobs.common.settings import get_settings

    settings = get_settings()
    started = time.perf_counter()
    make_lake(Path(settings.lake_root), customers)
    print(f"made a {customers:,}-customer lake in {time.perf_counter() - started:.1f} s")
    Path(settings.var_dir).mkdir(parents=True, exist_ok=True)
    return [
        bench_segment_export(settings, date(2026, 11, 22), customers),
        bench_lookup(settings, customers),
    ]
