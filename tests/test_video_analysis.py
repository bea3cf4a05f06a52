"""Zones, masks and tampering on the real clip and on sequences built from it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from core.models import Mode
from ingest.camera_config import CameraConfigError, load_cameras
from ingest.video import MotionGate
from ingest.video_analysis import Analyzer, Detection
from ingest.video_zones import AnalysisConfig

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "source" / "video" / "car-detection_intel.mp4"
FPS = 12.5
# Where the cars drive through the parking lot (normalised image coordinates).
LANE = [[0.3, 0.15], [0.7, 0.15], [0.7, 0.95], [0.3, 0.95]]


def clip_frames(first: int = 0, count: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    n = 0
    while count is None or len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        if n >= first:
            frames.append(frame)
        n += 1
    cap.release()
    return frames


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return clip_frames(count=160)  # 12.8 s: the first car passes at about 5 s


def run(
    cfg: AnalysisConfig, frames: Iterable[np.ndarray], mode: Mode = Mode.DAILY
) -> Iterator[Detection]:
    gate = MotionGate(0.02, 0.5, cfg.width)
    an = Analyzer(cfg)
    an.mode = mode
    for n, frame in enumerate(frames):
        t = n / FPS
        gate.feed(frame, t)
        assert gate.small is not None
        yield from an.feed(gate.small, gate.mask, t)


def cfg(**kw: Any) -> AnalysisConfig:
    return AnalysisConfig.model_validate(kw)


def test_intrusion_in_the_lane_raises_one_event(clip: list[np.ndarray]) -> None:
    c = cfg(zones=[{"id": "lane", "kind": "intrusion", "polygon": LANE}], tamper={"enabled": False})
    dets = list(run(c, clip))
    assert [(d.kind, d.zone) for d in dets] == [("intrusion", "lane")]
    d = dets[0]
    # Cars enter after about 4 s; the event waits for the zone's 1 s minimum duration.
    assert 5.0 <= d.t <= 7.0 and d.value >= d.threshold == pytest.approx(0.03)


def test_emergency_mode_shortens_durations(clip: list[np.ndarray]) -> None:
    c = cfg(
        zones=[{"id": "lane", "kind": "loitering", "polygon": LANE, "min_duration_s": 2.0}],
        tamper={"enabled": False},
    )
    daily = list(run(c, clip, Mode.DAILY))
    emergency = list(run(c, clip, Mode.EMERGENCY))
    assert len(emergency) == 1 and emergency[0].detail["duration_s"] == 1.0
    # Daily needs the foreground to stay 2 s; the emergency event comes a second earlier.
    assert not daily or daily[0].t - emergency[0].t >= 0.9


def _swaying_tree(frames: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The still lot for 3 s, then a bright blob swaying inside the left quarter."""
    base = frames[20]
    h, w = base.shape[:2]
    for n in range(100):
        f = base.copy()
        if n >= 36:
            x = int(w * (0.08 + 0.14 * (1 + np.sin((n - 36) / 4)) / 2))
            cv2.circle(f, (x, int(h * 0.5)), int(h * 0.12), (230, 240, 230), -1)
        yield f


def test_masks_suppress_motion_inside_them(clip: list[np.ndarray]) -> None:
    zone = {
        "id": "lot",
        "kind": "intrusion",
        "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
        "min_area": 0.005,
    }
    tree = [[0.0, 0.2], [0.3, 0.2], [0.3, 0.8], [0.0, 0.8]]
    frames = list(_swaying_tree(clip))
    unmasked = list(run(cfg(zones=[zone], tamper={"enabled": False}), frames))
    assert [d.zone for d in unmasked] == ["lot"]  # the moving blob is seen without a mask
    zone_masked = list(
        run(cfg(zones=[{**zone, "masks": [tree]}], tamper={"enabled": False}), frames)
    )
    camera_masked = list(run(cfg(zones=[zone], masks=[tree], tamper={"enabled": False}), frames))
    assert zone_masked == [] and camera_masked == []


def _tamper_cfg() -> AnalysisConfig:
    return cfg(tamper={"covered_s": 1.5, "defocus_s": 1.5, "moved_s": 1.5, "learn_s": 2.0})


def test_covered_camera(clip: list[np.ndarray]) -> None:
    black = np.zeros_like(clip[0])
    dets = list(run(_tamper_cfg(), [*clip[:40], *[black] * 40]))
    assert [(d.kind, d.zone) for d in dets] == [("tampering", "covered")]
    assert 40 / FPS + 1.5 <= dets[0].t <= 40 / FPS + 2.0


def test_defocused_camera(clip: list[np.ndarray]) -> None:
    blurred = [cv2.GaussianBlur(f, (0, 0), 6) for f in clip[40:90]]
    dets = list(run(_tamper_cfg(), [*clip[:40], *blurred]))
    assert [(d.kind, d.zone) for d in dets] == [("tampering", "defocused")]
    assert dets[0].value < 0.3 and dets[0].detail["baseline"] > 0
    # The sharp clip itself, cars and all, is not taken for tampering.
    assert list(run(_tamper_cfg(), clip)) == []


def test_moved_camera(clip: list[np.ndarray]) -> None:
    h, w = clip[0].shape[:2]
    shift = np.float32([[1, 0, 0.2 * w], [0, 1, 0.1 * h]])
    moved = [cv2.warpAffine(f, shift, (w, h), borderMode=cv2.BORDER_REFLECT) for f in clip[:40]]
    dets = list(run(_tamper_cfg(), [*clip[:40], *moved, *moved]))
    assert [(d.kind, d.zone) for d in dets] == [("tampering", "moved")]


def test_zone_configuration_errors_are_clear(tmp_path: Path) -> None:
    f = tmp_path / "cams.yaml"

    def load(analysis: str) -> str:
        f.write_text(
            "cameras:\n  - id: cam-a\n    name: 甲\n    source: a.mp4\n    lon: 113.6\n"
            "    lat: 34.7\n    analysis:\n" + analysis,
            encoding="utf-8",
        )
        with pytest.raises(CameraConfigError) as err:
            load_cameras(f)
        return str(err.value)

    msg = load("      zones: [{id: z, kind: intrusion, polygon: [[0, 0], [1.5, 0], [1, 1]]}]\n")
    assert "camera 'cam-a' analysis.zones.0.polygon" in msg and "outside the image" in msg
    msg = load(
        "      zones: [{id: z, kind: intrusion, polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]}]\n"
    )
    assert "not a simple polygon" in msg
    msg = load("      zones: [{id: z, kind: parking, polygon: [[0, 0], [1, 0], [1, 1]]}]\n")
    assert "kind" in msg and "intrusion" in msg
    msg = load("      zones: [{id: z, kind: crowding, polygon: [[0, 0], [1, 0]]}]\n")
    assert "at least 3 points" in msg
    msg = load(
        "      zones:\n"
        "        - {id: z, kind: intrusion, polygon: [[0, 0], [1, 0], [1, 1]]}\n"
        "        - {id: z, kind: crowding, polygon: [[0, 0], [1, 0], [1, 1]]}\n"
    )
    assert "appears twice" in msg
    msg = load("      masks: [[[0, 0], [0.1, 0]]]\n")
    assert "mask 1 needs at least 3 points" in msg
    msg = load("      severity: {parking: red}\n")
    assert "unknown event kinds" in msg
    msg = load(
        "      zones: [{id: z, kind: intrusion, sensitivity: 2, polygon: [[0, 0], [1, 0], [1, 1]]}]\n"
    )
    assert "sensitivity" in msg


def test_shipped_registry_has_zones_and_masks() -> None:
    demo = {c.id: c for c in load_cameras(ROOT / "layouts" / "cameras.yaml")}["cam-demo-001"]
    kinds = {z.kind.value for z in demo.analysis.zones}
    assert kinds == {"intrusion", "crowding", "loitering"}
    assert demo.analysis.masks  # the timestamp overlay
