"""An HTTP MJPEG camera behind Basic authentication, onboarded through the registry: frames
and a snapshot arrive; the server stopping marks it offline, its return brings it back.
The credentials reach the camera but never the status hash, the stream or the logs."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from core.keys import keys
from devices.cameras import parse_new, register_camera
from ingest import video
from ingest.camera_status import read_status
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "source" / "video" / "car-detection_intel.mp4"
USER, SECRET = "viewer", "Mj9eg-S3cret"
FPS = 10


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def clip_jpegs(n: int = 60) -> list[bytes]:
    cap = cv2.VideoCapture(str(CLIP))
    out: list[bytes] = []
    while len(out) < n:
        ok, frame = cap.read()
        if not ok:
            break
        small = cv2.resize(frame, (480, 270), interpolation=cv2.INTER_AREA)
        out.append(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    cap.release()
    assert len(out) == n
    return out


class MjpegServer:
    """multipart/x-mixed-replace JPEGs of the clip on a loopback port, behind Basic auth."""

    def __init__(self, port: int, frames: list[bytes]) -> None:
        self.port, self.frames = port, frames
        self.running = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self.requests = 0
        self.authorised = 0

    def start(self) -> None:
        owner = self
        expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests += 1
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                owner.authorised += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                i = 0
                while owner.running.is_set():
                    jpg = owner.frames[i % len(owner.frames)]
                    i += 1
                    head = (
                        f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n"
                    )
                    try:
                        self.wfile.write(head.encode() + jpg + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(1 / FPS)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.running.set()
        threading.Thread(target=self.server.serve_forever, name="mjpeg", daemon=True).start()

    def stop(self) -> None:
        self.running.clear()  # ends every open stream
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def mjpeg() -> Iterator[MjpegServer]:
    srv = MjpegServer(free_port(), clip_jpegs())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def supervisor(gridcc_env: dict[str, str]) -> Iterator[threading.Thread]:
    stop = threading.Event()
    t = threading.Thread(
        target=video.run,
        args=(stop,),
        kwargs={"cameras": [], "use_registry": True, "registry_refresh_s": 0.5},
    )
    t.start()
    yield t
    stop.set()
    t.join(20)
    assert not t.is_alive()


def test_http_mjpeg_camera_goes_online_offline_and_back(
    r: redis.Redis,
    mjpeg: MjpegServer,
    supervisor: threading.Thread,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{mjpeg.port}/stream.mjpg"
    register_camera(
        r,
        parse_new(
            {
                "id": "cam-mjpeg",
                "name": "MJPEG 路口",
                "source": url,
                "username": USER,
                "password": SECRET,
                "lon": 113.65,
                "lat": 34.76,
                "frame_age_limit_s": 2,
            }
        ),
        by="test",
    )

    def status_online() -> Any:
        st = read_status(r, "cam-mjpeg")
        return st if st and st.online and st.fps > 0 else None

    st = wait_for(status_online, 20, "MJPEG camera online")
    assert mjpeg.authorised >= 1  # the credentials reached the server
    assert st.source == f"http://***@127.0.0.1:{mjpeg.port}/stream.mjpg"
    # The source serves 10 fps; the camera keeps its pace.
    wait_for(lambda: (s := status_online()) and 6 <= s.fps <= 14, 10, "fps near 10")
    jpeg = r.get(keys().camera_jpeg("cam-mjpeg"))
    assert jpeg is not None
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (270, 480)
    first = r.hget(keys().camera(cid := "cam-mjpeg"), "last_frame_ms")
    wait_for(lambda: r.hget(keys().camera(cid), "last_frame_ms") != first, 5, "newer frames")

    stopped = time.monotonic()
    mjpeg.stop()
    wait_for(lambda: (s := read_status(r, cid)) and not s.online, 10, "offline")
    offline_s = time.monotonic() - stopped
    # Offline within its frame-age limit (2 s) plus a publish tick and the read timeout.
    assert offline_s < 2 + 5 + 1, offline_s

    time.sleep(1.0)
    mjpeg.start()
    restarted = time.monotonic()
    wait_for(status_online, 20, "MJPEG camera back")
    back_s = time.monotonic() - restarted
    assert supervisor.is_alive()

    events = [f[b"data"] for _, f in r.xrange(keys().video_events)]
    kinds = [json.loads(e)["kind"] for e in events]
    assert kinds.count("online") >= 2 and "offline" in kinds
    stored = b"".join(v for v in r.hgetall(keys().camera(cid)).values()) + b"".join(events)
    assert SECRET.encode() not in stored and f"{USER}:".encode() not in stored
    out = capfd.readouterr()
    for text in (out.out, out.err, caplog.text):
        assert SECRET not in text and f"{USER}:{SECRET}" not in text
    print(f"offline after {offline_s:.1f} s; back {back_s:.1f} s after the server returned")
