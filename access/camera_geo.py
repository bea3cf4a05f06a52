"""Where cameras look: view sectors for the map and the nearest cameras that see a place.

Distances are at most a few hundred metres, so a local tangent plane around the camera
is exact to well under a metre; no map projection library is needed for that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from access.cameras import list_cameras
from access.scope import Scope
from core.models import CameraStatus

# Mean Earth radius (IUGG), metres.
EARTH_R_M = 6_371_008.8
# How far a street camera is taken to see a person or a vehicle well enough to act on.
VIEW_RANGE_M = 150.0
DEFAULT_FOV_DEG = 60.0


class GeoError(ValueError):
    """A place or a parameter that cannot be used; the message says which and why."""


def _check_point(lon: float, lat: float) -> tuple[float, float]:
    try:
        lon_f, lat_f = float(lon), float(lat)
    except (TypeError, ValueError) as exc:
        raise GeoError(f"longitude and latitude must be numbers, not {lon!r}, {lat!r}") from exc
    if not (math.isfinite(lon_f) and math.isfinite(lat_f)):
        raise GeoError("longitude and latitude must be finite numbers")
    if not (-180.0 <= lon_f <= 180.0 and -90.0 <= lat_f <= 90.0):
        raise GeoError(f"({lon_f}, {lat_f}) is not a WGS84 longitude/latitude")
    return lon_f, lat_f


def offset(lon: float, lat: float, bearing_deg: float, dist_m: float) -> tuple[float, float]:
    """The point ``dist_m`` metres from (lon, lat) towards ``bearing_deg`` (clockwise from north)."""
    b = math.radians(bearing_deg)
    dlat = dist_m * math.cos(b) / EARTH_R_M
    dlon = dist_m * math.sin(b) / (EARTH_R_M * math.cos(math.radians(lat)))
    return lon + math.degrees(dlon), lat + math.degrees(dlat)


def bearing_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> tuple[float, float]:
    """(bearing in degrees clockwise from north, distance in metres) from point 1 to point 2."""
    mean_lat = math.radians((lat1 + lat2) / 2)
    east = math.radians(lon2 - lon1) * math.cos(mean_lat) * EARTH_R_M
    north = math.radians(lat2 - lat1) * EARTH_R_M
    return math.degrees(math.atan2(east, north)) % 360.0, math.hypot(east, north)


def angle_between(a_deg: float, b_deg: float) -> float:
    """The smaller angle between two bearings, 0..180."""
    d = abs(a_deg - b_deg) % 360.0
    return 360.0 - d if d > 180.0 else d


def sector(
    lon: float,
    lat: float,
    direction_deg: float,
    fov_deg: float,
    range_m: float = VIEW_RANGE_M,
    step_deg: float = 5.0,
) -> list[tuple[float, float]]:
    """The field of view as a closed ring of (lon, lat): apex at the camera, arc at ``range_m``.

    A field of view of 360 degrees is a full circle without the apex.
    """
    lon, lat = _check_point(lon, lat)
    if not 0 < fov_deg <= 360:
        raise GeoError(f"field of view must be in (0, 360] degrees, not {fov_deg}")
    if not range_m > 0:
        raise GeoError(f"range must be positive, not {range_m}")
    n = max(2, math.ceil(fov_deg / step_deg))
    start = direction_deg - fov_deg / 2
    arc = [offset(lon, lat, start + fov_deg * i / n, range_m) for i in range(n + 1)]
    if fov_deg >= 360:
        return arc[:-1] + [arc[0]]
    return [(lon, lat), *arc, (lon, lat)]


def sector_latlng(
    lon: float, lat: float, direction_deg: float, fov_deg: float, range_m: float = VIEW_RANGE_M
) -> list[list[float]]:
    """The sector as Leaflet positions ([lat, lon] pairs)."""
    return [[y, x] for x, y in sector(lon, lat, direction_deg, fov_deg, range_m)]


def sees(
    cam_lon: float,
    cam_lat: float,
    direction_deg: float,
    fov_deg: float,
    lon: float,
    lat: float,
    range_m: float = VIEW_RANGE_M,
) -> bool:
    """Whether the place lies in the camera's field of view and within its range."""
    bearing, dist = bearing_distance(cam_lon, cam_lat, lon, lat)
    if dist > range_m:
        return False
    # A camera standing on the place sees it whichever way it looks.
    return dist < 1.0 or fov_deg >= 360 or angle_between(bearing, direction_deg) <= fov_deg / 2


@dataclass(frozen=True)
class NearCamera:
    """A camera near a place: how far, in which direction, and whether it sees the place."""

    camera: CameraStatus
    distance_m: float
    bearing_deg: float
    sees: bool


def rank_cameras(
    cameras: list[CameraStatus],
    lon: float,
    lat: float,
    k: int = 4,
    max_m: float = 500.0,
    range_m: float = VIEW_RANGE_M,
) -> list[NearCamera]:
    """Cameras within ``max_m``: those that see the place first, then by distance; at most ``k``."""
    lon, lat = _check_point(lon, lat)
    if not isinstance(k, int) or k < 1:
        raise GeoError(f"k must be a positive whole number, not {k!r}")
    if not max_m > 0:
        raise GeoError(f"max_m must be positive, not {max_m!r}")
    found: list[NearCamera] = []
    for cam in cameras:
        if cam.lon is None or cam.lat is None:
            continue  # an unplaced camera cannot be near anything
        bearing, dist = bearing_distance(cam.lon, cam.lat, lon, lat)
        if dist > max_m:
            continue
        direction = cam.direction_deg if cam.direction_deg is not None else 0.0
        fov = cam.fov_deg if cam.fov_deg is not None else DEFAULT_FOV_DEG
        found.append(
            NearCamera(
                camera=cam,
                distance_m=dist,
                bearing_deg=bearing,
                sees=sees(cam.lon, cam.lat, direction, fov, lon, lat, range_m),
            )
        )
    found.sort(key=lambda n: (not n.sees, n.distance_m, n.camera.id))
    return found[:k]


def nearest_cameras(
    r: redis.Redis,
    scope: Scope,
    lon: float,
    lat: float,
    k: int = 4,
    max_m: float = 500.0,
    range_m: float = VIEW_RANGE_M,
) -> list[NearCamera]:
    """The scope's cameras nearest a place: those whose view holds it first, then by distance."""
    lon, lat = _check_point(lon, lat)
    return rank_cameras(list_cameras(r, scope), lon, lat, k, max_m, range_m)
