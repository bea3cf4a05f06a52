"""The unified grid code: one digit string whose prefixes are its jurisdictions.

| level      | digits | made of                                   | example           |
|------------|--------|-------------------------------------------|-------------------|
| city       | 4      | province 2 + city 2                       | 4101              |
| county     | 6      | city + 2                                  | 410105            |
| township   | 9      | county + 3                                | 410105001         |
| village    | 12     | township + 3                              | 410105001001      |
| grid       | 15     | village + 3                               | 410105001001001   |
| micro_grid | 17     | grid + 2                                  | 41010500100100101 |

City to village follow the national statistical division codes; grid and micro-grid
extend them. No segment may be all zeros: ``410100`` is the city written with six
digits, not a county, and ``410102001000`` is a township, not a village.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Level(StrEnum):
    CITY = "city"
    COUNTY = "county"
    TOWNSHIP = "township"
    VILLAGE = "village"
    GRID = "grid"
    MICRO_GRID = "micro_grid"

    @property
    def digits(self) -> int:
        return LEVEL_DIGITS[self]

    @property
    def depth(self) -> int:
        """0 for the city, 5 for a micro-grid."""
        return LEVELS.index(self)


LEVELS: tuple[Level, ...] = tuple(Level)
LEVEL_DIGITS: dict[Level, int] = {
    Level.CITY: 4,
    Level.COUNTY: 6,
    Level.TOWNSHIP: 9,
    Level.VILLAGE: 12,
    Level.GRID: 15,
    Level.MICRO_GRID: 17,
}
_BY_LENGTH = {n: lv for lv, n in LEVEL_DIGITS.items()}
# Segment boundaries: province 0-2, city 2-4, then each level's own sequence.
_SEGMENTS: tuple[tuple[int, int, str], ...] = (
    (0, 2, "province"),
    (2, 4, "city"),
    (4, 6, "county"),
    (6, 9, "township"),
    (9, 12, "village"),
    (12, 15, "grid"),
    (15, 17, "micro-grid"),
)
_DIGITS = re.compile(r"[0-9]+")


class CodeError(ValueError):
    """A jurisdiction code that is not well formed; the message says why."""


def _as_level(level: Level | str) -> Level:
    try:
        return Level(level)
    except ValueError as exc:
        raise CodeError(
            f"unknown level {level!r}: use one of {', '.join(lv.value for lv in LEVELS)}"
        ) from exc


def _check_form(code: object) -> str:
    if not isinstance(code, str):
        raise CodeError(f"code must be a string of digits, not {type(code).__name__}")
    if not code:
        raise CodeError("code is empty")
    if not _DIGITS.fullmatch(code):
        bad = next(ch for ch in code if not ("0" <= ch <= "9"))
        raise CodeError(f"code {code!r} contains non-digit character {bad!r}")
    if len(code) not in _BY_LENGTH:
        lengths = ", ".join(f"{n} ({lv.value})" for lv, n in LEVEL_DIGITS.items())
        raise CodeError(f"code {code!r} has {len(code)} digits; a code has {lengths}")
    for start, end, name in _SEGMENTS:
        if end > len(code):
            break
        if code[start:end].strip("0") == "":
            raise CodeError(
                f"code {code!r}: the {name} sequence (digits {start + 1}-{end}) is all zeros"
            )
    return code


def level_of(code: str) -> Level:
    """The level of a well-formed code; anything else raises CodeError."""
    return _BY_LENGTH[len(_check_form(code))]


def validate_code(
    code: str,
    expected_level: Level | str | None = None,
    parent: str | None = None,
) -> str:
    """Return ``code`` if it is well formed, at ``expected_level`` and below ``parent``."""
    level = level_of(code)
    if expected_level is not None:
        want = _as_level(expected_level)
        if level is not want:
            raise CodeError(
                f"code {code!r} is a {level.value} code ({len(code)} digits), "
                f"expected a {want.value} code ({want.digits} digits)"
            )
    if parent is not None:
        try:
            parent_level = level_of(parent)
        except CodeError as exc:
            raise CodeError(f"parent code is not valid: {exc}") from exc
        if parent_level.depth >= level.depth:
            raise CodeError(
                f"code {code!r} ({level.value}) cannot lie below {parent!r} ({parent_level.value})"
            )
        if not code.startswith(parent):
            raise CodeError(
                f"code {code!r} does not start with its parent {parent!r} "
                f"(it starts with {code[: len(parent)]!r})"
            )
    return code


def parent_of(code: str) -> str | None:
    """The code one level up, or None for the city."""
    level = level_of(code)
    if level is Level.CITY:
        return None
    return code[: LEVELS[level.depth - 1].digits]


def child_level(level: Level | str) -> Level | None:
    lv = _as_level(level)
    return None if lv is Level.MICRO_GRID else LEVELS[lv.depth + 1]


def is_within(code: str, ancestor: str) -> bool:
    """True when ``code`` is ``ancestor`` itself or lies below it."""
    return code.startswith(ancestor)


def make_code(parent: str, seq: int) -> str:
    """The code of the ``seq``-th child (1-based) of ``parent``."""
    level = child_level(level_of(parent))
    if level is None:
        raise CodeError(f"code {parent!r} is a micro-grid: it has no children")
    width = level.digits - len(parent)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 10**width:
        raise CodeError(
            f"a {level.value} sequence must be an integer 1..{10**width - 1}, not {seq!r}"
        )
    return f"{parent}{seq:0{width}d}"
