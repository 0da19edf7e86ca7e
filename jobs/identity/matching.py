"""Probabilistic matching: member-list records that no shared id links, compared by name,
birthday, address and phone (the registry's `matching:` rules), with Splink on DuckDB.

A store's member list has its own numbers and often no usable phone; the CRM has cards. The same
person is in both, written differently: a homophone in the name, day and month swapped, the
building and room written another way. Fellegi-Sunter weighs each agreement by how much likelier
it is between the records of one person (m) than between two random records (u): agreeing on a
rare name says more than agreeing on 王伟, and Splink trains m and u on the brand's own lists each
run (u by random sampling, m by expectation maximisation), so no weight here is tuned to one
data set.

What comes out is not a merge but an identifier: each cluster of pairs at or above the rule's
threshold becomes a value of the rule's identifier type on its records (namespace: the rule), and
the guarded graph (jobs/identity/graph.py) treats it like any other id: a cluster reaching more
profiles than the type's cap, or putting two member cards into one profile, is refused and
reported in identity_blocked. The pairs themselves, with their match probability and how each
field compared, are `silver.identity_matches`, for `cdp identity explain`.

Inputs come from the silver tables of the rules (by delta-rs) and the PII vault (only the tokens
those rows carry); nothing here reads an analyst table. Member lists are a brand's customers, not
its events: a million members fit DuckDB on one machine, so matching runs there whichever engine
builds the graph.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from jobs.common import lake
from jobs.common.errors import CdpError
from jobs.common.progress import track
from jobs.identity.engine import DuckEngine, quote
from jobs.identity.graph import record_key_sql
from jobs.identity.registry import Comparison, Matching, Registry, sql_words

if TYPE_CHECKING:
    import pyarrow as pa

    from jobs.common.settings import Settings

SEED = 42  # u sampling: the same lists give the same model
TOKEN = "__token"  # a vaulted field's token beside its value

log = logging.getLogger(__name__)


class Matched(NamedTuple):
    """What matching gives the graph: Arrow tables of the identifier values of member-list
    records (rule, record_key, seen_at, identifier_type, namespace, identifier: as
    graph.extract's `occ`) and of the pairs behind them (matching, record_l, record_r,
    match_probability, match_weight, levels, cluster), and each matching's model (Splink's
    JSON) and name frequencies (by token: how common a name was when the model was trained)
    that scored them."""

    occ: pa.Table
    pairs: pa.Table
    models: dict[str, str]
    frequencies: pa.Table | None  # matching, field, token, tf: the models' name frequencies
    trained: bool  # this run trained the models (else they were given)


def match(
    registry: Registry,
    settings: Settings,
    paths: dict[str, str],
    *,
    models: dict[str, str] | None = None,
    frequencies: pa.Table | None = None,
    fresh: pa.Table | None = None,
    old_pairs: pa.Table | None = None,
) -> Matched | None:
    """Match the member lists; None when nothing matched. Trains each matching's model on the
    lists, unless `models` has it (a model an earlier run trained): then with `fresh` (rule,
    record_key: the member records new or changed since) only the pairs with a fresh record
    are scored, and the pairs of `old_pairs` (the last identity_matches) between records that
    are neither fresh nor gone are kept, so a day's new members are matched without training
    again; without `fresh`, every pair is scored by the saved model. A saved model scores with
    its saved name `frequencies`: a name's weight does not drift with each day's members, so a
    pair scores the same whichever run scores it (a name new since weighs as an average one)."""
    import pyarrow as pa

    occ, pairs, trained, counted = [], [], {}, []
    for matching in registry.matching:
        rules = [r for r in registry.rules if r.name in matching.rules and r.table in paths]
        if not rules:
            continue
        model = (models or {}).get(matching.name)
        with _engine(settings) as engine:
            if not _load(engine, matching, rules, paths, settings):
                continue
            if model is not None:
                linked = _link_fresh(engine, matching, model, frequencies, fresh, old_pairs)
            else:
                model = _link(engine, matching)
                linked = model is not None and _clusters(engine, matching)
                counted.append(_frequencies(engine, matching))
            if model is not None:
                trained[matching.name] = model
            if linked:
                occ.append(engine.utc_arrow("match_occ"))
                pairs.append(engine.utc_arrow("match_pairs"))
    if not occ:
        return None
    if counted:
        frequencies = pa.concat_tables(counted)
    return Matched(
        pa.concat_tables(occ), pa.concat_tables(pairs), trained, frequencies, bool(counted)
    )


def _frequencies(engine: DuckEngine, matching: Matching) -> pa.Table:
    """(matching, field, token, tf): how common each value of a name field is in the lists, by
    its token (Splink's term frequency: its share of the field's values)."""
    parts = [
        f"select {quote(matching.name)} as matching, {quote(name)} as field, "
        f"{name}{TOKEN} as token, count(*) / sum(count(*)) over () as tf from match_input "
        f"where {name} is not null group by {name}{TOKEN}"
        for name, c in matching.compare.items()
        if c.kind == "name" and matching.fields[name].vault
    ]
    if not parts:
        parts = ["select '' as matching, '' as field, '' as token, 0.0 as tf where false"]
    return engine.con.sql(" union all ".join(parts)).to_arrow_table()


@contextmanager
def _engine(settings: Settings):
    from pathlib import Path

    temp = Path(settings.var_dir) / "tmp" / "matching"
    temp.mkdir(parents=True, exist_ok=True)
    with DuckEngine(temp_dir=str(temp)) as engine:
        yield engine


def _load(engine: DuckEngine, matching: Matching, rules, paths, settings: Settings) -> bool:
    """`match_input`: one row per record of the rules (unique_id `<rule>|<record_key>`), its
    fields with vault values in place of tokens, and the blocking-only derived columns."""
    selects = []
    for rule in rules:
        path = paths[rule.table]
        engine.register(
            f"t_{rule.table}", lake.read_arrow(path, columns=_columns_of(matching, rule, path))
        )
        fields = []
        for name, spec in matching.fields.items():
            column = spec.of(rule.name)
            value = f"cast({column} as string)" if column else "cast(null as string)"
            hide = matching.null_when.get(rule.name, {}).get(name)
            if hide:
                value = f"case when not ({hide}) then {value} end"
            fields.append(f"nullif(trim({value}), '') as {name}")
        selects.append(
            f"select {quote(rule.name)} as rule, {record_key_sql(engine, rule)} as record_key, "
            f"cast({rule.seen} as timestamp) as seen_at, {', '.join(fields)} "
            f"from t_{rule.table}" + (f" where ({rule.where})" if rule.where else "")
        )
    engine.run("match_rows", " union all ".join(selects))
    if not engine.count("match_rows"):
        return False
    _with_vault(engine, matching, settings)
    derived = []
    for name, comparison in matching.compare.items():
        if comparison.kind == "name":
            _with_pinyin(engine, name)
            derived.append(f"substr({name}, 1, 1) as {name}__initial")
            derived.append(f"p_{name}.pinyin as {name}__pinyin")
        elif comparison.kind == "date":
            derived.append(f"substr({name}, 6, 5) as {name}__md")
    masked = [
        (c.masked, name) for name, c in matching.compare.items() if c.kind == "phone" and c.masked
    ]
    replace = ", ".join(
        f"coalesce({m}, case when regexp_matches({p}, '^\\+861[0-9]{{10}}$') "
        f"then substr({p}, 4, 3) || '****' || substr({p}, 11, 4) end) as {m}"
        for m, p in masked
    )
    engine.run(
        "match_input",
        f"select r.rule || '|' || r.record_key as unique_id, "
        f"r.* exclude (_n) {f'replace ({replace})' if replace else ''}"
        f"{''.join(', ' + d for d in derived)} "
        "from (select *, row_number() over (partition by rule, record_key order by seen_at desc)"
        " as _n from match_rows) r "
        + "".join(
            f"left join pinyin_{name} p_{name} on p_{name}.value = r.{name} "
            for name, c in matching.compare.items()
            if c.kind == "name"
        )
        + "where _n = 1",
    )
    return True


def _with_pinyin(engine: DuckEngine, field: str) -> None:
    """`pinyin_<field>` (value, pinyin): each distinct name's toneless pinyin (pypinyin's
    most common reading), so a homophone typed by the input method (张伟 / 张玮) is told apart
    from any other one-character difference (张伟 / 张芳)."""
    import pyarrow as pa
    from pypinyin import lazy_pinyin

    names = [
        r[0]
        for r in engine.rows(f"select distinct {field} from match_rows where {field} is not null")
    ]
    engine.register(
        f"pinyin_{field}",
        pa.table({"value": names, "pinyin": ["".join(lazy_pinyin(n)) for n in names]}),
    )


def _columns_of(matching: Matching, rule, path: str) -> list[str]:
    """The columns of the rule's table the matching reads (checked present)."""
    from deltalake import DeltaTable

    present = DeltaTable(path).schema().to_arrow().names
    fields = {f.of(rule.name) for f in matching.fields.values()} - {None}
    words = {*rule.record, rule.seen, *fields}
    words |= sql_words(rule.where or "", *matching.null_when.get(rule.name, {}).values())
    missing = sorted(fields - set(present))
    if missing:
        raise CdpError(
            f"matching {matching.name}, rule {rule.name}: silver.{rule.table} has no "
            f"column(s) {', '.join(missing)}"
        )
    return [c for c in present if c in words]


def _with_vault(engine: DuckEngine, matching: Matching, settings: Settings) -> None:
    """Token fields -> their normalized values from vault.pii (only the tokens present); each
    keeps its token as `<field>__token` (what the saved name frequencies are keyed by)."""
    vaulted = {name: spec.vault for name, spec in matching.fields.items() if spec.vault}
    if not vaulted:
        return
    kept = ", ".join(f"{name} as {name}{TOKEN}" for name in vaulted)
    engine.run("match_rows", f"select *, {kept} from match_rows")
    path = lake.table_path("vault", "pii", settings)
    if not lake.is_delta(path):
        for name in vaulted:
            engine.run("match_rows", f"select * replace (null::varchar as {name}) from match_rows")
        return
    kinds = sorted(set(vaulted.values()))
    engine.register(
        "vault_rows",
        lake.read_arrow(path, where=lake.sql_in("kind", kinds), columns=["kind", "token", "value"]),
    )
    tokens = " union all ".join(
        f"select {quote(kind)} as kind, {name} as token from match_rows where {name} is not null"
        for name, kind in vaulted.items()
    )
    engine.run(
        "vault_values",
        f"select v.kind, v.token, min(v.value) as value from vault_rows v "
        f"semi join ({tokens}) t on t.kind = v.kind and t.token = v.token group by all",
    )
    joins = " ".join(
        f"left join vault_values v_{name} on v_{name}.kind = {quote(kind)} "
        f"and v_{name}.token = r.{name}"
        for name, kind in vaulted.items()
    )
    replace = ", ".join(f"v_{name}.value as {name}" for name in vaulted)
    engine.run("match_rows", f"select r.* replace ({replace}) from match_rows r {joins}")


# --- Splink ---------------------------------------------------------------------------------


def _comparison(name: str, spec: Comparison):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    if spec.kind == "exact":
        return cl.ExactMatch(name)
    frequent = spec.kind == "name"  # 王伟 agreeing says less than a rare name
    levels: list = [
        cll.NullLevel(name),
        cll.ExactMatchLevel(name, term_frequency_adjustments=frequent),
    ]
    if spec.kind == "name":
        levels += [
            cll.ExactMatchLevel(f"{name}__pinyin").configure(label_for_charts="same sound"),
            cll.CustomLevel(_one_slip(f"{name}_l", f"{name}_r"), "one character off"),
        ]
    elif spec.kind == "date":
        left, right = f"{name}_l", f"{name}_r"
        levels += [
            cll.CustomLevel(
                f"substr({left}, 1, 4) = substr({right}, 1, 4) and "
                f"substr({left}, 6, 2) = substr({right}, 9, 2) and "
                f"substr({left}, 9, 2) = substr({right}, 6, 2)",
                "day and month swapped",
            ),
            cll.CustomLevel(f"substr({left}, 6, 5) = substr({right}, 6, 5)", "same day and month"),
        ]
    elif spec.kind == "address":
        levels.append(cll.JaroWinklerLevel(name, 0.95))
        if spec.within:
            levels.append(cll.ExactMatchLevel(spec.within))
    elif spec.kind == "phone" and spec.masked:
        levels.append(cll.ExactMatchLevel(spec.masked))
    elif spec.kind == "day":
        levels[1] = cll.CustomLevel(
            f"substr({name}_l, 1, 10) = substr({name}_r, 1, 10)", f"same {name} day"
        )
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(comparison_levels=levels, output_column_name=name)


NAME_CHARS = 6  # names are compared character by character up to here (王伟, 欧阳娜娜)


def _one_slip(left: str, right: str) -> str:
    """SQL: two names one slip apart: any one character different (a homophone has a level of
    its own, above this one), two trading places (罗琳 / 琳罗), or one dropped or doubled
    (王丽丽 / 王丽). By characters: DuckDB's edit distances count UTF-8 bytes, three to a Chinese
    character."""
    differ = " + ".join(
        f"(substr({left}, {i}, 1) <> substr({right}, {i}, 1))::int"
        for i in range(1, NAME_CHARS + 1)
    )
    same_length = (
        f"length({left}) = length({right}) and (({differ}) = 1 or (({differ}) = 2 and "
        f"list_sort(string_split({left}, '')) = list_sort(string_split({right}, ''))))"
    )

    def one_more(longer: str, shorter: str) -> str:
        cuts = " or ".join(
            f"{shorter} = substr({longer}, 1, {i - 1}) || substr({longer}, {i + 1})"
            for i in range(1, NAME_CHARS + 1)
        )
        return f"(length({longer}) = length({shorter}) + 1 and ({cuts}))"

    return (
        f"(length({left}) <= {NAME_CHARS} and length({right}) <= {NAME_CHARS} and "
        f"(({same_length}) or {one_more(left, right)} or {one_more(right, left)}))"
    )


@contextmanager
def _quiet():
    """Splink logs every EM iteration at INFO; a daily run shows its own progress."""
    logger = logging.getLogger("splink")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _link(engine: DuckEngine, matching: Matching) -> str | None:
    """Train the matching's model on `match_input` and score its blocked pairs into
    `match_predicted`; the model (Splink's JSON), or None when there is nothing to train on."""
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[_comparison(n, c) for n, c in matching.compare.items()],
        blocking_rules_to_generate_predictions=[block_on(*b) for b in matching.blocking],
        retain_intermediate_calculation_columns=True,  # the gamma_ levels, for explain
        retain_matching_columns=True,  # Splink keeps gamma_ only with them; not written
    )
    records = engine.count("match_input")
    if not _sure_pairs(engine, matching):
        # Without one near-certain pair there is no prior to weigh evidence against.
        log.warning(
            "matching %s: no pair of its %s records meets a deterministic rule; nothing matched",
            matching.name,
            f"{records:,}",
        )
        return None
    steps = ["prior", "u", *(f"m on {'+'.join(b)}" for b in matching.train_on), "pairs"]
    with _quiet():
        db = DuckDBAPI(connection=engine.con)
        linker = Linker(db.register("match_input"), settings, log_level=logging.WARNING)
        for step in track(steps, f"matching {matching.name} ({records:,} records)"):
            if step == "prior":
                linker.training.estimate_probability_two_random_records_match(
                    [block_on(*b) for b in matching.deterministic],
                    recall=matching.deterministic_recall,
                )
            elif step == "u":
                linker.training.estimate_u_using_random_sampling(
                    max_pairs=matching.u_pairs, seed=SEED
                )
                sampled = min(matching.u_pairs, records * (records - 1) // 2)
                model = _unseen_u(linker.misc.save_model_to_json(), sampled)
                linker = Linker(db.register("match_input"), model, log_level=logging.WARNING)
            elif step == "pairs":
                model = linker.misc.save_model_to_json()
                predictions = linker.inference.predict(
                    threshold_match_probability=matching.threshold
                )
            else:
                block = matching.train_on[steps.index(step) - 2]
                model = linker.misc.save_model_to_json()
                try:
                    linker.training.estimate_parameters_using_expectation_maximisation(
                        block_on(*block),
                        max_pairs=matching.max_training_pairs,
                        record_sample_proportion=1.0,
                    )
                except ValueError as exc:
                    # A level no match shows in this block (gender never differing between a
                    # person's records) drives its m below what a float holds; Splink refuses
                    # it. The round's estimates are dropped, the earlier ones kept.
                    log.warning("matching %s: %s dropped (%s)", matching.name, step, exc)
                    linker = Linker(db.register("match_input"), model, log_level=logging.WARNING)
        engine.register("match_predicted", predictions.as_duckdbpyrelation().to_arrow_table())
    return json.dumps(model)


def _link_fresh(
    engine: DuckEngine,
    matching: Matching,
    model: str,
    frequencies: pa.Table | None,
    fresh: pa.Table | None,
    old_pairs: pa.Table | None,
) -> bool:
    """`match_pairs` and `match_occ` with a saved model: the fresh records' pairs scored (with
    the others and among themselves: Splink's predict_between and predict_within), and the old
    pairs of the rest kept. False when nothing matched."""
    import pyarrow as pa
    from splink import DuckDBAPI, Linker

    if fresh is None:
        engine.run("match_fresh", "select * from match_input")
    else:
        engine.register("fresh_keys", fresh)
        engine.run(
            "match_fresh",
            "select i.* from match_input i join fresh_keys f "
            "on f.rule = i.rule and f.record_key = i.record_key",
        )
    engine.run(
        "match_kept",
        "select i.* from match_input i left join match_fresh f on f.unique_id = i.unique_id "
        "where f.unique_id is null",
    )
    predicted = []
    if engine.count("match_fresh"):
        with _quiet():
            db = DuckDBAPI(connection=engine.con)
            linker = Linker(
                db.register("match_input"), json.loads(model), log_level=logging.WARNING
            )
            for name, comparison in matching.compare.items():
                if comparison.kind != "name":
                    continue
                if frequencies is None or not matching.fields[name].vault:
                    linker.table_management.compute_tf_table(name)  # the lists as they are
                    continue
                engine.register("tf_saved", frequencies)
                engine.run(
                    f"tf_{name}",
                    f"select distinct i.{name}, f.tf as tf_{name} from match_input i "
                    f"join tf_saved f on f.token = i.{name}{TOKEN} "
                    f"where f.matching = {quote(matching.name)} and f.field = {quote(name)}",
                )
                linker.table_management.register_term_frequency_lookup(
                    db.register(f"tf_{name}"), name
                )
            new = db.register("match_fresh")
            least = matching.threshold
            scored = [linker.inference.predict_within(new, threshold_match_probability=least)]
            # Only the kept records a blocking list pairs with a fresh one: the pairs Splink
            # would score, without carrying the whole lists through it.
            near = " union ".join(
                "select k.unique_id from match_kept k semi join match_fresh f on "
                + " and ".join(f"k.{c} = f.{c}" for c in columns)
                for columns in matching.blocking
            )
            engine.run(
                "match_near",
                f"select * from match_kept k semi join ({near}) n on n.unique_id = k.unique_id",
            )
            if engine.count("match_near"):
                scored.append(
                    linker.inference.predict_between(
                        db.register("match_near"), new, threshold_match_probability=least
                    )
                )
            predicted = [p.as_duckdbpyrelation().to_arrow_table() for p in scored]
    if predicted:
        engine.register("match_predicted", pa.concat_tables(predicted, promote_options="default"))
    else:
        engine.empty("match_predicted", "unique_id_l varchar, unique_id_r varchar")
    kept = None
    if old_pairs is not None and old_pairs.num_rows:
        engine.register("old_pairs", old_pairs)
        kept = (
            "select p.record_l, p.record_r, p.match_probability, p.match_weight, p.levels "
            "from old_pairs p join match_kept l on l.unique_id = p.record_l "
            "join match_kept r on r.unique_id = p.record_r "
            f"where p.matching = {quote(matching.name)}"
        )
    return _clusters(engine, matching, kept=kept, scored=bool(predicted))


def _clusters(
    engine: DuckEngine, matching: Matching, *, kept: str | None = None, scored: bool = True
) -> bool:
    """`match_pairs` and `match_occ` from the scored pairs of `match_predicted` (less those a
    vetoing field tells apart) and the pairs of the query `kept`; False when there are none."""
    parts = []
    if scored:
        parts.append(_scored_pairs(matching))
    if kept:
        parts.append(kept)
    if not parts:
        return False
    engine.run("match_pairs_raw", " union all ".join(parts))
    if not engine.count("match_pairs_raw"):
        return False
    engine.run("match_edges", "select record_l as sig, record_r as node from match_pairs_raw")
    engine.components("match_edges", "match_clusters")
    engine.run(
        "match_named",
        "select component, min(vertex) as first from match_clusters group by component",
    )
    engine.run(
        "match_pairs",
        f"select {quote(matching.name)} as matching, p.record_l, p.record_r, "
        "p.match_probability, p.match_weight, p.levels, "
        f"{_cluster_id('n.first')} as cluster from match_pairs_raw p "
        "join match_clusters c on c.vertex = p.record_l "
        "join match_named n on n.component = c.component",
    )
    engine.run(
        "match_occ",
        f"select i.rule, i.record_key, i.seen_at, {quote(matching.type)} as identifier_type, "
        f"{quote(matching.name)} as namespace, {_cluster_id('n.first')} as identifier "
        "from match_clusters c join match_named n on n.component = c.component "
        "join match_input i on i.unique_id = c.vertex",
    )
    return True


def _scored_pairs(matching: Matching) -> str:
    """SQL of `match_predicted`'s pairs as identity_matches has them (the records in order,
    each field's level in words), less the pairs a vetoing field tells apart."""
    levels = " || '; ' || ".join(
        f"'{name}: ' || case gamma_{name} "
        + " ".join(f"when {g} then {quote(label)}" for g, label in labels.items())
        + " end"
        for name, labels in _labels(matching).items()
    )
    vetoes = [f"gamma_{n} <> 0" for n, c in matching.compare.items() if c.vetoes]
    return (
        f"select least(unique_id_l, unique_id_r) as record_l, "
        f"greatest(unique_id_l, unique_id_r) as record_r, match_probability, match_weight, "
        f"{levels} as levels from match_predicted"
        + (f" where {' and '.join(vetoes)}" if vetoes else "")
    )


def _unseen_u(model: dict, sampled: int) -> dict:
    """The model with u = 1/`sampled` for every level no random pair showed (two strangers
    with one address, say): not seen in that many pairs is at most about that rare, where
    Splink would leave its default and weigh the agreement as nothing."""
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            if not isinstance(level.get("u_probability"), float | int):
                level["u_probability"] = 1 / max(sampled, 1)
    return model


def _labels(matching: Matching) -> dict[str, dict[int, str]]:
    """field -> Splink's gamma value -> its level's label ("name: one character off"): the
    null level is -1, the others count down to 0 (else) in order."""
    out = {}
    for name, spec in matching.compare.items():
        levels = _comparison(name, spec).get_comparison("duckdb").as_dict()["comparison_levels"]
        ranked = [lv for lv in levels if not lv.get("is_null_level")]
        labels = {-1: "missing"}
        for i, level in enumerate(ranked):
            label = level["label_for_charts"]
            label = {"All other comparisons": "different", f"Exact match on {name}": "same"}.get(
                label, label.replace("Exact match on ", "same ")
            )
            labels[len(ranked) - 1 - i] = label
        out[name] = labels
    return out


def _sure_pairs(engine: DuckEngine, matching: Matching) -> int:
    """Pairs of records meeting one of the deterministic rules (counted once per rule)."""
    parts = [
        f"select count(*) * (count(*) - 1) // 2 as n from match_input "
        f"where {' and '.join(f'{c} is not null' for c in block)} group by {', '.join(block)}"
        for block in matching.deterministic
    ]
    return int(engine.rows(f"select coalesce(sum(n), 0) from ({' union all '.join(parts)})")[0][0])


def _cluster_id(first: str) -> str:
    """A cluster's value: 'M' and 16 hex digits of the sha256 of its first record's id."""
    return f"'M' || substr(sha256({first}), 1, 16)"
