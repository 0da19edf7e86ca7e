"""The shared simulated world (tests/integration/silver_world.py) through every silver table.

What holds for silver as a whole: every table is built, keys are unique, a rerun changes nothing,
raw contact details stay in bronze and the PII vault (canaries planted in the world are found
in neither silver, gold nor ops, `_delta_log` included), and the analyst paths open silver, gold
and ops only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from jobs.common import duck, lake
from jobs.silver.build import VAULT_TABLE, all_tables
from tests.fixtures import canaries

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _table(settings, layer: str, name: str) -> pd.DataFrame:
    return DeltaTable(lake.table_path(layer, name, settings)).to_pandas()


def test_every_silver_table_is_built_with_unique_keys(silver_world):
    settings = silver_world.settings
    for table in all_tables():
        path = lake.table_path("silver", table.name, settings)
        assert lake.is_delta(path), f"silver.{table.name} was never written"
        df = _table(settings, "silver", table.name)
        assert len(df), f"silver.{table.name} is empty after {len(silver_world.days)} days"
        keys = list(table.keys)
        dupes = df[df.duplicated(keys, keep=False)]
        assert dupes.empty, f"silver.{table.name}: {len(dupes)} rows share a key {keys}"
        assert not [c for c in df.columns if c.startswith("_pii_")], table.name


def test_no_canary_in_silver_gold_or_ops_but_in_bronze_and_the_vault(silver_world):
    root = Path(silver_world.settings.lake_root)
    assert set(silver_world.planted) == {"crm.members", "web.events", "import.customers"}
    for layer in ("silver", "gold", "ops"):
        assert (root / layer).is_dir(), layer
        leaks = canaries.find(root / layer)
        assert not leaks, f"canaries in {layer}: {leaks[:5]}"
    # The test can fail: the canaries did travel, into the raw layers.
    assert {n for _, n in canaries.find(root / "bronze")} >= {
        canaries.NAME,
        canaries.MOBILE,
        canaries.EMAIL,
        canaries.ID_CARD,
    }
    vault = _table(silver_world.settings, "vault", VAULT_TABLE)
    values = set(vault["value"])
    assert "+86" + canaries.MOBILE in values
    assert canaries.EMAIL in values
    assert canaries.NAME in values
    assert canaries.ID_CARD in values


def test_imported_member_list_keeps_every_member(silver_world):
    """A bad optional value (a short phone, a broken email, an impossible birthday) lands as
    null, the member is kept; good ones are tokens."""
    imported = _table(silver_world.settings, "silver", "imported_customers")
    rows = {r.customer_id: r for r in imported.itertuples()}
    assert set(rows) == {"B0001", "B0002", "B0003"}
    assert rows["B0001"].id_card_token
    assert rows["B0002"].phone_token
    assert rows["B0001"].marketing_consent
    assert not rows["B0002"].marketing_consent
    bad = rows["B0003"]
    assert pd.isna(bad.phone_token)
    assert pd.isna(bad.email_token)
    assert pd.isna(bad.birthday)


def test_analyst_paths_open_silver_gold_and_ops_only(silver_world):
    settings = silver_world.settings
    # (DuckDB lists the registered Arrow datasets behind the views under main.__<layer>__*)
    names = {n for n in duck.table_names(duck.connect(settings)) if not n.startswith("main.")}
    layers = {n.split(".")[0] for n in names}
    assert layers == {"silver", "gold", "ops"}
    assert {f"silver.{t.name}" for t in all_tables()} <= names
    raw = {n.split(".")[0] for n in duck.table_names(duck.connect(settings, raw=True))}
    assert not {n for n in duck.table_names(duck.connect(settings)) if "bronze" in n}
    assert {"bronze", "quarantine", "vault"} <= raw


def test_cdp_query_shows_silver_tables(silver_world, monkeypatch):
    from jobs.cli import app
    from jobs.common.settings import get_settings
    from tests.conftest import _lake_env

    for k, v in _lake_env(Path(silver_world.settings.lake_root).parent).items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        shown = runner.invoke(app, ["query", "select count(*) as n from silver.events"])
        assert shown.exit_code == 0, shown.output
        refused = runner.invoke(app, ["query", "select count(*) from vault.pii"])
        assert refused.exit_code != 0
    finally:
        get_settings.cache_clear()


def _snapshot(settings) -> dict[str, pd.DataFrame]:
    out = {}
    for layer, name, path in lake.list_tables(settings):
        if layer not in ("silver", "vault"):
            continue
        df = DeltaTable(path).to_pandas()
        df = df[sorted(df.columns)].astype(str)
        out[f"{layer}.{name}"] = df.sort_values(list(df.columns)).reset_index(drop=True)
    return out


def test_rerunning_days_changes_nothing(silver_world, tmp_path):
    """A rerun of the last day, and a backfill of the first, leave silver and the vault as
    they were (on a copy of the world's lake: the shared world stays untouched)."""
    from jobs import daily

    source = Path(silver_world.settings.lake_root)
    shutil.copytree(source, tmp_path / "lake")
    settings = silver_world.settings.model_copy(
        update={"lake_root": str(tmp_path / "lake"), "var_dir": str(tmp_path / "var")}
    )
    before = _snapshot(settings)
    for day in (silver_world.days[-1], silver_world.days[0]):
        daily.build_silver(day, settings)
        after = _snapshot(settings)
        assert set(after) == set(before)
        for name, df in before.items():
            pd.testing.assert_frame_equal(after[name], df, obj=f"{name} after rerunning {day}")


ORDER_DATASETS = {
    "tmall.orders": "tmall",
    "tmall.trades": "tmall",
    "jd.orders": "jd",
    "douyin.orders": "douyin",
    "pdd.orders": "pdd",
    "youzan.orders": "youzan",
    "miniprogram.orders": "miniprogram",
    "pos.orders": "pos",
}


def _order_truth(silver_world) -> pd.DataFrame:
    """The simulator's truth per order (evaluation only: no pipeline step reads it)."""
    truth = pd.read_csv(
        silver_world.landing / "_truth" / "records.csv", dtype=str, keep_default_na=False
    )
    truth = truth[truth["dataset"].isin(ORDER_DATASETS)].copy()
    truth["source"] = truth["dataset"].map(ORDER_DATASETS)
    truth["order_id"] = truth["record_id"].str.split(":").str[0]  # JD/抖店: order:line
    flags = truth.groupby(["source", "order_id"])["flags"]
    found = flags.agg(lambda f: set("|".join(f).split("|")) - {""})
    return found.rename("truth_flags").reset_index()


def test_order_mess_is_flagged_never_dropped(silver_world):
    """Test orders are flagged, late ones carry their lateness, re-syncs collapse to one row,
    and every order the platforms sent (unless its only line was spoiled) is in silver."""
    orders = _table(silver_world.settings, "silver", "orders")
    truth = _order_truth(silver_world)
    merged = truth.merge(orders, on=["source", "order_id"], how="left", indicator=True)
    spoiled_only = merged["truth_flags"].map(lambda f: "spoiled" in f)
    missing = merged[(merged["_merge"] == "left_only") & ~spoiled_only]
    assert len(missing) <= 0.02 * len(merged), missing[["source", "order_id", "truth_flags"]].head()
    found = merged[merged["_merge"] == "both"]
    is_test = found["truth_flags"].map(lambda f: "test" in f)
    assert is_test.any(), "the world has test orders"
    assert found.loc[is_test, "is_test"].all(), "every test order is flagged"
    assert not found.loc[~is_test, "is_test"].any(), "no real order is flagged as a test"
    late = found["truth_flags"].map(lambda f: "late" in f)
    assert late.any()
    assert (found.loc[late, "lateness_days"] > 0).all(), "late orders carry their lateness"
    resynced = found["truth_flags"].map(lambda f: "resync" in f)
    assert resynced.any()
    assert not orders.duplicated(["source", "order_id"]).any()
    # Full-width digits and +86 prefixes still give the phone's token; masked ones a partial.
    full_width = found["truth_flags"].map(lambda f: "fullwidth_phone" in f)
    if full_width.any():
        assert found.loc[full_width, "phone_token"].notna().all()
    assert orders["phone_partial"].dropna().str.fullmatch(r"1\d{2}\*{4}\d{4}").all()
    assert orders["phone_token"].dropna().str.fullmatch(r"[0-9a-f]{64}").all()
