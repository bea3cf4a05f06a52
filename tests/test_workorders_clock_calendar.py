"""Time limits on the working calendar: weekends, public holidays, make-up working days."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from core.timeutil import SHANGHAI, fmt_local
from workorders.clock import ClockError, calendar, deadline, elapsed, load_calendar

H = 3_600_000


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=SHANGHAI).timestamp() * 1000)


def local(ms: int) -> str:
    return fmt_local(ms)[:16]


def test_official_2025_and_2026_arrangements_are_in_the_calendar() -> None:
    cal = calendar()
    makeup = [
        date(2025, 1, 26),
        date(2025, 2, 8),
        date(2025, 4, 27),
        date(2025, 9, 28),
        date(2025, 10, 11),
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ]
    for d in makeup:
        assert d.weekday() >= 5 and cal.day_kind(d) == "makeup" and cal.is_workday(d), d
    for y in (2025, 2026):
        days = [d for d in cal.holidays if d.year == y]
        assert len(days) == {2025: 28, 2026: 33}[y]
    assert cal.day_kind(date(2025, 10, 8)) == "holiday"  # a Wednesday off
    assert cal.day_kind(date(2026, 2, 23)) == "holiday"  # a Monday off
    assert cal.day_kind(date(2025, 10, 9)) == "workday"
    assert cal.covers(date(2026, 12, 31)) and not cal.covers(date(2027, 1, 4))
    assert cal.unverified_years == frozenset()
    assert cal.day_hours == 7.0


@pytest.mark.parametrize(
    ("start", "limit", "unit", "expect"),
    [
        # Lunch break 12:00-13:30 does not count.
        (at(2025, 3, 12, 11, 30), 1, "work_hours", "2025-03-12 14:00"),
        # Over a weekend: 1.5 h on Friday, the rest on Monday.
        (at(2025, 3, 14, 16, 0), 3, "work_hours", "2025-03-17 10:30"),
        # Started on a Saturday night: the clock starts Monday 09:00.
        (at(2025, 3, 15, 22, 0), 2, "work_hours", "2025-03-17 11:00"),
        # Qingming Friday-Sunday off: Thursday 16:00 + 3 h ends Monday.
        (at(2025, 4, 3, 16, 0), 3, "work_hours", "2025-04-07 10:30"),
        # National Day 2025: eight days off, back Thursday 9 October.
        (at(2025, 9, 30, 17, 0), 1, "work_hours", "2025-10-09 09:30"),
        # Make-up Sunday 26 Jan 2025 is a working day.
        (at(2025, 1, 24, 16, 0), 3, "work_hours", "2025-01-26 10:30"),
        # Make-up Saturday 14 Feb 2026, then the nine-day Spring Festival.
        (at(2026, 2, 13, 17, 0), 1, "work_hours", "2026-02-14 09:30"),
        (at(2026, 2, 14, 17, 0), 1, "work_hours", "2026-02-24 09:30"),
        # Work days keep the time of day.
        (at(2025, 3, 10, 10, 0), 1, "work_days", "2025-03-11 10:00"),
        (at(2025, 4, 30, 10, 0), 1, "work_days", "2025-05-06 10:00"),
        # Calendar hours ignore holidays and nights.
        (at(2025, 10, 1, 10, 0), 30, "calendar_hours", "2025-10-02 16:00"),
    ],
)
def test_deadline(start: int, limit: float, unit: str, expect: str) -> None:
    end = deadline(start, limit, unit)
    assert local(end) == expect
    assert elapsed(start, end, unit) == pytest.approx(limit)


def test_elapsed_counts_only_working_time() -> None:
    # Thursday 3 April to Tuesday 8 April 2025: Thursday and Monday count, Qingming does not.
    assert elapsed(at(2025, 4, 3, 9), at(2025, 4, 8, 9), "work_hours") == 14
    assert elapsed(at(2025, 4, 8, 9), at(2025, 4, 3, 9), "work_hours") == -14
    assert elapsed(at(2025, 4, 3, 9), at(2025, 4, 8, 9), "calendar_hours") == 120
    # Every start in a month of 30-minute steps: deadline and elapsed agree.
    t = at(2025, 9, 26, 0)
    for _ in range(24 * 2 * 20):
        assert elapsed(t, deadline(t, 5.5, "work_hours"), "work_hours") == pytest.approx(5.5)
        t += H // 2


@pytest.mark.parametrize(
    ("limit", "unit", "msg"),
    [
        (1, "weeks", "unknown time-limit unit"),
        (-1, "work_hours", ">= 0"),
        (float("nan"), "work_hours", "finite"),
    ],
)
def test_bad_limits_are_refused(limit: float, unit: str, msg: str) -> None:
    with pytest.raises(ClockError, match=msg):
        deadline(at(2025, 3, 3, 9), limit, unit)


def test_bad_calendar_rows_are_refused_with_where(tmp_path: Path) -> None:
    f = tmp_path / "cal.yaml"
    f.write_text(
        'work_hours: [["09:00", "12:00"]]\nyears:\n  2025:\n    holidays:\n'
        "      - {name: 元旦, from: 2025-01-01, to: 2025-01-01}\n"
        "    workdays:\n      - {name: 错, date: 2025-01-01}\n",
        encoding="utf-8",
    )
    with pytest.raises(ClockError, match="both a holiday and a make-up"):
        load_calendar(f)
    f.write_text('work_hours: [["13:00", "12:00"]]\n', encoding="utf-8")
    with pytest.raises(ClockError, match="empty or overlaps"):
        load_calendar(f)
    f.write_text(
        'work_hours: [["09:00", "17:00"]]\nyears:\n  2027:\n    holidays:\n'
        '      - {name: x, from: "soon"}\n',
        encoding="utf-8",
    )
    with pytest.raises(ClockError, match="2027 holiday x: .soon. is not a date"):
        load_calendar(f)


def test_an_edited_calendar_changes_the_clock(tmp_path: Path) -> None:
    f = tmp_path / "cal.yaml"
    f.write_text(
        'work_hours: [["08:00", "18:00"]]\nyears:\n  2027:\n    verified: false\n'
        "    holidays:\n      - {name: 元旦, from: 2027-01-01, to: 2027-01-01}\n",
        encoding="utf-8",
    )
    cal = load_calendar(f)
    assert cal.unverified_years == frozenset({2027})
    start = at(2026, 12, 31, 17)
    assert local(deadline(start, 2, "work_hours", cal)) == "2027-01-04 09:00"
    assert deadline(start, 2, "work_hours", cal) - start > timedelta(days=3).total_seconds() * 1000
