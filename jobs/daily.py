"""The daily batch, one function per step. The `cdp_daily` DAG calls these as tasks; `cdp run daily`
calls them in a row. Every step is keyed on the logical date and idempotent: rerunning a day
replaces that day's output.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from jobs.common import lake
from jobs.common.settings import Settings, get_settings

# Source families: the sources one team runs and one landing schedule serves. Each family has
# its own sensor and mapped ingestion in the DAG, so a late marketplace export doesn't hold the
# tracking events back. A source not listed is its own family.
FAMILIES = {
    "marketplaces": ("tmall", "jd", "douyin", "pdd"),
    "own_channels": ("youzan", "miniprogram", "pos", "erp", "crm", "sms"),
    "tracking": ("web", "app"),
    "social": ("wecom", "oa"),
}


def source_keys(settings: Settings | None = None) -> list[str]:
    """Every enabled source dataset with a spec in jobs/ingest/sources/ (cheap: YAML only)."""
    from jobs.ingest.spec import load_specs

    enabled = set((settings or get_settings()).ingest.sources)
    return sorted(
        k for k in load_specs() if not enabled or k in enabled or k.split(".")[0] in enabled
    )


def family_of(source_key: str) -> str:
    source = source_key.split(".")[0]
    return next((f for f, members in FAMILIES.items() if source in members), source)


def source_families(settings: Settings | None = None) -> dict[str, list[str]]:
    """family -> its enabled source keys, in a stable order."""
    families: dict[str, list[str]] = {}
    for key in source_keys(settings):
        families.setdefault(family_of(key), []).append(key)
    return dict(sorted(families.items()))


def preflight(
    logical_date: date | None = None,
    settings: Settings | None = None,
    *,
    landing: bool = True,
) -> dict:
    """Check, before any work, what the steps will need: settings that load, the PII key
    (`Settings.hmac_key`), a valid time zone, the landing area (a folder that exists, or a URI;
    `landing=False` when the caller is about to create it), a lake root that can be created,
    loadable expectation suites, the dbt project, the Spark jars, and that `ingest.sources`
    names known sources. Every problem is reported at once, in one line (CdpError); nothing is
    written. `cdp run daily`, `cdp dag-test` and `cdp demo` call it first; so should the first
    task of the DAG. Returns what was checked (an XCom-friendly dict)."""
    import os
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from pydantic import ValidationError

    from jobs.common.errors import CdpError

    try:
        settings = settings or get_settings()
    except (ValidationError, ValueError) as exc:
        raise CdpError(f"preflight failed: invalid settings: {_settings_error(exc)}") from exc
    problems: list[str] = []

    def check(what: str, fn) -> None:
        try:
            fn()
        except CdpError as exc:
            problems.append(str(exc))
        except Exception as exc:  # any other failure of a check is a finding, not a crash
            problems.append(f"{what}: {(str(exc) or type(exc).__name__).splitlines()[0]}")

    def key() -> None:
        settings.hmac_key()

    def timezone() -> None:
        try:
            ZoneInfo(settings.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CdpError(f"timezone {settings.timezone!r} is not a known time zone") from exc

    def landing_root() -> None:
        root = settings.landing_root
        is_uri = "://" in root or root.startswith("file:")
        if landing and not is_uri and not Path(root).is_dir():
            raise CdpError(f"landing root {root} does not exist (CDP_LANDING_ROOT)")

    def lake_root() -> None:
        if not settings.is_local_lake:
            return
        existing = Path(settings.lake_root.removeprefix("file:"))
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
            raise CdpError(f"lake root {settings.lake_root} cannot be written ({existing})")

    def suites() -> None:
        from jobs.quality.gate import load_suite

        folder = Path(settings.expectations_dir)
        if not folder.is_dir():
            raise CdpError(f"expectations dir {folder} does not exist (CDP_EXPECTATIONS_DIR)")
        for path in sorted(folder.glob("*.json")):
            load_suite(path.stem, folder)

    def dbt_project() -> None:
        if not (Path(settings.dbt.project_dir) / "dbt_project.yml").is_file():
            raise CdpError(f"no dbt_project.yml in {settings.dbt.project_dir}")

    def spark_jars() -> None:
        from jobs.common.spark import spark_jars as jars

        jars(settings)

    def sources() -> None:
        from jobs.ingest.spec import load_specs

        keys = set(load_specs())
        known = keys | {k.split(".")[0] for k in keys}
        unknown = [s for s in settings.ingest.sources if s not in known]
        if unknown:
            raise CdpError(f"ingest.sources: no source spec for {', '.join(unknown)}")

    for what, fn in [
        ("PII key", key),
        ("timezone", timezone),
        ("landing root", landing_root),
        ("lake root", lake_root),
        ("expectations", suites),
        ("dbt project", dbt_project),
        ("spark jars", spark_jars),
        ("ingest.sources", sources),
    ]:
        check(what, fn)
    if problems:
        raise CdpError("preflight failed: " + "; ".join(problems))
    return {
        "logical_date": str(logical_date) if logical_date else None,
        "lake_root": settings.lake_root,
        "landing_root": settings.landing_root,
        "sources": sorted(settings.ingest.sources) or "all",
    }


def _settings_error(exc: Exception) -> str:
    """A pydantic validation error (or a ValueError from the settings file) as one line."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'settings'}: {e.get('msg')}"
            for e in errors()
        )
    return " ".join(str(exc).split())


def landed(family: str, logical_date: date, settings: Settings | None = None) -> list[str]:
    """Source keys of `family` whose landing folder holds a file for the date (the sensor)."""
    from jobs.ingest.landing import list_files
    from jobs.ingest.spec import get_spec

    settings = settings or get_settings()
    keys = source_families(settings).get(family, [])
    return [key for key in keys if list_files(get_spec(key), logical_date, settings)]


def ingest_source(source_key: str, logical_date: date, settings: Settings | None = None) -> dict:
    """One source dataset's landing files of the day -> bronze (+ quarantine, log, manifest)."""
    from jobs.ingest.bronze import ingest as ingest_one

    r = ingest_one(source_key, logical_date, settings=settings)
    return {
        "source": source_key,
        "files": r.files,
        "read": r.rows_read,
        "bronze": r.rows_bronze,
        "quarantined": r.rows_quarantined,
        "with_issues": r.rows_with_issues,
        "skipped": list(r.files_skipped),
        "ignored": list(r.files_ignored),
        "recovered": list(r.recovered),
    }


def pull(logical_date: date, settings: Settings | None = None) -> dict:
    """Pull the API sources into landing (today: Youzan, when its app is configured)."""
    from jobs.ingest.youzan import pull_orders

    settings = settings or get_settings()
    if not (settings.youzan.client_id and settings.youzan.kdt_id):
        return {"youzan.orders": "not configured (CDP_YOUZAN__CLIENT_ID, ..._KDT_ID)"}
    return {"youzan.orders": str(pull_orders(logical_date, settings))}


def ingest(logical_date: date, settings: Settings | None = None) -> dict:
    """Landing files of every enabled source -> bronze (the DAG maps `ingest_source` instead)."""
    return {key: ingest_source(key, logical_date, settings) for key in source_keys(settings)}


def _validate(df, suite: str, logical_date: date, settings: Settings, parameters=None):
    """Validate, then keep the results in ops.quality_results and a readable report file."""
    from jobs.quality import gate

    report = gate.validate(
        df,
        suite,
        run_id=f"{suite}:{logical_date}",
        expectations_dir=Path(settings.expectations_dir),
        parameters=parameters,
    )
    # One set of rows per suite and run (suite + logical date): a rerun replaces them.
    gate.write_results(report, lake.table_path("ops", "quality_results", settings))
    gate.write_report(report, Path(settings.quality.reports_dir) / f"dt={logical_date}")
    return report


def _summary(report) -> dict:
    return {
        "suite": report.suite,
        "passed": report.success_blocking,
        "failed": [r.expectation for r in report.results if not r.success],
    }


def check_bronze(logical_date: date, settings: Settings | None = None) -> dict:
    """Great Expectations on each source's bronze rows of the day; a blocking failure stops here.

    Every suite runs and is recorded before the gate decides, so one failing source doesn't
    hide another's results. Runs on pandas through delta-rs (no Spark): see
    jobs/quality/bronze_checks.py, which also computes the volume and freshness parameters.
    A dataset without a suite is reported as such (its rows were still JSON-Schema-validated).
    """
    from jobs.ingest.bronze import recover_day
    from jobs.ingest.spec import load_specs
    from jobs.quality import bronze_checks, gate

    settings = settings or get_settings()
    # A batch a crash left half-written is completed first: the gate never judges a torn day.
    recovered = recover_day(logical_date, settings)
    results: dict[str, object] = {"recovered": recovered} if recovered else {}
    reports = []
    for table in sorted({spec.bronze_table for spec in load_specs().values()}):
        suite = f"bronze.{table}"
        path = lake.table_path("bronze", table, settings)
        if not (Path(settings.expectations_dir) / f"{suite}.json").is_file():
            results[suite] = "no suite"
            continue
        if not lake.is_delta(path):
            results[suite] = "no bronze table yet"
            continue
        params = bronze_checks.parameters(
            bronze_checks.rows_per_day(path), logical_date, settings.quality, settings.timezone
        )
        report = _validate(
            bronze_checks.read_day(path, logical_date), suite, logical_date, settings, params
        )
        reports.append(report)
        results[suite] = _summary(report)
    gate.enforce_all(reports)
    return results


def build_silver(logical_date: date, settings: Settings | None = None) -> dict:
    """Every source's bronze rows of the day -> every silver table (jobs/silver/build.py:
    transforms, the PII vault, quality gates, merges, and the day-grained rules re-applied to
    the days `ops.recompute_days` marks). silver.customers comes from One-ID (`resolve_identity`).

    Merged tables keep, per key, the `_logical_date` of the files that brought its current
    state, and a merge never replaces a later day's state with an earlier one: rerunning or
    backfilling an old day leaves what a later export re-synced as it is.
    """
    from jobs.silver.build import build_day

    return build_day(logical_date, settings or get_settings())


def resolve_identity(
    logical_date: date, settings: Settings | None = None, *, mode: str = "auto"
) -> dict:
    """Every identifier of every silver table -> the guarded identity graph -> stable one_ids
    (silver.identity_map, identity_edges, identity_updates, identity_blocked): jobs/identity.
    Daily, the day's delta (jobs/identity/incremental.py); `mode="full"`: all of silver."""
    from jobs.identity.run import run_identity

    return run_identity(logical_date, settings, mode=mode)


def marts_as_of(logical_date: date, settings: Settings | None = None) -> date:
    """The date scores and marts are computed as of: the latest logical date silver holds
    (`latest_silver_date`), never earlier than the run's date, so rerunning or backfilling an
    old day never rolls them back to that day."""
    latest = latest_silver_date(settings)
    return max(logical_date, latest) if latest else logical_date


def score_customers(
    logical_date: date, settings: Settings | None = None, *, mode: str = "auto"
) -> dict:
    """Features, RFM and LTV per one_id (silver.customer_features, customer_rfm, customer_ltv)
    and the day's lifecycle stages and tags (silver.customer_tag_days): jobs/marts/scores.py.
    Daily, the day's delta (jobs/marts/delta.py); `mode="full"`: every customer."""
    from jobs.marts.scores import score_customers as run

    settings = settings or get_settings()
    return run(logical_date, marts_as_of(logical_date, settings), settings, mode=mode)


def publish_marts(logical_date: date, settings: Settings | None = None) -> dict:
    """dbt build: staging -> intermediate -> gold marts (customer_360, customer_rfm,
    customer_ltv, customer_tags, customer_tag_history; contracts and tests), as of
    `marts_as_of`."""
    from jobs.profiles.dbt_runner import build

    settings = settings or get_settings()
    as_of = marts_as_of(logical_date, settings)
    build(as_of=as_of, settings=settings)
    return {"dbt": "ok", "as_of": str(as_of)}


def latest_silver_date(settings: Settings | None = None) -> date | None:
    """The latest logical date whose files brought an order's state into silver.orders (None
    before the first run, or for a table written before the column existed). No Spark."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    path = lake.table_path("silver", "orders", settings)
    if not lake.is_delta(path):
        return None
    dataset = DeltaTable(path).to_pyarrow_dataset()
    if "_logical_date" not in dataset.schema.names:
        return None
    return pc.max(dataset.to_table(columns=["_logical_date"])["_logical_date"]).as_py()


def export_segments(logical_date: date, settings: Settings | None = None) -> dict:
    """Every segment's members, diff and manifest; and the day's WeCom tag changes in the shape
    of WeCom's mark_tag API (when the brand has WeCom: jobs/segments/wecom_tags.py)."""
    from jobs.segments.definitions import load_segments
    from jobs.segments.export import export_segment
    from jobs.segments.wecom_tags import export_wecom_tags

    done = {name: export_segment(name, logical_date, settings).members for name in load_segments()}
    if lake.is_delta(lake.table_path("silver", "wecom_relationships", settings)):
        done["wecom_tags"] = export_wecom_tags(logical_date, settings).relationships
    return done


def maintain_lake(logical_date: date, settings: Settings | None = None) -> dict:
    """Compact the day's small files of the tables every source writes to (no Spark)."""
    from jobs.ingest.bronze import (
        INGESTION_LOG_TABLE,
        ISSUES_TABLE,
        MANIFEST_TABLE,
        QUARANTINE_TABLE,
        RECOMPUTE_TABLE,
        RETRACTED_TABLE,
    )
    from jobs.ingest.journal import JOURNAL_TABLE, prune

    settings = settings or get_settings()
    pruned = prune(settings, settings.ingest.journal_retention_days)
    day_partitioned = [("quarantine", QUARANTINE_TABLE)]
    whole = [
        ("ops", MANIFEST_TABLE),
        ("ops", INGESTION_LOG_TABLE),
        ("ops", RECOMPUTE_TABLE),
        ("ops", ISSUES_TABLE),
        ("ops", RETRACTED_TABLE),
        ("ops", JOURNAL_TABLE),
        ("ops", "quality_results"),
    ]
    removed = {
        f"{layer}.{name}": lake.compact(lake.table_path(layer, name, settings), logical_date)
        for layer, name in day_partitioned
    }
    removed |= {
        f"{layer}.{name}": lake.compact(lake.table_path(layer, name, settings))
        for layer, name in whole
    }
    return {"files_compacted": removed, "journal_entries_pruned": pruned}


STEPS = (
    pull,
    ingest,
    check_bronze,
    build_silver,
    resolve_identity,
    score_customers,
    publish_marts,
    export_segments,
    maintain_lake,
)


def run_all(logical_date: date, settings: Settings | None = None) -> dict:
    """The preflight, then all steps in order, in this process (what the DAG does, without
    Airflow)."""
    checked = {"preflight": preflight(logical_date, settings)}
    return checked | {step.__name__: step(logical_date, settings) for step in STEPS}
