"""The bronze gate's run-time parameters: volume bounds from the trailing days, freshness."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from jobs.common.settings import QualitySettings
from jobs.quality.bronze_checks import freshness_min, parameters, volume_bounds

DAY = date(2026, 11, 22)
SETTINGS = QualitySettings()  # 7-day window, 30% tolerance, 3 days of history


def history(*counts: int) -> dict[date, int]:
    """counts[0] is the day before DAY, counts[1] two days before, ..."""
    return {DAY - timedelta(days=i + 1): n for i, n in enumerate(counts)}


def test_bounds_are_the_trailing_median_plus_minus_the_tolerance():
    low, high = volume_bounds(history(100, 90, 110, 1000, 95), DAY, SETTINGS)
    assert (low, high) == (70, 130)  # median 100: the 1000 outlier doesn't drag it


def test_days_outside_the_window_or_without_rows_do_not_count():
    counts = history(0, 0, 50, 60, 70, 0, 0, 5000, 5000, 5000)  # 8+ days back: outside
    assert volume_bounds(counts, DAY, SETTINGS) == (42, 78)  # median 60
    assert volume_bounds(counts | {DAY: 999}, DAY, SETTINGS) == (42, 78)  # nor the day itself


def test_no_judgement_without_enough_history():
    assert volume_bounds(history(100, 100), DAY, SETTINGS) == (0, None)
    assert volume_bounds({}, DAY, SETTINGS) == (0, None)
    strict = QualitySettings(volume_min_history_days=1, volume_tolerance=0.0)
    assert volume_bounds(history(100), DAY, strict) == (100, 100)


def test_freshness_is_the_end_of_the_business_day_minus_the_max_age():
    # 2026-11-23 00:00 in Shanghai is 2026-11-22 16:00 UTC; minus 24 h.
    assert freshness_min(DAY, SETTINGS, "Asia/Shanghai") == datetime(2026, 11, 21, 16, tzinfo=UTC)
    six = QualitySettings(freshness_max_age_hours=6)
    assert freshness_min(DAY, six, "Asia/Shanghai") == datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_parameters_name_what_the_suites_refer_to():
    params = parameters(history(10, 10, 10), DAY, SETTINGS, "Asia/Shanghai")
    assert set(params) == {
        "volume_min",
        "volume_max",
        "freshness_min",
        "freshness_min_epoch_s",
        "freshness_min_epoch_ms",
    }
    assert params["freshness_min_epoch_ms"] == params["freshness_min_epoch_s"] * 1000
    assert (params["volume_min"], params["volume_max"]) == (7, 13)
