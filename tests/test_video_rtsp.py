"""Camera ingest against a real GStreamer RTSP server started per test."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from core.keys import keys
from ingest import video
from ingest.camera_config import CameraConfig
from ingest.camera_status import read_status
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "source" / "video" / "car-detection_intel.mp4"
SERVER = ROOT / "tools" / "rtsp_server.py"
SYSTEM_PY = "/usr/bin/python3"


def _gst_available() -> bool:
    try:
        probe = subprocess.run(
            [
                SYSTEM_PY,
                "-c",
                "import gi; gi.require_version('Gst', '1.0'); "
                "gi.require_version('GstRtspServer', '1.0'); "
                "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
                "assert all(Gst.ElementFactory.find(e) for e in "
                "('qtdemux', 'h264parse', 'rtph264pay', 'filesrc'))",
            ],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


pytestmark = [
    pytest.mark.rtsp,
    pytest.mark.skipif(
        not _gst_available(),
        reason="GStreamer RTSP server missing: install python3-gi, gir1.2-gst-rtsp-server-1.0, "
        "gstreamer1.0-plugins-good/-bad for the system python3",
    ),
]


class RtspServer:
    """tools/rtsp_server.py in a child process."""

    def __init__(self, port: int, *, silent: bool = False) -> None:
        self.port = port
        self.silent = silent
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        cmd = [SYSTEM_PY, str(SERVER), "--port", str(self.port)]
        cmd += ["--silent"] if self.silent else ["--file", str(CLIP), "--path", "/cam"]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 15
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("READY"):
                return
        self.stop()
        raise RuntimeError(f"RTSP server did not start: {''.join(seen)}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None


@pytest.fixture
def servers() -> Iterator[Callable[..., RtspServer]]:
    made: list[RtspServer] = []

    def make(*, silent: bool = False) -> RtspServer:
        s = RtspServer(free_port(), silent=silent)
        s.start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def supervisor(gridcc_env: dict[str, str]) -> Iterator[Callable[..., None]]:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(cams: list[CameraConfig], **kw: Any) -> None:
        t = threading.Thread(target=video.run, args=(stop,), kwargs={"cameras": cams, **kw})
        t.start()
        threads.append(t)

    yield start
    stop.set()
    for t in threads:
        t.join(20)
        assert not t.is_alive(), "supervisor did not stop"


def cam(cid: str, source: str, **kw: Any) -> CameraConfig:
    base: dict[str, Any] = {
        "id": cid,
        "name": "测试摄像头",
        "source": source,
        "lon": 113.66,
        "lat": 34.75,
        "frame_age_limit_s": 2,
        "open_timeout_s": 3,
        "read_timeout_s": 2,
        "reconnect_max_s": 2,
        "publish_interval_s": 0.25,
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


def events(r: redis.Redis, camera_id: str) -> list[dict[str, Any]]:
    out = []
    for _id, fields in r.xrange(keys().video_events):
        data = json.loads(fields[b"data"])
        if data["camera_id"] == camera_id:
            out.append(data)
    return out


def test_rtsp_camera_goes_online_offline_and_back(
    r: redis.Redis,
    servers: Callable[..., RtspServer],
    supervisor: Callable[..., None],
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = servers()
    secret_url = f"rtsp://admin:Zz-s3cret@127.0.0.1:{server.port}/cam"
    supervisor([cam("cam-rtsp", secret_url)])

    st = wait_for(
        lambda: (s := read_status(r, "cam-rtsp")) and s.online and s.fps > 0 and s,
        20,
        "camera online with fps",
    )
    image = r.get(keys().camera_jpeg("cam-rtsp"))
    assert image and image[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[1] == 640  # 768-wide source, downscaled
    # The clip is 12.5 fps; after a stall on a busy machine the reader briefly catches up.
    assert 5 < st.fps < 40
    assert r.sismember(keys().cameras, "cam-rtsp")
    assert [e["kind"] for e in events(r, "cam-rtsp")][:1] == ["online"]

    # The camera vanishes: offline within its frame-age limit (2 s) plus one status tick.
    pubsub = r.pubsub()
    pubsub.subscribe(keys().push_channel)
    server.stop()
    stopped = time.monotonic()
    wait_for(lambda: r.hget(keys().camera("cam-rtsp"), "online") == b"0", 6, "offline")
    assert not read_status(r, "cam-rtsp").online  # type: ignore[union-attr]
    assert time.monotonic() - stopped < 2 + 1.5
    assert "offline" in [e["kind"] for e in events(r, "cam-rtsp")]
    pushed = []
    while (m := pubsub.get_message(timeout=0.5)) is not None:
        if m["type"] == "message":
            pushed.append(json.loads(m["data"]))
    pubsub.close()
    assert {"topic": "camera", "id": "cam-rtsp"} in pushed
    offline_frame_ms = read_status(r, "cam-rtsp").last_frame_ms  # type: ignore[union-attr]

    # It comes back on the same port: the watchdog reconnects without anyone's help.
    server.start()
    st = wait_for(
        lambda: (
            (s := read_status(r, "cam-rtsp"))
            and s.online
            and s.fps > 0
            and (s.last_frame_ms or 0) > (offline_frame_ms or 0)
            and s
        ),
        20,
        "camera back online",
    )
    kinds = [e["kind"] for e in events(r, "cam-rtsp")]
    assert kinds.count("online") == 2 and kinds.index("offline") < len(kinds) - 1

    # The credentials never leave the process: not in Redis, not in the logs.
    dump = (
        b" ".join(v for v in r.hgetall(keys().camera("cam-rtsp")).values())
        + json.dumps(events(r, "cam-rtsp")).encode()
    )
    assert b"Zz-s3cret" not in dump and b"admin" not in dump
    assert st.source == f"rtsp://***@127.0.0.1:{server.port}/cam"
    out, err = capfd.readouterr()
    assert "Zz-s3cret" not in out + err and "admin:" not in out + err
    assert "cam-rtsp" in err  # the camera process did log (to the same stderr)


def test_silent_camera_does_not_stall_another(
    r: redis.Redis, servers: Callable[..., RtspServer], supervisor: Callable[..., None]
) -> None:
    good = servers()
    silent = servers(silent=True)
    supervisor([cam("cam-good", good.url, transport="udp"), cam("cam-silent", silent.url)])

    wait_for(lambda: (s := read_status(r, "cam-good")) and s.online, 20, "good camera online")
    st = wait_for(
        lambda: (s := read_status(r, "cam-silent")) and s.error and s,
        15,
        "silent camera reported",
    )
    assert not st.online and st.last_frame_ms is None
    assert "timed out" in st.error or "cannot open" in st.error

    # Meanwhile the good camera keeps delivering fresh frames.
    first = read_status(r, "cam-good")
    jpeg1 = r.get(keys().camera_jpeg("cam-good"))
    time.sleep(1.0)
    second = read_status(r, "cam-good")
    assert first and second and second.online and second.fps > 8
    assert (second.last_frame_ms or 0) - (first.last_frame_ms or 0) >= 500
    assert r.get(keys().camera_jpeg("cam-good")) != jpeg1
    wait_for(lambda: "offline" in [e["kind"] for e in events(r, "cam-silent")], 8, "offline event")
    assert read_status(r, "cam-good").online  # type: ignore[union-attr]


def test_zone_intrusion_over_rtsp_raises_one_event_with_a_snapshot(
    r: redis.Redis, servers: Callable[..., RtspServer], supervisor: Callable[..., None]
) -> None:
    from ingest.video_media import event_file

    server = servers()
    lane = {
        "id": "lane",
        "kind": "intrusion",
        "polygon": [[0.3, 0.15], [0.7, 0.15], [0.7, 0.95], [0.3, 0.95]],
        "rearm_s": 60,  # the next car, 10 s later, belongs to the same busy spell
    }
    supervisor([cam("cam-zone", server.url, analysis={"zones": [lane]})])
    (ev,) = wait_for(
        lambda: [e for e in events(r, "cam-zone") if e["kind"] == "intrusion"], 25, "intrusion"
    )
    assert ev["zone"] == "lane" and ev["severity"] == "orange"
    snap = event_file("cam-zone", ev["event_id"], "snapshot")
    assert snap is not None
    img = cv2.imread(str(snap))
    assert img is not None and img.shape[:2] == (432, 768)
    time.sleep(3.0)  # the clip is finished 2 s after the event
    assert event_file("cam-zone", ev["event_id"], "clip") is not None
    assert [e["kind"] for e in events(r, "cam-zone")].count("intrusion") == 1
