"""Lifecycle stages and dynamic tags from declarative YAML (tags.yaml), compiled to Spark SQL.

`tag_inputs` puts one row per customer together (features, RFM scores, LTV predictions, days
since the last order); `memberships` evaluates the rules over it: one row per customer and
stage or tag held that day. Every rule is compiled against the inputs' schema before anything
runs (`check`): one that does not parse, names a missing column or is not a condition stops the
run, naming the rule and its line in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml

from jobs.common.errors import CdpError
from jobs.common.yamlio import load_yaml

RULES = Path(__file__).parent / "tags.yaml"
_TEMPLATE = re.compile(r"\{(\w+)\}")
_NAME = re.compile(r"^[a-z0-9_{}]+$")


@dataclass(frozen=True)
class Rule:
    kind: str  # "stage" or "tag"
    name: str  # a tag's name may hold {column}
    when: str
    line: int

    def where(self, path: Path) -> str:
        return f"{path.name} line {self.line}: {self.kind} {self.name!r}"


@dataclass(frozen=True)
class TagRules:
    path: Path
    lifecycle: tuple[Rule, ...]
    tags: tuple[Rule, ...]


def _lines(text: str, key: str) -> list[int]:
    """The line of each item of the top-level list `key` (1-based)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for k, v in getattr(root, "value", []):
        if k.value == key and isinstance(v, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in v.value]
    return []


@lru_cache(maxsize=8)
def load_rules(path: Path = RULES) -> TagRules:
    raw = load_yaml(path) or {}
    text = path.read_text(encoding="utf-8")
    out = {}
    for key, kind, name_key in (("lifecycle", "stage", "stage"), ("tags", "tag", "name")):
        items = raw.get(key) or []
        lines = _lines(text, key)
        rules = []
        for item, line in zip(items, lines, strict=True):
            where = f"{path.name} line {line}"
            if not isinstance(item, dict) or set(item) != {name_key, "when"}:
                raise CdpError(f"{where}: a {kind} is {{{name_key}: ..., when: ...}}, got {item!r}")
            name, when = str(item[name_key]), str(item["when"])
            if not _NAME.match(name):
                raise CdpError(
                    f"{where}: {kind} name {name!r}: lower-case letters, digits, _ and {{column}}"
                )
            rules.append(Rule(kind, name, when, line))
        out[key] = tuple(rules)
    if not out["lifecycle"]:
        raise CdpError(f"{path.name}: no lifecycle stages")
    names = [r.name for r in out["tags"]]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CdpError(f"{path.name}: tags named twice: {', '.join(twice)}")
    return TagRules(path, out["lifecycle"], out["tags"])


def tag_inputs(features, rfm, ltv, as_of: date):
    """One row per customer of `features`: its columns, the RFM scores and segment, the LTV
    predictions and churn warning, and days_since_last_order."""
    from pyspark.sql import functions as F

    scores = rfm.select("one_id", "r_score", "f_score", "m_score", "rfm_segment", "rfm_class")
    value = ltv.select(
        "one_id", "p_alive", "expected_purchases_90d", "clv_12m", F.col("churn_risk")
    )
    out = features.join(scores, "one_id", "left").join(value, "one_id", "left")
    since = F.datediff(F.lit(as_of.isoformat()).cast("date"), F.col("last_order_date"))
    return out.withColumn("days_since_last_order", since).withColumn(
        "churn_risk", F.coalesce(F.col("churn_risk"), F.lit(False))
    )


def _name_sql(name: str) -> str:
    """A tag name as SQL: a literal, or concat(...) of its parts and {column} values."""
    parts, at = [], 0
    for m in _TEMPLATE.finditer(name):
        if m.start() > at:
            parts.append("'" + name[at : m.start()] + "'")
        parts.append(f"lower(cast(`{m.group(1)}` as string))")
        at = m.end()
    if at < len(name):
        parts.append("'" + name[at:] + "'")
    return parts[0] if len(parts) == 1 else "concat(" + ", ".join(parts) + ")"


def check(rules: TagRules, inputs) -> None:
    """Compile every rule against `inputs`' schema; raise CdpError naming the first bad one."""
    from pyspark.errors import PySparkException

    empty = inputs.limit(0)
    for rule in (*rules.lifecycle, *rules.tags):
        try:
            kind = empty.selectExpr(f"({rule.when}) as c").schema["c"].dataType.typeName()
            if rule.kind == "tag":
                empty.selectExpr(f"{_name_sql(rule.name)} as n").schema  # noqa: B018
        except PySparkException as exc:
            message = str(exc).strip().splitlines()[0]
            raise CdpError(f"{rule.where(rules.path)}: does not compile: {message}") from None
        if kind != "boolean":
            raise CdpError(
                f"{rule.where(rules.path)}: `when: {rule.when}` gives {kind} values, not a "
                "condition (true or false)"
            )


def memberships(inputs, rules: TagRules, as_of: date):
    """(as_of, one_id, kind, tag): each customer's stage (kind `stage`) and tags (`tag`)."""
    from pyspark.sql import functions as F

    check(rules, inputs)
    stage = "case " + " ".join(f"when ({r.when}) then '{r.name}'" for r in rules.lifecycle) + " end"
    tags = ", ".join(
        f"case when coalesce(({r.when}), false) then {_name_sql(r.name)} end" for r in rules.tags
    )
    held = inputs.selectExpr(
        "one_id", f"{stage} as stage", f"filter(array({tags}), t -> t is not null) as tags"
    )
    day = F.lit(as_of.isoformat()).cast("date")
    stages = held.where("stage is not null").select(
        day.alias("as_of"), "one_id", F.lit("stage").alias("kind"), F.col("stage").alias("tag")
    )
    tagged = held.select(
        day.alias("as_of"), "one_id", F.lit("tag").alias("kind"), F.explode("tags").alias("tag")
    )
    return stages.unionByName(tagged)
