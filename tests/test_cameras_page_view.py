"""The camera wall page on the server side: what it reads, draws and opens for a place."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from plotly.utils import PlotlyJSONEncoder

from access.camera_geo import GeoError
from access.scope import Scope
from dashboard.pages import cameras as page
from dashboard.pages import cameras_data as cd
from dashboard.pages import page_modules
from tests.test_cameras_page_geo import P_LAT, P_LON, at, register


def _json(component: Any) -> str:
    return json.dumps(component, cls=PlotlyJSONEncoder, ensure_ascii=False)


def test_page_is_registered_with_its_title() -> None:
    assert page_modules()["/cameras"] is page
    from i18n import t

    assert t(page.TITLE_KEY, "zh-CN") == "视频监控墙"
    assert t(page.TITLE_KEY, "en") == "Camera wall"


def test_parse_place_and_layout_for() -> None:
    assert cd.parse_place("") is None and cd.parse_place("?lang=en") is None
    assert cd.parse_place("?lon=113.6&lat=34.7") == (113.6, 34.7)
    for bad in ("?lon=abc&lat=1", "?lon=113.6", "?lon=200&lat=34"):
        with pytest.raises(GeoError):
            cd.parse_place(bad)
    assert [cd.layout_for(n) for n in (1, 2, 4, 5, 9, 10, 40)] == [1, 4, 4, 9, 9, 16, 16]


def test_read_cameras_keeps_credentials_out_and_names_the_place(r: redis.Redis) -> None:
    register(r, "cam-a", P_LON, P_LAT, direction_deg=90)
    register(r, "cam-b", 113.70, 34.78, online=False)
    store = cd.read_cameras(Scope(user="u"), r)
    assert [c["id"] for c in store["cameras"]] == ["cam-a", "cam-b"]
    a, b = store["cameras"]
    assert a["online"] and a["last_frame_ms"] and not b["online"]
    assert a["place"].startswith("淮河路街道 · ") and "网格" in a["place"]
    assert "secret" not in json.dumps(store) and "source" not in a
    # A district's screen reads only its own cameras.
    only = cd.read_cameras(Scope(user="u", jurisdiction="410103"), r)
    assert [c["id"] for c in only["cameras"]] == ["cam-a"]

    layers = _json(cd.map_layers(store))
    assert layers.count('"cameras-sector"') == 2 and layers.count('"cameras-dot"') == 2
    assert cd.ONLINE_COLOUR in layers and cd.OFFLINE_COLOUR in layers
    # Map colours change only when a camera's state changes.
    assert cd.online_key(store) == [("cam-a", True), ("cam-b", False)]


def test_view_for_a_place_pins_the_nearest_cameras(r: redis.Redis) -> None:
    # cam-near is 30 m away looking away; cam-sees is 90 m away looking at the place.
    register(r, "cam-near", *at(30, 0), direction_deg=90)
    register(r, "cam-sees", *at(0, 90), direction_deg=180)
    register(r, "cam-far", *at(0, 2000), direction_deg=180)
    view, n, note, marker = page._view_for_place(f"?lon={P_LON}&lat={P_LAT}", "zh-CN")
    assert view["pinned"] == ["cam-sees", "cam-near"] and view["sees"] == ["cam-sees"]
    assert n == view["n"] == 4
    assert note.startswith("事发地点附近的摄像头：") and "测试cam-sees" in note
    assert marker  # the place is marked on the map

    view, n, note, _ = page._view_for_place("?lon=113.9&lat=34.9", "zh-CN")
    assert view["pinned"] is None and note == "事发地点附近500米内没有摄像头"
    view, _, note, marker = page._view_for_place("?lon=x&lat=y", "en")
    assert view["pinned"] is None and note.startswith("Invalid place") and marker == []


def test_layout_has_sixteen_tiles_and_no_source(r: redis.Redis) -> None:
    register(r, "cam-a", P_LON, P_LAT)
    body = _json(page.layout("zh-CN"))
    for i in range(page.MAX_TILES):
        assert f'"cameras-tile-{i}"' in body and f'"cameras-img-{i}"' in body
    assert "视频监控墙" in body and "secret" not in body and "rtsp://" not in body
    assert '"cameras-push"' in body and "/api/push" in body
