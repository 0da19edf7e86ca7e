"""The data-quality gate: run a JSON expectation suite on a Spark DataFrame with Great Expectations.

Why this shape:
- Suites are plain JSON files in ``expectations/<layer>.<dataset>.json`` (GX 1.x suite format), so
  they are reviewed like code and need no GX project folder. GX runs in an *ephemeral* context:
  nothing is written to the repository and no usage statistics are sent.
- Every expectation carries ``meta.level``: ``block`` (a failure stops downstream work, see
  `enforce`) or ``warn`` (recorded in ops/quality_results only).
- `validate` returns a plain `QualityReport` (no GX objects), so callers, Airflow XComs and tests
  never depend on GX's result classes, and `results_table` turns it into rows for the Delta table
  (`write_results` replaces a run's rows: one set per suite and run id, however often rerun).
- Failing values are quoted as samples, masked with jobs.common.masking (personal-data columns
  entirely): ops.quality_results and the report files are read by analysts.
- GX is imported lazily: importing this module stays cheap (Airflow parses DAG files often).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.common.errors import CdpError, QualityGateFailed
from jobs.common.masking import is_personal_field, mask_pii, mask_value
from jobs.common.settings import PROJECT_ROOT

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import DataFrame

LEVELS = ("block", "warn")
DEFAULT_EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
_SUITE_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
_DETAILS_MAX = 240  # characters of `details` kept per expectation
_PARTIAL_UNEXPECTED = 5  # sample values of failing rows kept per expectation


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's outcome, flattened to text for the report and the ops table."""

    expectation: str
    column: str | None
    level: str
    success: bool
    details: str


@dataclass(frozen=True)
class QualityReport:
    suite: str
    run_id: str
    validated_at: datetime
    results: list[ExpectationResult] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def failed_blocking(self) -> list[ExpectationResult]:
        return [r for r in self.results if r.level == "block" and not r.success]

    @property
    def failed_warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if r.level == "warn" and not r.success]

    @property
    def success_blocking(self) -> bool:
        """True when every blocking expectation passed (warnings do not count)."""
        return not self.failed_blocking


# --- suites -----------------------------------------------------------------------------------


def suite_path(name: str, expectations_dir: Path | None = None) -> Path:
    return Path(expectations_dir or DEFAULT_EXPECTATIONS_DIR) / f"{name}.json"


def load_suite(name: str, expectations_dir: Path | None = None) -> dict:
    """Read and check ``<expectations_dir>/<name>.json``; a CdpError names the file if it is bad."""
    if not _SUITE_NAME.fullmatch(name):
        raise CdpError(f"invalid expectation suite name {name!r}: expected '<layer>.<dataset>'")
    path = suite_path(name, expectations_dir)
    if not path.is_file():
        raise CdpError(f"expectation suite {name!r} not found: {path} does not exist")
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise CdpError(f"cannot read expectation suite {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise CdpError(
            f"invalid JSON in expectation suite {path} (line {e.lineno}, column {e.colno}): {e.msg}"
        ) from e
    _check_suite(suite, name, path)
    return suite


def _check_suite(suite: Any, name: str, path: Path) -> None:
    def bad(why: str) -> CdpError:
        return CdpError(f"invalid expectation suite {path}: {why}")

    if not isinstance(suite, dict):
        raise bad("the top level must be a JSON object")
    if suite.get("name") != name:
        raise bad(f"'name' is {suite.get('name')!r}, expected {name!r} (the file name)")
    expectations = suite.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise bad("'expectations' must be a non-empty list")
    for i, exp in enumerate(expectations):
        where = f"expectations[{i}]"
        if not isinstance(exp, dict):
            raise bad(f"{where} must be an object")
        exp_type = exp.get("type")
        if not isinstance(exp_type, str) or not exp_type.startswith("expect_"):
            raise bad(f"{where}.type must be an expectation name like 'expect_...'")
        if not isinstance(exp.get("kwargs", {}), dict):
            raise bad(f"{where}.kwargs must be an object")
        meta = exp.get("meta")
        level = meta.get("level") if isinstance(meta, dict) else None
        if level not in LEVELS:
            raise bad(f"{where} ({exp_type}): meta.level must be one of {', '.join(LEVELS)}")


# --- validation -------------------------------------------------------------------------------


def validate(
    df: DataFrame | pd.DataFrame,
    suite_name: str,
    *,
    run_id: str,
    expectations_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
) -> QualityReport:
    """Run the suite on the DataFrame with GX and return a GX-free report (never raises on
    failed expectations: call `enforce` for that).

    A Spark DataFrame runs on GX's Spark engine, a pandas one (bronze days, read through delta-rs
    with Arrow dtypes) on its pandas engine. `parameters` fill the suite's run-time values
    (``{"$PARAMETER": "volume_min"}`` in a kwarg), e.g. volume bounds from the trailing days.
    """
    suite = load_suite(suite_name, expectations_dir)
    validated_at = datetime.now(UTC)
    started = time.perf_counter()

    # Cache a Spark frame for GX's metric jobs (they all scan it), unless the caller already did.
    cached_here = _is_spark(df) and not df.is_cached
    if cached_here:
        df.persist()
    try:
        gx_result, ids = _run_gx(
            df,
            suite,
            run_id=run_id,
            validated_at=validated_at,
            path=suite_path(suite_name, expectations_dir),
            parameters=parameters or {},
        )
    finally:
        if cached_here:
            df.unpersist()

    return QualityReport(
        suite=suite_name,
        run_id=run_id,
        validated_at=validated_at,
        results=_flatten(gx_result, ids),
        duration_seconds=round(time.perf_counter() - started, 3),
    )


def _run_gx(
    df: Any,
    suite: dict,
    *,
    run_id: str,
    validated_at: datetime,
    path: Path,
    parameters: dict[str, Any],
) -> tuple[Any, list[str | None]]:
    """The GX 1.x calls: ephemeral context -> Spark data source -> dataframe asset -> whole-frame
    batch definition -> suite -> validation definition -> checkpoint (no actions)."""
    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if _is_spark(df):
        # persist=False: GX would otherwise persist() the caller's frame and never unpersist it.
        source = context.data_sources.add_spark(name="cdp_spark", persist=False)
    else:
        source = context.data_sources.add_pandas(name="cdp_pandas")
    asset = source.add_dataframe_asset(name=suite["name"])
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_dataframe")

    # ExpectationSuite(expectations=[dict...]) logs and *drops* an invalid expectation, so build
    # each one here to turn a typo in the JSON into an error that names the file.
    expectations = []
    for i, exp in enumerate(suite["expectations"]):
        config = {k: exp[k] for k in ("type", "kwargs", "meta") if k in exp}
        try:
            expectations.append(ExpectationConfiguration(**config).to_domain_obj())
        except Exception as e:  # GX raises several types (unknown name, bad kwargs)
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CdpError(
                f"invalid expectation suite {path}: expectations[{i}] ({exp['type']}): {msg}"
            ) from e
    gx_suite = context.suites.add(
        gx.ExpectationSuite(name=suite["name"], expectations=expectations)
    )

    validation = context.validation_definitions.add(
        gx.ValidationDefinition(
            name=f"{suite['name']}:{run_id}", data=batch_definition, suite=gx_suite
        )
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"gate:{suite['name']}",
            validation_definitions=[validation],
            actions=[],
            result_format={
                "result_format": "BASIC",
                "partial_unexpected_count": _PARTIAL_UNEXPECTED,
            },
        )
    )
    missing = sorted(_parameter_names(suite) - set(parameters))
    if missing:
        raise CdpError(f"expectation suite {path} needs run-time parameter(s) {missing}")
    result = checkpoint.run(
        batch_parameters={"dataframe": df},
        expectation_parameters=parameters,
        run_id=RunIdentifier(run_name=run_id, run_time=validated_at),
    )
    (suite_result,) = result.run_results.values()
    return suite_result, [e.id for e in gx_suite.expectations]


def _parameter_names(suite: dict) -> set[str]:
    """Names of the run-time parameters the suite's kwargs refer to."""
    return {
        value["$PARAMETER"]
        for exp in suite["expectations"]
        for value in exp.get("kwargs", {}).values()
        if isinstance(value, dict) and "$PARAMETER" in value
    }


def _is_spark(df: Any) -> bool:
    """A Spark DataFrame (else pandas): the gate validates both, with GX's matching engine."""
    return type(df).__module__.startswith("pyspark")


def _import_gx() -> Any:
    # No usage statistics, whatever the environment says (1.24 sends none, older 1.x did).
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx

    return gx


def _flatten(suite_result: Any, ids: list[str | None]) -> list[ExpectationResult]:
    """GX's ExpectationSuiteValidationResult -> our results, in the suite file's order (GX
    groups them by domain); `ids` are the suite's expectation ids in file order."""
    order = {exp_id: i for i, exp_id in enumerate(ids) if exp_id}
    flat = []
    for position, res in enumerate(suite_result.results):
        config = res.expectation_config
        kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
        flat.append(
            (
                order.get(config.id, len(order) + position),
                ExpectationResult(
                    expectation=config.type,
                    column=_column(kwargs),
                    level=(config.meta or {}).get("level", "block"),
                    success=bool(res.success),
                    details=_details(res.result or {}, res.exception_info or {}, _column(kwargs)),
                ),
            )
        )
    return [r for _, r in sorted(flat, key=lambda t: t[0])]


def _column(kwargs: dict) -> str | None:
    if kwargs.get("column") is not None:
        return str(kwargs["column"])
    if kwargs.get("column_A") is not None:
        return f"{kwargs['column_A']},{kwargs.get('column_B')}"
    if kwargs.get("column_list"):
        return ",".join(str(c) for c in kwargs["column_list"])
    return None


def _details(result: dict, exception_info: dict, column: str | None = None) -> str:
    """The outcome as one short line; never a raw personal value: samples of a personal-data
    column are `***`, everything else goes through `mask_pii`."""
    error = _exception_message(exception_info)
    if error:
        text = f"error: {error}"
    elif "unexpected_count" in result:
        # Counts with thousands separators: ours, not data, so mask_pii never reads a row
        # count of 1287171 as a number to hide.
        count, total = result["unexpected_count"], result.get("element_count", "?")
        text = f"unexpected {_count(count)} of {_count(total)}"
        if result.get("missing_count"):
            text += f" (null {_count(result['missing_count'])})"
        sample = result.get("partial_unexpected_list") or []
        if result["unexpected_count"] and sample:
            # Samples may quote raw personal data (bronze): never let it reach ops or reports.
            text += f", e.g. {_sample(sample, column)}"
    elif isinstance(result.get("details"), dict) and result["details"].get("mismatched"):
        text = f"mismatched {_short(result['details']['mismatched'])}"
    elif "observed_value" in result:
        observed = result["observed_value"]
        # e.g. the max of a phone column: a value of the column, masked like a sample
        if is_personal_field(column) and observed is not None:
            shown = "***"
        else:
            shown = _count(observed) if isinstance(observed, int) else _short(observed)
        text = f"observed {shown}"
    else:
        text = ""
    return mask_pii(_one_line(text))[:_DETAILS_MAX]


def _count(n: object) -> str:
    """An integer count as 1,287,171; anything else as given."""
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else str(n)


def _sample(values: list, column: str | None) -> str:
    """Failing values as `[v1, v2]`, each through `mask_value` (whole values of personal-data
    columns hidden)."""
    shown = ("null" if v is None else mask_value(column, repr(v)) for v in values)
    return "[" + ", ".join(shown) + "]"


def _exception_message(info: dict) -> str | None:
    """GX 1.x puts {raised_exception, exception_message} either at the top level or per metric."""
    candidates = [info, *(v for v in info.values() if isinstance(v, dict))]
    for c in candidates:
        if c.get("raised_exception"):
            return str(c.get("exception_message") or "exception").strip().splitlines()[0]
    return None


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join("null" if v is None else repr(v) for v in value) + "]"
    return json.dumps(value, default=str) if isinstance(value, dict) else repr(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- outputs ----------------------------------------------------------------------------------


RESULTS_COLUMNS = (
    "suite",
    "run_id",
    "validated_at",
    "expectation",
    "column",
    "level",
    "success",
    "details",
)


def results_table(report: QualityReport) -> pa.Table:
    """The report as rows for ops.quality_results (see `write_results`): one writer for both
    engines, and no Spark job for a few rows. Analysts read this table: details are masked
    again here, whoever built the report."""
    import pyarrow as pa

    schema = pa.schema(
        [
            ("suite", pa.string()),
            ("run_id", pa.string()),
            ("validated_at", pa.timestamp("us", tz="UTC")),
            ("expectation", pa.string()),
            ("column", pa.string()),
            ("level", pa.string()),
            ("success", pa.bool_()),
            ("details", pa.string()),
        ]
    )
    rows = [
        {
            "suite": report.suite,
            "run_id": report.run_id,
            "validated_at": report.validated_at,
            "expectation": r.expectation,
            "column": r.column,
            "level": r.level,
            "success": r.success,
            "details": mask_pii(r.details),
        }
        for r in report.results
    ]
    return pa.Table.from_pylist(rows, schema=schema)


def write_results(report: QualityReport, path: str) -> None:
    """Put the report's rows into ops.quality_results at `path`, replacing the rows of its run
    (suite and run id) in one delta-rs commit: a rerun leaves one set of rows, never two."""
    from jobs.common.lake import replace_day_arrow, sql_literal

    predicate = f"suite = {sql_literal(report.suite)} AND run_id = {sql_literal(report.run_id)}"
    replace_day_arrow(results_table(report), path, predicate, partition=False)


def write_report(report: QualityReport, folder: Path) -> Path:
    """The readable report (`render_text`) as ``<folder>/<suite>.txt``, replaced atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{report.suite}.txt"
    tmp = target.with_suffix(".txt.tmp")
    tmp.write_text(render_text(report) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def enforce(report: QualityReport) -> None:
    """Raise QualityGateFailed (one line) naming every failed blocking expectation."""
    failed = report.failed_blocking
    if not failed:
        return
    listed = "; ".join(
        f"{r.expectation}({r.column or 'table'}): {mask_pii(r.details) or 'failed'}" for r in failed
    )
    raise QualityGateFailed(
        _one_line(
            f"quality gate {report.suite} failed (run {report.run_id}): {len(failed)} blocking "
            f"expectation(s) failed: {listed}"
        )
    )


def enforce_all(reports: list[QualityReport]) -> None:
    """`enforce` over several suites: one error naming every suite that blocked."""
    errors = []
    for report in reports:
        try:
            enforce(report)
        except QualityGateFailed as exc:
            errors.append(str(exc))
    if errors:
        raise QualityGateFailed(" | ".join(errors))


def render_text(report: QualityReport) -> str:
    """A short human-readable report (CLI output, Airflow task log, `write_report`'s file);
    details masked with `mask_pii`."""
    passed = sum(r.success for r in report.results)
    verdict = "PASS" if report.success_blocking else "BLOCKED"
    warnings = len(report.failed_warnings)
    lines = [
        f"quality {report.suite}  run {report.run_id}  at "
        f"{report.validated_at.isoformat(timespec='seconds')}",
        f"{verdict}: {passed}/{len(report.results)} expectations passed, "
        f"{len(report.failed_blocking)} blocking failure(s), {warnings} warning(s) "
        f"[{report.duration_seconds:.1f} s]",
    ]
    for r in report.results:
        status = "ok  " if r.success else ("FAIL" if r.level == "block" else "WARN")
        lines.append(
            f"  {status} {r.level:<5} {r.expectation} [{r.column or 'table'}] "
            f"{mask_pii(r.details)}".rstrip()
        )
    return "\n".join(lines)
