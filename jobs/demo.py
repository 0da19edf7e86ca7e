"""`cdp demo`: the platform end to end on the embedded default, then a summary.

Simulated world -> the `cdp_daily` DAG through Airflow for every simulated day -> local Kafka ->
the streaming trigger job for a short while -> stop -> rows per table, where things are, and what
to try next. Safe to run twice: every step replaces what it wrote for its dates.
"""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console

from jobs.common.output import print_rows
from jobs.common.progress import step
from jobs.common.settings import ensure_local_key, get_settings

TASKS_SHOWN = 6  # per DAG run, the slowest tasks the demo prints

console = Console()


def run_demo(customers: int = 1000, days: int = 3, stream_seconds: float = 90.0) -> None:
    from jobs.common import duck
    from jobs.common.airflow_env import dags_test, ensure_db, task_seconds
    from jobs.daily import preflight
    from jobs.identity.controls import add_blocks, read_block_file
    from jobs.simulator import simulate
    from jobs.simulator.run import STORE_DEVICES
    from jobs.stream import broker
    from jobs.stream.producer import produce, read_events

    settings = get_settings()
    ensure_local_key(settings)
    settings = get_settings()
    # Bad settings (a short key in CDP_PII_HMAC_KEY, ...) fail now, not minutes into the DAG;
    # the landing area is about to be written by the simulator.
    preflight(None, settings, landing=False)
    started = time.monotonic()
    end = date.today() - timedelta(days=1)
    landing = Path(settings.landing_root)
    with step(f"simulate {customers} customers over {days} days"):
        world = simulate(landing, customers=customers, days=days, end=end)
    with step("block the brand's store tablets as ids (cdp identity block --file)"):
        # The brand's own device register: a kiosk every visitor browses on is no one's device.
        add_blocks(read_block_file(landing / STORE_DEVICES), settings)
    with step("airflow db migrate (SQLite)"):
        ensure_db(settings)
    for offset in range(days):
        day = world.start + timedelta(days=offset)
        with step(f"airflow dags test cdp_daily {day}"):
            dags_test("cdp_daily", day, settings)
        seconds = task_seconds("cdp_daily", day, settings)
        print_rows(
            ["task", "seconds"],
            [(task, f"{s:.1f}") for task, s in list(seconds.items())[:TASKS_SHOWN]],
            title=f"cdp_daily {day}: the slowest tasks (of {len(seconds)})",
        )

    with step("start the local Kafka broker"):
        info = broker.start(settings)
        broker.ensure_topics(
            info.bootstrap_servers, [settings.kafka.events_topic, settings.kafka.triggers_topic]
        )
    try:
        # The last simulated events, plus one broken message the job must quarantine.
        events: list[dict | bytes] = [*read_events(landing / "web/events/events.jsonl", 300)]
        events.append(b'{"event_type": "add_to_cart", "customer_key": ')

        def send_after_start() -> None:
            time.sleep(5)
            produce(events, bootstrap_servers=info.bootstrap_servers)

        sender = threading.Thread(target=send_after_start, daemon=True)
        with step(f"streaming job for {stream_seconds:.0f}s ({len(events)} events)"):
            from jobs.stream.job import run as run_stream

            sender.start()
            summary = run_stream(
                info.bootstrap_servers,
                run_seconds=stream_seconds,
                # A short window so abandoned carts fire within the demo's run.
                timeout_seconds=min(settings.stream.cart_abandon_seconds, 10),
            )
            sender.join(timeout=30)
        console.print(
            f"  stream: {summary.batches} micro-batches, {summary.triggers} "
            f"cart-abandonment triggers, {summary.quarantined} events quarantined"
        )
    finally:
        from pyspark.sql import SparkSession

        # Spark caches Kafka producers; stop it first or they keep calling a stopped broker.
        if (spark := SparkSession.getActiveSession()) is not None:
            spark.stop()
        with step("stop the local Kafka broker"):
            broker.stop(settings)

    counts = duck.row_counts(settings)
    print_rows(
        ["table", "rows"],
        [(n, c) for n, c, _ in counts],
        title=f"Demo done in {time.monotonic() - started:.0f}s",
    )
    console.print(f"lake:      {settings.lake_root}")
    console.print(f"exports:   {settings.exports_dir}")
    console.print(f"airflow:   {settings.airflow.home} (SQLite)")
    console.print(
        'next, try: [bold].venv/bin/cdp query "select one_id, lifecycle_stage, rfm_segment, '
        'total_amount, tags from gold.customer_360 order by total_amount desc limit 10"[/]'
    )
