"""What commands print for people: tables on standard output (progress goes to standard error,
jobs/common/progress.py).

A table that does not fit the terminal is printed vertically, one block per row with a column
per line (psql's expanded display), rather than squeezed until every header reads `cus…`.
`write_rows` gives the same rows as CSV or JSON for programs, to standard output or a file.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

console = Console()
FORMATS = ("table", "csv", "json")
# A column narrower than this is unreadable; wider values wrap inside their column.
READABLE_WIDTH = 12


def _text(value: object) -> str:
    return "" if value is None else str(value)


def fits(columns: list[str], rows: list[tuple], width: int) -> bool:
    """Whether a table of `rows` shows every header whole and every column at a readable width
    within `width` terminal cells."""
    needed = 1  # the left border
    for i, name in enumerate(columns):
        widest = max([cell_len(_text(r[i])) for r in rows] + [0])
        needed += max(cell_len(name), min(widest, READABLE_WIDTH)) + 3  # padding and border
    return needed + len(columns) <= width  # room for rich to wrap values without cutting


def print_rows(columns: list[str], rows: list[tuple], title: str | None = None) -> None:
    if columns and not fits(columns, rows, console.width):
        _print_vertical(columns, rows, title)
        return
    table = Table(title=title)
    for c in columns:  # a header is never cut; a long value wraps whole
        table.add_column(c, min_width=cell_len(c), overflow="fold")
    for r in rows:
        table.add_row(*(_text(v) for v in r))
    console.print(table)


def _print_vertical(columns: list[str], rows: list[tuple], title: str | None) -> None:
    if title:
        console.print(title, style="bold", highlight=False)
    for n, row in enumerate(rows, 1):
        table = Table(title=f"row {n}", title_justify="left", show_header=False, expand=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in zip(columns, row, strict=True):
            table.add_row(name, _text(value))
        console.print(table)
    if not rows:
        console.print("(no rows)")


def _jsonable(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact: a float would turn 0.10 into 0.1000000000000000055
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def render_rows(columns: list[str], rows: list[tuple], fmt: str) -> str:
    """The rows as CSV (a header line first) or JSON (a list of objects)."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_text(v) for v in r] for r in rows)
        return buffer.getvalue()
    if fmt == "json":
        records = [{c: _jsonable(v) for c, v in zip(columns, r, strict=True)} for r in rows]
        return json.dumps(records, ensure_ascii=False, indent=1) + "\n"
    raise ValueError(f"unknown format {fmt!r}; expected csv or json")


def write_rows(columns: list[str], rows: list[tuple], fmt: str, out: Path | None = None) -> None:
    """The rows in `fmt` (table, csv, json) on standard output, or in `fmt` (csv, json) into
    `out` (UTF-8)."""
    if out is None:
        if fmt == "table":
            print_rows(columns, rows)
        else:
            console.file.write(render_rows(columns, rows, fmt))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_rows(columns, rows, fmt), encoding="utf-8")


def out_format(fmt: str | None, out: Path | None) -> str:
    """The format asked for, else the one `out`'s extension names (.csv, .json), else a table.
    Raises ValueError for an unknown format or a table into a file."""
    if fmt is None:
        if out is None:
            return "table"
        fmt = out.suffix.lower().lstrip(".")
        if fmt not in ("csv", "json"):
            raise ValueError(f"--out {out}: name a .csv or .json file, or pass --format")
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "table" and out is not None:
        raise ValueError("--format table prints to the terminal; write csv or json into --out")
    return fmt
