"""Assessment figures (article 40) as a user may see them: only orders in the user's
jurisdiction count, and a department user sees only its own department's orders.

The flat rows of ``workorders.assessment`` carry the county and township codes; a user
below the township (village, grid) needs the order's own code, read from the live order
or from the archived order JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import redis

from access.scope import CITY_CODE, Scope
from core.models import WorkOrder
from core.timeutil import SHANGHAI, now_ms
from workorders import supervision
from workorders.archive import read_archive
from workorders.assessment import COLUMNS, assess, frame, iter_live, order_row

TOWNSHIP_DIGITS = 9
WEEK_MS = 7 * 86_400_000


def _row_code(df: pd.DataFrame) -> pd.Series:
    town = df["township"].fillna("").astype(str)
    county = df["county"].fillna("").astype(str)
    return town.where(town != "", county)


def _visible(codes: pd.Series, scope: Scope) -> pd.Series:
    if scope.jurisdiction == CITY_CODE:
        return pd.Series(True, index=codes.index)
    # Same rule as Scope.sees: unlocated rows belong to the city level only.
    return codes.str.startswith(scope.jurisdiction) & (codes != "")


def scoped_orders(
    r: redis.Redis,
    scope: Scope,
    start_ms: int | None = None,
    end_ms: int | None = None,
    archive_dir: Path | None = None,
) -> pd.DataFrame:
    """Live and archived order rows created in [start_ms, end_ms) that ``scope`` may see."""
    deep = len(scope.jurisdiction) > TOWNSHIP_DIGITS
    live_rows: list[dict[str, Any]] = []
    for o in iter_live(r):
        if start_ms is not None and o.created_ms < start_ms:
            continue
        if end_ms is not None and o.created_ms >= end_ms:
            continue
        row = order_row(o)
        row["code"] = o.place.code
        live_rows.append(row)
    live = frame(live_rows)
    live["code"] = pd.Series([x["code"] for x in live_rows], dtype="string")
    cols = [*COLUMNS, "order_json"] if deep else None
    arch = read_archive(start_ms, end_ms, archive_dir, columns=cols)
    if not arch.empty:
        arch = arch[~arch["id"].isin(live["id"])]
    if deep and not arch.empty:
        arch = arch.assign(
            code=[WorkOrder.model_validate_json(j).place.code for j in arch["order_json"]]
        ).drop(columns=["order_json"])
    else:
        arch = arch.assign(code=_row_code(arch) if not arch.empty else pd.Series(dtype="string"))
    parts = [d for d in (live, arch) if not d.empty]
    df = pd.concat(parts, ignore_index=True) if parts else live
    codes = df["code"].fillna("").astype(str) if deep else _row_code(df)
    keep = _visible(codes, scope)
    if scope.department:
        keep &= df["dept"].fillna("").astype(str) == scope.department
    return df[keep.to_numpy(dtype=bool)].reset_index(drop=True)


def assessment_for(
    r: redis.Redis,
    scope: Scope,
    by: str = "dept",
    start_ms: int | None = None,
    end_ms: int | None = None,
    as_of_ms: int | None = None,
    archive_dir: Path | None = None,
) -> pd.DataFrame:
    """The assessment table (``workorders.assessment.assess``) over what ``scope`` sees."""
    df = scoped_orders(r, scope, start_ms, end_ms, archive_dir)
    return assess(df, by, start_ms, end_ms, as_of_ms)


def week_start_ms(ms: int) -> int:
    """Monday 00:00 Asia/Shanghai of the week holding ``ms``."""
    d = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(SHANGHAI)
    monday = (d - timedelta(days=d.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(monday.timestamp() * 1000)


def weekly_trend(df: pd.DataFrame, as_of_ms: int | None = None) -> pd.DataFrame:
    """Per week (Monday, Asia/Shanghai) of creation: received and on-time rate, all groups
    together; columns week_ms, received, closed_dl, on_time, on_time_rate."""
    cols = ["week_ms", "received", "closed_dl", "on_time", "on_time_rate"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    as_of = now_ms() if as_of_ms is None else as_of_ms
    weeks = df["created_ms"].map(lambda v: week_start_ms(int(v)))
    out = []
    for wk, part in df.groupby(weeks, sort=True):
        # One pseudo-group so assess gives the week's totals by its own definitions.
        t = assess(part.assign(county="all"), "district", as_of_ms=as_of).iloc[0]
        out.append(
            {
                "week_ms": int(wk),
                "received": int(t["received"]),
                "closed_dl": int(t["closed_dl"]),
                "on_time": int(t["on_time"]),
                "on_time_rate": t["on_time_rate"],
            }
        )
    return pd.DataFrame(out, columns=cols)


def supervised_for(r: redis.Redis, scope: Scope) -> list[dict[str, Any]]:
    """Escalated (督办) orders the scope sees, newest first."""
    return supervision.supervised_list(r, scope)


def discipline_for(r: redis.Redis, scope: Scope) -> list[dict[str, Any]]:
    """The discipline-inspection list the scope sees (overdue beyond the limit and
    suspected false closures, each with its rule), newest first."""
    return supervision.discipline_list(r, scope)
