"""The city's jurisdictions, built from the real inputs plus generated levels below them.

郑州市 (4101) → 15 county-level units → 208 townships → villages → grids:

* the 12 districts/counties/cities: real DataV boundaries, GCJ-02 converted to WGS84;
* the 3 functional zones (410171/2/3) exist only in the statistical codes, so each is a
  generated disc of about its official area around its real seat, carved out of the
  districts it lies in (which lose that area);
* the 208 townships: real codes and names, generated boundaries partitioning their
  county;
* villages, grids and micro-grids: generated codes, names and boundaries;
* dedicated grids (专属网格): a generated demo set of schools, hospitals, parks,
  markets, construction sites and key points at approximate real locations, small
  polygons that may lie across ordinary grids (see ``DEDICATED_SITES``).

Every partition is a Voronoi diagram of seeded points clipped to the parent, so
children cover their parent without gaps or overlaps, and the same inputs always
give the same city. The result is cached under ``var_dir`` keyed by a build version
and a hash of the inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from core.config import get_settings
from grids.codes import (
    LEVELS,
    CodeError,
    DedicatedKind,
    Level,
    child_level,
    dedicated_kind,
    level_of,
    make_code,
    make_dedicated_code,
)
from grids.coords import geometry_to_wgs84

log = logging.getLogger(__name__)

# Bump when the build changes what it produces, so old caches are not reused.
BUILD_VERSION = "5"
CITY_CODE = "4101"
CITY_NAME = "郑州市"

COUNTIES_CSV = "geo/zhengzhou_areas_modood.csv"
TOWNSHIPS_CSV = "geo/zhengzhou_townships_code12_derived.csv"
BOUNDARIES_JSON = "geo/410100_full_datav.json"
BOUNDARIES_CRS = "gcj02"  # DataV GeoAtlas publishes GCJ-02

# Functional zones: seat (WGS84 lon, lat) and official area in km². Their real
# boundaries are not public, so a disc of that area stands in for them.
# A district a zone's disc barely touches keeps its land: less than this share of the
# disc would only leave slivers.
ZONE_MIN_HOST_SHARE = 0.01
ZONES: dict[str, tuple[float, float, float]] = {
    "410171": (113.800, 34.695, 158.0),  # 经开区, between 管城回族区 and 中牟县
    "410172": (113.555, 34.818, 99.0),  # 高新区, north-west of 中原区
    "410173": (113.840, 34.530, 415.0),  # 航空港区, around the airport in 新郑市
}

VILLAGES_PER_TOWNSHIP = 3
# Urban communities are denser than rural villages, so they get one grid more.
GRIDS_PER_VILLAGE_URBAN = 4
GRIDS_PER_VILLAGE_RURAL = 3
# Every grid has the same number of micro-grids, so each micro-grid chief of the
# roster (grids.people) has a micro-grid of their own.
MICRO_GRIDS_PER_GRID = 3
LLOYD_STEPS = 2
# Two dedicated grids of one kind may share no more than this (m², digitising noise).
DEDICATED_OVERLAP_M2 = 50.0

# The demo dedicated grids: kind, name, approximate WGS84 centre, width and height in
# metres. Locations are near the real places; boundaries are generated rectangles.
DEDICATED_SITES: tuple[tuple[DedicatedKind, str, float, float, float, float], ...] = (
    (DedicatedKind.SCHOOL, "郑州大学主校区", 113.535, 34.817, 1600, 1300),
    (DedicatedKind.SCHOOL, "河南省实验中学", 113.640, 34.745, 350, 300),
    (DedicatedKind.SCHOOL, "郑州外国语学校", 113.612, 34.772, 400, 300),
    (DedicatedKind.SCHOOL, "郑州市第一中学", 113.700, 34.796, 450, 350),
    (DedicatedKind.SCHOOL, "河南农业大学", 113.645, 34.787, 700, 600),
    (DedicatedKind.SCHOOL, "龙子湖高校园区", 113.803, 34.793, 1800, 1400),
    (DedicatedKind.HOSPITAL, "郑州大学第一附属医院", 113.646, 34.752, 450, 400),
    (DedicatedKind.HOSPITAL, "河南省人民医院", 113.670, 34.760, 400, 350),
    (DedicatedKind.HOSPITAL, "郑州市中心医院", 113.622, 34.757, 300, 300),
    (DedicatedKind.HOSPITAL, "河南省肿瘤医院", 113.701, 34.744, 350, 300),
    (DedicatedKind.HOSPITAL, "郑大一附院郑东院区", 113.749, 34.804, 500, 450),
    (DedicatedKind.INDUSTRIAL_PARK, "航空港区智能终端产业园", 113.835, 34.525, 2500, 1800),
    (DedicatedKind.INDUSTRIAL_PARK, "经开区汽车产业园", 113.826, 34.717, 2200, 1600),
    (DedicatedKind.INDUSTRIAL_PARK, "高新区大学科技园", 113.548, 34.803, 1200, 900),
    (DedicatedKind.INDUSTRIAL_PARK, "中牟汽车产业集聚区", 113.980, 34.730, 2400, 1800),
    (DedicatedKind.INDUSTRIAL_PARK, "巩义产业集聚区", 112.985, 34.752, 1800, 1300),
    (DedicatedKind.MARKET, "二七商圈", 113.666, 34.755, 600, 450),
    (DedicatedKind.MARKET, "中原万达广场", 113.615, 34.760, 350, 300),
    (DedicatedKind.MARKET, "正弘城", 113.683, 34.790, 300, 250),
    (DedicatedKind.MARKET, "陈砦花卉市场", 113.693, 34.803, 500, 400),
    (DedicatedKind.MARKET, "万邦国际农产品物流城", 113.855, 34.737, 1500, 1100),
    (DedicatedKind.CONSTRUCTION_SITE, "郑东新区中央商务区工地", 113.731, 34.772, 300, 250),
    (DedicatedKind.CONSTRUCTION_SITE, "航空港区南区工地", 113.860, 34.490, 400, 300),
    (DedicatedKind.CONSTRUCTION_SITE, "惠济区北部工地", 113.617, 34.866, 300, 300),
    (DedicatedKind.CONSTRUCTION_SITE, "管城区南曹工地", 113.760, 34.690, 350, 250),
    (DedicatedKind.CONSTRUCTION_SITE, "新郑龙湖工地", 113.720, 34.600, 300, 250),
    (DedicatedKind.KEY_POINT, "郑州东站", 113.777, 34.760, 900, 500),
    (DedicatedKind.KEY_POINT, "郑州火车站", 113.657, 34.746, 600, 400),
    (DedicatedKind.KEY_POINT, "新郑国际机场", 113.843, 34.535, 3000, 2000),
    (DedicatedKind.KEY_POINT, "花园口黄河大堤", 113.660, 34.905, 1500, 400),
    (DedicatedKind.KEY_POINT, "河南博物院", 113.666, 34.785, 300, 250),
)
SEED_SALT = 20251203

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320


class DatasetError(RuntimeError):
    """The geographic inputs are missing or disagree with each other."""


class UnitNotFound(KeyError):
    """No jurisdiction unit has this code."""


@dataclass(frozen=True, slots=True)
class Unit:
    """One jurisdiction node. ``generated`` marks a boundary (or unit) that is not official."""

    code: str
    name: str
    level: Level
    parent: str | None
    geometry: BaseGeometry  # WGS84 lon/lat
    generated: bool
    source: str

    @property
    def center(self) -> tuple[float, float]:
        """A point surely inside the unit (for labels and markers), as (lon, lat)."""
        p = self.geometry.representative_point()
        return (p.x, p.y)


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the areal parts (a clip can leave stray lines or points)."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _rng(code: str) -> np.random.Generator:
    return np.random.default_rng([SEED_SALT, int(code)])


def _sample_inside(parent: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    minx, miny, maxx, maxy = parent.bounds
    found: list[np.ndarray] = []
    total = 0
    for _ in range(1000):
        pts = rng.uniform((minx, miny), (maxx, maxy), size=(max(4 * n, 16), 2))
        pts = pts[shapely.contains_xy(parent, pts[:, 0], pts[:, 1])]
        found.append(pts)
        total += len(pts)
        if total >= n:
            return np.concatenate(found)[:n]
    raise DatasetError(f"could not place {n} seed points inside a parent of area {parent.area}")


def _voronoi_cells(parent: BaseGeometry, pts: np.ndarray) -> list[BaseGeometry]:
    diagram = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=parent, ordered=True)
    polys = shapely.get_parts(diagram)
    if len(polys) != len(pts):
        raise DatasetError(f"Voronoi gave {len(polys)} cells for {len(pts)} seeds")
    return [_polygonal(c) for c in shapely.intersection(polys, parent)]


def partition(parent: BaseGeometry, n: int, rng: np.random.Generator) -> list[BaseGeometry]:
    """Split ``parent`` into ``n`` cells that cover it without gaps or overlaps.

    Seeds are relaxed a few Lloyd steps so cells come out compact, like real
    administrative areas, rather than slivers.
    """
    if n < 1:
        raise DatasetError("a partition needs at least one cell")
    if n == 1:
        return [parent]
    pts = _sample_inside(parent, n, rng)
    for _ in range(LLOYD_STEPS):
        cells = _voronoi_cells(parent, pts)
        nxt = np.array([[c.centroid.x, c.centroid.y] for c in cells])
        # A concave cell's centroid can fall outside the parent; its seed would then
        # own no area, so use a point surely inside the cell instead.
        outside = ~shapely.contains_xy(parent, nxt[:, 0], nxt[:, 1])
        for i in np.flatnonzero(outside):
            p = cells[i].representative_point()
            nxt[i] = (p.x, p.y)
        pts = nxt
    cells = _voronoi_cells(parent, pts)
    # Number cells north-west to south-east, as a reader scans a map.
    order = sorted(range(n), key=lambda i: (-round(pts[i, 1], 3), pts[i, 0]))
    return [cells[i] for i in order]


def _disc(lon: float, lat: float, area_km2: float, segments: int = 96) -> Polygon:
    r = float(np.sqrt(area_km2 / np.pi))
    t = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    dx = r / (KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(lat)))
    dy = r / KM_PER_DEG_LAT
    return Polygon(np.column_stack([lon + dx * np.cos(t), lat + dy * np.sin(t)]))


def _input_paths(source_dir: Path) -> list[Path]:
    return [source_dir / p for p in (COUNTIES_CSV, TOWNSHIPS_CSV, BOUNDARIES_JSON)]


def input_key(source_dir: Path | None = None) -> str:
    """Hash of the build version, its parameters and the input files."""
    source_dir = source_dir or get_settings().source_dir
    h = hashlib.sha256()
    params = [
        BUILD_VERSION,
        ZONES,
        ZONE_MIN_HOST_SHARE,
        VILLAGES_PER_TOWNSHIP,
        MICRO_GRIDS_PER_GRID,
        [(k.value, n, x, y, w, h) for k, n, x, y, w, h in DEDICATED_SITES],
        GRIDS_PER_VILLAGE_URBAN,
        GRIDS_PER_VILLAGE_RURAL,
        LLOYD_STEPS,
        SEED_SALT,
        shapely.geos_version_string,
    ]
    h.update(json.dumps(params, sort_keys=True).encode())
    for path in _input_paths(source_dir):
        try:
            h.update(path.read_bytes())
        except OSError as exc:
            raise DatasetError(f"geographic input missing: {path.name} ({exc})") from exc
    return h.hexdigest()[:16]


def _read_inputs(
    source_dir: Path,
) -> tuple[dict[str, str], dict[str, tuple[str, str]], dict[str, BaseGeometry]]:
    import pandas as pd  # only needed when building, not when loading the cache

    counties_df = pd.read_csv(source_dir / COUNTIES_CSV, dtype=str)
    towns_df = pd.read_csv(source_dir / TOWNSHIPS_CSV, dtype=str)
    for col in ("code", "name", "cityCode"):
        if col not in counties_df.columns:
            raise DatasetError(f"{COUNTIES_CSV} lacks column {col!r}")
    for col in ("code9", "name", "county_code"):
        if col not in towns_df.columns:
            raise DatasetError(f"{TOWNSHIPS_CSV} lacks column {col!r}")
    counties = {
        str(r.code): str(r.name).strip()
        for r in counties_df.itertuples()
        if str(r.cityCode) == CITY_CODE
    }
    towns: dict[str, tuple[str, str]] = {}
    for r in towns_df.itertuples():
        code, county = str(r.code9), str(r.county_code)
        try:
            level_of(code)
        except CodeError as exc:
            raise DatasetError(f"{TOWNSHIPS_CSV}: {exc}") from exc
        if not code.startswith(county) or county not in counties:
            raise DatasetError(f"{TOWNSHIPS_CSV}: township {code} has unknown county {county}")
        towns[code] = (str(r.name).strip(), county)

    with open(source_dir / BOUNDARIES_JSON, encoding="utf-8") as fh:
        fc = json.load(fh)
    shapes: dict[str, BaseGeometry] = {}
    for feat in fc.get("features", []):
        code = str(feat["properties"]["adcode"])
        if code not in counties:
            raise DatasetError(f"{BOUNDARIES_JSON}: boundary {code} is not a county of {CITY_CODE}")
        geom = shape(feat["geometry"])
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        shapes[code] = _polygonal(geometry_to_wgs84(geom, BOUNDARIES_CRS))
    missing = set(counties) - set(shapes) - set(ZONES)
    if missing:
        raise DatasetError(f"no boundary for counties {sorted(missing)}")
    return counties, towns, shapes


def build_units(source_dir: Path | None = None) -> list[Unit]:
    """Build every unit from the inputs (no cache)."""
    source_dir = source_dir or get_settings().source_dir
    counties, towns, shapes = _read_inputs(source_dir)
    src_boundary = "DataV GeoAtlas 410100 boundary (GCJ-02 → WGS84)"
    city_geom = shapely.coverage_union_all(list(shapes.values()))

    # Functional zones take their area from the districts they lie in.
    zone_geoms: dict[str, BaseGeometry] = {}
    hosts: dict[str, list[str]] = {}
    taken: BaseGeometry = Polygon()
    for code, (lon, lat, km2) in ZONES.items():
        if code not in counties:
            continue
        disc = _disc(lon, lat, km2)
        hosts[code] = [
            c
            for c, g in shapes.items()
            if g.intersection(disc).area >= ZONE_MIN_HOST_SHARE * disc.area
        ]
        land = shapely.union_all([shapes[c] for c in hosts[code]])
        zone = _polygonal(disc.intersection(land).difference(taken))
        zone_geoms[code] = zone
        taken = taken.union(zone)
    county_geoms: dict[str, BaseGeometry] = {}
    for code, geom in shapes.items():
        mine = [zone_geoms[z] for z, hs in hosts.items() if code in hs]
        # Districts no zone touches keep the published outline untouched.
        county_geoms[code] = _polygonal(geom.difference(shapely.union_all(mine))) if mine else geom
    county_geoms.update(zone_geoms)

    units: list[Unit] = [
        Unit(CITY_CODE, CITY_NAME, Level.CITY, None, city_geom, False, src_boundary)
    ]
    for code in sorted(counties):
        if code in zone_geoms:
            names = "、".join(counties[h] for h in hosts[code])
            src = f"generated: disc of about {ZONES[code][2]:g} km² around its seat, carved from {names}"
            units.append(
                Unit(code, counties[code], Level.COUNTY, CITY_CODE, zone_geoms[code], True, src)
            )
        else:
            carved = [counties[z] for z, hs in hosts.items() if code in hs]
            src = src_boundary + (f", less {'、'.join(carved)}" if carved else "")
            units.append(
                Unit(code, counties[code], Level.COUNTY, CITY_CODE, county_geoms[code], False, src)
            )

    for county in sorted(counties):
        codes = sorted(c for c, (_, cty) in towns.items() if cty == county)
        if not codes:
            continue
        cells = partition(county_geoms[county], len(codes), _rng(county))
        for code, cell in zip(codes, cells, strict=True):
            units.append(
                Unit(
                    code,
                    towns[code][0],
                    Level.TOWNSHIP,
                    county,
                    cell,
                    True,
                    "code and name: statistical division codes 2023; boundary generated",
                )
            )
            units.extend(_villages_and_grids(code, towns[code][0], cell))
    units.extend(dedicated_units([u for u in units if u.level is Level.TOWNSHIP], city_geom))
    units.sort(key=lambda u: (u.level.depth, u.code))
    return units


def micro_grids(grid: Unit) -> list[Unit]:
    """The generated micro-grids of ``grid``: a partition of it, the same every time."""
    base = grid.name.removesuffix("（生成）")
    return [
        Unit(
            make_code(grid.code, k),
            f"{base}第{k}微网格（生成）",
            Level.MICRO_GRID,
            grid.code,
            cell,
            True,
            "generated",
        )
        for k, cell in enumerate(
            partition(grid.geometry, MICRO_GRIDS_PER_GRID, _rng(grid.code)), start=1
        )
    ]


def _rectangle(lon: float, lat: float, w_m: float, h_m: float) -> Polygon:
    dx = w_m / 2000 / (KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(lat)))
    dy = h_m / 2000 / KM_PER_DEG_LAT
    return Polygon(
        [(lon - dx, lat - dy), (lon + dx, lat - dy), (lon + dx, lat + dy), (lon - dx, lat + dy)]
    )


def host_township(geom: BaseGeometry, townships: list[Unit]) -> Unit | None:
    """The township holding the largest share of ``geom`` (ties: smaller code)."""
    best: tuple[float, str] | None = None
    host = None
    for t in townships:
        share = t.geometry.intersection(geom).area
        if share > 0 and (best is None or (-share, t.code) < best):
            best, host = (-share, t.code), t
    return host


def dedicated_units(townships: list[Unit], city_geom: BaseGeometry) -> list[Unit]:
    """The generated dedicated grids of ``DEDICATED_SITES``, coded by their host township."""
    tree = shapely.STRtree([t.geometry for t in townships])
    seq: dict[tuple[str, DedicatedKind], int] = {}
    out: list[Unit] = []
    for kind, name, lon, lat, w, h in DEDICATED_SITES:
        geom = _polygonal(_rectangle(lon, lat, w, h).intersection(city_geom))
        if geom.is_empty:
            raise DatasetError(f"dedicated site {name} lies outside the city")
        near = [townships[i] for i in tree.query(geom, predicate="intersects")]
        host = host_township(geom, near)
        if host is None:
            raise DatasetError(f"dedicated site {name} lies in no township")
        n = seq[(host.code, kind)] = seq.get((host.code, kind), 0) + 1
        code = make_dedicated_code(host.code, kind, n)
        for other in out:
            if other.code[10:12] == code[10:12]:
                shared = other.geometry.intersection(geom)
                km2 = (
                    shared.area * KM_PER_DEG_LAT * KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(lat))
                )
                if km2 * 1e6 > DEDICATED_OVERLAP_M2:
                    raise DatasetError(f"dedicated sites {other.name} and {name} overlap")
        out.append(
            Unit(
                code,
                f"{name}专属网格（生成）",
                Level.DEDICATED,
                host.code,
                geom,
                True,
                f"generated: {kind.name_zh}, rectangle of about {w:g}×{h:g} m near the real site",
            )
        )
    return out


def _villages_and_grids(town: str, town_name: str, geom: BaseGeometry) -> list[Unit]:
    urban = town_name.endswith("街道")
    word = "社区" if urban else "村"
    per_village = GRIDS_PER_VILLAGE_URBAN if urban else GRIDS_PER_VILLAGE_RURAL
    out: list[Unit] = []
    for i, vcell in enumerate(partition(geom, VILLAGES_PER_TOWNSHIP, _rng(town)), start=1):
        vcode = make_code(town, i)
        vbase = f"{town_name}第{i}{word}"
        out.append(Unit(vcode, f"{vbase}（生成）", Level.VILLAGE, town, vcell, True, "generated"))
        for j, gcell in enumerate(partition(vcell, per_village, _rng(vcode)), start=1):
            gcode = make_code(vcode, j)
            grid = Unit(
                gcode, f"{vbase}第{j}网格（生成）", Level.GRID, vcode, gcell, True, "generated"
            )
            out.append(grid)
            out.extend(micro_grids(grid))
    return out


def follow_micro_grids(
    before: dict[str, Unit],
    after: dict[str, Unit],
    set_codes: set[str],
    retired: list[str],
) -> list[str]:
    """Keep generated micro-grids in step with a boundary change, in place in ``after``.

    A grid whose boundary changed (or that was retired) while none of its micro-grids
    was set by the same change gets its generated micro-grids re-cut from the new
    boundary (or dropped). Official micro-grids are never touched: the import checks
    report them instead. Returns the codes re-cut or dropped.
    """
    micro_of: dict[str, list[str]] = {}
    for code, u in after.items():
        if u.level is Level.MICRO_GRID and u.parent is not None:
            micro_of.setdefault(u.parent, []).append(code)
    out: list[str] = []
    for grid_code in sorted(set_codes | set(retired)):
        kids = micro_of.get(grid_code, [])
        old = before.get(grid_code)
        if not kids or any(k in set_codes for k in kids):
            continue
        if not all(after[k].generated for k in kids if k in after):
            continue
        new = after.get(grid_code)
        if new is None or grid_code in retired:
            for k in kids:
                after.pop(k, None)
            out.extend(kids)
            continue
        if new.level is not Level.GRID or (old is not None and old.geometry.equals(new.geometry)):
            continue
        for k in kids:
            after.pop(k, None)
        for m in micro_grids(new):
            after[m.code] = m
            out.append(m.code)
    return sorted(set(out))


@dataclass
class City:
    """All units, indexed by code and by parent."""

    units: list[Unit]
    key: str = ""
    _by_code: dict[str, Unit] = field(init=False, repr=False)
    _children: dict[str, list[Unit]] = field(init=False, repr=False)
    _dedicated: dict[str, list[Unit]] = field(init=False, repr=False)
    _simplified: dict[tuple[Level, float], dict[str, BaseGeometry]] = field(
        init=False, repr=False, default_factory=dict
    )
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.units = sorted(self.units, key=lambda u: (u.level.depth, u.code))
        self._by_code = {u.code: u for u in self.units}
        if len(self._by_code) != len(self.units):
            raise DatasetError("duplicate unit codes")
        self._children = {}
        self._dedicated: dict[str, list[Unit]] = {}
        for u in self.units:
            if u.parent is None:
                continue
            if u.level is Level.DEDICATED:
                self._dedicated.setdefault(u.parent, []).append(u)
            else:
                self._children.setdefault(u.parent, []).append(u)

    @property
    def code(self) -> str:
        return CITY_CODE

    @property
    def root(self) -> Unit:
        return self._by_code[CITY_CODE]

    def __len__(self) -> int:
        return len(self.units)

    def __iter__(self) -> Iterator[Unit]:
        return iter(self.units)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._by_code

    def unit(self, code: str) -> Unit:
        """The unit with this code; a malformed code raises CodeError, an unknown one UnitNotFound."""
        level_of(code)
        try:
            return self._by_code[code]
        except KeyError:
            raise UnitNotFound(f"no jurisdiction unit has code {code!r}") from None

    def get(self, code: str) -> Unit | None:
        return self._by_code.get(code)

    def children(self, code: str) -> list[Unit]:
        """Direct children the map drills to, by code: a grid has none (its micro-grids
        are ``micro_grids``), and dedicated grids are no one's children (``dedicated``)."""
        if self.unit(code).level is Level.GRID:
            return []
        return list(self._children.get(code, []))

    def micro_grids(self, grid: str) -> list[Unit]:
        """The micro-grids of ``grid``, by code."""
        self.unit(grid)
        return [u for u in self._children.get(grid, []) if u.level is Level.MICRO_GRID]

    def dedicated(self, within: str | None = None) -> list[Unit]:
        """The dedicated grids coded below ``within`` (a township or above), by code."""
        return self.units_at(Level.DEDICATED, within=within)

    def chain(self, code: str) -> list[Unit]:
        """The unit and its ancestors, city first (for breadcrumbs)."""
        out = [self.unit(code)]
        while out[0].parent is not None:
            out.insert(0, self._by_code[out[0].parent])
        return out

    def units_at(self, level: Level | str, within: str | None = None) -> list[Unit]:
        """All units at ``level`` (optionally below the unit ``within``), by code."""
        lv = Level(level)
        if within is not None:
            self.unit(within)
        return [
            u for u in self.units if u.level is lv and (within is None or u.code.startswith(within))
        ]

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of the city, WGS84."""
        minx, miny, maxx, maxy = self.root.geometry.bounds
        return (minx, miny, maxx, maxy)

    def _simplified_at(self, level: Level, tolerance: float) -> dict[str, BaseGeometry]:
        with self._lock:
            cached = self._simplified.get((level, tolerance))
            if cached is None:
                units = self.units_at(level)
                geoms = np.array([u.geometry for u in units])
                if tolerance > 0 and level is Level.DEDICATED:
                    # Dedicated grids overlap by design: they are no coverage.
                    geoms = shapely.simplify(geoms, tolerance, preserve_topology=True)
                elif tolerance > 0:
                    # Simplifying the whole level as one coverage keeps shared edges
                    # shared, so the map shows no slivers between neighbours.
                    geoms = shapely.coverage_simplify(geoms, tolerance)
                cached = {u.code: g for u, g in zip(units, geoms, strict=True)}
                self._simplified[(level, tolerance)] = cached
            return cached

    def geojson(
        self,
        parent_code: str | None = None,
        level: Level | str | None = None,
        tolerance: float = 0.0005,
    ) -> dict[str, Any]:
        """A GeoJSON FeatureCollection (WGS84) of the units at ``level`` below ``parent_code``.

        With no level, the parent's children (counties for the whole city); level
        ``dedicated`` gives the dedicated grids coded below the parent. ``tolerance``
        is the simplification in degrees (0.001° is about 100 m); 0 keeps every vertex.
        """
        parent = self.unit(parent_code or CITY_CODE)
        if level is None:
            lv = Level.MICRO_GRID if parent.level is Level.GRID else child_level(parent.level)
            if lv is None:
                raise CodeError(f"{parent.code} has no level below it")
        else:
            try:
                lv = Level(level)
            except ValueError as exc:
                raise CodeError(f"unknown level {level!r}") from exc
        if lv.depth < parent.level.depth:
            raise CodeError(f"level {lv.value} is above {parent.code} ({parent.level.value})")
        if not np.isfinite(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance must be a finite number >= 0, not {tolerance!r}")
        geoms = self._simplified_at(lv, float(tolerance))
        features = []
        for u in self.units_at(lv, within=parent.code):
            features.append(
                {
                    "type": "Feature",
                    "id": u.code,
                    "geometry": mapping(geoms[u.code]),
                    "properties": {
                        "code": u.code,
                        "name": u.name,
                        "level": u.level.value,
                        "generated": u.generated,
                        "parent": u.parent,
                        **({"kind": dedicated_kind(u.code).value} if lv is Level.DEDICATED else {}),
                    },
                }
            )
        return {"type": "FeatureCollection", "features": features}


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"city-{key}.pkl"


def _dump(units: list[Unit], path: Path) -> None:
    rows = [(u.code, u.name, u.level.value, u.parent, u.generated, u.source) for u in units]
    wkb = shapely.to_wkb(np.array([u.geometry for u in units]))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".city-", suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        pickle.dump({"version": BUILD_VERSION, "rows": rows, "wkb": list(wkb)}, fh)
    os.replace(tmp, path)  # atomic: several processes may start at once


def _load(path: Path) -> list[Unit]:
    with open(path, "rb") as fh:
        data = pickle.load(fh)  # noqa: S301 - our own cache file under var_dir
    if data.get("version") != BUILD_VERSION:
        raise DatasetError("cache from another build version")
    geoms = shapely.from_wkb(np.array(data["wkb"], dtype=object))
    return [
        Unit(code, name, Level(level), parent, geom, generated, source)
        for (code, name, level, parent, generated, source), geom in zip(
            data["rows"], geoms, strict=True
        )
    ]


def build_city(
    source_dir: Path | None = None, cache_dir: Path | None = None, use_cache: bool = True
) -> City:
    """Load the city from the cache if it matches the inputs, else build and cache it."""
    settings = get_settings()
    source_dir = source_dir or settings.source_dir
    cache_dir = cache_dir or settings.var_dir / "grids"
    key = input_key(source_dir)
    path = _cache_path(cache_dir, key)
    if use_cache and path.exists():
        try:
            return City(_load(path), key=key)
        except Exception as exc:  # a torn or foreign file: rebuild rather than fail
            log.warning("grid cache %s unusable (%s); rebuilding", path.name, exc)
    units = build_units(source_dir)
    if use_cache:
        try:
            _dump(units, path)
        except OSError as exc:
            log.warning("cannot write grid cache %s: %s", path, exc)
    return City(units, key=key)


_city: City | None = None
_city_lock = threading.Lock()


def load_city() -> City:
    """The city, built once per process (from the cache when it is current)."""
    global _city
    if _city is None:
        with _city_lock:
            if _city is None:
                _city = build_city()
    return _city


def reset_city() -> None:
    """Forget the loaded city (tests)."""
    global _city
    with _city_lock:
        _city = None


__all__ = [
    "LEVELS",
    "City",
    "DatasetError",
    "Unit",
    "UnitNotFound",
    "build_city",
    "build_units",
    "dedicated_units",
    "follow_micro_grids",
    "host_township",
    "load_city",
    "micro_grids",
    "partition",
    "reset_city",
]
