"""Device type catalogue: metrics, units, physical limits and graded thresholds."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.models import Mode, Severity

CATALOGUE_FILE = Path(__file__).resolve().parent / "catalogue.yaml"

Direction = Literal["high", "low"]
# Lowest warning first: a value that passes the red limit passes all others too.
_ASCENDING = (Severity.BLUE, Severity.YELLOW, Severity.ORANGE, Severity.RED)
# Heightened modes exist to catch trouble earlier, so they may only tighten.
_TIGHTEN_ONLY = (Mode.HOLIDAY, Mode.MAJOR_TASK, Mode.EMERGENCY)


class Limits(BaseModel):
    """Severity -> limit for each direction; missing severities are not used."""

    model_config = ConfigDict(extra="forbid")

    high: dict[Severity, float] = Field(default_factory=dict)
    low: dict[Severity, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        for direction in ("high", "low"):
            grades = getattr(self, direction)
            values = [grades[s] for s in _ASCENDING if s in grades]
            for v in values:
                if not math.isfinite(v):
                    raise ValueError(f"{direction} limit {v} is not finite")
            want = sorted(values) if direction == "high" else sorted(values, reverse=True)
            if values != want:
                raise ValueError(
                    f"{direction} limits must grow more severe from blue to red, got {grades}"
                )
        return self


class RateLimits(BaseModel):
    """Rate-of-change rule of one metric: severity -> change per minute that raises it.

    A real gas leak reads high and sharply fluctuating while biogas seeps steadily, so a
    fast rise warns before the concentration reaches a threshold.
    """

    model_config = ConfigDict(extra="forbid")

    per_min: dict[Severity, float]
    direction: Literal["rise", "fall", "both"] = "rise"
    # Readings closer than this are compared with an older one: a burst of messages a
    # second apart would turn sensor noise into huge rates.
    min_gap_s: float = Field(default=10, ge=0)
    # Readings further apart than this say nothing about a rate (the device was silent).
    max_gap_s: float = Field(default=600, gt=0)
    # An open rate alarm clears once no reading has crossed for this long.
    clear_after_s: float = Field(default=300, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> RateLimits:
        values = [self.per_min[s] for s in _ASCENDING if s in self.per_min]
        if not values:
            raise ValueError("a rate rule needs at least one severity")
        if any(not math.isfinite(v) or v <= 0 for v in values):
            raise ValueError(f"rates must be positive numbers, got {self.per_min}")
        if values != sorted(values):
            raise ValueError(f"rates must grow from blue to red, got {self.per_min}")
        if self.min_gap_s >= self.max_gap_s:
            raise ValueError("min_gap_s must be below max_gap_s")
        return self


class AlarmMerge(BaseModel):
    """Alarms of one device type close together open one work order, not one each."""

    model_config = ConfigDict(extra="forbid")

    radius_m: float = Field(default=150, ge=0, le=5000)  # 0: never merge
    window_s: float = Field(default=3600, gt=0)


class Metric(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = ""
    name: dict[str, str]
    unit: str
    physical: tuple[float, float]
    normal: tuple[float, float]
    hysteresis: float = Field(default=0.0, ge=0)
    thresholds: Limits = Field(default_factory=Limits)
    modes: dict[Mode, Limits] = Field(default_factory=dict)
    # A crossing alarms only after the value stayed over the limit this long (0: at once).
    min_duration_s: float = Field(default=0, ge=0, le=86_400)
    rate: RateLimits | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Metric:
        lo, hi = self.physical
        if not lo < hi:
            raise ValueError(f"physical range {self.physical} is empty")
        if not (lo <= self.normal[0] <= self.normal[1] <= hi):
            raise ValueError(f"normal range {self.normal} must lie inside physical {self.physical}")
        for mode, limits in self.modes.items():
            if mode in _TIGHTEN_ONLY:
                self._check_tighter(mode, limits)
        return self

    def _check_tighter(self, mode: Mode, limits: Limits) -> None:
        for sev, v in limits.high.items():
            base = self.thresholds.high.get(sev)
            if base is not None and v > base:
                raise ValueError(f"{self.key}: mode {mode} loosens high {sev} from {base} to {v}")
        for sev, v in limits.low.items():
            base = self.thresholds.low.get(sev)
            if base is not None and v < base:
                raise ValueError(f"{self.key}: mode {mode} loosens low {sev} from {base} to {v}")

    def limits(self, mode: Mode | str = Mode.DAILY) -> Limits:
        """The limits in force in a mode: the mode's override, else the daily ones."""
        return self.modes.get(Mode(mode), self.thresholds)

    def in_physical_range(self, value: float) -> bool:
        return self.physical[0] <= value <= self.physical[1]

    def evaluate(
        self,
        value: float,
        mode: Mode | str = Mode.DAILY,
        current: Severity | None = None,
    ) -> tuple[Severity | None, Direction | None, float | None]:
        """Severity of a value, its direction and the limit passed.

        With ``current`` (the level an open alarm holds), hysteresis keeps that level
        until the value has gone back past its limit by the hysteresis, so a value
        hovering on a limit does not raise and clear alarms over and over.
        """
        limits = self.limits(mode)
        best: tuple[Severity | None, Direction | None, float | None] = (None, None, None)
        for direction in ("high", "low"):
            grades: dict[Severity, float] = getattr(limits, direction)
            for sev in _ASCENDING:
                if sev not in grades:
                    continue
                limit = grades[sev]
                margin = self.hysteresis if current is not None and sev.rank >= current.rank else 0
                passed = value >= limit - margin if direction == "high" else value <= limit + margin
                if passed and (best[0] is None or sev.rank < best[0].rank):
                    best = (sev, direction, limit)
        return best


class DeviceType(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = ""
    name: dict[str, str]
    infrastructure: dict[str, str] = Field(default_factory=dict)
    interval_s: int = Field(gt=0)
    metrics: dict[str, Metric]
    # Severity of the alarm a silent device (or its last will) raises; null: none.
    offline_severity: Severity | None = Severity.BLUE
    alarm_merge: AlarmMerge = Field(default_factory=AlarmMerge)

    @field_validator("metrics")
    @classmethod
    def _named(cls, v: dict[str, Metric]) -> dict[str, Metric]:
        if not v:
            raise ValueError("a device type needs at least one metric")
        for key, m in v.items():
            m.key = key
        return v

    @property
    def offline_after_s(self) -> int:
        """Silence longer than three reporting intervals means the device is offline."""
        return 3 * self.interval_s

    def label(self, lang: str = "zh-CN") -> str:
        return self.name.get(lang) or self.name.get("en") or self.key


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    types: dict[str, DeviceType]

    @model_validator(mode="after")
    def _keys(self) -> Catalogue:
        for key, t in self.types.items():
            t.key = key
        return self

    def get(self, type_key: str) -> DeviceType:
        try:
            return self.types[type_key]
        except KeyError:
            raise KeyError(
                f"unknown device type {type_key!r}; known: {', '.join(sorted(self.types))}"
            ) from None


def load_catalogue(path: Path | str = CATALOGUE_FILE) -> Catalogue:
    """Load and validate a catalogue file; a bad file fails with pydantic's message."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return Catalogue.model_validate(data)


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The product's catalogue, loaded once."""
    return load_catalogue()
