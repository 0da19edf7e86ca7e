"""`cdp`: the command line of the platform. Errors print as one line; --debug shows the trace."""

from __future__ import annotations

import logging
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jobs.common.errors import CdpError

app = typer.Typer(
    help="Open CDP: batch + stream customer data lakehouse.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
kafka_app = typer.Typer(help="The local Kafka broker (KRaft, loopback).", no_args_is_help=True)
segments_app = typer.Typer(help="Segments for marketing tools.", no_args_is_help=True)
stream_app = typer.Typer(help="Real-time marketing triggers.", no_args_is_help=True)
run_app = typer.Typer(help="Run batch jobs in this process, without Airflow.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Rows that failed validation.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(kafka_app, name="kafka")
app.add_typer(segments_app, name="segments")
app.add_typer(stream_app, name="stream")
app.add_typer(quarantine_app, name="quarantine")

console = Console()
err = Console(stderr=True)
_state = {"debug": False}

DateOpt = Annotated[
    str | None, typer.Option("--date", help="Logical date YYYY-MM-DD (default: yesterday).")
]


FromOpt = Annotated[
    str | None, typer.Option("--from", help="Backfill: first date YYYY-MM-DD (with --to).")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Backfill: last date YYYY-MM-DD.")]


def _days(day: str | None, first: str | None, last: str | None) -> list[date]:
    """--date D (one day), or --from A --to B (every day of the range, oldest first)."""
    if first is None and last is None:
        return [_date(day)]
    if day is not None or first is None or last is None:
        raise CdpError("give either --date, or both --from and --to")
    start, end = _date(first), _date(last)
    if end < start:
        raise CdpError(f"--to {end} is before --from {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _date(value: str | None) -> date:
    if value is None:
        return date.today() - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CdpError(f"--date {value!r}: expected YYYY-MM-DD") from exc


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show stack traces.")] = False):
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def print_rows(columns: list[str], rows: list[tuple], title: str | None = None) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    console.print(table)


@app.command()
def simulate(
    out: Annotated[Path | None, typer.Option(help="Landing folder (default: settings).")] = None,
    customers: Annotated[int, typer.Option(min=1)] = 1000,
    days: Annotated[int, typer.Option(min=1)] = 3,
    seed: int = 7,
    end: Annotated[
        str | None, typer.Option(help="Last simulated day YYYY-MM-DD (default: yesterday).")
    ] = None,
    bad_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of lines spoiled (quarantined).")
    ] = 0.01,
    orders_per_customer_day: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Tmall orders per person per day; other platforms keep their ratio to it "
            "(0.05: ~53 orders per person-year on all platforms; 0.0095: ~10).",
        ),
    ] = 0.05,
    mess: Annotated[
        Path | None,
        typer.Option(help="YAML of mess rates (keys of jobs.ingest.simulate.Mess)."),
    ] = None,
    clean: Annotated[
        bool, typer.Option(help="No mess at all (options below still apply).")
    ] = False,
    test_order_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    fake_order_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    resync_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    late_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    household_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
):
    """Generate a simulated commerce world into the landing area (plus ground truth in _truth/)."""
    from dataclasses import replace

    from jobs.common.settings import get_settings
    from jobs.ingest.simulate import Mess
    from jobs.ingest.simulate import simulate as run

    rates = Mess.none() if clean else Mess.from_yaml(mess) if mess else Mess()
    overrides = {
        "test_order_rate": test_order_rate,
        "fake_order_rate": fake_order_rate,
        "resync_rate": resync_rate,
        "late_rate": late_rate,
        "household_rate": household_rate,
    }
    rates = replace(rates, **{k: v for k, v in overrides.items() if v is not None})
    target = out or Path(get_settings().landing_root)
    s = run(
        target,
        customers=customers,
        days=days,
        seed=seed,
        end=_date(end),
        bad_rate=bad_rate,
        orders_per_customer_day=orders_per_customer_day,
        mess=rates,
    )
    console.print(
        f"simulated {s.customers} customers, {s.start}..{s.end}: {s.orders} orders "
        f"({s.bad_lines} spoiled on purpose) in {s.files} files, {s.events} events "
        f"-> {s.out}"
    )
    if s.flags:
        console.print(
            "  mess (records flagged in _truth/records.csv): "
            + ", ".join(f"{k} {v}" for k, v in s.flags.items())
        )


@run_app.command("daily")
def run_daily(day: DateOpt = None, first: FromOpt = None, last: ToOpt = None):
    """Run every step of the daily batch for a date (or a range, oldest first), in this process."""
    from jobs import daily
    from jobs.common.progress import step

    for d in _days(day, first, last):
        for fn in daily.STEPS:
            with step(f"{fn.__name__} {d}"):
                result = fn(d)
            console.print(f"  {fn.__name__}: {result}")


@app.command("dag-test")
def dag_test(
    day: DateOpt = None, first: FromOpt = None, last: ToOpt = None, dag_id: str = "cdp_daily"
):
    """Run a DAG for a logical date (or each date of a range) through Airflow (SQLite)."""
    from jobs.common.airflow_env import dags_test, ensure_db
    from jobs.common.progress import step

    days = _days(day, first, last)
    with step("airflow db migrate"):
        ensure_db()
    for d in days:
        with step(f"airflow dags test {dag_id} {d}"):
            dags_test(dag_id, d)


@app.command()
def ingest(
    source: Annotated[str, typer.Argument(help="Source dataset, e.g. tmall.orders")],
    day: DateOpt = None,
):
    """Ingest one source's landing files for a date into bronze (+ quarantine), reconciled."""
    from jobs.ingest.bronze import ingest as run

    r = run(source, _date(day))
    skipped = (
        f", {len(r.files_skipped)} file(s) skipped as already ingested" if (r.files_skipped) else ""
    )
    console.print(
        f"{source} {r.logical_date}: {r.rows_read} rows read from {r.files} file(s): "
        f"{r.rows_bronze} to bronze, {r.rows_quarantined} quarantined{skipped}"
    )


@app.command("import")
def import_(
    dataset: Annotated[str, typer.Argument(help="orders, customers or events")],
    path: Annotated[Path, typer.Argument(help="A .csv, .xlsx, .parquet or .jsonl/.json file")],
    source: Annotated[str, typer.Option(help="Name of the system it came from, e.g. brand_crm")],
    mapping: Annotated[Path, typer.Option(help="YAML: file column -> our field (see docs)")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Parse and show what would land; write nothing.")
    ] = False,
    day: Annotated[
        str | None,
        typer.Option("--date", help="Logical date YYYY-MM-DD (default: today in Asia/Shanghai)."),
    ] = None,
    preview: Annotated[int, typer.Option(min=0, help="Rows to show in the dry run.")] = 10,
):
    """Import a brand's own export (CSV/Excel/Parquet/JSON lines) into bronze via a mapping."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from jobs.ingest import importer

    fmt = importer.file_format(path)
    spec = importer.load_mapping(mapping, source=source, dataset=dataset, fmt=fmt)
    if dry_run:
        importer.render_dry_run(importer.dry_run(path, spec, preview=preview), console)
        return
    d = _date(day) if day else datetime.now(ZoneInfo("Asia/Shanghai")).date()
    r = importer.run_import(path, spec, d)
    skipped = f" (skipped: {'; '.join(r.files_skipped)})" if r.files_skipped else ""
    console.print(
        f"import {spec.key} {d}: {r.rows_read} rows read from {path.name}: {r.rows_bronze} to "
        f"bronze.{spec.bronze_table}, {r.rows_quarantined} quarantined{skipped}"
    )


@app.command("pull-youzan")
def pull_youzan(day: DateOpt = None):
    """Pull a day's Youzan orders over its Open API into the landing area (CDP_YOUZAN__*)."""
    from jobs.ingest.youzan import pull_orders

    path = pull_orders(_date(day))
    with path.open(encoding="utf-8") as fh:
        count = sum(1 for _ in fh)
    console.print(f"youzan.orders {_date(day)}: {count} orders -> {path}")


@app.command()
def query(
    sql: Annotated[
        str,
        typer.Argument(
            help="SQL over <layer>.<table>, e.g. 'select * from gold.customer_360 limit 5'"
        ),
    ],
    limit: Annotated[int, typer.Option(help="Rows to print at most.")] = 50,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Also bronze and quarantine (raw personal data): pipeline operators only.",
        ),
    ] = False,
):
    """Run SQL on silver, gold and ops (DuckDB over Delta, no Spark start-up); print a table."""
    import duckdb

    from jobs.common import duck

    con = duck.connect(layers=None if raw else duck.ANALYST_LAYERS)
    try:
        cur = con.execute(sql)
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        if not raw and any(f"{layer}." in sql for layer in ("bronze", "quarantine")):
            message += (
                " (bronze and quarantine hold raw personal data: add --raw if you run the pipeline)"
            )
        raise CdpError(f"query failed: {message}") from exc
    columns = [d[0] for d in cur.description or []]
    rows = cur.fetchmany(limit)
    print_rows(columns, rows)


@app.command()
def tables():
    """Rows per table of the lake, and where the lake is."""
    from jobs.common import duck
    from jobs.common.settings import get_settings

    rows = duck.row_counts()
    print_rows(
        ["table", "rows"], [(n, c) for n, c, _ in rows], title=f"lake: {get_settings().lake_root}"
    )


@segments_app.command("list")
def segments_list():
    """Defined segments and their predicates."""
    from jobs.segments.export import load_segments

    print_rows(
        ["segment", "where", "description"],
        [(s.name, s.where, s.description) for s in load_segments().values()],
    )


@segments_app.command("export")
def segments_export(name: str, as_of: DateOpt = None):
    """Write a segment's members, diff and manifest for marketing tools."""
    from jobs.segments.export import export_segment

    r = export_segment(name, _date(as_of) if as_of else date.today())
    console.print(
        f"{r.segment}: {r.members} members (+{r.added} / -{r.removed}, "
        f"{r.optouts_removed} opted out) -> {r.folder}"
    )


@quarantine_app.command("list")
def quarantine_list(limit: int = 20):
    """The latest quarantined rows with their reasons."""
    query(
        f"select _logical_date, field, reason "
        f"from quarantine.records order by _logical_date desc, file, line limit {limit}"
    )


@quarantine_app.command("replay")
def quarantine_replay(
    source: Annotated[str | None, typer.Option(help="Only this source, e.g. tmall.orders")] = None,
    since: Annotated[str | None, typer.Option(help="First date YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option(help="Last date YYYY-MM-DD")] = None,
):
    """Re-ingest every day that has quarantined rows (after fixing files, spec or schema)."""
    from jobs.ingest.replay import replay

    results = replay(source, _date(since) if since else None, _date(until) if until else None)
    if not results:
        console.print("nothing in quarantine")
        return
    print_rows(
        ["source", "date", "quarantined before", "released to bronze", "still quarantined"],
        [
            (r.source_key, r.logical_date, r.quarantined_before, r.released, r.quarantined_after)
            if r.bronze_after >= 0
            else (r.source_key, r.logical_date, r.quarantined_before, "-", "rerun cdp import")
            for r in results
        ],
    )


@kafka_app.command("start")
def kafka_start():
    """Start the local broker (idempotent)."""
    from jobs.stream import broker

    info = broker.start()
    console.print(f"kafka running: pid {info.pid}, {info.bootstrap_servers} (log {info.log_file})")


@kafka_app.command("stop")
def kafka_stop():
    """Stop the local broker."""
    from jobs.stream import broker

    console.print("kafka stopped" if broker.stop() else "kafka was not running")


@kafka_app.command("status")
def kafka_status():
    """Is the local broker running, and where."""
    from jobs.stream import broker

    info = broker.status()
    if info is None:
        console.print("kafka: not running")
        raise typer.Exit(1)
    console.print(f"kafka running: pid {info.pid}, {info.bootstrap_servers}")


@stream_app.command("produce")
def stream_produce(
    path: Annotated[Path, typer.Argument(help="JSON lines of events.")],
    rate: Annotated[float, typer.Option(help="Events per second, 0 = all at once")] = 0.0,
):
    """Publish events from a JSON-lines file to the events topic."""
    from jobs.stream.producer import produce_file

    n = produce_file(path, rate=rate)
    console.print(f"produced {n} events")


@stream_app.command("run")
def stream_run(
    seconds: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
    timeout: Annotated[int | None, typer.Option(help="Cart-abandon window (s).")] = None,
):
    """Run the cart-abandonment trigger job (Kafka -> triggers topic + Delta audit)."""
    from jobs.stream.job import run

    summary = run(run_seconds=seconds, timeout_seconds=timeout)
    console.print(
        f"{summary.batches} micro-batches: {summary.triggers} triggers, "
        f"{summary.quarantined} events quarantined (checkpoint {summary.checkpoint})"
    )


@app.command()
def demo(customers: int = 1000, days: int = 3, stream_seconds: float = 90.0):
    """The whole platform end to end on the embedded default, then a summary."""
    from jobs.demo import run_demo

    run_demo(customers=customers, days=days, stream_seconds=stream_seconds)


def main() -> None:
    try:
        app()
    except CdpError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
