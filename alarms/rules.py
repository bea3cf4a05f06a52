"""Threshold rules: limits per severity with a direction and a hysteresis margin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from core.models import Severity

Direction = Literal["high", "low"]
# Most severe first: the first crossed limit in this order is the severity.
LADDER = (Severity.RED, Severity.ORANGE, Severity.YELLOW, Severity.BLUE)


@dataclass(frozen=True)
class Threshold:
    """Limits of one metric of one device type.

    ``high``: alarm at value >= limit; ``low``: alarm at value <= limit.
    An open alarm clears only once the value is back inside the least severe limit
    by ``hysteresis``, so a value dithering on the line does not flap.
    """

    metric: str
    direction: Direction
    levels: Mapping[Severity, float]
    hysteresis: float = 0.0
    unit: str = ""
    label: str = ""
    device_type: str = ""
    # The healthy range; mode factors move limits toward it, never into it.
    normal: tuple[float, float] | None = None
    # Limits a device catalogue sets for a given mode (mode value -> severity -> limit).
    mode_levels: Mapping[str, Mapping[Severity, float]] = field(default_factory=dict)
    extra: Mapping[str, object] = field(default_factory=dict)
    # The value must stay over the limit this long before the alarm is raised (0: at once).
    min_duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.min_duration_s < 0:
            raise ValueError(f"min_duration_s of {self.metric} must not be negative")
        if self.direction not in ("high", "low"):
            raise ValueError(
                f"direction of {self.metric} must be high or low, not {self.direction!r}"
            )
        if not self.levels:
            raise ValueError(f"threshold for {self.metric} has no limits")
        if self.hysteresis < 0:
            raise ValueError(f"hysteresis of {self.metric} must not be negative")
        ordered = [self.levels[s] for s in LADDER if s in self.levels]
        # Red must be the hardest limit to reach, blue the easiest.
        expect = sorted(ordered, reverse=self.direction == "high")
        if ordered != expect:
            raise ValueError(
                f"limits of {self.metric} ({self.direction}) are out of order: "
                f"{dict((s.value, self.levels[s]) for s in LADDER if s in self.levels)}"
            )

    @property
    def rule(self) -> str:
        # High limits keep the plain name; a metric with both directions gets two rules.
        return (
            f"threshold:{self.metric}"
            if self.direction == "high"
            else f"threshold:{self.metric}:low"
        )

    def crossed(self, value: float) -> Severity | None:
        """The most severe level whose limit the value reaches, or None."""
        for sev in LADDER:
            limit = self.levels.get(sev)
            if limit is None:
                continue
            if (self.direction == "high" and value >= limit) or (
                self.direction == "low" and value <= limit
            ):
                return sev
        return None

    def limit(self, severity: Severity) -> float:
        return self.levels[severity]

    def cleared(self, value: float) -> bool:
        """Back inside the least severe limit by the hysteresis margin."""
        easiest = self.levels[[s for s in LADDER if s in self.levels][-1]]
        if self.direction == "high":
            return value < easiest - self.hysteresis
        return value > easiest + self.hysteresis

    def scaled(self, factor: float) -> Threshold:
        """Tightened (factor < 1) or loosened limits; low limits move the other way."""
        if factor <= 0:
            raise ValueError("alarm factor must be positive")
        if factor == 1:
            return self
        if self.normal is not None:
            edge = self.normal[1] if self.direction == "high" else self.normal[0]
            levels = {s: edge + (v - edge) * factor for s, v in self.levels.items()}
        elif self.direction == "high":
            levels = {s: v * factor for s, v in self.levels.items()}
        else:
            levels = {s: v / factor for s, v in self.levels.items()}
        return replace(self, levels=levels)


@dataclass(frozen=True)
class Decision:
    """What one reading does to one rule's alarm."""

    action: Literal["none", "pending", "raise", "escalate", "update", "clear"]
    severity: Severity | None = None


def decide(t: Threshold, value: float, open_severity: Severity | None) -> Decision:
    """Raise, escalate, keep or clear given the open alarm's severity (None = no alarm open).

    An open alarm never drops a level while the value stays out of bounds: operators keep
    seeing the worst that happened until it clears.
    """
    sev = t.crossed(value)
    if open_severity is None:
        return Decision("raise", sev) if sev else Decision("none")
    if sev is not None and sev.rank < open_severity.rank:
        return Decision("escalate", sev)
    if sev is None and t.cleared(value):
        return Decision("clear", open_severity)
    return Decision("update", open_severity)


def hold(
    d: Decision, ts_ms: int, since_ms: int | None, min_duration_s: float
) -> tuple[Decision, int | None]:
    """Apply a minimum duration to a decision: (the decision, when the crossing began).

    A raise waits until the value has been over the limit for ``min_duration_s`` since
    the first crossing reading (``since_ms``); meanwhile the decision is ``pending``.
    Any decision other than raise (back inside, or an alarm already open) ends the wait.
    """
    if d.action != "raise" or min_duration_s <= 0:
        return d, None
    start = ts_ms if since_ms is None or since_ms > ts_ms else since_ms
    if ts_ms - start >= min_duration_s * 1000:
        return d, None
    return Decision("pending", d.severity), start


RateDirection = Literal["rise", "fall", "both"]


@dataclass(frozen=True)
class RateRule:
    """Rate-of-change limits of one metric (change per minute), rule ``rate:<metric>``."""

    metric: str
    levels: Mapping[Severity, float]
    direction: RateDirection = "rise"
    min_gap_s: float = 10.0
    max_gap_s: float = 600.0
    clear_after_s: float = 300.0
    unit: str = ""
    label: str = ""
    device_type: str = ""

    def __post_init__(self) -> None:
        if self.direction not in ("rise", "fall", "both"):
            raise ValueError(
                f"rate direction of {self.metric} must be rise, fall or both, "
                f"not {self.direction!r}"
            )
        if not self.levels or any(v <= 0 for v in self.levels.values()):
            raise ValueError(f"rate limits of {self.metric} must be positive")
        ordered = [self.levels[s] for s in LADDER if s in self.levels]
        if ordered != sorted(ordered, reverse=True):
            raise ValueError(f"rate limits of {self.metric} are out of order")
        if not 0 <= self.min_gap_s < self.max_gap_s:
            raise ValueError(f"rate of {self.metric}: need 0 <= min_gap_s < max_gap_s")

    @property
    def rule(self) -> str:
        return f"rate:{self.metric}"

    def per_min(self, v0: float, t0_ms: int, v1: float, t1_ms: int) -> float | None:
        """Change per minute between two readings; None when they are too far apart
        or not in order (a rate over a silence says nothing)."""
        gap = t1_ms - t0_ms
        if gap <= 0 or gap > self.max_gap_s * 1000:
            return None
        return (v1 - v0) * 60_000 / gap

    def crossed(self, rate: float) -> Severity | None:
        """The most severe level the rate reaches in the rule's direction."""
        mag = {"rise": rate, "fall": -rate, "both": abs(rate)}[self.direction]
        for sev in LADDER:
            limit = self.levels.get(sev)
            if limit is not None and mag >= limit:
                return sev
        return None

    def limit(self, severity: Severity) -> float:
        return self.levels[severity]


def decide_rate(
    rule: RateRule,
    rate: float | None,
    ts_ms: int,
    last_cross_ms: int | None,
    open_severity: Severity | None,
) -> Decision:
    """Raise, escalate, keep or clear a rate alarm.

    A rate flips sign as a leak fluctuates, so an open alarm clears only after no reading
    has crossed for ``clear_after_s`` since the last one that did (``last_cross_ms``).
    """
    sev = rule.crossed(rate) if rate is not None else None
    if open_severity is None:
        return Decision("raise", sev) if sev else Decision("none")
    if sev is not None and sev.rank < open_severity.rank:
        return Decision("escalate", sev)
    if sev is None and (
        last_cross_ms is None or ts_ms - last_cross_ms >= rule.clear_after_s * 1000
    ):
        return Decision("clear", open_severity)
    return Decision("update", open_severity)


def for_mode(
    t: Threshold,
    mode: str,
    *,
    factor: float = 1.0,
    overrides: Mapping[str, Mapping[str, Mapping[str, Mapping[Severity, float]]]] | None = None,
) -> Threshold:
    """The limits in force under a mode.

    Precedence: limits the device catalogue gives for this mode, then the mode plan's
    override for the device type and metric, then the mode's factor on the daily limits.
    """
    own = t.mode_levels.get(str(mode))
    if own:
        return replace(t, levels=dict(own))
    ov = (overrides or {}).get(t.device_type, {}).get(t.metric, {}).get(t.direction)
    if ov:
        return replace(t, levels={Severity(k): float(v) for k, v in ov.items()})
    return t.scaled(factor)
