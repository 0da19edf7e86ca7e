"""`cdp identity evaluate`: One-ID measured against labeled records (the simulator's `_truth/`,
or any file in its shape), never read by the pipeline itself.

Each silver record the identity rules read gets the one_id its ids map to in
`silver.identity_map` (`ids.record_one_ids`, after the extraction the run does); a mapping file
(jobs/identity/truth_mapping.yaml by default) says which rule's record each labeled record is;
jobs/identity/evaluate.py counts the pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from jobs.common import lake
from jobs.common.errors import CdpError, validation_problems
from jobs.common.settings import Settings, get_settings
from jobs.common.yamlio import load_yaml
from jobs.identity.engine import SparkEngine
from jobs.identity.ids import record_one_ids

if TYPE_CHECKING:
    from jobs.identity.evaluate import EvaluationReport

MAPPING_FILE = Path(__file__).parent / "truth_mapping.yaml"


class DatasetMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str
    truth_key: str
    our_key: str = "record_key"


class TruthMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: dict[str, DatasetMapping]


def load_mapping(path: Path | str | None = None) -> TruthMapping:
    path = Path(path or MAPPING_FILE)
    try:
        return TruthMapping.model_validate(load_yaml(path))
    except ValidationError as exc:
        raise CdpError(f"{path}: {validation_problems(exc, empty='mapping')}") from exc


def evaluate_lake(
    truth_dir: Path,
    mapping_path: Path | None = None,
    settings: Settings | None = None,
    datasets: tuple[str, ...] = (),
) -> EvaluationReport:
    """One-ID as silver.identity_map holds it now, against labeled records (only the pairs
    within `datasets` when given)."""
    from jobs.identity import graph
    from jobs.identity.evaluate import evaluate
    from jobs.identity.registry import load_registry
    from jobs.identity.run import open_engine, rule_tables

    settings = settings or get_settings()
    mapping = load_mapping(mapping_path)
    registry = load_registry(settings.identity.registry)
    unknown = sorted({m.rule for m in mapping.datasets.values()} - {r.name for r in registry.rules})
    if unknown:
        raise CdpError(f"the truth mapping names unknown identity rule(s) {', '.join(unknown)}")
    idmap_path = lake.table_path("silver", "identity_map", settings)
    if not lake.is_delta(idmap_path):
        raise CdpError("no silver.identity_map yet: run `cdp identity run` first")
    paths = rule_tables(registry, settings)
    with open_engine(settings, registry, paths) as engine:
        graph.extract(engine, registry, set(paths))
        if isinstance(engine, SparkEngine):
            engine.register("idmap", engine.spark.read.format("delta").load(idmap_path))
            record_one_ids(engine, "resolved", "idmap")
            resolved = engine.frame("resolved").toArrow()
        else:
            engine.register("idmap", lake.read_arrow(idmap_path))
            record_one_ids(engine, "resolved", "idmap")
            resolved = engine.arrow("resolved")
    return evaluate(labeled_one_ids(resolved, truth_dir, mapping), truth_dir, datasets=datasets)


def labeled_one_ids(resolved, truth_dir: Path, mapping: TruthMapping):
    """Arrow (dataset, record_id, one_id) of the labeled records of mapped datasets, from
    `resolved` (Arrow rule, record_key, one_id); a labeled record with no resolved match has a
    null one_id. Unmapped datasets are left out (the report lists them)."""
    import duckdb

    records = Path(truth_dir) / "records.csv"
    if not records.is_file():
        raise CdpError(f"{records}: no such file (the labeled records, dataset,record_id,...)")
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    con.execute("set threads=2")
    con.register("resolved", resolved)
    parts = []
    for dataset, m in sorted(mapping.datasets.items()):
        parts.append(
            f"""select t.dataset, t.record_id, r.one_id
                from (select distinct dataset, record_id, ({m.truth_key}) as k
                      from read_csv('{records}', header=true, all_varchar=true)
                      where dataset = '{dataset}') t
                left join (select ({m.our_key}) as k, min(one_id) as one_id from resolved
                           where rule = '{m.rule}' group by 1) r using (k)"""
        )
    try:
        return con.sql(" union all ".join(parts)).to_arrow_table()
    finally:
        con.close()
