"""Map layers: jurisdiction boundaries (from grids) and device markers as GeoJSON."""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

from grids.dataset import load_city
from i18n import t

# Degrees; about 100 m at Zhengzhou: enough for a city-wide wall screen, a fraction of the bytes.
COUNTY_TOLERANCE = 0.0008
TOWNSHIP_TOLERANCE = 0.001


@lru_cache(maxsize=8)
def boundaries(level: str, lang: str) -> dict[str, Any]:
    """Units at ``level`` with a tooltip; generated boundaries say so in the tooltip."""
    tol = COUNTY_TOLERANCE if level == "county" else TOWNSHIP_TOLERANCE
    fc = load_city().geojson(level=level, tolerance=tol)
    generated = t("map.generated", lang)
    names = unit_names()
    for f in fc["features"]:
        p = f["properties"]
        # Leaflet puts a tooltip string in as HTML, so it is escaped here.
        text = html.escape(str(p["name"]))
        if p.get("generated"):
            text = f"{text}（{generated}）"
        parent = names.get(str(p.get("parent") or ""))
        if level != "county" and parent:
            text = f"{text} · {html.escape(parent)}"
        p["tooltip"] = text
    return fc


@lru_cache(maxsize=1)
def unit_names() -> dict[str, str]:
    return {u.code: u.name for u in load_city()}


def place_name(place: dict[str, Any] | None) -> str:
    """'金水区 · 某街道' for a located record; empty when unlocated."""
    if not place:
        return ""
    names = unit_names()
    parts = [names[c] for c in (place.get("county"), place.get("township")) if c and c in names]
    return " · ".join(parts)


def city_bounds() -> list[list[float]]:
    minx, miny, maxx, maxy = load_city().bounds
    return [[miny, minx], [maxy, maxx]]


def markers_geojson(markers: list[dict[str, Any]]) -> dict[str, Any]:
    """Device markers as point features; bad coordinates are skipped, not drawn at 0,0."""
    features = []
    for m in markers:
        try:
            lon, lat = float(m["lon"]), float(m["lat"])
        except (KeyError, TypeError, ValueError):
            continue
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            continue
        sev = m.get("severity") or None
        name = str(m.get("name") or m.get("id") or "")
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "id": str(m.get("id", "")),
                    "severity": sev,
                    "tooltip": html.escape(name),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
