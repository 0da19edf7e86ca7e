"""Source specifications: how a platform's export maps to our fields. Data (YAML), not code.

Each file in jobs/ingest/sources/ describes one dataset of one platform: its format, the header
to field mapping with a type per field, value maps, the JSON Schema that validates the mapped
record and the bronze table it lands in.

Formats: ``csv`` (a column is a header cell) and ``jsonl`` (one JSON object per line, as an API
returned it; a column is a dotted JSON path such as ``full_order_info.order_info.tid``, where a
numeric segment indexes a list: ``full_order_info.orders.0.title``), plus the formats brands' own
exports come as (`cdp import`): ``xlsx`` (a column is a header cell of the first sheet, or of
``sheet``) and ``parquet`` (a column is a column name). ``encoding`` pins a CSV/JSONL file's text
encoding when detection (UTF-8 with or without BOM, else GB18030) is not wanted.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from jobs.common.errors import CdpError
from jobs.common.settings import PROJECT_ROOT
from jobs.common.silver_mapping import SilverMapping, parse_silver
from jobs.common.yamlio import load_yaml

SPECS_DIR = Path(__file__).parent / "sources"
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
FIELD_TYPES = ("string", "decimal", "int", "datetime", "date")
FORMATS = ("csv", "jsonl", "xlsx", "parquet")


@dataclass(frozen=True)
class Column:
    header: str  # csv: the header cell; jsonl: a dotted JSON path
    field: str
    type: str

    @property
    def path(self) -> tuple[str, ...]:
        """The JSON path of a jsonl column, split into its segments."""
        return tuple(self.header.split("."))


@dataclass(frozen=True)
class SourceSpec:
    source: str
    dataset: str
    format: str
    schema: str
    bronze_table: str
    columns: tuple[Column, ...]
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    # How silver maps a bronze row (jobs/common/silver_mapping.py: status map, buyer ids,
    # renames...); None for a dataset silver.orders and silver.order_items do not read.
    silver: SilverMapping | None = None
    sheet: str | None = None  # xlsx: the sheet to read (default: the first)
    encoding: str | None = None  # csv/jsonl: a fixed text encoding (default: detected)
    # The datetime field saying when a record happened (an order's creation). Records of days
    # before the file's day are late: they land, and their days are marked for recompute.
    event_time: str | None = None
    delimiter: str = ","  # csv: the field separator (a brand's export may use ';' or a tab)

    @property
    def key(self) -> str:
        return f"{self.source}.{self.dataset}"

    @property
    def schema_version(self) -> str:
        return self.schema.rsplit("/", 1)[-1]

    def json_schema(self) -> dict:
        path = SCHEMAS_DIR / f"{self.schema}.json"
        if not path.is_file():
            raise CdpError(f"{self.key}: JSON Schema {path} does not exist")
        return json.loads(path.read_text(encoding="utf-8"))


def _parse(path: Path) -> SourceSpec:
    raw = load_yaml(path)
    try:
        columns = tuple(
            Column(header=str(h), field=c["field"], type=c.get("type", "string"))
            for h, c in raw["columns"].items()
        )
        spec = SourceSpec(
            source=raw["source"],
            dataset=raw["dataset"],
            format=raw["format"],
            schema=raw["schema"],
            bronze_table=raw["bronze_table"],
            columns=columns,
            values=raw.get("values") or {},
            silver=parse_silver(
                raw.get("silver"), str(path), known_fields={c.field for c in columns}
            ),
            sheet=raw.get("sheet"),
            encoding=raw.get("encoding"),
            event_time=raw.get("event_time"),
            delimiter=raw.get("delimiter", ","),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise CdpError(f"{path}: invalid source spec ({exc!r})") from exc
    if spec.format not in FORMATS:
        raise CdpError(f"{path}: unknown format {spec.format!r}; expected one of {FORMATS}")
    if spec.format == "jsonl":
        empty = [c.header for c in columns if "" in c.path]
        if empty:
            raise CdpError(f"{path}: JSON path(s) {empty} have an empty segment")
    if spec.event_time is not None and spec.event_time not in {
        c.field for c in columns if c.type == "datetime"
    }:
        raise CdpError(f"{path}: event_time {spec.event_time!r} is not a datetime field")
    bad = [c.field for c in columns if c.type not in FIELD_TYPES]
    if bad:
        raise CdpError(f"{path}: unknown type for {bad}; expected one of {FIELD_TYPES}")
    return spec


ROLES_FILE = Path(__file__).parent / "field_roles.yaml"


@dataclass(frozen=True)
class FieldRoles:
    """Which fields are identifiers and which are phone numbers (jobs/ingest/field_roles.yaml)."""

    identifier: re.Pattern
    phone: re.Pattern

    def is_identifier(self, field: str) -> bool:
        return bool(self.identifier.fullmatch(field) or self.phone.fullmatch(field))

    def is_phone(self, field: str) -> bool:
        return bool(self.phone.fullmatch(field))


@cache
def field_roles() -> FieldRoles:
    raw = load_yaml(ROLES_FILE)
    if not isinstance(raw, dict) or set(raw) != {"identifier", "phone"}:
        raise CdpError(f"{ROLES_FILE}: expected the keys identifier and phone")
    return FieldRoles(
        identifier=re.compile("|".join(f"(?:{p})" for p in raw["identifier"])),
        phone=re.compile("|".join(f"(?:{p})" for p in raw["phone"])),
    )


@cache
def load_specs() -> dict[str, SourceSpec]:
    specs = [_parse(p) for p in sorted(SPECS_DIR.glob("*.yaml"))]
    return {s.key: s for s in specs}


def get_spec(key: str) -> SourceSpec:
    specs = load_specs()
    if key not in specs:
        raise CdpError(f"unknown source {key!r}; known: {', '.join(sorted(specs))}")
    return specs[key]


def spec_to_json(spec: SourceSpec) -> str:
    """A spec as JSON (the ingestion journal keeps it, so a `cdp import` batch, which has no spec
    file, can be redone after a crash)."""
    raw = asdict(spec)
    raw["silver"] = spec.silver.model_dump(mode="json") if spec.silver else None
    return json.dumps(raw, ensure_ascii=False)  # key order is meaning (value maps)


def spec_from_json(text: str) -> SourceSpec:
    raw = json.loads(text)
    raw["columns"] = tuple(Column(**c) for c in raw["columns"])
    try:
        raw["silver"] = parse_silver(raw.get("silver"), f"journal spec {raw.get('source')}")
    except CdpError:  # a journal written before the typed mapping (legacy `buyer_id_field`):
        raw["silver"] = None  # ingestion and replays never read the silver mapping
    return SourceSpec(**raw)
