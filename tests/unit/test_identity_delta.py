"""One-ID's daily delta (jobs/identity/incremental.py): a day's new and changed member rows,
resolved with only the profiles they touch, give what a full run of all of silver gives: the
same profiles and one_ids, refusals, record ids and state, on DuckDB and on Spark."""

import random
import shutil
from datetime import date

import pytest

from jobs.common import lake as lakeio
from jobs.identity import incremental
from jobs.identity.run import run_identity
from tests.unit.test_identity_matching import _person, _store_row, _write

DAY1, DAY2 = date(2026, 11, 26), date(2026, 11, 27)
COMPARED = {
    "identity_map": ["one_id", "identifier_type", "identifier", "first_seen", "last_seen"],
    "identity_blocked": ["identifier_type", "identifier", "reason", "guard"],
    "identity_records": ["rule", "record_key", "one_id"],
    "identity_occurrences": ["rule", "record_key", "identifier_type", "identifier", "one_id"],
    "customers": ["one_id", "identifiers", "phone_token", "member_card"],
}


def _on(day: date, people: list[dict]) -> list[dict]:
    return [{**p, "day": day} for p in people]


def _profiles(settings) -> dict[str, set]:
    """one_id -> its identifiers, from silver.identity_map."""
    out: dict[str, set] = {}
    rows = lakeio.read_arrow(lakeio.table_path("silver", "identity_map", settings)).to_pylist()
    for r in rows:
        out.setdefault(r["one_id"], set()).add((r["identifier_type"], r["identifier"]))
    return out


def _table(settings, name: str) -> list[dict]:
    path = lakeio.table_path("silver", name, settings)
    rows = incremental.read_state(path) if name == incremental.STATE else lakeio.read_arrow(path)
    return sorted(rows.select(COMPARED[name]).to_pylist(), key=str)


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.slow)])
def test_a_days_delta_resolves_as_a_full_run_does(lake, engine, request, tmp_path):
    settings = on_engine = lake
    if engine == "spark":  # the delta on Spark (the full runs on DuckDB: the same tables)
        request.getfixturevalue("spark")
        limits = lake.identity.model_copy(update={"max_in_memory_edges": 0})
        on_engine = lake.model_copy(update={"identity": limits})
    rng = random.Random(3)
    crm = [_person(rng, i) for i in range(360)]
    # Day 1: 300 CRM members; a store list with 60 of them written with a slip, 60 as is.
    store = [_store_row(rng, p, n) for n, p in enumerate(crm[20:80])] + crm[200:260]
    _write(settings, _on(DAY1, crm[:300]), _on(DAY1, store))
    first = run_identity(DAY1, settings)
    assert first["mode"] == "full"

    # Day 2: 60 new members; store rows of old and of new members (matched by the saved
    # model, no training); a member who changed phone; a housemate on a member's phone.
    moved = {**crm[5], "phone": "+8613900000001", "day": DAY2}
    housemate = {
        **_person(rng, 4000),
        **{k: crm[250][k] for k in ("address", "district", "phone")},
        "day": DAY2,
    }
    members = [*_on(DAY1, crm[:5]), moved, *_on(DAY1, crm[6:300]), *_on(DAY2, crm[300:])]
    new_rows = [_store_row(rng, p, n) for n, p in enumerate(crm[:20] + crm[300:330])]
    _write(settings, members, _on(DAY1, store) + _on(DAY2, new_rows) + [housemate])
    before = _profiles(settings)
    delta = run_identity(DAY2, on_engine)
    assert delta["mode"] == "incremental", delta
    # the day's 112 rows, and old members a new store row matched (a member_match value)
    assert 60 + 50 + 1 + 1 <= delta["changed_records"] <= 112 + 20, delta
    assert delta["closure_records"] < delta["occurrences"] / 2, delta
    assert delta["engine"] == engine
    written = lakeio.read_arrow(lakeio.table_path("silver", incremental.STATE, settings))
    layers = written.column(incremental.LAYER).to_pylist()
    # the delta appended the records it re-resolved as layer 1; the full run's rows stay
    assert set(layers) == {0, 1}
    assert layers.count(1) < layers.count(0) == first["occurrences"], delta
    # every profile the delta changed (and no more than it re-resolved) is named as touched
    # under the run's id, for the scores to redo
    after = _profiles(settings)
    changed = {o for o in before.keys() | after.keys() if before.get(o) != after.get(o)}
    runs = lakeio.read_arrow(lakeio.table_path("ops", incremental.RUNS, settings)).to_pylist()
    run_id = max(runs, key=lambda r: r["finished_at"])["run_id"]
    touched = lakeio.read_arrow(lakeio.table_path("silver", incremental.TOUCHED, settings))
    named = {r["one_id"] for r in touched.to_pylist() if r["run_id"] == run_id}
    assert changed
    assert changed <= named, changed - named
    assert len(named) < len(after)

    whole = settings.model_copy(update={"lake_root": str(tmp_path / "full")})
    shutil.copytree(settings.lake_root, whole.lake_root)
    full = run_identity(DAY2, whole, mode="full", retrain=False)
    assert full["changes"] == {}, full  # every one_id as the delta left it
    for count in ("profiles", "identifiers", "occurrences", "blocked"):  # counted from the old
        assert delta[count] == full[count], count
    for name in COMPARED:
        assert _table(settings, name) == _table(whole, name), name
    matched = lakeio.read_arrow(lakeio.table_path("silver", "identity_matches", settings))
    assert {"store_member|SH001|VIP00300", "store_member|SH001|VIP00000"} & set(
        matched.column("record_l").to_pylist() + matched.column("record_r").to_pylist()
    )


def test_a_run_is_full_without_state_on_new_controls_and_when_due(lake):
    from jobs.identity.controls import add_blocks

    rng = random.Random(5)
    crm = [_person(rng, i) for i in range(40)]
    _write(lake, _on(DAY1, crm), _on(DAY1, crm[:10]))
    assert run_identity(DAY1, lake)["why"] == "no earlier run's state"
    assert run_identity(DAY2, lake)["mode"] == "incremental"
    add_blocks([("phone", "f" * 64, "a call centre")], lake)
    assert run_identity(DAY2, lake)["why"] == "the registry or the operators' controls changed"
    assert run_identity(DAY2, lake)["mode"] == "incremental"
    due = lake.identity.model_copy(update={"full_every_days": 0})
    assert run_identity(DAY2, lake.model_copy(update={"identity": due}))["mode"] == "full"
    assert run_identity(DAY2, lake, mode="full")["why"] == "asked for"
    runs = lakeio.read_arrow(lakeio.table_path("ops", incremental.RUNS, lake)).to_pylist()
    modes = [r["mode"] for r in sorted(runs, key=lambda r: r["finished_at"])]
    assert modes == ["full", "incremental", "full", "incremental", "full", "full"]


def test_a_state_written_before_layers_stays_whole_under_later_layers(lake, tmp_path):
    """A lake whose state predates `layer`: the first delta appends a layer (its rows get a
    null layer), and later runs still read every old record as of layer 0."""
    rng = random.Random(7)
    crm = [_person(rng, i) for i in range(80)]
    _write(lake, _on(DAY1, crm[:60]), _on(DAY1, crm[:10]))
    run_identity(DAY1, lake)
    path = lakeio.table_path("silver", incremental.STATE, lake)
    old = lakeio.read_arrow(path)
    lakeio.overwrite_arrow(old.drop_columns([incremental.LAYER]), path)  # as an older version

    moved = {**crm[3], "phone": "+8613900000003", "day": DAY2}
    members = [*_on(DAY1, crm[:3]), moved, *_on(DAY1, crm[4:60]), *_on(DAY2, crm[60:])]
    _write(lake, members, _on(DAY1, crm[:10]))
    assert run_identity(DAY2, lake)["mode"] == "incremental"
    assert None in set(lakeio.read_arrow(path).column(incremental.LAYER).to_pylist())
    rerun = run_identity(DAY2, lake)  # reads the mixed state: nothing changed since
    assert rerun["mode"] == "incremental", rerun
    assert rerun["changed_records"] == 0, rerun

    whole = lake.model_copy(update={"lake_root": str(tmp_path / "full")})
    shutil.copytree(lake.lake_root, whole.lake_root)
    run_identity(DAY2, whole, mode="full", retrain=False)
    for name in COMPARED:
        assert _table(lake, name) == _table(whole, name), name
