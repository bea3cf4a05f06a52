"""Supervision (articles 39-40): reminders, overdue warnings, escalation, discipline lists.

``sweep`` reads only the clocks that are due from the sorted sets of ``clockindex`` (four
ZRANGEBYSCOREs), so its cost follows what is due, not how many orders are open. The
acknowledgement clocks of 吹哨报到 (``workorders.summons``) sit in the same sets.
Each clock walks: reminder (yellow) → overdue (red) → escalated to the level above
(督办) → listed for discipline inspection when overdue beyond the policy's limit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import redis

from access.scope import Scope
from core.keys import keys
from core.models import PartStatus, WorkOrder
from workorders import summons
from workorders.clockindex import clear_clock, flag_for_inspection, parse_clock_id
from workorders.loop import LoopError, Ops, apply
from workorders.service import HOUR_MS, _step, policy

CITY_CODE = "4101"
RANK = {"": 0, "yellow": 1, "red": 2, "escalated": 3}
STEPS = ("remind", "due", "escalate", "inspect")
FALSE_CLOSURE_REASONS = (
    "reopened",
    "check_failed",
    "dissatisfied",
    "closed_without_evidence",
    "repeat_after_closure",
)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def escalation_level(order: WorkOrder) -> str:
    """The level above the one handling the order: township → county → city."""
    if order.place.township and order.place.county:
        return order.place.county
    return CITY_CODE


def _clearer(cid: str) -> Any:
    return lambda pipe: clear_clock(pipe, cid)


def _raise(cur: str, to: str) -> str:
    return to if RANK[to] > RANK.get(cur, 0) else cur


def sweep(r: redis.Redis, now_ms: int, batch: int = 5000) -> dict[str, int]:
    """One pass of supervision at ``now_ms``; returns how many clocks took each step."""
    k = keys()
    sup = policy().supervision
    esc_ms = int(sup.escalate_after_hours * HOUR_MS)
    insp_ms = int(sup.inspect_after_hours * HOUR_MS)
    zkeys = {
        "remind": k.order_remind,
        "due": k.order_due,
        "escalate": k.order_escalate,
        "inspect": k.order_inspect,
    }
    pipe = r.pipeline(transaction=False)
    for step in STEPS:
        pipe.zrangebyscore(zkeys[step], "-inf", now_ms, start=0, num=batch, withscores=True)
    found = pipe.execute()
    per_order: dict[str, list[tuple[str, str, str, str, int]]] = defaultdict(list)
    for step, rows in zip(STEPS, found, strict=True):
        for member, score in rows:
            cid = _s(member)
            oid, stage, dept = parse_clock_id(cid)
            per_order[oid].append((step, stage, dept, cid, int(score)))
    counts = dict.fromkeys(STEPS, 0)
    for oid, events in per_order.items():
        taken: list[str] = []

        def fn(
            o: WorkOrder, ts: int, ops: Ops, events: list[Any] = events, taken: list[str] = taken
        ) -> None:
            # A retried transaction starts over, so nothing is counted twice.
            taken.clear()
            for step, stage, dept, cid, score in events:
                if stage == summons.STAGE:
                    # An acknowledgement clock of 吹哨报到: late reporting, not a stage.
                    if summons.on_sweep(o, step, dept, cid, ts, ops):
                        taken.append(step)
                    continue
                part = next(
                    (p for p in o.parts if p.dept == dept and p.status != PartStatus.WITHDRAWN),
                    None,
                )
                if stage == "handling" and part is None:
                    ops.append(_clearer(cid))
                    continue
                _take(o, part, step, stage, dept, cid, score, ts, ops, esc_ms, insp_ms, sup)
                taken.append(step)
            sigs = [o.signal] + [p.signal for p in o.parts if p.status != PartStatus.WITHDRAWN]
            o.signal = max(sigs, key=lambda s: RANK.get(s, 0))

        try:
            apply(r, oid, fn)
        except LoopError:
            # The order is gone (archived): its clocks go too.
            cl = r.pipeline(transaction=False)
            clear_clock(cl, *(e[3] for e in events))
            cl.execute()
            continue
        for step in taken:
            counts[step] += 1
    return counts


def _take(
    o: WorkOrder,
    part: Any,
    step: str,
    stage: str,
    dept: str,
    cid: str,
    score: int,
    ts: int,
    ops: Ops,
    esc_ms: int,
    insp_ms: int,
    sup: Any,
) -> None:
    k = keys()
    holder = part if part is not None else o
    who = dept or stage
    if step == "remind":
        holder.signal = _raise(holder.signal, "yellow")
        ops.append(lambda pipe: pipe.zrem(k.order_remind, cid))
        o.history.append(_step("system", "reminder", ts, stage=stage, dept=dept or None))
    elif step == "due":
        holder.signal = _raise(holder.signal, "red")
        if "overdue" not in o.flags:
            o.flags.append("overdue")
        ops.append(lambda pipe: pipe.zrem(k.order_due, cid))
        ops.append(lambda pipe: pipe.zrem(k.order_remind, cid))
        ops.append(lambda pipe: pipe.zadd(k.order_escalate, {cid: score + esc_ms}))
        o.history.append(_step("system", "overdue", ts, stage=stage, dept=dept or None))
    elif step == "escalate":
        holder.signal = "escalated"
        level = escalation_level(o)
        due_ms = score - esc_ms
        rec = {
            "order_id": o.id,
            "code": o.place.code,
            "to": level,
            "stage": stage,
            "dept": dept,
            "deadline_ms": due_ms,
            "ts_ms": ts,
        }
        ops.append(lambda pipe: pipe.zrem(k.order_escalate, cid))
        ops.append(lambda pipe: pipe.zadd(k.order_inspect, {cid: due_ms + insp_ms}))
        ops.append(
            lambda pipe: pipe.hset(k.orders_supervised, o.id, json.dumps(rec, ensure_ascii=False))
        )
        o.history.append(
            _step(
                "system",
                "escalated",
                ts,
                to=level,
                stage=stage,
                dept=dept or None,
                note=f"{who} overdue {sup.escalate_after_hours:g} h: 督办",
            )
        )
    elif step == "inspect":
        ops.append(lambda pipe: pipe.zrem(k.order_inspect, cid))
        detail = f"{who} overdue beyond {sup.inspect_after_hours:g} h"
        ops.append(lambda pipe: flag_for_inspection(pipe, o, "overdue_beyond_limit", ts, detail))
        o.history.append(_step("system", "to_inspection", ts, note=detail))


def _records(r: redis.Redis, key: str, scope: Scope | None) -> list[dict[str, Any]]:
    out = [json.loads(v) for v in r.hvals(key)]
    if scope is not None:
        out = [x for x in out if scope.sees(x.get("code") or "")]
    return sorted(out, key=lambda x: -int(x.get("ts_ms", 0)))


def discipline_list(r: redis.Redis, scope: Scope | None = None) -> list[dict[str, Any]]:
    """Orders for discipline inspection, newest first: each with its reason and detail."""
    return _records(r, keys().orders_discipline, scope)


def false_closures(r: redis.Redis, scope: Scope | None = None) -> list[dict[str, Any]]:
    """The suspected false closures among the discipline list."""
    return [x for x in discipline_list(r, scope) if x["reason"] in FALSE_CLOSURE_REASONS]


def supervised_list(r: redis.Redis, scope: Scope | None = None) -> list[dict[str, Any]]:
    """Orders escalated (督办) to the level above, newest first."""
    return _records(r, keys().orders_supervised, scope)
