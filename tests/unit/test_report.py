"""`cdp report` (jobs/marts/report.py): the charts from the lake, and what it says when a table
is not there yet."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pyarrow as pa
from deltalake import write_deltalake
from PIL import Image
from typer.testing import CliRunner

from jobs.cli import app
from jobs.common.lake import table_path
from jobs.marts.report import write_report

DAY = date(2026, 11, 30)


def _write(lake, layer: str, name: str, rows: list[dict]) -> None:
    write_deltalake(table_path(layer, name, lake), pa.Table.from_pylist(rows), mode="overwrite")


def _lake(lake) -> None:
    _write(
        lake,
        "gold",
        "customer_rfm",
        [
            {"one_id": f"c{i}", "r_score": 1 + i % 5, "f_score": 1 + i % 3, "monetary": 10.0 * i}
            for i in range(30)
        ],
    )
    _write(
        lake,
        "gold",
        "customer_tags",
        [
            {"one_id": f"c{i}", "lifecycle_stage": ["new", "active", "lost"][i % 3]}
            for i in range(30)
        ],
    )
    _write(
        lake,
        "silver",
        "customer_tag_days",
        [
            {"as_of": DAY - timedelta(days=d), "one_id": f"c{i}", "kind": "stage", "tag": "active"}
            for d in range(3)
            for i in range(10)
        ],
    )
    orders, records = [], []
    for i in range(30):
        for n in range(1 + i % 2):  # every other customer buys again 20 days later
            day = date(2026, 9 + i % 2, 1) + timedelta(days=20 * n)
            oid = f"o{i}-{n}"
            orders.append(
                {
                    "source": ["tmall", "jd"][i % 2],
                    "order_id": oid,
                    "order_date": day,
                    "amount": Decimal("99.00"),
                    "status": "completed",
                    "is_test": False,
                    "is_fake": False,
                }
            )
            records.append(
                {
                    "rule": "order_buyer",
                    "record_key": f"{orders[-1]['source']}|{oid}",
                    "one_id": f"c{i}",
                }
            )
    _write(lake, "silver", "orders", orders)
    _write(lake, "silver", "identity_records", records)


def test_every_chart_is_drawn_from_the_lake(lake, tmp_path):
    _lake(lake)
    _write(
        lake, "gold", "customer_ltv", [{"one_id": f"c{i}", "clv_12m": 5.0 * i} for i in range(30)]
    )
    _write(
        lake,
        "silver",
        "segment_members",
        [{"segment": "high_value", "one_id": f"c{i}", "as_of": DAY} for i in range(7)],
    )

    report = write_report(tmp_path / "out", lake)

    assert report.skipped == []
    assert len(report.charts) == 7
    for file, _, _ in report.charts:
        with Image.open(report.folder / file) as image:
            assert image.size[0] > 300
    captions = {title: caption for _, title, caption in report.charts}
    assert captions["RFM heat map"].startswith("30 scored customers")
    assert captions["Lifecycle funnel"] == "new 10, active 10, lost 10."
    assert captions["Repurchase cohorts"] == "30 buyers in 2 cohort(s); 15 bought again."
    page = (report.folder / "index.html").read_text(encoding="utf-8")
    assert all(f"src='{file}'" in page for file, _, _ in report.charts)


def test_a_missing_table_is_named_not_drawn(lake, tmp_path):
    _lake(lake)  # no gold.customer_ltv, no exports
    result = CliRunner().invoke(
        app, ["report", "--out", str(tmp_path / "out")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "LTV distribution: not drawn:" in result.output
    assert "Segment sizes over time: not drawn: no segment exports" in result.output
    assert (tmp_path / "out" / "rfm_heatmap.png").is_file()
    assert not (tmp_path / "out" / "ltv_distribution.png").exists()


def test_a_cohort_curve_stops_where_its_customers_stop_being_watched():
    from jobs.marts.report import cohort_curves

    rows = [
        ("2026-09", 60, 20),  # bought again 20 days in, watched 60 days
        ("2026-09", 30, None),  # watched 30 days, not again
        ("2026-11", 10, None),  # a young cohort: 10 days of data
    ]
    curves = cohort_curves(rows, horizon_days=180)
    customers, days, shares = curves["2026-09"]
    assert shares[19] == 0.0
    assert shares[20] == 0.5  # 1 of the 2 at risk on day 20 came back
    # after day 30 no one is at risk (one came back, the other's data ends): the curve ends
    assert (customers, days[-1], shares[-1]) == (2, 30, 0.5)
    assert shares == sorted(shares)  # a share of customers back only rises
    young = curves["2026-11"]
    assert young[1][-1] == 10  # no line past the data, rather than a flat zero
