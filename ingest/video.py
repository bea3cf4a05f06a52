"""Camera ingest: a supervisor with one process per camera.

Each camera process keeps only the newest decoded frame (a reader thread), reopens
the capture when frames stop coming (a watchdog with backoff), measures motion with
MOG2 on a small frame, and every ``publish_interval_s`` writes the latest JPEG and
its status to Redis. State changes (online, offline, motion start/end) go to the
video event stream and to the push channel. Redis outages are ridden out: writes
are retried on the next tick and state-change events wait in memory.

The supervisor runs the cameras of the reviewed file (layouts/cameras.yaml) and those
onboarded through the device path (``devices.cameras``, in Redis), which it re-reads every
few seconds: a newly registered camera starts, a decommissioned one stops.

``python -m ingest.video`` (or ``python app.py ingest-video``) runs the supervisor.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import psutil
import redis

from core import push
from core.config import get_settings
from core.keys import keys
from core.store import get_redis
from core.timeutil import now_ms
from ingest.camera_config import CameraConfig, CameraConfigError, load_cameras, mask_text
from ingest.camera_status import encode, static_fields
from ingest.video_analysis import Analyzer, Detection
from ingest.video_media import MediaStore

log = logging.getLogger("gridcc.video")

Image = npt.NDArray[np.uint8]

MOTION_WIDTH = 320
# MOG2 calls everything foreground until it has seen a few frames.
MOTION_WARMUP_FRAMES = 15
EVENT_QUEUE_MAX = 1000
EXIT_FATAL = 3
# The mode in force at the camera's place is re-read this often.
MODE_REFRESH_S = 5.0
# Cameras registered or decommissioned through the device path are picked up this often.
REGISTRY_REFRESH_S = 3.0


class StopFlag(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class SourceError(RuntimeError):
    """The camera's source can never work as configured (e.g. the file is missing)."""


def open_capture(cam: CameraConfig) -> cv2.VideoCapture:
    """A capture on the camera's source, with open and read timeouts for network sources."""
    if cam.is_file:
        path = cam.source_path
        if not path.is_file():
            raise SourceError(f"video file {path.name} does not exist")
        return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if cam.is_rtsp:
        # OpenCV reads this variable at every open; one process per camera keeps it private.
        others = [
            o
            for o in os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS", "").split("|")
            if o and not o.startswith("rtsp_transport;")
        ]
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "|".join(
            [f"rtsp_transport;{cam.transport}", *others]
        )
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(cam.open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(cam.read_timeout_s * 1000),
    ]
    return cv2.VideoCapture(cam.source, cv2.CAP_FFMPEG, params)


class Session(threading.Thread):
    """One capture session: open, read until the stream fails or the session is dropped."""

    def __init__(self, cam: CameraConfig, on_frame: Any) -> None:
        super().__init__(name=f"capture-{cam.id}", daemon=True)
        self.cam = cam
        self.on_frame = on_frame
        self.dropped = threading.Event()
        self.started_mono = time.monotonic()
        self.opened_mono: float | None = None
        self.last_frame_mono: float | None = None
        self.frames = 0
        self.error = ""
        self.fatal = False

    def run(self) -> None:
        try:
            self._run()
        except SourceError as exc:
            self.error, self.fatal = str(exc), True
        except Exception as exc:  # a capture thread must never take the process down silently
            self.error = mask_text(f"capture failed: {exc}", self.cam.source)
            log.exception("camera %s: capture thread failed", self.cam.id)

    def _run(self) -> None:
        cap = open_capture(self.cam)
        try:
            if not cap.isOpened():
                self.error = f"cannot open {self.cam.masked_source}"
                return
            self.opened_mono = time.monotonic()
            period = 0.0
            if self.cam.is_file:
                fps = cap.get(cv2.CAP_PROP_FPS)
                # A file plays at its native rate so that it behaves like a live camera.
                period = 1.0 / fps if fps and 1 <= fps <= 240 else 1.0 / 25
            due = time.monotonic()
            while not self.dropped.is_set():
                ok, frame = cap.read()
                if not ok and self.cam.is_file and self.frames:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = cap.read()
                if not ok:
                    self.error = (
                        "no frame within the read timeout or stream ended"
                        if not self.cam.is_file
                        else "video file has no readable frame"
                    )
                    return
                if self.dropped.is_set():
                    return
                self.frames += 1
                self.last_frame_mono = time.monotonic()
                self.on_frame(self, frame)
                if period:
                    due += period
                    delay = due - time.monotonic()
                    if delay > 0:
                        self.dropped.wait(delay)
                    elif delay < -1.0:
                        due = time.monotonic()
        finally:
            cap.release()


@dataclass
class _Event:
    kind: str
    ts_ms: int
    motion: float
    error: str = ""
    # Analysis events: zone, severity, media refs, the measured value and its threshold.
    extra: dict[str, Any] = field(default_factory=dict)


class MotionGate:
    """Foreground share with hysteresis: a state holds until the other side lasts ``min_s``."""

    def __init__(self, threshold: float, min_s: float, width: int = MOTION_WIDTH) -> None:
        self.threshold = threshold
        self.min_s = min_s
        self.width = width
        # The last small frame and its foreground (None while MOG2 warms up), for zones.
        self.small: npt.NDArray[Any] | None = None
        self.mask: npt.NDArray[Any] | None = None
        self.subtractor = cv2.createBackgroundSubtractorMOG2(
            history=300, varThreshold=25, detectShadows=False
        )
        self.seen = 0
        self.share = 0.0
        self.active = False
        self._since: float | None = None

    def feed(self, frame: Image, mono: float) -> bool:
        """Feed a frame; True when ``active`` changed."""
        h, w = frame.shape[:2]
        # Linear is a sixth of the cost of area interpolation at 720p; the blur below
        # removes the aliasing it leaves.
        small = cv2.resize(
            frame, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_LINEAR
        )
        self.small = small
        mask = self.subtractor.apply(cv2.GaussianBlur(small, (5, 5), 0))
        self.seen += 1
        if self.seen <= MOTION_WARMUP_FRAMES:
            self.share = 0.0
            self.mask = None
            return False
        self.mask = mask
        self.share = float(cv2.countNonZero(mask)) / mask.size
        return self.judge(self.share >= self.threshold, mono)

    def judge(self, above: bool, mono: float) -> bool:
        if above == self.active:
            self._since = None
            return False
        if self._since is None:
            self._since = mono
        if mono - self._since >= self.min_s:
            self.active = above
            self._since = None
            return True
        return False

    def reset(self) -> None:
        self.active = False
        self._since = None
        self.share = 0.0


@dataclass
class CameraWorker:
    """Everything one camera process does; ``run`` until ``stop`` is set."""

    cam: CameraConfig
    stop: StopFlag
    redis_factory: Any = get_redis
    # The camera's jurisdiction code (for the mode in force); located here when None.
    place_code: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _new_frame: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.session: Session | None = None
        self.frame: Image | None = None
        self.frame_seq = 0
        self.frame_ms: int | None = None
        self.frame_mono: float | None = None
        self.frame_times: deque[float] = deque(maxlen=64)
        acfg = self.cam.analysis
        self.motion = MotionGate(self.cam.motion_threshold, self.cam.motion_min_s, acfg.width)
        self.analyzer = Analyzer(acfg) if acfg.enabled else None
        self.media = MediaStore(self.cam.id, acfg) if acfg.enabled else None
        self._analysis_due = 0.0
        self._mode_due = 0.0
        self.online: bool | None = None
        self.error = ""
        self.failures = 0
        self.next_open = 0.0
        self.events: deque[_Event] = deque(maxlen=EVENT_QUEUE_MAX)
        self.push_due = False
        self.published_seq = -1
        self._analysed_seq = -1
        self.started_mono = time.monotonic()
        self.redis_down_since: float | None = None
        self.fatal = ""

    # Reader side
    def _on_frame(self, session: Session, frame: Image) -> None:
        with self._lock:
            if session is not self.session:
                return
            # Only the newest frame is kept: analysis never works through a backlog.
            self.frame = frame
            self.frame_seq += 1
            self.frame_ms = now_ms()
            self.frame_mono = time.monotonic()
            # Frames buffered while FFmpeg probed the stream arrive in one burst after
            # the open; counting them would report hundreds of frames per second.
            if session.opened_mono is None or self.frame_mono - session.opened_mono >= 0.5:
                self.frame_times.append(self.frame_mono)
        self._new_frame.set()

    def fps(self, mono: float) -> float:
        with self._lock:
            times = [t for t in self.frame_times if mono - t <= 2.0]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    # Watchdog
    def _backoff(self) -> float:
        return float(min(0.5 * 2 ** max(0, self.failures - 1), self.cam.reconnect_max_s))

    def watchdog(self, mono: float) -> None:
        s = self.session
        if s is not None and s.is_alive():
            if s.opened_mono is None:
                deadline = s.started_mono + self.cam.open_timeout_s + self.cam.read_timeout_s + 1
                stale = mono > deadline
                why = f"opening {self.cam.masked_source} timed out"
            else:
                newest = s.last_frame_mono or s.opened_mono
                stale = mono - newest > self.cam.frame_age_limit_s
                why = f"no frame for more than {self.cam.frame_age_limit_s:g} s"
            if not stale:
                return
            # A capture stuck inside FFmpeg cannot be interrupted; drop it and open anew.
            s.dropped.set()
            s.error = s.error or why
        if s is not None:
            if s.fatal:
                self.fatal = s.error
                return
            if s.frames:
                self.failures = 0
                self.next_open = mono + 0.2
            else:
                self.failures += 1
                self.next_open = mono + self._backoff()
            self.error = s.error
            if s.error:
                log.warning(
                    "camera %s: %s; reopening in %.1f s",
                    self.cam.id,
                    s.error,
                    self.next_open - mono,
                )
            with self._lock:
                self.session = None
        if mono >= self.next_open:
            with self._lock:
                self.session = Session(self.cam, self._on_frame)
            self.session.start()

    # Analysis and publishing
    def analyse(self, mono: float) -> None:
        with self._lock:
            frame = self.frame
            seq = self.frame_seq
        if frame is None or seq == self._analysed_seq:
            return
        self._analysed_seq = seq
        # At most cam.analysis.fps frames a second: events last half a second or more, and
        # analysing every frame of a 25 fps stream would cost more than decoding it.
        if mono < self._analysis_due:
            return
        period = 1.0 / self.cam.analysis.fps
        self._analysis_due = max(self._analysis_due + period, mono - period)
        # One resize of the full frame (the costly one) serves the clip ring and the motion
        # detector, which shrinks it further for next to nothing.
        medium = frame
        if self.media is not None:
            medium = self.media.offer(frame, mono)
        if self.motion.feed(medium, mono):
            self.push_due = True
            self.events.append(
                _Event(
                    "motion_start" if self.motion.active else "motion_end",
                    now_ms(),
                    self.motion.share,
                )
            )
        if self.analyzer is not None and self.motion.small is not None:
            for det in self.analyzer.feed(self.motion.small, self.motion.mask, mono):
                self._raise(det, frame, mono)

    def _raise(self, det: Detection, frame: Image, mono: float) -> None:
        acfg = self.cam.analysis
        zone = next((z for z in acfg.zones if z.id == det.zone), None)
        ts = now_ms()
        extra: dict[str, Any] = {
            "zone": det.zone,
            "zone_name": zone.name if zone is not None else "",
            "camera_name": self.cam.name,
            "severity": acfg.severity_of(det.kind, zone).value,
            "value": det.value,
            "threshold": det.threshold,
            "mode": self.analyzer.mode.value if self.analyzer is not None else "",
            **det.detail,
        }
        if self.media is not None:
            try:
                extra.update(self.media.capture(frame, mono, ts, det.kind, det.zone))
            except OSError as exc:
                # The event still counts without its media; the error says why it is missing.
                log.error("camera %s: cannot store event media: %s", self.cam.id, exc)
                extra["media_error"] = str(exc)
        log.info("camera %s: %s in %s (%.3f)", self.cam.id, det.kind, det.zone, det.value)
        self.push_due = True
        self.events.append(_Event(det.kind, ts, self.motion.share, extra=extra))

    def refresh_mode(self, r: redis.Redis, mono: float) -> None:
        if self.analyzer is None or mono < self._mode_due:
            return
        self._mode_due = mono + MODE_REFRESH_S
        from modes.service import get_mode

        if self.place_code is None:
            self.place_code = locate_code(self.cam)
        self.analyzer.mode = get_mode(r, self.place_code).mode

    def judge_online(self, mono: float) -> None:
        fresh = self.frame_mono is not None and mono - self.frame_mono <= self.cam.frame_age_limit_s
        if fresh == self.online:
            return
        grace = self.cam.frame_age_limit_s + self.cam.open_timeout_s
        if not fresh and self.online is None and mono - self.started_mono <= grace:
            return  # the first open may take its whole timeout
        self.online = fresh
        self.push_due = True
        if fresh:
            self.error = ""
        else:
            if self.motion.active:
                self.events.append(_Event("motion_end", now_ms(), 0.0))
            self.motion.reset()
        extra: dict[str, Any] = {"camera_name": self.cam.name}
        if not fresh:
            extra.update(zone="camera", severity=self.cam.analysis.severity_of("offline").value)
        self.events.append(
            _Event("online" if fresh else "offline", now_ms(), self.motion.share, self.error, extra)
        )
        log.info("camera %s is %s", self.cam.id, "online" if fresh else "offline")

    def status(self, mono: float) -> dict[str, Any]:
        age = int((mono - self.frame_mono) * 1000) if self.frame_mono is not None else None
        return {
            **static_fields(self.cam),
            "online": bool(self.online),
            "fps": round(self.fps(mono), 2) if self.online else 0.0,
            "frame_age_ms": age,
            "motion": round(self.motion.share, 4),
            "motion_active": self.motion.active,
            "last_frame_ms": self.frame_ms,
            # Frames decoded since the process started: a reader tells a stream that keeps
            # its rate from one that falls behind (a paced file source never ages).
            "frames": self.frame_seq,
            # Watched by the supervisor against CAMERA_MAX_RSS_MB.
            "rss_mb": round(_SELF.memory_info().rss / 2**20, 1),
            "error": mask_text(self.fatal or ("" if self.online else self.error), self.cam.source),
            "updated_ms": now_ms(),
        }

    def jpeg(self) -> bytes | None:
        with self._lock:
            frame = self.frame
            seq = self.frame_seq
        if frame is None or seq == self.published_seq:
            return None
        h, w = frame.shape[:2]
        out: npt.NDArray[Any] = frame
        if w > self.cam.jpeg_width:
            out = cv2.resize(
                frame,
                (self.cam.jpeg_width, max(1, round(h * self.cam.jpeg_width / w))),
                interpolation=cv2.INTER_AREA,
            )
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, self.cam.jpeg_quality])
        if not ok:
            return None
        self.published_seq = seq
        return bytes(buf.tobytes())

    def publish(self, mono: float) -> None:
        k = keys()
        cid = self.cam.id
        try:
            r = self.redis_factory()
            pipe = r.pipeline(transaction=False)
            image = self.jpeg()
            if image is not None:
                pipe.set(k.camera_jpeg(cid), image)
            pipe.hset(k.camera(cid), mapping=encode(self.status(mono)))
            pipe.sadd(k.cameras, cid)
            events = list(self.events)
            for ev in events:
                data: dict[str, Any] = {
                    "camera_id": cid,
                    "kind": ev.kind,
                    "ts_ms": ev.ts_ms,
                    "motion": ev.motion,
                    **ev.extra,
                }
                if ev.error:
                    data["error"] = mask_text(ev.error, self.cam.source)
                pipe.xadd(
                    k.video_events,
                    {"data": json.dumps(data, ensure_ascii=False)},
                    maxlen=100_000,
                    approximate=True,
                )
            pipe.execute()
            for _ in events:
                self.events.popleft()
            if self.push_due:
                push.publish(r, "camera", id=cid)
                self.push_due = False
            if self.redis_down_since is not None:
                log.info(
                    "camera %s: Redis reachable again after %.1f s",
                    cid,
                    mono - self.redis_down_since,
                )
                self.redis_down_since = None
            self.refresh_mode(r, mono)
        except redis.RedisError as exc:
            # Frames keep flowing; the next tick retries and queued events are kept.
            self.published_seq = -1
            if self.redis_down_since is None:
                self.redis_down_since = mono
                log.warning("camera %s: Redis unreachable (%s); retrying", cid, exc)

    def run(self) -> int:
        log.info("camera %s (%s) from %s", self.cam.id, self.cam.name, self.cam.masked_source)
        parent = os.getppid()
        next_publish = 0.0
        try:
            while not self.stop.is_set():
                mono = time.monotonic()
                self.watchdog(mono)
                self.analyse(mono)
                if self.media is not None:
                    self.media.tick(mono)
                self.judge_online(mono)
                if self.fatal:
                    self.online = False
                    self.publish(mono)
                    log.error("camera %s: %s", self.cam.id, self.fatal)
                    return EXIT_FATAL
                if mono >= next_publish or self.push_due:
                    self.publish(mono)
                    next_publish = mono + self.cam.publish_interval_s
                if os.getppid() != parent:
                    log.warning("camera %s: supervisor is gone; stopping", self.cam.id)
                    break
                self._new_frame.wait(0.05)
                self._new_frame.clear()
        finally:
            if self.session is not None:
                self.session.dropped.set()
            if self.media is not None:
                self.media.flush()
        return 0


def locate_code(cam: CameraConfig) -> str:
    """The jurisdiction code of the camera's place (the city's when it cannot be located)."""
    try:
        from grids.locate import locator

        return locator().locate(cam.lon, cam.lat).code or "4101"
    except Exception as exc:  # noqa: BLE001 - a camera must run even if the grid data is broken
        log.warning("camera %s: cannot locate its grid (%s); city-wide mode applies", cam.id, exc)
        return "4101"


def _mask_stderr(secret: str) -> None:
    """Route this process's fd 2 through a filter that masks the camera's credentials.

    FFmpeg and OpenCV write to fd 2 from C and may quote the source URL.
    """
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115

    def pump() -> None:
        with open(read_fd, "rb", buffering=0) as src:
            pending = b""
            while chunk := src.read(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    text = mask_text(line.decode("utf-8", "replace"), secret)
                    os.write(original, (text + "\n").encode())
            if pending:
                os.write(original, mask_text(pending.decode("utf-8", "replace"), secret).encode())

    threading.Thread(target=pump, name="stderr-mask", daemon=True).start()


def _camera_process(cam_json: str, stop: Any, place_code: str | None = None) -> None:
    """Entry point of one camera's process (spawned: it imports everything afresh)."""
    cam = CameraConfig.model_validate_json(cam_json)
    _mask_stderr(cam.source)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    # Cameras run in parallel as processes; OpenCV's own worker threads in each would
    # only add hand-over cost on a few cores.
    cv2.setNumThreads(1)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sys.exit(CameraWorker(cam, stop, place_code=place_code).run())


_SELF = psutil.Process()


@dataclass
class _Slot:
    cam: CameraConfig
    proc: BaseProcess | None = None
    stop: Any = None
    started_mono: float = 0.0
    failures: int = 0
    next_start: float = 0.0
    given_up: bool = False
    registered: bool = False
    place_code: str | None = None
    # Onboarded through the device path (Redis), not the reviewed file.
    from_registry: bool = False
    # Set when the camera was decommissioned: its process is being stopped.
    retiring_since: float | None = None


def _register(r: redis.Redis, cam: CameraConfig) -> None:
    k = keys()
    pipe = r.pipeline(transaction=False)
    pipe.sadd(k.cameras, cam.id)
    pipe.hset(k.camera(cam.id), mapping=encode(static_fields(cam)))
    pipe.hsetnx(k.camera(cam.id), "online", "0")
    pipe.execute()


def _give_up(r: redis.Redis, slot: _Slot, exitcode: int | None) -> None:
    k = keys()
    cid = slot.cam.id
    reported = r.hget(k.camera(cid), "error")
    reason = reported.decode("utf-8", "replace") if isinstance(reported, bytes) else ""
    error = f"stopped after {slot.failures} failed starts (exit code {exitcode})"
    if reason:
        error += f": {reason}"
    error = mask_text(error, slot.cam.source)
    pipe = r.pipeline(transaction=False)
    pipe.hset(k.camera(cid), mapping=encode({"online": False, "fps": 0.0, "error": error}))
    pipe.xadd(
        k.video_events,
        {
            "data": json.dumps(
                {
                    "camera_id": cid,
                    "kind": "offline",
                    "ts_ms": now_ms(),
                    "motion": 0.0,
                    "error": error,
                },
                ensure_ascii=False,
            )
        },
    )
    pipe.execute()
    push.publish(r, "camera", id=cid)


def _registered(r: redis.Redis) -> list[tuple[CameraConfig, str]]:
    from devices.cameras import active_configs

    return active_configs(r)


class _Registry:
    """Keeps the slots in step with the cameras onboarded in Redis."""

    def __init__(self, fixed: set[str], wanted: set[str] | None) -> None:
        self.fixed = fixed
        self.wanted = wanted
        self.clashes: set[str] = set()

    def sync(
        self, slots: dict[str, _Slot], found: list[tuple[CameraConfig, str]], mono: float
    ) -> None:
        active: dict[str, tuple[CameraConfig, str]] = {}
        for cam, code in found:
            if self.wanted is not None and cam.id not in self.wanted:
                continue
            if cam.id in self.fixed:
                if cam.id not in self.clashes:
                    self.clashes.add(cam.id)
                    log.warning(
                        "camera %s is in the camera file and the registry; the file wins", cam.id
                    )
                continue
            active[cam.id] = (cam, code)
        for cid, (cam, code) in active.items():
            if cid not in slots:
                log.info("camera %s registered; starting it", cid)
                slots[cid] = _Slot(cam, place_code=code, from_registry=True)
        for cid, slot in slots.items():
            if slot.from_registry and cid not in active and slot.retiring_since is None:
                log.info("camera %s decommissioned; stopping it", cid)
                slot.retiring_since = mono
                if slot.stop is not None:
                    slot.stop.set()


def _retire(slots: dict[str, _Slot], mono: float, grace_s: float = 5.0) -> None:
    """Stop retiring camera processes (forcefully after ``grace_s``) and drop their slots."""
    for cid, slot in list(slots.items()):
        if slot.retiring_since is None:
            continue
        proc = slot.proc
        if proc is not None and proc.is_alive():
            if mono - slot.retiring_since > grace_s + 2:
                proc.kill()
            elif mono - slot.retiring_since > grace_s:
                proc.terminate()
            continue
        try:
            from devices.cameras import retire_status

            # After the process is gone: its last publish cannot bring the camera back.
            retire_status(get_redis(), cid)
        except redis.RedisError as exc:
            log.warning("camera %s: cannot mark it retired yet: %s", cid, exc)
            continue
        if proc is not None:
            proc.close()
        del slots[cid]
        log.info("camera %s stopped", cid)


def run(
    stop: StopFlag | None = None,
    *,
    cameras: Iterable[CameraConfig] | None = None,
    cameras_file: Path | str | None = None,
    only: Iterable[str] | None = None,
    restart_base_s: float = 1.0,
    restart_max_s: float = 60.0,
    max_failures: int = 5,
    healthy_after_s: float = 60.0,
    use_registry: bool | None = None,
    registry_refresh_s: float = REGISTRY_REFRESH_S,
) -> int:
    """Run one process per camera until ``stop`` is set (or SIGTERM/SIGINT when None).

    Cameras come from the file (or ``cameras``) and, when ``use_registry`` (the default
    unless ``cameras`` is given), from the Redis registry, re-read every
    ``registry_refresh_s``: a newly registered camera starts, a decommissioned one stops.
    A camera process that dies is restarted after 1, 2, 4 ... s; after ``max_failures``
    starts in a row that did not last ``healthy_after_s`` it is left stopped and its
    status carries the error.
    """
    cams = list(cameras) if cameras is not None else load_cameras(cameras_file)
    if use_registry is None:
        use_registry = cameras is None
    wanted = set(only) if only is not None else None
    if wanted is not None:
        known = {c.id for c in cams}
        if use_registry:
            try:
                known |= {c.id for c, _ in _registered(get_redis())}
            except redis.RedisError as exc:
                log.warning("video ingest: cannot read the camera registry (%s)", exc)
        unknown = wanted - known
        if unknown:
            raise CameraConfigError(f"unknown camera ids: {', '.join(sorted(unknown))}")
        cams = [c for c in cams if c.id in wanted]
    if stop is None:
        flag = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: flag.set())
            signal.signal(signal.SIGINT, lambda *_: flag.set())
        stop = flag
    ctx = mp.get_context("spawn")
    # Located once here: the grid index is large, and each camera process would load its own.
    slots = {
        c.id: _Slot(c, place_code=locate_code(c) if c.analysis.enabled else None) for c in cams
    }
    registry = _Registry(set(slots), wanted) if use_registry else None
    log.info(
        "video ingest: %d cameras from the file%s",
        len(slots),
        ", more from the registry" if registry else "",
    )
    redis_ok = True
    next_sync = 0.0
    try:
        while not stop.is_set():
            mono = time.monotonic()
            try:
                r = get_redis()
                if registry is not None and mono >= next_sync:
                    # A registry Redis cannot answer leaves the running cameras as they are.
                    registry.sync(slots, _registered(r), mono)
                    next_sync = mono + registry_refresh_s
                for slot in slots.values():
                    if not slot.registered and slot.retiring_since is None:
                        _register(r, slot.cam)
                        slot.registered = True
                r.hset(keys().heartbeats, "ingest-video", str(now_ms()))
                redis_ok = True
            except redis.RedisError as exc:
                if redis_ok:
                    log.warning("video ingest: Redis unreachable (%s); retrying", exc)
                redis_ok = False
            _retire(slots, mono)
            for slot in slots.values():
                if slot.retiring_since is None:
                    _tend(
                        ctx,
                        slot,
                        mono,
                        restart_base_s,
                        restart_max_s,
                        max_failures,
                        healthy_after_s,
                    )
            stop.wait(0.2)
    finally:
        _stop_all(list(slots.values()))
    return 0


def _tend(
    ctx: Any,
    slot: _Slot,
    mono: float,
    base: float,
    cap: float,
    max_failures: int,
    healthy_after_s: float,
) -> None:
    if slot.given_up:
        return
    proc = slot.proc
    if proc is not None:
        if proc.is_alive():
            _watch_memory(slot, proc)
            return
        code = proc.exitcode
        proc.close()
        slot.proc = None
        if mono - slot.started_mono >= healthy_after_s:
            slot.failures = 0
        slot.failures += 1
        if slot.failures >= max_failures:
            slot.given_up = True
            log.error(
                "camera %s: process failed %d times in a row (exit code %s); left stopped",
                slot.cam.id,
                slot.failures,
                code,
            )
            try:
                _give_up(get_redis(), slot, code)
            except redis.RedisError as exc:
                log.warning("camera %s: cannot record the failure: %s", slot.cam.id, exc)
            return
        delay = min(base * 2 ** (slot.failures - 1), cap)
        slot.next_start = mono + delay
        log.warning(
            "camera %s: process exited with code %s; restart %d in %.1f s",
            slot.cam.id,
            code,
            slot.failures,
            delay,
        )
    if mono < slot.next_start:
        return
    slot.stop = ctx.Event()
    slot.proc = ctx.Process(
        target=_camera_process,
        args=(slot.cam.model_dump_json(), slot.stop, slot.place_code),
        name=f"camera-{slot.cam.id}",
        daemon=False,
    )
    slot.proc.start()
    slot.started_mono = mono


def _watch_memory(slot: _Slot, proc: BaseProcess) -> None:
    """A camera process above its memory bound is killed; the usual restart takes over.

    Decoders can leak on a corrupt stream; a bound per process keeps one camera from
    starving the others on the same host.
    """
    limit = get_settings().camera_max_rss_mb
    try:
        rss_mb = psutil.Process(proc.pid).memory_info().rss / 2**20 if proc.pid else 0.0
    except psutil.Error:
        return
    if rss_mb > limit:
        log.error(
            "camera %s: process uses %.0f MB, over its bound of %d MB; restarting it",
            slot.cam.id,
            rss_mb,
            limit,
        )
        proc.kill()


def _stop_all(slots: list[_Slot]) -> None:
    live = [s for s in slots if s.proc is not None]
    for s in live:
        s.stop.set()
    deadline = time.monotonic() + 5
    for s in live:
        assert s.proc is not None
        s.proc.join(max(0.1, deadline - time.monotonic()))
        if s.proc.is_alive():
            s.proc.terminate()
            s.proc.join(2)
        if s.proc.is_alive():
            s.proc.kill()
            s.proc.join(1)
        s.proc = None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Camera ingest: one process per camera.")
    ap.add_argument("--cameras", type=Path, help="camera registry YAML (default CAMERAS_FILE)")
    ap.add_argument("--only", help="comma-separated camera ids to run here")
    ap.add_argument(
        "--no-registry", action="store_true", help="run the file's cameras only, not Redis's"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        only = [x.strip() for x in args.only.split(",") if x.strip()] if args.only else None
        return run(cameras_file=args.cameras, only=only, use_registry=not args.no_registry)
    except CameraConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
