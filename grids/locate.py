"""Point → grid: which county, township, village, grid and micro-grid a coordinate
lies in, and which dedicated grids hold it.

An STRtree over the grids answers a lookup in microseconds; the grid's own few
micro-grids are then tested directly. A point on a boundary shared by several grids
(or micro-grids) goes to the one with the smallest code, so the answer never depends
on the order of anything. Dedicated grids overlap ordinary ones, so they have their
own STRtree and a point gets every dedicated grid that covers it. A point outside the
city is reported as outside, never moved into the nearest grid.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree

from core.models import Place
from grids.codes import Level
from grids.coords import CRSError, check_crs, gcj02_to_wgs84_array, to_wgs84
from grids.dataset import City, load_city

# Neighbouring clipped cells may disagree in the last floating-point bits, leaving
# gaps far thinner than this (degrees; 1e-9° is about 0.1 mm). A point in such a gap
# is taken by the nearest grid; anything farther out is outside.
SEAM_TOLERANCE_DEG = 1e-9


class LocateError(CRSError):
    """Coordinates that cannot be located (not numbers, out of range, unknown crs)."""


class Locator:
    """Point-in-grid lookups over one city's grids."""

    def __init__(self, city: City) -> None:
        units = city.units_at(Level.GRID)
        if not units:
            raise ValueError("the city has no grids")
        self.city = city
        # Units come sorted by code, so the smallest index is the smallest code.
        self.codes: list[str] = [u.code for u in units]
        self.geometries = np.array([u.geometry for u in units])
        shapely.prepare(self.geometries)
        self.tree = STRtree(self.geometries)
        # Micro-grids per grid index: a grid has a handful, so a direct test beats a tree.
        micro: dict[str, list[tuple[str, shapely.Geometry]]] = {}
        for u in city.units_at(Level.MICRO_GRID):
            shapely.prepare(u.geometry)
            micro.setdefault(u.code[: Level.GRID.digits], []).append((u.code, u.geometry))
        self.micro: list[list[tuple[str, shapely.Geometry]]] = [
            micro.get(c, []) for c in self.codes
        ]
        dedicated = city.units_at(Level.DEDICATED)
        self.dedicated_codes: list[str] = [u.code for u in dedicated]
        self.dedicated_geometries = np.array([u.geometry for u in dedicated])
        shapely.prepare(self.dedicated_geometries)
        self.dedicated_tree = STRtree(self.dedicated_geometries)

    def micro_grid_of(self, i: int, lon: float, lat: float) -> str | None:
        """The micro-grid of grid ``i`` holding the point (smallest code on a shared edge)."""
        cells = self.micro[i]
        if not cells:
            return None
        for code, geom in cells:
            if shapely.intersects_xy(geom, lon, lat):
                return code
        point = shapely.Point(lon, lat)
        best = min(cells, key=lambda c: (c[1].distance(point), c[0]))
        # The grid holds the point, so this is a seam between micro-grids, not outside.
        return best[0]

    def dedicated_at(self, lon: float, lat: float) -> list[str]:
        """Codes of every dedicated grid covering the point, sorted."""
        if not self.dedicated_codes:
            return []
        hits = self.dedicated_tree.query(shapely.Point(lon, lat), predicate="intersects")
        return [self.dedicated_codes[j] for j in sorted(hits.tolist())]

    def __len__(self) -> int:
        return len(self.codes)

    def grid_index(self, lon: float, lat: float) -> int | None:
        """Index into ``codes`` of the grid holding the WGS84 point, or None."""
        point = shapely.Point(lon, lat)
        hits = self.tree.query(point, predicate="intersects")
        if len(hits) == 0:
            hits = self.tree.query(point, predicate="dwithin", distance=SEAM_TOLERANCE_DEG)
            if len(hits) == 0:
                return None
        return int(hits.min())

    def locate(self, lon: float, lat: float, crs: str = "wgs84") -> Place:
        """The jurisdiction chain of a point; ``crs`` says what the input is in."""
        try:
            x, y = to_wgs84(lon, lat, crs)
        except CRSError as exc:
            raise LocateError(str(exc)) from exc
        i = self.grid_index(x, y)
        if i is None:
            return Place(lon=x, lat=y, inside_city=False)
        return _place(x, y, self.codes[i], self.micro_grid_of(i, x, y), self.dedicated_at(x, y))

    def locate_many(
        self, lons: npt.ArrayLike, lats: npt.ArrayLike, crs: str = "wgs84"
    ) -> list[Place]:
        """Many points at once (vectorised tree query); same answers as ``locate``."""
        xy = np.column_stack([np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)])
        try:
            name = check_crs(crs)
        except CRSError as exc:
            raise LocateError(str(exc)) from exc
        bad = ~np.isfinite(xy).all(axis=1)
        bad |= (np.abs(xy[:, 0]) > 180) | (np.abs(xy[:, 1]) > 90)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LocateError(
                f"point {i} ({xy[i, 0]!r}, {xy[i, 1]!r}) is not a finite lon/lat in range"
            )
        if name == "gcj02":
            xy = gcj02_to_wgs84_array(xy)
        idx = self.grid_indices(xy)
        ded: list[list[str]] = [[] for _ in range(len(xy))]
        if self.dedicated_codes and len(xy):
            pairs = self.dedicated_tree.query(shapely.points(xy), predicate="intersects")
            for p, j in sorted(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True)):
                ded[p].append(self.dedicated_codes[j])
        out = []
        for k, ((x, y), i) in enumerate(zip(xy, idx, strict=True)):
            if i < 0:
                out.append(Place(lon=float(x), lat=float(y), inside_city=False))
            else:
                x, y = float(x), float(y)
                out.append(_place(x, y, self.codes[i], self.micro_grid_of(int(i), x, y), ded[k]))
        return out

    def grid_indices(self, xy: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Grid index per WGS84 point of an (N, 2) array, -1 where outside."""
        points = shapely.points(xy)
        result = np.full(len(points), -1, dtype=np.int64)
        pairs = self.tree.query(points, predicate="intersects")
        if pairs.shape[1]:
            # Smallest grid index per point: pairs come sorted by point, so take the
            # minimum over each point's run.
            order = np.lexsort((pairs[1], pairs[0]))
            p, g = pairs[0][order], pairs[1][order]
            first = np.ones(len(p), dtype=bool)
            first[1:] = p[1:] != p[:-1]
            result[p[first]] = g[first]
        missing = np.flatnonzero(result < 0)
        if len(missing):
            near = self.tree.query(
                points[missing], predicate="dwithin", distance=SEAM_TOLERANCE_DEG
            )
            for k, gi in zip(near[0], near[1], strict=True):
                j = missing[k]
                if result[j] < 0 or gi < result[j]:
                    result[j] = gi
        return result


def _place(
    lon: float, lat: float, grid: str, micro: str | None = None, dedicated: list[str] | None = None
) -> Place:
    return Place(
        lon=lon,
        lat=lat,
        county=grid[:6],
        township=grid[:9],
        village=grid[:12],
        grid=grid,
        inside_city=True,
        micro_grid=micro,
        dedicated=dedicated or [],
    )


_locator: Locator | None = None
_lock = threading.Lock()


def locator() -> Locator:
    """The process-wide locator over the loaded city."""
    global _locator
    if _locator is None:
        with _lock:
            if _locator is None:
                _locator = Locator(load_city())
    return _locator


def locate(lon: float, lat: float, crs: str = "wgs84") -> Place:
    """Shortcut for ``locator().locate``."""
    return locator().locate(lon, lat, crs)


def reset_locator() -> None:
    global _locator
    with _lock:
        _locator = None
