"""Benchmarks: each figure beside its baseline measured in the same run, reported as a ratio.

`make bench` (or `python -m bench.run --customers N --days D`) writes bench/results/<name>.json
and rewrites the table in docs/benchmarks.md. Timings never go into tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.figures import result as _result

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


GROUPS = {
    "orders": (
        "tmall.orders",
        "tmall.trades",
        "jd.orders",
        "douyin.orders",
        "pdd.orders",
        "youzan.orders",
    ),
    "events": ("web.events", "app.events", "miniprogram.events"),
}
TMALL_RATE_10_PER_YEAR = 0.0095  # ~10 orders per customer per year across the platforms


def simulate_world(customers: int, days: int, end: date, *, every_source: bool = False) -> dict:
    from jobs.common.settings import get_settings
    from jobs.simulator import simulate

    started = time.perf_counter()
    keys = {k for group in GROUPS.values() for k in group}
    world = simulate(
        Path(get_settings().landing_root),
        customers=customers,
        days=days,
        end=end,
        orders_per_customer_day=TMALL_RATE_10_PER_YEAR,
        only=None if every_source else keys,
    )
    return {"seconds": round(time.perf_counter() - started, 1), "records": world.records}


def bench_ingest(group: str, days_: list[date]) -> dict:
    """Landing files -> bronze (parse, JSON Schema, quarantine, manifest, reconcile; delta-rs)
    against the floor: the same files read by Spark and written to Delta, nothing checked."""
    from jobs.common.settings import get_settings
    from jobs.common.spark import get_spark
    from jobs.ingest.bronze import ingest
    from jobs.ingest.landing import list_files
    from jobs.ingest.spec import get_spec

    settings = get_settings()
    specs = [get_spec(k) for k in GROUPS[group]]
    files = [(spec, f) for spec in specs for d in days_ for f in list_files(spec, d, settings)]
    spark = get_spark("cdp-bench")
    spark.conf.set("spark.sql.legacy.javaCharsets", "true")  # Spark 4 reads GBK only so

    def ours() -> int:
        return sum(ingest(spec.key, d).rows_read for spec in specs for d in days_)

    def baseline() -> int:
        total = 0
        for spec, f in files:
            if spec.format == "csv":
                enc = "UTF-8" if f.read_bytes()[:3] == b"\xef\xbb\xbf" else "GBK"
                if enc == "GBK":
                    try:
                        f.read_bytes().decode("utf-8")
                        enc = "UTF-8"
                    except UnicodeDecodeError:
                        pass
                df = spark.read.option("header", True).option("encoding", enc).csv(str(f))
            else:
                df = spark.read.json(str(f))  # schema inferred, as a plain read would
            # Delta refuses some characters in column names (export headers have brackets).
            df = df.toDF(*[re.sub(r"[ ,;{}()\n\t=]", "_", c) for c in df.columns])
            df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
                f"{settings.lake_root}/_baseline"
            )
            total += spark.read.format("delta").load(f"{settings.lake_root}/_baseline").count()
        return total

    baseline()  # warm the JVM, Delta and the file cache for the floor
    started = time.perf_counter()
    rows = ours()
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    floor_rows = baseline()
    baseline_s = time.perf_counter() - started
    formats = sorted({spec.format for spec in specs})
    return {
        **_result(
            f"{group}_ingest",
            f"{rows:,} {group} lines of {len(specs)} sources ({'/'.join(formats)}), "
            f"{len(days_)} days, {len(files)} files -> bronze Delta",
            rows,
            ours_s,
            "plain Spark read -> Delta write of the same files",
            floor_rows,
            baseline_s,
        ),
        "runs": "one pass each after a warm-up of the baseline; ours never starts Spark",
    }


def prepare_bronze(days_: list[date]) -> None:
    """Bronze of every source for the silver benchmark (not timed; once per kept work dir)."""
    from jobs.common.settings import get_settings
    from jobs.ingest.bronze import ingest
    from jobs.ingest.spec import load_specs

    ingested = Path(get_settings().lake_root) / ".bench-bronze-complete"
    if ingested.exists():
        return
    for key in sorted(load_specs()):
        for d in days_:
            started = time.perf_counter()
            result = ingest(key, d)
            seconds = time.perf_counter() - started
            print(f"bronze {key} {d}: {result.rows_read:,} lines, {seconds:.0f} s", flush=True)
    ingested.touch()


def bench_silver(days_: list[date]) -> dict:
    """Every silver table built from bronze, day by day from an empty silver layer (full) and
    the last day's increment on top of it, against the floor: Spark reads the same bronze rows
    of each day and writes them to Delta, transforming and checking nothing."""
    from jobs import daily
    from jobs.common import lake
    from jobs.common.settings import get_settings
    from jobs.common.spark import get_spark

    settings = get_settings()
    prepare_bronze(days_)
    for layer in ("silver", "vault", "_baseline"):  # a kept work dir starts from empty silver
        shutil.rmtree(Path(settings.lake_root) / layer, ignore_errors=True)
    bronze = [(n, p) for layer, n, p in lake.list_tables(settings) if layer == "bronze"]
    spark = get_spark("cdp-bench")

    def baseline(days: list[date]) -> int:
        total = 0
        for name, path in bronze:
            df = spark.read.format("delta").load(path).where(f"_logical_date in {_in(days)}")
            out = f"{settings.lake_root}/_baseline/{name}"
            df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(out)
            total += spark.read.format("delta").load(out).count()
        return total

    baseline(days_[:1])  # warm the JVM and Delta for the floor
    timings = {}
    started = time.perf_counter()
    per_day = {}
    for d in days_:
        day_started = time.perf_counter()
        built = daily.build_silver(d, settings)
        per_day[str(d)] = {
            "seconds": round(time.perf_counter() - day_started, 2),
            "tables": {k: v.get("seconds") for k, v in built["tables"].items()},
        }
    timings["full"] = time.perf_counter() - started
    rows = sum(_rows(p) for layer, _, p in lake.list_tables(settings) if layer == "silver")
    started = time.perf_counter()
    daily.build_silver(days_[-1], settings)
    timings["increment"] = time.perf_counter() - started
    started = time.perf_counter()
    base_rows = baseline(days_)
    base_full = time.perf_counter() - started
    started = time.perf_counter()
    baseline(days_[-1:])
    base_increment = time.perf_counter() - started
    return {
        **_result(
            "silver_build",
            f"every silver table from the bronze of {len(bronze)} datasets, {len(days_)} days "
            f"({rows:,} silver rows); increment = the last day again on top",
            base_rows,
            timings["full"],
            "plain Spark read of the same bronze rows -> Delta write",
            base_rows,
            base_full,
        ),
        "increment_seconds": round(timings["increment"], 2),
        "baseline_increment_seconds": round(base_increment, 2),
        "increment_ratio_to_baseline": round(timings["increment"] / base_increment, 2),
        "per_day": per_day,
        "runs": "one pass each; the floor after a warm-up; rows/s counts bronze rows read",
    }


DISTRIBUTED_TIMEOUT_S = 1800  # the distributed baseline is stopped there, and says so


def bench_identity(days_: list[date], distributed_timeout: float = DISTRIBUTED_TIMEOUT_S) -> dict:
    """One-ID over every silver table of the world (a full run from no identity tables), beside,
    in the same run, the single-machine floor (scipy's connected components of the same
    record-identifier edges, numbered by DuckDB, in memory) and the distributed algorithm
    GraphFrames uses (large-star / small-star, here in plain Spark: the GraphFrames jar for
    Spark 4 is not served by Maven Central) on the same edges."""
    from jobs.common import lake
    from jobs.common.settings import get_settings
    from jobs.common.spark import get_spark
    from jobs.identity import graph
    from jobs.identity.components import components_distributed
    from jobs.identity.controls import add_blocks, read_block_file
    from jobs.identity.engine import DuckEngine
    from jobs.identity.registry import load_registry
    from jobs.identity.run import TABLES, rule_columns, rule_tables, run_identity
    from jobs.simulator.run import STORE_DEVICES

    settings = get_settings()
    if not lake.is_delta(lake.table_path("silver", "orders", settings)):
        from jobs import daily

        prepare_bronze(days_)
        for d in days_:
            daily.build_silver(d, settings)
    devices = Path(settings.landing_root) / STORE_DEVICES
    if devices.is_file():
        add_blocks(read_block_file(devices), settings)
    for name in TABLES:  # a full run: no earlier identity
        shutil.rmtree(lake.table_path("silver", name, settings), ignore_errors=True)
    started = time.perf_counter()
    result = run_identity(days_[-1], settings)
    ours = time.perf_counter() - started

    registry = load_registry(settings.identity.registry)
    paths = rule_tables(registry, settings)
    engine = DuckEngine()
    for name, path in paths.items():
        engine.register(
            f"t_{name}", lake.read_arrow(path, columns=rule_columns(registry, name, path))
        )
    graph.extract(engine, registry, set(paths))
    engine.run(
        "bench_edges",
        "select distinct rule || chr(31) || record_key as sig, "
        "identifier_type || chr(31) || identifier as node from occ",
    )
    n_edges = engine.count("bench_edges")
    started = time.perf_counter()
    engine.components("bench_edges", "bench_labels")
    floor = time.perf_counter() - started
    floor_components = engine.rows("select count(distinct component) from bench_labels")[0][0]

    spark = get_spark("cdp-bench")
    edges_file = Path(settings.var_dir) / "tmp" / "bench_edges.parquet"
    engine.con.execute(f"copy bench_edges to '{edges_file}' (format parquet)")
    frame = (
        spark.read.parquet(str(edges_file))
        .withColumnRenamed("sig", "src")
        .withColumnRenamed("node", "dst")
    )
    import threading

    stop = threading.Timer(distributed_timeout, spark.sparkContext.cancelAllJobs)
    stop.start()
    started = time.perf_counter()
    try:
        labels = components_distributed(frame)
        distributed_components = labels.select("component").distinct().count()
        distributed = time.perf_counter() - started
    except Exception:  # cancelled at the timeout: the baseline did not finish
        distributed_components, distributed = None, None
    finally:
        stop.cancel()
    return {
        **_result(
            "identity",
            f"One-ID over every silver table: {result['occurrences']:,} identifier occurrences, "
            f"{n_edges:,} record-identifier edges -> {result['profiles']:,} profiles "
            f"({result['engine']} engine; a full run)",
            n_edges,
            ours,
            "scipy connected components of the same edges, in memory",
            n_edges,
            floor,
        ),
        "distributed_baseline": "large-star/small-star in Spark (GraphFrames' algorithm)",
        "distributed_seconds": round(distributed, 2) if distributed else None,
        "distributed_timeout_seconds": distributed_timeout,
        "ratio_to_distributed": round(ours / distributed, 2) if distributed else None,
        "components": {"floor": floor_components, "distributed": distributed_components},
        "runs": "one pass each; the floor and the distributed baseline count only the components",
    }


DELTA_SHARE = 0.01  # the daily delta: this share of every rule table's rows
DELTA_SEED = 11


def bench_identity_delta(days_: list[date], share: float = DELTA_SHARE) -> dict:
    """One-ID's daily delta: a copy of the world's silver without `share` of every identity
    rule table's rows (new members, orders, events, ...) is resolved in full; the rows come
    back as the next day's, and the delta run resolves them. Beside it, in the same run, a full
    run of the same final silver with the same matching models (what the delta saves), whose
    profiles the delta must equal; and the first full run (with training) for reference."""
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    from jobs.common import lake
    from jobs.common.settings import get_settings
    from jobs.identity import incremental
    from jobs.identity.controls import add_blocks, read_block_file
    from jobs.identity.registry import load_registry
    from jobs.identity.run import rule_tables, run_identity
    from jobs.simulator.run import STORE_DEVICES

    settings = get_settings()
    if not lake.is_delta(lake.table_path("silver", "orders", settings)):
        raise SystemExit("no silver yet: run the identity benchmark first")
    scratch = Path(settings.var_dir) / "tmp" / "identity-delta"
    shutil.rmtree(scratch, ignore_errors=True)
    copy = settings.model_copy(update={"lake_root": str(scratch / "lake")})
    registry = load_registry(settings.identity.registry)
    paths = rule_tables(registry, settings)
    for name in paths:
        shutil.copytree(
            lake.table_path("silver", name, settings), lake.table_path("silver", name, copy)
        )
    shutil.copytree(
        lake.table_path("vault", "pii", settings), lake.table_path("vault", "pii", copy)
    )
    devices = Path(settings.landing_root) / STORE_DEVICES
    if devices.is_file():
        add_blocks(read_block_file(devices), copy)
    rng = np.random.default_rng(DELTA_SEED)
    held, rows = {}, 0
    for name in paths:
        path = lake.table_path("silver", name, copy)
        table = lake.read_arrow(path)
        out = pa.array(rng.random(table.num_rows) < share)
        held[name] = table.filter(out)
        rows += held[name].num_rows
        write_deltalake(path, table.filter(pa.compute.invert(out)), mode="overwrite")
    day, next_day = days_[-1], days_[-1] + timedelta(days=1)
    started = time.perf_counter()
    first = run_identity(day, copy, mode="full")
    full_trained = time.perf_counter() - started
    for name, table in held.items():
        index = table.schema.get_field_index("_logical_date")
        table = table.set_column(
            index, "_logical_date", pa.array([next_day] * table.num_rows, pa.date32())
        )
        write_deltalake(lake.table_path("silver", name, copy), table, mode="append")
    started = time.perf_counter()
    delta = run_identity(next_day, copy, mode="incremental")
    ours = time.perf_counter() - started
    after_delta = lake.read_arrow(lake.table_path("silver", "identity_map", copy))
    started = time.perf_counter()
    full = run_identity(next_day, copy, mode="full", retrain=False)
    floor = time.perf_counter() - started
    regrouped = incremental.partition_diff(
        after_delta, lake.read_arrow(lake.table_path("silver", "identity_map", copy))
    )
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        **_result(
            "identity_delta",
            f"One-ID's daily delta: {rows:,} new rows ({share:.0%} of every identity rule "
            f"table) -> {delta['changed_records']:,} changed records, "
            f"{delta['closure_records']:,} re-resolved, of {full['occurrences']:,} occurrences",
            rows,
            ours,
            "a full run of the same silver with the same matching models",
            rows,
            floor,
            digits=3,
        ),
        "full_run_with_training_seconds": round(full_trained, 2),
        "delta": {k: v for k, v in delta.items() if k != "changes"},
        "full_changes_after_delta": full["changes"],
        "regrouped_against_full": regrouped,
        "first_full_profiles": first["profiles"],
        "runs": "one pass each",
    }


def ours_s(r: dict) -> float:
    """Our time over the distributed baseline's timeout: an upper bound of the ratio."""
    return round(r["seconds"] / r["distributed_timeout_seconds"], 2)


def _rows(path: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(path).to_pyarrow_dataset().count_rows()


def _in(days: list[date]) -> str:
    return "(" + ", ".join(f"date'{d}'" for d in days) + ")"


def write_doc(results: list[dict]) -> None:
    lines = [
        MARK_BEGIN,
        "",
        "| benchmark | what | ours | baseline | time ratio (ours / baseline) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        ours = f"{r['seconds']} s ({r['rows_per_second']:,} rows/s)"
        floor = (
            f"{r['baseline']}: {r['baseline_seconds']} s ({r['baseline_rows_per_second']:,} rows/s)"
        )
        ratio = f"{r['ratio_to_baseline']}"
        if "distributed_seconds" in r:
            took = r["distributed_seconds"]
            took = f"{took} s" if took else f"not done in {r['distributed_timeout_seconds']:.0f} s"
            floor += f"; {r['distributed_baseline']}: {took}"
            to = r["ratio_to_distributed"] or f"< {ours_s(r)}"
            ratio += f" (to the distributed baseline {to})"
        if "increment_seconds" in r:
            ours += f"; one day's increment {r['increment_seconds']} s"
            floor += f"; one day {r['baseline_increment_seconds']} s"
            ratio += f" (increment {r['increment_ratio_to_baseline']})"
        lines.append(f"| {r['name']} | {r['what']} | {ours} | {floor} | {ratio} |")
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
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument(
        "--only",
        choices=["ingest", "silver", "identity", "identity_delta", "scores", "segments"],
        help="one kind of benchmark (default: all)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the world here and reuse what an earlier run left (landing, bronze)",
    )
    parser.add_argument(
        "--prepare", action="store_true", help="only simulate the world and land its bronze"
    )
    parser.add_argument(
        "--distributed-timeout",
        type=float,
        default=DISTRIBUTED_TIMEOUT_S,
        help="seconds the identity benchmark's distributed baseline may take",
    )
    args = parser.parse_args()
    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    end = date(2026, 11, 22)
    days_ = [end - timedelta(days=offset) for offset in range(args.days)][::-1]
    try:
        _isolated(tmp)
        if args.only == "segments":  # a lake in the published shapes, no simulated world
            from bench.segments import bench_segments

            results = bench_segments(args.customers, tmp)
            for r in results:
                r["world"] = {"customers": args.customers, "made": "bench/segments.py"}
            return _report(results)
        silver = args.only in (None, "silver", "identity", "identity_delta", "scores")
        silver = silver or args.prepare
        world = _world(tmp, args.customers, args.days, end, every_source=silver)
        print(f"simulated {args.customers:,} customers x {args.days} days in {world['seconds']} s")
        if args.prepare:
            prepare_bronze(days_)
            return
        results = [bench_ingest(g, days_) for g in GROUPS] if args.only in (None, "ingest") else []
        if args.only in (None, "silver"):
            results.append(bench_silver(days_))
        if args.only in (None, "identity"):
            results.append(bench_identity(days_, args.distributed_timeout))
        if args.only in (None, "identity_delta"):
            results.append(bench_identity_delta(days_))
        if args.only in (None, "scores"):
            from bench.scores import bench_scores

            results.append(bench_scores(days_))
        for r in results:
            r["world"] = {"customers": args.customers, "days": args.days, **world}
    finally:
        if args.workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    _report(results)


def _report(results: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for r in results:
        (RESULTS / f"{r['name']}.json").write_text(json.dumps(r, indent=2) + "\n")
        print(json.dumps(r, indent=2))
    write_doc([*results, *_kept(results)])


def _world(tmp: Path, customers: int, days: int, end: date, *, every_source: bool) -> dict:
    """Simulate the world, or reuse the one a kept work dir holds for the same arguments."""
    done = tmp / "world.json"
    asked = {"customers": customers, "days": days, "end": str(end), "every_source": every_source}
    if done.exists():
        world = json.loads(done.read_text())
        if world["asked"] == asked:
            return world["world"]
        raise SystemExit(f"{tmp} holds another world ({world['asked']}); use another --workdir")
    world = simulate_world(customers, days, end, every_source=every_source)
    done.write_text(json.dumps({"asked": asked, "world": world}))
    return world


def _kept(results: list[dict]) -> list[dict]:
    """Earlier results of the benchmarks this run skipped (`--only`), so the table keeps them."""
    ran = {r["name"] for r in results}
    kept = []
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        if r["name"] not in ran:
            kept.append(r)
    return kept


if __name__ == "__main__":
    main()
