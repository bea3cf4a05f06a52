"""Media routes over a real file camera: snapshot, MJPEG, the camera list."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import pytest
import redis
from flask import Flask
from werkzeug.serving import make_server

from core.keys import keys
from dashboard.media import media_bp
from ingest import video
from ingest.camera_config import CameraConfig
from ingest.camera_status import read_status
from tests.conftest import free_port


def cam(cid: str, source: str, **kw: Any) -> CameraConfig:
    base: dict[str, Any] = {
        "id": cid,
        "name": "测试摄像头",
        "source": source,
        "lon": 113.66,
        "lat": 34.75,
        "frame_age_limit_s": 2,
        "open_timeout_s": 1,
        "read_timeout_s": 1,
        "publish_interval_s": 0.1,
    }
    base.update(kw)
    return CameraConfig(**base)


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def cameras_running(r: redis.Redis) -> Iterator[int]:
    """The shared clip as a file camera, plus an RTSP camera with credentials and no server."""
    dead_port = free_port()
    cams = [
        cam("cam-file", "data/source/video/car-detection_intel.mp4"),
        cam("cam-locked", f"rtsp://operator:Pa55-word@127.0.0.1:{dead_port}/live?token=abc123"),
    ]
    stop = threading.Event()
    t = threading.Thread(target=video.run, args=(stop,), kwargs={"cameras": cams})
    t.start()
    try:
        wait_for(lambda: r.get(keys().camera_jpeg("cam-file")), 15, "first snapshot")
        yield dead_port
    finally:
        stop.set()
        t.join(20)


@pytest.fixture
def app() -> Flask:
    app = Flask("media-test")
    app.register_blueprint(media_bp)
    return app


def test_file_camera_plays_at_native_rate(r: redis.Redis, cameras_running: int) -> None:
    st = wait_for(
        lambda: (s := read_status(r, "cam-file")) and s.online and s.fps > 0 and s,
        10,
        "file camera online",
    )
    time.sleep(1.0)  # a full fps window
    st = read_status(r, "cam-file")
    assert st is not None and 10.5 < st.fps < 14.5  # the clip's native 12.5 fps, not decode speed
    assert st.frame_age_ms is not None and st.frame_age_ms < 1000


def test_snapshot_and_camera_list(r: redis.Redis, cameras_running: int, app: Flask) -> None:
    client = app.test_client()
    resp = client.get("/media/cameras/cam-file/snapshot.jpg")
    assert resp.status_code == 200
    assert resp.mimetype == "image/jpeg"
    assert "no-store" in resp.headers["Cache-Control"]
    img = cv2.imdecode(np.frombuffer(resp.data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (360, 640)

    resp = client.get("/media/cameras/nope/snapshot.jpg")
    assert resp.status_code == 404 and resp.text == "not found"
    assert client.get("/media/cameras/..%2Fx/snapshot.jpg").status_code == 404

    # The locked camera has no server: listed, offline, and its credentials masked.
    wait_for(lambda: (s := read_status(r, "cam-locked")) and s.error, 10, "locked camera error")
    resp = client.get("/media/cameras")
    assert resp.status_code == 200
    listed = {c["id"]: c for c in resp.get_json()}
    assert set(listed) == {"cam-file", "cam-locked"}
    assert listed["cam-file"]["online"] is True and listed["cam-file"]["lon"] == 113.66
    locked = listed["cam-locked"]
    assert locked["online"] is False and locked["error"]
    assert locked["source"] == f"rtsp://***@127.0.0.1:{cameras_running}/live?token=***"
    assert (
        "Pa55-word" not in resp.text and "operator" not in resp.text and "abc123" not in resp.text
    )
    assert client.get("/media/cameras/cam-locked/snapshot.jpg").status_code == 503

    # A scope hook hides what the user may not see.
    app.config["GRIDCC_CAMERA_FILTER"] = lambda cid: cid != "cam-file"
    assert [c["id"] for c in client.get("/media/cameras").get_json()] == ["cam-locked"]
    assert client.get("/media/cameras/cam-file/snapshot.jpg").status_code == 404


def _read_frames(sock: socket.socket, count: int) -> list[tuple[float, bytes]]:
    buf = b""
    frames: list[tuple[float, bytes]] = []
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert b"200 OK" in head.split(b"\r\n")[0]
    assert b"multipart/x-mixed-replace; boundary=gridccframe" in head
    while len(frames) < count:
        start = buf.find(b"--gridccframe\r\n")
        end = buf.find(b"\r\n\r\n", start) if start >= 0 else -1
        if end >= 0:
            headers = buf[start:end].decode()
            length = int(headers.split("Content-Length: ")[1].split("\r\n")[0])
            body_end = end + 4 + length
            if len(buf) >= body_end:
                frames.append((time.monotonic(), buf[end + 4 : body_end]))
                buf = buf[body_end:]
                continue
        chunk = sock.recv(65536)
        assert chunk, "stream ended early"
        buf += chunk
    return frames


def test_mjpeg_stream_is_rate_bounded_and_ends_with_the_client(
    r: redis.Redis, cameras_running: int, app: Flask
) -> None:
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        before = threading.active_count()
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /media/cameras/cam-file/live.mjpeg HTTP/1.1\r\nHost: x\r\n\r\n")
        frames = _read_frames(sock, 7)
        for _, jpeg in frames:
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape[1] == 640
        assert len({j for _, j in frames}) >= 5  # live: the picture changes
        span = frames[-1][0] - frames[0][0]
        assert span >= 6 / 5 * 0.85  # at most 5 frames per second
        assert threading.active_count() > before
        sock.close()
        # The streaming thread notices the closed socket and ends.
        wait_for(lambda: threading.active_count() <= before, 5, "stream thread to end")

        unknown = socket.create_connection(("127.0.0.1", port), timeout=10)
        unknown.sendall(b"GET /media/cameras/nope/live.mjpeg HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 404 " in unknown.recv(4096).split(b"\r\n")[0]
        unknown.close()
    finally:
        server.shutdown()


def test_video_events_carry_state_changes(r: redis.Redis, cameras_running: int) -> None:
    wait_for(
        lambda: any(
            json.loads(f[b"data"])["kind"] == "online" for _, f in r.xrange(keys().video_events)
        ),
        10,
        "online event",
    )
    entries = [json.loads(f[b"data"]) for _, f in r.xrange(keys().video_events)]
    online = [e for e in entries if e["camera_id"] == "cam-file" and e["kind"] == "online"]
    assert len(online) == 1
    assert set(online[0]) >= {"camera_id", "kind", "ts_ms", "motion"}
    assert abs(online[0]["ts_ms"] - time.time() * 1000) < 60_000
