"""Import grid boundaries from GeoJSON, check them, and store them as a new version.

Each feature is one unit: ``properties.code`` (required), ``name``, and optionally
``level`` and ``parent``, which must agree with the code. Coordinates are converted to
WGS84 from the ``crs`` option (wgs84, gcj02, cgcs2000). Only GeoJSON is read: no
maintained Shapefile reader is among the product's dependencies, and GIS tools export
GeoJSON directly.

Micro-grids (17 digits) go through the same family checks as every level. A grid
whose boundary changes while none of its micro-grids is imported has its GENERATED
micro-grids re-cut from the new boundary (listed in ``derived``); official ones stay
and are checked like any child.

Dedicated grids (16 digits, see ``grids.codes``) may lie across ordinary grids and
townships, so they skip the family checks; instead: they must lie inside the city
(``outside_parent``), the township in their code must be the one holding most of them
(``parent_mismatch``), and two of one kind may not overlap above the sibling tolerance
(``dedicated_overlap``).

The checks run against the boundaries as they would be after the import (the latest
version with the imported units replacing theirs) and report every problem found,
each with a code, the unit and a message. Any problem means nothing is stored.

Areas are in m² on a local equirectangular scale at each geometry's latitude, which
is within a fraction of a percent over a city.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import shapely
from pydantic import BaseModel, Field
from shapely import STRtree
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from grids.codes import CITY_LEVEL_CODE, CodeError, Level, level_of, parent_of
from grids.coords import CRSError, check_crs, geometry_to_wgs84
from grids.dataset import Unit, follow_micro_grids, host_township
from grids.versions import VersionError, VersionStore, default_store, parse_date

PROBLEM_CODES: tuple[str, ...] = (
    "outside_parent",
    "sibling_overlap",
    "coverage_gap",
    "invalid_geometry",
    "duplicate_code",
    "bad_code",
    "unknown_parent",
    "parent_mismatch",
    "dedicated_overlap",
)


class GridImportError(ValueError):
    """Input that is not a GeoJSON FeatureCollection at all, or an unknown option."""


@dataclass(frozen=True)
class Tolerances:
    """Areas (m²) below which a mismatch is taken as digitising noise, not a problem."""

    outside_parent_m2: float = 50.0
    sibling_overlap_m2: float = 50.0
    coverage_gap_m2: float = 50.0

    def __post_init__(self) -> None:
        for name in ("outside_parent_m2", "sibling_overlap_m2", "coverage_gap_m2"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v < 0
            ):
                raise GridImportError(f"tolerance {name} must be a finite number >= 0, not {v!r}")


class Problem(BaseModel):
    code: str  # one of PROBLEM_CODES
    unit: str  # the unit's code ("" when the feature has none)
    message: str
    feature: int | None = None  # index in the input's features
    other: str | None = None  # the second unit, for overlaps
    area_m2: float | None = None


class ImportReport(BaseModel):
    ok: bool
    dry_run: bool
    applied: bool
    crs: str
    valid_from: date
    source: str = ""
    features: int = 0
    levels: dict[str, int] = Field(default_factory=dict)
    added: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    retired: list[str] = Field(default_factory=list)
    # Generated micro-grids re-cut or dropped to follow their grid's change.
    derived: list[str] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)  # problems per code
    checked_against: int = 0  # the version the checks ran on
    version: int | None = None  # the version created, when applied


def _m_per_deg(lat: float) -> tuple[float, float]:
    phi = math.radians(lat)
    per_lat = 111132.954 - 559.822 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
    per_lon = 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)
    return per_lon, per_lat


def area_m2(geom: BaseGeometry, lat: float | None = None) -> float:
    """Area of a WGS84 geometry in m² (local scale at ``lat`` or its centroid)."""
    if geom.is_empty:
        return 0.0
    if lat is None:
        lat = geom.centroid.y
    kx, ky = _m_per_deg(lat)
    return float(geom.area * kx * ky)


def _read(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), "geojson"
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text, name = source, "geojson"
    else:
        path = Path(source)
        if path.suffix.lower() in (".shp", ".shx", ".dbf", ".zip"):
            raise GridImportError(
                f"{path.name}: Shapefiles are not read; export the layer as GeoJSON"
            )
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise GridImportError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise GridImportError(
                f"{path.name} is not UTF-8 (byte {exc.start}); GeoJSON must be UTF-8"
            ) from exc
        name = path.name
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GridImportError(
            f"{name} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(data, dict):
        raise GridImportError(f"{name} must hold a GeoJSON object, not {type(data).__name__}")
    return data, name


def _features(data: dict[str, Any], name: str) -> list[Any]:
    kind = data.get("type")
    if kind == "Feature":
        return [data]
    if kind != "FeatureCollection":
        raise GridImportError(f"{name} is not a GeoJSON FeatureCollection (type is {kind!r})")
    feats = data.get("features")
    if not isinstance(feats, list):
        raise GridImportError(f"{name}: 'features' must be a list")
    if not feats:
        raise GridImportError(f"{name} holds no features")
    return feats


@dataclass
class _Parsed:
    index: int
    code: str
    name: str
    props: dict[str, Any]
    geometry: BaseGeometry


def _parse_feature(i: int, feat: Any, crs: str, problems: list[Problem]) -> _Parsed | None:
    def bad(code: str, unit: str, msg: str) -> None:
        problems.append(Problem(code=code, unit=unit, message=msg, feature=i))

    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        bad("invalid_geometry", "", f"feature {i} is not a GeoJSON Feature")
        return None
    props = feat.get("properties") or {}
    if not isinstance(props, dict):
        bad("bad_code", "", f"feature {i}: properties must be an object")
        return None
    raw_code = props.get("code")
    code = (
        str(raw_code).strip()
        if isinstance(raw_code, str | int) and not isinstance(raw_code, bool)
        else ""
    )
    ok = True
    if not code:
        bad("bad_code", "", f"feature {i} has no properties.code")
        ok = False
    else:
        try:
            lv = level_of(code)
            declared = props.get("level")
            if declared is not None and declared != lv.value:
                raise CodeError(
                    f"code {code!r} is a {lv.value} code ({len(code)} digits) but level says {declared!r}"
                )
            parent = props.get("parent")
            if parent is not None and str(parent) != (parent_of(code) or ""):
                raise CodeError(
                    f"code {code!r} does not start with its parent {str(parent)!r}"
                    if not code.startswith(str(parent))
                    else f"code {code!r} lies below {parent_of(code)!r}, not directly below {parent!r}"
                )
        except CodeError as exc:
            bad("bad_code", code, str(exc))
            ok = False
    geom_json = feat.get("geometry")
    if not isinstance(geom_json, dict):
        bad("invalid_geometry", code, f"feature {i} ({code or 'no code'}) has no geometry")
        return None
    try:
        geom = shape(geom_json)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        bad("invalid_geometry", code, f"geometry of {code or f'feature {i}'} is malformed: {exc}")
        return None
    if not isinstance(geom, Polygon | MultiPolygon) or geom.is_empty:
        bad(
            "invalid_geometry",
            code,
            f"geometry of {code or f'feature {i}'} is {geom.geom_type}, expected a non-empty (Multi)Polygon",
        )
        return None
    if not geom.is_valid:
        bad(
            "invalid_geometry",
            code,
            f"geometry of {code or f'feature {i}'}: {explain_validity(geom)}",
        )
        return None
    try:
        geom = geometry_to_wgs84(geom, crs)
    except CRSError as exc:
        bad("invalid_geometry", code, f"geometry of {code}: {exc}")
        return None
    minx, miny, maxx, maxy = geom.bounds
    if not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
        bad(
            "invalid_geometry",
            code,
            f"geometry of {code or f'feature {i}'} is outside lon/lat range (were x and y swapped?)",
        )
        return None
    if not geom.is_valid:  # the datum shift can fold a ring thinner than its step
        bad(
            "invalid_geometry",
            code,
            f"geometry of {code} after {crs} → WGS84: {explain_validity(geom)}",
        )
        return None
    if not ok:
        return None
    name = props.get("name")
    return _Parsed(i, code, str(name).strip() if name else "", props, geom)


def check_import(
    source: str | Path | Mapping[str, Any],
    crs: str = "wgs84",
    *,
    valid_from: date | str | None = None,
    retire: list[str] | None = None,
    tolerances: Tolerances | None = None,
    store: VersionStore | None = None,
) -> tuple[ImportReport, list[Unit]]:
    """Run every check; return the report and the units an apply would store."""
    tol = tolerances or Tolerances()
    try:
        crs_name = check_crs(crs)
    except CRSError as exc:
        raise GridImportError(str(exc)) from exc
    try:
        day = parse_date(valid_from)
    except VersionError as exc:
        raise GridImportError(str(exc)) from exc
    store = store or default_store()
    data, name = _read(source)
    feats = _features(data, name)
    problems: list[Problem] = []

    parsed: list[_Parsed] = []
    for i, feat in enumerate(feats):
        p = _parse_feature(i, feat, crs_name, problems)
        if p is not None:
            parsed.append(p)

    # Every feature's code counts for duplicates, even one whose geometry failed.
    seen: dict[str, int] = {}
    for i, feat in enumerate(feats):
        props = feat.get("properties") if isinstance(feat, dict) else None
        code = props.get("code") if isinstance(props, dict) else None
        if not isinstance(code, str | int) or isinstance(code, bool):
            continue
        code = str(code).strip()
        if code in seen:
            problems.append(
                Problem(
                    code="duplicate_code",
                    unit=code,
                    message=f"code {code} appears in features {seen[code]} and {i}",
                    feature=i,
                )
            )
        else:
            seen[code] = i
    first: dict[str, _Parsed] = {}
    for p in parsed:
        first.setdefault(p.code, p)
    parsed = list(first.values())

    latest_info = store.latest()
    if day < latest_info.valid_from:
        raise GridImportError(
            f"valid_from {day.isoformat()} is before the latest boundary version "
            f"{latest_info.version} ({latest_info.valid_from.isoformat()}): versions start in order"
        )
    before = store.latest_city()
    retired: list[str] = []
    for code in sorted({str(c) for c in retire or []}):
        try:
            level_of(code)
        except CodeError as exc:
            problems.append(Problem(code="bad_code", unit=code, message=f"retire: {exc}"))
            continue
        if code not in before:
            problems.append(
                Problem(code="bad_code", unit=code, message=f"retire: no unit {code} exists")
            )
            continue
        retired.append(code)
        if code in first:
            problems.append(
                Problem(
                    code="duplicate_code", unit=code, message=f"{code} is both imported and retired"
                )
            )

    # The state after the import: the latest boundaries, imported units replacing theirs.
    after: dict[str, Unit] = {u.code: u for u in before.units if u.code not in retired}
    imported: dict[str, Unit] = {}
    added, changed, unchanged = [], [], []
    for p in parsed:
        old = before.get(p.code)
        unit = Unit(
            code=p.code,
            name=p.name or (old.name if old else p.code),
            level=level_of(p.code),
            parent=parent_of(p.code),
            geometry=p.geometry,
            generated=bool(p.props.get("generated", False)),
            source=str(p.props.get("source") or f"import {name}"),
        )
        if old is None:
            added.append(p.code)
        elif old.name == unit.name and old.geometry.equals(unit.geometry):
            unchanged.append(p.code)
            continue
        else:
            changed.append(p.code)
        imported[p.code] = unit
        after[p.code] = unit

    before_by_code = {u.code: u for u in before.units}
    derived = follow_micro_grids(before_by_code, after, set(imported), retired)

    children: dict[str, list[Unit]] = {}
    dedicated_of: dict[str, list[Unit]] = {}
    for u in after.values():
        if u.parent is not None:
            into = dedicated_of if u.level is Level.DEDICATED else children
            into.setdefault(u.parent, []).append(u)

    for code, u in imported.items():
        if u.parent is not None and u.parent not in after:
            why = (
                "is retired by this import"
                if u.parent in retired
                else "exists neither in the boundaries nor in the import"
            )
            problems.append(
                Problem(
                    code="unknown_parent", unit=code, message=f"parent {u.parent} of {code} {why}"
                )
            )
    for code in retired:
        for c in children.get(code, []) + dedicated_of.get(code, []):
            if c.code in imported:
                continue  # reported above
            problems.append(
                Problem(
                    code="unknown_parent",
                    unit=c.code,
                    message=f"{c.code} would be left without its parent {code}, which is retired",
                )
            )

    # Parents whose own boundary or any child's changed: their families are re-checked.
    admin = {c: u for c, u in imported.items() if u.level is not Level.DEDICATED}
    touched = set(admin) | {u.parent for u in admin.values() if u.parent}
    touched |= {p for p in map(parent_of, retired) if p}
    for pcode in sorted(touched):
        parent = after.get(pcode)
        kids = sorted(children.get(pcode, []), key=lambda u: u.code)
        if parent is None or not kids:
            continue
        lat = parent.geometry.centroid.y
        for kid in kids:
            if pcode not in imported and kid.code not in imported:
                continue
            out = area_m2(kid.geometry.difference(parent.geometry), lat)
            if out > tol.outside_parent_m2:
                problems.append(
                    Problem(
                        code="outside_parent",
                        unit=kid.code,
                        message=f"{kid.code} extends {out:,.0f} m² beyond its parent {pcode} "
                        f"(tolerance {tol.outside_parent_m2:g} m²)",
                        area_m2=round(out, 1),
                    )
                )
        geoms = [k.geometry for k in kids]
        tree = STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            if a >= b:
                continue
            ka, kb = kids[a], kids[b]
            if ka.code not in imported and kb.code not in imported:
                continue
            ov = area_m2(ka.geometry.intersection(kb.geometry), lat)
            if ov > tol.sibling_overlap_m2:
                problems.append(
                    Problem(
                        code="sibling_overlap",
                        unit=ka.code,
                        other=kb.code,
                        message=f"{ka.code} and {kb.code} overlap by {ov:,.0f} m² "
                        f"(tolerance {tol.sibling_overlap_m2:g} m²)",
                        area_m2=round(ov, 1),
                    )
                )
        gap = area_m2(parent.geometry.difference(shapely.union_all(geoms)), lat)
        if gap > tol.coverage_gap_m2:
            problems.append(
                Problem(
                    code="coverage_gap",
                    unit=pcode,
                    message=f"{gap:,.0f} m² of {pcode} is covered by none of its {len(kids)} "
                    f"children (tolerance {tol.coverage_gap_m2:g} m²)",
                    area_m2=round(gap, 1),
                )
            )

    _check_dedicated(imported, after, tol, problems)

    counts: dict[str, int] = {}
    for pr in problems:
        counts[pr.code] = counts.get(pr.code, 0) + 1
    levels: dict[str, int] = {}
    for p in parsed:
        lv = level_of(p.code).value
        levels[lv] = levels.get(lv, 0) + 1
    report = ImportReport(
        ok=not problems,
        dry_run=True,
        applied=False,
        crs=crs_name,
        valid_from=day,
        source=name,
        features=len(feats),
        levels=levels,
        added=sorted(added),
        changed=sorted(changed),
        unchanged=sorted(unchanged),
        retired=retired,
        derived=derived,
        problems=problems,
        counts=counts,
        checked_against=latest_info.version,
    )
    return report, [imported[c] for c in sorted(imported)]


def _check_dedicated(
    imported: dict[str, Unit], after: dict[str, Unit], tol: Tolerances, problems: list[Problem]
) -> None:
    mine = [u for u in imported.values() if u.level is Level.DEDICATED]
    if not mine:
        return
    city = after.get(CITY_LEVEL_CODE)
    townships = [u for u in after.values() if u.level is Level.TOWNSHIP]
    town_tree = STRtree([t.geometry for t in townships])
    others = [u for u in after.values() if u.level is Level.DEDICATED]
    other_tree = STRtree([u.geometry for u in others])
    for u in mine:
        lat = u.geometry.centroid.y
        if city is not None:
            out = area_m2(u.geometry.difference(city.geometry), lat)
            if out > tol.outside_parent_m2:
                problems.append(
                    Problem(
                        code="outside_parent",
                        unit=u.code,
                        message=f"dedicated grid {u.code} extends {out:,.0f} m² beyond the city "
                        f"(tolerance {tol.outside_parent_m2:g} m²)",
                        area_m2=round(out, 1),
                    )
                )
        near = [townships[i] for i in town_tree.query(u.geometry, predicate="intersects")]
        host = host_township(u.geometry, near)
        if host is not None and u.parent in after and host.code != u.parent:
            problems.append(
                Problem(
                    code="parent_mismatch",
                    unit=u.code,
                    other=host.code,
                    message=f"dedicated grid {u.code} is coded below township {u.parent}, but "
                    f"township {host.code} holds most of it: its code must start with {host.code}",
                )
            )
        for j in other_tree.query(u.geometry, predicate="intersects").tolist():
            o = others[j]
            if o.code == u.code or o.code[10:12] != u.code[10:12]:
                continue
            if o.code in imported and o.code < u.code:
                continue  # the pair is reported once, from its smaller code
            ov = area_m2(u.geometry.intersection(o.geometry), lat)
            if ov > tol.sibling_overlap_m2:
                problems.append(
                    Problem(
                        code="dedicated_overlap",
                        unit=u.code,
                        other=o.code,
                        message=f"dedicated grids {u.code} and {o.code} (same kind) overlap by "
                        f"{ov:,.0f} m² (tolerance {tol.sibling_overlap_m2:g} m²)",
                        area_m2=round(ov, 1),
                    )
                )


def import_geojson(
    source: str | Path | Mapping[str, Any],
    crs: str = "wgs84",
    *,
    valid_from: date | str | None = None,
    dry_run: bool = False,
    retire: list[str] | None = None,
    tolerances: Tolerances | None = None,
    store: VersionStore | None = None,
    note: str = "",
) -> ImportReport:
    """Check a GeoJSON of unit boundaries and, when clean, store it as a new version.

    ``source`` is a path, a JSON text or a parsed mapping; ``valid_from`` is the day
    (Asia/Shanghai) the boundaries take effect, today when None. With any problem, or
    with ``dry_run``, nothing is stored.
    """
    store = store or default_store()
    report, units = check_import(
        source, crs, valid_from=valid_from, retire=retire, tolerances=tolerances, store=store
    )
    report.dry_run = dry_run
    if dry_run or not report.ok or not (units or report.retired):
        return report
    try:
        info = store.add_version(
            units,
            report.valid_from,
            retired=report.retired,
            source=report.source,
            note=note,
            expect_latest=report.checked_against,
            derived=report.derived,
        )
    except VersionError as exc:
        raise GridImportError(str(exc)) from exc
    report.applied = True
    report.version = info.version
    return report


__all__ = [
    "PROBLEM_CODES",
    "GridImportError",
    "ImportReport",
    "Problem",
    "Tolerances",
    "area_m2",
    "check_import",
    "import_geojson",
]
