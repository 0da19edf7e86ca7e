"""`cdp rfm` and `cdp ltv` on order files: the import's mapping, bad rows reported, the output."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.marts.files import LTV_COLUMNS, RFM_COLUMNS, rfm_frame
from tests.unit.test_marts_ltv import simulate

AS_OF = date(2026, 11, 30)
MAPPING = """\
columns:
  订单编号: order_id
  会员编号: buyer_id
  下单时间: created
  实付金额: payment
  订单状态:
    field: status
    values: {已完成: completed, 已关闭: closed, 已发货: shipped}
"""
# line 1 is the header
LINES = [
    "订单编号,会员编号,下单时间,实付金额,订单状态",
    "A1,u1,2026-11-01 10:00:00,100.50,已完成",  # 2: a date-time
    "A2,u1,2026-11-20,20,已发货",  # 3: a bare date
    'A3,u2,2026/11/29,"1,288.00",已完成',  # 4
    "A4,u3,yesterday,20,已完成",  # 5: bad created
    "A5,u3,2026-11-05,abc,已完成",  # 6: bad payment
    "A6,u4,2026-11-05,30,已关闭",  # 7: closed
    "A7,,2026-11-05,30,已完成",  # 8: no buyer
    "A8,u5,2026-11-28 09:00,15,已完成",  # 9
]


def _run(tmp_path: Path, command: str, lines: list[str], *extra: str):
    orders = tmp_path / "orders.csv"
    orders.write_text("\n".join(lines) + "\n", encoding="gbk")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    out = tmp_path / f"{command}.parquet"
    args = [command, "--orders", str(orders), "--mapping", str(mapping)]
    args += ["--as-of", AS_OF.isoformat(), "--out", str(out), *extra]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    return result, out


def test_rfm_scores_the_paid_orders_and_names_each_skipped_line(tmp_path):
    result, out = _run(tmp_path, "rfm", LINES)
    assert result.exit_code == 0, result.output
    got = pd.read_parquet(out)
    assert list(got.columns) == RFM_COLUMNS
    paid = pd.DataFrame(
        [
            ("u1", "A1", date(2026, 11, 1), 100.5),
            ("u1", "A2", date(2026, 11, 20), 20.0),
            ("u2", "A3", date(2026, 11, 29), 1288.0),
            ("u5", "A8", date(2026, 11, 28), 15.0),
        ],
        columns=["customer_id", "order_id", "order_date", "amount"],
    )
    pd.testing.assert_frame_equal(got, rfm_frame(paid, AS_OF), check_dtype=False)
    text = " ".join(result.output.split())
    assert "8 row(s) read, 4 paid order(s) of 3 customer(s)" in text
    assert "field 'created' (下单时间): expected a date like 2026-11-22" in text
    assert "(line 5)" in text
    assert "field 'payment' (实付金额): expected a decimal amount" in text
    assert "(line 6)" in text
    assert "status 'closed' is not paid, shipped or completed (line 7)" in text
    assert "(line 8)" in text


def test_a_mapping_without_a_needed_field_is_refused(tmp_path):
    lines = [line.rsplit(",", 1)[0] for line in LINES]
    orders = tmp_path / "o.csv"
    orders.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    columns = {"订单编号": "order_id", "会员编号": "phone"}
    columns |= {"下单时间": "created", "实付金额": "payment"}
    mapping.write_text("columns:\n" + "".join(f"  {k}: {v}\n" for k, v in columns.items()))
    args = ["rfm", "--orders", str(orders), "--mapping", str(mapping), "--as-of", "2026-11-30"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x.csv")])
    assert result.exit_code != 0
    assert "maps no column to buyer_id" in str(result.exception)


@pytest.mark.parametrize("freq", ["D", "W"])
def test_ltv_writes_every_customer_and_prints_the_fitted_parameters(tmp_path, freq):
    world = simulate(1500, seed=5)
    lines = [LINES[0]] + [
        f"{o},{c},{d.isoformat()},{a:.2f},已完成" for c, o, d, a in world.itertuples(index=False)
    ]
    result, out = _run(tmp_path, "ltv", lines, "--freq", freq)
    assert result.exit_code == 0, result.output
    got = pd.read_parquet(out)
    assert list(got.columns) == LTV_COLUMNS
    assert sorted(got["customer_id"]) == sorted(world["customer_id"].unique())
    assert got["p_alive"].notna().all()
    assert got["clv_12m"].notna().all()
    text = " ".join(result.output.split())
    for parameter in ("r", "alpha", "a", "b", "p", "q", "v"):
        assert f"│ {parameter} " in result.output, parameter
    assert "BG/NBD" in text
    assert "Gamma-Gamma" in text
    if freq == "W":  # weekly periods: T of a customer who bought a year ago is about 52
        assert got["T"].max() <= 53
        assert got["T"].max() >= 40
    else:
        assert got["T"].max() >= 300


def test_an_unknown_freq_is_refused(tmp_path):
    result, _ = _run(tmp_path, "ltv", LINES, "--freq", "M")
    assert result.exit_code != 0
    assert "--freq 'M': use D (day) or W (week)" in str(result.exception)


def test_the_window_reaches_back_a_year_from_as_of(tmp_path):
    old = (AS_OF - timedelta(days=400)).isoformat()
    result, out = _run(tmp_path, "rfm", [*LINES, f"A9,u9,{old},99,已完成"])
    assert result.exit_code == 0, result.output
    assert "u9" not in set(pd.read_parquet(out)["customer_id"])
