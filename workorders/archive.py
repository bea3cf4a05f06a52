"""Archive: closed orders older than N days leave Redis for Parquet files by month.

Files go to ``settings.var_dir/archive/month=YYYY-MM/part-<ms>-<id>.parquet`` (Hive-style
partitions by the month, Asia/Shanghai, in which the order was created), each holding the
flat rows of ``assessment.order_row`` plus the full order JSON, so nothing is lost. A file
is written completely (temporary name, then rename) before any order leaves Redis; a crash
in between leaves the order in both places, and the statistics count it once.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import redis

from core.config import get_settings
from core.keys import keys
from core.models import OrderStatus, WorkOrder
from core.timeutil import SHANGHAI, now_ms
from workorders.assessment import COLUMNS, frame, order_row
from workorders.clockindex import closure_place

DAY_MS = 86_400_000


def archive_dir() -> Path:
    return Path(get_settings().var_dir) / "archive"


def month_of(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(SHANGHAI):%Y-%m}"


def write_rows(df: pd.DataFrame, base: Path | None = None, tag: str = "") -> list[Path]:
    """Write flat rows (with ``order_json``) into month partitions; returns the files."""
    base = base or archive_dir()
    out: list[Path] = []
    months = df["created_ms"].map(lambda v: month_of(int(v)))
    for month, part in df.groupby(months, sort=True):
        d = base / f"month={month}"
        d.mkdir(parents=True, exist_ok=True)
        name = f"part-{now_ms()}-{tag or uuid.uuid4().hex[:8]}.parquet"
        tmp = d / f".{name}.tmp"
        table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, d / name)
        out.append(d / name)
    return out


def archive_closed(
    r: redis.Redis, older_than_days: float, *, now: int | None = None, base: Path | None = None
) -> int:
    """Move closed and rejected orders whose closing is older than N days out of Redis;
    returns how many moved."""
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 or more")
    k = keys()
    cutoff = (now_ms() if now is None else now) - int(older_than_days * DAY_MS)
    rows, orders = [], []
    start = 0
    while True:
        ids = cast(list[bytes], r.zrange(k.orders_all, start, start + 499))
        if not ids:
            break
        for raw in r.mget([k.order(i.decode()) for i in ids]):
            if not raw:
                continue
            o = WorkOrder.model_validate_json(raw)
            if o.status not in (OrderStatus.CLOSED, OrderStatus.REJECTED):
                continue
            if (o.closed_ms or o.updated_ms) > cutoff:
                continue
            row = order_row(o, source="archive")
            row["order_json"] = raw.decode() if isinstance(raw, bytes) else str(raw)
            rows.append(row)
            orders.append(o)
        start += 500
    if not rows:
        return 0
    df = frame(rows)
    df["order_json"] = [x["order_json"] for x in rows]
    write_rows(df, base)
    pipe = r.pipeline(transaction=False)
    for o in orders:
        pipe.delete(k.order(o.id))
        pipe.zrem(k.orders_all, o.id)
        pipe.zrem(k.orders_open, o.id)
        pipe.zrem(k.order_geo(o.category), o.id)
        if o.status == OrderStatus.CLOSED:
            # Repeat-report detection looks only at recent closures; an archived one is past it.
            pipe.zrem(k.order_closures(o.category, closure_place(o)), o.id)
    pipe.execute()
    return len(orders)


def read_archive(
    start_ms: int | None = None,
    end_ms: int | None = None,
    base: Path | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Archived rows created in [start_ms, end_ms); only the months in range are read."""
    base = base or archive_dir()
    cols = columns or list(COLUMNS)
    if not base.exists():
        return frame([])
    lo = month_of(start_ms) if start_ms is not None else None
    hi = month_of(end_ms) if end_ms is not None else None
    files: list[Path] = []
    for d in sorted(base.glob("month=*")):
        m = d.name.split("=", 1)[1]
        if (lo and m < lo) or (hi and m > hi):
            continue
        files.extend(sorted(d.glob("part-*.parquet")))
    if not files:
        return frame([])
    df = pq.ParquetDataset(files).read(columns=cols).to_pandas()
    df = df.astype({c: t for c, t in COLUMNS.items() if c in df.columns})
    if start_ms is not None:
        df = df[df["created_ms"] >= start_ms]
    if end_ms is not None:
        df = df[df["created_ms"] < end_ms]
    return df.reset_index(drop=True)


def archived_order(order_id: str, base: Path | None = None) -> WorkOrder | None:
    """One archived order, whole (slow: scans the files; for look-ups, not lists)."""
    base = base or archive_dir()
    for f in sorted(base.glob("month=*/part-*.parquet")):
        t = pq.read_table(f, columns=["id", "order_json"], filters=[("id", "=", order_id)])
        if t.num_rows:
            return WorkOrder.model_validate_json(t.column("order_json")[0].as_py())
    return None
