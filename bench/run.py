"""Benchmarks: each figure beside its baseline measured in the same run, reported as a ratio.

`make bench` (or `python -m bench.run --customers N --days D`) writes bench/results/<name>.json
and rewrites the table in docs/benchmarks.md. Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
MARK_BEGIN, MARK_END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _isolated(tmp: Path) -> None:
    os.environ.update(
        {
            "CDP_LAKE_ROOT": str(tmp / "lake"),
            "CDP_VAR_DIR": str(tmp / "var"),
            "CDP_LANDING_ROOT": str(tmp / "landing"),
            "CDP_EXPORTS_DIR": str(tmp / "exports"),
        }
    )
    os.environ.setdefault("CDP_PII_HMAC_KEY", "bench-only-key-0123456789abcdef0123456789")
    from jobs.common.settings import get_settings

    get_settings.cache_clear()


def bench_tmall_ingest(customers: int, days: int) -> dict:
    """Tmall order files -> bronze (parse, JSON Schema, quarantine, reconcile) vs a plain copy."""
    from jobs.common.settings import get_settings
    from jobs.common.spark import get_spark
    from jobs.ingest.bronze import ingest
    from jobs.ingest.simulate import simulate

    settings = get_settings()
    end = date(2026, 11, 22)
    world = simulate(
        Path(settings.landing_root),
        customers=customers,
        days=days,
        end=end,
        orders_per_customer_day=0.2,
    )
    spark = get_spark("cdp-bench")
    # Spark 4 reads GBK only with the legacy Java charsets switched on.
    spark.conf.set("spark.sql.legacy.javaCharsets", "true")
    days_ = [end - timedelta(days=offset) for offset in range(days)]
    files = sorted(str(p) for p in Path(settings.landing_root).glob("tmall/orders/dt=*/*.csv"))

    def ours() -> int:
        return sum(ingest("tmall.orders", d).rows_read for d in days_)

    def baseline() -> int:
        # A plain read and write of the same files: no validation, quarantine or reconciliation.
        total = 0
        for f in files:
            enc = "GBK" if Path(f).read_bytes()[:3] != b"\xef\xbb\xbf" else "UTF-8"
            df = spark.read.option("header", True).option("encoding", enc).csv(f)
            df.write.format("delta").mode("overwrite").save(f"{settings.lake_root}/_baseline")
            total += df.count()
        return total

    ours(), baseline()  # warm-up: JIT, Delta and Python workers; both paths are idempotent
    started = time.perf_counter()
    rows = ours()
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    total = baseline()
    baseline_s = time.perf_counter() - started
    return {
        "name": "tmall_orders_ingest",
        "what": f"{rows} Tmall order rows in {len(files)} CSV files (GBK/UTF-8) -> bronze Delta",
        "rows": rows,
        "orders_simulated": world.orders,
        "seconds": round(ours_s, 2),
        "rows_per_second": round(rows / ours_s),
        "baseline": "plain spark.read.csv -> Delta write of the same files",
        "baseline_seconds": round(baseline_s, 2),
        "baseline_rows_per_second": round(total / baseline_s),
        "ratio_to_baseline": round(ours_s / baseline_s, 2),
        "runs": "second (warm) pass of each; the first pass warms the JVM for both",
    }


def write_doc(results: list[dict]) -> None:
    lines = [
        MARK_BEGIN,
        "",
        "| benchmark | what | ours | baseline | time ratio (ours / baseline) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['what']} | {r['seconds']} s ({r['rows_per_second']:,} rows/s) "
            f"| {r['baseline']}: {r['baseline_seconds']} s "
            f"({r['baseline_rows_per_second']:,} rows/s) | {r['ratio_to_baseline']} |"
        )
    lines += [
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, "
        f"{os.cpu_count()} cores, local[*] Spark.",
        "",
        MARK_END,
    ]
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(MARK_BEGIN), text.index(MARK_END) + len(MARK_END)
    DOC.write_text(text[:start] + "\n".join(lines) + text[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    try:
        _isolated(tmp)
        results = [bench_tmall_ingest(args.customers, args.days)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for r in results:
        (RESULTS / f"{r['name']}.json").write_text(json.dumps(r, indent=2) + "\n")
        print(json.dumps(r, indent=2))
    write_doc(results)


if __name__ == "__main__":
    main()
