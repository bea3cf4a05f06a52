"""Coordinate reference systems: GCJ-02 ⇄ WGS84, and CGCS2000.

GCJ-02 ("Mars coordinates") is the obfuscated datum that Amap and DataV publish in.
The forward transform is the widely published algorithm (Krasovsky ellipsoid
constants); the inverse has no closed form and is found by fixed-point iteration to
better than 1e-9 degrees. Points outside the rough China box are not obfuscated by
GCJ-02 and pass through unchanged.

CGCS2000 and WGS84 agree to a few centimetres, far below what a grid lookup can
tell apart, so CGCS2000 is taken as WGS84 without change.

Coordinates are always (lon, lat), in that order, as in GeoJSON and shapely.
"""

from __future__ import annotations

import math
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

CRS = Literal["wgs84", "gcj02", "cgcs2000"]
CRS_NAMES: tuple[str, ...] = ("wgs84", "gcj02", "cgcs2000")
_ALIASES = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "epsg:4326": "wgs84",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "cgcs2000": "cgcs2000",
    "epsg:4490": "cgcs2000",
}

# Krasovsky 1940 semi-major axis and eccentricity², as the GCJ-02 algorithm uses them.
_A = 6378245.0
_EE = 0.00669342162296594323
# The rectangle the algorithm calls "China"; it also covers parts of neighbouring
# countries, which is how every GCJ-02 source behaves too.
_LON_MIN, _LON_MAX = 72.004, 137.8347
_LAT_MIN, _LAT_MAX = 0.8293, 55.8271
# The inverse is done when the forward image is this close to the input (degrees).
_INVERSE_EPS = 1e-10
_INVERSE_MAX_ITER = 30

FloatArray = npt.NDArray[np.float64]


class CRSError(ValueError):
    """An unknown coordinate reference system name, or coordinates that cannot be used."""


def check_crs(crs: str) -> CRS:
    """Normalise a CRS name ("WGS84", "gcj-02", "EPSG:4490" ...) or raise CRSError."""
    if not isinstance(crs, str):
        raise CRSError(f"crs must be a string, not {type(crs).__name__}")
    name = _ALIASES.get(crs.strip().lower())
    if name is None:
        raise CRSError(f"unknown crs {crs!r}: use one of {', '.join(CRS_NAMES)}")
    return cast(CRS, name)


def out_of_china(lon: FloatArray | float, lat: FloatArray | float) -> npt.NDArray[np.bool_]:
    lon_a = np.asarray(lon, dtype=float)
    lat_a = np.asarray(lat, dtype=float)
    return ~((lon_a >= _LON_MIN) & (lon_a <= _LON_MAX) & (lat_a >= _LAT_MIN) & (lat_a <= _LAT_MAX))


def _offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The GCJ-02 shift (dlon, dlat) in degrees at WGS84 (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    xpi = x * np.pi
    ypi = y * np.pi
    common = (20.0 * np.sin(6.0 * xpi) + 20.0 * np.sin(2.0 * xpi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += common
    dlat += (20.0 * np.sin(ypi) + 40.0 * np.sin(ypi / 3.0)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(ypi / 12.0) + 320.0 * np.sin(ypi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon += common
    dlon += (20.0 * np.sin(xpi) + 40.0 * np.sin(xpi / 3.0)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(xpi / 12.0) + 300.0 * np.sin(xpi / 30.0)) * 2.0 / 3.0
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(radlat) * np.pi)
    return dlon, dlat


def _as_xy(xy: npt.ArrayLike) -> FloatArray:
    arr = np.array(xy, dtype=float)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise CRSError(f"coordinates must be an (N, 2) array, got shape {arr.shape}")
    return arr


def wgs84_to_gcj02_array(xy: npt.ArrayLike) -> FloatArray:
    """(N, 2) lon/lat WGS84 → GCJ-02; a third column (z) is kept as it is."""
    out = _as_xy(xy)
    lon, lat = out[:, 0], out[:, 1]
    inside = ~out_of_china(lon, lat)
    if inside.any():
        dlon, dlat = _offset(lon[inside], lat[inside])
        out[inside, 0] = lon[inside] + dlon
        out[inside, 1] = lat[inside] + dlat
    return out


def gcj02_to_wgs84_array(xy: npt.ArrayLike) -> FloatArray:
    """(N, 2) lon/lat GCJ-02 → WGS84 by iterating the forward transform to < 1e-9°."""
    out = _as_xy(xy)
    inside = ~out_of_china(out[:, 0], out[:, 1])
    if not inside.any():
        return out
    g_lon = out[inside, 0].copy()
    g_lat = out[inside, 1].copy()
    w_lon = g_lon.copy()
    w_lat = g_lat.copy()
    # The shift varies by ~1e-3 of itself per degree, so the map w -> g - offset(w) is a
    # strong contraction and converges in a handful of steps.
    for _ in range(_INVERSE_MAX_ITER):
        dlon, dlat = _offset(w_lon, w_lat)
        err_lon = w_lon + dlon - g_lon
        err_lat = w_lat + dlat - g_lat
        w_lon -= err_lon
        w_lat -= err_lat
        worst = np.nanmax(np.maximum(np.abs(err_lon), np.abs(err_lat)), initial=0.0)
        if worst < _INVERSE_EPS:
            break
    out[inside, 0] = w_lon
    out[inside, 1] = w_lat
    return out


def _check_point(lon: float, lat: float) -> tuple[float, float]:
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError) as exc:
        raise CRSError(f"coordinates ({lon!r}, {lat!r}) are not numbers") from exc
    if not (math.isfinite(x) and math.isfinite(y)):
        raise CRSError(f"coordinates ({lon!r}, {lat!r}) are not finite numbers")
    if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
        raise CRSError(
            f"coordinates ({lon!r}, {lat!r}) are out of range: lon must be in [-180, 180], "
            "lat in [-90, 90] (were they given as lat, lon?)"
        )
    return x, y


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    x, y = _check_point(lon, lat)
    r = wgs84_to_gcj02_array([[x, y]])
    return float(r[0, 0]), float(r[0, 1])


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    x, y = _check_point(lon, lat)
    r = gcj02_to_wgs84_array([[x, y]])
    return float(r[0, 0]), float(r[0, 1])


def to_wgs84(lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """One point from ``crs`` to WGS84; bad numbers or names raise CRSError."""
    name = check_crs(crs)
    x, y = _check_point(lon, lat)
    if name == "gcj02":
        return gcj02_to_wgs84(x, y)
    return x, y


def from_wgs84(lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """One WGS84 point to ``crs`` (e.g. for GCJ-02 basemap tiles)."""
    name = check_crs(crs)
    x, y = _check_point(lon, lat)
    if name == "gcj02":
        return wgs84_to_gcj02(x, y)
    return x, y


def geometry_to_wgs84(geom: BaseGeometry, crs: str) -> BaseGeometry:
    """A shapely geometry from ``crs`` to WGS84 (every vertex converted)."""
    if check_crs(crs) != "gcj02":
        return geom
    return shapely.transform(geom, gcj02_to_wgs84_array)


def geometry_from_wgs84(geom: BaseGeometry, crs: str) -> BaseGeometry:
    """A WGS84 shapely geometry to ``crs``."""
    if check_crs(crs) != "gcj02":
        return geom
    return shapely.transform(geom, wgs84_to_gcj02_array)
