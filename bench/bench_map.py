"""First render of the electronic grid map in headless Chromium: every grid and 10,000 devices.

Run on demand from the project root, with Redis reachable at ``REDIS_URL`` (default the local
one) and Debian's Chromium: ``python -m bench.bench_map [DEVICES] [RUNS]``.

Two web roles on fresh key prefixes: one with DEVICES registered devices, one with none.
Measured per run: time from navigation to the last of the 2,223 grid boundaries and the
device clusters drawn, and the bytes the page fetched for its data (the layout). Baseline in
the same run: the same page at its default level (15 county outlines) and no devices.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import redis
import shapely

from devices.registry import Device
from grids.codes import Level
from grids.dataset import load_city
from grids.locate import locator
from tests.browser_support import shared_browser, start_web

UNIT_PATHS = ".leaflet-overlay-pane path.gc-grids-unit"
DEVICE_DRAWN = ".gc-cluster, .gc-dev"


def _register(r: redis.Redis, prefix: str, n: int) -> None:
    """``n`` gas sensors at random points inside the city, written as the registry writes them."""
    from core.config import reset_settings
    from core.keys import keys

    os.environ["GRIDCC_PREFIX"] = prefix
    reset_settings()
    k = keys()
    city = load_city()
    minx, miny, maxx, maxy = city.bounds
    rng = np.random.default_rng(7)
    loc = locator()
    placed = 0
    pipe = r.pipeline(transaction=False)
    while placed < n:
        x, y = rng.uniform((minx, miny), (maxx, maxy))
        if not shapely.contains_xy(city.root.geometry, x, y):
            continue
        placed += 1
        dev = Device(
            id=f"bench-{placed:05d}",
            type="gas",
            profile="gas_z2m",
            lon=float(x),
            lat=float(y),
            place=loc.locate(float(x), float(y)),
            topic=f"bench/{placed:05d}",
            registered_ms=int(time.time() * 1000),
        )
        pipe.hset(k.device(dev.id), mapping=dev.to_hash())  # type: ignore[arg-type]
        pipe.sadd(k.devices, dev.id)
        if placed % 1000 == 0:
            pipe.execute()
    pipe.execute()


def _render(browser: Any, url: str, paths: int, devices: bool) -> tuple[float, int]:
    """Seconds to the drawn map and bytes of the layout response."""
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page = ctx.new_page()
    sizes: list[int] = []

    def on_response(resp: Any) -> None:
        if "/_dash-layout" in resp.url or "/_dash-update-component" in resp.url:
            # A response the page abandoned has no body to count.
            with contextlib.suppress(Exception):
                sizes.append(len(resp.body()))

    page.on("response", on_response)
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_function(
        "([sel, n, dev, devsel]) => document.querySelectorAll(sel).length === n"
        " && (!dev || document.querySelectorAll(devsel).length > 0)",
        arg=[UNIT_PATHS, paths, devices, DEVICE_DRAWN],
        timeout=120_000,
        polling=50,
    )
    elapsed = time.perf_counter() - t0
    ctx.close()
    return elapsed, sum(sizes)


def main(devices: int = 10_000, runs: int = 3) -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    r = redis.Redis.from_url(url)
    tag = uuid.uuid4().hex[:8]
    full, empty = f"benchmap{tag}", f"benchmap0{tag}"
    city = load_city()
    n_grids = len(city.units_at(Level.GRID))
    n_counties = len(city.children(city.code))
    t0 = time.perf_counter()
    _register(r, full, devices)
    print(f"registered {devices} devices in {time.perf_counter() - t0:.1f} s")
    webs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            var = str(Path(tmp) / "var")
            base_env = {"REDIS_URL": url, "VAR_DIR": var, "GRIDCC_PREFIX": empty}
            webs.append(start_web(base_env, Path(tmp)))
            webs.append(start_web({**base_env, "GRIDCC_PREFIX": full}, Path(tmp)))
            base, loaded = webs
            browser = shared_browser()
            # One warm-up each: the first request builds each process's caches.
            _render(browser, base.url + "/grids", n_counties, False)
            _render(browser, loaded.url + "/grids?grids=all", n_grids, True)
            b_t, b_b, f_t, f_b = [], [], [], []
            for _ in range(runs):
                t, b = _render(browser, base.url + "/grids", n_counties, False)
                b_t.append(t)
                b_b.append(b)
                t, b = _render(browser, loaded.url + "/grids?grids=all", n_grids, True)
                f_t.append(t)
                f_b.append(b)
    finally:
        for w in webs:
            w.stop()
        for prefix in (full, empty):
            for key in r.scan_iter(match=f"{prefix}:*", count=1000):
                r.delete(key)
    bt, ft = statistics.median(b_t), statistics.median(f_t)
    bb, fb = statistics.median(b_b), statistics.median(f_b)
    print(f"baseline: {n_counties} county outlines, no devices: {bt:.2f} s, {bb / 1e3:.0f} kB")
    print(f"full: {n_grids} grid polygons + {devices} devices: {ft:.2f} s, {fb / 1e6:.2f} MB")
    print(f"ratio time {ft / bt:.2f}x, payload {fb / bb:.1f}x (median of {runs} runs)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
