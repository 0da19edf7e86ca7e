"""The scores' daily delta (jobs/marts/delta.py) on the shared world: its second and third days
were scored as deltas over One-ID's deltas, and a full run of the same silver writes the same
features, RFM, LTV and stages and tags."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs.common import lake
from jobs.marts.scores import score_customers

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SCORED = ("customer_features", "customer_rfm", "customer_ltv")


def _rows(settings, name: str, where: str | None = None) -> list[dict]:
    table = lake.read_arrow(lake.table_path("silver", name, settings), where=where)
    return sorted(table.to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def test_daily_deltas_score_what_a_full_run_scores(silver_world, tmp_path):
    first, *later = silver_world.days
    modes = {day: silver_world.scores[day]["mode"] for day in silver_world.days}
    assert modes == {first: "full", **{day: "incremental" for day in later}}
    last = silver_world.scores[later[-1]]
    # a delta scores the day's customers again, not everyone
    assert 0 < last["rescored_customers"] < last["feature_customers"]

    # a full run of the same silver, on a copy of the lake (the shared world stays untouched)
    source = Path(silver_world.settings.lake_root)
    for layer in ("silver", "ops"):
        shutil.copytree(source / layer, tmp_path / "lake" / layer)
    settings = silver_world.settings.model_copy(
        update={"lake_root": str(tmp_path / "lake"), "var_dir": str(tmp_path / "var")}
    )
    day = later[-1]
    full = score_customers(day, day, settings, mode="full", refit=False)
    assert full["mode"] == "full"
    assert full["feature_customers"] == last["feature_customers"]
    for name in SCORED:
        assert _rows(settings, name) == _rows(silver_world.settings, name), name
    held = f"as_of = '{day.isoformat()}'"
    assert _rows(settings, "customer_tag_days", held) == _rows(
        silver_world.settings, "customer_tag_days", held
    )
