"""Any order file, read for `cdp rfm` and `cdp ltv` with a `cdp import orders` mapping.

The mapping is the one `cdp import orders` takes (docs/examples/import_orders_mapping.yaml):
the fields used here are ``buyer_id``, ``order_id``, ``created`` and ``payment``, and ``status``
when the file has one. ``created`` may hold a date-time or a bare date. The file is parsed by
the import's own parser (CSV in any encoding, Excel, Parquet, JSON lines), so a value is held to
the same rules as an imported one; nothing is written to the lake.

A row that cannot be used is skipped, never guessed at, and reported with its line and why: a
bad value (which field, what was expected), no buyer_id, or a status other than paid, shipped
or completed when the mapping has a status (refunded, closed and unpaid orders bring nothing
in). Rows of one order id count once (the last wins, as an export re-sent with updates does).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import pandas as pd

from jobs.common.errors import CdpError
from jobs.ingest import importer
from jobs.ingest.records import Rejected, parse_file
from jobs.marts.rfm import PAID_STATUSES

NEEDED = ("order_id", "buyer_id", "created", "payment")
EXAMPLES = 3  # lines shown per reason


@dataclass
class OrderFile:
    orders: pd.DataFrame  # customer_id, order_id, order_date (date), amount (float)
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    lines: dict[str, list[int]] = field(default_factory=dict)  # reason -> first lines


def read_orders(path: Path, mapping: Path) -> OrderFile:
    if not path.is_file():
        raise CdpError(f"order file {path} does not exist")
    spec = importer.load_mapping(
        mapping, source="file", dataset="orders", fmt=importer.file_format(path)
    )
    fields = {c.field for c in spec.columns}
    missing = [f for f in NEEDED if f not in fields]
    if missing:
        raise CdpError(
            f"mapping {mapping.name}: maps no column to {', '.join(missing)}; `cdp rfm` and "
            f"`cdp ltv` need {', '.join(NEEDED)}"
        )
    # created: a date-time or a bare date, read as its day
    spec = replace(
        spec,
        columns=tuple(
            replace(c, type="datetime_or_date") if c.field == "created" else c for c in spec.columns
        ),
    )
    has_status = "status" in fields
    result = OrderFile(pd.DataFrame())
    kept: dict[str, tuple] = {}

    def skip(reason: str, line: int) -> None:
        reason = importer.reason_pattern(reason)  # the value left out: one line per kind
        result.skipped[reason] += 1
        lines = result.lines.setdefault(reason, [])
        if len(lines) < EXAMPLES:
            lines.append(line)

    try:
        for item in parse_file(path, spec):
            result.rows += 1
            if isinstance(item, Rejected):
                skip(item.reason, item.line)
                continue
            v = item.values
            bad = [i for i in item.issues if i.field in NEEDED]
            if bad:
                skip(f"field {bad[0].field!r}: {bad[0].reason}", item.line)
                continue
            if not v.get("buyer_id"):
                skip("no buyer_id", item.line)
                continue
            status = str(v.get("status") or "").lower()
            if has_status and status not in PAID_STATUSES:
                skip(f"status {status or 'empty'!r} is not paid, shipped or completed", item.line)
                continue
            kept[str(v["order_id"])] = (
                str(v["buyer_id"]),
                str(v["order_id"]),
                date.fromisoformat(str(v["created"])[:10]),
                float(v["payment"]),
            )
    except (ValueError, UnicodeDecodeError) as exc:
        raise CdpError(f"{path.name}: {exc}") from exc
    result.orders = pd.DataFrame(
        list(kept.values()), columns=["customer_id", "order_id", "order_date", "amount"]
    )
    return result


def write_table(frame: pd.DataFrame, out: Path) -> None:
    """`frame` to `out`: Parquet for .parquet, else CSV (UTF-8)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        frame.to_parquet(out, index=False)
    elif out.suffix.lower() == ".csv":
        frame.to_csv(out, index=False, encoding="utf-8")
    else:
        raise CdpError(f"--out {out}: write .csv or .parquet")
