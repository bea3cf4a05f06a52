"""Point-to-grid lookups per second: STRtree against a brute-force scan, same run.

Run on demand: ``python -m bench.bench_locate [N]`` from the project root.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import shapely

from grids.codes import Level
from grids.dataset import load_city
from grids.locate import Locator


def brute_force(geoms: np.ndarray, x: float, y: float) -> int | None:
    """The grid with the smallest code that holds the point, testing every grid."""
    hits = np.flatnonzero(shapely.intersects(geoms, shapely.Point(x, y)))
    return int(hits[0]) if len(hits) else None


def python_scan(geoms: np.ndarray, x: float, y: float) -> int | None:
    """The same, one geometry at a time in a Python loop (the naive way)."""
    point = shapely.Point(x, y)
    for i, g in enumerate(geoms):
        if g.intersects(point):
            return i
    return None


def main(n: int = 20_000) -> None:
    t0 = time.perf_counter()
    city = load_city()
    t_city = time.perf_counter() - t0
    t0 = time.perf_counter()
    loc = Locator(city)
    t_tree = time.perf_counter() - t0
    grids = city.units_at(Level.GRID)
    geoms = np.array([u.geometry for u in grids])
    shapely.prepare(geoms)

    rng = np.random.default_rng(42)
    minx, miny, maxx, maxy = city.bounds
    pts = rng.uniform((minx, miny), (maxx, maxy), size=(n, 2))
    n_brute = max(n // 10, 200)  # the scan is slow; a tenth of the points is enough

    t0 = time.perf_counter()
    tree_hits = [loc.grid_index(x, y) for x, y in pts]
    t_tree_q = time.perf_counter() - t0

    t0 = time.perf_counter()
    places = [loc.locate(x, y) for x, y in pts]
    t_locate = time.perf_counter() - t0

    t0 = time.perf_counter()
    vec = loc.grid_indices(pts)
    t_vec = time.perf_counter() - t0

    t0 = time.perf_counter()
    brute_hits = [brute_force(geoms, x, y) for x, y in pts[:n_brute]]
    t_brute = time.perf_counter() - t0

    n_loop = max(n // 100, 50)
    t0 = time.perf_counter()
    loop_hits = [python_scan(geoms, x, y) for x, y in pts[:n_loop]]
    t_loop = time.perf_counter() - t0

    agree = all(a == b for a, b in zip(tree_hits[:n_loop], loop_hits, strict=True)) and all(
        a == b for a, b in zip(tree_hits[:n_brute], brute_hits, strict=True)
    )
    agree_vec = all((a if a is not None else -1) == b for a, b in zip(tree_hits, vec, strict=True))
    inside = sum(p.inside_city for p in places)

    rate_tree = n / t_tree_q
    rate_brute = n_brute / t_brute
    print(
        f"city: {len(city)} units, {len(grids)} grids (load {t_city * 1000:.0f} ms, tree {t_tree * 1000:.1f} ms)"
    )
    print(f"points: {n} random in the city's bounds, {inside} inside the city")
    print(f"STRtree grid_index : {rate_tree:12,.0f} lookups/s ({1e6 / rate_tree:6.1f} µs)")
    print(
        f"Locator.locate     : {n / t_locate:12,.0f} lookups/s ({1e6 * t_locate / n:6.1f} µs, builds a Place)"
    )
    print(f"STRtree vectorised : {n / t_vec:12,.0f} lookups/s ({1e6 * t_vec / n:6.1f} µs)")
    print(
        f"brute-force scan   : {rate_brute:12,.0f} lookups/s ({1e6 / rate_brute:6.1f} µs) over {n_brute} points"
    )
    rate_loop = n_loop / t_loop
    print(
        f"Python loop scan   : {rate_loop:12,.0f} lookups/s ({1e6 / rate_loop:6.1f} µs) over {n_loop} points"
    )
    print(
        f"speed-up STRtree / brute force: {rate_tree / rate_brute:.1f}x (vectorised scan), {rate_tree / rate_loop:.0f}x (Python loop)"
    )
    print(f"answers agree: tree vs brute {agree}, tree vs vectorised {agree_vec}")
    if not (agree and agree_vec):
        raise SystemExit(1)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
