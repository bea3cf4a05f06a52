"""The device type catalogue: what the device team configures, validated on load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from core.models import Mode, Severity
from devices.catalogue import CATALOGUE_FILE, catalogue, load_catalogue


def test_five_lifeline_types_with_units_and_limits() -> None:
    cat = catalogue()
    assert set(cat.types) == {"gas", "water_pressure", "drainage_level", "heating", "bridge"}
    for t in cat.types.values():
        assert t.interval_s > 0 and t.label("zh-CN") and t.label("en")
        for m in t.metrics.values():
            assert m.unit
            assert m.physical[0] <= m.normal[0] <= m.normal[1] <= m.physical[1]
    assert cat.get("gas").metrics["ch4_lel"].unit == "%LEL"
    assert cat.get("water_pressure").metrics["pressure_mpa"].thresholds.low[Severity.YELLOW] == 0.14


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, None),
        (10, Severity.BLUE),
        (22, Severity.YELLOW),
        (25, Severity.ORANGE),
        (60, Severity.RED),
    ],
)
def test_gas_levels_follow_gb50493(value: float, expected: Severity | None) -> None:
    sev, direction, limit = catalogue().get("gas").metrics["ch4_lel"].evaluate(value)
    assert sev == expected
    if expected:
        assert direction == "high" and value >= limit  # type: ignore[operator]


def test_low_direction_and_both_sides() -> None:
    m = catalogue().get("water_pressure").metrics["pressure_mpa"]
    assert m.evaluate(0.3)[0] is None
    assert m.evaluate(0.13)[:2] == (Severity.YELLOW, "low")
    assert m.evaluate(0.04)[0] == Severity.RED
    assert m.evaluate(0.85)[:2] == (Severity.ORANGE, "high")


def test_drainage_depth_grades() -> None:
    m = catalogue().get("drainage_level").metrics["ponding_cm"]
    assert [m.evaluate(v)[0] for v in (2, 5, 12, 30)] == [
        None,
        Severity.YELLOW,
        Severity.ORANGE,
        Severity.RED,
    ]


def test_hysteresis_holds_a_level_until_clearly_back() -> None:
    m = catalogue().get("gas").metrics["ch4_lel"]  # orange 25, hysteresis 2
    assert m.evaluate(24)[0] == Severity.YELLOW  # fresh: below the orange limit
    assert m.evaluate(24, current=Severity.ORANGE)[0] == Severity.ORANGE  # within 2 of it
    assert m.evaluate(22.5, current=Severity.ORANGE)[0] == Severity.YELLOW
    assert m.evaluate(49, current=Severity.ORANGE)[0] == Severity.ORANGE  # red needs 50


def test_emergency_mode_tightens() -> None:
    m = catalogue().get("gas").metrics["ch4_lel"]
    assert m.evaluate(15, Mode.DAILY)[0] == Severity.BLUE
    assert m.evaluate(15, Mode.EMERGENCY)[0] == Severity.YELLOW
    assert m.evaluate(15, "holiday")[0] == Severity.BLUE  # no override: daily limits


def _write(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "cat.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_loosening_in_a_heightened_mode_is_refused(tmp_path: Path) -> None:
    def loosen(d: dict) -> None:  # type: ignore[type-arg]
        d["types"]["gas"]["metrics"]["ch4_lel"]["modes"]["emergency"]["high"]["red"] = 60

    with pytest.raises(ValidationError, match="loosens high red"):
        load_catalogue(_write(tmp_path, loosen))


def test_misordered_limits_and_bad_ranges_are_refused(tmp_path: Path) -> None:
    def misorder(d: dict) -> None:  # type: ignore[type-arg]
        d["types"]["gas"]["metrics"]["ch4_lel"]["thresholds"]["high"] = {"yellow": 30, "red": 20}

    with pytest.raises(ValidationError, match="more severe"):
        load_catalogue(_write(tmp_path, misorder))

    def normal_outside(d: dict) -> None:  # type: ignore[type-arg]
        d["types"]["bridge"]["metrics"]["strain_ue"]["normal"] = [-9000, 0]

    with pytest.raises(ValidationError, match="inside physical"):
        load_catalogue(_write(tmp_path, normal_outside))


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: bridge, drainage_level"):
        catalogue().get("elevator")
