"""`cdp import`: a brand's own exports (CRM, ERP, store lists) into bronze, like a platform's.

Brands keep orders, members and events in systems we cannot integrate one by one, and they send
what those systems export: CSV (UTF-8, UTF-8 with BOM or GBK), Excel, Parquet or JSON lines, with
their own column names. A small mapping file says which column is which of our fields; the import
then runs the same parser, coercion, JSON-Schema validation, quarantine and reconciliation as the
daily platform ingest (`jobs.ingest.records`, `jobs.ingest.bronze.ingest_files`), so an imported
row is held to the same rules as a Tmall one. A dry run parses everything without Spark and shows
what would land and what would be quarantined and why, so a mapping is fixed before anything is
written.

Each dataset has one generic target record (``schemas/import/<record>/<version>.json``, see
`DATASETS`):

- ``orders`` -> ``import/order``: ``order_id``, ``created``, ``payment`` and at least one of
  ``buyer_id`` / ``phone`` (an order nobody can be attributed to feeds no profile).
- ``customers`` -> ``import/customer``: ``customer_id`` (the brand's own id) is required; what
  member lists hold is optional: name (or family_name and given_name), gender, birthday
  (YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD), a one-line ``address`` or ``street_address`` with
  district, city, province and postcode, ``id_card`` (身份证), phone, email, WeChat ids, member
  card, registration time, ``marketing_consent`` and ``consent_at``, level, points, spend, tags.
  Any of them that fails to parse lands as null, counted by reason, and the member is kept
  (only a bad customer_id quarantines the row): phone, email, ID number and birthday must pass
  the cleaning library (`jobs.common.clean`, the schema's ``x-parse``) and are kept as
  given when they do. Gender (男/女/male/female/1/2/M/F...) and consent (是/否/同意/拒绝/yes/no/
  true/false/1/0...) are read through default value maps (`DEFAULT_VALUES`) that a mapping's
  own ``values:`` extend.
- ``events`` -> ``import/event``: ``event_type``, ``ts`` and at least one of ``customer_id``,
  ``buyer_id``, ``phone``, ``wechat_openid``, ``anonymous_id``. ``event_id`` is optional: an event
  without who and when cannot feed a profile, whatever its id.

The mapping file (YAML; see docs/examples/import_orders_mapping.yaml)::

    sheet: 订单明细          # optional, .xlsx only: the sheet to read (default: the first)
    encoding: gbk           # optional, .csv/.jsonl only: fixed encoding (default: detected)
    columns:                # the file's column (CSV/Excel header, Parquet column, JSON path)
      订单编号: order_id     #   -> our field; its type comes from the target schema
      下单时间: {field: created, type: datetime}   # `type`, if given, must agree with it
      订单状态:
        field: status
        values: {已完成: completed, 已关闭: closed}  # value map: another value is a bad value
    delimiter: ";"          # optional, .csv only: the field separator (default ',')

Types are ``string | decimal | int | datetime | date`` (see `jobs.ingest.values.coerce`).
Columns the mapping does not name are kept in ``_extra``, never dropped. The file's format
comes from its extension, in any case: ``.csv``, ``.xlsx``, ``.parquet``, ``.jsonl`` /
``.json`` (JSON lines). A bad value follows one policy (jobs/ingest/field_roles.yaml): a bad
required field or identifier quarantines the row, any other bad field lands as null with its
reason counted (ops.field_issues) and its text kept in the row's ``_issues``.

Rows land in ``bronze.import_<source>_<dataset>`` for the logical date, keyed on the file
(`import_key`): importing the same file again changes nothing; a second, different file for the
same date (part 2 of an export) adds its rows; a re-sent file with new bytes replaces only its
own rows, and is refused if it has fewer lines unless ``--allow-shrink``. A wrongly imported
file is taken out with ``cdp retract``. The imported file is kept under the landing area's
``_imports/`` so an interrupted import can be completed and its quarantine replayed.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from jobs.common.errors import CdpError
from jobs.common.masking import mask_pii, mask_value
from jobs.common.yamlio import load_yaml
from jobs.ingest.csvlines import csv_records, delimiter_hint
from jobs.ingest.decoding import decode_lines
from jobs.ingest.records import Record, Rejected, parse_file
from jobs.ingest.sheets import parquet_rows, sheets_with_data, xlsx_rows
from jobs.ingest.spec import FIELD_TYPES, SCHEMAS_DIR, Column, SourceSpec, load_specs

DATASETS = {
    "orders": "import/order/1-0-0",
    "customers": "import/customer/1-1-0",
    "events": "import/event/1-0-0",
}
EXTENSIONS = {
    ".csv": "csv",
    ".xlsx": "xlsx",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".json": "jsonl",
}


def _spellings(values: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """value -> code for each way a code is written (ASCII words also Capitalized and UPPER)."""
    out: dict[str, str] = {}
    for code, written in values.items():
        for word in written:
            for spelling in (word, word.capitalize(), word.upper()):
                out.setdefault(spelling, code)
    return out


# What brands' member lists write for gender and consent -> the schema's codes. A mapping's own
# `values:` for the field extend these (and win where they name the same value).
DEFAULT_VALUES: dict[str, dict[str, dict[str, str]]] = {
    "customers": {
        "gender": _spellings(
            {
                "M": ("男", "男性", "先生", "m", "male", "1"),
                "F": ("女", "女性", "女士", "f", "female", "2"),
                "U": ("未知", "保密", "u", "unknown", "0"),
            }
        ),
        "marketing_consent": _spellings(
            {
                "yes": ("是", "同意", "已同意", "yes", "y", "true", "1"),
                "no": ("否", "拒绝", "不同意", "no", "n", "false", "0"),
            }
        ),
    }
}

_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_DATETIME_PATTERN = "^\\d{4}-\\d{2}-\\d{2}T"
_DATE_PATTERN = "^\\d{4}-\\d{2}-\\d{2}"
# How many first lines of a JSON-lines file show which paths it has (for the up-front check).
_JSON_HEADER_LINES = 1000


@dataclass(frozen=True)
class Target:
    """A dataset's target record: its schema, field types, and what a mapping must cover."""

    dataset: str
    schema: str
    types: dict[str, str]  # field -> string | decimal | int | datetime, in schema order
    required: tuple[str, ...]
    one_of: tuple[str, ...]  # at least one of these (empty: no such rule)


def _field_type(prop: dict) -> str:
    types = prop.get("type", "string")
    types = {types} if isinstance(types, str) else set(types)
    if "number" in types:
        return "decimal"
    if "integer" in types:
        return "int"
    pattern = str(prop.get("pattern", ""))
    if pattern.startswith(_DATETIME_PATTERN):
        return "datetime"
    if pattern.startswith(_DATE_PATTERN):
        return "date"
    return "string"


def target(dataset: str) -> Target:
    if dataset not in DATASETS:
        raise CdpError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    schema = json.loads((SCHEMAS_DIR / f"{DATASETS[dataset]}.json").read_text(encoding="utf-8"))
    branches = schema.get("anyOf", [])
    return Target(
        dataset=dataset,
        schema=DATASETS[dataset],
        types={name: _field_type(prop) for name, prop in schema["properties"].items()},
        required=tuple(schema.get("required", [])),
        one_of=tuple(name for b in branches for name in b.get("required", [])),
    )


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".xls", ".et"):
        raise CdpError(f"{path.name}: old binary Excel ({suffix}) is not read; save it as .xlsx")
    if suffix not in EXTENSIONS:
        raise CdpError(
            f"{path.name}: unknown file type {suffix or '(none)'!r}; expected one of "
            f"{', '.join(EXTENSIONS)}"
        )
    return EXTENSIONS[suffix]


def _columns(raw: object, where: str, tgt: Target) -> tuple[list[Column], dict[str, dict]]:
    if not isinstance(raw, dict) or not raw:
        raise CdpError(f"{where}: `columns:` must map each file column to one of our fields")
    columns: list[Column] = []
    values: dict[str, dict[str, str]] = {}
    for header, entry in raw.items():
        entry = {"field": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
            raise CdpError(
                f"{where}: column {header!r} must name a field (`{header}: order_id` or "
                f"`{header}: {{field: order_id}}`), got {entry!r}"
            )
        unknown_keys = set(entry) - {"field", "type", "values"}
        if unknown_keys:
            raise CdpError(
                f"{where}: column {header!r} has unknown key(s) {sorted(unknown_keys)}; "
                "expected field, type, values"
            )
        name = entry["field"]
        if name not in tgt.types:
            raise CdpError(
                f"{where}: column {header!r} maps to {name!r}, which {tgt.dataset} do not have; "
                f"fields: {', '.join(tgt.types)}"
            )
        type_ = entry.get("type", tgt.types[name])
        if type_ not in FIELD_TYPES:
            raise CdpError(f"{where}: column {header!r}: unknown type {type_!r}; {FIELD_TYPES}")
        if type_ != tgt.types[name]:
            raise CdpError(
                f"{where}: column {header!r}: field {name!r} is a {tgt.types[name]} in "
                f"{tgt.schema}, not a {type_}; drop `type:` or change it"
            )
        mapped = entry.get("values")
        if mapped is not None:
            if not isinstance(mapped, dict) or not mapped:
                raise CdpError(f"{where}: column {header!r}: `values:` must map value -> value")
            values[name] = {str(k): str(v) for k, v in mapped.items()}
        columns.append(Column(header=str(header), field=name, type=type_))
    return columns, values


def build_spec(
    mapping: dict, *, source: str, dataset: str, fmt: str, where: str = "mapping"
) -> SourceSpec:
    """A `SourceSpec` for one import from its parsed mapping; CdpError names what is wrong."""
    if not _SOURCE_NAME.match(source):
        raise CdpError(
            f"--source {source!r}: use lowercase letters, digits and _ (it names the bronze "
            "table), starting with a letter, e.g. brand_crm"
        )
    if f"{source}.{dataset}" in load_specs():
        raise CdpError(
            f"--source {source!r}: {source}.{dataset} is a platform source ingested every day; "
            f"importing under its name would replace its quarantine and manifest rows. Choose "
            f"another name, e.g. {source}_export"
        )
    tgt = target(dataset)
    if not isinstance(mapping, dict):
        raise CdpError(f"{where}: expected a YAML mapping with `columns:`")
    unknown = set(mapping) - {"columns", "sheet", "encoding", "delimiter"}
    if unknown:
        raise CdpError(
            f"{where}: unknown key(s) {sorted(unknown)}; expected columns, sheet, encoding, "
            "delimiter"
        )
    columns, values = _columns(mapping.get("columns"), where, tgt)
    fields = [c.field for c in columns]
    twice = sorted({f for f in fields if fields.count(f) > 1})
    if twice:
        raise CdpError(f"{where}: several columns map to {', '.join(twice)}; map each field once")
    unmapped = [f for f in tgt.required if f not in fields]
    if unmapped:
        raise CdpError(
            f"{where}: no column maps to required field(s) {', '.join(unmapped)} of {dataset}"
        )
    if tgt.one_of and not set(tgt.one_of) & set(fields):
        raise CdpError(
            f"{where}: {dataset} need at least one of {', '.join(tgt.one_of)}; map a column to one"
        )
    for name, defaults in DEFAULT_VALUES.get(dataset, {}).items():
        if name in fields:
            values[name] = {**defaults, **values.get(name, {})}
    sheet, encoding = mapping.get("sheet"), mapping.get("encoding")
    delimiter = mapping.get("delimiter", ",")
    if delimiter != ",":
        if fmt != "csv":
            raise CdpError(f"{where}: `delimiter:` is for .csv files, this one is {fmt}")
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
            raise CdpError(
                f"{where}: `delimiter:` must be one character such as ';' or a tab ('\\t'), "
                f"got {delimiter!r}"
            )
    if sheet is not None and fmt != "xlsx":
        raise CdpError(f"{where}: `sheet:` is for .xlsx files, this one is {fmt}")
    if encoding is not None:
        if fmt not in ("csv", "jsonl"):
            raise CdpError(f"{where}: `encoding:` is for .csv/.jsonl files, this one is {fmt}")
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise CdpError(f"{where}: unknown encoding {encoding!r} (e.g. utf-8, gbk)") from exc
    order = list(tgt.types)
    return SourceSpec(
        source=source,
        dataset=dataset,
        format=fmt,
        schema=tgt.schema,
        bronze_table=f"import_{source}_{dataset}",
        # Schema order: every mapping of a dataset gives its bronze table the same column order.
        columns=tuple(sorted(columns, key=lambda c: order.index(c.field))),
        values=values,
        sheet=None if sheet is None else str(sheet),
        encoding=encoding,
        delimiter=delimiter,
    )


def load_mapping(path: Path, *, source: str, dataset: str, fmt: str) -> SourceSpec:
    if not path.is_file():
        raise CdpError(f"mapping {path} does not exist")
    raw = load_yaml(path, f"mapping {path}")
    return build_spec(raw, source=source, dataset=dataset, fmt=fmt, where=f"mapping {path.name}")


def _json_paths(lines: list[str]) -> set[str]:
    """Top-level keys of the first JSON objects of a JSON-lines file (unparseable lines skipped)."""
    keys: set[str] = set()
    for raw in itertools.islice(lines, _JSON_HEADER_LINES):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            keys.update(obj)
    return keys


def inspect_file(path: Path, spec: SourceSpec) -> tuple[list[str], str | None]:
    """(the file's columns, its detected text encoding or None): read before any row is parsed.

    Raises CdpError (one line naming the file) when the file cannot be read as the mapping says:
    not readable at all, a header naming a mapped column twice, a workbook with data on several
    sheets and no `sheet:`, or a mapping naming columns the file does not have (all of them,
    with the columns the file has, and a hint when the file looks ';'- or tab-delimited). Bad
    lines are not a reason to refuse: they are quarantined line by line.
    """
    if not path.is_file():
        raise CdpError(f"{path} does not exist")
    data = path.read_bytes()
    encoding = None
    try:
        if spec.format in ("csv", "jsonl"):
            lines, encoding, bad = decode_lines(data, spec.encoding)
            if spec.format == "csv":
                first = next(csv_records(lines, spec.delimiter, bad), None)
                if first is not None and first[2] is None:
                    raise CdpError(f"{path.name}: line {first[0]} (the header): {first[3]}")
                header = [h.strip() for h in first[2]] if first else []
            else:
                if "\n".join(lines[:1]).lstrip().startswith("["):
                    raise CdpError(
                        f"{path.name}: a JSON array; export JSON lines (one object per line)"
                    )
                header = sorted(_json_paths(lines))
        elif spec.format == "xlsx":
            header, rows = xlsx_rows(data, spec.sheet)
            rows.close()
            if spec.sheet is None:
                sheets = sheets_with_data(data)
                if len(sheets) > 1:
                    raise CdpError(
                        f"{path.name}: the workbook has data on {len(sheets)} sheets "
                        f"({', '.join(sheets)}); only one is read per import: name it with "
                        "`sheet:` in the mapping and import each sheet on its own"
                    )
        else:
            header, _rows = parquet_rows(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CdpError(f"{path.name}: {exc}") from exc
    if spec.format != "jsonl":
        twice = sorted(
            {h for h in header if h and header.count(h) > 1} & {c.header for c in spec.columns}
        )
        if twice:
            where = ", ".join(str(i + 1) for i, h in enumerate(header) if h == twice[0])
            raise CdpError(
                f"{path.name}: the header names column {twice[0]!r} more than once (columns "
                f"{where}); which one the mapping means is ambiguous: rename or remove one"
            )
    if spec.format == "jsonl":
        unknown = [c.header for c in spec.columns if c.path[0] not in header]
    else:
        unknown = [c.header for c in spec.columns if c.header not in header]
    if unknown and any(header):  # an empty file has no header: ingestion decides (a re-send?)
        hint = delimiter_hint(header, spec.delimiter) if spec.format == "csv" else ""
        raise CdpError(
            f"{path.name}: the mapping names column(s) the file does not have: "
            f"{', '.join(unknown)}; the file has: {', '.join(h for h in header if h) or 'nothing'}"
            f"{hint}"
        )
    return header, encoding


# --- dry run -----------------------------------------------------------------------------------

_MASKS = (
    # coerce: "... got '12..5'"; typed cells: "the number 1.2e17 has ..."
    (re.compile(r"got .*$"), "got …"),
    (re.compile(r"the number \S+ "), "the number … "),
    (re.compile(r"unknown value .*?; expected"), "unknown value …; expected"),
    # JSON Schema: "field 'phone': '12x' does not match '^…'" and friends
    (
        re.compile(
            r"^(field '[^']*'): .*? (does not match|is not of type|is less than|is greater than"
            r"|is too long|is too short|is not one of|is not a|is not valid)"
        ),
        r"\1: … \2",
    ),
)
MAX_REASON_GROUPS = 50


def reason_pattern(reason: str) -> str:
    """A rejection reason with the offending value masked, so alike rejections group together
    (and no personal data reaches the screen)."""
    for pattern, repl in _MASKS:
        reason = pattern.sub(repl, reason)
    return mask_pii(reason)


@dataclass
class ReasonGroup:
    pattern: str
    rows: int = 0
    lines: list[int] = field(default_factory=list)  # the first few


@dataclass
class DryRun:
    path: Path
    spec: SourceSpec
    header: list[str]
    encoding: str | None
    rows_read: int = 0
    would_land: int = 0
    preview: list[Record] = field(default_factory=list)
    reasons: dict[str, ReasonGroup] = field(default_factory=dict)
    # Bad optional values that would land as null (and identifiers kept but flagged), by reason.
    issues: dict[str, ReasonGroup] = field(default_factory=dict)

    @property
    def would_quarantine(self) -> int:
        return self.rows_read - self.would_land

    @property
    def unmapped_columns(self) -> list[str]:
        mapped = {c.header for c in self.spec.columns}
        return [h for h in self.header if h and h not in mapped]


def summarize(
    items: Iterator[Record | Rejected], report: DryRun, *, preview: int, lines_per_reason: int = 5
) -> DryRun:
    """Count records and rejections into `report`, keeping only bounded samples (pure)."""

    def count(groups: dict[str, ReasonGroup], reason: str, line: int) -> None:
        key = reason_pattern(reason)
        if key not in groups and len(groups) >= MAX_REASON_GROUPS:
            key = "(other reasons)"
        group = groups.setdefault(key, ReasonGroup(key))
        group.rows += 1
        if len(group.lines) < lines_per_reason:
            group.lines.append(line)

    for item in items:
        report.rows_read += item.lines
        if isinstance(item, Record):
            report.would_land += item.lines
            if len(report.preview) < preview:
                report.preview.append(item)
            for issue in item.issues:
                count(report.issues, f"field {issue.field!r} ({issue.reason})", item.line)
            continue
        count(report.reasons, item.reason, item.line)
    return report


def dry_run(path: Path, spec: SourceSpec, *, preview: int = 10) -> DryRun:
    """Parse the whole file as the import would, without Spark: counts, preview, reasons."""
    header, encoding = inspect_file(path, spec)
    report = DryRun(path, spec, header, encoding)
    try:
        return summarize(parse_file(path, spec), report, preview=preview)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CdpError(f"{path.name}: {exc}") from exc


def render_dry_run(report: DryRun, console) -> None:
    """The dry run as a person reads it: what the file is, a preview, counts, reasons."""
    from rich.table import Table

    spec = report.spec
    what = [spec.format]
    if report.encoding:
        what.append(f"encoding {report.encoding}")
    if spec.sheet:
        what.append(f"sheet {spec.sheet!r}")
    console.print(
        f"[bold]{report.path.name}[/] ({', '.join(what)}) -> bronze.{spec.bronze_table} "
        f"(schema {spec.schema}); dry run, nothing written"
    )
    if report.unmapped_columns:
        console.print(f"kept in _extra (not mapped): {', '.join(report.unmapped_columns)}")
    table = Table(title=f"first {len(report.preview)} rows that would land")
    table.add_column("line", justify="right")
    for c in spec.columns:
        table.add_column(f"{c.field}\n[dim]{c.header}[/]", overflow="fold")
    for rec in report.preview:  # personal data masked: a preview is shown, not stored
        table.add_row(
            str(rec.line),
            *(
                "" if rec.values[c.field] is None else mask_value(c.field, rec.values[c.field])
                for c in spec.columns
            ),
        )
    console.print(table)
    console.print(
        f"rows read {report.rows_read}: would land {report.would_land}, "
        f"would be quarantined {report.would_quarantine}"
    )
    if report.issues:
        console.print(
            _groups_table("would land with a field nulled or flagged, by reason", report.issues)
        )
    if report.reasons:
        console.print(_groups_table("would be quarantined, by reason", report.reasons))


def _groups_table(title: str, groups: dict[str, ReasonGroup]):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("reason")
    table.add_column("rows", justify="right")
    table.add_column("first lines")
    for group in sorted(groups.values(), key=lambda g: -g.rows):
        more = ", …" if group.rows > len(group.lines) else ""
        table.add_row(group.pattern, str(group.rows), ", ".join(map(str, group.lines)) + more)
    return table


# --- real run ----------------------------------------------------------------------------------


def import_key(spec: SourceSpec, logical_date: date, name: str) -> str:
    """An imported file's identity in the lake (`_file`): its source, dataset, date and name,
    plus the sheet when one was named (two sheets of one workbook are two parts)."""
    sheet = f"#{spec.sheet}" if spec.sheet else ""
    return f"import/{spec.source}/{spec.dataset}/dt={logical_date}/{name}{sheet}"


def keep_copy(path: Path, spec: SourceSpec, logical_date: date, settings) -> Path | object:
    """Copy the imported file into the landing area (``_imports/...``) before anything is
    written, so a batch a crash interrupted can be redone, and quarantine can be replayed, from
    the file as it was imported. Same bytes already there: nothing copied."""
    import pyarrow.fs as pafs

    from jobs.ingest.landing import open_location

    folder = (
        f"{settings.landing_root.rstrip('/')}/_imports/{spec.source}/{spec.dataset}/"
        f"dt={logical_date}"
    )
    target = f"{folder}/{path.name}"
    copy = open_location(target)
    data = path.read_bytes()
    if copy.exists() and copy.read_bytes() == data:
        return copy
    if isinstance(copy, Path):
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_name(f".{copy.name}.partial")
        partial.write_bytes(data)
        partial.replace(copy)  # atomic: a crash never leaves half a copy under the real name
        return copy
    fs, where = pafs.FileSystem.from_uri(target)
    fs.create_dir(where.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(where) as out:
        out.write(data)
    return copy


def run_import(
    path: Path, spec: SourceSpec, logical_date: date, *, settings=None, allow_shrink: bool = False
):
    """Import the file into bronze for `logical_date`, reconciled.

    Keyed on the file (`import_key`): importing the same file again changes nothing, another
    file (part 2 of an export) adds its rows, a re-sent file with new bytes replaces only its
    own rows (refused if it has fewer lines, unless `allow_shrink`). Returns
    `jobs.ingest.bronze.IngestResult`. No Spark: bronze is written through delta-rs.
    """
    from jobs.common.settings import get_settings
    from jobs.ingest.bronze import ingest_files

    settings = settings or get_settings()
    inspect_file(path, spec)
    copy = keep_copy(path, spec, logical_date, settings)
    key = import_key(spec, logical_date, path.name)
    return ingest_files(
        spec,
        logical_date,
        [(copy, key)],
        run_key=key,
        settings=settings,
        allow_shrink=allow_shrink,
    )
