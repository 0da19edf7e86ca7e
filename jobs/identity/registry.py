"""The identifier registry (jobs/identity/registry.yaml), typed and checked when it loads.

One file holds what One-ID may treat as a person's id and where ids meet, so a rule change is a
reviewed data change, not code. A bad key, an unknown type or a rule naming a type the registry
does not define fails here, naming the file and the entry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobs.common.errors import CdpError, validation_problems
from jobs.common.yamlio import load_yaml

REGISTRY_FILE = Path(__file__).parent / "registry.yaml"
SEPARATORS = (":", "@", "|", "/", "#")  # a namespace prefix's separator: plain in any regex


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Blocked(_Strict):
    """Values that are never an id: a junk.yaml section's exact values, more values, patterns."""

    junk: str | None = None
    values: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    # Blocked too when a record carries it with a blocked value of these types: an install id
    # lives on one device, so a shared device's anonymous id is shared with it.
    with_types: tuple[str, ...] = ()
    # Blocked when it is on more than N records of a rule in one day (rule -> N): a phone on
    # dozens of a day's orders is a shop's or a clerk's, typed in for walk-in customers.
    max_daily_records: dict[str, int] = Field(default_factory=dict)


class IdentifierType(_Strict):
    trust: Literal["high", "medium"]
    max_per_profile: int = Field(ge=1)
    max_profiles: int | None = Field(default=None, ge=1)
    per_namespace: bool = False
    scoped: bool = False
    token: str | None = None  # the token kind (HMAC of "<kind>:<normalized value>")
    blocked: Blocked = Blocked()
    # Evidence, not an id: never joins records; a value of a `guards` type does not merge
    # profiles whose values of this type disagree (two people's names on one phone).
    guards: tuple[str, ...] = ()

    @property
    def evidence(self) -> bool:
        return bool(self.guards)


class RuleId(_Strict):
    """A column of a rule's table holding an id: of one `type`, or of the type `type_from`
    names (mapped through `types`); its namespace from a column or a `<ns><prefix><value>` form."""

    column: str
    type: str | None = None
    type_from: str | None = None
    types: dict[str, str] = Field(default_factory=dict)
    namespace: str | None = None
    namespace_prefix: str | None = None
    when: str | None = None  # SQL: the value counts only on rows where this holds

    @model_validator(mode="after")
    def _one_type(self) -> RuleId:
        if (self.type is None) == (self.type_from is None):
            raise ValueError(f"{self.column}: give either type or type_from (with types)")
        if self.type_from is not None and not self.types:
            raise ValueError(f"{self.column}: type_from needs a types map")
        if self.namespace and self.namespace_prefix:
            raise ValueError(f"{self.column}: namespace and namespace_prefix are exclusive")
        if self.namespace_prefix is not None and self.namespace_prefix not in SEPARATORS:
            raise ValueError(
                f"{self.column}: namespace_prefix must be one of {' '.join(SEPARATORS)}"
            )
        return self

    @property
    def type_names(self) -> tuple[str, ...]:
        return (self.type,) if self.type else tuple(self.types.values())


class Rule(_Strict):
    """Where ids meet: the ids one record of a silver table carries belong to one person."""

    name: str
    table: str
    record: tuple[str, ...] = Field(min_length=1)
    seen: str
    ids: tuple[RuleId, ...] = Field(min_length=1)
    where: str | None = None
    # Each record's one_id is kept in silver.identity_records (orders, member lists and browse
    # events, which the marts read by one_id; the other rules' tables resolve through
    # identity_map by one id column, jobs/marts/scores.py).
    keep_records: bool = False

    def named_columns(self) -> set[str]:
        """The columns the rule names: its record, time and id columns (all required)."""
        named = {*self.record, self.seen}
        for rule_id in self.ids:
            named |= {rule_id.column, rule_id.type_from, rule_id.namespace} - {None}
        return named

    def mentioned_words(self) -> set[str]:
        """Every word of its `where` and `when` conditions: the columns among them are read."""
        return sql_words(self.where or "", *(i.when or "" for i in self.ids))


def sql_words(*texts: str) -> set[str]:
    """Every word of SQL conditions: a superset of the columns they read."""
    return set(re.findall(r"[A-Za-z_]\w*", " ".join(texts)))


class MatchField(_Strict):
    """A value probabilistic matching compares: a column of each compared rule's table
    (`column`, or the rule's own in `columns`; a rule with neither lacks the field), looked up
    in the PII vault when the column holds a token (`vault`: its kind)."""

    column: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)  # rule -> its column
    vault: Literal["phone", "email", "id_card", "name", "address"] | None = None

    def of(self, rule: str) -> str | None:
        return self.columns.get(rule, self.column)


class Comparison(_Strict):
    """How two records' values of a field compare (jobs/identity/matching.py builds the Splink
    comparison): `name` exact (frequency-adjusted) / same sound (pinyin) / one character off /
    else; `date` exact / day and month swapped / same day and month / else; `address` exact /
    Jaro-Winkler >= 0.95 / same `within` field (the district) / else; `phone` exact / same
    `masked` field (138****1234) / else; `day` the same calendar day (a timestamp or a date) /
    else; `exact` exact / else. A null on either side says nothing."""

    kind: Literal["name", "date", "address", "phone", "day", "exact"]
    within: str | None = None  # address: the coarser field a near address falls back on
    masked: str | None = None  # phone: the masked-number field
    # A pair this field disagrees on (both present, no level but the last) is no match, however
    # the rest agrees: two people of a household share an address and a phone, never a name.
    vetoes: bool = False


class Matching(_Strict):
    """A probabilistic rule (Fellegi-Sunter, run by Splink): records of `rules` that no shared
    id links are compared field by field; pairs whose match probability reaches `threshold`
    are clustered, and each cluster becomes a value of identifier type `type` on its records,
    which the guarded graph then treats like any other id (caps and per-profile limits)."""

    name: str
    type: str
    rules: tuple[str, ...] = Field(min_length=1)
    fields: dict[str, MatchField] = Field(min_length=1)
    # rule -> field -> SQL over its table: the field is null on that rule's rows where it holds
    # (a clerk's 王女士 is no name to compare).
    null_when: dict[str, dict[str, str]] = Field(default_factory=dict)
    compare: dict[str, Comparison] = Field(min_length=1)
    # Candidate pairs: records equal on every field of one of these lists (a field of kind
    # `name` also offers `<field>__initial`, its first character, and `<field>__pinyin`, its
    # sound; `date` `<field>__md`, its month and day).
    blocking: tuple[tuple[str, ...], ...] = Field(min_length=1)
    # Near-certain rules estimating how often two records match, and the share of true pairs
    # they are thought to find.
    deterministic: tuple[tuple[str, ...], ...] = Field(min_length=1)
    deterministic_recall: float = Field(gt=0, le=1)
    # Expectation maximisation of the m probabilities, once per blocking list here.
    train_on: tuple[tuple[str, ...], ...] = Field(min_length=1)
    threshold: float = Field(ge=0.5, lt=1)
    # Random pairs u is estimated on: enough to see two strangers share a phone (about one
    # pair in a million), else that agreement would weigh nothing.
    u_pairs: int = Field(default=10_000_000, ge=1000)
    max_training_pairs: int = Field(default=1_000_000, ge=1000)  # per EM round

    def derived(self) -> dict[str, str]:
        """Blocking-only columns -> the field they derive from."""
        out = {}
        for field_name, comparison in self.compare.items():
            if comparison.kind == "name":
                out[f"{field_name}__initial"] = field_name
                out[f"{field_name}__pinyin"] = field_name
            elif comparison.kind == "date":
                out[f"{field_name}__md"] = field_name
        return out


class Registry(_Strict):
    types: dict[str, IdentifierType]
    rules: tuple[Rule, ...]
    matching: tuple[Matching, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Registry:
        names = [r.name for r in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rules named twice: {', '.join(duplicates)}")
        for rule in self.rules:
            for rule_id in rule.ids:
                unknown = sorted(set(rule_id.type_names) - set(self.types))
                if unknown:
                    raise ValueError(
                        f"rule {rule.name}, column {rule_id.column}: unknown identifier type(s) "
                        f"{', '.join(unknown)}; the registry defines {', '.join(self.types)}"
                    )
        for matching in self.matching:
            _check_matching(matching, self)
        for name, spec in self.types.items():
            unknown = sorted(set(spec.guards) - set(self.types))
            if unknown:
                raise ValueError(f"type {name}: guards names unknown {unknown}")
            unknown_rules = sorted(
                set(spec.blocked.max_daily_records) - {r.name for r in self.rules}
            )
            if unknown_rules:
                raise ValueError(
                    f"type {name}: max_daily_records names unknown rules {unknown_rules}"
                )
            unknown = sorted(set(spec.blocked.with_types) - set(self.types))
            if unknown:
                raise ValueError(f"type {name}: blocked.with_types names unknown {unknown}")
            for pattern in spec.blocked.patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"type {name}: bad blocked pattern {pattern!r}: {exc}"
                    ) from exc
        return self

    @cached_property
    def guarded_by(self) -> dict[str, tuple[str, ...]]:
        """Identifier type -> the evidence types that guard its merges."""
        out: dict[str, list[str]] = {}
        for name, spec in self.types.items():
            for kind in spec.guards:
                out.setdefault(kind, []).append(name)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def priority(self) -> dict[str, int]:
        """Identifier type -> its rank (0 is the most trusted): high trust before medium, then
        the file's order. Types join the graph in it, and a profile is named after (anchored on)
        its first identifier in it."""
        trust = {"high": 0, "medium": 1}
        ordered = sorted(
            self.types, key=lambda k: (trust[self.types[k].trust], list(self.types).index(k))
        )
        return {name: i for i, name in enumerate(ordered)}

    def blocked_values(self, hmac_key: bytes) -> dict[str, set[str]]:
        """Type -> the exact values never used, as stored (tokens for token types)."""
        from jobs.common.clean._text import junk

        out: dict[str, set[str]] = {}
        for name, spec in self.types.items():
            values = set(spec.blocked.values)
            if spec.blocked.junk:
                values |= {
                    _junk_form(spec.blocked.junk, v)
                    for v in junk(spec.blocked.junk).get("exact", [])
                }
            if spec.token:
                values = {token(hmac_key, spec.token, v) for v in values}
            if values:
                out[name] = values
        return out


def _check_matching(matching: Matching, registry: Registry) -> None:
    where = f"matching {matching.name}"
    if matching.type not in registry.types:
        raise ValueError(f"{where}: unknown identifier type {matching.type}")
    rules = {r.name for r in registry.rules}
    named_rules = set(matching.rules) | set(matching.null_when)
    for spec in matching.fields.values():
        named_rules |= set(spec.columns)
    unknown = sorted(named_rules - rules)
    if unknown:
        raise ValueError(f"{where}: unknown rule(s) {', '.join(unknown)}")
    fields = set(matching.fields)
    named = set(matching.compare)
    for comparison in matching.compare.values():
        named |= {comparison.within, comparison.masked} - {None}
    for spec in matching.null_when.values():
        named |= set(spec)
    unknown = sorted(named - fields)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    columns = fields | set(matching.derived())
    for lists in (matching.blocking, matching.deterministic, matching.train_on):
        for block in lists:
            unknown = sorted(set(block) - columns)
            if unknown:
                raise ValueError(
                    f"{where}: blocking on unknown field(s) {', '.join(unknown)}; "
                    f"expected some of {', '.join(sorted(columns))}"
                )


def _junk_form(section: str, value: str) -> str:
    """A junk.yaml value in the normalized form its token is computed from (a mainland phone
    as E.164; other values as listed)."""
    return f"+86{value}" if section == "phones" and re.fullmatch(r"1\d{10}", value) else value


def token(hmac_key: bytes, kind: str, normalized: str) -> str:
    """The silver token of a normalized value (jobs/common/pii.py computes the same in Spark)."""
    return hmac.new(hmac_key, f"{kind}:{normalized}".encode(), hashlib.sha256).hexdigest()


def load_registry(path: Path | str | None = None) -> Registry:
    path = Path(path or REGISTRY_FILE)
    raw = load_yaml(path)
    try:
        return Registry.model_validate(raw)
    except ValidationError as exc:
        raise CdpError(f"{path}: {validation_problems(exc, empty='registry')}") from exc
