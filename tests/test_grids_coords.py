"""GCJ-02 ⇄ WGS84 against published point pairs, round trips and the real boundaries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from core.config import get_settings
from grids import coords

# (wgs lon, wgs lat, gcj lon, gcj lat) from the test suite of the eviltransform library.
EVILTRANSFORM_PAIRS = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),  # Shanghai
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),  # Shenzhen
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),  # Beijing
]
# coordtransform's documented example: wgs84togcj02(116.404, 39.915).
COORDTRANSFORM_PAIR = (116.404, 39.915, 116.41024449916938, 39.91640428150164)


def metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    k = 111_320.0
    return math.hypot((lon2 - lon1) * k * math.cos(math.radians(lat1)), (lat2 - lat1) * k)


@pytest.mark.parametrize("pair", [*EVILTRANSFORM_PAIRS, COORDTRANSFORM_PAIR])
def test_forward_matches_published_pairs(pair: tuple[float, float, float, float]) -> None:
    wlon, wlat, glon, glat = pair
    lon, lat = coords.wgs84_to_gcj02(wlon, wlat)
    assert lon == pytest.approx(glon, abs=1e-9)
    assert lat == pytest.approx(glat, abs=1e-9)


@pytest.mark.parametrize("pair", [*EVILTRANSFORM_PAIRS, COORDTRANSFORM_PAIR])
def test_inverse_recovers_wgs84_to_1e7(pair: tuple[float, float, float, float]) -> None:
    wlon, wlat, glon, glat = pair
    lon, lat = coords.gcj02_to_wgs84(glon, glat)
    assert abs(lon - wlon) < 1e-7
    assert abs(lat - wlat) < 1e-7


def test_round_trip_over_china_is_exact_to_1e7() -> None:
    rng = np.random.default_rng(7)
    wgs = np.column_stack([rng.uniform(75, 135, 5000), rng.uniform(5, 53, 5000)])
    gcj = coords.wgs84_to_gcj02_array(wgs)
    shift = np.abs(gcj - wgs).max(axis=1)
    assert shift.min() > 1e-4  # every point really moved
    back = coords.gcj02_to_wgs84_array(gcj)
    assert np.abs(back - wgs).max() < 1e-7
    # and the other way round
    again = coords.wgs84_to_gcj02_array(coords.gcj02_to_wgs84_array(wgs))
    assert np.abs(again - wgs).max() < 1e-7


def test_points_outside_china_pass_through() -> None:
    for lon, lat in [(2.3522, 48.8566), (-74.006, 40.7128), (151.2093, -33.8688)]:
        assert coords.wgs84_to_gcj02(lon, lat) == (lon, lat)
        assert coords.gcj02_to_wgs84(lon, lat) == (lon, lat)
        assert coords.to_wgs84(lon, lat, "gcj02") == (lon, lat)


def test_array_and_scalar_agree_and_input_is_not_modified() -> None:
    xy = np.array([[113.65, 34.75], [112.9, 34.5], [2.35, 48.85]])
    before = xy.copy()
    out = coords.gcj02_to_wgs84_array(xy)
    assert np.array_equal(xy, before)
    for (lon, lat), (olon, olat) in zip(xy, out, strict=True):
        assert coords.gcj02_to_wgs84(lon, lat) == pytest.approx((olon, olat), abs=1e-12)


def test_crs_option() -> None:
    assert coords.check_crs("WGS84") == "wgs84"
    assert coords.check_crs(" gcj-02 ") == "gcj02"
    assert coords.check_crs("EPSG:4490") == "cgcs2000"
    # CGCS2000 is taken as WGS84: no change at all
    assert coords.to_wgs84(113.65, 34.75, "cgcs2000") == (113.65, 34.75)
    assert coords.to_wgs84(113.65, 34.75, "wgs84") == (113.65, 34.75)
    assert coords.to_wgs84(113.65, 34.75, "gcj02") != (113.65, 34.75)
    with pytest.raises(coords.CRSError, match="unknown crs 'bd09'"):
        coords.check_crs("bd09")


@pytest.mark.parametrize(
    ("lon", "lat", "message"),
    [
        (float("nan"), 34.7, "not finite"),
        (113.6, float("inf"), "not finite"),
        (34.7, 113.6, "out of range"),
        ("abc", 34.7, "not numbers"),
        (None, 34.7, "not numbers"),
    ],
)
def test_bad_points_are_refused_clearly(lon: object, lat: object, message: str) -> None:
    with pytest.raises(coords.CRSError, match=message):
        coords.to_wgs84(lon, lat, "gcj02")  # type: ignore[arg-type]


def test_geometry_conversion_moves_every_vertex() -> None:
    poly = shapely.Polygon([(113.6, 34.7), (113.7, 34.7), (113.7, 34.8), (113.6, 34.7)])
    out = coords.geometry_to_wgs84(poly, "gcj02")
    for (x, y), (ox, oy) in zip(poly.exterior.coords, out.exterior.coords, strict=True):
        assert (ox, oy) == pytest.approx(coords.gcj02_to_wgs84(x, y), abs=1e-12)
    assert coords.geometry_to_wgs84(poly, "wgs84") is poly
    back = coords.geometry_from_wgs84(out, "gcj02")
    assert shapely.equals_exact(back, poly, tolerance=1e-8)


def test_zhengzhou_boundaries_shift_by_a_few_hundred_metres() -> None:
    path = get_settings().source_dir / "geo" / "410100_full_datav.json"
    fc = json.loads(path.read_text(encoding="utf-8"))
    assert len(fc["features"]) == 12
    for feat in fc["features"]:
        gcj = shape(feat["geometry"])
        wgs = coords.geometry_to_wgs84(gcj, "gcj02")
        a, b = gcj.centroid, wgs.centroid
        shift = metres(a.x, a.y, b.x, b.y)
        assert 200 < shift < 1000, (feat["properties"]["name"], shift)
        # a shift, not a reshaping: the area changes by well under a percent
        assert wgs.area == pytest.approx(gcj.area, rel=5e-3)
        assert wgs.is_valid
