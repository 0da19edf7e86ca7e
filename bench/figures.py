"""The figures every benchmark result has: ours, its baseline measured in the same run, and
their ratio (bench/run.py writes them to bench/results/ and docs/benchmarks.md)."""

from __future__ import annotations


def result(
    name: str,
    what: str,
    rows: int,
    seconds: float,
    baseline: str,
    baseline_rows: int,
    baseline_seconds: float,
    *,
    digits: int = 2,
) -> dict:
    """The figures every benchmark result has: ours, its baseline, and their ratio."""
    return {
        "name": name,
        "what": what,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "baseline": baseline,
        "baseline_rows": baseline_rows,
        "baseline_seconds": round(baseline_seconds, 2),
        "baseline_rows_per_second": round(baseline_rows / baseline_seconds),
        "ratio_to_baseline": round(seconds / baseline_seconds, digits),
    }
