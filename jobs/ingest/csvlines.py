"""Cutting a CSV export's physical lines into records: quoted cells may hold line breaks, but an
unbalanced quote never swallows the lines after it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

# A quoted field may hold line breaks (an address, a review); one spanning more lines than this
# is an unbalanced quote.
MAX_RECORD_LINES = 200
csv.field_size_limit(2**31 - 1)


_OTHER_DELIMITERS = {";": "';'", "\t": "a tab", "|": "'|'", ",": "','"}


def delimiter_hint(header: list[str], delimiter: str) -> str:
    """'; the header looks ';'-delimited …' when one header cell holds another separator."""
    if len(header) != 1:
        return ""
    for sep, name in _OTHER_DELIMITERS.items():
        if sep != delimiter and header[0].count(sep) >= 1:
            return (
                f"; the header is one column that looks {name}-delimited: set "
                f"`delimiter: {sep!r}` (the file is read as {_OTHER_DELIMITERS[delimiter]}-"
                "delimited)"
            )
    return ""


def _parse_one(text: str, delimiter: str) -> tuple[list[str] | None, str | None]:
    """One CSV record read from `text`: (cells, None); (None, "open") when a quoted field is
    still open at its end; (None, why) when it is not exactly one record."""
    if '"' not in text:
        return text.split(delimiter), None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        row = next(reader)
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            return None, "open"
        if "\n" in text:
            return None, str(exc)
        # A stray quote inside a quoted cell ("a"b): read the line as spreadsheets do.
        return next(csv.reader([text], delimiter=delimiter)), None
    except StopIteration:
        return [""], None
    if next(reader, None) is not None:
        return None, "more than one record"
    return row, None


def _closing_line(
    lines: list[str], start: int, delimiter: str, width: int | None, bad: dict[int, str]
) -> tuple[int, list[str]] | None:
    """(last line, cells) of a record whose quoted field opens on line index `start` and closes
    on a later line, or None when it does not close where a record can end (an unbalanced
    quote): the quote never closes, the record would have the wrong number of fields, or a
    line it would swallow reads as a record of its own."""
    quotes = 0
    for end in range(start + 1, min(len(lines), start + MAX_RECORD_LINES)):
        line = lines[end]
        if end + 1 in bad or (width and width > 2 and line.count(delimiter) >= width - 1):
            return None
        quotes += line.count('"')
        if quotes % 2 == 0:  # still inside the quoted field
            continue
        cells, problem = _parse_one("\n".join(lines[start : end + 1]), delimiter)
        if problem == "open":
            quotes = 0  # the field closed, and another one opened: look further
            continue
        if cells is None or (width is not None and len(cells) != width):
            return None
        return end, cells
    return None


def csv_records(
    lines: list[str], delimiter: str = ",", bad: dict[int, str] | None = None
) -> Iterator[tuple[int, int, list[str] | None, str | None]]:
    """(first line number, physical lines spanned, cells or None, why not) of every record.

    The first record is the header; its width is what a data record may have. A quoted field
    that opens and does not close on its line may span lines (an address with a line break),
    but only when it closes and the record then has the header's width: otherwise the quote is
    unbalanced, that one line is rejected and the lines after it are read on their own
    (instead of being swallowed into one broken row).
    """
    bad = bad or {}
    width: int | None = None
    i = 0
    while i < len(lines):
        number = i + 1
        if number in bad:
            yield number, 1, None, bad[number]
            i += 1
            continue
        cells, problem = _parse_one(lines[i], delimiter)
        if problem is None:
            yield number, 1, cells, None
            width = len(cells) if width is None else width
            i += 1
            continue
        found = _closing_line(lines, i, delimiter, width, bad) if problem == "open" else None
        if found is None:
            yield (
                number,
                1,
                None,
                (
                    "unbalanced quote: a quoted field opens on this line and does not close where "
                    "a record could end; this line is quarantined and the next ones are read on "
                    "their own"
                ),
            )
            i += 1
            continue
        end, cells = found
        yield number, end - i + 1, cells, None
        width = len(cells) if width is None else width
        i = end + 1
