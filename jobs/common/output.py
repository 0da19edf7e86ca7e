"""What commands print for people: tables on standard output (progress goes to standard error,
jobs/common/progress.py)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()


def print_rows(columns: list[str], rows: list[tuple], title: str | None = None) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    console.print(table)
