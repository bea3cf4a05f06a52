"""The camera wall in Chromium against real camera processes and the real web role: live
frames that change, offline shown as offline (not frozen) and back by itself, map click,
the cameras nearest a place."""

# ruff: noqa: F811  (pytest fixtures imported from tests.browser_support)
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from ingest.camera_status import read_status
from tests.browser_support import browser, page_factory, web  # noqa: F401  (fixtures)
from tests.conftest import free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "source" / "video" / "car-detection_intel.mp4"
P_LON, P_LAT = 113.6254, 34.7466
M_PER_DEG_LAT = math.pi * 6_371_008.8 / 180
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(P_LAT))


def at(east_m: float, north_m: float) -> tuple[float, float]:
    return P_LON + east_m / M_PER_DEG_LON, P_LAT + north_m / M_PER_DEG_LAT


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Ingest:
    """``python -m ingest.video`` on a registry file, stopped by its own pid."""

    def __init__(self, env: dict[str, str], registry: Path, log: Path) -> None:
        self.env, self.registry, self.log = env, registry, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingest.video", "--cameras", str(self.registry)],
                cwd=ROOT,
                env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
                stdout=fh,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def ingest(gridcc_env: dict[str, str], tmp_path: Path) -> Iterator[Ingest]:
    live_lon, live_lat = at(0, 0)
    dead_lon, dead_lat = at(120, 0)
    dead_url = f"rtsp://viewer:TopSecret@127.0.0.1:{free_port()}/nothing-here"
    registry = tmp_path / "cameras.yaml"
    registry.write_text(
        "cameras:\n"
        f"  - {{id: cam-live, name: 测试·停车场, source: '{CLIP}', lon: {live_lon},"
        f" lat: {live_lat}, direction_deg: 90, fov_deg: 70, frame_age_limit_s: 2,"
        " publish_interval_s: 0.2, analysis: {enabled: false}}\n"
        f"  - {{id: cam-dead, name: 测试·断线, source: '{dead_url}', lon: {dead_lon},"
        f" lat: {dead_lat}, direction_deg: 0, fov_deg: 60, frame_age_limit_s: 2,"
        " open_timeout_s: 1, read_timeout_s: 1, analysis: {enabled: false}}\n",
        encoding="utf-8",
    )
    ing = Ingest(gridcc_env, registry, tmp_path / "ingest.log")
    ing.start()
    yield ing
    ing.stop()


def tile_of(page: Any, cid: str) -> Any:
    return page.locator(f".cw-tile[data-camera='{cid}']")


def grab(page: Any, cid: str) -> np.ndarray:
    png = tile_of(page, cid).locator("img").screenshot()
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img is not None and img.size > 0
    return img.astype(np.float32)


def test_camera_wall_live_offline_and_back(
    gridcc_env: dict[str, str],
    r: redis.Redis,
    ingest: Ingest,
    web: Any,
    page_factory: Callable[..., Any],
    artifacts: Path,
) -> None:
    wait_for(lambda: (s := read_status(r, "cam-live")) and s.online, 30, "cam-live online")
    wait_for(lambda: read_status(r, "cam-dead"), 10, "cam-dead registered")

    rec = page_factory(web.url + "/cameras", wait_for=".cw-tile[data-camera='cam-live']")
    page = rec.page
    live = tile_of(page, "cam-live")
    page.wait_for_selector(".cw-tile[data-camera='cam-live'][data-state='online']", timeout=10000)
    page.wait_for_function(
        "() => { const i = document.querySelector(\".cw-tile[data-camera='cam-live'] img\");"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=10000,
    )
    assert "/live.mjpeg?fps=" in (live.locator("img").get_attribute("src") or "")

    # The picture moves: two grabs a moment apart differ (the clip has cars driving).
    first = grab(page, "cam-live")
    diffs = []
    for _ in range(8):
        time.sleep(1.0)
        diffs.append(float(np.mean(np.abs(grab(page, "cam-live") - first))))
        if diffs[-1] > 2.0:
            break
    assert max(diffs) > 2.0, f"live tile did not change: mean differences {diffs}"

    # The camera with no server shows the offline card, with no picture at all.
    dead = tile_of(page, "cam-dead")
    assert dead.get_attribute("data-state") == "offline"
    assert dead.locator("img").get_attribute("src") is None
    assert dead.locator(".cw-offline").is_visible()
    assert "离线" in dead.inner_text()
    assert "TopSecret" not in page.content()
    assert "测试·停车场" in live.inner_text() and "淮河路街道" in live.inner_text()
    assert "时延" in live.inner_text()
    page.screenshot(path=str(artifacts / "cameras-wall.png"))

    # Ingest stops: the live tile turns offline (not a frozen frame) within its limit ...
    ingest.stop()
    t0 = time.monotonic()
    page.wait_for_selector(".cw-tile[data-camera='cam-live'][data-state='offline']", timeout=10000)
    went_offline_s = time.monotonic() - t0
    assert live.locator("img").get_attribute("src") is None
    assert live.locator(".cw-offline").is_visible()
    page.screenshot(path=str(artifacts / "cameras-wall-offline.png"))
    # ... and comes back by itself when frames flow again.
    ingest.start()
    t1 = time.monotonic()
    page.wait_for_selector(".cw-tile[data-camera='cam-live'][data-state='online']", timeout=30000)
    page.wait_for_function(
        "() => { const i = document.querySelector(\".cw-tile[data-camera='cam-live'] img\");"
        " return i && i.getAttribute('src') && i.complete && i.naturalWidth > 0; }",
        timeout=10000,
    )
    back_s = time.monotonic() - t1
    print(f"offline shown after {went_offline_s:.1f} s; back {back_s:.1f} s after restart")

    # A click on the camera's view on the map opens it alone in the first tile.
    page.locator(".cw-dot-cam-dead").click()
    page.wait_for_selector("#cameras-wall.cw-n1", timeout=5000)
    page.wait_for_selector("#cameras-tile-0[data-camera='cam-dead']", timeout=5000)
    assert not page.locator("#cameras-tile-1").is_visible()
    assert page.locator("#cameras-layout input[value='1']").is_checked()

    # Back to all cameras in one tile: more cameras than tiles, so the tile rotates ...
    page.locator("#cameras-rotate").click()
    page.get_by_text("5 秒", exact=True).click()
    page.locator("#cameras-all").click()
    page.wait_for_selector("#cameras-pageno:has-text('1 / 2')", timeout=5000)
    shown = page.locator("#cameras-tile-0").get_attribute("data-camera")
    page.wait_for_function(
        "id => document.querySelector('#cameras-tile-0').dataset.camera !== id",
        arg=shown,
        timeout=8000,
    )
    assert page.locator("#cameras-pageno").inner_text().startswith("2 / 2")
    # ... until rotation is paused.
    page.locator("#cameras-pause").click()
    page.wait_for_selector("#cameras-pause:has-text('继续轮巡')", timeout=3000)
    held = page.locator("#cameras-tile-0").get_attribute("data-camera")
    time.sleep(6)
    assert page.locator("#cameras-tile-0").get_attribute("data-camera") == held

    # Opened for a place (as from an alarm): the cameras nearest it, those that see it first.
    # 80 m east of cam-live, inside its view; cam-dead is nearer (40 m) but looks north.
    lon, lat = at(80, 0)
    near = page_factory(
        f"{web.url}/cameras?lon={lon}&lat={lat}", wait_for="#cameras-tile-0[data-camera]"
    )
    page = near.page
    page.wait_for_selector("#cameras-tile-0[data-camera='cam-live']", timeout=10000)
    assert page.locator("#cameras-tile-1").get_attribute("data-camera") == "cam-dead"
    assert "cw-sees" in (page.locator("#cameras-tile-0").get_attribute("class") or "")
    assert "cw-sees" not in (page.locator("#cameras-tile-1").get_attribute("class") or "")
    assert "可见事发地点" in page.locator("#cameras-tile-0").inner_text()
    note = page.locator("#cameras-note").inner_text()
    # Stored positions carry 4 decimals (about 10 m), so distances are checked to that.
    found = dict(re.findall(r"(测试·\S+?)（(\d+) m）", note))
    assert set(found) == {"测试·停车场", "测试·断线"}, note
    assert abs(int(found["测试·停车场"]) - 80) <= 10 and abs(int(found["测试·断线"]) - 40) <= 10
    # The camera that sees the place comes first although the other one is nearer.
    assert int(found["测试·停车场"]) > int(found["测试·断线"])

    bad = page_factory(f"{web.url}/cameras?lon=abc&lat=1", wait_for="#cameras-note")
    bad.page.wait_for_function(
        "() => document.querySelector('#cameras-note').innerText.includes('地点参数无效')",
        timeout=5000,
    )
    assert not (rec.errors + near.errors + bad.errors), rec.errors + near.errors + bad.errors
