"""Video analysis settings of one camera: zones, masks, tampering, clips, retention.

Zones and masks are polygons in normalised image coordinates (x right, y down, 0..1),
so they survive a change of stream resolution. Each camera's ``analysis`` block in
``layouts/cameras.yaml`` is validated by these models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from shapely import Polygon
from shapely.validation import explain_validity

from core.models import Mode, Severity

Point = tuple[float, float]
Mask = npt.NDArray[Any]  # 0/255 uint8; OpenCV returns loosely typed arrays


class ZoneKind(StrEnum):
    INTRUSION = "intrusion"  # 区域入侵
    CROWDING = "crowding"  # 人员聚集
    LOITERING = "loitering"  # 徘徊逗留


# Defaults per kind: (minimum area as a share of the zone, minimum duration in seconds).
KIND_DEFAULTS: dict[ZoneKind, tuple[float, float]] = {
    ZoneKind.INTRUSION: (0.03, 1.0),
    ZoneKind.CROWDING: (0.30, 5.0),
    ZoneKind.LOITERING: (0.03, 20.0),
}

DEFAULT_SEVERITY: dict[str, Severity] = {
    "intrusion": Severity.ORANGE,
    "crowding": Severity.ORANGE,
    "loitering": Severity.YELLOW,
    "tampering": Severity.ORANGE,
    "offline": Severity.ORANGE,
}


def check_polygon(points: list[Point], what: str) -> list[Point]:
    """The points, if they form a usable polygon inside the image; a clear error otherwise."""
    if len(points) < 3:
        raise ValueError(f"{what} needs at least 3 points, got {len(points)}")
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"{what} point ({x:g}, {y:g}) is outside the image: coordinates are shares "
                "of width and height, 0..1"
            )
    poly = Polygon(points)
    if not poly.is_valid:
        raise ValueError(f"{what} is not a simple polygon ({explain_validity(poly)})")
    if poly.area < 1e-4:
        raise ValueError(f"{what} covers almost nothing of the image (area {poly.area:.2g})")
    return points


def rasterise(polygons: list[list[Point]], width: int, height: int) -> Mask:
    """A 0/255 mask of the polygons at the given frame size."""
    mask = np.zeros((height, width), np.uint8)
    pts = [
        np.round(np.array(p, np.float64) * [width - 1, height - 1]).astype(np.int32)
        for p in polygons
    ]
    if pts:
        cv2.fillPoly(mask, pts, 255)
    return mask


class ZoneConfig(BaseModel):
    """One zone drawn on the camera image."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str = Field(default="", max_length=60)
    kind: ZoneKind
    polygon: list[Point]
    # 0..1; 0.5 applies min_area as written, 1 halves it, 0 raises it by half.
    sensitivity: float = Field(default=0.5, ge=0, le=1)
    # Share of the zone's (unmasked) area that must be foreground; per-kind default.
    min_area: float | None = Field(default=None, gt=0, le=1)
    # Foreground must last this long (loitering: the N seconds); per-kind default.
    min_duration_s: float | None = Field(default=None, ge=0, le=3600)
    # Dropouts shorter than this do not end a presence (a car behind a pole).
    gap_s: float = Field(default=1.0, ge=0, le=60)
    # The zone must be quiet this long before it can raise again.
    rearm_s: float = Field(default=3.0, ge=0, le=3600)
    masks: list[list[Point]] = Field(default_factory=list)
    severity: Severity | None = None

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, v: list[Point]) -> list[Point]:
        return check_polygon(v, "zone polygon")

    @field_validator("masks")
    @classmethod
    def _masks(cls, v: list[list[Point]]) -> list[list[Point]]:
        return [check_polygon(p, f"zone mask {i + 1}") for i, p in enumerate(v)]

    @property
    def area_share(self) -> float:
        return self.min_area if self.min_area is not None else KIND_DEFAULTS[self.kind][0]

    @property
    def duration_s(self) -> float:
        if self.min_duration_s is not None:
            return self.min_duration_s
        return KIND_DEFAULTS[self.kind][1]

    @property
    def threshold(self) -> float:
        """The foreground share that counts as presence, after sensitivity."""
        return min(1.0, self.area_share * (1.5 - self.sensitivity))


class TamperConfig(BaseModel):
    """Camera tampering: covered, defocused, moved scene."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Covered: the (masked) picture is dark or has almost no contrast.
    dark_level: float = Field(default=18.0, ge=0, le=255)
    flat_std: float = Field(default=4.0, ge=0, le=128)
    covered_s: float = Field(default=3.0, ge=0, le=600)
    # Defocused: sharpness (variance of the Laplacian) below this share of its baseline.
    defocus_ratio: float = Field(default=0.3, gt=0, lt=1)
    defocus_s: float = Field(default=3.0, ge=0, le=600)
    # The baseline sharpness and reference view are learned over this long after start.
    learn_s: float = Field(default=4.0, gt=0, le=600)
    # Moved: the view shifted by more than this share of the width against the reference.
    moved_shift: float = Field(default=0.06, gt=0, lt=1)
    moved_s: float = Field(default=4.0, ge=0, le=600)
    rearm_s: float = Field(default=10.0, ge=0, le=3600)


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_events: int = Field(default=200, ge=1, le=100_000)
    max_age_days: float = Field(default=7.0, gt=0, le=3650)


def _default_mode_factors() -> dict[Mode, float]:
    return {Mode.DAILY: 1.0, Mode.HOLIDAY: 0.8, Mode.MAJOR_TASK: 0.6, Mode.EMERGENCY: 0.5}


class AnalysisConfig(BaseModel):
    """A camera's analysis: zones, masks, tampering, media of events."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Analysis runs on a frame this wide, at most this often (the newest frame each time).
    width: int = Field(default=256, ge=96, le=1280)
    fps: float = Field(default=6.0, gt=0, le=60)
    zones: list[ZoneConfig] = Field(default_factory=list)
    # Excluded from every zone and from tampering checks (trees, the timestamp overlay).
    masks: list[list[Point]] = Field(default_factory=list)
    tamper: TamperConfig = Field(default_factory=TamperConfig)
    # Every duration is multiplied by the factor of the mode in force at the camera's place.
    mode_duration_factor: dict[Mode, float] = Field(default_factory=_default_mode_factors)
    severity: dict[str, Severity] = Field(default_factory=dict)
    clip_before_s: float = Field(default=3.0, ge=0, le=30)
    clip_after_s: float = Field(default=2.0, ge=0, le=30)
    clip_fps: float = Field(default=8.0, gt=0, le=30)
    clip_width: int = Field(default=640, ge=96, le=1920)
    snapshot_width: int = Field(default=960, ge=96, le=3840)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @field_validator("masks")
    @classmethod
    def _masks(cls, v: list[list[Point]]) -> list[list[Point]]:
        return [check_polygon(p, f"mask {i + 1}") for i, p in enumerate(v)]

    @field_validator("mode_duration_factor")
    @classmethod
    def _factors(cls, v: dict[Mode, float]) -> dict[Mode, float]:
        for mode, f in v.items():
            if not 0 < f <= 4:
                raise ValueError(f"mode_duration_factor of {mode.value} must be in (0, 4], got {f}")
        return {**_default_mode_factors(), **v}

    @field_validator("severity")
    @classmethod
    def _severity(cls, v: dict[str, Severity]) -> dict[str, Severity]:
        unknown = set(v) - set(DEFAULT_SEVERITY)
        if unknown:
            raise ValueError(
                f"severity for unknown event kinds {sorted(unknown)}; "
                f"known: {', '.join(DEFAULT_SEVERITY)}"
            )
        return v

    @model_validator(mode="after")
    def _unique_zones(self) -> AnalysisConfig:
        seen: set[str] = set()
        for z in self.zones:
            if z.id in seen:
                raise ValueError(f"zone id {z.id!r} appears twice")
            if z.id in {"covered", "defocused", "moved", "camera"}:
                raise ValueError(f"zone id {z.id!r} is reserved for camera-wide events")
            seen.add(z.id)
        return self

    def severity_of(self, kind: str, zone: ZoneConfig | None = None) -> Severity:
        if zone is not None and zone.severity is not None:
            return zone.severity
        return self.severity.get(kind, DEFAULT_SEVERITY.get(kind, Severity.ORANGE))
