"""The analyst notebook runs top to bottom on the shared world's lake (notebooks/ is never
imported: its code cells are executed here, in order, as a kernel would)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

from jobs.common import duck

pytestmark = [pytest.mark.slow, pytest.mark.integration]
NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "customer_360_tour.ipynb"


def test_the_customer_360_tour_runs_on_a_processed_world(silver_world, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.setattr(duck, "get_settings", lambda: silver_world.settings)
    cells = [c for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert len(code) >= 10
    namespace: dict = {}
    for i, source in enumerate(code):
        try:
            exec(compile(source, f"{NOTEBOOK.name} cell {i}", "exec"), namespace)
        except Exception as exc:  # name the cell that broke
            raise AssertionError(f"{NOTEBOOK.name} code cell {i} failed: {exc}") from exc
    # the tour reached the scored tables, and they hold the world's customers
    assert len(namespace["c360"]) > 100
    assert set(namespace["rfm"]["rfm_segment"]) - {None}
