"""Zone events and tampering checks on the small frame the motion detector already made.

One MOG2 foreground per camera (the motion gate's) is shared by every zone; tampering
works on the same small grey frame, so the cost is one resize, one MOG2 update and a
few reductions per analysed frame. Durations are judged on the caller's clock, so a
file can be analysed faster than real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from core.models import Mode
from ingest.video_zones import AnalysisConfig, Mask, ZoneConfig, rasterise

Image = npt.NDArray[Any]
# The reference view for the moved-scene check is compared at this size.
REF_SIZE = (64, 36)


@dataclass
class Detection:
    kind: str  # intrusion | crowding | loitering | tampering
    zone: str  # zone id, or covered / defocused / moved for tampering
    t: float  # the caller's clock, seconds
    value: float  # foreground share, sharpness ratio or shift
    threshold: float
    detail: dict[str, Any] = field(default_factory=dict)


class Hold:
    """Presence that must last ``need_s``; fires once, then re-arms after ``rearm_s`` quiet."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.last_on: float | None = None
        self.fired = False

    def update(self, on: bool, t: float, need_s: float, gap_s: float, rearm_s: float) -> bool:
        if on:
            if self.since is None:
                self.since = t
            self.last_on = t
            if not self.fired and t - self.since >= need_s:
                self.fired = True
                return True
            return False
        if self.last_on is not None and t - self.last_on > gap_s:
            self.since = None
        if self.fired and (self.last_on is None or t - self.last_on >= rearm_s):
            self.fired = False
            self.last_on = None
        return False


@dataclass
class _Zone:
    cfg: ZoneConfig
    mask: Mask
    pixels: int
    hold: Hold = field(default_factory=Hold)
    share: float = 0.0


class Analyzer:
    """Zones and tampering for one camera; ``feed`` the motion gate's mask and small frame."""

    def __init__(self, cfg: AnalysisConfig) -> None:
        self.cfg = cfg
        self.mode: Mode = Mode.DAILY
        self._size: tuple[int, int] | None = None
        self.zones: list[_Zone] = []
        self.valid: Mask | None = None  # everything not under a camera-wide mask
        self.started: float | None = None
        self.sharp_samples: list[float] = []
        self.sharp_base: float | None = None
        self.ref: npt.NDArray[Any] | None = None
        self.ref_sum: npt.NDArray[Any] | None = None
        self.ref_n = 0
        self.covered = Hold()
        self.defocused = Hold()
        self.moved = Hold()
        self.last: dict[str, float] = {}

    def factor(self) -> float:
        return float(self.cfg.mode_duration_factor.get(self.mode, 1.0))

    def _prepare(self, w: int, h: int) -> None:
        self._size = (w, h)
        camera_masks = rasterise(self.cfg.masks, w, h)
        self.valid = cv2.bitwise_not(camera_masks)
        self.zones = []
        for z in self.cfg.zones:
            m = rasterise([z.polygon], w, h)
            m = cv2.bitwise_and(m, self.valid)
            if z.masks:
                m = cv2.bitwise_and(m, cv2.bitwise_not(rasterise(z.masks, w, h)))
            self.zones.append(_Zone(z, m, int(cv2.countNonZero(m))))

    def feed(self, small: Image, foreground: Mask | None, t: float) -> list[Detection]:
        """Judge one analysed frame: ``small`` BGR, ``foreground`` 0/255 (None while warming up)."""
        h, w = small.shape[:2]
        if self._size != (w, h):
            self._prepare(w, h)
        if self.started is None:
            self.started = t
        out: list[Detection] = []
        f = self.factor()
        if foreground is not None:
            for z in self.zones:
                if z.pixels == 0:
                    continue
                z.share = cv2.countNonZero(cv2.bitwise_and(foreground, z.mask)) / z.pixels
                thr = z.cfg.threshold
                if z.hold.update(
                    z.share >= thr, t, z.cfg.duration_s * f, z.cfg.gap_s, z.cfg.rearm_s
                ):
                    out.append(
                        Detection(
                            z.cfg.kind.value,
                            z.cfg.id,
                            t,
                            round(z.share, 4),
                            round(thr, 4),
                            {"duration_s": round(z.cfg.duration_s * f, 2)},
                        )
                    )
        if self.cfg.tamper.enabled:
            out.extend(self._tamper(small, t, f))
        return out

    def _tamper(self, small: Image, t: float, f: float) -> list[Detection]:
        tc = self.cfg.tamper
        assert self.valid is not None and self.started is not None
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        mean, std = (float(x[0][0]) for x in cv2.meanStdDev(gray, mask=self.valid))
        _, lstd = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_16S), mask=self.valid)
        sharp = float(lstd[0][0]) ** 2
        self.last = {"mean": mean, "std": std, "sharpness": sharp}
        out: list[Detection] = []
        is_covered = mean < tc.dark_level or std < tc.flat_std
        if self.covered.update(is_covered, t, tc.covered_s * f, 0.5, tc.rearm_s):
            out.append(
                Detection("tampering", "covered", t, round(mean, 1), tc.dark_level, {"std": std})
            )
        learning = t - self.started < tc.learn_s
        tiny = cv2.resize(gray, REF_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        if learning:
            if not is_covered:
                self.sharp_samples.append(sharp)
                self.ref_sum = tiny if self.ref_sum is None else self.ref_sum + tiny
                self.ref_n += 1
            return out
        if self.sharp_base is None and self.sharp_samples:
            self.sharp_base = float(np.median(self.sharp_samples))
        if self.ref is None and self.ref_sum is not None:
            self.ref = self.ref_sum / max(1, self.ref_n)
        if is_covered:
            # A covered lens says nothing about focus or view; judge those when it is clear.
            return out
        if self.sharp_base:
            ratio = sharp / self.sharp_base
            blurred = ratio < tc.defocus_ratio
            if self.defocused.update(blurred, t, tc.defocus_s * f, 0.5, tc.rearm_s):
                out.append(
                    Detection(
                        "tampering",
                        "defocused",
                        t,
                        round(ratio, 3),
                        tc.defocus_ratio,
                        {"sharpness": round(sharp, 1), "baseline": round(self.sharp_base, 1)},
                    )
                )
            elif not blurred and ratio < 3:
                # Follow slow changes of light, never a sudden one.
                self.sharp_base = 0.99 * self.sharp_base + 0.01 * sharp
        if self.ref is not None:
            (dx, dy), _resp = cv2.phaseCorrelate(self.ref, tiny)
            shift = float(np.hypot(dx, dy)) / REF_SIZE[0]
            self.last["shift"] = shift
            shifted = shift > tc.moved_shift
            if self.moved.update(shifted, t, tc.moved_s * f, 0.5, tc.rearm_s):
                out.append(
                    Detection(
                        "tampering",
                        "moved",
                        t,
                        round(shift, 3),
                        tc.moved_shift,
                        {"dx": round(dx, 2), "dy": round(dy, 2)},
                    )
                )
            if self.moved.fired and self.moved.since is not None:
                if t - self.moved.since >= tc.moved_s * f + tc.rearm_s:
                    # The camera now looks elsewhere for good: that view is the new reference.
                    self.ref = tiny
                    self.moved = Hold()
            elif not shifted:
                self.ref = 0.98 * self.ref + 0.02 * tiny
        return out

    def shares(self) -> dict[str, float]:
        return {z.cfg.id: round(z.share, 4) for z in self.zones}
