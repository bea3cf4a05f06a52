"""Camera analysis cost and how many 720p 25 fps cameras one machine holds.

1. Cost: one run over a 720p 25 fps H.264 clip; every frame's decode (``cap.read``) and
   the camera worker's analysis (motion, zones, tampering, the clip ring) are timed in
   process CPU seconds separately, so the ratio compares like with like.
2. Capacity: N camera processes (the real supervisor, file sources paced at 25 fps, status
   and JPEG to Redis) for N = 2, 4, 6 ...; a camera keeps up when its measured frame rate
   stays at 95 % of 25 fps and its newest frame is younger than 1 s all through the
   measuring window. The largest N where every camera keeps up is reported.

Run: ``python -m bench.bench_video`` (needs ffmpeg and a Redis; REDIS_URL, default
redis://127.0.0.1:6379/0; keys under a throw-away prefix, removed afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import redis

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "source" / "video" / "car-detection_intel.mp4"

ANALYSIS: dict[str, Any] = {
    "fps": 6,
    "zones": [
        {
            "id": "lane",
            "kind": "intrusion",
            "polygon": [[0.3, 0.15], [0.7, 0.15], [0.7, 0.95], [0.3, 0.95]],
        },
        {"id": "lot", "kind": "crowding", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]},
        {
            "id": "gate",
            "kind": "loitering",
            "polygon": [[0.7, 0.1], [1, 0.1], [1, 0.6], [0.7, 0.6]],
        },
    ],
    "masks": [[[0, 0], [0.25, 0], [0.25, 0.06], [0, 0.06]]],
}


def make_clip(out: Path, seconds: int) -> Path:
    """The shared clip as 1280x720 at 25 fps H.264, looped to ``seconds``."""
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(CLIP),
            "-t", str(seconds), "-vf", "scale=1280:720,fps=25", "-an",
            "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p", str(out),
        ],
        check=True,
    )  # fmt: skip
    return out


def cost(clip: Path, frames: int) -> dict[str, float]:
    from ingest import video
    from ingest.camera_config import CameraConfig

    cam = CameraConfig(
        id="bench", name="bench", source=str(clip), lon=113.62, lat=34.74, analysis=ANALYSIS
    )
    cv2.setNumThreads(1)  # as in a camera process
    w = video.CameraWorker(cam, threading.Event(), place_code="4101")
    w.online = True
    w.session = video.Session(cam, w._on_frame)
    w.session.opened_mono = 0.0
    # Event media (snapshot, clip files) is timed apart: its cost follows the event rate,
    # and this clip has a car every few seconds, far more than a street camera.
    media_cpu = [0.0]
    store = w.media
    assert store is not None

    def timed(fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            c = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                media_cpu[0] += time.process_time() - c

        return wrapper

    store.capture = timed(store.capture)  # type: ignore[method-assign]
    store._write_clip = timed(store._write_clip)  # type: ignore[method-assign]
    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    decode = analysis = 0.0
    n = 0
    while n < frames:
        c0 = time.process_time()
        ok, frame = cap.read()
        c1 = time.process_time()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        t = n / 25.0  # the stream's clock: the analysis rate limit works as it does live
        w._on_frame(w.session, frame)
        w.analyse(t)
        assert w.media is not None
        w.media.tick(t)
        c2 = time.process_time()
        decode += c1 - c0
        analysis += c2 - c1
        n += 1
    cap.release()
    w.media.flush()
    events = sum(1 for e in w.events if e.kind not in ("motion_start", "motion_end"))
    pure = analysis - media_cpu[0]
    return {
        "frames": n,
        "events": events,
        "decode_ms_per_frame": round(1000 * decode / n, 3),
        "analysis_ms_per_frame": round(1000 * pure / n, 3),
        "event_media_ms_per_frame": round(1000 * media_cpu[0] / n, 3),
        "ratio": round((decode + pure) / decode, 3),
        "ratio_with_event_media": round((decode + analysis) / decode, 3),
    }


def capacity_run(clip: Path, n: int, warmup_s: float, measure_s: float) -> dict[str, Any]:
    from core import store
    from core.config import reset_settings
    from core.keys import keys
    from ingest import video
    from ingest.camera_config import CameraConfig
    from ingest.camera_status import read_status

    reset_settings()
    store.reset_clients()
    r = store.get_redis()
    cams = [
        CameraConfig(
            id=f"bench-{i}",
            name=f"bench {i}",
            source=str(clip),
            lon=113.62,
            lat=34.74,
            publish_interval_s=0.5,
            analysis=ANALYSIS,
        )
        for i in range(n)
    ]
    stop = threading.Event()
    t = threading.Thread(target=video.run, args=(stop,), kwargs={"cameras": cams}, daemon=True)
    t.start()
    worst_age = {c.id: 0 for c in cams}
    lag = {c.id: 0.0 for c in cams}

    def frames() -> dict[str, tuple[int, int]]:
        """Camera -> (frames decoded, when the newest arrived), written together."""
        pipe = r.pipeline(transaction=False)
        for c in cams:
            pipe.hmget(keys().camera(c.id), ["frames", "last_frame_ms"])
        return {
            c.id: (int(v[0] or 0), int(v[1] or 0))
            for c, v in zip(cams, pipe.execute(), strict=True)
        }

    try:
        # Starting a process per camera takes a while on a busy machine: measure once all run.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(f for f, _ in frames().values()):
            time.sleep(0.5)
        time.sleep(warmup_s)
        start_frames = frames()
        end = time.monotonic() + measure_s
        while time.monotonic() < end:
            for c in cams:
                st = read_status(r, c.id)
                age = st.frame_age_ms if st and st.frame_age_ms is not None else 10**9
                worst_age[c.id] = max(worst_age[c.id], age)
            time.sleep(0.5)
        end_frames = frames()
        for c in cams:
            # A paced file source catches up when it can: a camera within real time has
            # delivered 25 frames for every second between the two samples.
            (f0, t0), (f1, t1) = start_frames[c.id], end_frames[c.id]
            lag[c.id] = (t1 - t0) / 1000 - (f1 - f0) / 25.0
    finally:
        stop.set()
        t.join(30)
    ok = all(lag[c] < 1.0 and worst_age[c] < 1000 for c in lag)
    return {
        "cameras": n,
        "keeps_up": ok,
        "max_lag_s": round(max(lag.values()), 2),
        "max_frame_age_ms": max(worst_age.values()),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=750, help="frames for the cost run")
    ap.add_argument("--counts", default="2,4,6,8,10,12", help="camera counts to try, ascending")
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument("--measure", type=float, default=10.0)
    ap.add_argument("--skip-capacity", action="store_true")
    args = ap.parse_args(argv)
    prefix = f"benchvideo{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
        os.environ["GRIDCC_PREFIX"] = prefix
        os.environ["VAR_DIR"] = str(Path(tmp) / "var")
        clip = make_clip(Path(tmp) / "clip720p25.mp4", 60)
        result: dict[str, Any] = {"cost": cost(clip, args.frames), "capacity": []}
        print(json.dumps(result["cost"]), flush=True)
        best = 0
        if not args.skip_capacity:
            for n in (int(x) for x in args.counts.split(",")):
                run = capacity_run(clip, n, args.warmup, args.measure)
                print(json.dumps(run), flush=True)
                result["capacity"].append(run)
                if not run["keeps_up"]:
                    break
                best = n
            result["max_cameras_within_1s"] = best
        print(json.dumps(result, indent=2))
        r = redis.Redis.from_url(os.environ["REDIS_URL"])
        for key in r.scan_iter(match=f"{prefix}:*", count=1000):
            r.delete(key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
