"""View sectors and the nearest cameras that see a place (real Redis, statuses as ingest writes them)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import redis
from shapely.geometry import Point, Polygon

from access.camera_geo import (
    VIEW_RANGE_M,
    GeoError,
    bearing_distance,
    nearest_cameras,
    offset,
    sector,
    sector_latlng,
    sees,
)
from access.scope import Scope, demo_scope
from core.keys import keys
from core.timeutil import now_ms
from ingest.camera_config import CameraConfig
from ingest.camera_status import encode, static_fields

# A point in 二七区 (410103), and the metres per degree there (spherical Earth).
P_LON, P_LAT = 113.6254, 34.7466
M_PER_DEG_LAT = math.pi * 6_371_008.8 / 180
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(P_LAT))


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def at(east_m: float, north_m: float) -> tuple[float, float]:
    return P_LON + east_m / M_PER_DEG_LON, P_LAT + north_m / M_PER_DEG_LAT


def local_xy(lon: float, lat: float) -> tuple[float, float]:
    return (lon - P_LON) * M_PER_DEG_LON, (lat - P_LAT) * M_PER_DEG_LAT


def test_sector_is_a_closed_fan_of_the_view_range() -> None:
    ring = sector(P_LON, P_LAT, direction_deg=90, fov_deg=60)
    assert ring[0] == ring[-1] == (P_LON, P_LAT)  # apex at the camera, ring closed
    arc = ring[1:-1]
    for lon, lat in arc:
        assert haversine_m(P_LON, P_LAT, lon, lat) == pytest.approx(VIEW_RANGE_M, abs=0.5)
    bearings = [bearing_distance(P_LON, P_LAT, lon, lat)[0] for lon, lat in arc]
    assert bearings[0] == pytest.approx(60, abs=0.1) and bearings[-1] == pytest.approx(120, abs=0.1)
    poly = Polygon([local_xy(*p) for p in ring])
    assert poly.is_valid
    # A 60-degree slice of a 150 m disc, less the chords' sliver.
    assert poly.area == pytest.approx(math.pi * VIEW_RANGE_M**2 / 6, rel=0.01)
    assert poly.contains(Point(100, 0)) and not poly.contains(Point(-100, 0))
    assert not poly.contains(Point(0, 100)) and not poly.contains(Point(160, 0))


def test_sector_wraps_north_and_full_circle() -> None:
    ring = sector(P_LON, P_LAT, direction_deg=350, fov_deg=40)
    poly = Polygon([local_xy(*p) for p in ring])
    # Looking north-north-west with 40 degrees: due north is inside, due east is not.
    assert poly.contains(Point(0, 100)) and poly.contains(Point(-30, 100))
    assert not poly.contains(Point(100, 0))
    circle = sector(P_LON, P_LAT, direction_deg=0, fov_deg=360)
    cpoly = Polygon([local_xy(*p) for p in circle])
    assert cpoly.area == pytest.approx(math.pi * VIEW_RANGE_M**2, rel=0.01)
    assert cpoly.contains(Point(0, 0))
    # Leaflet wants [lat, lon].
    ll = sector_latlng(P_LON, P_LAT, 90, 60)
    assert ll == [[lat, lon] for lon, lat in sector(P_LON, P_LAT, 90, 60)]
    assert ll[0] == [P_LAT, P_LON]


def test_offset_and_bearing_agree_with_haversine() -> None:
    for bearing in (0, 45, 137, 270, 359):
        lon, lat = offset(P_LON, P_LAT, bearing, 400)
        assert haversine_m(P_LON, P_LAT, lon, lat) == pytest.approx(400, abs=0.5)
        b, d = bearing_distance(P_LON, P_LAT, lon, lat)
        assert d == pytest.approx(400, abs=0.5)
        assert min(abs(b - bearing), 360 - abs(b - bearing)) < 0.1


def test_bad_geometry_input_is_refused_clearly() -> None:
    with pytest.raises(GeoError, match="field of view"):
        sector(P_LON, P_LAT, 0, 0)
    with pytest.raises(GeoError, match="finite"):
        sector(float("nan"), P_LAT, 0, 60)
    with pytest.raises(GeoError, match="WGS84"):
        sector(P_LON, 95.0, 0, 60)
    with pytest.raises(GeoError, match="range"):
        sector(P_LON, P_LAT, 0, 60, range_m=0)
    assert sees(P_LON, P_LAT, 0, 10, P_LON, P_LAT)  # standing on the place


def register(r: redis.Redis, cid: str, lon: float, lat: float, **kw: Any) -> None:
    """What ingest-video writes: the id in the set, static fields, then the live fields."""
    cfg: dict[str, Any] = {
        "id": cid,
        "name": f"测试{cid}",
        "source": "rtsp://admin:secret@10.0.0.1/s",
        "lon": lon,
        "lat": lat,
    }
    online = kw.pop("online", True)
    cfg.update(kw)
    cam = CameraConfig(**cfg)
    r.sadd(keys().cameras, cam.id)
    r.hset(keys().camera(cam.id), mapping=encode(static_fields(cam)))
    live: dict[str, Any] = {"online": online, "fps": 12.5 if online else 0.0}
    if online:
        live["last_frame_ms"] = now_ms()
    r.hset(keys().camera(cam.id), mapping=encode(live))


def test_nearest_cameras_that_see_the_place_come_first(r: redis.Redis) -> None:
    # A: 100 m north, looking south at the place. B: 40 m east, looking away (east).
    # C: 300 m west, looking east but out of range. D: 700 m away. E: offline, 120 m south,
    # looking north at the place. F: in another district.
    register(r, "cam-a", *at(0, 100), direction_deg=180, fov_deg=60)
    register(r, "cam-b", *at(40, 0), direction_deg=90, fov_deg=90)
    register(r, "cam-c", *at(-300, 0), direction_deg=90, fov_deg=60)
    register(r, "cam-d", *at(0, -700), direction_deg=0, fov_deg=60)
    register(r, "cam-e", *at(0, -120), direction_deg=0, fov_deg=60, online=False)
    register(r, "cam-f", 113.70, 34.78, direction_deg=0, fov_deg=60)

    near = nearest_cameras(r, demo_scope(), P_LON, P_LAT)
    assert [n.camera.id for n in near] == ["cam-a", "cam-e", "cam-b", "cam-c"]
    assert [n.sees for n in near] == [True, True, False, False]
    assert near[0].distance_m == pytest.approx(100, abs=1)
    assert near[0].bearing_deg == pytest.approx(180, abs=0.5)  # from the camera to the place
    assert near[1].camera.online is False  # offline cameras are still named, and shown offline
    assert "secret" not in near[0].camera.source

    two = nearest_cameras(r, demo_scope(), P_LON, P_LAT, k=2)
    assert [n.camera.id for n in two] == ["cam-a", "cam-e"]
    close = nearest_cameras(r, demo_scope(), P_LON, P_LAT, max_m=50)
    assert [n.camera.id for n in close] == ["cam-b"]

    # Scope: a district commander elsewhere sees none of these; 二七区's sees all but cam-f.
    assert nearest_cameras(r, Scope(user="u", jurisdiction="410105"), P_LON, P_LAT) == []
    erqi = nearest_cameras(r, Scope(user="u", jurisdiction="410103"), 113.70, 34.78, max_m=50)
    assert erqi == []
    assert [n.camera.id for n in nearest_cameras(r, demo_scope(), 113.70, 34.78)] == ["cam-f"]


def test_nearest_cameras_refuses_bad_input(r: redis.Redis) -> None:
    register(r, "cam-a", *at(0, 100), direction_deg=180)
    with pytest.raises(GeoError, match="k must be"):
        nearest_cameras(r, demo_scope(), P_LON, P_LAT, k=0)
    with pytest.raises(GeoError, match="max_m"):
        nearest_cameras(r, demo_scope(), P_LON, P_LAT, max_m=-1)
    with pytest.raises(GeoError, match="numbers"):
        nearest_cameras(r, demo_scope(), "east", P_LAT)  # type: ignore[arg-type]
