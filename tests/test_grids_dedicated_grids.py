"""Dedicated grids (专属网格): their code space, the demo set, lookup across ordinary
grids, staff and the import checks that apply to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import shapely
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from access.scope import Scope
from grids.codes import (
    CodeError,
    DedicatedKind,
    Level,
    dedicated_kind,
    is_dedicated,
    level_of,
    make_code,
    make_dedicated_code,
    parent_of,
    validate_code,
)
from grids.dataset import DEDICATED_SITES, City, Unit, load_city
from grids.importer import area_m2, import_geojson
from grids.locate import Locator
from grids.people import FORCES, KIND_FORCES, Role, generated_staff, set_on_duty, staff_of
from grids.people import staff_within as people_within
from grids.versions import VersionStore

SCHOOL = "4101050019010001"


@pytest.fixture(scope="module")
def city() -> City:
    return load_city()


@pytest.fixture(scope="module")
def loc(city: City) -> Locator:
    return Locator(city)


@pytest.fixture
def store(tmp_path: Path, city: City) -> VersionStore:
    return VersionStore(tmp_path / "versions", base=city)


def feature(code: str, geom: BaseGeometry, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": mapping(geom), "properties": {"code": code, **props}}


def fc(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


# --- the code space -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (SCHOOL, DedicatedKind.SCHOOL),
        ("4101050019020012", DedicatedKind.HOSPITAL),
        ("4101735839039999", DedicatedKind.INDUSTRIAL_PARK),
        ("4101050019040001", DedicatedKind.MARKET),
        ("4101050019050001", DedicatedKind.CONSTRUCTION_SITE),
        ("4101050019060001", DedicatedKind.KEY_POINT),
    ],
)
def test_good_dedicated_codes_are_classified(code: str, kind: DedicatedKind) -> None:
    assert level_of(code) is Level.DEDICATED
    assert validate_code(code, expected_level="dedicated") == code
    assert validate_code(code, parent=code[:9]) == code
    assert validate_code(code, parent=code[:6]) == code
    assert dedicated_kind(code) is kind and is_dedicated(code)
    assert parent_of(code) == code[:9]
    assert make_dedicated_code(code[:9], kind, int(code[12:])) == code


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("410105001901001", "reserved for dedicated grids"),  # 15 digits: a grid in 9xx
        ("4101050010010011", "digit 10 is '0', not the dedicated marker '9'"),
        ("4101050019000001", "unknown dedicated-grid kind '00'"),
        ("4101050019070001", "unknown dedicated-grid kind '07'"),
        ("4101050019010000", "dedicated sequence .* all zeros"),
        ("4101050009010001", "township sequence .* all zeros"),
        ("4101000019010001", "county sequence .* all zeros"),
        ("41010500190100011", "reserved for dedicated grids"),  # 17 digits: micro in 9xx
        ("410105001901000A", "non-digit character 'A'"),
        ("41010500190100", "has 14 digits"),
    ],
)
def test_bad_dedicated_codes_say_why(code: str, message: str) -> None:
    with pytest.raises(CodeError, match=message):
        validate_code(code)
    assert not is_dedicated(code)


def test_dedicated_code_parents_and_levels() -> None:
    with pytest.raises(CodeError, match="is a dedicated code .* expected a grid code"):
        validate_code(SCHOOL, expected_level=Level.GRID)
    with pytest.raises(CodeError, match="lies below a township or above"):
        validate_code(SCHOOL, parent="410105001001")
    with pytest.raises(CodeError, match="does not start with its parent '410105002'"):
        validate_code(SCHOOL, parent="410105002")
    with pytest.raises(CodeError, match="not a dedicated-grid code"):
        dedicated_kind("410105001001001")
    with pytest.raises(CodeError, match="unknown dedicated-grid kind 'zoo'"):
        make_dedicated_code("410105001", "zoo", 1)
    with pytest.raises(CodeError, match="1..9999"):
        make_dedicated_code("410105001", DedicatedKind.SCHOOL, 10000)
    with pytest.raises(CodeError, match="expected a township"):
        make_dedicated_code("410105", DedicatedKind.SCHOOL, 1)
    with pytest.raises(CodeError, match="reserved"):
        make_code("410105001", 901)  # villages cannot take the dedicated marker


def test_prefix_scopes_still_work(city: City) -> None:
    # A scope compares prefixes: a township and everything above see its dedicated
    # grids, and no village (nor grid) sees them, because villages never start with 9.
    for d in city.dedicated():
        assert Scope("t", jurisdiction=d.parent or "").sees(d.code)
        assert Scope("c", jurisdiction=d.code[:6]).sees(d.code)
        for v in city.children(d.parent or ""):
            assert not Scope("v", jurisdiction=v.code).sees(d.code)
    villages = {u.code for u in city.units_at(Level.VILLAGE)}
    assert not any(d.code[:12] in villages for d in city.dedicated())


# --- the demo set ---------------------------------------------------------------------


def test_demo_set_of_dedicated_grids(city: City) -> None:
    ded = city.dedicated()
    assert len(ded) == len(DEDICATED_SITES) >= 25
    assert {dedicated_kind(d.code) for d in ded} == set(DedicatedKind)
    towns = city.units_at(Level.TOWNSHIP)
    outline = city.root.geometry
    for d in ded:
        assert d.level is Level.DEDICATED and d.generated and "（生成）" in d.name
        assert d.geometry.is_valid and d.geometry.area > 0
        assert outline.covers(d.geometry.buffer(-1e-9))
        # coded below the township that holds most of it
        shares = {t.code: t.geometry.intersection(d.geometry).area for t in towns}
        assert d.parent == max(shares, key=lambda c: (shares[c], -int(c)))
        assert d.code.startswith(d.parent)
        assert 0.001 < area_m2(d.geometry) / 1e6 < 10  # small polygons, in km²
        assert [u.code for u in city.chain(d.code)] == [
            "4101",
            d.code[:6],
            d.code[:9],
            d.code,
        ]
    # no two of one kind overlap
    for a in ded:
        for b in ded:
            if a.code < b.code and a.code[10:12] == b.code[10:12]:
                assert area_m2(a.geometry.intersection(b.geometry)) < 50
    # they are no administrative children: a township's children stay its villages
    host = ded[0].parent or ""
    assert all(c.level is Level.VILLAGE for c in city.children(host))
    assert ded[0] in city.dedicated(within=host)
    assert city.dedicated(within=host[:6]) == [d for d in ded if d.code.startswith(host[:6])]


def test_geojson_returns_dedicated_grids(city: City) -> None:
    feats = city.geojson(level="dedicated")["features"]
    assert len(feats) == len(city.dedicated())
    for f in feats:
        p = f["properties"]
        assert p["level"] == "dedicated" and p["kind"] == dedicated_kind(p["code"]).value
        assert p["generated"] is True and p["parent"] == p["code"][:9]
        assert shape(f["geometry"]).is_valid
    county = feats[0]["properties"]["code"][:6]
    mine = city.geojson(county, level="dedicated")["features"]
    assert {f["id"] for f in mine} == {d.code for d in city.dedicated(within=county)}
    # the ordinary levels stay as they were
    assert {f["properties"]["level"] for f in city.geojson(county)["features"]} == {"township"}


# --- lookup ---------------------------------------------------------------------------


def _straddling(city: City) -> tuple[Unit, Unit, Unit]:
    """A dedicated grid and two adjacent ordinary grids that each hold a real part of it."""
    grids = city.units_at(Level.GRID)
    tree = shapely.STRtree([g.geometry for g in grids])
    for d in city.dedicated():
        hits = [grids[i] for i in sorted(tree.query(d.geometry, predicate="intersects"))]
        big = [g for g in hits if area_m2(g.geometry.intersection(d.geometry)) > 5000]
        for a in big:
            for b in big:
                if a.code < b.code:
                    seam = a.geometry.boundary.intersection(b.geometry.boundary)
                    if seam.intersection(d.geometry).length > 0:
                        return d, a, b
    raise AssertionError("no dedicated grid straddles two grids")


def test_a_point_in_a_straddling_dedicated_grid(loc: Locator, city: City) -> None:
    d, a, b = _straddling(city)
    for g in (a, b):
        pt = g.geometry.intersection(d.geometry).representative_point()
        place = loc.locate(pt.x, pt.y)
        assert place.inside_city and place.grid == g.code
        assert d.code in place.dedicated
        assert place.micro_grid is not None and place.micro_grid.startswith(g.code)
        assert place.county == g.code[:6]  # the ordinary chain is untouched
    # On the seam between the two grids, inside the dedicated grid: one ordinary grid
    # (the smaller code), and still the dedicated grid.
    seam = a.geometry.boundary.intersection(b.geometry.boundary).intersection(d.geometry)
    vertices = [
        (x, y)
        for x, y in shapely.get_coordinates(a.geometry)
        if b.geometry.intersects(shapely.Point(x, y)) and d.geometry.contains(shapely.Point(x, y))
    ]
    x, y = vertices[0] if vertices else shapely.get_coordinates(seam.centroid)[0]
    place = loc.locate(x, y)
    assert place.grid in {a.code, b.code} and d.code in place.dedicated
    if vertices:
        assert place.grid == a.code
    assert loc.locate_many([x], [y])[0] == place


def test_dedicated_lookup_agrees_with_geometry(loc: Locator, city: City) -> None:
    ded = city.dedicated()
    rng = np.random.default_rng(29)
    pts: list[tuple[float, float]] = []
    for d in ded:
        minx, miny, maxx, maxy = d.geometry.bounds
        pts += [tuple(p) for p in rng.uniform((minx, miny), (maxx, maxy), size=(20, 2))]
    xy = np.array(pts)
    many = loc.locate_many(xy[:, 0], xy[:, 1])
    hits = 0
    for (x, y), p in zip(xy, many, strict=True):
        want = sorted(u.code for u in ded if u.geometry.intersects(shapely.Point(x, y)))
        assert p.dedicated == want
        assert loc.locate(x, y) == p
        hits += bool(want)
    assert hits > len(xy) / 2
    far = loc.locate(113.2, 34.4)  # rural 登封/新密, far from every demo site
    assert far.inside_city and far.dedicated == []


# --- staff ----------------------------------------------------------------------------


def test_dedicated_staff(r: redis.Redis, city: City) -> None:
    for d in city.dedicated():
        staff = generated_staff(d.code)
        kind = dedicated_kind(d.code)
        assert [p.role for p in staff].count(Role.GRID_CHIEF) == 1
        assert staff[0].role_name == "专属网格长" and staff[0].grid == d.code
        forces = {p.force for p in staff if p.role is Role.LIAISON}
        assert forces == set(FORCES) | {KIND_FORCES[kind][0]}
        assert all(p.generated and p.phone.startswith("10") and len(p.phone) == 11 for p in staff)
    d = city.dedicated()[0]
    chief = staff_of(d.code, r)[0]
    set_on_duty(r, chief.id, False, by="test")
    assert staff_of(d.code, r)[0].on_duty is False
    town = d.parent or ""
    plain = people_within(town, city)
    withded = people_within(town, city, dedicated=True)
    extra = sum(len(generated_staff(x.code)) for x in city.dedicated(within=town))
    assert len(withded) == len(plain) + extra > len(plain)


# --- import ---------------------------------------------------------------------------


def _site(city: City, inside: Unit, w: float = 0.002, h: float = 0.0015) -> BaseGeometry:
    x, y = inside.geometry.representative_point().coords[0]
    return box(x - w / 2, y - h / 2, x + w / 2, y + h / 2).intersection(inside.geometry)


def test_import_accepts_a_clean_dedicated_grid(store: VersionStore, city: City) -> None:
    # a new construction site in a township with no dedicated grid yet
    busy = {d.parent for d in city.dedicated()}
    town = next(t for t in city.units_at(Level.TOWNSHIP) if t.code not in busy)
    geom = _site(city, town)
    code = make_dedicated_code(town.code, DedicatedKind.CONSTRUCTION_SITE, 1)
    rep = import_geojson(
        fc(feature(code, geom, name="新工地")), valid_from="2025-06-01", store=store
    )
    assert rep.ok and rep.applied and rep.added == [code] and rep.levels == {"dedicated": 1}
    pt = geom.representative_point()
    assert store.locate_at(pt.x, pt.y, 1_760_000_000_000).dedicated == [code]
    assert store.locate_at(pt.x, pt.y, 1_740_000_000_000).dedicated == []
    assert store.latest_city().unit(code).parent == town.code


def test_import_checks_for_dedicated_grids(store: VersionStore, city: City) -> None:
    school = next(d for d in city.dedicated() if dedicated_kind(d.code) is DedicatedKind.SCHOOL)
    town = city.unit(school.parent or "")
    # another school overlapping the first by far more than the tolerance
    overlap = shapely.affinity.translate(school.geometry, xoff=0.0003)
    new_school = make_dedicated_code(town.code, DedicatedKind.SCHOOL, 99)
    rep = import_geojson(fc(feature(new_school, overlap)), valid_from="2025-06-01", store=store)
    assert rep.counts == {"dedicated_overlap": 1}
    (p,) = rep.problems
    assert {p.unit, p.other} == {new_school, school.code} and p.area_m2 and p.area_m2 > 1000
    # the same shape as a hospital overlaps only another kind: allowed
    hospital = make_dedicated_code(town.code, DedicatedKind.HOSPITAL, 99)
    rep = import_geojson(
        fc(feature(hospital, overlap)), valid_from="2025-06-01", store=store, dry_run=True
    )
    assert rep.ok, rep.problems

    # coded below a township that holds none of it
    other_town = next(t for t in city.units_at(Level.TOWNSHIP) if t.code[:6] != town.code[:6])
    wrong = make_dedicated_code(other_town.code, DedicatedKind.MARKET, 1)
    rep = import_geojson(
        fc(feature(wrong, _site(city, town))), valid_from="2025-06-01", store=store
    )
    assert rep.counts == {"parent_mismatch": 1}
    assert rep.problems[0].other == town.code

    # beyond the city's edge
    minx, miny, maxx, maxy = city.bounds
    edge_town = max(city.units_at(Level.TOWNSHIP), key=lambda t: t.geometry.bounds[2])
    ex = edge_town.geometry.bounds[2]
    ey = next(
        y
        for x, y in shapely.get_coordinates(edge_town.geometry)
        if x == edge_town.geometry.bounds[2]
    )
    spill = box(ex - 0.003, ey - 0.001, ex + 0.003, ey + 0.001)
    code = make_dedicated_code(edge_town.code, DedicatedKind.KEY_POINT, 50)
    rep = import_geojson(fc(feature(code, spill)), valid_from="2025-06-01", store=store)
    assert "outside_parent" in rep.counts and "beyond the city" in rep.problems[0].message

    # an unknown township, a bad kind, and a shape that is no polygon
    ghost = town.code[:6] + "999" + "901" + "0001"
    rep = import_geojson(
        fc(feature(ghost, _site(city, town))), valid_from="2025-06-01", store=store
    )
    assert rep.counts == {"unknown_parent": 1}
    rep = import_geojson(
        fc(feature(town.code + "9070001", _site(city, town))), valid_from="2025-06-01", store=store
    )
    assert (
        rep.counts == {"bad_code": 1} and "unknown dedicated-grid kind" in rep.problems[0].message
    )
    rep = import_geojson(
        fc(feature(new_school, shapely.Point(113.6, 34.7))), valid_from="2025-06-01", store=store
    )
    assert rep.counts == {"invalid_geometry": 1}
    assert len(store.versions()) == 1  # none of it was stored


def test_retiring_a_township_orphans_its_dedicated_grids(store: VersionStore, city: City) -> None:
    d = city.dedicated()[0]
    rep = import_geojson(
        fc(feature(d.code, d.geometry, name="x")),
        valid_from="2025-06-01",
        retire=[d.parent or ""],
        store=store,
        dry_run=True,
    )
    orphans = {p.unit for p in rep.problems if p.code == "unknown_parent"}
    assert d.code in orphans
    assert {u.code for u in city.children(d.parent or "")} <= orphans
