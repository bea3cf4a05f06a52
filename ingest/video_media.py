"""Snapshots and short clips of video events, on disk with bounded retention.

Layout: ``<var_dir>/media/<camera>/<event_id>/`` holding ``snapshot.jpg``, ``clip.avi``
(Motion-JPEG, seconds before and after the event) and ``event.json``. The camera process
writes; the web process serves through ``event_file``, which only ever returns a path
inside the media root.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy.typing as npt

from core.config import get_settings
from ingest.video_zones import AnalysisConfig

log = logging.getLogger("gridcc.video.media")

Image = npt.NDArray[Any]
CAMERA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EVENT_ID = re.compile(r"^\d{13}-[a-z]{1,16}-[A-Za-z0-9_-]{1,32}(?:-\d{1,4})?$")
FILES = {"snapshot": "snapshot.jpg", "clip": "clip.avi", "meta": "event.json"}
PRUNE_EVERY_S = 60.0


def media_root() -> Path:
    return get_settings().var_dir / "media"


def event_refs(camera_id: str, event_id: str) -> dict[str, str]:
    base = f"/media/cameras/{camera_id}/events/{event_id}"
    return {"snapshot": f"{base}/snapshot.jpg", "clip": f"{base}/clip"}


def event_file(camera_id: str, event_id: str, what: str, root: Path | None = None) -> Path | None:
    """The stored file of an event (snapshot / clip / meta), or None; never outside the root."""
    name = FILES.get(what)
    if name is None or not CAMERA_ID.match(camera_id) or not EVENT_ID.match(event_id):
        return None
    base = (root or media_root()).resolve()
    path = (base / camera_id / event_id / name).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


def event_dir_exists(camera_id: str, event_id: str, root: Path | None = None) -> bool:
    if not CAMERA_ID.match(camera_id) or not EVENT_ID.match(event_id):
        return False
    base = (root or media_root()).resolve()
    d = (base / camera_id / event_id).resolve()
    return d.is_relative_to(base) and d.is_dir()


def _resize(frame: Image, width: int) -> Image:
    h, w = frame.shape[:2]
    if w <= width:
        return frame
    return cv2.resize(frame, (width, max(2, round(h * width / w) // 2 * 2)))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class _Pending:
    event_id: str
    folder: Path
    until: float
    frames: list[tuple[float, Image]]
    meta: dict[str, Any]


@dataclass
class MediaStore:
    """One camera's event media: a short ring of past frames, the clips being finished."""

    camera_id: str
    cfg: AnalysisConfig
    root: Path | None = None
    ring: deque[tuple[float, Image]] = field(default_factory=deque)
    pending: list[_Pending] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder = (self.root or media_root()) / self.camera_id
        self._last_kept = -1e18
        self._last_prune = -1e18
        keep = int(self.cfg.clip_before_s * self.cfg.clip_fps) + 1
        self.ring = deque(maxlen=max(1, keep))

    def offer(self, frame: Image, t: float) -> Image:
        """An analysed frame, returned at the clip width; kept at the clip rate for clips."""
        small = _resize(frame, self.cfg.clip_width)
        if t - self._last_kept < 1.0 / self.cfg.clip_fps * 0.95:
            return small
        self._last_kept = t
        self.ring.append((t, small))
        while self.ring and self.ring[0][0] < t - self.cfg.clip_before_s:
            self.ring.popleft()
        for p in self.pending:
            p.frames.append((t, small))
        return small

    def capture(self, frame: Image, t: float, ts_ms: int, kind: str, zone: str) -> dict[str, str]:
        """Store the snapshot now and start the clip; returns event_id, snapshot and clip refs."""
        base_id = f"{ts_ms}-{kind}-{zone}"
        event_id = base_id
        n = 1
        while (self.folder / event_id).exists():
            event_id = f"{base_id}-{n}"
            n += 1
        folder = self.folder / event_id
        folder.mkdir(parents=True, exist_ok=True)
        snap = _resize(frame, self.cfg.snapshot_width)
        ok, buf = cv2.imencode(".jpg", snap, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if ok:
            (folder / FILES["snapshot"]).write_bytes(buf.tobytes())
        meta = {
            "event_id": event_id,
            "camera_id": self.camera_id,
            "kind": kind,
            "zone": zone,
            "ts_ms": ts_ms,
            "clip_ready": False,
        }
        _write_json(folder / FILES["meta"], meta)
        self.pending.append(
            _Pending(
                event_id,
                folder,
                t + self.cfg.clip_after_s,
                list(self.ring),
                meta,
            )
        )
        self.prune(force=True)
        return {"event_id": event_id, **event_refs(self.camera_id, event_id)}

    def tick(self, t: float) -> None:
        """Finish the clips whose after-event time has passed; prune now and then."""
        done = [p for p in self.pending if t >= p.until]
        for p in done:
            self.pending.remove(p)
            self._write_clip(p)
        # Events whose clip was pending were spared by the last prune; judge them now.
        self.prune(force=bool(done))

    def flush(self) -> None:
        """Write every unfinished clip with what it has (on stop)."""
        for p in self.pending:
            self._write_clip(p)
        self.pending.clear()

    def _write_clip(self, p: _Pending) -> None:
        if not p.folder.is_dir() or not p.frames:
            return
        h, w = p.frames[-1][1].shape[:2]
        span = p.frames[-1][0] - p.frames[0][0]
        # Frames are kept at most at clip_fps but only as often as analysis runs: play
        # the clip at the rate it was recorded.
        fps = (len(p.frames) - 1) / span if span > 0 else self.cfg.clip_fps
        fps = min(self.cfg.clip_fps, max(1.0, fps))
        tmp = p.folder / "clip.tmp.avi"
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
        try:
            if not writer.isOpened():
                log.warning("camera %s: cannot write clip %s", self.camera_id, p.event_id)
                return
            for _, f in p.frames:
                writer.write(f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h)))
        finally:
            writer.release()
        os.replace(tmp, p.folder / FILES["clip"])
        p.meta.update(clip_ready=True, clip_frames=len(p.frames))
        _write_json(p.folder / FILES["meta"], p.meta)

    def prune(self, *, force: bool = False, now: float | None = None) -> int:
        """Remove events beyond the count and older than the age limit; returns how many."""
        if not force and time.monotonic() - self._last_prune < PRUNE_EVERY_S:
            return 0
        self._last_prune = time.monotonic()
        return prune_camera(self.folder, self.cfg, now=now, keep={p.event_id for p in self.pending})


def prune_camera(
    folder: Path, cfg: AnalysisConfig, *, now: float | None = None, keep: set[str] | None = None
) -> int:
    """Retention of one camera's media folder: newest ``max_events`` younger than the age."""
    if not folder.is_dir():
        return 0
    now = time.time() if now is None else now
    limit_ms = (now - cfg.retention.max_age_days * 86400) * 1000
    events = sorted(
        (d for d in folder.iterdir() if d.is_dir() and EVENT_ID.match(d.name)),
        key=lambda d: d.name,
        reverse=True,
    )
    removed = 0
    for i, d in enumerate(events):
        if keep and d.name in keep:
            continue
        ts = int(d.name.split("-", 1)[0])
        if i >= cfg.retention.max_events or ts < limit_ms:
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    return removed
