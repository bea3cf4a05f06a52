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

Dedicated grids (专属网格: schools, hospitals, parks, ...) have their own code space
of 16 digits, a length no administrative level uses:

| part      | digits | meaning                                             |
|-----------|--------|-----------------------------------------------------|
| township  | 1-9    | the township that holds most of the grid            |
| marker    | 10     | always ``9``: the dedicated space                   |
| kind      | 11-12  | ``DEDICATED_KINDS``: 01 school … 06 key point       |
| sequence  | 13-16  | per township and kind, from 0001                    |

e.g. ``4101050019010001`` is the first school of township 410105001. Village
sequences 900-999 are reserved for that marker, so a code's prefixes are still its
jurisdictions: no village code is ever a prefix of a dedicated code, and a scope that
compares prefixes sees a dedicated grid exactly from its township upwards.
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
    DEDICATED = "dedicated"

    @property
    def digits(self) -> int:
        return LEVEL_DIGITS[self]

    @property
    def depth(self) -> int:
        """0 for the city, 5 for a micro-grid; a dedicated grid hangs below a township (3)."""
        if self is Level.DEDICATED:
            return Level.VILLAGE.depth
        return LEVELS.index(self)


# The administrative chain; dedicated grids stand beside it, not in it.
LEVELS: tuple[Level, ...] = (
    Level.CITY,
    Level.COUNTY,
    Level.TOWNSHIP,
    Level.VILLAGE,
    Level.GRID,
    Level.MICRO_GRID,
)
LEVEL_DIGITS: dict[Level, int] = {
    Level.CITY: 4,
    Level.COUNTY: 6,
    Level.TOWNSHIP: 9,
    Level.VILLAGE: 12,
    Level.GRID: 15,
    Level.MICRO_GRID: 17,
    Level.DEDICATED: 16,
}
DEDICATED_MARKER = "9"
CITY_LEVEL_CODE = "4101"  # the one city this product serves


class DedicatedKind(StrEnum):
    SCHOOL = "school"
    HOSPITAL = "hospital"
    INDUSTRIAL_PARK = "industrial_park"
    MARKET = "market"
    CONSTRUCTION_SITE = "construction_site"
    KEY_POINT = "key_point"

    @property
    def number(self) -> str:
        """The two digits of this kind in a dedicated code."""
        return DEDICATED_KINDS_BY_KIND[self]

    @property
    def name_zh(self) -> str:
        return DEDICATED_KIND_NAMES_ZH[self]


DEDICATED_KINDS: dict[str, DedicatedKind] = {
    "01": DedicatedKind.SCHOOL,
    "02": DedicatedKind.HOSPITAL,
    "03": DedicatedKind.INDUSTRIAL_PARK,
    "04": DedicatedKind.MARKET,
    "05": DedicatedKind.CONSTRUCTION_SITE,
    "06": DedicatedKind.KEY_POINT,
}
DEDICATED_KINDS_BY_KIND: dict[DedicatedKind, str] = {k: n for n, k in DEDICATED_KINDS.items()}
DEDICATED_KIND_NAMES_ZH: dict[DedicatedKind, str] = {
    DedicatedKind.SCHOOL: "学校",
    DedicatedKind.HOSPITAL: "医院",
    DedicatedKind.INDUSTRIAL_PARK: "产业园区",
    DedicatedKind.MARKET: "商场市场",
    DedicatedKind.CONSTRUCTION_SITE: "建筑工地",
    DedicatedKind.KEY_POINT: "重点部位",
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
            f"unknown level {level!r}: use one of {', '.join(lv.value for lv in Level)}"
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
    if len(code) == LEVEL_DIGITS[Level.DEDICATED]:
        return _check_dedicated(code)
    for start, end, name in _SEGMENTS:
        if end > len(code):
            break
        if code[start:end].strip("0") == "":
            raise CodeError(
                f"code {code!r}: the {name} sequence (digits {start + 1}-{end}) is all zeros"
            )
        if name == "village" and code[start] == DEDICATED_MARKER:
            raise CodeError(
                f"code {code!r}: village sequences 900-999 (digits 10-12) are reserved "
                "for dedicated grids"
            )
    return code


def _check_dedicated(code: str) -> str:
    for start, end, name in _SEGMENTS[:4]:
        if code[start:end].strip("0") == "":
            raise CodeError(
                f"code {code!r}: the {name} sequence (digits {start + 1}-{end}) is all zeros"
            )
    if code[9] != DEDICATED_MARKER:
        raise CodeError(
            f"code {code!r} has 16 digits, the length of a dedicated-grid code, but digit 10 "
            f"is {code[9]!r}, not the dedicated marker {DEDICATED_MARKER!r}"
        )
    if code[10:12] not in DEDICATED_KINDS:
        known = ", ".join(f"{n} ({k.value})" for n, k in DEDICATED_KINDS.items())
        raise CodeError(
            f"code {code!r}: unknown dedicated-grid kind {code[10:12]!r} (digits 11-12); "
            f"kinds are {known}"
        )
    if code[12:16].strip("0") == "":
        raise CodeError(f"code {code!r}: the dedicated sequence (digits 13-16) is all zeros")
    return code


def is_dedicated(code: str) -> bool:
    """True for a well-formed dedicated-grid code (no exception for anything else)."""
    try:
        return level_of(code) is Level.DEDICATED
    except CodeError:
        return False


def dedicated_kind(code: str) -> DedicatedKind:
    """The kind of a dedicated-grid code; any other code raises CodeError."""
    if level_of(code) is not Level.DEDICATED:
        raise CodeError(f"code {code!r} is not a dedicated-grid code (16 digits)")
    return DEDICATED_KINDS[code[10:12]]


def make_dedicated_code(township: str, kind: DedicatedKind | str, seq: int) -> str:
    """The code of the ``seq``-th (1-based) dedicated grid of ``kind`` in ``township``."""
    validate_code(township, expected_level=Level.TOWNSHIP)
    try:
        k = DedicatedKind(kind)
    except ValueError as exc:
        raise CodeError(
            f"unknown dedicated-grid kind {kind!r}: use one of "
            f"{', '.join(k.value for k in DedicatedKind)}"
        ) from exc
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= 9999:
        raise CodeError(f"a dedicated sequence must be an integer 1..9999, not {seq!r}")
    return f"{township}{DEDICATED_MARKER}{k.number}{seq:04d}"


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
        if level is Level.DEDICATED and parent_level.depth > Level.TOWNSHIP.depth:
            raise CodeError(
                f"code {code!r} is a dedicated grid: it lies below a township or above, "
                f"not below {parent!r} ({parent_level.value})"
            )
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
    if level is Level.DEDICATED:
        return code[: Level.TOWNSHIP.digits]
    return code[: LEVELS[level.depth - 1].digits]


def child_level(level: Level | str) -> Level | None:
    """The level the map drills to below ``level``; None where drilling ends.

    Drilling ends at the grid: its micro-grids are drawn on request
    (``City.units_at(Level.MICRO_GRID, within=grid)``), since the map's grid view is
    the grid itself with its staff. Dedicated grids have no level below them.
    """
    lv = _as_level(level)
    if lv in (Level.GRID, Level.MICRO_GRID, Level.DEDICATED):
        return None
    return LEVELS[lv.depth + 1]


def is_within(code: str, ancestor: str) -> bool:
    """True when ``code`` is ``ancestor`` itself or lies below it."""
    return code.startswith(ancestor)


def make_code(parent: str, seq: int) -> str:
    """The code of the ``seq``-th child (1-based) of ``parent``."""
    parent_level = level_of(parent)
    level = Level.MICRO_GRID if parent_level is Level.GRID else child_level(parent_level)
    if level is None:
        raise CodeError(f"code {parent!r} is a {parent_level.value}: it has no children")
    width = level.digits - len(parent)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 10**width:
        raise CodeError(
            f"a {level.value} sequence must be an integer 1..{10**width - 1}, not {seq!r}"
        )
    return _check_form(f"{parent}{seq:0{width}d}")
