"""The unified grid code: levels, parents and clear refusals."""

from __future__ import annotations

import pytest

from grids.codes import (
    CodeError,
    Level,
    child_level,
    level_of,
    make_code,
    parent_of,
    validate_code,
)

GOOD = {
    "4101": Level.CITY,
    "410105": Level.COUNTY,
    "410105001": Level.TOWNSHIP,
    "410105001001": Level.VILLAGE,
    "410105001001003": Level.GRID,
    "41010500100100301": Level.MICRO_GRID,
}


@pytest.mark.parametrize(("code", "level"), GOOD.items())
def test_level_of_good_codes(code: str, level: Level) -> None:
    assert level_of(code) is level
    assert validate_code(code, expected_level=level) == code
    assert validate_code(code, expected_level=level.value) == code


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "empty"),
        ("41010", "has 5 digits"),
        ("4101050010010", "has 13 digits"),
        ("41010a", "non-digit character 'a'"),
        (" 410105", "non-digit character ' '"),
        ("４１０１０５", "non-digit"),  # full-width digits are not codes
        ("410100", "county sequence .* all zeros"),
        ("410105000", "township sequence .* all zeros"),
        ("410102001000", "village sequence .* all zeros"),  # the 12-digit township form
        ("410105001001000", "grid sequence .* all zeros"),
        ("0001", "province sequence .* all zeros"),
    ],
)
def test_bad_codes_say_why(code: str, message: str) -> None:
    with pytest.raises(CodeError, match=message):
        validate_code(code)


def test_not_a_string() -> None:
    with pytest.raises(CodeError, match="not int"):
        validate_code(410105)  # type: ignore[arg-type]


def test_wrong_level() -> None:
    with pytest.raises(CodeError, match="is a township code .* expected a grid code"):
        validate_code("410105001", expected_level=Level.GRID)
    with pytest.raises(CodeError, match="unknown level 'street'"):
        validate_code("410105001", expected_level="street")


def test_parent_prefix() -> None:
    assert validate_code("410105001001003", parent="410105") == "410105001001003"
    assert validate_code("410105001001003", parent="410105001001") == "410105001001003"
    with pytest.raises(CodeError, match="does not start with its parent '410102'"):
        validate_code("410105001001003", parent="410102")
    with pytest.raises(CodeError, match="cannot lie below"):
        validate_code("410105", parent="410105001")
    with pytest.raises(CodeError, match="cannot lie below"):
        validate_code("410105", parent="410105")
    with pytest.raises(CodeError, match="parent code is not valid"):
        validate_code("410105001", parent="41x1")


def test_parent_child_and_make_code() -> None:
    assert parent_of("4101") is None
    assert parent_of("410105") == "4101"
    assert parent_of("410105001001003") == "410105001001"
    assert parent_of("41010500100100301") == "410105001001003"
    assert child_level(Level.VILLAGE) is Level.GRID
    assert child_level("micro_grid") is None
    assert make_code("410105001", 1) == "410105001001"
    assert make_code("410105001001", 12) == "410105001001012"
    assert make_code("410105001001012", 7) == "41010500100101207"
    for bad in (0, 1000, -1):
        with pytest.raises(CodeError, match="sequence must be an integer"):
            make_code("410105001", bad)
    with pytest.raises(CodeError, match="has no children"):
        make_code("41010500100100301", 1)
