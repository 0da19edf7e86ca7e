"""`cdp query` is the analyst path: the lake's silver, gold and ops tables, and nothing else on
the machine. Every escape attempt below must end in a one-line CdpError and leak nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from jobs.cli import app
from jobs.common import duck
from jobs.common.errors import CdpError
from jobs.common.lake import table_path

PHONE, NAME = "13912345678", "张三丰"
SECRET = "a-very-secret-pii-key-0123456789abcdef-should-never-show"
runner = CliRunner()


@pytest.fixture
def world(lake, monkeypatch, tmp_path):
    """A lake with raw bronze and quarantine rows and analyst tables; a secret in the env."""
    monkeypatch.setenv("CDP_PII_HMAC_KEY", SECRET)
    write_deltalake(
        table_path("bronze", "tmall_orders", lake),
        pa.table({"order_id": ["T1"], "phone": [PHONE], "buyer_name": [NAME]}),
    )
    write_deltalake(
        table_path("quarantine", "records", lake),
        pa.table({"reason": ["bad phone"], "raw": [f"{NAME},{PHONE}"]}),
    )
    write_deltalake(table_path("silver", "orders", lake), pa.table({"order_id": ["T1", "T2"]}))
    write_deltalake(table_path("gold", "customer_360", lake), pa.table({"customer_key": ["k"]}))
    write_deltalake(table_path("ops", "quality_results", lake), pa.table({"suite": ["s"]}))
    (tmp_path / "data.json").write_text(f'{{"phone": "{PHONE}"}}', encoding="utf-8")
    (tmp_path / "data.csv").write_text(f"phone\n{PHONE}\n", encoding="utf-8")
    return lake


def query(*args: str):
    return runner.invoke(app, ["query", *args])


def _parquet(lake) -> str:
    return next(Path(table_path("bronze", "tmall_orders", lake)).glob("*.parquet")).as_posix()


ESCAPES = {
    "bronze without --raw": "select phone, buyer_name from bronze.tmall_orders",
    "quarantine without --raw": "select raw from quarantine.records",
    "bronze alias without --raw": "select * from __bronze__tmall_orders",
    "read_parquet of bronze": "select phone, buyer_name from read_parquet('{lake}/bronze/**/*')",
    "from-first read_parquet": "from read_parquet('{parquet}')",
    "replacement scan of a path": "select * from '{parquet}'",
    "read_csv": "select * from read_csv('{tmp}/data.csv')",
    "read_csv_auto of passwd": "select * from read_csv_auto('/etc/passwd')",
    "read_json": "select * from read_json('{tmp}/data.json')",
    "read_text": "select content from read_text('/etc/hostname')",
    "read_blob": "select content from read_blob('/etc/hostname')",
    "glob": "select * from glob('/etc/*')",
    "sniff_csv": "select * from sniff_csv('/etc/passwd')",
    "parquet_metadata": "select * from parquet_metadata('{parquet}')",
    "query() indirection": "select * from query('select * from read_text(''/etc/hostname'')')",
    "copy to a file": "copy (select * from silver.orders) to '{tmp}/out.csv'",
    "copy from a file": "copy silver.orders from '{tmp}/data.csv'",
    "export database": "export database '{tmp}/export'",
    "attach a file": "attach '{tmp}/other.duckdb' as other",
    "attach memory": "attach ':memory:' as scratch",
    "install": "install httpfs",
    "load": "load httpfs",
    "set external access": "set enable_external_access = true",
    "reset external access": "reset enable_external_access",
    "set anything": "set threads = 1",
    "set allowed directories": "set allowed_directories = ['/']",
    "pragma": "pragma enable_profiling",
    "create": "create table silver.mine as select 1",
    "call": "call pragma_version()",
    "second statement": "select 1; select content from read_text('/etc/hostname')",
    "getenv": "select getenv('CDP_PII_HMAC_KEY')",
    "current_setting of an env var": "select current_setting('CDP_PII_HMAC_KEY')",
    "secrets": "select * from duckdb_secrets()",
}


@pytest.mark.parametrize("sql", ESCAPES.values(), ids=ESCAPES.keys())
def test_escape_attempts_fail_with_one_line_and_leak_nothing(world, tmp_path, sql):
    sql = sql.format(lake=world.lake_root, parquet=_parquet(world), tmp=tmp_path.as_posix())
    result = query(sql)
    assert result.exit_code != 0
    assert isinstance(result.exception, CdpError), result.exception
    message = str(result.exception)
    assert message.startswith("query failed")
    assert "\n" not in message
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    for leaked in (PHONE, NAME, SECRET, hostname):
        if leaked:
            assert leaked not in result.output + message
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "export").exists()
    assert not (tmp_path / "other.duckdb").exists()


@pytest.mark.parametrize(
    "sql",
    [
        "select * from read_text('/etc/hostname')",
        "select * from read_parquet('{parquet}')",
        "copy (select * from bronze.tmall_orders) to '{tmp}/out.csv'",
        "set enable_external_access = true",
    ],
)
def test_raw_adds_bronze_and_quarantine_but_still_no_files(world, tmp_path, sql):
    sql = sql.format(parquet=_parquet(world), tmp=tmp_path.as_posix())
    result = query("--raw", sql)
    assert isinstance(result.exception, CdpError), result.output
    assert "\n" not in str(result.exception)
    assert not (tmp_path / "out.csv").exists()


def test_silver_gold_and_ops_still_answer(world):
    for sql, expected in [
        ("select count(*) as n from silver.orders", "2"),
        ("select customer_key from gold.customer_360", "k"),
        ("select suite from ops.quality_results", "s"),
        ("describe silver.orders", "order_id"),
        ("with o as (select * from silver.orders) select max(order_id) as m from o", "T2"),
        ("explain select * from gold.customer_360", "customer_key"),
    ]:
        result = query(sql)
        assert result.exit_code == 0, (sql, result.exception)
        assert expected in result.output, sql
    raw = query("--raw", "select phone from bronze.tmall_orders")
    assert raw.exit_code == 0
    assert PHONE in raw.output


def test_settings_hold_no_secret(world):
    result = query("select name, value from duckdb_settings()", "--limit", "1000")
    assert result.exit_code == 0
    assert SECRET not in result.output
    assert os.environ["CDP_PII_HMAC_KEY"] == SECRET


def test_pipeline_connections_see_every_layer_and_are_locked(world):
    con = duck.connect(world, raw=True)
    assert {"bronze.tmall_orders", "quarantine.records", "silver.orders"} <= duck.table_names(con)
    with pytest.raises(Exception, match="disabled by configuration"):
        con.execute("select * from read_text('/etc/hostname')")
    with pytest.raises(Exception, match="locked"):
        con.execute("set enable_external_access = true")
    analyst = duck.connect(world, layers=duck.ANALYST_LAYERS)
    assert {t.split(".")[0] for t in duck.table_names(analyst)} >= {"silver", "gold", "ops"}
    assert not {"bronze", "quarantine"} & {t.split(".")[0] for t in duck.table_names(analyst)}
