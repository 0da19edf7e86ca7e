"""Progress for long steps: a Rich bar on a terminal, plain log lines elsewhere (Airflow, CI)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
console = Console(stderr=True)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on a TTY, or a line per item otherwise (Airflow logs, CI)."""
    items = list(items) if total is None else items
    total = len(items) if total is None else total  # type: ignore[arg-type]
    if not sys.stderr.isatty():
        for i, item in enumerate(items, 1):
            console.print(f"{description}: {i}/{total}", highlight=False)
            yield item
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


@contextmanager
def step(description: str) -> Iterator[None]:
    """A spinner for one long step of unknown length, then a line with its duration."""
    started = time.monotonic()
    if sys.stderr.isatty():
        with console.status(f"[bold]{description}[/] ..."):
            yield
    else:
        console.print(f"→ {description} ...", highlight=False)
        yield
    console.print(f"[green]✓[/] {description} ({time.monotonic() - started:.0f}s)", highlight=False)
