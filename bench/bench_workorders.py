"""Work-order benchmarks: assessment over archived orders and filtered order lists, each
against a naive baseline measured in the same run.

Run on demand (not in CI) from the project root against a running Redis:
``python -m bench.bench_workorders [ARCHIVED] [LIVE]`` (defaults 1,000,000 and 20,000), with
``REDIS_URL`` (default 127.0.0.1:6379). All data is GENERATED (marked ``source=generated``):
archived rows go to a temporary folder of monthly Parquet files, live orders under a private
key prefix removed at the end.

1. assessment: ``read_archive`` + ``assess`` by department and by township (target < 2 s)
   vs reading the same files row by row and a plain Python loop (sums, sorted p90);
2. filtered list: ``orderlist.filtered_orders`` for a township scope with status and overdue
   filters, p95 of 50 queries (target < 100 ms) vs the naive way: read every open order,
   parse, filter, sort.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

H = 3_600_000
T0 = 1_735_660_800_000  # 2025-01-01 00:00 +08:00
DEPTS = [f"部门{i:02d}" for i in range(40)]


def generate_archive(n: int, base: Path, seed: int = 7) -> None:
    """n generated closed orders over 12 months, as the archive writes them."""
    from workorders.assessment import COLUMNS

    rng = np.random.default_rng(seed)
    created = T0 + rng.integers(0, 365 * 24 * H, n)
    deadline = created + rng.choice([24, 72, 120, 240], n) * H
    accept = rng.exponential(2 * H, n).astype("int64")
    handling = rng.exponential(40 * H, n).astype("int64")
    check = rng.exponential(6 * H, n).astype("int64")
    closed = created + accept + handling + check
    towns = [f"4101{c:02d}{t:03d}" for c in range(2, 8) for t in range(1, 21)]
    town = np.array(towns)[rng.integers(0, len(towns), n)]
    sat = rng.integers(1, 6, n).astype("float64")
    sat[rng.random(n) < 0.3] = np.nan
    df = pd.DataFrame(
        {
            "id": [f"GEN-{i:07d}" for i in range(n)],
            "source": "generated",
            "channel": "hotline",
            "category": np.array(["城乡建设", "环境保护", "交通运输", "卫生计生"])[
                rng.integers(0, 4, n)
            ],
            "dept": np.array(DEPTS)[rng.integers(0, len(DEPTS), n)],
            "county": [t[:6] for t in town],
            "township": town,
            "status": "closed",
            "created_ms": created,
            "deadline_ms": deadline,
            "closed_ms": closed,
            "accept_ms": accept,
            "handling_ms": handling,
            "check_ms": check,
            "satisfaction": pd.array(sat, dtype="Int64"),
            "rework": (rng.random(n) < 0.05).astype("int64"),
            "false_closure": rng.random(n) < 0.02,
            "lon": 113.6 + rng.random(n) * 0.3,
            "lat": 34.6 + rng.random(n) * 0.2,
        }
    ).astype(COLUMNS)
    month = (
        pd.to_datetime(df["created_ms"], unit="ms", utc=True)
        .dt.tz_convert("Asia/Shanghai")
        .dt.strftime("%Y-%m")
    )
    for m, part in df.groupby(month):
        d = base / f"month={m}"
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False),
            d / "part-generated.parquet",
            compression="zstd",
        )


def naive_assessment(base: Path) -> dict[str, dict[str, Any]]:
    """The baseline: every row as a Python dict, a loop, sorted lists for p90."""
    acc: dict[str, dict[str, Any]] = {}
    for f in sorted(base.glob("month=*/*.parquet")):
        for row in pq.read_table(f).to_pylist():
            a = acc.setdefault(
                row["dept"],
                {"received": 0, "closed": 0, "on_time": 0, "rework": 0, "sat": [], "total": []},
            )
            a["received"] += 1
            if row["closed_ms"] is not None:
                a["closed"] += 1
                a["on_time"] += row["closed_ms"] <= row["deadline_ms"]
                a["total"].append((row["closed_ms"] - row["created_ms"]) / H)
            a["rework"] += row["rework"] > 0
            if row["satisfaction"] is not None:
                a["sat"].append(row["satisfaction"])
    for a in acc.values():
        tot = sorted(a["total"])
        a["on_time_rate"] = a["on_time"] / a["closed"] if a["closed"] else None
        a["total_avg_h"] = sum(tot) / len(tot) if tot else None
        a["total_p90_h"] = tot[int(0.9 * (len(tot) - 1))] if tot else None
        a["satisfaction"] = sum(a["sat"]) / len(a["sat"]) if a["sat"] else None
        del a["sat"], a["total"]
    return acc


def bench_assessment(n: int) -> None:
    from workorders.archive import read_archive
    from workorders.assessment import assess

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        t = time.perf_counter()
        generate_archive(n, base)
        print(
            f"generated {n:,} archived orders (source=generated) in {time.perf_counter() - t:.1f} s"
        )
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            df = read_archive(base=base)
            t_read = time.perf_counter() - t
            by_dept = assess(df, "dept", as_of_ms=T0 + 400 * 24 * H)
            t_dept = time.perf_counter() - t - t_read
            assess(df, "township", as_of_ms=T0 + 400 * 24 * H)
            runs.append((time.perf_counter() - t, t_read, t_dept))
        best = min(runs)
        print(
            f"assessment (read + by dept + by township): best {best[0]:.2f} s "
            f"(read {best[1]:.2f} s, by dept {best[2]:.2f} s) of 3 runs; target < 2 s"
        )
        t = time.perf_counter()
        naive = naive_assessment(base)
        t_naive = time.perf_counter() - t
        print(f"naive Python loop (by dept only): {t_naive:.2f} s -> {t_naive / best[0]:.0f}x")
        d0 = DEPTS[0]
        assert naive[d0]["received"] == by_dept.loc[d0, "received"]
        assert abs(naive[d0]["on_time_rate"] - by_dept.loc[d0, "on_time_rate"]) < 1e-3


def bench_list(n: int) -> None:
    import redis

    from access.scope import Scope
    from core import store
    from core.config import reset_settings
    from core.keys import keys
    from core.models import Channel, OrderStatus, Place, WorkOrder
    from workorders.orderlist import filtered_orders
    from workorders.service import _save

    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ["GRIDCC_PREFIX"] = f"bench{uuid.uuid4().hex[:8]}"
    reset_settings()
    store.reset_clients()
    r = store.get_redis()
    rng = np.random.default_rng(3)
    towns = [f"4101{c:02d}{t:03d}" for c in range(2, 8) for t in range(1, 21)]
    now = T0 + 30 * 24 * H
    try:
        t = time.perf_counter()
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            town = towns[int(rng.integers(0, len(towns)))]
            created = now - int(rng.integers(0, 30 * 24 * H))
            o = WorkOrder(
                id=f"GD-GEN-{i:06d}",
                channel=Channel.HOTLINE,
                category="城乡建设",
                title="generated",
                status=OrderStatus.HANDLING if i % 3 else OrderStatus.ACCEPTING,
                created_ms=created,
                updated_ms=created,
                deadline_ms=created + int(rng.choice([24, 72, 240])) * H,
                place=Place(lon=113.6, lat=34.7, county=town[:6], township=town),
            )
            _save(pipe, o)
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        print(f"stored {n:,} generated open orders in {time.perf_counter() - t:.1f} s")
        scope = Scope(user="bench", jurisdiction=towns[5])

        def product() -> list[WorkOrder]:
            return filtered_orders(
                r, scope, status=["handling"], overdue_only=True, limit=50, now=now
            )

        def naive() -> list[WorkOrder]:
            k = keys()
            ids = [i.decode() for i in r.zrange(k.orders_open, 0, -1)]
            out = []
            for j in range(0, len(ids), 1000):
                for raw in r.mget([k.order(x) for x in ids[j : j + 1000]]):
                    o = WorkOrder.model_validate_json(raw)
                    if (
                        scope.sees(o.place.code)
                        and o.status.value == "handling"
                        and o.deadline_ms < now
                    ):
                        out.append(o)
            return sorted(out, key=lambda o: -o.created_ms)[:50]

        got = product()
        assert [o.id for o in got] == [o.id for o in naive()]

        def p95(fn: Any, runs: int) -> float:
            ts = []
            for _ in range(runs):
                t = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t) * 1000)
            return float(np.percentile(ts, 95))

        fast = p95(product, 50)
        slow = p95(naive, 5)
        print(
            f"filtered list (township, handling, overdue, 50 rows; {len(got)} found): "
            f"p95 {fast:.1f} ms (target < 100 ms) vs naive {slow:.0f} ms -> {slow / fast:.0f}x"
        )
    finally:
        pref = os.environ["GRIDCC_PREFIX"]
        raw = redis.Redis.from_url(os.environ["REDIS_URL"])
        for key in raw.scan_iter(match=f"{pref}:*", count=1000):
            raw.delete(key)


def main(argv: list[str]) -> None:
    archived = int(argv[1]) if len(argv) > 1 else 1_000_000
    live = int(argv[2]) if len(argv) > 2 else 20_000
    bench_assessment(archived)
    bench_list(live)


if __name__ == "__main__":
    main(sys.argv)
