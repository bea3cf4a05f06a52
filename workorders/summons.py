"""吹哨报到 ("the street whistles, departments report"): a township or a higher level
summons departments to an order, and each must report in (acknowledge) within a limit.

A summons is recorded on the order (``WorkOrder.summons``) with who, when, from which level
and why; every department's acknowledgement clock sits in the clock index (clock id
``order|summons|S1:dept``) beside the stage clocks, so the supervision sweep finds late
acknowledgements with the same range query: a reminder first (yellow), then the department
is marked late, the order turns red, and the summoning level finds it in the supervised list.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import redis

from core.keys import keys
from core.models import SummonedDept, Summons, WorkOrder
from workorders.clock import deadline
from workorders.clockindex import clear_clock, clock_id, set_clock
from workorders.loop import LoopError, Ops, apply
from workorders.service import FINAL, _step, policy

STAGE = "summons"
CITY_CODE = "4101"
# A township (9 digits), a district or county (6) or the city (4) may summon.
SUMMONING_DIGITS = (4, 6, 9)
MAX_DEPARTMENTS = 20
RANK = {"": 0, "yellow": 1, "red": 2, "escalated": 3}


class SummonsError(LoopError):
    """A refused summons or acknowledgement; the message says why."""


def ack_clock_id(order_id: str, summons_id: str, dept: str) -> str:
    return clock_id(order_id, STAGE, f"{summons_id}:{dept}")


def summons_clock_ids(order: WorkOrder) -> list[str]:
    """Every acknowledgement clock the order may have in the index."""
    return [ack_clock_id(order.id, s.id, d.dept) for s in order.summons for d in s.departments]


def owns(level_code: str, place_code: str) -> bool:
    """A level owns a place when its code is a prefix of the place's code; an order with no
    code (unlocated, or outside the city) is held at city level."""
    if not place_code:
        return level_code == CITY_CODE
    return place_code.startswith(level_code)


def _need(value: str | None, what: str) -> str:
    v = (value or "").strip()
    if not v:
        raise SummonsError(f"{what} is required")
    return v


def _limit(r: redis.Redis, order: WorkOrder, minutes: float | None) -> tuple[float, str]:
    """(hours, unit) of the acknowledgement limit: the summons' own, or the policy's scaled by
    the mode in force at the place."""
    pol = policy().summons
    if minutes is None:
        from modes.service import get_mode

        factor = get_mode(r, order.place.code or CITY_CODE).time_limit_factor
        return pol.ack_limit_minutes * factor / 60, pol.unit
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int | float)
        or not math.isfinite(minutes)
        or not 0 < minutes <= 7 * 24 * 60
    ):
        raise SummonsError(
            f"ack_limit_minutes {minutes!r} must be a number of minutes in (0, 10080]"
        )
    return float(minutes) / 60, pol.unit


def _setter(cid: str, start: int, due: int) -> Any:
    return lambda pipe: set_clock(pipe, cid, start, due)


def summon(
    r: redis.Redis,
    order_id: str,
    by: str,
    by_level_code: str,
    departments: Iterable[str],
    reason: str,
    ack_limit_minutes: float | None = None,
) -> WorkOrder:
    """吹哨: the level ``by_level_code`` (township or higher, owning the order's place) calls
    ``departments`` to the order; each must report in within the limit (policy default)."""
    by = _need(by, "who summons")
    reason = _need(reason, "a reason for the summons")
    level = _need(by_level_code, "the summoning level's code")
    if not level.isdigit() or len(level) not in SUMMONING_DIGITS:
        raise SummonsError(
            f"{level!r} is not the code of a township (9 digits) or a higher level (6 or 4): "
            "only a township or above may summon departments"
        )
    if isinstance(departments, str):
        departments = [departments]
    depts = [str(d).strip() for d in departments]
    if not depts or any(not d for d in depts):
        raise SummonsError("a summons names at least one department, none of them empty")
    if len(set(depts)) != len(depts):
        raise SummonsError(f"a department is named twice in {depts}")
    if len(depts) > MAX_DEPARTMENTS:
        raise SummonsError(f"at most {MAX_DEPARTMENTS} departments per summons")
    if any("|" in d or ":" in d for d in depts):
        raise SummonsError("a department name cannot contain '|' or ':'")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        if o.status in FINAL:
            raise SummonsError(f"work order {o.id} is {o.status.value}; no summons any more")
        if not owns(level, o.place.code):
            where = o.place.code or "held at city level"
            raise SummonsError(
                f"level {level} does not own the place of work order {o.id} ({where}); "
                "only the township or a level above it may summon"
            )
        pending = {d.dept for s in o.summons for d in s.departments if d.acked_ms is None}
        again = [d for d in depts if d in pending]
        if again:
            raise SummonsError(
                f"{', '.join(again)} already summoned to work order {o.id} and not yet reported in"
            )
        hours, unit = _limit(r, o, ack_limit_minutes)
        due = deadline(ts, hours, unit)
        sid = f"S{len(o.summons) + 1}"
        o.summons.append(
            Summons(
                id=sid,
                by=by,
                by_level=level,
                reason=reason,
                ts_ms=ts,
                limit=round(hours * 60, 3),
                unit=unit,
                departments=[SummonedDept(dept=d, ack_deadline_ms=due) for d in depts],
            )
        )
        o.history.append(
            _step(
                by,
                "summoned",
                ts,
                id=sid,
                level=level,
                departments=depts,
                deadline_ms=due,
                note=reason,
            )
        )
        for d in depts:
            cid = ack_clock_id(o.id, sid, d)
            ops.append(_setter(cid, ts, due))

    return apply(r, order_id, fn)


def report_in(r: redis.Redis, order_id: str, department: str, by: str) -> WorkOrder:
    """报到: ``department`` acknowledges its pending summons (late when past the limit)."""
    dept = _need(department, "the department reporting in")
    by = _need(by, "who reports in")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        mine = [(s, d) for s in o.summons for d in s.departments if d.dept == dept]
        if not mine:
            raise SummonsError(f"{dept} was not summoned to work order {o.id}")
        pending = [(s, d) for s, d in mine if d.acked_ms is None]
        if not pending:
            s, d = mine[-1]
            raise SummonsError(
                f"{dept} already reported in to work order {o.id} (summons {s.id}, by {d.acked_by})"
            )
        s, d = pending[0]
        d.acked_ms, d.acked_by = ts, by
        if ts > d.ack_deadline_ms and not d.late:
            _mark_late(o, s, d, ts, ops, by)
        if d.signal == "yellow":
            d.signal = ""
        o.history.append(
            _step(
                by,
                "reported_in",
                ts,
                id=s.id,
                dept=dept,
                late=d.late,
                note=f"summoned by {s.by} ({s.by_level}): {s.reason}",
            )
        )
        cid = ack_clock_id(o.id, s.id, dept)
        ops.append(lambda pipe: clear_clock(pipe, cid))

    return apply(r, order_id, fn)


def _find(o: WorkOrder, key: str) -> tuple[Summons, SummonedDept] | None:
    sid, _, dept = key.partition(":")
    for s in o.summons:
        if s.id == sid:
            for d in s.departments:
                if d.dept == dept:
                    return s, d
    return None


def _mark_late(
    o: WorkOrder, s: Summons, d: SummonedDept, ts: int, ops: Ops, by: str = "system"
) -> None:
    """The department did not report in by the deadline: red on the order, an entry in the
    supervised list for the summoning level, once."""
    d.late, d.signal = True, "red"
    if RANK["red"] > RANK.get(o.signal, 0):
        o.signal = "red"
    if "summons_late" not in o.flags:
        o.flags.append("summons_late")
    rec = {
        "order_id": o.id,
        "code": o.place.code,
        "to": s.by_level,
        "stage": STAGE,
        "dept": d.dept,
        "summons": s.id,
        "deadline_ms": d.ack_deadline_ms,
        "ts_ms": ts,
        "reason": "summons_late",
    }
    field = f"{o.id}|{STAGE}|{s.id}:{d.dept}"
    payload = json.dumps(rec, ensure_ascii=False)
    ops.append(lambda pipe: pipe.hset(keys().orders_supervised, field, payload))
    o.history.append(
        _step(
            by,
            "summons_late",
            ts,
            id=s.id,
            dept=d.dept,
            to=s.by_level,
            note=f"{d.dept} did not report in by the deadline of summons {s.id}",
        )
    )


def on_sweep(o: WorkOrder, step: str, key: str, cid: str, ts: int, ops: Ops) -> bool:
    """One due step of an acknowledgement clock, from the supervision sweep; False when the
    clock no longer belongs to a pending acknowledgement (it is then cleared)."""
    found = _find(o, key)
    if found is None or found[1].acked_ms is not None or o.status in FINAL:
        ops.append(lambda pipe: clear_clock(pipe, cid))
        return False
    s, d = found
    if step == "remind":
        if not d.signal:
            d.signal = "yellow"
            if RANK["yellow"] > RANK.get(o.signal, 0):
                o.signal = "yellow"
            o.history.append(_step("system", "summons_reminder", ts, id=s.id, dept=d.dept))
        ops.append(lambda pipe: pipe.zrem(keys().order_remind, cid))
    else:
        # Late: listed once for the summoning level; the clock has nothing more to say.
        _mark_late(o, s, d, ts, ops)
        ops.append(lambda pipe: clear_clock(pipe, cid))
    return True


def pending(order: WorkOrder) -> list[dict[str, Any]]:
    """Departments summoned and not yet reported in, with their deadlines (for screens)."""
    return [
        {"summons": s.id, "dept": d.dept, "deadline_ms": d.ack_deadline_ms, "late": d.late}
        for s in order.summons
        for d in s.departments
        if d.acked_ms is None
    ]


__all__ = [
    "SummonsError",
    "ack_clock_id",
    "owns",
    "pending",
    "report_in",
    "summon",
    "summons_clock_ids",
]
