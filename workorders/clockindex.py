"""The sorted sets the supervision sweep reads: one member per running clock.

A clock id is ``order|stage|dept`` (dept empty for order-level stages). Each running
clock sits in ``order_due`` (score: deadline) and ``order_remind`` (score: reminder time),
so the sweep reads only what is due with ZRANGEBYSCORE instead of scanning every order.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from core.keys import keys
from core.models import OrderStatus, WorkOrder
from workorders.clock import deadline

STAGES = ("accept", "handling", "check")


def clock_id(order_id: str, stage: str, dept: str = "") -> str:
    return f"{order_id}|{stage}|{dept}"


def parse_clock_id(cid: str) -> tuple[str, str, str]:
    order_id, stage, dept = (cid.split("|", 2) + ["", ""])[:3]
    return order_id, stage, dept


def order_clock_ids(order: WorkOrder) -> list[str]:
    ids = [clock_id(order.id, "accept"), clock_id(order.id, "check")]
    ids += [clock_id(order.id, "handling", p.dept) for p in order.parts]
    # 吹哨报到 acknowledgement clocks (workorders.summons): one per summoned department.
    ids += [
        clock_id(order.id, "summons", f"{s.id}:{d.dept}")
        for s in order.summons
        for d in s.departments
    ]
    return ids


def stage_clock(
    r: redis.Redis, order: WorkOrder, stage: str, start_ms: int
) -> tuple[float, str, int] | None:
    """(limit, unit, deadline ms) of a stage, scaled by the mode in force at the place."""
    from modes.service import get_mode
    from workorders.service import policy

    pol = policy()
    if stage not in pol.stage_limits:
        return None
    amount, unit = pol.stage_limit(stage, order.category, order.priority)
    amount *= get_mode(r, order.place.code or "4101").time_limit_factor
    return amount, unit, deadline(start_ms, amount, unit)


def set_clock(pipe: Any, cid: str, start_ms: int, deadline_ms: int) -> None:
    from workorders.service import policy

    k = keys()
    share = policy().reminder_share
    pipe.zadd(k.order_due, {cid: deadline_ms})
    pipe.zadd(k.order_remind, {cid: deadline_ms - int(share * max(0, deadline_ms - start_ms))})
    pipe.zrem(k.order_escalate, cid)
    pipe.zrem(k.order_inspect, cid)


def clear_clock(pipe: Any, *cids: str) -> None:
    if not cids:
        return
    k = keys()
    for key in (k.order_due, k.order_remind, k.order_escalate, k.order_inspect):
        pipe.zrem(key, *cids)


def flag_for_inspection(
    pipe: Any, order: WorkOrder, reason: str, ts: int, detail: str = "", by: str = "system"
) -> None:
    """Put the order on the discipline-inspection list for ``reason`` (once per reason)."""
    if reason not in order.flags:
        order.flags.append(reason)
    rec = {
        "order_id": order.id,
        "code": order.place.code,
        "category": order.category,
        "reason": reason,
        "ts_ms": ts,
        "detail": detail,
        "by": by,
    }
    pipe.hset(keys().orders_discipline, f"{order.id}|{reason}", json.dumps(rec, ensure_ascii=False))


def closure_place(order: WorkOrder) -> str:
    """Where a closure counts for repeat reports: the grid code, or a ~100 m cell."""
    return order.place.code or f"pt{order.place.lon:.3f},{order.place.lat:.3f}"


def on_save(pipe: Any, order: WorkOrder, ts: int) -> None:
    """Keep the clock index and closure records in step with a final status."""
    if order.status in (OrderStatus.CLOSED, OrderStatus.REJECTED):
        clear_clock(pipe, *order_clock_ids(order))
    if order.status == OrderStatus.CLOSED:
        pipe.zadd(
            keys().order_closures(order.category, closure_place(order)),
            {order.id: order.closed_ms or ts},
        )
        if not any(p.evidence for p in order.parts if p.status.value == "done"):
            flag_for_inspection(pipe, order, "closed_without_evidence", ts)
