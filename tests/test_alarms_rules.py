"""Threshold rules: severity ladder, direction, hysteresis and mode adjustments."""

from __future__ import annotations

import pytest

from alarms.rules import Threshold, decide, for_mode
from alarms.service import catalogue_thresholds, in_force
from core.models import Mode, Severity

R, OR, Y, B = Severity.RED, Severity.ORANGE, Severity.YELLOW, Severity.BLUE
GAS = Threshold(
    "ch4_lel",
    "high",
    {B: 10, Y: 20, OR: 25, R: 50},
    hysteresis=2,
    unit="%LEL",
    device_type="gas",
    normal=(0, 5),
)
PRESSURE = Threshold(
    "pressure_mpa",
    "low",
    {Y: 0.14, OR: 0.1, R: 0.05},
    hysteresis=0.01,
    device_type="water_pressure",
    normal=(0.2, 0.5),
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, None), (9.99, None), (10, B), (24.9, Y), (25, OR), (49, OR), (50, R), (100, R)],
)
def test_high_ladder(value: float, expected: Severity | None) -> None:
    assert GAS.crossed(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0.3, None), (0.14, Y), (0.12, Y), (0.1, OR), (0.02, R)]
)
def test_low_ladder(value: float, expected: Severity | None) -> None:
    assert PRESSURE.crossed(value) == expected


def test_hysteresis_holds_until_back_inside_by_the_margin() -> None:
    assert decide(GAS, 12, None).action == "raise"
    assert decide(GAS, 9, B).action == "update"  # inside the limit, not by the margin
    assert decide(GAS, 8.0, B).action == "update"  # exactly on the margin still holds
    assert decide(GAS, 7.9, B).action == "clear"
    assert decide(PRESSURE, 0.145, Y).action == "update"
    assert decide(PRESSURE, 0.151, Y).action == "clear"


def test_escalation_and_no_silent_downgrade() -> None:
    assert decide(GAS, 30, Y).action == "escalate" and decide(GAS, 30, Y).severity == OR
    d = decide(GAS, 22, R)
    assert d.action == "update" and d.severity == R


def test_limits_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="out of order"):
        Threshold("x", "high", {R: 10, OR: 20})
    with pytest.raises(ValueError, match="high or low"):
        Threshold("x", "up", {R: 10})  # type: ignore[arg-type]


def test_mode_factor_tightens_toward_the_normal_range_never_into_it() -> None:
    t = for_mode(GAS, "emergency", factor=0.5)
    assert t.levels[B] == pytest.approx(7.5) and t.levels[R] == pytest.approx(27.5)
    p = for_mode(PRESSURE, "emergency", factor=0.5)
    # Low limits rise toward the normal floor 0.2: alarms come earlier, still below normal.
    assert p.levels[Y] == pytest.approx(0.17) and p.levels[Y] < 0.2
    assert p.crossed(0.16) == Y and PRESSURE.crossed(0.16) is None


def test_override_beats_factor_and_catalogue_mode_limits_beat_both() -> None:
    ov = {"gas": {"ch4_lel": {"high": {B: 3, R: 15}}}}
    assert dict(for_mode(GAS, "emergency", factor=0.5, overrides=ov).levels) == {B: 3, R: 15}
    own = Threshold(**{**GAS.__dict__, "mode_levels": {"emergency": {B: 5, R: 40}}})
    assert dict(for_mode(own, "emergency", factor=0.5, overrides=ov).levels) == {B: 5, R: 40}
    assert for_mode(own, "daily", factor=1.0).levels == GAS.levels


def test_catalogue_gas_limits_in_emergency_are_tighter() -> None:
    daily = {t.rule: t for t in in_force(catalogue_thresholds("gas"), Mode.DAILY)}
    emerg = {t.rule: t for t in in_force(catalogue_thresholds("gas"), Mode.EMERGENCY)}
    ch4_d, ch4_e = daily["threshold:ch4_lel"], emerg["threshold:ch4_lel"]
    assert ch4_d.crossed(7) is None and ch4_e.crossed(7) is not None
    for sev in ch4_e.levels:
        assert ch4_e.levels[sev] <= ch4_d.levels.get(sev, ch4_e.levels[sev])
    # A metric with both directions yields two rules.
    rules = {t.rule for t in catalogue_thresholds("water_pressure")}
    assert {"threshold:pressure_mpa", "threshold:pressure_mpa:low"} <= rules
