"""What the camera wall reads and draws: camera records for the browser, map sectors, places."""

from __future__ import annotations

import html as html_text
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

import dash_leaflet as dl
import redis

from access.camera_geo import (
    DEFAULT_FOV_DEG,
    VIEW_RANGE_M,
    GeoError,
    NearCamera,
    nearest_cameras,
    sector_latlng,
)
from access.cameras import list_cameras
from access.scope import Scope
from core.models import CameraStatus
from core.store import get_redis
from core.timeutil import now_ms
from dashboard.mapdata import unit_names

LAYOUTS = (1, 4, 9, 16)
DEFAULT_LAYOUT = 4
ONLINE_COLOUR = "#2fd3a5"
OFFLINE_COLOUR = "#8a94a6"
PLACE_COLOUR = "#e02424"


@lru_cache(maxsize=4096)
def place_label(lon: float, lat: float) -> str:
    """'淮河路街道 · …第2网格' for a point; empty outside every grid."""
    from grids.locate import LocateError, locate

    try:
        p = locate(lon, lat)
    except (LocateError, ValueError):
        return ""
    names = unit_names()
    town = names.get(p.township or "", "")
    grid = names.get(p.grid or "", "")
    # Grid names repeat their township's name; the tile has little room.
    if town and grid.startswith(town):
        grid = grid[len(town) :]
    return " · ".join(x for x in (town, grid) if x)


def camera_record(s: CameraStatus) -> dict[str, Any]:
    """What the browser needs of one camera; never the source (it may name a host)."""
    return {
        "id": s.id,
        "name": s.name,
        "online": s.online,
        "last_frame_ms": s.last_frame_ms,
        "frame_age_limit_ms": s.frame_age_limit_ms,
        "motion_active": s.motion_active,
        "lon": s.lon,
        "lat": s.lat,
        "direction_deg": s.direction_deg,
        "fov_deg": s.fov_deg,
        "place": place_label(s.lon, s.lat) if s.lon is not None and s.lat is not None else "",
    }


def read_cameras(scope: Scope, r: redis.Redis | None = None) -> dict[str, Any]:
    """The scope's cameras with the server's clock, so the browser can measure frame age."""
    cams = list_cameras(r if r is not None else get_redis(), scope)
    return {"server_ms": now_ms(), "cameras": [camera_record(s) for s in cams]}


def online_key(store: dict[str, Any] | None) -> list[tuple[str, bool]]:
    """What the map colours depend on: which cameras there are and which are online."""
    return [(c["id"], bool(c["online"])) for c in (store or {}).get("cameras", [])]


def map_layers(store: dict[str, Any] | None) -> list[Any]:
    """One clickable view sector and one dot per placed camera (dots above every sector)."""
    out: list[Any] = []
    dots: list[Any] = []
    for c in (store or {}).get("cameras", []):
        if c.get("lon") is None or c.get("lat") is None:
            continue
        colour = ONLINE_COLOUR if c.get("online") else OFFLINE_COLOUR
        direction = c.get("direction_deg") or 0.0
        fov = c.get("fov_deg") or DEFAULT_FOV_DEG
        tip = html_text.escape(str(c.get("name") or c["id"]))
        out.append(
            dl.Polygon(
                positions=sector_latlng(c["lon"], c["lat"], direction, fov, VIEW_RANGE_M),
                id={"type": "cameras-sector", "id": c["id"]},
                className=f"cw-sector cw-sector-{c['id']}",
                color=colour,
                weight=1.5,
                fillColor=colour,
                fillOpacity=0.25,
                n_clicks=0,
                children=dl.Tooltip(tip),
            )
        )
        dots.append(
            dl.CircleMarker(
                center=[c["lat"], c["lon"]],
                radius=6,
                id={"type": "cameras-dot", "id": c["id"]},
                className=f"cw-dot cw-dot-{c['id']}",
                color="#0d1b2a",
                weight=1,
                fillColor=colour,
                fillOpacity=1.0,
                n_clicks=0,
                children=dl.Tooltip(tip),
            )
        )
    return out + dots


def place_layer(lon: float, lat: float, label: str) -> list[Any]:
    return [
        dl.CircleMarker(
            center=[lat, lon],
            radius=9,
            color="#ffffff",
            weight=2,
            fillColor=PLACE_COLOUR,
            fillOpacity=1.0,
            children=dl.Tooltip(html_text.escape(label)),
        )
    ]


def parse_place(search: str | None) -> tuple[float, float] | None:
    """``?lon=&lat=`` of the page; None when absent, GeoError when present but unusable."""
    q = parse_qs((search or "").lstrip("?"))
    if "lon" not in q and "lat" not in q:
        return None
    try:
        lon, lat = float(q["lon"][0]), float(q["lat"][0])
    except (KeyError, IndexError, ValueError) as exc:
        raise GeoError("lon and lat must both be given as numbers") from exc
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise GeoError(f"({lon}, {lat}) is not a WGS84 longitude/latitude")
    return lon, lat


def layout_for(n: int) -> int:
    """The smallest wall layout that shows ``n`` tiles at once."""
    return next((size for size in LAYOUTS if size >= n), LAYOUTS[-1])


def near_place(scope: Scope, lon: float, lat: float, k: int = 4) -> list[NearCamera]:
    return nearest_cameras(get_redis(), scope, lon, lat, k=k)
