"""Boundary import: every check on a small broken input, all-or-nothing, CRS option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from grids.codes import Level
from grids.coords import geometry_from_wgs84
from grids.dataset import City, Unit, load_city
from grids.importer import (
    PROBLEM_CODES,
    GridImportError,
    Tolerances,
    area_m2,
    import_geojson,
)
from grids.versions import VersionStore


@pytest.fixture(scope="module")
def city() -> City:
    return load_city()


@pytest.fixture
def store(tmp_path: Path, city: City) -> VersionStore:
    return VersionStore(tmp_path / "versions", base=city)


def feature(code: str, geom: BaseGeometry | dict[str, Any], **props: Any) -> dict[str, Any]:
    g = geom if isinstance(geom, dict) else mapping(geom)
    return {"type": "Feature", "geometry": g, "properties": {"code": code, **props}}


def fc(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def adjacent_pair(city: City) -> tuple[Unit, Unit, Unit]:
    """A village and two of its grids that share an edge."""
    village = city.units_at(Level.VILLAGE)[0]
    kids = city.children(village.code)
    for a in kids:
        for b in kids:
            if a.code < b.code and a.geometry.boundary.intersection(b.geometry.boundary).length > 0:
                return village, a, b
    raise AssertionError("no adjacent grids")


def shared_point(a: Unit, b: Unit) -> shapely.Point:
    line = a.geometry.boundary.intersection(b.geometry.boundary)
    return shapely.line_interpolate_point(shapely.line_merge(line), 0.5, normalized=True)


def boundary_point(inner: Unit, outer: Unit) -> shapely.Point:
    """A point on ``inner``'s boundary that is also on ``outer``'s boundary."""
    line = inner.geometry.boundary.intersection(outer.geometry.boundary)
    assert line.length > 0
    return shapely.line_interpolate_point(shapely.line_merge(line), 0.5, normalized=True)


def test_clean_adjustment_between_two_grids_is_stored(store: VersionStore, city: City) -> None:
    village, a, b = adjacent_pair(city)
    piece = b.geometry.intersection(shared_point(a, b).buffer(0.002))
    assert area_m2(piece) > 10_000  # a real move of the shared edge, not noise
    rep = import_geojson(
        fc(
            feature(a.code, a.geometry.union(piece), name=a.name),
            feature(b.code, b.geometry.difference(piece), name=b.name),
        ),
        valid_from="2025-06-01",
        store=store,
    )
    assert rep.ok and rep.problems == [] and rep.counts == {}
    assert rep.applied and rep.version == 2
    assert rep.changed == sorted([a.code, b.code]) and rep.added == []
    assert rep.levels == {"grid": 2}
    assert [v.version for v in store.versions()] == [1, 2]
    assert store.latest().codes == sorted([a.code, b.code])
    assert store.latest_city().unit(a.code).geometry.area > a.geometry.area


def test_dry_run_reports_but_stores_nothing(store: VersionStore, city: City) -> None:
    _, a, b = adjacent_pair(city)
    piece = b.geometry.intersection(shared_point(a, b).buffer(0.002))
    rep = import_geojson(
        fc(feature(a.code, a.geometry.union(piece)), feature(b.code, b.geometry.difference(piece))),
        valid_from="2025-06-01",
        dry_run=True,
        store=store,
    )
    assert rep.ok and rep.dry_run and not rep.applied and rep.version is None
    assert [v.version for v in store.versions()] == [1]
    assert not store.index_path.exists()


def _codes(rep: Any) -> dict[str, int]:
    assert set(rep.counts) <= set(PROBLEM_CODES)
    assert sum(rep.counts.values()) == len(rep.problems)
    for p in rep.problems:
        assert p.message, p
    return dict(rep.counts)


def test_outside_parent(store: VersionStore, city: City) -> None:
    village, a, _ = adjacent_pair(city)
    # Push a bulge of grid ``a`` out across its village's border.
    kid = next(
        k
        for k in city.children(village.code)
        if k.geometry.boundary.intersection(village.geometry.boundary).length > 0
    )
    bulge = boundary_point(kid, village).buffer(0.002).difference(village.geometry)
    rep = import_geojson(
        fc(feature(kid.code, kid.geometry.union(bulge))), valid_from="2025-06-01", store=store
    )
    assert _codes(rep) == {"outside_parent": 1}
    (p,) = rep.problems
    assert p.unit == kid.code and village.code in p.message
    assert p.area_m2 == pytest.approx(area_m2(bulge), rel=0.01)
    assert not rep.applied and len(store.versions()) == 1


def test_sibling_overlap(store: VersionStore, city: City) -> None:
    _, a, b = adjacent_pair(city)
    piece = b.geometry.intersection(shared_point(a, b).buffer(0.002))
    rep = import_geojson(
        fc(feature(a.code, a.geometry.union(piece))), valid_from="2025-06-01", store=store
    )
    assert _codes(rep) == {"sibling_overlap": 1}
    (p,) = rep.problems
    assert {p.unit, p.other} == {a.code, b.code}
    assert p.area_m2 == pytest.approx(area_m2(piece), rel=0.01)


def test_overlap_below_tolerance_is_accepted(store: VersionStore, city: City) -> None:
    _, a, b = adjacent_pair(city)
    piece = b.geometry.intersection(shared_point(a, b).buffer(0.00005))  # a few m²
    assert 0 < area_m2(piece) < 50
    rep = import_geojson(
        fc(feature(a.code, a.geometry.union(piece))),
        valid_from="2025-06-01",
        store=store,
        dry_run=True,
    )
    assert rep.ok, rep.problems
    strict = import_geojson(
        fc(feature(a.code, a.geometry.union(piece))),
        valid_from="2025-06-01",
        store=store,
        dry_run=True,
        tolerances=Tolerances(sibling_overlap_m2=1.0),
    )
    assert _codes(strict) == {"sibling_overlap": 1}


def test_coverage_gap(store: VersionStore, city: City) -> None:
    village, a, _ = adjacent_pair(city)
    p = a.geometry.representative_point()
    hole = p.buffer(0.001)
    assert a.geometry.contains(hole)
    rep = import_geojson(
        fc(feature(a.code, a.geometry.difference(hole))), valid_from="2025-06-01", store=store
    )
    assert _codes(rep) == {"coverage_gap": 1}
    (prob,) = rep.problems
    assert prob.unit == village.code
    assert prob.area_m2 == pytest.approx(area_m2(hole), rel=0.01)


def test_invalid_geometry_self_intersecting_ring(store: VersionStore, city: City) -> None:
    _, a, _ = adjacent_pair(city)
    minx, miny, maxx, maxy = a.geometry.bounds
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[minx, miny], [maxx, maxy], [maxx, miny], [minx, maxy], [minx, miny]]],
    }
    rep = import_geojson(fc(feature(a.code, bowtie)), valid_from="2025-06-01", store=store)
    assert _codes(rep) == {"invalid_geometry": 1}
    assert rep.problems[0].unit == a.code
    assert "Self-intersection" in rep.problems[0].message


def test_invalid_geometry_not_a_polygon(store: VersionStore, city: City) -> None:
    _, a, _ = adjacent_pair(city)
    rep = import_geojson(
        fc(feature(a.code, a.geometry.centroid), {"type": "Feature", "properties": {}}),
        valid_from="2025-06-01",
        store=store,
    )
    # The point is not an area; the empty feature has neither a code nor a geometry.
    assert _codes(rep) == {"invalid_geometry": 2, "bad_code": 1}
    assert rep.problems[0].unit == a.code and "Point" in rep.problems[0].message
    assert {p.feature for p in rep.problems[1:]} == {1}


def test_duplicate_code(store: VersionStore, city: City) -> None:
    _, a, b = adjacent_pair(city)
    rep = import_geojson(
        fc(feature(a.code, a.geometry), feature(a.code, b.geometry)),
        valid_from="2025-06-01",
        store=store,
    )
    assert _codes(rep) == {"duplicate_code": 1}
    assert rep.problems[0].unit == a.code and rep.problems[0].feature == 1


@pytest.mark.parametrize(
    ("code", "props", "why"),
    [
        ("41010200100100A", {}, "non-digit"),
        ("4101020010010011", {}, "16 digits"),
        ("410102001001000", {}, "all zeros"),
        ("410102001001001", {"parent": "410102001002"}, "does not start with its parent"),
        ("410102001001001", {"level": "village"}, "level says"),
    ],
)
def test_bad_code(
    store: VersionStore, city: City, code: str, props: dict[str, Any], why: str
) -> None:
    _, a, _ = adjacent_pair(city)
    rep = import_geojson(
        fc(feature(code, a.geometry, **props)), valid_from="2025-06-01", store=store
    )
    assert _codes(rep) == {"bad_code": 1}
    assert rep.problems[0].unit == code and why in rep.problems[0].message


def test_unknown_parent(store: VersionStore, city: City) -> None:
    village, a, _ = adjacent_pair(city)
    orphan_village = village.code[:9] + "099"
    assert orphan_village not in city
    rep = import_geojson(
        fc(feature(orphan_village + "001", a.geometry)), valid_from="2025-06-01", store=store
    )
    assert _codes(rep) == {"unknown_parent": 1}
    assert orphan_village in rep.problems[0].message
    assert rep.added == [orphan_village + "001"]


def test_any_error_changes_nothing(store: VersionStore, city: City) -> None:
    _, a, b = adjacent_pair(city)
    piece = b.geometry.intersection(shared_point(a, b).buffer(0.002))
    probe = piece.representative_point()
    when = 1_780_000_000_000  # 2026-05-28
    before = store.locate_at(probe.x, probe.y, when).grid
    rep = import_geojson(
        fc(
            feature(a.code, a.geometry.union(piece)),
            feature(b.code, b.geometry.difference(piece)),
            feature("4101020010010019", a.geometry),  # one bad code spoils the lot
        ),
        valid_from="2025-06-01",
        store=store,
    )
    assert not rep.ok and not rep.applied and rep.counts == {"bad_code": 1}
    assert [v.version for v in store.versions()] == [1]
    assert not store.index_path.exists()
    assert list(store.root.glob("*.geojson")) == []
    assert store.locate_at(probe.x, probe.y, when).grid == before == b.code


def test_crs_option_converts_gcj02(store: VersionStore, city: City) -> None:
    _, a, b = adjacent_pair(city)
    piece = b.geometry.intersection(shared_point(a, b).buffer(0.002))
    a2, b2 = a.geometry.union(piece), b.geometry.difference(piece)
    gcj = fc(
        feature(a.code, geometry_from_wgs84(a2, "gcj02")),
        feature(b.code, geometry_from_wgs84(b2, "gcj02")),
    )
    # Read as WGS84 the GCJ-02 shapes sit hundreds of metres off: the checks say so.
    wrong = import_geojson(gcj, "wgs84", valid_from="2025-06-01", store=store)
    assert not wrong.ok and "outside_parent" in wrong.counts
    right = import_geojson(gcj, "gcj02", valid_from="2025-06-01", store=store)
    assert right.ok and right.applied and right.crs == "gcj02"
    stored = store.latest_city().unit(a.code).geometry
    assert shapely.hausdorff_distance(stored, a2) < 1e-7


def test_file_input_and_clear_errors(tmp_path: Path, store: VersionStore, city: City) -> None:
    _, a, _ = adjacent_pair(city)
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps(fc(feature(a.code, a.geometry))), encoding="utf-8")
    rep = import_geojson(path, valid_from="2025-06-01", store=store)
    assert rep.ok and rep.unchanged == [a.code] and not rep.applied  # nothing to change
    assert rep.source == "grids.geojson"

    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(GridImportError, match="not JSON"):
        import_geojson(bad, store=store)
    gbk = tmp_path / "gbk.geojson"
    gbk.write_bytes(json.dumps({"name": "网格"}, ensure_ascii=False).encode("gbk"))
    with pytest.raises(GridImportError, match="not UTF-8"):
        import_geojson(gbk, store=store)
    with pytest.raises(GridImportError, match="Shapefile"):
        import_geojson(tmp_path / "grids.shp", store=store)
    with pytest.raises(GridImportError, match="FeatureCollection"):
        import_geojson({"type": "Polygon"}, store=store)
    with pytest.raises(GridImportError, match="unknown crs"):
        import_geojson(fc(feature(a.code, a.geometry)), "bd09", store=store)
    with pytest.raises(GridImportError, match="not a date"):
        import_geojson(fc(feature(a.code, a.geometry)), valid_from="2025-13-01", store=store)
    with pytest.raises(GridImportError, match="before the latest"):
        import_geojson(fc(feature(a.code, a.geometry)), valid_from="2023-06-01", store=store)


def test_retire_merges_two_grids(store: VersionStore, city: City) -> None:
    _, a, b = adjacent_pair(city)
    merged = a.geometry.union(b.geometry)
    rep = import_geojson(
        fc(feature(a.code, merged)), valid_from="2025-06-01", retire=[b.code], store=store
    )
    assert rep.ok and rep.applied and rep.retired == [b.code]
    assert b.code not in store.latest_city()
    p = b.geometry.representative_point()
    assert store.latest_city().unit(a.code).geometry.contains(p)


def test_whole_demo_level_passes_its_own_checks(store: VersionStore, city: City) -> None:
    # Renaming forces every grid through the checks; the generated data must be clean
    # even at a 1 m² tolerance.
    feats = [feature(u.code, u.geometry, name=u.name + "（改）") for u in city.units_at(Level.GRID)]
    rep = import_geojson(
        fc(*feats),
        valid_from="2025-06-01",
        dry_run=True,
        store=store,
        tolerances=Tolerances(1.0, 1.0, 1.0),
    )
    assert rep.ok, rep.problems[:3]
    assert len(rep.changed) == len(feats) > 2000


def test_retire_needs_an_existing_unit_and_its_children_gone(
    store: VersionStore, city: City
) -> None:
    village, a, _ = adjacent_pair(city)
    rep = import_geojson(
        fc(feature(a.code, a.geometry, name="x")),
        valid_from="2025-06-01",
        retire=["41010x", village.code[:9] + "099", village.code],
        store=store,
    )
    assert not rep.applied
    assert rep.counts["bad_code"] == 2
    # Retiring the village would orphan the grids that stay.
    orphans = [p.unit for p in rep.problems if p.code == "unknown_parent"]
    assert sorted(orphans) == [k.code for k in city.children(village.code)]
    assert len(store.versions()) == 1
