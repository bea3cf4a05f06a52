"""Scheduled mode switches on the real Redis, the sweep driven with explicit times."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import redis

from core.keys import keys
from core.models import Mode
from core.timeutil import SHANGHAI, now_ms
from modes.checklist import checklist
from modes.schedule import (
    ScheduleError,
    cancel_schedule,
    holiday_ranges,
    list_schedules,
    schedule_holidays,
    schedule_log,
    schedule_switch,
    sweep_schedules,
)
from modes.service import get_mode, mode_history, set_mode

H = 3_600_000


def _pushes(ps: redis.client.PubSub) -> list[dict]:
    out = []
    while (msg := ps.get_message(timeout=0.3)) is not None:
        if msg["type"] == "message":
            out.append(json.loads(msg["data"]))
    return out


def test_switch_happens_on_time_reminds_before_and_reverts(r: redis.Redis) -> None:
    t0 = now_ms()
    at, until = t0 + 3 * H, t0 + 27 * H
    s = schedule_switch(
        r, "4101", "major_task", at, "上合组织会议保障", "duty-wang", until_ms=until
    )
    assert [x.id for x in list_schedules(r, "4101")] == [s.id]
    ps = r.pubsub()
    ps.subscribe(keys().push_channel)
    ps.get_message(timeout=1)

    # Before the reminder: nothing.
    assert sweep_schedules(r, at - H - 1) == 0
    assert get_mode(r, "410105").mode == Mode.DAILY
    # One hour ahead: the reminder, pushed and in the stream, and still daily.
    assert sweep_schedules(r, at - H) == 1
    assert get_mode(r, "4101").mode == Mode.DAILY
    pushed = _pushes(ps)
    assert pushed == [
        {"topic": "mode", "code": "4101", "mode": "major_task", "schedule": s.id, "reminder": True}
    ]
    assert schedule_log(r, 1)[0]["event"] == "reminder"
    # A millisecond early: still daily.
    assert sweep_schedules(r, at - 1) == 0
    assert get_mode(r, "4101").mode == Mode.DAILY
    # On time: switched, with the schedule's reason and who scheduled it.
    assert sweep_schedules(r, at) == 1
    st = get_mode(r, "410105016")
    assert st.mode == Mode.MAJOR_TASK and st.since_ms == at
    assert st.by == "schedule:duty-wang" and st.reason == "上合组织会议保障"
    assert {"topic": "mode", "code": "4101", "mode": "major_task"} in _pushes(ps)
    # The checklist of the new mode is there, nothing ticked yet.
    items = checklist(r, "410105016")
    assert [i["id"] for i in items][0] == "commander_on_post"
    assert not any(i["done"] for i in items)
    # A second sweep does not switch again.
    assert sweep_schedules(r, at + 1000) == 0
    assert len(mode_history(r)) == 1
    # At until: back to what was in force before (the city had no mode of its own).
    assert sweep_schedules(r, until - 1) == 0
    assert get_mode(r, "4101").mode == Mode.MAJOR_TASK
    assert sweep_schedules(r, until) == 1
    assert get_mode(r, "4101").mode == Mode.DAILY
    assert r.hget(keys().modes, "4101") is None
    assert list_schedules(r)[0].status == "done"
    ps.close()


def test_district_scheduled_emergency_leaves_siblings_daily_and_restores_own_mode(
    r: redis.Redis,
) -> None:
    t0 = now_ms()
    set_mode(r, "410105", "holiday", "区内庙会", by="duty-li")
    with pytest.raises(ScheduleError, match="second confirmation"):
        schedule_switch(r, "410105", "emergency", t0 + H, "防汛", "duty-li", until_ms=t0 + 5 * H)
    s = schedule_switch(
        r,
        "410105",
        "emergency",
        t0 + H,
        "防汛Ⅰ级响应",
        "duty-li",
        until_ms=t0 + 5 * H,
        confirm=True,
        now=t0,
    )
    # Scheduled an hour ahead with an hour's reminder: the reminder goes out at once.
    assert sweep_schedules(r, t0 + 1) == 1
    assert get_mode(r, "410105016003").mode == Mode.HOLIDAY
    sweep_schedules(r, t0 + H)
    assert get_mode(r, "410105016003").mode == Mode.EMERGENCY
    assert get_mode(r, "410102001").mode == Mode.DAILY  # sibling district
    assert get_mode(r, "4101").mode == Mode.DAILY
    sweep_schedules(r, t0 + 5 * H)
    # Back to the district's own holiday mode, not to daily.
    back = get_mode(r, "410105016")
    assert back.mode == Mode.HOLIDAY and back.code == "410105"
    # The audit: every switch with its reason and who.
    log = [(e["code"], e["mode"], e["previous"], e["reason"], e["by"]) for e in mode_history(r)]
    assert log == [
        ("410105", "holiday", "emergency", "计划结束：防汛Ⅰ级响应", "schedule:duty-li"),
        ("410105", "emergency", "holiday", "防汛Ⅰ级响应", "schedule:duty-li"),
        ("410105", "holiday", "daily", "区内庙会", "duty-li"),
    ]
    events = [e["event"] for e in schedule_log(r) if e["schedule"] == s.id]
    assert events == ["reverted", "applied", "reminder", "created"]


def test_manual_switch_during_a_schedule_is_not_overridden(r: redis.Redis) -> None:
    t0 = now_ms()
    schedule_switch(r, "410102", "holiday", t0 + H, "元宵灯会", "duty-a", until_ms=t0 + 3 * H)
    sweep_schedules(r, t0 + H)
    set_mode(r, "410102", "major_task", "临时重大任务", by="duty-b")
    sweep_schedules(r, t0 + 3 * H)
    assert get_mode(r, "410102").mode == Mode.MAJOR_TASK
    assert list_schedules(r, "410102")[0].status == "superseded"


def test_refusals_and_cancel(r: redis.Redis) -> None:
    t0 = now_ms()
    with pytest.raises(ScheduleError, match="not in the future"):
        schedule_switch(r, "4101", "holiday", t0 - 1000, "假期", "duty")
    with pytest.raises(ScheduleError, match="not after the switch"):
        schedule_switch(r, "4101", "holiday", t0 + H, "假期", "duty", until_ms=t0 + H)
    with pytest.raises(ScheduleError, match="unknown mode"):
        schedule_switch(r, "4101", "party", t0 + H, "假期", "duty")
    with pytest.raises(ScheduleError, match="reason"):
        schedule_switch(r, "4101", "holiday", t0 + H, " ", "duty")
    with pytest.raises(ScheduleError, match="not a code"):
        schedule_switch(r, "41010", "holiday", t0 + H, "假期", "duty")
    # Out of a manual emergency needs the confirmation too.
    set_mode(r, "410103", "emergency", "火情", by="duty")
    with pytest.raises(ScheduleError, match="second confirmation"):
        schedule_switch(r, "410103", "daily", t0 + H, "恢复", "duty")
    assert list_schedules(r) == []
    s = schedule_switch(r, "4101", "holiday", t0 + H, "假期", "duty", until_ms=t0 + 2 * H)
    with pytest.raises(ScheduleError, match="overlapping"):
        schedule_switch(r, "4101", "major_task", t0 + 90 * 60_000, "会议", "duty")
    assert cancel_schedule(r, s.id, "duty-boss").status == "cancelled"
    assert sweep_schedules(r, t0 + 3 * H) == 0
    assert get_mode(r, "4101").mode == Mode.DAILY
    with pytest.raises(ScheduleError, match="cancelled"):
        cancel_schedule(r, s.id, "duty-boss")
    with pytest.raises(ScheduleError, match="no schedule"):
        cancel_schedule(r, "S999", "duty-boss")
    assert mode_history(r)[0]["code"] == "410103"  # only the manual switch


def test_holiday_calendar_schedules_each_holiday(r: redis.Redis) -> None:
    ranges = holiday_ranges(2026)
    assert ("春节", datetime(2026, 2, 15).date(), datetime(2026, 2, 23).date()) in ranges
    # Pretend it is the last day of 2025: every 2026 holiday lies ahead.
    now = int(datetime(2025, 12, 31, 12, tzinfo=SHANGHAI).timestamp() * 1000)
    made = schedule_holidays(r, "4101", 2026, "duty-calendar", now=now)
    assert len(made) == len(ranges)
    spring = next(s for s in made if s.reason.startswith("春节"))
    assert spring.mode == Mode.HOLIDAY
    assert spring.at_ms == int(datetime(2026, 2, 15, tzinfo=SHANGHAI).timestamp() * 1000)
    assert spring.until_ms == int(datetime(2026, 2, 24, tzinfo=SHANGHAI).timestamp() * 1000)
    # Again: nothing doubled.
    assert schedule_holidays(r, "4101", 2026, "duty-calendar", now=now) == []
    sweep_schedules(r, spring.at_ms + 60_000)
    st = get_mode(r, "410105")
    assert st.mode == Mode.HOLIDAY and st.reason == spring.reason
    with pytest.raises(ScheduleError, match="no year 1999"):
        schedule_holidays(r, "4101", 1999, "duty-calendar")
