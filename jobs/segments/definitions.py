"""Segments marketing tools pull, declared in YAML (definitions.yaml) over gold.customer_360.

A segment is the customers meeting every condition it lists:

- ``tags`` (holds each), ``any_tags`` (holds one at least), ``not_tags`` (holds none): the
  dynamic tags of jobs/marts/tags.yaml, a templated tag (``prefers_{top_category}``) by any of
  its values;
- ``lifecycle_stage``, ``rfm_segment``, ``rfm_class``: one of the listed values, checked
  against tags.yaml and rfm.yaml;
- ``where``: a SQL condition over the mart's columns (traits, LTV, features).

Each segment has a ``version`` people bump when they change its meaning, the consent
``purpose`` its use needs (a customer is exported only when the consent ledger grants it, or
its default does), and the ``identifiers`` its files carry. ``defaults`` gives the purpose and
identifiers of a segment that names none. A definition that does not hold together stops with
the file, the line and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from jobs.common.errors import CdpError
from jobs.common.lake import sql_literal as _quote
from jobs.common.yamlio import load_yaml

DEFINITIONS = Path(__file__).parent / "definitions.yaml"
# What an export's files can carry for a customer, beside its one_id.
IDENTIFIERS = {
    "phone_sha256": "SHA-256 (hex) of the phone number as marketing tools hash it",
    "wechat_unionid": "the WeChat unionid (one per person across the brand's apps)",
    "wechat_openid": "an openid, per app (namespace: the appid)",
    "wecom_external_userid": "the WeCom external_userid, per corp (namespace: the corp)",
}
_NAME = re.compile(r"^[a-z0-9_]+$")
LISTS = ("tags", "any_tags", "not_tags", "lifecycle_stage", "rfm_segment", "rfm_class")
KEYS = {"version", "description", "purpose", "identifiers", "where", *LISTS}


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    version: int
    purpose: str
    identifiers: tuple[str, ...]
    conditions: dict = field(default_factory=dict)  # key -> list of values, or `where` text
    line: int = 0

    @property
    def where(self) -> str:
        """The segment as one SQL condition over gold.customer_360 (DuckDB)."""
        return compile_where(self.conditions)

    @property
    def definition(self) -> dict:
        """What the segment means, as the manifest records it (with a hash of it, so a change
        nobody versioned still shows)."""
        spec = {"version": self.version, "purpose": self.purpose, **self.conditions}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        return {**spec, "sql": self.where, "sha256": digest}


def _list_sql(values: list[str]) -> str:
    return "[" + ", ".join(_quote(v) for v in values) + "]"


def compile_where(conditions: dict) -> str:
    """Every condition, and-ed, as DuckDB SQL (`true` for a segment of everyone)."""
    parts = []
    tags = "coalesce(tags, [])"
    if conditions.get("tags"):
        parts.append(f"list_has_all({tags}, {_list_sql(conditions['tags'])})")
    if conditions.get("any_tags"):
        parts.append(f"list_has_any({tags}, {_list_sql(conditions['any_tags'])})")
    if conditions.get("not_tags"):
        parts.append(f"not list_has_any({tags}, {_list_sql(conditions['not_tags'])})")
    for column in ("lifecycle_stage", "rfm_segment", "rfm_class"):
        if conditions.get(column):
            parts.append(f"{column} in ({', '.join(_quote(v) for v in conditions[column])})")
    if conditions.get("where"):
        parts.append(f"({conditions['where']})")
    return " and ".join(parts) or "true"


def _lines(text: str) -> dict[str, int]:
    """segment name -> its line in the file (1-based)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for k, v in getattr(root, "value", []):
        if k.value == "segments" and isinstance(v, yaml.MappingNode):
            return {key.value: key.start_mark.line + 1 for key, _ in v.value}
    return {}


def _vocabulary() -> dict[str, tuple[set[str], list[re.Pattern]]]:
    """The values each list condition may take: names, and patterns of templated tags."""
    from jobs.marts import rfm, tags

    rules = tags.load_rules()
    literal = {r.name for r in rules.tags if "{" not in r.name}
    templated = [
        re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(r.name)) + "$")
        for r in rules.tags
        if "{" in r.name
    ]
    config = rfm.load_rules()
    stages = {r.name for r in rules.lifecycle}
    return {
        "tags": (literal, templated),
        "lifecycle_stage": (stages, []),
        "rfm_segment": ({s.name for s in config.segments}, []),
        "rfm_class": (set(config.classes.names.values()), []),
    }


def _strings(value: object, where: str, key: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise CdpError(f"{where}: `{key}` takes a name or a list of names, got {value!r}")
    return [str(v) for v in items]


def _segment(name: str, spec: object, defaults: dict, path: Path, line: int, known) -> Segment:
    from jobs.silver.consents import load_config

    where = f"{path.name} line {line}: segment {name!r}"
    if not _NAME.match(name):  # it names folders and files of the exports
        raise CdpError(f"{where}: a segment's name is lower-case letters, digits and _")
    if not isinstance(spec, dict):
        raise CdpError(f"{where}: a segment is a mapping of conditions, got {spec!r}")
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise CdpError(
            f"{where}: unknown key(s) {', '.join(unknown)}; "
            f"a segment takes {', '.join(sorted(KEYS))}"
        )
    version = spec.get("version", 1)
    if not isinstance(version, int) or version < 1:
        raise CdpError(f"{where}: `version` is a whole number from 1, got {version!r}")
    purpose = spec.get("purpose", defaults.get("purpose"))
    if purpose is None:
        raise CdpError(f"{where}: no consent purpose (set `purpose`, or `defaults: purpose`)")
    purposes = load_config().purposes
    if purpose not in purposes:
        raise CdpError(
            f"{where}: purpose {purpose!r} is no consent purpose; "
            f"expected one of {', '.join(sorted(purposes))} (jobs/silver/consent_purposes.yaml)"
        )
    wanted = spec.get("identifiers", defaults.get("identifiers", list(IDENTIFIERS)))
    identifiers = _strings(wanted, where, "identifiers")
    bad = [i for i in identifiers if i not in IDENTIFIERS]
    if bad:
        raise CdpError(
            f"{where}: unknown identifier(s) {', '.join(bad)}; expected {', '.join(IDENTIFIERS)}"
        )
    conditions: dict = {}
    for key in LISTS:
        if key not in spec:
            continue
        values = _strings(spec[key], where, key)
        names, patterns = known["tags" if key.endswith("tags") else key]
        wrong = [v for v in values if v not in names and not any(p.match(v) for p in patterns)]
        if wrong:
            raise CdpError(
                f"{where}: {key} {', '.join(map(repr, wrong))} unknown; "
                f"expected one of {', '.join(sorted(names))}"
            )
        conditions[key] = values
    if "where" in spec:
        if not isinstance(spec["where"], str) or not spec["where"].strip():
            raise CdpError(f"{where}: `where` is a SQL condition, got {spec['where']!r}")
        conditions["where"] = spec["where"].strip()
    return Segment(
        name=name,
        description=str(spec.get("description", "")),
        version=version,
        purpose=purpose,
        identifiers=tuple(identifiers),
        conditions=conditions,
        line=line,
    )


@lru_cache(maxsize=4)
def load_segments(path: Path = DEFINITIONS) -> dict[str, Segment]:
    """Every segment of the file, checked (CdpError naming the file and line of a bad one)."""
    raw = load_yaml(path) or {}
    if not isinstance(raw, dict):
        raise CdpError(f"{path.name}: expected `defaults:` and `segments:`")
    lines = _lines(path.read_text(encoding="utf-8"))
    defaults = raw.get("defaults") or {}
    known = _vocabulary()
    return {
        str(name): _segment(str(name), spec, defaults, path, lines.get(name, 0), known)
        for name, spec in (raw.get("segments") or {}).items()
    }


def get_segment(name: str, path: Path = DEFINITIONS) -> Segment:
    segments = load_segments(path)
    if name not in segments:
        raise CdpError(f"unknown segment {name!r}; defined: {', '.join(sorted(segments))}")
    return segments[name]
