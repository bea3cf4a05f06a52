"""Camera ingest follows the registry: a registered camera starts, a decommissioned one stops,
while the cameras of the file run on untouched."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from core.keys import keys
from devices.cameras import decommission_camera, parse_new, register_camera
from ingest import video
from ingest.camera_config import CameraConfig
from ingest.camera_status import read_status

CLIP = "data/source/video/car-detection_intel.mp4"


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def supervisor(gridcc_env: dict[str, str]) -> Iterator[Callable[..., threading.Thread]]:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(cams: list[CameraConfig], **kw: Any) -> threading.Thread:
        t = threading.Thread(target=video.run, args=(stop,), kwargs={"cameras": cams, **kw})
        t.start()
        threads.append(t)
        return t

    yield start
    stop.set()
    for t in threads:
        t.join(20)
        assert not t.is_alive()


def online(r: redis.Redis, cid: str) -> bool:
    st = read_status(r, cid)
    return bool(st and st.online and st.fps > 0)


def test_registered_camera_starts_and_decommissioned_one_stops(
    r: redis.Redis, supervisor: Callable[..., threading.Thread]
) -> None:
    fixed = CameraConfig(
        id="cam-fixed",
        name="固定",
        source=CLIP,
        lon=113.66,
        lat=34.75,
        frame_age_limit_s=2,
        publish_interval_s=0.2,
    )
    sup = supervisor([fixed], use_registry=True, registry_refresh_s=0.5)
    wait_for(lambda: online(r, "cam-fixed"), 15, "the file's camera online")
    assert not r.sismember(keys().cameras, "cam-new")

    t0 = time.monotonic()
    register_camera(
        r,
        parse_new(
            {
                "id": "cam-new",
                "name": "新接入",
                "source": CLIP,
                "lon": 113.70,
                "lat": 34.76,
                "direction_deg": 45,
                "fov_deg": 80,
                "frame_age_limit_s": 2,
            }
        ),
        by="test",
    )
    wait_for(lambda: online(r, "cam-new"), 15, "the registered camera online")
    picked_up_s = time.monotonic() - t0
    st = read_status(r, "cam-new")
    assert st is not None and st.direction_deg == 45 and st.fov_deg == 80
    assert st.lon == pytest.approx(113.70) and st.frame_age_limit_ms == 2000
    jpeg = r.get(keys().camera_jpeg("cam-new"))
    assert jpeg is not None
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] == 640
    assert r.sismember(keys().cameras, "cam-new")

    t1 = time.monotonic()
    decommission_camera(r, "cam-new", by="test", reason="拆除")
    # Off the wall, no live frame, and the process gone: nothing brings it back.
    wait_for(
        lambda: (
            not r.sismember(keys().cameras, "cam-new")
            and not r.exists(keys().camera_jpeg("cam-new"))
        ),
        10,
        "decommissioned camera off the wall",
    )
    stopped_s = time.monotonic() - t1
    time.sleep(2.0)
    assert not r.sismember(keys().cameras, "cam-new")
    assert not r.exists(keys().camera_jpeg("cam-new"))
    gone = read_status(r, "cam-new")
    assert gone is not None and not gone.online and gone.error == "decommissioned"
    names = [p.name for p in multiprocessing.active_children()]
    assert "camera-cam-new" not in names and "camera-cam-fixed" in names

    # The file's camera ran on throughout: the supervisor never restarted.
    assert sup.is_alive() and online(r, "cam-fixed")
    print(f"picked up in {picked_up_s:.1f} s; off the wall after {stopped_s:.1f} s")
