"""`cdp report`: the customer 360 as pictures an analyst reads at a glance, and one HTML page.

Charts (PNG, matplotlib), each from the lake through DuckDB (no Spark):

- **RFM heat map:** customers per recency x frequency score (gold.customer_rfm);
- **lifecycle funnel:** customers per stage (gold.customer_tags);
- **stage sizes over time:** customers per lifecycle stage per scored date
  (silver.customer_tag_days);
- **segment sizes over time:** members of each segment export (silver.segment_members);
- **repurchase cohorts:** per month of first purchase, the share of customers who bought again
  within N days (silver.orders and One-ID's order records: paid, real orders);
- **LTV distribution:** 12-month CLV (gold.customer_ltv);
- **channel mix:** paid orders and GMV per source.

A chart whose table is missing or empty is listed on the page as not drawn, and why.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from jobs.common import duck
from jobs.common.settings import Settings, get_settings
from jobs.marts.rfm import paid_orders_sql

STAGE_ORDER = ("prospect", "new", "active", "win_back", "at_risk", "dormant", "lost")


@dataclass
class Report:
    folder: Path
    charts: list[tuple[str, str, str]] = field(default_factory=list)  # file, title, caption
    skipped: list[tuple[str, str]] = field(default_factory=list)  # title, why


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _date_axis(ax, days: list[date]) -> None:
    """Whole days on the x axis (a few days of data must not read as hours)."""
    import matplotlib.dates as mdates

    if len(days) <= 14:
        ax.set_xticks(days)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.figure.autofmt_xdate()


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)


def rfm_heatmap(con, path: Path) -> str:
    rows = con.execute(
        "select r_score, f_score, count(*), avg(monetary) from gold.customer_rfm group by 1, 2"
    ).fetchall()
    if not rows:
        raise LookupError("gold.customer_rfm has no rows")
    import numpy as np

    bins = max(max(r[0] for r in rows), max(r[1] for r in rows), 5)
    grid = np.zeros((bins, bins))
    for r, f, n, _ in rows:
        grid[bins - r, f - 1] = n
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(grid, cmap="YlGnBu")
    for i in range(bins):
        for j in range(bins):
            ax.text(j, i, int(grid[i, j]), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(bins), [str(f) for f in range(1, bins + 1)])
    ax.set_yticks(range(bins), [str(r) for r in range(bins, 0, -1)])
    ax.set_xlabel("frequency score")
    ax.set_ylabel("recency score")
    ax.set_title("Customers by recency and frequency score")
    fig.colorbar(image, ax=ax, label="customers")
    _save(fig, path)
    total = int(grid.sum())
    top = int(grid[0, bins - 1])
    return f"{total} scored customers; {top} in the top corner (most recent, most frequent)."


def lifecycle_funnel(con, path: Path) -> str:
    rows = dict(
        con.execute(
            "select lifecycle_stage, count(*) from gold.customer_tags group by 1"
        ).fetchall()
    )
    if not rows:
        raise LookupError("gold.customer_tags has no rows")
    stages = [s for s in STAGE_ORDER if s in rows] + sorted(set(rows) - set(STAGE_ORDER))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh(stages[::-1], [rows[s] for s in stages[::-1]], color="#4C72B0")
    for i, s in enumerate(stages[::-1]):
        ax.text(rows[s], i, f" {rows[s]}", va="center")
    ax.set_xlabel("customers")
    ax.set_title("Lifecycle stages")
    _save(fig, path)
    return ", ".join(f"{s} {rows[s]}" for s in stages) + "."


def stages_over_time(con, path: Path) -> str:
    rows = con.execute(
        "select as_of, tag, count(*) from silver.customer_tag_days where kind = 'stage' "
        "group by 1, 2 order by 1"
    ).fetchall()
    if not rows:
        raise LookupError("silver.customer_tag_days has no rows")
    series: dict[str, dict] = {}
    for day, stage, n in rows:
        series.setdefault(stage, {})[day] = n
    days = sorted({r[0] for r in rows})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    for stage in [s for s in STAGE_ORDER if s in series] + sorted(set(series) - set(STAGE_ORDER)):
        ax.plot(days, [series[stage].get(d, 0) for d in days], marker="o", label=stage)
    ax.set_ylabel("customers")
    ax.set_title("Lifecycle stage sizes over time")
    ax.legend(fontsize=8, ncol=2)
    _date_axis(ax, days)
    _save(fig, path)
    return f"{len(days)} scored date(s), {days[0]} to {days[-1]}."


def segments_over_time(con, path: Path) -> str:
    """Members of each segment per export date (silver.segment_members)."""
    if "silver.segment_members" not in duck.table_names(con):
        raise LookupError("no segment exports yet (silver.segment_members)")
    sizes: dict[str, dict[date, int]] = {}
    for name, day, members in con.execute(
        "select segment, as_of, count(*) from silver.segment_members group by all"
    ).fetchall():
        sizes.setdefault(name, {})[day] = members
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, by_day in sorted(sizes.items()):
        days = sorted(by_day)
        ax.plot(days, [by_day[d] for d in days], marker="o", label=name)
    ax.set_ylabel("members")
    ax.set_title("Segment sizes over time (exports)")
    ax.legend(fontsize=8)
    _date_axis(ax, sorted({d for by_day in sizes.values() for d in by_day}))
    _save(fig, path)
    return f"{len(sizes)} segment(s)."


def repurchase_cohorts(con, path: Path, horizon_days: int = 180) -> str:
    """Per month of first purchase, the share of its customers who bought again within d days
    (`cohort_curves`: customers not watched that long yet are censored, not counted as lost)."""
    rows = con.execute(
        f"""
        with paid as ({paid_orders_sql()}),
        firsts as (
            select customer_id, min(order_date) as first_day from paid group by customer_id
        ),
        again as (
            select f.customer_id, f.first_day, min(p.order_date) as second_day
            from firsts f
            left join paid p on p.customer_id = f.customer_id and p.order_date > f.first_day
            group by f.customer_id, f.first_day
        )
        select strftime(first_day, '%Y-%m') as cohort,
               date_diff('day', first_day, (select max(order_date) from paid)) as watched,
               date_diff('day', first_day, second_day) as gap
        from again order by 1
        """
    ).fetchall()
    if not rows:
        raise LookupError("no paid orders with a one_id")
    curves = cohort_curves(rows, horizon_days)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    for cohort, (customers, days, shares) in list(curves.items())[-12:]:  # the last twelve
        ax.plot(days, shares, label=f"{cohort} ({customers})")
    ax.set_xlabel("days after the first purchase")
    ax.set_ylabel("share who bought again")
    ax.set_title("Repurchase curves by month of first purchase")
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
    repeat = sum(1 for _, _, gap in rows if gap is not None)
    return f"{len(rows)} buyers in {len(curves)} cohort(s); {repeat} bought again."


def cohort_curves(rows: list[tuple], horizon_days: int) -> dict[str, tuple[int, list, list]]:
    """rows (cohort, days watched, days to the second purchase or None) -> cohort: (customers,
    days, share who bought again within each day).

    The share is a Kaplan-Meier estimate: customers not watched for d days yet are censored,
    not counted as never coming back, so a young cohort's curve is not pulled down by the
    days it has not lived, and every curve only rises. It ends when no customer of the cohort
    is still at risk (watched that long and not back yet)."""
    cohorts: dict[str, list[tuple[int, int | None]]] = {}
    for cohort, watched, gap in rows:
        cohorts.setdefault(cohort, []).append((watched, gap))
    curves = {}
    for cohort, members in cohorts.items():
        days, shares, staying = [0], [0.0], 1.0
        for d in range(1, horizon_days + 1):
            at_risk = [g for seen, g in members if seen >= d and (g is None or g >= d)]
            if not at_risk:
                break
            back = sum(1 for g in at_risk if g == d)
            staying *= 1 - back / len(at_risk)
            days.append(d)
            shares.append(1 - staying)
        curves[cohort] = (len(members), days, shares)
    return curves


def ltv_distribution(con, path: Path) -> str:
    values = [
        r[0]
        for r in con.execute(
            "select clv_12m from gold.customer_ltv where clv_12m is not null"
        ).fetchall()
    ]
    if not values:
        raise LookupError(
            "gold.customer_ltv has no CLV: the models were not fitted (ops.ltv_fits says why)"
        )
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(values, bins=40, color="#55A868")
    ax.set_xlabel("12-month CLV (CNY)")
    ax.set_ylabel("customers")
    ax.set_title("Customer lifetime value, next 12 months")
    _save(fig, path)
    p50, p90 = np.percentile(values, [50, 90])
    return f"{len(values)} customers; median {p50:.0f}, 90th percentile {p90:.0f} CNY."


def channel_mix(con, path: Path) -> str:
    rows = con.execute(
        f"select source, count(*), sum(amount) from ({paid_orders_sql()}) "
        "group by 1 order by 3 desc"
    ).fetchall()
    if not rows:
        raise LookupError("no paid orders with a one_id")
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = [r[0] for r in rows]
    left.bar(names, [r[1] for r in rows], color="#8172B2")
    left.set_title("Paid orders by source")
    right.bar(names, [float(r[2]) for r in rows], color="#CCB974")
    right.set_title("GMV by source (CNY)")
    for ax in (left, right):
        ax.tick_params(axis="x", rotation=45)
    _save(fig, path)
    return ", ".join(f"{r[0]} {float(r[2]):.0f}" for r in rows) + " CNY."


def write_report(out: Path | None = None, settings: Settings | None = None) -> Report:
    settings = settings or get_settings()
    folder = out or Path(settings.var_dir) / "reports" / "customer360"
    folder.mkdir(parents=True, exist_ok=True)
    con = duck.connect(settings)
    charts: list[tuple[str, str, Callable[[Path], str]]] = [
        ("rfm_heatmap.png", "RFM heat map", lambda p: rfm_heatmap(con, p)),
        ("lifecycle_funnel.png", "Lifecycle funnel", lambda p: lifecycle_funnel(con, p)),
        ("stages_over_time.png", "Stage sizes over time", lambda p: stages_over_time(con, p)),
        (
            "segments_over_time.png",
            "Segment sizes over time",
            lambda p: segments_over_time(con, p),
        ),
        ("repurchase_cohorts.png", "Repurchase cohorts", lambda p: repurchase_cohorts(con, p)),
        ("ltv_distribution.png", "LTV distribution", lambda p: ltv_distribution(con, p)),
        ("channel_mix.png", "Channel mix", lambda p: channel_mix(con, p)),
    ]
    report = Report(folder)
    for file, title, draw in charts:
        try:
            caption = draw(folder / file)
        except LookupError as exc:
            report.skipped.append((title, str(exc)))
        except duckdb.CatalogException as exc:  # a table this lake does not have yet
            report.skipped.append((title, str(exc).splitlines()[0]))
        else:
            report.charts.append((file, title, caption))
    (folder / "index.html").write_text(_html(report), encoding="utf-8")
    return report


def _html(report: Report) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Customer 360</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}"
        "figure{margin:2em 0}img{max-width:100%}</style></head><body>",
        "<h1>Customer 360</h1>",
    ]
    for file, title, caption in report.charts:
        parts.append(
            f"<figure><h2>{html.escape(title)}</h2><img src='{file}' alt='{html.escape(title)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if report.skipped:
        parts.append("<h2>Not drawn</h2><ul>")
        parts += [f"<li>{html.escape(t)}: {html.escape(why)}</li>" for t, why in report.skipped]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
