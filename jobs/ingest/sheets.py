"""Excel and Parquet files as (header, numbered rows), read as a person sees them: merged cells
filled, formulas without a saved result marked, every sheet with data accounted for."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

from jobs.ingest.values import Uncalculated


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


_SHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _merged_ranges(ws) -> list[tuple[int, int, int, int]]:
    """(min_col, min_row, max_col, max_row) of every merged range spanning rows, read from the
    sheet's XML (openpyxl's read-only mode does not keep them)."""
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.cell import range_boundaries

    ranges = []
    try:
        source = ws._get_source()
    except (AttributeError, KeyError):  # pragma: no cover - not a read-only worksheet
        return []
    with source:
        for _event, element in iterparse(source):
            if element.tag == f"{_SHEET_NS}mergeCell":
                min_col, min_row, max_col, max_row = range_boundaries(element.get("ref"))
                if max_row > min_row:
                    ranges.append((min_col, min_row, max_col, max_row))
            element.clear()
    return ranges


def sheets_with_data(data: bytes) -> list[str]:
    """Names of the sheets of a workbook that hold at least one non-blank cell."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException flavours
        raise ValueError(f"not a readable .xlsx workbook ({exc})") from exc
    try:
        return [
            ws.title
            for ws in book.worksheets
            if any(not all(is_blank(v) for v in row) for row in ws.iter_rows(values_only=True))
        ]
    finally:
        book.close()


def xlsx_rows(
    data: bytes, sheet: str | None = None
) -> tuple[list[str], Iterator[tuple[int, Sequence[object]]]]:
    """(header, rows) of one sheet, streamed from the read-only workbook.

    The header is the first non-empty row; each row is (its row number on the sheet, its cells,
    from column A). What a person sees is what is read: a cell of a merged range spanning rows
    (a status merged over an order's two lines) reads as the range's value, and a formula with
    no saved result reads as `Uncalculated` (never as an empty cell). Blank rows between data
    rows come through (and are rejected as empty rows); the blank rows a spreadsheet keeps
    formatted after the last data row are not data and are not returned.
    Raises ValueError naming the sheets when `sheet` does not exist or nothing is on it.
    """
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        formulas = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException flavours
        raise ValueError(f"not a readable .xlsx workbook ({exc})") from exc
    if sheet is not None and sheet not in book.sheetnames:
        book.close()
        formulas.close()
        raise ValueError(f"no sheet {sheet!r}; the workbook has {', '.join(book.sheetnames)}")
    ws = book[sheet] if sheet is not None else book.worksheets[0]
    merged = _merged_ranges(ws)
    # Row numbers come from position: read-only mode fills gaps between stored rows.
    pairs = zip(
        ws.iter_rows(min_row=1, min_col=1, values_only=True),
        formulas[ws.title].iter_rows(min_row=1, min_col=1, values_only=True),
        strict=False,
    )
    anchors: dict[tuple[int, int], object] = {}

    def seen(line: int, values: tuple, texts: tuple) -> list[object]:
        cells = [
            Uncalculated(str(f)[1:])
            if v is None and isinstance(f, str) and f.startswith("=")
            else v
            for v, f in zip(values, texts, strict=False)
        ]
        for min_col, min_row, max_col, max_row in merged:
            if line == min_row and min_col <= len(cells):
                anchors[(min_row, min_col)] = cells[min_col - 1]
            elif min_row < line <= max_row:
                value = anchors.get((min_row, min_col))
                cells.extend([None] * (max_col - len(cells)))
                for col in range(min_col, max_col + 1):
                    cells[col - 1] = value
        return cells

    numbered = ((line, seen(line, v, f)) for line, (v, f) in enumerate(pairs, start=1))
    header: list[str] | None = None
    for _line, row in numbered:
        if not all(is_blank(v) for v in row):
            header = [("" if v is None else str(v)).strip() for v in row]
            while header and not header[-1]:
                header.pop()
            break
    if header is None:
        book.close()
        formulas.close()
        raise ValueError(f"sheet {ws.title!r} is empty: no header row")

    def rows() -> Iterator[tuple[int, Sequence[object]]]:
        blank_from: int | None = None  # first of a run of blank rows not yet returned
        try:
            for line, cells in numbered:
                if all(is_blank(v) for v in cells):
                    blank_from = line if blank_from is None else blank_from
                    continue
                if blank_from is not None:
                    for empty in range(blank_from, line):
                        yield empty, ()
                    blank_from = None
                while cells and is_blank(cells[-1]) and len(cells) > len(header):
                    cells.pop()
                yield line, cells
        finally:
            book.close()
            formulas.close()

    return header, rows()


PARQUET_BATCH_ROWS = 10_000


def parquet_rows(data: bytes) -> tuple[list[str], Iterator[tuple[int, Sequence[object]]]]:
    """(column names, rows) of a Parquet file, read one record batch at a time (bounded memory).

    Row numbers start at 1. Raises ValueError when the bytes are not a Parquet file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a readable Parquet file ({exc})") from exc
    header = list(pf.schema_arrow.names)

    def rows() -> Iterator[tuple[int, Sequence[object]]]:
        line = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for row in zip(*columns, strict=True):
                line += 1
                yield line, row

    return header, rows()
