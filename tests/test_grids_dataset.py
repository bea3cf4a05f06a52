"""The built city: official counties and townships, generated levels, coverage, cache."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
import shapely

from core.config import get_settings
from grids.codes import CodeError, Level, level_of
from grids.dataset import City, UnitNotFound, build_city, load_city


@pytest.fixture(scope="module")
def city() -> City:
    return load_city()


def _rows(name: str) -> list[dict[str, str]]:
    path = get_settings().source_dir / "geo" / name
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_fifteen_counties_with_official_codes_and_names(city: City) -> None:
    official = {r["code"]: r["name"] for r in _rows("zhengzhou_areas_modood.csv")}
    counties = city.units_at(Level.COUNTY)
    assert len(counties) == 15
    assert {u.code: u.name for u in counties} == official
    assert city.unit("410105").name == "金水区"
    assert [u.code for u in city.children("4101")] == sorted(official)
    assert city.root.name == "郑州市" and city.root.parent is None


def test_208_townships_with_official_codes_and_names(city: City) -> None:
    official = {
        r["code9"]: (r["name"], r["county_code"])
        for r in _rows("zhengzhou_townships_code12_derived.csv")
    }
    towns = city.units_at(Level.TOWNSHIP)
    assert len(towns) == 208
    assert {u.code: (u.name, u.parent) for u in towns} == official
    assert len(city.children("410105")) == 24  # 金水区
    assert {u.name for u in city.children("410172")} == {
        "石佛镇",
        "沟赵乡",
        "枫杨街道",
        "梧桐街道",
        "双桥街道",
    }


def test_generated_levels_have_codes_below_their_parent(city: City) -> None:
    villages = city.units_at(Level.VILLAGE)
    grids = city.units_at(Level.GRID)
    assert 500 <= len(villages) <= 800
    assert 1800 <= len(grids) <= 2500
    for u in villages + grids:
        assert level_of(u.code) is u.level
        assert u.parent is not None and u.code.startswith(u.parent)
        assert u.code[-3:] != "000"
        assert u.generated and u.source == "generated"
        assert "（生成）" in u.name
    # every township and village has children, numbered from 001 without holes
    for parent in city.units_at(Level.TOWNSHIP) + villages:
        kids = city.children(parent.code)
        assert [k.code[-3:] for k in kids] == [f"{i:03d}" for i in range(1, len(kids) + 1)]
        assert len(kids) >= 3


def test_generated_flags(city: City) -> None:
    flags = {u.code: u.generated for u in city.units_at(Level.COUNTY)}
    assert {c for c, g in flags.items() if g} == {"410171", "410172", "410173"}
    assert not city.root.generated
    assert all(u.generated for u in city.units_at(Level.TOWNSHIP))
    assert "GCJ-02 → WGS84" in city.unit("410105").source
    assert "carved from" in city.unit("410172").source


@pytest.mark.parametrize("level", [Level.CITY, Level.COUNTY, Level.TOWNSHIP, Level.VILLAGE])
def test_children_cover_parents_without_gaps_or_overlaps(city: City, level: Level) -> None:
    for parent in city.units_at(level):
        kids = city.children(parent.code)
        geoms = np.array([k.geometry for k in kids])
        assert all(shapely.is_valid(geoms)), parent.code
        assert all(shapely.area(geoms) > 0), parent.code
        pa = parent.geometry.area
        # areas add up: no overlap and no gap
        assert shapely.area(geoms).sum() == pytest.approx(pa, rel=1e-9), parent.code
        union = shapely.union_all(geoms)
        assert union.symmetric_difference(parent.geometry).area < 1e-9 * pa, parent.code
        tree = shapely.STRtree(geoms)
        a, b = tree.query(geoms, predicate="intersects")
        pairs = a < b
        overlap = shapely.area(shapely.intersection(geoms[a[pairs]], geoms[b[pairs]])).sum()
        assert overlap < 1e-9 * pa, parent.code


def test_city_is_where_zhengzhou_is(city: City) -> None:
    minx, miny, maxx, maxy = city.bounds
    assert 112.6 < minx < maxx < 114.3
    assert 34.2 < miny < maxy < 35.1
    # about 7,500 km²: 0.74 deg² at this latitude
    assert city.root.geometry.area == pytest.approx(0.739, rel=0.01)


def test_unit_lookup_errors(city: City) -> None:
    with pytest.raises(UnitNotFound, match="410199"):
        city.unit("410199")
    with pytest.raises(CodeError, match="non-digit"):
        city.unit("41O105")
    assert city.get("410199") is None
    assert "410105" in city and "410199" not in city
    chain = city.chain(city.units_at(Level.GRID)[0].code)
    assert [u.level for u in chain] == [
        Level.CITY,
        Level.COUNTY,
        Level.TOWNSHIP,
        Level.VILLAGE,
        Level.GRID,
    ]


def test_geojson_for_the_map(city: City) -> None:
    fc = city.geojson()
    assert fc["type"] == "FeatureCollection"
    assert len(fc["features"]) == 15
    props = fc["features"][0]["properties"]
    assert set(props) == {"code", "name", "level", "generated", "parent"}
    assert props["parent"] == "4101" and props["level"] == "county"
    zones = [f for f in fc["features"] if f["properties"]["generated"]]
    assert len(zones) == 3

    towns = city.geojson("410105")
    assert len(towns["features"]) == 24
    assert all(f["properties"]["parent"] == "410105" for f in towns["features"])
    grids = city.geojson("410105", level="grid")
    assert len(grids["features"]) == len(city.units_at(Level.GRID, within="410105"))

    # simplification drops vertices yet keeps each shape within the tolerance
    raw = city.geojson(tolerance=0)
    n_raw = sum(
        shapely.get_num_coordinates(shapely.geometry.shape(f["geometry"])) for f in raw["features"]
    )
    n_simple = sum(
        shapely.get_num_coordinates(shapely.geometry.shape(f["geometry"])) for f in fc["features"]
    )
    assert n_simple < n_raw
    for f in city.geojson(tolerance=0.002)["features"]:
        simple = shapely.geometry.shape(f["geometry"])
        real = city.unit(f["properties"]["code"]).geometry
        assert simple.is_valid
        assert simple.hausdorff_distance(real) < 0.01
    # neighbours stay neighbours: the simplified grids still add up to the city
    simple_grids = [
        shapely.geometry.shape(f["geometry"]) for f in city.geojson(level="grid")["features"]
    ]
    assert sum(g.area for g in simple_grids) == pytest.approx(city.root.geometry.area, rel=1e-5)

    with pytest.raises(CodeError, match="above"):
        city.geojson("410105001", level="county")
    with pytest.raises(CodeError, match="unknown level"):
        city.geojson(level="street")
    with pytest.raises(ValueError, match="tolerance"):
        city.geojson(tolerance=-1)


def test_build_is_deterministic_and_cached(city: City, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    built = build_city(cache_dir=tmp_path)
    build_s = time.perf_counter() - t0
    assert build_s < 10
    assert list(tmp_path.glob("city-*.pkl"))
    assert [u.code for u in built] == [u.code for u in city]
    assert all(
        shapely.equals_exact(a.geometry, b.geometry, tolerance=0) and a.name == b.name
        for a, b in zip(built, city, strict=True)
    )
    t0 = time.perf_counter()
    cached = build_city(cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 1
    assert cached.key == built.key
    assert [(u.code, u.name, u.level, u.generated, u.source) for u in cached] == [
        (u.code, u.name, u.level, u.generated, u.source) for u in built
    ]
    # a torn cache file is rebuilt, not trusted
    path = next(tmp_path.glob("city-*.pkl"))
    path.write_bytes(b"not a pickle")
    again = build_city(cache_dir=tmp_path)
    assert len(again) == len(built)


def test_real_boundaries_are_converted_to_wgs84(city: City) -> None:
    import json

    from shapely.geometry import shape

    from grids.coords import geometry_to_wgs84

    path = get_settings().source_dir / "geo" / "410100_full_datav.json"
    fc = json.loads(path.read_text(encoding="utf-8"))
    raw = {str(f["properties"]["adcode"]): shape(f["geometry"]) for f in fc["features"]}
    # 二七区 lies apart from every functional zone, so it is the published outline itself
    unit = city.unit("410103").geometry
    assert shapely.equals_exact(unit, geometry_to_wgs84(raw["410103"], "gcj02"), tolerance=0)
    assert unit.hausdorff_distance(raw["410103"]) > 0.002  # not the GCJ-02 numbers
    # a district that gave land to a zone lost exactly the zone's share of it
    zhongyuan = city.unit("410102").geometry
    lost = geometry_to_wgs84(raw["410102"], "gcj02").difference(zhongyuan)
    assert lost.area > 0.001
    assert lost.difference(city.unit("410172").geometry).area < 1e-9
