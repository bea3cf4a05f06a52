"""Scheduled mode switches: the holiday calendar, a major event's dates.

Each schedule has up to three steps in one sorted set by due time: a reminder before the
switch, the switch, and the switch back at ``until_ms``. ``sweep_schedules`` (called by the
worker) takes each due step with ZREM, so only one of several workers carries it out, and
switches through ``set_mode`` so a scheduled switch is audited and pushed like a manual one.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any, Literal, cast

import redis
from pydantic import BaseModel

from core import push
from core.keys import keys
from core.models import Mode
from core.timeutil import SHANGHAI, now_ms
from modes.service import (
    MAX_REASON,
    ModeError,
    _check_code,
    _check_reason_by,
    clear_mode,
    get_mode,
    set_mode,
)

log = logging.getLogger("gridcc.modes.schedule")

Status = Literal["pending", "active", "done", "cancelled", "superseded", "failed"]
# Steps of a schedule still to run while it is in one of these.
_OPEN: tuple[str, ...] = ("pending", "active")


class ScheduleError(ModeError):
    """A schedule that was refused; the message says why."""


class Schedule(BaseModel):
    id: str
    code: str
    mode: Mode
    at_ms: int
    until_ms: int | None = None
    remind_at_ms: int | None = None
    reason: str
    by: str
    created_ms: int
    confirmed: bool = False
    status: Status = "pending"
    reminded_ms: int | None = None
    applied_ms: int | None = None
    # The mode the node had set itself before the switch; None: it followed its parent.
    previous_own: Mode | None = None
    ended_ms: int | None = None
    note: str = ""


def _load(r: redis.Redis, sid: str) -> Schedule | None:
    raw = r.hget(keys().mode_schedules, sid)
    return Schedule.model_validate_json(raw) if raw is not None else None


def _save(pipe: Any, s: Schedule) -> None:
    pipe.hset(keys().mode_schedules, s.id, s.model_dump_json())


def _event(pipe: Any, s: Schedule, event: str, ts: int, **extra: str) -> None:
    pipe.xadd(
        keys().mode_schedule_log,
        {
            "event": event,
            "schedule": s.id,
            "code": s.code,
            "mode": s.mode.value,
            "at_ms": str(s.at_ms),
            "until_ms": str(s.until_ms or ""),
            "reason": s.reason,
            "by": s.by,
            "ts_ms": str(ts),
            **extra,
        },
    )


def schedule_switch(
    r: redis.Redis,
    code: str,
    mode: Mode | str,
    at_ms: int,
    reason: str,
    by: str,
    until_ms: int | None = None,
    remind_before_s: int = 3600,
    *,
    confirm: bool = False,
    now: int | None = None,
) -> Schedule:
    """Schedule a switch of ``code`` into ``mode`` at ``at_ms`` (back at ``until_ms``)."""
    try:
        code = _check_code(code)
        reason, by = _check_reason_by(reason, by)
    except ScheduleError:
        raise
    except ModeError as exc:
        raise ScheduleError(str(exc)) from None
    try:
        m = Mode(mode)
    except ValueError:
        raise ScheduleError(
            f"unknown mode {mode!r}; one of {', '.join(x.value for x in Mode)}"
        ) from None
    ts = now_ms() if now is None else now
    if isinstance(at_ms, bool) or not isinstance(at_ms, int):
        raise ScheduleError(f"at_ms {at_ms!r} is not epoch milliseconds")
    if at_ms <= ts:
        raise ScheduleError(f"the switch time {_show(at_ms)} is not in the future")
    if until_ms is not None and (isinstance(until_ms, bool) or not isinstance(until_ms, int)):
        raise ScheduleError(f"until_ms {until_ms!r} is not epoch milliseconds")
    if until_ms is not None and until_ms <= at_ms:
        raise ScheduleError(
            f"the switch back {_show(until_ms)} is not after the switch {_show(at_ms)}"
        )
    if remind_before_s < 0:
        raise ScheduleError("remind_before_s cannot be negative")
    current = get_mode(r, code).mode
    if (m == Mode.EMERGENCY or current == Mode.EMERGENCY) and not confirm:
        raise ScheduleError(
            "a scheduled switch into or out of emergency needs a second confirmation (confirm=True)"
        )
    for other in list_schedules(r, code):
        if other.code != code or other.status not in _OPEN:
            continue
        o_end = other.until_ms or other.at_ms
        end = until_ms or at_ms
        if other.at_ms <= end and at_ms <= o_end:
            raise ScheduleError(
                f"{code} already has schedule {other.id} ({other.mode.value}, "
                f"{_show(other.at_ms)} .. {_show(o_end)}) overlapping this one"
            )
    sid = f"S{int(cast(int, r.incr(keys().mode_schedule_seq)))}"
    remind_at = at_ms - remind_before_s * 1000 if remind_before_s else None
    s = Schedule(
        id=sid,
        code=code,
        mode=m,
        at_ms=at_ms,
        until_ms=until_ms,
        remind_at_ms=max(remind_at, ts) if remind_at is not None else None,
        reason=reason,
        by=by,
        created_ms=ts,
        confirmed=confirm,
    )
    k = keys()
    pipe = r.pipeline(transaction=True)
    _save(pipe, s)
    due: dict[str, int] = {f"{sid}:start": at_ms}
    if s.remind_at_ms is not None:
        due[f"{sid}:remind"] = s.remind_at_ms
    if until_ms is not None:
        due[f"{sid}:end"] = until_ms
    pipe.zadd(k.mode_schedule_due, cast(Any, due))
    _event(pipe, s, "created", ts)
    pipe.execute()
    return s


def cancel_schedule(
    r: redis.Redis, schedule_id: str, by: str, *, now: int | None = None
) -> Schedule:
    """Cancel a switch that has not happened yet."""
    by = (by or "").strip()
    if not by:
        raise ScheduleError("cancelling a schedule needs the name of who cancels it")
    s = _load(r, schedule_id)
    if s is None:
        raise ScheduleError(f"no schedule {schedule_id!r}")
    if s.status != "pending":
        raise ScheduleError(
            f"schedule {schedule_id} is {s.status}; only a switch still to come can be "
            "cancelled (switch back by hand instead)"
        )
    ts = now_ms() if now is None else now
    s.status, s.ended_ms, s.note = "cancelled", ts, f"cancelled by {by}"
    k = keys()
    pipe = r.pipeline(transaction=True)
    _save(pipe, s)
    pipe.zrem(k.mode_schedule_due, f"{s.id}:remind", f"{s.id}:start", f"{s.id}:end")
    _event(pipe, s, "cancelled", ts, cancelled_by=by)
    pipe.execute()
    return s


def list_schedules(r: redis.Redis, code_prefix: str = "") -> list[Schedule]:
    """Schedules of ``code_prefix`` and everything below it, by switch time."""
    out = []
    for raw in cast(list[Any], r.hvals(keys().mode_schedules)):
        try:
            s = Schedule.model_validate_json(raw)
        except ValueError:
            continue  # one damaged record must not hide the others
        if s.code.startswith(code_prefix or ""):
            out.append(s)
    return sorted(out, key=lambda s: (s.at_ms, s.id))


def sweep_schedules(r: redis.Redis, now_ms_: int | None = None) -> int:
    """Carry out every step due by ``now_ms_``; returns how many were carried out."""
    ts = now_ms() if now_ms_ is None else now_ms_
    k = keys()
    done = 0
    for raw in cast(list[Any], r.zrangebyscore(k.mode_schedule_due, "-inf", ts)):
        member = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not r.zrem(k.mode_schedule_due, member):
            continue  # another worker took it
        sid, _, step = member.rpartition(":")
        s = _load(r, sid)
        if s is None or s.status not in _OPEN:
            continue
        try:
            if step == "remind":
                _remind(r, s, ts)
            elif step == "start":
                _start(r, s, ts)
            elif step == "end":
                _end(r, s, ts)
            done += 1
        except ModeError as exc:
            # Validated when scheduled; a refusal now (a plan file changed) is logged, not fatal.
            log.warning("schedule %s step %s refused: %s", sid, step, exc)
            s.status, s.note, s.ended_ms = "failed", str(exc), ts
            pipe = r.pipeline(transaction=True)
            _save(pipe, s)
            pipe.zrem(k.mode_schedule_due, f"{sid}:remind", f"{sid}:start", f"{sid}:end")
            _event(pipe, s, "failed", ts, error=str(exc)[:MAX_REASON])
            pipe.execute()
    return done


def _remind(r: redis.Redis, s: Schedule, ts: int) -> None:
    if ts >= s.at_ms:
        return  # the switch itself is due: a reminder now would only be noise
    s.reminded_ms = ts
    pipe = r.pipeline(transaction=True)
    _save(pipe, s)
    _event(pipe, s, "reminder", ts)
    pipe.execute()
    push.publish(r, "mode", code=s.code, mode=s.mode.value, schedule=s.id, reminder=True)


def _start(r: redis.Redis, s: Schedule, ts: int) -> None:
    if s.status != "pending":
        return
    before = get_mode(r, s.code)
    # since_ms is None for the default of a city that was never switched: nothing of its own.
    own = before.code == s.code and before.since_ms is not None
    s.previous_own = before.mode if own else None
    state = set_mode(r, s.code, s.mode, s.reason, f"schedule:{s.by}", now=ts)
    s.status, s.applied_ms = "active", state.since_ms
    if s.until_ms is None:
        s.status, s.ended_ms = "done", ts
    pipe = r.pipeline(transaction=True)
    _save(pipe, s)
    _event(pipe, s, "applied", ts, previous=before.mode.value)
    pipe.execute()


def _end(r: redis.Redis, s: Schedule, ts: int) -> None:
    if s.status != "active":
        return
    now_state = get_mode(r, s.code)
    if now_state.code != s.code or now_state.since_ms != s.applied_ms:
        # Someone switched by hand meanwhile: their decision stands.
        s.status, s.ended_ms = "superseded", ts
        s.note = f"switched by {now_state.by or 'default'} before the end; not reverted"
        event = "superseded"
    else:
        reason = f"计划结束：{s.reason}"[:MAX_REASON]
        if s.previous_own is not None:
            set_mode(r, s.code, s.previous_own, reason, f"schedule:{s.by}", now=ts)
        else:
            clear_mode(r, s.code, reason, f"schedule:{s.by}", now=ts)
        s.status, s.ended_ms = "done", ts
        event = "reverted"
    pipe = r.pipeline(transaction=True)
    _save(pipe, s)
    _event(pipe, s, event, ts)
    pipe.execute()


def schedule_log(r: redis.Redis, limit: int = 50) -> list[dict[str, Any]]:
    """What happened to scheduled switches, newest first (created, reminder, applied, ...)."""
    out = []
    for entry_id, fields in cast(
        list[tuple[Any, dict[Any, Any]]],
        r.xrevrange(keys().mode_schedule_log, count=max(1, limit)),
    ):
        rec: dict[str, Any] = {_s(a): _s(b) for a, b in fields.items()}
        rec["id"] = _s(entry_id)
        rec["ts_ms"] = int(rec.get("ts_ms") or 0)
        out.append(rec)
    return out


def holiday_ranges(year: int) -> list[tuple[str, date, date]]:
    """The public holidays of ``year`` from the working calendar: (name, first, last day)."""
    from workorders.clock import calendar

    cal = calendar()
    if year not in cal.years:
        raise ScheduleError(
            f"the working calendar has no year {year}; add it from the State Council notice"
        )
    days = sorted(d for d in cal.holidays if d.year == year)
    out: list[tuple[str, date, date]] = []
    for d in days:
        name = cal.holidays[d]
        if out and out[-1][0] == name and out[-1][2] + timedelta(days=1) == d:
            out[-1] = (name, out[-1][1], d)
        else:
            out.append((name, d, d))
    return out


def schedule_holidays(
    r: redis.Redis,
    code: str,
    year: int,
    by: str,
    remind_before_s: int = 86_400,
    *,
    now: int | None = None,
) -> list[Schedule]:
    """Holiday mode over each public holiday of ``year`` (local midnight to midnight).

    Holidays already begun and those already scheduled for ``code`` are skipped.
    """
    ts = now_ms() if now is None else now
    code = _check_code(code)
    existing = {(s.at_ms, s.until_ms) for s in list_schedules(r, code) if s.code == code}
    out = []
    for name, first, last in holiday_ranges(year):
        at = _midnight(first)
        until = _midnight(last + timedelta(days=1))
        if at <= ts or (at, until) in existing:
            continue
        out.append(
            schedule_switch(
                r,
                code,
                Mode.HOLIDAY,
                at,
                f"{name}假期（{first.isoformat()}至{last.isoformat()}）",
                by,
                until_ms=until,
                remind_before_s=remind_before_s,
                now=ts,
            )
        )
    return out


def _midnight(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=SHANGHAI).timestamp() * 1000)


def _show(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, SHANGHAI).isoformat(timespec="minutes")


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


__all__ = [
    "Schedule",
    "ScheduleError",
    "cancel_schedule",
    "holiday_ranges",
    "list_schedules",
    "schedule_holidays",
    "schedule_log",
    "schedule_switch",
    "sweep_schedules",
]
