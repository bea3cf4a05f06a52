"""The clock of time limits: working hours on a Chinese working calendar, or calendar time.

A day is a working day when the calendar lists it as a make-up working day (调休上班), or
when it is Monday-Friday and not a public holiday. Years the calendar does not list fall
back to the weekday rule; ``WorkCalendar.covers`` tells a screen to warn about that.
Pure functions: no Redis, no clock reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml

CALENDAR_FILE = Path(__file__).resolve().parent / "calendar_cn.yaml"
HOUR_MS = 3_600_000
Unit = Literal["work_hours", "calendar_hours", "work_days"]
UNITS: tuple[str, ...] = ("work_hours", "calendar_hours", "work_days")
# A limit that needs more than this many days of search is a data error, not a limit.
MAX_DAYS = 3 * 366


class ClockError(ValueError):
    """A limit or calendar that cannot be used; the message says why."""


@dataclass(frozen=True)
class WorkCalendar:
    tz: ZoneInfo
    work_hours: tuple[tuple[time, time], ...]
    holidays: dict[date, str] = field(default_factory=dict)
    workdays: dict[date, str] = field(default_factory=dict)
    years: frozenset[int] = frozenset()
    unverified_years: frozenset[int] = frozenset()

    @property
    def day_hours(self) -> float:
        return sum(_secs(b) - _secs(a) for a, b in self.work_hours) / 3600

    def covers(self, d: date) -> bool:
        return d.year in self.years

    def is_workday(self, d: date) -> bool:
        if d in self.workdays:
            return True
        return d.weekday() < 5 and d not in self.holidays

    def day_kind(self, d: date) -> str:
        """'workday', 'makeup' (调休上班), 'holiday' or 'weekend'."""
        if d in self.workdays:
            return "makeup"
        if d in self.holidays:
            return "holiday"
        return "workday" if d.weekday() < 5 else "weekend"

    def intervals(self, d: date) -> list[tuple[int, int]]:
        """Working intervals of a day as UTC epoch ms."""
        if not self.is_workday(d):
            return []
        return [(_ms(d, a, self.tz), _ms(d, b, self.tz)) for a, b in self.work_hours]


def _secs(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _ms(d: date, t: time, tz: ZoneInfo) -> int:
    return int(datetime.combine(d, t, tzinfo=tz).timestamp() * 1000)


def _date(v: Any, where: str) -> date:
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError:
        raise ClockError(f"calendar: {where}: {v!r} is not a date (YYYY-MM-DD)") from None


def _hm(v: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(v))
    except ValueError:
        raise ClockError(f"calendar: {where}: {v!r} is not a time (HH:MM)") from None


def load_calendar(path: Path | str | None = None) -> WorkCalendar:
    """Read and check the calendar file; a wrong row is refused with where it is."""
    src = path or CALENDAR_FILE
    try:
        with open(src, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except (yaml.YAMLError, ValueError) as exc:
        raise ClockError(f"calendar {Path(src).name}: not a valid calendar file: {exc}") from exc
    tz = ZoneInfo(str(data.get("timezone", "Asia/Shanghai")))
    hours: list[tuple[time, time]] = []
    for i, pair in enumerate(data.get("work_hours") or []):
        a, b = _hm(pair[0], f"work_hours[{i}]"), _hm(pair[1], f"work_hours[{i}]")
        if b <= a or (hours and a < hours[-1][1]):
            raise ClockError(
                f"calendar: work_hours[{i}] {pair} is empty or overlaps the one before"
            )
        hours.append((a, b))
    if not hours:
        raise ClockError("calendar: work_hours must list at least one interval")
    holidays: dict[date, str] = {}
    workdays: dict[date, str] = {}
    years: set[int] = set()
    unverified: set[int] = set()
    for year, spec in (data.get("years") or {}).items():
        y = int(year)
        years.add(y)
        if not spec.get("verified", False):
            unverified.add(y)
        for row in spec.get("holidays") or []:
            first = _date(row.get("from"), f"{y} holiday {row.get('name')}")
            last = _date(row.get("to", row.get("from")), f"{y} holiday {row.get('name')}")
            if last < first or first.year != y:
                raise ClockError(
                    f"calendar: {y} holiday {row.get('name')}: {first}..{last} is wrong"
                )
            d: date = first
            while d <= last:
                holidays[d] = str(row.get("name", ""))
                d += timedelta(days=1)
        for row in spec.get("workdays") or []:
            d = _date(row.get("date"), f"{y} make-up day {row.get('name')}")
            if d in holidays:
                raise ClockError(f"calendar: {d} is both a holiday and a make-up working day")
            workdays[d] = str(row.get("name", ""))
    return WorkCalendar(
        tz=tz,
        work_hours=tuple(hours),
        holidays=holidays,
        workdays=workdays,
        years=frozenset(years),
        unverified_years=frozenset(unverified),
    )


@lru_cache(maxsize=1)
def calendar() -> WorkCalendar:
    return load_calendar()


def _check(limit: float, unit: str) -> None:
    if unit not in UNITS:
        raise ClockError(f"unknown time-limit unit {unit!r}; one of {', '.join(UNITS)}")
    if isinstance(limit, bool) or not math.isfinite(limit) or limit < 0:
        raise ClockError(f"time limit {limit!r} must be a finite number >= 0")


def _local_date(ms: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(tz).date()


def deadline(
    start_ms: int, limit: float, unit: str = "work_hours", cal: WorkCalendar | None = None
) -> int:
    """The moment ``limit`` units after ``start_ms`` (UTC epoch ms).

    ``work_days`` counts whole working days of working hours, so 1 work day from Monday
    10:00 ends Tuesday 10:00. Work time started outside working hours begins at the next
    working interval.
    """
    _check(limit, unit)
    if unit == "calendar_hours":
        return start_ms + round(limit * HOUR_MS)
    cal = cal or calendar()
    need = round(limit * (cal.day_hours if unit == "work_days" else 1) * HOUR_MS)
    d = _local_date(start_ms, cal.tz)
    last_end = start_ms
    for _ in range(MAX_DAYS):
        for a, b in cal.intervals(d):
            a = max(a, start_ms)
            if b <= a:
                continue
            if need <= b - a:
                return a + need
            need -= b - a
            last_end = b
        d += timedelta(days=1)
    raise ClockError(f"time limit {limit} {unit} reaches beyond {MAX_DAYS} days ({last_end})")


def elapsed(
    start_ms: int, end_ms: int, unit: str = "work_hours", cal: WorkCalendar | None = None
) -> float:
    """Time between two moments in ``unit`` (negative when end is before start)."""
    _check(0, unit)
    if end_ms < start_ms:
        return -elapsed(end_ms, start_ms, unit, cal)
    if unit == "calendar_hours":
        return (end_ms - start_ms) / HOUR_MS
    cal = cal or calendar()
    total = 0
    d = _local_date(start_ms, cal.tz)
    last = _local_date(end_ms, cal.tz)
    while d <= last:
        for a, b in cal.intervals(d):
            lo, hi = max(a, start_ms), min(b, end_ms)
            if hi > lo:
                total += hi - lo
        d += timedelta(days=1)
    hours = total / HOUR_MS
    return hours / cal.day_hours if unit == "work_days" else hours
