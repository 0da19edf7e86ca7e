"""Writing landing files: folders, encodings, stable workbooks, and the bad lines a connector must
quarantine (`spoil_row`, `spoil_json`, `spoil_sheet_row`; a writer draws them through
`context.Day`)."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import TextIO

from jobs.ingest.spec import get_spec

UNKNOWN_STATUS = "状态未知"  # in no spec's value map: always rejected as an unknown value
BAD_AMOUNTS = ("12..5", "abc", "￥-")
SPOIL_CLASSES = ("malformed", "missing", "wrong_type", "unknown_type")


def day_start(day: date) -> datetime:
    return datetime.combine(day, time())


def export_ts(value: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A time as the exports show it (Asia/Shanghai wall time, to the second)."""
    return value.strftime(fmt)


def day_folder(out: Path, source: str, dataset: str, day: date) -> Path:
    """The day's landing folder of a dataset (created): ``{out}/{source}/{dataset}/dt=DAY``."""
    folder = out / source / dataset / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def landing_file(out: Path, source: str, dataset: str, day: date, name: str) -> Iterator[TextIO]:
    """The day's landing file, written line by line (never a whole day in memory)."""
    path = day_folder(out, source, dataset, day) / name
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        yield fh


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps_line(obj: dict) -> str:
    """One compact JSON line (one encoder for all: json.dumps builds one per call)."""
    return _ENCODER.encode(obj)


@contextmanager
def spec_csv_file(
    out: Path, day: date, key: str, name: str, *, encoding: str = "utf-8-sig"
) -> Iterator[tuple[csv.writer, list[str]]]:
    """The day's CSV export `name` of a spec, streamed to its landing file (UTF-8 with a BOM
    unless told): yields (writer, fields in column order), the header written."""
    spec = get_spec(key)
    path = day_folder(out, spec.source, spec.dataset, day) / name
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow([c.header for c in spec.columns])
        yield writer, [c.field for c in spec.columns]


@contextmanager
def spec_workbook(out: Path, day: date, key: str, name: str) -> Iterator[tuple[object, list[str]]]:
    """The day's .xlsx export `name` of a spec (one sheet, the spec's): yields (sheet with the
    header written, fields in column order); saved on exit (`save_workbook`)."""
    from openpyxl import Workbook

    spec = get_spec(key)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(spec.sheet)
    sheet.append([c.header for c in spec.columns])
    yield sheet, [c.field for c in spec.columns]
    save_workbook(book, day_folder(out, spec.source, spec.dataset, day) / name, day)


def spoil_row(rng: random.Random, row: list[str], amount: int, status: int, key: int) -> list[str]:
    """One bad CSV line the connector must quarantine with a reason (a new list): truncated
    (malformed), unparseable amount, unknown status text, or a missing key. Arguments after the
    row are column indexes."""
    kind = rng.randrange(4)
    row = list(row)
    if kind == 0:
        return row[: rng.randrange(2, len(row) - 1)]
    if kind == 1:
        row[amount] = rng.choice(BAD_AMOUNTS)
    elif kind == 2:
        row[status] = UNKNOWN_STATUS
    else:
        row[key] = ""
    return row


def _pop_path(obj: dict, path: str) -> None:
    *parents, last = path.split(".")
    for key in parents:
        obj = obj[key]
    obj.pop(last, None)


def _set_path(obj: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    for key in parents:
        obj = obj.setdefault(key, {})
    obj[last] = value


def spoil_json(
    rng: random.Random,
    obj: dict,
    *,
    required: str,
    wrong_type: tuple[str, object],
    type_path: str | None = None,
    unknown_type: str = "",
) -> tuple[str, str]:
    """(damaged line, class): one bad-input class the connector must quarantine with a reason.

    `required` is a JSON path the schema requires; `wrong_type` a path and a value of the wrong
    type for it; `type_path` the event-type (or status) path, set to `unknown_type` (without
    one, that class is not drawn). `obj` is not changed.
    """
    classes = SPOIL_CLASSES if type_path else SPOIL_CLASSES[:3]
    kind = classes[rng.randrange(len(classes))]
    obj = json.loads(json.dumps(obj))
    if kind == "malformed":
        line = dumps_line(obj)
        return line[: rng.randrange(10, len(line) - 2)], kind
    if kind == "missing":
        _pop_path(obj, required)
    elif kind == "wrong_type":
        _set_path(obj, *wrong_type)
    else:
        _set_path(obj, type_path or "", unknown_type)
    return dumps_line(obj), kind


def spoil_sheet_row(
    rng: random.Random,
    cells: list[object],
    index: dict[str, int],
    *,
    key: str,
    amount: str,
    status: str,
    when: str,
) -> list:
    """A bad spreadsheet row: amount typed as text, unknown status, no key, or a date-time cell
    holding text that is no date. (A short row is no damage in a sheet: trailing cells are simply
    empty.) `key`, `amount`, `status`, `when` name the fields."""
    cells = list(cells)
    kind = rng.randrange(4)
    if kind == 0:
        cells[index[amount]] = rng.choice(BAD_AMOUNTS)
    elif kind == 1:
        cells[index[status]] = UNKNOWN_STATUS
    elif kind == 2:
        cells[index[key]] = None
    else:
        cells[index[when]] = "2026-13-45 25:00"
    return cells


def save_workbook(book: object, path: Path, day: date) -> None:
    """Save a workbook byte-for-byte the same for the same content (deterministic per seed):
    openpyxl stamps the document properties and every zip entry with the current time."""
    stamp = day_start(day)
    book.properties.created = book.properties.modified = stamp  # type: ignore[attr-defined]
    buffer = io.BytesIO()
    book.save(buffer)  # type: ignore[attr-defined]
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=stamp.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl sets `modified` to now on save
                data = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*",
                    rb"\g<1>" + f"{day}T00:00:00Z".encode(),
                    data,
                )
            dst.writestr(entry, data)


def active_second(rng: random.Random) -> int:
    """A second of the day, weighted to waking hours (busiest 20:00-23:00)."""
    hour = rng.choices(
        range(24),
        weights=[1, 1, 1, 1, 1, 1, 2, 4, 6, 6, 6, 7, 9, 7, 6, 6, 6, 7, 8, 9, 12, 14, 12, 6],
    )[0]
    return hour * 3600 + rng.randrange(3600)


def masked_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"
