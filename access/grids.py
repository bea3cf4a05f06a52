"""Reads of the electronic grid map, each taking the user's Scope first.

A user drills only within their jurisdiction: the map's root is their own unit, and
any unit outside it is refused (``OutOfScope``) before anything is read. Counts per
child come from the live records in Redis, matched by the jurisdiction codes of
their place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import redis

from access import reads
from access.scope import Scope
from core.keys import keys
from grids.codes import Level, child_level
from grids.dataset import City, Unit, load_city
from grids.elements import elements_summary, order_stats
from grids.people import FIELD_CLASSES, DataClass, mask_record, staff_of

BATCH = 500
COUNT_FIELDS = ("orders_open", "alarms_open", "devices_offline")
OPEN_ALARM_STATES = frozenset(s.value for s in reads.OPEN_ALARM_STATES)
# Simplification per level, in degrees (0.001° is about 100 m): each level is drawn at the
# zoom that fits its parent, so deeper levels keep finer detail.
TOLERANCE: dict[Level, float] = {
    Level.COUNTY: 0.001,
    Level.TOWNSHIP: 0.0005,
    Level.VILLAGE: 0.0003,
    Level.GRID: 0.0001,
    Level.MICRO_GRID: 0.00005,
}
# 5 decimals of a degree are about 1 m: finer digits only add bytes to the page.
MAP_DIGITS = 5
# Only these properties leave in an export: what the unit is, not how it is counted.
EXPORT_PROPERTIES = ("code", "name", "level", "generated")
# What a map screen may show of grid staff unmasked (names and phones are personal).
STAFF_CLEARED = frozenset({DataClass.PUBLIC, DataClass.INTERNAL})


class OutOfScope(PermissionError):
    """The unit lies outside the user's jurisdiction."""


@dataclass
class LevelCounts:
    """Live figures per child of one unit, and for the unit itself (everything below it)."""

    parent: str
    level: str | None
    children: dict[str, dict[str, int]] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_FIELDS, 0))


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _city(city: City | None) -> City:
    return city or load_city()


def root_unit(scope: Scope, city: City | None = None) -> Unit:
    """The top of the user's map: their own jurisdiction unit."""
    return _city(city).unit(scope.jurisdiction)


def unit_in_scope(scope: Scope, code: str, city: City | None = None) -> Unit:
    """The unit ``code`` if the scope sees it; a bad code raises CodeError, an unknown one
    UnitNotFound, one outside the jurisdiction OutOfScope."""
    unit = _city(city).unit(code)
    if not scope.sees(unit.code):
        raise OutOfScope(f"unit {code} is outside the jurisdiction {scope.jurisdiction}")
    return unit


def breadcrumbs(scope: Scope, code: str, city: City | None = None) -> list[Unit]:
    """The units from the user's root down to ``code`` (the levels above stay hidden)."""
    unit_in_scope(scope, code, city)
    return [u for u in _city(city).chain(code) if scope.sees(u.code)]


def shown_level(unit: Unit, all_grids: bool = False) -> Level | None:
    """The level drawn below ``unit``: its children, or every grid below it."""
    if all_grids and unit.level.depth < Level.GRID.depth:
        return Level.GRID
    return child_level(unit.level)


def shown_units(
    scope: Scope, code: str, all_grids: bool = False, city: City | None = None
) -> list[Unit]:
    """The units the map draws for ``code``: its children (or all its grids); a unit
    without children draws itself."""
    c = _city(city)
    unit = unit_in_scope(scope, code, c)
    lv = shown_level(unit, all_grids)
    units = c.units_at(lv, within=unit.code) if lv is not None else []
    return units or [unit]


def _records(r: redis.Redis, index: str, key_of: Any) -> Iterator[dict[str, Any]]:
    """Raw JSON records of a sorted-set index, batched; torn records are skipped."""
    start = 0
    while True:
        ids = r.zrange(index, start, start + BATCH - 1)
        if not ids:
            return
        for raw in r.mget([key_of(_s(i)) for i in ids]):
            if not raw:
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # the writer's to report; a map count is no place to fail
            if isinstance(rec, dict):
                yield rec
        start += BATCH


def _place_code(place: Any) -> str:
    if not isinstance(place, dict):
        return ""
    for lv in ("grid", "village", "township", "county"):
        code = place.get(lv)
        if code:
            return str(code)
    return ""


def child_counts(
    r: redis.Redis,
    scope: Scope,
    code: str,
    all_grids: bool = False,
    city: City | None = None,
    markers: list[dict[str, Any]] | None = None,
) -> LevelCounts:
    """Open orders, open alarms and offline devices per unit drawn below ``code``.

    One pass over each index, whatever the number of children. A record located only
    above the shown level (a report with just a township) counts in the total, not in
    a child. ``markers`` (from ``device_markers``) saves reading the devices again.
    """
    c = _city(city)
    unit = unit_in_scope(scope, code, c)
    shown = shown_units(scope, code, all_grids, c)
    digits = shown[0].level.digits
    out = LevelCounts(
        parent=unit.code,
        level=shown[0].level.value,
        children={u.code: dict.fromkeys(COUNT_FIELDS, 0) for u in shown},
    )

    def add(place_code: str, what: str) -> None:
        if not place_code.startswith(unit.code) or not scope.sees(place_code):
            return
        out.total[what] += 1
        child = out.children.get(place_code[:digits])
        if child is not None:
            child[what] += 1

    k = keys()
    for order in _records(r, k.orders_open, k.order):
        add(_place_code(order.get("place")), "orders_open")
    for alarm in _records(r, k.alarms_open, k.alarm):
        if alarm.get("state") in OPEN_ALARM_STATES:
            add(_place_code(alarm.get("place")), "alarms_open")
    for m in reads.device_markers(r, scope) if markers is None else markers:
        if m["status"] == "offline":
            add(str(m.get("code") or ""), "devices_offline")
    return out


def device_markers(
    r: redis.Redis, scope: Scope, code: str, city: City | None = None
) -> list[dict[str, Any]]:
    """Device markers at or below ``code``."""
    unit = unit_in_scope(scope, code, city)
    return [
        m for m in reads.device_markers(r, scope) if str(m.get("code") or "").startswith(unit.code)
    ]


def unit_elements(
    r: redis.Redis | None,
    scope: Scope,
    code: str,
    city: City | None = None,
    markers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The six elements of a unit in scope (``grids.elements.elements_summary``).

    Devices are counted as the screens judge them (silence past the type's limit is
    offline), so the panel and the map agree before the health sweep has marked them;
    ``markers`` (from ``device_markers``) saves reading the devices again.
    """
    c = _city(city)
    unit = unit_in_scope(scope, code, c)
    summary = elements_summary(unit.code, None, city=c)
    if r is not None:
        live = order_stats(r, unit.code)
        summary["events"] = live["events"]
        summary["sentiment"] = live["sentiment"]
        if markers is None:
            markers = device_markers(r, scope, unit.code, c)
        mine = [m for m in markers if str(m.get("code") or "").startswith(unit.code)]
        summary["things"]["devices"] = len(mine)
        summary["things"]["devices_offline"] = sum(m["status"] == "offline" for m in mine)
    return summary


def grid_staff(
    r: redis.Redis | None, scope: Scope, code: str, city: City | None = None
) -> list[dict[str, Any]]:
    """One grid's staff with the live duty state, personal fields masked."""
    unit = unit_in_scope(scope, code, city)
    if unit.level is not Level.GRID:
        raise ValueError(f"staff belong to a grid; {code} is a {unit.level.value}")
    return [
        mask_record(p.model_dump(mode="json"), STAFF_CLEARED, FIELD_CLASSES)
        for p in staff_of(unit.code, r)
    ]


def _round(coords: Any, digits: int) -> Any:
    if isinstance(coords, float | int):
        return round(float(coords), digits)
    return [_round(c, digits) for c in coords]


@lru_cache(maxsize=16)
def _level_geometries(
    city_key: str, level: str, tolerance: float, digits: int | None
) -> dict[str, Any]:
    """Code → GeoJSON geometry of every unit at ``level``, simplified once per process."""
    fc = load_city().geojson(level=level, tolerance=tolerance)
    out: dict[str, Any] = {}
    for f in fc["features"]:
        g = f["geometry"]
        if digits is not None:
            g = {"type": g["type"], "coordinates": _round(g["coordinates"], digits)}
        out[f["id"]] = g
    return out


def boundaries(
    scope: Scope,
    code: str,
    all_grids: bool = False,
    *,
    tolerance: float | None = None,
    digits: int | None = MAP_DIGITS,
    city: City | None = None,
) -> dict[str, Any]:
    """The drawn units of ``code`` as a FeatureCollection (WGS84), simplified for their level.

    Properties: code, name, level, generated, parent. ``tolerance`` 0 and ``digits`` None
    keep the geometry as stored.
    """
    c = _city(city)
    units = shown_units(scope, code, all_grids, c)
    lv = units[0].level
    tol = TOLERANCE.get(lv, 0.0) if tolerance is None else float(tolerance)
    if c is load_city():
        geoms = _level_geometries(c.key, lv.value, tol, digits)
    else:
        geoms = {f["id"]: f["geometry"] for f in c.geojson(level=lv, tolerance=tol)["features"]}
    features = [
        {
            "type": "Feature",
            "id": u.code,
            "geometry": geoms[u.code],
            "properties": {
                "code": u.code,
                "name": u.name,
                "level": u.level.value,
                "generated": u.generated,
                "parent": u.parent,
            },
        }
        for u in units
    ]
    return {"type": "FeatureCollection", "features": features}


def export_geojson(
    scope: Scope, code: str, all_grids: bool = False, city: City | None = None
) -> dict[str, Any]:
    """The boundaries drawn for ``code`` for download: full geometry, and only code, name,
    level and generated as properties."""
    fc = boundaries(scope, code, all_grids, tolerance=0.0, digits=None, city=city)
    for f in fc["features"]:
        f["properties"] = {k: f["properties"][k] for k in EXPORT_PROPERTIES}
    fc["name"] = code
    return fc


__all__ = [
    "COUNT_FIELDS",
    "EXPORT_PROPERTIES",
    "TOLERANCE",
    "LevelCounts",
    "OutOfScope",
    "boundaries",
    "breadcrumbs",
    "child_counts",
    "device_markers",
    "export_geojson",
    "grid_staff",
    "root_unit",
    "shown_level",
    "shown_units",
    "unit_elements",
    "unit_in_scope",
]
