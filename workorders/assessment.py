"""Assessment (article 40): figures per department, township and district over any period.

Every order, live in Redis or archived in Parquet (``workorders/archive.py``), becomes one
flat row (``order_row``); the figures are pandas group-bys over those rows, so live and
archived orders are counted by the same code. Definitions (also in docs/workorders.md):

- received: orders created in the period;
- on-time rate: closed orders closed by their deadline / closed orders with a deadline;
- overdue: closed after the deadline, or still open past it at ``as_of``;
- handling time by stage, hours (average and p90): accept (intake → assigned or rejected),
  handling (assigned → first result feedback), check (last feedback → closed), total;
- rework rate: orders sent back by a failed check or reopened / closed orders;
- satisfaction: mean of the reporters' 1..5 where given, and the share dissatisfied;
- false-closure flags: orders carrying any suspected-false-closure flag.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import redis

from core.keys import keys
from core.models import OrderStatus, WorkOrder
from core.timeutil import now_ms

HOUR_MS = 3_600_000
FALSE_CLOSURE_FLAGS = frozenset(
    {"reopened", "check_failed", "dissatisfied", "closed_without_evidence", "repeat_after_closure"}
)
GROUPS = {"dept": "dept", "department": "dept", "township": "township", "district": "county"}
STAGES = ("accept", "handling", "check", "total")
# The flat row of one order: what the archive stores and the assessment reads.
COLUMNS: dict[str, str] = {
    "id": "string",
    "source": "string",
    "channel": "string",
    "category": "string",
    "dept": "string",
    "county": "string",
    "township": "string",
    "status": "string",
    "created_ms": "Int64",
    "deadline_ms": "Int64",
    "closed_ms": "Int64",
    "accept_ms": "Int64",
    "handling_ms": "Int64",
    "check_ms": "Int64",
    "satisfaction": "Int64",
    "rework": "Int64",
    "false_closure": "boolean",
    "lon": "float64",
    "lat": "float64",
}
UNASSIGNED = "(未交办)"


def _first(hist: list[dict[str, Any]], to: set[str]) -> int | None:
    for h in hist:
        if h.get("action") == "status" and h.get("to") in to:
            return int(h["ts_ms"])
    return None


def _last(hist: list[dict[str, Any]], to: set[str]) -> int | None:
    for h in reversed(hist):
        if h.get("action") == "status" and h.get("to") in to:
            return int(h["ts_ms"])
    return None


def order_row(o: WorkOrder, source: str = "live") -> dict[str, Any]:
    """One order as a flat row (stage durations in ms, None when the stage was not reached)."""
    lead = next((p.dept for p in o.parts if p.role == "lead" and p.status != "withdrawn"), None)
    h = o.history
    assigned = _first(h, {"assigned", "rejected"})
    feedback = _first(h, {"feedback"})
    last_fb = _last(h, {"feedback"})
    closed = o.closed_ms if o.status == OrderStatus.CLOSED else None
    return {
        "id": o.id,
        "source": source,
        "channel": o.channel.value,
        "category": o.category,
        "dept": lead or UNASSIGNED,
        "county": o.place.county or "",
        "township": o.place.township or "",
        "status": o.status.value,
        "created_ms": o.created_ms,
        "deadline_ms": o.deadline_ms,
        "closed_ms": closed,
        "accept_ms": assigned - o.created_ms if assigned else None,
        "handling_ms": feedback - assigned if feedback and assigned else None,
        "check_ms": closed - last_fb if closed and last_fb else None,
        "satisfaction": o.satisfaction,
        "rework": o.rework_count + o.reopen_count,
        "false_closure": bool(FALSE_CLOSURE_FLAGS & set(o.flags)),
        "lon": o.place.lon,
        "lat": o.place.lat,
    }


def frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame with the archive's column types."""
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    return df.astype(COLUMNS)


def iter_live(r: redis.Redis, batch: int = 500) -> Iterator[WorkOrder]:
    """Every order still in Redis (open and closed not yet archived)."""
    k = keys()
    start = 0
    while True:
        ids = cast(list[bytes], r.zrange(k.orders_all, start, start + batch - 1))
        if not ids:
            return
        for raw in r.mget([k.order(i.decode()) for i in ids]):
            if raw:
                yield WorkOrder.model_validate_json(raw)
        start += batch


def live_frame(r: redis.Redis) -> pd.DataFrame:
    return frame(order_row(o) for o in iter_live(r))


def all_orders(
    r: redis.Redis,
    start_ms: int | None = None,
    end_ms: int | None = None,
    archive_dir: Path | None = None,
) -> pd.DataFrame:
    """Live orders and archived orders together; an order found in both counts once (live)."""
    from workorders.archive import read_archive

    live = live_frame(r)
    arch = read_archive(start_ms, end_ms, archive_dir)
    if arch.empty:
        return live
    arch = arch[~arch["id"].isin(live["id"])]
    return pd.concat([live, arch], ignore_index=True) if not live.empty else arch


def assess(
    df: pd.DataFrame,
    by: str = "dept",
    start_ms: int | None = None,
    end_ms: int | None = None,
    as_of_ms: int | None = None,
) -> pd.DataFrame:
    """The assessment table, one row per department / township / district, for orders
    created in [start_ms, end_ms)."""
    if by not in GROUPS:
        raise ValueError(f"assessment by {by!r}: use one of {', '.join(sorted(GROUPS))}")
    col = GROUPS[by]
    as_of = now_ms() if as_of_ms is None else as_of_ms
    d = df
    if start_ms is not None:
        d = d[d["created_ms"] >= start_ms]
    if end_ms is not None:
        d = d[d["created_ms"] < end_ms]
    if d.empty:
        return pd.DataFrame(columns=[col, *result_columns()]).set_index(col)
    created = d["created_ms"].to_numpy(dtype="float64", na_value=np.nan)
    deadline = d["deadline_ms"].to_numpy(dtype="float64", na_value=np.nan)
    closed = d["closed_ms"].to_numpy(dtype="float64", na_value=np.nan)
    is_closed = ~np.isnan(closed)
    has_dl = ~np.isnan(deadline)
    with np.errstate(invalid="ignore"):
        on_time = is_closed & has_dl & (closed <= deadline)
        late_closed = is_closed & has_dl & (closed > deadline)
        late_open = ~is_closed & has_dl & (deadline < as_of) & d["status"].ne("rejected").to_numpy()
    sat = d["satisfaction"].to_numpy(dtype="float64", na_value=np.nan)
    t = pd.DataFrame(
        {
            "g": d[col].fillna("").to_numpy(),
            "received": 1,
            "closed": is_closed,
            "closed_dl": is_closed & has_dl,
            "on_time": on_time,
            "overdue": late_closed | late_open,
            "open_overdue": late_open,
            "rework": d["rework"].fillna(0).to_numpy() > 0,
            "sat": sat,
            "dissatisfied": sat <= 2,
            "false_closure": d["false_closure"].fillna(False).to_numpy(dtype=bool),
            "accept": d["accept_ms"].to_numpy(dtype="float64", na_value=np.nan) / HOUR_MS,
            "handling": d["handling_ms"].to_numpy(dtype="float64", na_value=np.nan) / HOUR_MS,
            "check": d["check_ms"].to_numpy(dtype="float64", na_value=np.nan) / HOUR_MS,
            "total": (closed - created) / HOUR_MS,
        }
    )
    g = t.groupby("g", sort=True)
    sums = g[["received", "closed", "closed_dl", "on_time", "overdue", "open_overdue"]].sum()
    sums["rework"] = g["rework"].sum()
    sums["false_closure"] = g["false_closure"].sum()
    out = sums.astype("int64")
    out["on_time_rate"] = (out["on_time"] / out["closed_dl"].where(out["closed_dl"] > 0)).round(4)
    out["rework_rate"] = (out["rework"] / out["closed"].where(out["closed"] > 0)).round(4)
    out["satisfaction"] = g["sat"].mean().round(2)
    out["rated"] = g["sat"].count()
    out["dissatisfied"] = g["dissatisfied"].sum().astype("int64")
    for stage in STAGES:
        out[f"{stage}_avg_h"] = g[stage].mean().round(2)
        out[f"{stage}_p90_h"] = g[stage].quantile(0.9).round(2)
    out.index.name = col
    return out[result_columns()]


def result_columns() -> list[str]:
    cols = [
        "received",
        "closed",
        "on_time",
        "closed_dl",
        "on_time_rate",
        "overdue",
        "open_overdue",
        "rework",
        "rework_rate",
        "satisfaction",
        "rated",
        "dissatisfied",
        "false_closure",
    ]
    for stage in STAGES:
        cols += [f"{stage}_avg_h", f"{stage}_p90_h"]
    return cols


def assessment(
    r: redis.Redis,
    by: str = "dept",
    start_ms: int | None = None,
    end_ms: int | None = None,
    as_of_ms: int | None = None,
    archive_dir: Path | None = None,
) -> pd.DataFrame:
    """The assessment over live and archived orders."""
    return assess(all_orders(r, start_ms, end_ms, archive_dir), by, start_ms, end_ms, as_of_ms)


def export(table: pd.DataFrame, path: Path) -> Path:
    """Excel (.xlsx) when openpyxl is installed, else CSV (UTF-8 with BOM, so spreadsheet
    programs read the Chinese); returns the file written."""
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        out = path.with_suffix(".csv")
        table.to_csv(out, encoding="utf-8-sig")
        return out
    out = path.with_suffix(".xlsx")
    table.to_excel(out)
    return out
