"""Point → grid on real places, outside points, shared boundaries and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from core.config import get_settings, reset_settings
from grids import dataset, locate
from grids.codes import Level
from grids.dataset import City, load_city
from grids.locate import LocateError, Locator


@pytest.fixture(scope="module")
def city() -> City:
    return load_city()


@pytest.fixture(scope="module")
def loc(city: City) -> Locator:
    return Locator(city)


def _datav(adcode: int) -> shapely.Geometry:
    path = get_settings().source_dir / "geo" / "410100_full_datav.json"
    fc = json.loads(path.read_text(encoding="utf-8"))
    return next(shape(f["geometry"]) for f in fc["features"] if f["properties"]["adcode"] == adcode)


@pytest.mark.parametrize(
    ("name", "gcj", "county"),
    [
        ("河南博物院", (113.6723, 34.7880), "410105"),  # 金水区
        ("少林寺", (112.937, 34.508), "410185"),  # 登封市
    ],
)
def test_known_places(loc: Locator, name: str, gcj: tuple[float, float], county: str) -> None:
    # the landmark really lies in that district on the published (GCJ-02) map
    assert _datav(int(county)).contains(shapely.Point(gcj)), name
    place = loc.locate(*gcj, crs="gcj02")
    assert place.inside_city
    assert place.county == county
    assert place.grid is not None and place.grid.startswith(county)
    assert place.township == place.grid[:9] and place.village == place.grid[:12]
    assert place.code == place.grid
    # the answer is the grid that holds the converted point
    grid = loc.city.unit(place.grid)
    assert grid.geometry.covers(shapely.Point(place.lon, place.lat))
    # the place holds WGS84 coordinates, a few hundred metres from the GCJ-02 input
    assert 0.001 < abs(place.lon - gcj[0]) < 0.01


def test_gcj02_and_wgs84_inputs_differ_near_boundaries(loc: Locator, city: City) -> None:
    # Feeding GCJ-02 numbers as WGS84 misplaces points by hundreds of metres; at
    # least some grids must notice.
    rng = np.random.default_rng(3)
    pts = rng.uniform((113.6, 34.7), (113.75, 34.8), size=(300, 2))
    as_wgs = loc.locate_many(pts[:, 0], pts[:, 1], crs="wgs84")
    as_gcj = loc.locate_many(pts[:, 0], pts[:, 1], crs="gcj02")
    assert sum(a.grid != b.grid for a, b in zip(as_wgs, as_gcj, strict=True)) > 30


def test_outside_points_are_not_forced_into_a_grid(loc: Locator, city: City) -> None:
    beijing = loc.locate(116.3975, 39.9087)
    assert not beijing.inside_city
    assert beijing.county is None and beijing.grid is None and beijing.code == ""
    # just beyond the city's edge: outside, although a grid is a few metres away
    minx, miny, maxx, maxy = city.bounds
    edge = loc.locate(maxx + 0.0001, (miny + maxy) / 2)
    assert not edge.inside_city
    # 开封 (Kaifeng), the next city east
    assert not loc.locate(114.3075, 34.7972).inside_city


def test_shared_boundary_points_resolve_to_exactly_one_grid(loc: Locator, city: City) -> None:
    grids = city.units_at(Level.GRID)
    geoms = np.array([u.geometry for u in grids])
    checked = 0
    for g in grids[::37]:
        for x, y in shapely.get_coordinates(g.geometry)[:12]:
            hit = shapely.intersects(geoms, shapely.Point(x, y))
            holders = [grids[i].code for i in np.flatnonzero(hit)]
            if len(holders) < 2:
                continue
            place = loc.locate(x, y)
            assert place.grid == min(holders)  # the documented rule: smallest code
            assert loc.locate(x, y).grid == place.grid  # and it does not flip
            assert loc.locate_many([x], [y])[0].grid == place.grid
            checked += 1
    assert checked >= 20


def test_county_boundary_vertex(loc: Locator, city: City) -> None:
    # a vertex of the real 金水区/管城回族区 border
    shared = city.unit("410105").geometry.boundary.intersection(
        city.unit("410104").geometry.boundary
    )
    x, y = shapely.get_coordinates(shared)[len(shapely.get_coordinates(shared)) // 2]
    place = loc.locate(x, y)
    assert place.inside_city and place.county in {"410104", "410105"}
    assert place.county == "410104"  # smaller code wins the tie


def test_locate_many_agrees_with_locate(loc: Locator, city: City) -> None:
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = city.bounds
    pts = rng.uniform((minx, miny), (maxx, maxy), size=(2000, 2))
    many = loc.locate_many(pts[:, 0], pts[:, 1])
    one = [loc.locate(x, y) for x, y in pts]
    assert many == one
    inside = sum(p.inside_city for p in one)
    assert 0.4 * len(pts) < inside < 0.95 * len(pts)
    # inside exactly when the city outline covers the point
    outline = city.root.geometry
    for p in one[:300]:
        assert p.inside_city == outline.covers(shapely.Point(p.lon, p.lat))


@pytest.mark.parametrize(
    ("lon", "lat", "crs", "message"),
    [
        (float("nan"), 34.7, "wgs84", "not finite"),
        (34.7, 113.6, "wgs84", "out of range"),
        (113.6, 34.7, "bd09", "unknown crs"),
        ("x", 34.7, "wgs84", "not numbers"),
    ],
)
def test_bad_input(loc: Locator, lon: object, lat: object, crs: str, message: str) -> None:
    with pytest.raises(LocateError, match=message):
        loc.locate(lon, lat, crs=crs)  # type: ignore[arg-type]
    assert issubclass(LocateError, ValueError)


def test_bad_input_in_bulk(loc: Locator) -> None:
    with pytest.raises(LocateError, match="point 1"):
        loc.locate_many([113.6, float("nan")], [34.7, 34.7])


def test_lookup_is_well_under_a_millisecond(loc: Locator, city: City) -> None:
    import time

    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = city.bounds
    pts = rng.uniform((minx, miny), (maxx, maxy), size=(3000, 2))
    t0 = time.perf_counter()
    for x, y in pts:
        loc.locate(x, y)
    per = (time.perf_counter() - t0) / len(pts)
    assert per < 0.0005, f"{per * 1e6:.0f} µs per lookup"


def test_module_level_locator_uses_var_dir(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    reset_settings()
    dataset.reset_city()
    locate.reset_locator()
    try:
        place = locate.locate(113.66, 34.78)
        assert place.county == "410105"
        assert locate.locator() is locate.locator()
        assert list((tmp_path / "grids").glob("city-*.pkl"))
    finally:
        dataset.reset_city()
        locate.reset_locator()
        monkeypatch.delenv("VAR_DIR")
        reset_settings()
