"""Video events end to end: camera analysis → stream → worker → alarm and work order; media."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from flask import Flask

from alarms import worker
from core.config import get_settings
from core.keys import keys
from core.models import Alarm, AlarmState, WorkOrder
from dashboard.media import media_bp
from grids.locate import locator
from ingest import video
from ingest.camera_config import CameraConfig
from ingest.video_media import MediaStore, event_file
from ingest.video_zones import AnalysisConfig

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "source" / "video" / "car-detection_intel.mp4"
FPS = 12.5
LON, LAT = 113.6254, 34.7466


def camera(**analysis: Any) -> CameraConfig:
    return CameraConfig(
        id="cam-lot",
        name="停车场",
        source=str(CLIP),
        lon=LON,
        lat=LAT,
        analysis={
            "zones": [
                {
                    "id": "lane",
                    "name": "车行道",
                    "kind": "intrusion",
                    "polygon": [[0.3, 0.15], [0.7, 0.15], [0.7, 0.95], [0.3, 0.95]],
                }
            ],
            **analysis,
        },
    )


def play(w: video.CameraWorker, frames: int) -> float:
    """The clip through the camera worker's own frame, analysis and media path, at file speed."""
    cap = cv2.VideoCapture(str(CLIP))
    # A session that is never started: the test hands its frames to the worker itself.
    w.session = video.Session(w.cam, w._on_frame)
    w.session.opened_mono = 0.0
    t = 0.0
    for n in range(frames):
        ok, frame = cap.read()
        assert ok
        t = 1000.0 + n / FPS
        w._on_frame(w.session, frame)
        w.analyse(t)
        assert w.media is not None
        w.media.tick(t)
    cap.release()
    return t


def stream(r: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(f[b"data"]) for _, f in r.xrange(key)]


def open_alarms(r: redis.Redis) -> list[Alarm]:
    ids = [i.decode() for i in r.zrange(keys().alarms_open, 0, -1)]
    return [Alarm.model_validate_json(r.get(keys().alarm(i))) for i in ids]  # type: ignore[arg-type]


def work(r: redis.Redis) -> None:
    worker.ensure_groups(r)
    while worker.step(r, "test-worker", block_ms=100):
        pass


@pytest.fixture
def app() -> Flask:
    app = Flask("video-events-test")
    app.register_blueprint(media_bp)
    return app


def test_intrusion_becomes_one_event_alarm_and_order(r: redis.Redis, app: Flask) -> None:
    w = video.CameraWorker(camera(), threading.Event())
    w.online = True  # state changes are not under test here
    t = play(w, 160)  # 12.8 s: one car passes the lane
    w.publish(t)

    events = [
        e for e in stream(r, keys().video_events) if e["kind"] not in ("motion_start", "motion_end")
    ]
    assert [(e["kind"], e["zone"]) for e in events] == [("intrusion", "lane")]
    ev = events[0]
    assert ev["camera_id"] == "cam-lot" and ev["severity"] == "orange"
    assert abs(ev["ts_ms"] - time.time() * 1000) < 60_000
    assert ev["snapshot"] == f"/media/cameras/cam-lot/events/{ev['event_id']}/snapshot.jpg"
    assert ev["clip"] == f"/media/cameras/cam-lot/events/{ev['event_id']}/clip"

    client = app.test_client()
    snap = client.get(ev["snapshot"])
    assert snap.status_code == 200 and snap.mimetype == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(snap.data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] == 768  # the full frame (narrower than 960)
    clip = client.get(ev["clip"])
    assert clip.status_code == 200 and clip.mimetype == "video/x-msvideo"
    path = get_settings().var_dir / "clip-check.avi"
    path.write_bytes(clip.data)
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    n = 0
    while (got := cap.read())[0]:
        assert got[1].shape[:2] == (360, 640)
        n += 1
    cap.release()
    # 3 s before and 2 s after, at the analysis rate (6 fps), played at that rate.
    assert 5.5 <= fps <= 6.5 and 26 <= n <= 33 and 4.3 <= n / fps <= 5.5

    # The worker turns it into one alarm located at the camera's grid, and one work order.
    work(r)
    grid = locator().locate(LON, LAT).grid
    alarms = open_alarms(r)
    assert len(alarms) == 1
    a = alarms[0]
    assert a.device_type == "camera" and a.device_id == "cam-lot"
    assert a.rule == "video:intrusion:lane" and a.severity == "orange"
    assert a.place.grid == grid and grid
    assert "停车场" in a.title and "车行道" in a.title and "区域入侵" in a.title
    assert a.history[0]["snapshot"] == ev["snapshot"] and a.history[0]["clip"] == ev["clip"]
    assert a.order_id
    order = WorkOrder.model_validate_json(r.get(keys().order(a.order_id)))  # type: ignore[arg-type]
    assert order.alarm_id == a.id and order.place.grid == grid and order.priority == 2
    assert r.zcard(keys().orders_open) == 1

    # The zone fires again while the alarm is open: recorded on it, no second alarm or order.
    again = {**ev, "ts_ms": ev["ts_ms"] + 20_000, "event_id": ev["event_id"] + "-1"}
    r.xadd(keys().video_events, {"data": json.dumps(again)})
    work(r)
    alarms = open_alarms(r)
    assert len(alarms) == 1 and alarms[0].history[-1]["action"] == "repeated"
    assert r.zcard(keys().orders_open) == 1
    assert r.xlen(keys().dead) == 0  # motion_start/end and online were ignored, not refused


def test_offline_alarm_is_cleared_when_the_camera_returns(r: redis.Redis) -> None:
    w = video.CameraWorker(camera(), threading.Event())
    w.publish(0.0)  # registers the camera's position
    now = int(time.time() * 1000)
    for kind, ts in (("offline", now), ("motion_start", now + 1), ("online", now + 2)):
        data = {"camera_id": "cam-lot", "kind": kind, "ts_ms": ts, "motion": 0.0}
        if kind == "offline":
            data.update(zone="camera", error="no frame for more than 5 s")
        r.xadd(keys().video_events, {"data": json.dumps(data)})
        work(r)
        if kind == "offline":
            (a,) = open_alarms(r)
            assert a.rule == "video:offline:camera" and a.order_id  # orange opens an order
    assert open_alarms(r) == []
    a = Alarm.model_validate_json(r.get(keys().alarm(a.id)))  # type: ignore[arg-type]
    assert a.state == AlarmState.CLEARED and a.history[-1]["action"] == "cleared"
    assert not r.exists(keys().alarm_lock("cam-lot", "video:offline:camera"))
    assert r.xlen(keys().dead) == 0

    # A camera nobody registered cannot be placed: a dead letter with its reason.
    bad = {"camera_id": "cam-nowhere", "kind": "intrusion", "zone": "z", "ts_ms": now}
    r.xadd(keys().video_events, {"data": json.dumps(bad)})
    work(r)
    (dead,) = r.xrange(keys().dead)
    assert b"cam-nowhere" in dead[1][b"detail"] and b"not registered" in dead[1][b"detail"]


def test_retention_removes_old_media(tmp_path: Path) -> None:
    cfg = AnalysisConfig.model_validate({"retention": {"max_events": 3, "max_age_days": 1}})
    store = MediaStore("cam-lot", cfg, root=tmp_path)
    frame = np.full((432, 768, 3), 120, np.uint8)
    now_ms = int(time.time() * 1000)
    old = store.capture(frame, 0.0, now_ms - 2 * 86_400_000, "intrusion", "lane")
    assert (tmp_path / "cam-lot" / old["event_id"]).is_dir()
    ids = [store.capture(frame, 0.0, now_ms + i, "intrusion", "lane")["event_id"] for i in range(5)]
    store.offer(frame, 10.0)
    store.tick(100.0)  # finishes the clips
    kept = sorted(p.name for p in (tmp_path / "cam-lot").iterdir())
    assert kept == sorted(ids[-3:])  # the newest three; the two-day-old one is gone too
    for eid in ids[-3:]:
        assert event_file("cam-lot", eid, "clip", root=tmp_path) is not None


def test_event_media_routes_refuse_traversal(r: redis.Redis, app: Flask, tmp_path: Path) -> None:
    root = get_settings().var_dir / "media"
    store = MediaStore("cam-lot", AnalysisConfig(), root=root)
    frame = np.full((432, 768, 3), 90, np.uint8)
    ev = store.capture(frame, 0.0, int(time.time() * 1000), "tampering", "covered")
    client = app.test_client()
    assert client.get(ev["snapshot"]).status_code == 200
    # The clip is still being recorded: not there yet, and the client is told to retry.
    pending = client.get(ev["clip"])
    assert pending.status_code == 503 and pending.headers["Retry-After"]

    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "snapshot.jpg").write_bytes(b"secret")
    (root / "secret.jpg").write_bytes(b"secret")
    # A link planted in the media folder that points outside it is not followed.
    os.symlink(secret, root / "cam-lot" / "1767225600000-intrusion-x")
    for url in (
        "/media/cameras/cam-lot/events/1767225600000-intrusion-x/snapshot.jpg",
        "/media/cameras/cam-lot/events/..%2F..%2Fsecret/snapshot.jpg",
        "/media/cameras/cam-lot/events/../../secret.jpg",
        "/media/cameras/..%2Fcam-lot/events/" + ev["event_id"] + "/snapshot.jpg",
        "/media/cameras/cam-lot/events/%2e%2e/snapshot.jpg",
        "/media/cameras/cam-lot/events/1767225600000-intrusion-nope/clip",
        "/media/cameras/cam-other/events/" + ev["event_id"] + "/snapshot.jpg",
    ):
        resp = client.get(url)
        assert resp.status_code == 404, url
        assert b"secret" not in resp.data
    assert event_file("cam-lot", "../../outside", "snapshot", root=root) is None
    assert event_file("cam-lot", ev["event_id"], "../event.json", root=root) is None
    # The scope hook hides another jurisdiction's camera media as well.
    app.config["GRIDCC_CAMERA_FILTER"] = lambda cid: cid != "cam-lot"
    assert client.get(ev["snapshot"]).status_code == 404
