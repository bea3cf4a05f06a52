"""Deadline sweep benchmark: ``supervision.sweep`` with many open orders against a naive
baseline measured in the same run.

Run on demand (not in CI) from the project root: ``python -m bench.bench_deadlines [OPEN]
[DUE]`` (defaults 100,000 open orders, 50 of them due and 50 more at their reminder). It
starts a private ``redis-server`` on a free port (or uses ``BENCH_REDIS_URL``) under a private
key prefix, so the shared server never holds the generated data. All orders are GENERATED.

- product: one ``sweep(now)``: four ZRANGEBYSCOREs on the clock index, then one WATCH/MULTI
  transaction per order with a due clock (reminder, overdue, history, signals);
- naive: read every open order's JSON (MGET in batches of 1,000), ``json.loads`` it and check
  each part's deadline and reminder in Python; it only finds what is due, writes nothing.

Target: the sweep under 200 ms with 100,000 open orders.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import redis

H = 3_600_000
BASE = 1_780_000_000_000  # the sweep's "now" (2026-05-28 +08:00)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis() -> tuple[str, subprocess.Popen[bytes] | None, str | None]:
    url = os.environ.get("BENCH_REDIS_URL")
    if url:
        return url, None, None
    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("redis-server is not installed; set BENCH_REDIS_URL to a Redis to use")
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return url, proc, tmp


def generate(r: redis.Redis, n_open: int, n_due: int) -> None:
    """n_open generated orders in handling, one department part each, with their clocks:
    n_due overdue at BASE, n_due more at their reminder, the rest due over the next 30 days."""
    from core.keys import keys
    from core.models import Channel, OrderPart, OrderStatus, PartStatus, Place, WorkOrder
    from workorders.service import _step

    k = keys()
    place = Place(
        lon=113.66, lat=34.75, county="410102", township="410102001", grid="410102001001001"
    )
    limit = 5 * 24 * H
    pipe = r.pipeline(transaction=False)
    for i in range(n_open):
        if i < n_due:
            due = BASE - 1 - i * 1000  # overdue
        elif i < 2 * n_due:
            due = BASE + int(0.1 * limit)  # inside the reminder share (20 %)
        else:
            due = BASE + int(0.25 * limit) + (i * 7919) % (30 * 24 * H)
        start = due - limit
        oid = f"GEN{i:07d}"
        o = WorkOrder(
            id=oid,
            channel=Channel.HOTLINE,
            category="城乡建设",
            title="generated",
            text="generated order (benchmark)",
            status=OrderStatus.HANDLING,
            created_ms=start,
            updated_ms=start,
            deadline_ms=due,
            place=place,
            source_ref="generated",
            parts=[
                OrderPart(
                    dept="城管局",
                    status=PartStatus.HANDLING,
                    assigned_ms=start,
                    limit=5,
                    unit="work_days",
                    deadline_ms=due,
                    started_ms=start,
                )
            ],
            history=[_step("bench", "created", start, note="generated")],
        )
        cid = f"{oid}|handling|城管局"
        pipe.set(k.order(oid), o.model_dump_json())
        pipe.zadd(k.orders_open, {oid: start})
        pipe.zadd(k.order_due, {cid: due})
        pipe.zadd(k.order_remind, {cid: due - int(0.2 * limit)})
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def naive(r: redis.Redis, now: int) -> tuple[int, int]:
    """Read every open order and check its parts' deadlines: (overdue, at reminder)."""
    from core.keys import keys
    from workorders.service import policy

    k = keys()
    share = policy().reminder_share
    overdue = remind = 0
    ids = [i.decode() for i in r.zrange(k.orders_open, 0, -1)]
    for j in range(0, len(ids), 1000):
        for raw in r.mget([k.order(i) for i in ids[j : j + 1000]]):
            if not raw:
                continue
            o: dict[str, Any] = json.loads(raw)
            for p in o["parts"]:
                if p["status"] not in ("assigned", "handling") or p["paused_since_ms"]:
                    continue
                due = p["deadline_ms"]
                if due <= now and p["signal"] not in ("red", "escalated"):
                    overdue += 1
                elif due - share * (due - p["assigned_ms"]) <= now and not p["signal"]:
                    remind += 1
    return overdue, remind


def main(argv: list[str]) -> None:
    n_open = int(argv[1]) if len(argv) > 1 else 100_000
    n_due = int(argv[2]) if len(argv) > 2 else 50
    url, proc, tmp = start_redis()
    os.environ["REDIS_URL"] = url
    os.environ["GRIDCC_PREFIX"] = f"bench{uuid.uuid4().hex[:8]}"
    from core.config import reset_settings

    reset_settings()
    r = redis.Redis.from_url(url)
    try:
        t0 = time.perf_counter()
        generate(r, n_open, n_due)
        print(f"generated {n_open:,} open orders in {time.perf_counter() - t0:.1f} s (GENERATED)")
        from workorders.supervision import sweep

        t0 = time.perf_counter()
        found = naive(r, BASE)
        t_naive = time.perf_counter() - t0
        t0 = time.perf_counter()
        counts = sweep(r, BASE)
        t_sweep = time.perf_counter() - t0
        # The same clocks, once the overdue ones were taken: only a range query remains.
        t0 = time.perf_counter()
        again = sweep(r, BASE)
        t_idle = time.perf_counter() - t0
        assert counts["due"] == found[0] == n_due, (counts, found)
        assert counts["remind"] == found[1] + n_due, (counts, found)
        assert again == {"remind": 0, "due": 0, "escalate": 0, "inspect": 0}, again
        print(
            f"product sweep ({counts['due']} overdue, {counts['remind']} reminders): "
            f"{t_sweep * 1000:.1f} ms (target < 200 ms)"
        )
        print(f"product sweep with nothing new due: {t_idle * 1000:.1f} ms")
        print(f"naive read-every-order check: {t_naive * 1000:.1f} ms")
        print(f"ratio naive / product: {t_naive / t_sweep:.1f}x ({t_naive / t_idle:.0f}x idle)")
    finally:
        r.close()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        if proc is None:
            raw = redis.Redis.from_url(url)
            for key in raw.scan_iter(match=f"{os.environ['GRIDCC_PREFIX']}:*", count=1000):
                raw.delete(key)


if __name__ == "__main__":
    main(sys.argv)
