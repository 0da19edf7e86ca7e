"""`cdp`: the command line of the platform. Errors print as one line; --debug shows the trace."""

from __future__ import annotations

import logging
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from jobs.common.errors import CdpError
from jobs.common.output import console, print_rows  # one stdout console for all output

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
identity_app = typer.Typer(help="One-ID: identity resolution.", no_args_is_help=True)
airflow_app = typer.Typer(
    help="Airflow's scheduler and UI on the embedded default (SQLite, LocalExecutor, our dags/), "
    "in the foreground until Ctrl-C; `cdp airflow run -- ARGS` runs any airflow command.",
    invoke_without_command=True,
)
app.add_typer(run_app, name="run")
app.add_typer(kafka_app, name="kafka")
app.add_typer(segments_app, name="segments")
app.add_typer(stream_app, name="stream")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(identity_app, name="identity")
app.add_typer(airflow_app, name="airflow")

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


def _date(value: str | None, option: str = "--date") -> date:
    if value is None:
        return date.today() - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CdpError(f"{option} {value!r}: expected YYYY-MM-DD") from exc


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show stack traces.")] = False):
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


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
        typer.Option(help="YAML of mess rates (keys of jobs.simulator.Mess)."),
    ] = None,
    clean: Annotated[
        bool, typer.Option(help="No mess at all (options below still apply).")
    ] = False,
    test_order_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    fake_order_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    resync_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    late_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    household_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    gift_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
):
    """Generate a simulated commerce world into the landing area (plus ground truth in _truth/)."""
    from dataclasses import replace

    from jobs.common.settings import get_settings
    from jobs.simulator import Mess
    from jobs.simulator import simulate as run

    rates = Mess.none() if clean else Mess.from_yaml(mess) if mess else Mess()
    overrides = {
        "test_order_rate": test_order_rate,
        "fake_order_rate": fake_order_rate,
        "resync_rate": resync_rate,
        "late_rate": late_rate,
        "household_rate": household_rate,
        "gift_rate": gift_rate,
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
        progress=True,
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
    if s.truth is not None and s.truth.records:
        t = s.truth
        console.print(
            f"  truth: {t.linkable / t.records:.1%} of {t.records} records linkable by an "
            f"identifier, {t.fuzzy_linkable / t.records:.1%} only by name/birthday/address"
        )
        console.print(
            "  people per identifier (holders / seen in records): "
            + ", ".join(
                f"{kind} {n}/{t.people_seen_per_identifier.get(kind, 0)}"
                for kind, n in t.people_per_identifier.items()
            )
        )


@run_app.command("daily")
def run_daily(day: DateOpt = None, first: FromOpt = None, last: ToOpt = None):
    """Run every step of the daily batch for a date (or a range, oldest first), in this process."""
    from jobs import daily
    from jobs.common.progress import step

    days = _days(day, first, last)
    daily.preflight(days[0])  # bad settings fail here, before any work
    for d in days:
        for fn in daily.STEPS:
            with step(f"{fn.__name__} {d}"):
                result = fn(d)
            console.print(f"  {fn.__name__}: {result}")


@run_app.command("scores")
def run_scores(
    day: DateOpt = None,
    full: Annotated[
        bool, typer.Option("--full", help="Score every customer, not the day's delta.")
    ] = False,
):
    """Score the customers: features, RFM, LTV, stages and tags (the day's delta when the last
    run allows, else every customer), as the daily batch's score_customers step does."""
    from jobs.daily import score_customers

    r = score_customers(_date(day), mode="full" if full else "auto")
    if "mode" not in r:
        console.print(r.get("skipped", r))
        return
    console.print(
        f"{r['mode']} run ({r['why']}) as of {r['as_of']}: {r['rescored_customers']:,} of "
        f"{r['feature_customers']:,} customers scored again; RFM {r['rfm_customers']:,}, "
        f"LTV {r['ltv_customers']:,} ({'fitted' if r['ltv_fitted'] else 'last fit'}"
        f"{'; ' + r['ltv_skipped'] if r['ltv_skipped'] else ''}); {r['tag_rows']:,} stage and "
        f"tag rows; {r['seconds']} s"
    )


@app.command("dag-test")
def dag_test(
    day: DateOpt = None, first: FromOpt = None, last: ToOpt = None, dag_id: str = "cdp_daily"
):
    """Run a DAG for a logical date (or each date of a range) through Airflow (SQLite)."""
    from jobs.common.airflow_env import dags_test, ensure_db
    from jobs.common.progress import step
    from jobs.daily import preflight

    days = _days(day, first, last)
    preflight(days[0])  # bad settings fail here, not in a task minutes later
    with step("airflow db migrate"):
        ensure_db()
    for d in days:
        with step(f"airflow dags test {dag_id} {d}"):
            dags_test(dag_id, d)


@airflow_app.callback()
def airflow_serve(
    ctx: typer.Context,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Start, wait until the API answers healthy on loopback, then stop."
        ),
    ] = False,
    port: Annotated[
        int | None, typer.Option(help="API server and UI port (default: airflow.api_port).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a healthy start.")] = 180.0,
):
    """Run Airflow's scheduler, API server (UI) and DAG processor until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    import signal
    import time

    from jobs.common.airflow_env import DAGS_FOLDER, db_path, ensure_db
    from jobs.common.airflow_local import LocalAirflow, is_paused, ui_url
    from jobs.common.progress import step
    from jobs.common.settings import ensure_local_key, get_settings

    # The embedded default, like `make demo`: without a key in the environment, the local one.
    ensure_local_key(get_settings())
    settings = get_settings()
    if port is not None:
        settings = settings.model_copy(deep=True)
        settings.airflow.api_port = port
    with step("airflow db migrate, pool " + settings.airflow.lake_writers_pool):
        ensure_db(settings)

    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    # `kill` or a closed terminal stops the components like Ctrl-C does; SIGINT too when this
    # was started in the background (which ignores it) and is then sent one with `kill -INT`.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    with LocalAirflow(settings) as local:
        started = time.monotonic()
        local.start()
        console.print(
            f"starting airflow scheduler, dag-processor, api-server (logs in {local.log_dir})"
        )
        try:
            local.wait_ready(timeout=timeout)
            console.print(
                f"Airflow is up in {time.monotonic() - started:.0f} s: {ui_url(settings)}\n"
                "  login: none, this local install lets every visitor in as admin (it listens "
                "on 127.0.0.1 only)\n"
                f"  metadata DB: {db_path(settings)} (SQLite), DAGs: {DAGS_FOLDER}"
                + (
                    f"\n  PII key: the file {settings.pii_hmac_key_file}"
                    if settings.pii_hmac_key is None and settings.pii_hmac_key_file
                    else ""
                )
            )
            if check:
                return
            schedule = (
                "paused (`cdp airflow run -- dags unpause cdp_daily` schedules it)"
                if is_paused(settings, "cdp_daily")
                else "scheduled daily at 02:00 Shanghai"
            )
            console.print(
                f"  cdp_daily is {schedule}; trigger a date: `cdp airflow run -- dags trigger "
                "cdp_daily -l 2026-01-05T00:00:00+00:00`\n  Ctrl-C stops Airflow."
            )
            while True:
                local.check_alive()
                time.sleep(1.0)
        except KeyboardInterrupt:
            console.print("stopping Airflow (Ctrl-C again to kill it at once) ...")
        finally:
            stopping = time.monotonic()
            killed = local.stop()
            note = (
                f" (killed: {', '.join(killed)}; tasks still running were stopped, and are "
                "retried when Airflow starts again)"
                if killed
                else ""
            )
            console.print(f"Airflow stopped in {time.monotonic() - stopping:.0f} s{note}")


@airflow_app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def airflow_run(
    args: Annotated[
        list[str] | None, typer.Argument(help="Arguments of the airflow command, after --.")
    ] = None,
):
    """Run any airflow command with the project's environment (e.g. -- dags list)."""
    from jobs.common.airflow_local import run_airflow
    from jobs.common.settings import ensure_local_key, get_settings

    if not args:
        raise CdpError("give the airflow command after --, e.g. cdp airflow run -- dags list")
    ensure_local_key(get_settings())  # the same environment as `cdp airflow`'s
    code = run_airflow(list(args), get_settings())
    if code:
        raise typer.Exit(code)


AllowShrinkOpt = Annotated[
    bool,
    typer.Option(
        "--allow-shrink",
        help="Let a re-sent file with fewer lines than the ingested version replace it "
        "(rows it no longer has are removed).",
    ),
]


def _ingest_summary(what: str, r) -> None:
    """What an ingestion did, line by line: nothing it skipped or ignored goes unsaid."""
    console.print(
        f"{what}: {r.rows_read} lines read from {r.files} file(s): {r.rows_bronze} to "
        f"bronze, {r.rows_quarantined} quarantined"
    )
    if r.rows_with_issues:
        console.print(
            f"  {r.rows_with_issues} landed row(s) with a bad optional value set to null or an "
            "identifier flagged (by reason: ops.field_issues)"
        )
    for line in r.files_skipped:
        console.print(f"  skipped {line}")
    for line in r.files_ignored:
        console.print(f"  ignored {line}")
    for batch in r.recovered:
        console.print(f"  completed interrupted batch {batch} first")


@app.command()
def ingest(
    source: Annotated[str, typer.Argument(help="Source dataset, e.g. tmall.orders")],
    day: DateOpt = None,
    allow_shrink: AllowShrinkOpt = False,
):
    """Ingest one source's landing files for a date into bronze (+ quarantine), reconciled.

    Each file replaces only its own rows: files added to the day add rows, a re-sent file
    replaces its earlier version."""
    from jobs.ingest.bronze import ingest as run

    r = run(source, _date(day), allow_shrink=allow_shrink)
    _ingest_summary(f"{source} {r.logical_date}", r)


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
    allow_shrink: AllowShrinkOpt = False,
):
    """Import a brand's own export (CSV/Excel/Parquet/JSON lines) into bronze via a mapping.

    Keyed on the file name: another file for the same date adds its rows (part 2 of an
    export); the same name with new bytes replaces that file's rows."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from jobs.ingest import importer

    fmt = importer.file_format(path)
    spec = importer.load_mapping(mapping, source=source, dataset=dataset, fmt=fmt)
    if dry_run:
        importer.render_dry_run(importer.dry_run(path, spec, preview=preview), console)
        return
    d = _date(day) if day else datetime.now(ZoneInfo("Asia/Shanghai")).date()
    r = importer.run_import(path, spec, d, allow_shrink=allow_shrink)
    _ingest_summary(f"import {spec.key} {d} ({path.name} -> bronze.{spec.bronze_table})", r)


@app.command()
def retract(
    source: Annotated[
        str, typer.Argument(help="Source dataset, e.g. tmall.orders or brand_crm.customers")
    ],
    file: Annotated[
        str,
        typer.Argument(
            help="The file as the lake names it (bronze `_file`, ops.ingest_manifest `file`), "
            "e.g. tmall/orders/dt=2026-01-05/orders.csv"
        ),
    ],
):
    """Take a wrongly landed or imported file out of the lake: its rows leave bronze,
    quarantine and the ops tables, and the same bytes are not ingested again."""
    from jobs.ingest.bronze import retract as run

    removed = run(source, file)
    console.print(
        f"retracted {file} from {source}: "
        + ", ".join(f"{n} row(s) from {table}" for table, n in removed.items() if n)
    )


OrdersOpt = Annotated[
    Path, typer.Option("--orders", help="Order file: .csv, .xlsx, .parquet or .jsonl")
]
OrderMappingOpt = Annotated[
    Path,
    typer.Option(
        "--mapping",
        help="YAML in the format of `cdp import orders`: buyer_id, order_id, created, payment "
        "(and status)",
    ),
]
AsOfOpt = Annotated[str, typer.Option("--as-of", help="Score as of this date, YYYY-MM-DD.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output file: .csv or .parquet")]


@app.command()
def profile(one_id: str):
    """One customer's 360 (gold.customer_360) and current segments, without Spark."""
    from jobs.marts.profile import customer_360

    p = customer_360(one_id)
    print_rows(["field", "value"], [*p.row.items(), ("segments", ", ".join(p.segments))])


@app.command("dbt-docs")
def dbt_docs(
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the pages until Ctrl-C.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port to serve on (localhost).")] = 8080,
):
    """The dbt project's documentation (models, columns, tests, contracts, lineage) generated on
    the lake; with --serve, at http://localhost:PORT until Ctrl-C."""
    import contextlib
    import functools
    import http.server

    from jobs.profiles.dbt_runner import docs

    folder = docs()
    console.print(f"dbt docs -> {folder / 'index.html'} (one file: {folder / 'static_index.html'})")
    if not serve:
        return
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        console.print(f"serving http://localhost:{port}/ (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


@app.command()
def report(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the PNGs and index.html (default var/reports)"),
    ] = None,
):
    """Charts of the customer 360 (RFM heat map, lifecycle funnel, stage and segment sizes over
    time, repurchase cohorts, LTV distribution, channel mix) and one HTML page."""
    from jobs.marts.report import write_report

    r = write_report(out)
    for file, title, caption in r.charts:
        console.print(f"{title}: {caption} ({file})")
    for title, why in r.skipped:
        console.print(f"[yellow]{title}: not drawn: {why}[/yellow]")
    console.print(f"-> {r.folder / 'index.html'}")


@app.command()
def rfm(orders: OrdersOpt, mapping: OrderMappingOpt, as_of: AsOfOpt, out: OutOpt):
    """RFM of any order file: recency_days, frequency, monetary, r/f/m scores (ties score
    alike), the 11 named segments and the 8-class RFM (rules: jobs/marts/rfm.yaml)."""
    from jobs.marts.files import rfm_file

    rfm_file(orders, mapping, _date(as_of, "--as-of"), out)


@app.command()
def ltv(
    orders: OrdersOpt,
    mapping: OrderMappingOpt,
    as_of: AsOfOpt,
    out: OutOpt,
    freq: Annotated[
        str | None,
        typer.Option(
            "--freq", help="Purchase period: D (day) or W (week); default from jobs/marts/ltv.yaml"
        ),
    ] = None,
):
    """LTV of any order file: BG/NBD and Gamma-Gamma (pymc-marketing, maximum likelihood) per
    customer: frequency, recency, T, monetary_value, p_alive, expected_purchases_90d, clv_12m
    and a churn warning; prints the fitted parameters."""
    from jobs.marts.files import ltv_file

    if freq is not None and freq not in ("D", "W"):
        raise CdpError(f"--freq {freq!r}: use D (day) or W (week)")
    ltv_file(orders, mapping, _date(as_of, "--as-of"), out, freq)


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
    limit: Annotated[int, typer.Option(help="Rows to print at most (0: all).")] = 50,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="table (a vertical layout when the columns do not fit), csv or json; default: "
            "table, or what --out's extension names",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the rows to this .csv or .json file.")
    ] = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Also bronze and quarantine (raw personal data): pipeline operators only.",
        ),
    ] = False,
):
    """Run SQL on silver, gold and ops (DuckDB over Delta, no Spark start-up); print a table.

    Read-only and locked: the lake's registered tables and nothing else (no files, no settings).
    """
    import duckdb

    from jobs.common import duck
    from jobs.common.output import out_format, write_rows

    try:
        chosen = out_format(fmt, out)
    except ValueError as exc:
        raise CdpError(str(exc)) from None
    duck.check_read_only(sql)
    con = duck.connect(raw=raw)
    try:
        cur = con.execute(sql)
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        if not raw and any(f"{layer}." in sql for layer in ("bronze", "quarantine")):
            message += (
                " (bronze and quarantine hold raw personal data: add --raw if you run the pipeline)"
            )
        elif isinstance(exc, duckdb.PermissionException):
            message += " (cdp query reads the lake's tables as <layer>.<table>, nothing else)"
        raise CdpError(f"query failed: {message}") from exc
    columns = [d[0] for d in cur.description or []]
    rows = cur.fetchmany(limit) if limit > 0 else cur.fetchall()
    write_rows(columns, rows, chosen, out)
    if out is not None:
        console.print(f"{len(rows)} row(s) -> {out}")


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
    """Defined segments (jobs/segments/definitions.yaml): version, consent purpose, the SQL they
    compile to over gold.customer_360."""
    from jobs.segments.definitions import load_segments

    print_rows(
        ["segment", "version", "purpose", "where", "description"],
        [(s.name, s.version, s.purpose, s.where, s.description) for s in load_segments().values()],
    )


@segments_app.command("export")
def segments_export(
    name: str,
    as_of: DateOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", help="csv or parquet.", show_default=True)
    ] = "csv",
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="A folder or a URI (file://, s3://, gs://, hdfs://); default: the exports "
            "folder. The export goes to TO/NAME/AS_OF/.",
        ),
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option("--incremental", help="Only who was added and removed since the last export."),
    ] = False,
):
    """Write a segment's members (hashed phone, unionid, openid, external_userid), who entered
    and left since its last export, One-ID's id changes and a manifest, for marketing tools.
    Only customers whose consent covers the segment's purpose are exported."""
    from jobs.segments.export import export_segment

    r = export_segment(
        name,
        _date(as_of),
        fmt=fmt,
        to=to,
        incremental=incremental,
    )
    console.print(
        f"{r.segment}: {r.members} members (+{r.added} / -{r.removed}; {r.no_consent} without "
        f"consent left out), {r.rows} identifier rows -> {r.folder}"
    )


@segments_app.command("wecom-tags")
def segments_wecom_tags(day: DateOpt = None):
    """The day's tag changes per WeCom relationship, in the shape of WeCom's mark_tag API
    (guide userid, external_userid, tag names to add and remove) for the sender to post."""
    from jobs.segments.wecom_tags import export_wecom_tags

    r = export_wecom_tags(_date(day))
    console.print(
        f"wecom tags: {r.relationships} relationship(s), +{r.added} / -{r.removed} tag(s) "
        f"-> {r.folder}"
    )


@identity_app.command("run")
def identity_run(
    day: DateOpt = None,
    full: Annotated[
        bool, typer.Option("--full", help="Resolve all of silver, not the day's delta.")
    ] = False,
):
    """Resolve the identities in silver into one_ids (the day's delta when the last run's state
    allows, else all of silver); write silver.identity_map and the rest."""
    from jobs.daily import resolve_identity

    r = resolve_identity(_date(day), mode="full" if full else "auto")
    if "profiles" not in r:
        console.print(r.get("identity", r))
        return
    changes = ", ".join(f"{n} {k}" for k, n in sorted(r["changes"].items())) or "no changes"
    delta = (
        f"delta: {r['changed_records']:,} records changed, {r['closure_records']:,} re-resolved; "
        if r["mode"] == "incremental"
        else ""
    )
    console.print(
        f"{r['mode']} run ({r['why']}): {delta}{r['profiles']:,} profiles from "
        f"{r['identifiers']:,} identifiers ({r['occurrences']:,} occurrences); "
        f"{r['blocked']:,} values blocked; {changes}; {r['seconds']} s"
    )


@identity_app.command("block")
def identity_block(
    identifier_type: Annotated[str | None, typer.Argument(help="e.g. device_id, phone")] = None,
    identifier: Annotated[str | None, typer.Argument(help="The value as silver holds it.")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept with the block).")] = "",
    file: Annotated[
        Path | None,
        typer.Option(help="CSV of identifier_type,identifier,reason (e.g. the store tablets)."),
    ] = None,
):
    """Never use a value as an id again (ops.identity_controls); the next run unmerges it."""
    from jobs.identity.controls import add_blocks, read_block_file

    if (file is None) == (identifier_type is None or identifier is None):
        raise CdpError("give either TYPE VALUE or --file CSV")
    rows = read_block_file(file) if file else [(identifier_type, identifier, reason)]
    n = add_blocks(rows)
    console.print(f"{n} value(s) blocked; `cdp identity run` applies them")


def _pair_control(kind: str, first: str, second: str, reason: str, done: str) -> None:
    from jobs.identity.controls import add_pair
    from jobs.identity.explain import parse_identifier

    add_pair(kind, parse_identifier(first), parse_identifier(second), reason)
    console.print(f"{first} and {second} {done}")


FirstId = Annotated[str, typer.Argument(help="TYPE:VALUE, e.g. member_card:8001")]
SecondId = Annotated[str, typer.Argument(help="TYPE:VALUE")]
ReasonOpt = Annotated[str, typer.Option(help="Why (kept with the control).")]


@identity_app.command("split")
def identity_split(first: FirstId, second: SecondId, reason: ReasonOpt = ""):
    """Never put two identifiers in one profile again (the never-merge list); the next run
    refuses whatever joined them."""
    _pair_control(
        "never_merge", first, second, reason, "never merge; `cdp identity run` splits them"
    )


@identity_app.command("merge")
def identity_merge(first: FirstId, second: SecondId, reason: ReasonOpt = ""):
    """Declare two identifiers one person (a manual merge, within the registry's limits)."""
    _pair_control("merge", first, second, reason, "are one person; `cdp identity run` merges them")


@identity_app.command("controls")
def identity_controls():
    """The operators' blocks, never-merge pairs and manual merges."""
    from jobs.identity.controls import all_controls

    rows = all_controls()
    print_rows(
        ["kind", "identifier", "other", "reason", "created_at"],
        [
            (
                r["kind"],
                f"{r['identifier_type']}:{r['identifier']}",
                f"{r.get('other_type') or ''}:{r.get('other') or ''}".strip(":"),
                r["reason"],
                r["created_at"],
            )
            for r in rows
        ],
    )


@identity_app.command("explain")
def identity_explain(
    subject: Annotated[str, typer.Argument(help="A one_id, or TYPE:VALUE (a phone in clear too)")],
    other: Annotated[
        str | None, typer.Argument(help="TYPE:VALUE: print the edge path between the two")
    ] = None,
):
    """A profile's identifiers and edges, and the path (with rules) joining two identifiers."""
    from jobs.identity.explain import explain

    e = explain(subject, other)
    print_rows(
        ["identifier_type", "identifier", "records", "first_seen", "last_seen"],
        [
            (r["identifier_type"], r["identifier"], r["records"], r["first_seen"], r["last_seen"])
            for r in sorted(e.identifiers, key=lambda r: (r["identifier_type"], r["identifier"]))
        ],
        title=f"profile {e.one_id} (since {e.identifiers[0]['one_id_since']})",
    )
    if e.path is not None:
        if not e.path:
            console.print("no path of edges between them (joined through refused values?)")
        for hop in e.path:
            console.print(
                f"{hop['from'][0]}:{hop['from'][1]} -> {hop['to'][0]}:{hop['to'][1]}  "
                f"rule {hop['rule']}, {hop['records']} record(s)"
            )
    else:
        print_rows(
            ["from", "to", "rule", "records"],
            [
                (
                    f"{x['from_type']}:{x['from_id']}",
                    f"{x['to_type']}:{x['to_id']}",
                    x["rule"],
                    x["records"],
                )
                for x in e.edges
            ],
            title="edges",
        )
    if e.matches:
        print_rows(
            ["record", "record", "match probability", "fields (level: higher agrees more)"],
            [
                (m["record_l"], m["record_r"], f"{m['match_probability']:.4f}", m["levels"])
                for m in e.matches
            ],
            title="probabilistic matches (silver.identity_matches)",
        )
    for b in e.blocked:
        console.print(f"refused as a merge key: {b['reason']}")


@identity_app.command("diff")
def identity_diff(
    rules: Annotated[Path, typer.Option(help="A changed registry YAML to dry-run.")],
):
    """The merges, splits and retirements a registry change would cause (nothing written)."""
    from jobs.identity.explain import diff

    d = diff(rules)
    changes = ", ".join(f"{n} {k}" for k, n in sorted(d.changes.items())) or "no changes"
    console.print(f"profiles {d.profiles_before:,} -> {d.profiles_after:,}; {changes}")
    print_rows(
        ["change", "old one_id", "new one_id", "rule", "reason"],
        [tuple(x.values()) for x in d.examples],
        title="examples",
    )


@identity_app.command("evaluate")
def identity_evaluate(
    truth: Annotated[
        Path,
        typer.Option(help="Folder of labeled records (records.csv), e.g. the simulator's _truth."),
    ],
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="YAML mapping labeled datasets to identity rules (default: simulator's)."
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
    datasets: Annotated[
        str | None,
        typer.Option(
            help="Only pairs within these labeled datasets, comma-separated "
            "(e.g. crm.members,pos.members: the member lists)."
        ),
    ] = None,
):
    """Pairwise precision, recall and F1 of silver.identity_map against labeled records."""
    import json

    from jobs.identity.labeled import evaluate_lake

    scope = tuple(d.strip() for d in (datasets or "").split(",") if d.strip())
    report = evaluate_lake(truth, mapping, datasets=scope)
    for line in report.render():
        console.print(escape(line))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8")


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[
        str | None, typer.Option(help="Only this source or dataset, e.g. tmall or tmall.orders")
    ] = None,
    day: Annotated[str | None, typer.Option("--date", help="Only this date YYYY-MM-DD.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show at most.")] = 20,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Also the raw payload, unmasked: pipeline operators only."),
    ] = False,
):
    """The latest quarantined rows: date, source, file, line, field and reason (masked)."""
    from jobs.quality.quarantine import list_quarantined

    rows = list_quarantined(source=source, day=_date(day) if day else None, limit=limit, raw=raw)
    if not rows:
        console.print("nothing in quarantine")
        return
    columns = ["date", "source", "file", "line", "field", "reason"]
    print_rows(
        columns + (["raw"] if raw else []),
        [
            (r.logical_date, r.source, r.file, r.line, r.field, r.reason)
            + ((r.raw,) if raw else ())
            for r in rows
        ],
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
        # One line whatever the terminal's width; the message's own brackets are not markup.
        err.print("[bold red]error:[/]", escape(str(exc)), soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
