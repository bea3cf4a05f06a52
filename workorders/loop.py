"""The closed loop of article 39 as an explicit state machine over ``OrderStatus``.

受理核实 accept (or reject) → 分流交办 assign one lead and co-departments, each a part with
its own clock → 协同处置 handling with a consultation thread (会商) → 结果反馈 feedback with
photo evidence → 核查评价 check by someone other than the handler, with the reporter's
satisfaction → 办结 closed, or rework. A department may return its part (退单) within a
limit; the center arbitrates. Every step is one WATCH/MULTI transaction on the order key,
so two operators cannot both apply a transition: the second re-reads and is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import redis

from core import push
from core.keys import keys
from core.models import OrderPart, OrderStatus, PartStatus, WorkOrder
from core.timeutil import now_ms
from workorders.clock import deadline, elapsed
from workorders.clockindex import (
    clear_clock,
    clock_id,
    closure_place,
    flag_for_inspection,
    set_clock,
    stage_clock,
)
from workorders.service import OrderError, _save, _step, policy

CENTER = "center"
ACTIVE = frozenset({PartStatus.ASSIGNED, PartStatus.HANDLING, PartStatus.DONE, PartStatus.RETURNED})
PHOTO_RE = re.compile(r"^(photo:\S+|\S+\.(jpe?g|png|webp|heic|gif))$", re.IGNORECASE)
# Edges of the loop; reopening a closed order is the one way back from CLOSED.
EDGES: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.ACCEPTING: frozenset({OrderStatus.ASSIGNED, OrderStatus.REJECTED}),
    OrderStatus.ASSIGNED: frozenset({OrderStatus.HANDLING}),
    OrderStatus.HANDLING: frozenset({OrderStatus.FEEDBACK}),
    OrderStatus.FEEDBACK: frozenset({OrderStatus.CHECKING}),
    OrderStatus.CHECKING: frozenset({OrderStatus.CLOSED, OrderStatus.HANDLING}),
    OrderStatus.CLOSED: frozenset({OrderStatus.HANDLING}),
    OrderStatus.REJECTED: frozenset(),
}


class LoopError(OrderError):
    """A refused step of the loop; the message says why."""


Ops = list[Callable[[Any], None]]


def _need(value: str | None, what: str) -> str:
    v = (value or "").strip()
    if not v:
        raise LoopError(f"{what} is required")
    return v


def _move(order: WorkOrder, to: OrderStatus, by: str, ts: int, note: str = "") -> None:
    if to not in EDGES[order.status]:
        allowed = ", ".join(sorted(s.value for s in EDGES[order.status])) or "none (final)"
        raise LoopError(
            f"work order {order.id} is {order.status.value}; it cannot move to {to.value} "
            f"(allowed: {allowed})"
        )
    order.history.append(
        _step(
            by, "status", ts, **{"from": order.status.value, "to": to.value, "note": note or None}
        )
    )
    order.status = to


def _need_status(order: WorkOrder, *allowed: OrderStatus, doing: str) -> None:
    if order.status not in allowed:
        want = " or ".join(s.value for s in allowed)
        raise LoopError(f"work order {order.id} is {order.status.value}; {doing} needs it {want}")


def _part(order: WorkOrder, dept: str) -> OrderPart:
    for p in order.parts:
        if p.dept == dept and p.status != PartStatus.WITHDRAWN:
            return p
    raise LoopError(f"work order {order.id} has no part for department {dept!r}")


def _own_part(order: WorkOrder, part: str, by_dept: str, doing: str) -> OrderPart:
    p = _part(order, _need(part, "the part (department)"))
    if _need(by_dept, "the acting department") != p.dept:
        raise LoopError(
            f"{by_dept} cannot {doing} the part of {p.dept} on work order {order.id}: "
            "only a department acts on its own part"
        )
    return p


def _active(order: WorkOrder) -> list[OrderPart]:
    return [p for p in order.parts if p.status in ACTIVE]


def _start_clock(r: redis.Redis, order: WorkOrder, p: OrderPart, ts: int, ops: Ops) -> None:
    clk = stage_clock(r, order, "handling", ts)
    if clk is None:
        raise LoopError("policy has no stage_limits.handling")
    p.limit, p.unit, p.deadline_ms = clk
    p.signal = ""
    cid = clock_id(order.id, "handling", p.dept)
    ops.append(lambda pipe: set_clock(pipe, cid, ts, p.deadline_ms))


def _stop_clock(order: WorkOrder, stage: str, dept: str, ops: Ops) -> None:
    cid = clock_id(order.id, stage, dept)
    ops.append(lambda pipe: clear_clock(pipe, cid))


def apply(
    r: redis.Redis,
    order_id: str,
    fn: Callable[[WorkOrder, int, Ops], None],
) -> WorkOrder:
    """Run ``fn`` on the stored order inside WATCH/MULTI; ``fn`` raises to refuse."""
    k = keys()
    out: dict[str, WorkOrder] = {}

    def txn(pipe: Any) -> None:
        raw = pipe.get(k.order(order_id))
        if not raw:
            raise LoopError(f"work order {order_id} does not exist")
        order = WorkOrder.model_validate_json(raw)
        ts = now_ms()
        ops: Ops = []
        fn(order, ts, ops)
        order.updated_ms = ts
        pipe.multi()
        for op in ops:
            op(pipe)
        _save(pipe, order)
        out["order"] = order

    r.transaction(txn, k.order(order_id))
    order = out["order"]
    push.publish(r, "order", id=order.id, code=order.place.code, status=order.status.value)
    return order


# --- 受理核实 -------------------------------------------------------------------------


def accept(r: redis.Redis, order_id: str, by: str, note: str = "") -> WorkOrder:
    """Accepted and verified: on to triage; flags earlier closures of the same problem."""
    by = _need(by, "who accepts")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _move(o, OrderStatus.ASSIGNED, by, ts, note or "受理核实")
        _stop_clock(o, "accept", "", ops)

    order = apply(r, order_id, fn)
    _flag_repeats(r, order)
    return order


def reject(
    r: redis.Redis,
    order_id: str,
    by: str,
    reason: str,
    kind: str = "invalid",
    duplicate_of: str | None = None,
) -> WorkOrder:
    """Not accepted: ``invalid`` (with the reason) or ``duplicate`` of another order."""
    by = _need(by, "who rejects")
    reason = _need(reason, "a reason for rejecting")
    if kind not in ("invalid", "duplicate"):
        raise LoopError(f"rejection kind {kind!r} is not 'invalid' or 'duplicate'")
    if kind == "duplicate":
        dup = _need(duplicate_of, "the order it duplicates")
        if dup == order_id or not r.exists(keys().order(dup)):
            raise LoopError(f"duplicate_of {dup!r} is not another existing work order")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _move(o, OrderStatus.REJECTED, by, ts, reason)
        o.history[-1].update({"kind": kind, "duplicate_of": duplicate_of})

    return apply(r, order_id, fn)


def _flag_repeats(r: redis.Redis, order: WorkOrder) -> None:
    """Orders of the same category closed at the same place within N days are suspect."""
    days = policy().supervision.repeat_days
    key = keys().order_closures(order.category, closure_place(order))
    since = order.created_ms - int(days * 86_400_000)
    earlier = [
        (m.decode() if isinstance(m, bytes) else str(m))
        for m in r.zrangebyscore(key, since, order.created_ms)
    ]
    for oid in earlier:
        if oid == order.id:
            continue

        def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
            detail = f"reported again as {order.id} within {days:g} days of closure"
            ops.append(
                lambda pipe: flag_for_inspection(pipe, o, "repeat_after_closure", ts, detail)
            )
            o.history.append(_step("system", "flagged", ts, note=detail))

        apply(r, oid, fn)


# --- 分流交办 -------------------------------------------------------------------------


def assign(r: redis.Redis, order_id: str, by: str, lead: str, co: Iterable[str] = ()) -> WorkOrder:
    """One lead department and optional co-departments, each a part with its own clock."""
    by = _need(by, "who assigns")
    lead = _need(lead, "the lead department")
    co_list = [_need(c, "a co-department") for c in co]
    depts = [lead, *co_list]
    if len(set(depts)) != len(depts):
        raise LoopError(f"a department appears twice in lead {lead!r} and co {co_list}")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _need_status(o, OrderStatus.ASSIGNED, doing="assigning")
        if _active(o):
            raise LoopError(
                f"work order {o.id} is already assigned to {', '.join(p.dept for p in _active(o))}"
            )
        for dept, role in [(lead, "lead"), *((c, "co") for c in co_list)]:
            p = OrderPart(dept=dept, role=role, assigned_ms=ts, assigned_by=by, deadline_ms=ts)
            _start_clock(r, o, p, ts, ops)
            o.parts.append(p)
        o.history.append(_step(by, "assigned", ts, lead=lead, co=co_list or None))

    return apply(r, order_id, fn)


# --- 协同处置 -------------------------------------------------------------------------


def start_part(r: redis.Redis, order_id: str, part: str, by: str, by_dept: str) -> WorkOrder:
    """The department takes up its part; the first part taken up starts handling."""
    by = _need(by, "who starts")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _need_status(o, OrderStatus.ASSIGNED, OrderStatus.HANDLING, doing="starting a part")
        p = _own_part(o, part, by_dept, "start")
        if p.status != PartStatus.ASSIGNED:
            raise LoopError(f"the part of {p.dept} is {p.status.value}, not assigned")
        p.status, p.started_ms, p.handler = PartStatus.HANDLING, ts, by
        o.history.append(_step(by, "part_started", ts, dept=p.dept))
        if o.status == OrderStatus.ASSIGNED:
            _move(o, OrderStatus.HANDLING, by, ts)

    return apply(r, order_id, fn)


def post_message(r: redis.Redis, order_id: str, by: str, by_dept: str, text: str) -> WorkOrder:
    """A message in the consultation thread (会商) among the order's departments."""
    by = _need(by, "who writes")
    text = _need(text, "the message text")
    if len(text) > 2000:
        raise LoopError("a message is at most 2000 characters")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _need_status(
            o,
            OrderStatus.ASSIGNED,
            OrderStatus.HANDLING,
            OrderStatus.FEEDBACK,
            OrderStatus.CHECKING,
            doing="a consultation message",
        )
        parties = {p.dept for p in _active(o)} | {CENTER}
        # Departments that reported in to a summons (吹哨报到) join the consultation.
        parties |= {d.dept for s in o.summons for d in s.departments if d.acked_ms is not None}
        if by_dept not in parties:
            raise LoopError(f"{by_dept!r} is not a party to work order {o.id}")
        o.thread.append({"ts_ms": ts, "by": by, "dept": by_dept, "text": text})

    return apply(r, order_id, fn)


# --- 结果反馈 -------------------------------------------------------------------------


def submit_feedback(
    r: redis.Redis,
    order_id: str,
    part: str,
    by: str,
    by_dept: str,
    result: str,
    evidence: Iterable[str] = (),
) -> WorkOrder:
    """A department reports its result with photo references (closure needs the lead's).

    When every active part has reported, the order goes to feedback and the check clock runs.
    """
    by = _need(by, "who reports")
    result = _need(result, "the result")
    photos = [str(e).strip() for e in evidence]
    bad = [e for e in photos if not PHOTO_RE.match(e)]
    if bad:
        raise LoopError(f"evidence {bad} is not a photo reference (photo:<id> or an image file)")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _need_status(o, OrderStatus.HANDLING, doing="result feedback")
        p = _own_part(o, part, by_dept, "report on")
        if p.status != PartStatus.HANDLING:
            raise LoopError(f"the part of {p.dept} is {p.status.value}, not handling")
        if p.paused_since_ms is not None:
            raise LoopError(f"the part of {p.dept} is suspended; resume it first")
        p.status, p.done_ms, p.result, p.evidence = PartStatus.DONE, ts, result, photos
        p.handler = p.handler or by
        o.history.append(_step(by, "feedback", ts, dept=p.dept, evidence=len(photos)))
        _stop_clock(o, "handling", p.dept, ops)
        if all(x.status == PartStatus.DONE for x in _active(o)):
            _move(o, OrderStatus.FEEDBACK, by, ts)
            clk = stage_clock(r, o, "check", ts)
            if clk:
                cid = clock_id(o.id, "check")
                ops.append(lambda pipe: set_clock(pipe, cid, ts, clk[2]))

    return apply(r, order_id, fn)


# --- 核查评价 -------------------------------------------------------------------------


def check(
    r: redis.Redis,
    order_id: str,
    passed: bool,
    by: str,
    satisfaction: int | None = None,
    note: str = "",
) -> WorkOrder:
    """Check by someone other than the handlers; closes, or sends back for rework."""
    by = _need(by, "who checks")
    if satisfaction is not None and (
        isinstance(satisfaction, bool)
        or not isinstance(satisfaction, int)
        or not 1 <= satisfaction <= 5
    ):
        raise LoopError(f"satisfaction {satisfaction!r} must be 1..5 (or None when unreachable)")
    if not passed and not note.strip():
        raise LoopError("a failed check needs a note saying what is wrong")
    sup = policy().supervision

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _need_status(o, OrderStatus.FEEDBACK, doing="checking")
        handlers = {p.handler for p in _active(o)}
        if by in handlers:
            raise LoopError(f"{by} handled work order {o.id} and cannot check it")
        _move(o, OrderStatus.CHECKING, by, ts)
        _stop_clock(o, "check", "", ops)
        o.checked_by, o.satisfaction = by, satisfaction
        if passed:
            lead = next((p for p in _active(o) if p.role == "lead"), None)
            if lead is None or not lead.evidence:
                raise LoopError(f"work order {o.id} cannot close without photo evidence")
            _move(o, OrderStatus.CLOSED, by, ts, note or "核查通过")
            o.history[-1]["satisfaction"] = satisfaction
            o.closed_ms = ts
            if satisfaction is not None and satisfaction <= sup.dissatisfied_at_most:
                ops.append(
                    lambda pipe: flag_for_inspection(
                        pipe, o, "dissatisfied", ts, f"satisfaction {satisfaction}", by
                    )
                )
        else:
            _move(o, OrderStatus.HANDLING, by, ts, note)
            o.rework_count += 1
            _reopen_parts(r, o, ts, ops)
            ops.append(lambda pipe: flag_for_inspection(pipe, o, "check_failed", ts, note, by))

    return apply(r, order_id, fn)


def _reopen_parts(r: redis.Redis, o: WorkOrder, ts: int, ops: Ops) -> None:
    for p in _active(o):
        if p.status == PartStatus.DONE:
            p.status, p.done_ms = PartStatus.HANDLING, None
            _start_clock(r, o, p, ts, ops)


def reopen(r: redis.Redis, order_id: str, by: str, reason: str) -> WorkOrder:
    """A closed order that was not really solved goes back to handling (and is flagged)."""
    by = _need(by, "who reopens")
    reason = _need(reason, "a reason for reopening")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _need_status(o, OrderStatus.CLOSED, doing="reopening")
        _move(o, OrderStatus.HANDLING, by, ts, reason)
        o.reopen_count += 1
        o.closed_ms = None
        _reopen_parts(r, o, ts, ops)
        key = keys().order_closures(o.category, closure_place(o))
        ops.append(lambda pipe: pipe.zrem(key, o.id))
        ops.append(lambda pipe: flag_for_inspection(pipe, o, "reopened", ts, reason, by))

    return apply(r, order_id, fn)


# --- 退单 and arbitration ---------------------------------------------------------------


def return_order(
    r: redis.Redis, order_id: str, part: str, by: str, by_dept: str, reason: str
) -> WorkOrder:
    """A department returns its part (退单) with a reason, within the return limit."""
    by = _need(by, "who returns")
    reason = _need(reason, "a reason for returning")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _need_status(o, OrderStatus.ASSIGNED, OrderStatus.HANDLING, doing="returning a part")
        p = _own_part(o, part, by_dept, "return")
        if p.status not in (PartStatus.ASSIGNED, PartStatus.HANDLING):
            raise LoopError(f"the part of {p.dept} is {p.status.value}; it cannot be returned")
        amount, unit = policy().stage_limit("return", o.category, o.priority)
        until = deadline(p.assigned_ms, amount, unit)
        if ts > until:
            raise LoopError(
                f"the return limit ({amount:g} {unit} after assignment) has passed; "
                "ask the center to reassign instead"
            )
        p.status = PartStatus.RETURNED
        o.history.append(_step(by, "returned", ts, dept=p.dept, note=reason))
        # The clock stops while the center decides; insisting restores the same deadline.
        _stop_clock(o, "handling", p.dept, ops)

    return apply(r, order_id, fn)


def arbitrate(
    r: redis.Redis,
    order_id: str,
    part: str,
    by: str,
    decision: str,
    reason: str,
    to_dept: str | None = None,
) -> WorkOrder:
    """The center decides on a returned part: ``reassign`` to ``to_dept`` or ``insist``."""
    by = _need(by, "who arbitrates")
    reason = _need(reason, "a reason for the decision")
    if decision not in ("reassign", "insist"):
        raise LoopError(f"decision {decision!r} is not 'reassign' or 'insist'")
    target = _need(to_dept, "the department to reassign to") if decision == "reassign" else ""

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        p = _part(o, _need(part, "the part (department)"))
        if p.status != PartStatus.RETURNED:
            raise LoopError(f"the part of {p.dept} is {p.status.value}, not returned")
        if decision == "insist":
            p.status = PartStatus.HANDLING if p.started_ms else PartStatus.ASSIGNED
            cid, start, due = clock_id(o.id, "handling", p.dept), p.assigned_ms, p.deadline_ms
            ops.append(lambda pipe: set_clock(pipe, cid, start, due))
        else:
            if target in {x.dept for x in _active(o)}:
                raise LoopError(f"{target} is already a party to work order {o.id}")
            p.status = PartStatus.WITHDRAWN
            new = OrderPart(
                dept=target, role=p.role, assigned_ms=ts, assigned_by=by, deadline_ms=ts
            )
            _start_clock(r, o, new, ts, ops)
            o.parts.append(new)
        o.history.append(
            _step(
                by, "arbitrated", ts, dept=p.dept, decision=decision, to=target or None, note=reason
            )
        )

    return apply(r, order_id, fn)


# --- extensions and suspensions -----------------------------------------------------------


def request_extension(
    r: redis.Redis, order_id: str, part: str, by: str, by_dept: str, amount: float, reason: str
) -> WorkOrder:
    """Ask for more time on a part, in the part's unit; nothing changes until approved."""
    return _request(r, order_id, part, by, by_dept, "extension", reason, amount)


def request_suspension(
    r: redis.Redis, order_id: str, part: str, by: str, by_dept: str, reason: str
) -> WorkOrder:
    """Ask to stop a part's clock (e.g. waiting for a third party) until resumed."""
    return _request(r, order_id, part, by, by_dept, "suspension", reason, None)


def _request(
    r: redis.Redis,
    order_id: str,
    part: str,
    by: str,
    by_dept: str,
    kind: str,
    reason: str,
    amount: float | None,
) -> WorkOrder:
    by = _need(by, "who asks")
    reason = _need(reason, "a reason")
    if amount is not None and (isinstance(amount, bool) or not 0 < float(amount) <= 1000):
        raise LoopError(f"extension {amount!r} must be a number above 0")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        _need_status(o, OrderStatus.ASSIGNED, OrderStatus.HANDLING, doing=f"a {kind} request")
        p = _own_part(o, part, by_dept, f"ask a {kind} for")
        if p.status not in (PartStatus.ASSIGNED, PartStatus.HANDLING):
            raise LoopError(f"the part of {p.dept} is {p.status.value}")
        rid = f"{kind[:3]}{len(o.requests) + 1}"
        o.requests.append(
            {
                "id": rid,
                "kind": kind,
                "dept": p.dept,
                "amount": amount,
                "unit": p.unit,
                "reason": reason,
                "by": by,
                "ts_ms": ts,
                "status": "pending",
            }
        )
        o.history.append(_step(by, f"{kind}_requested", ts, dept=p.dept, id=rid, note=reason))

    return apply(r, order_id, fn)


def decide_request(
    r: redis.Redis, order_id: str, request_id: str, by: str, approve: bool, note: str = ""
) -> WorkOrder:
    """Approve or refuse a pending extension or suspension; only approval moves the clock."""
    by = _need(by, "who decides")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        req = next((q for q in o.requests if q["id"] == request_id), None)
        if req is None:
            raise LoopError(f"work order {o.id} has no request {request_id!r}")
        if req["status"] != "pending":
            raise LoopError(f"request {request_id} is already {req['status']}")
        if req["by"] == by:
            raise LoopError(f"{by} asked for {request_id} and cannot decide it")
        p = _part(o, req["dept"])
        req.update(status="approved" if approve else "refused", decided_by=by, decided_ms=ts)
        o.history.append(
            _step(
                by,
                f"{req['kind']}_{req['status']}",
                ts,
                dept=p.dept,
                id=request_id,
                note=note or None,
            )
        )
        if not approve:
            return
        cid = clock_id(o.id, "handling", p.dept)
        if req["kind"] == "extension":
            p.deadline_ms = deadline(p.deadline_ms, float(req["amount"]), p.unit)
            p.limit += float(req["amount"])
            p.signal = ""
            start, due = p.assigned_ms, p.deadline_ms
            ops.append(lambda pipe: set_clock(pipe, cid, start, due))
        else:
            p.paused_since_ms = ts
            ops.append(lambda pipe: clear_clock(pipe, cid))

    return apply(r, order_id, fn)


def resume_part(r: redis.Redis, order_id: str, part: str, by: str, note: str = "") -> WorkOrder:
    """End an approved suspension: the part gets back the time that was left on its clock."""
    by = _need(by, "who resumes")

    def fn(o: WorkOrder, ts: int, ops: Ops) -> None:
        p = _part(o, _need(part, "the part (department)"))
        if p.paused_since_ms is None:
            raise LoopError(f"the part of {p.dept} is not suspended")
        left = elapsed(p.paused_since_ms, p.deadline_ms, p.unit)
        if left > 0:
            p.deadline_ms = deadline(ts, left, p.unit)
        else:
            p.deadline_ms += ts - p.paused_since_ms
        p.paused_since_ms = None
        cid, start, due = clock_id(o.id, "handling", p.dept), p.assigned_ms, p.deadline_ms
        ops.append(lambda pipe: set_clock(pipe, cid, start, due))
        o.history.append(_step(by, "resumed", ts, dept=p.dept, note=note or None))

    return apply(r, order_id, fn)


def clock_state(order: WorkOrder, now: int | None = None) -> list[dict[str, Any]]:
    """Per part: deadline, time left in its unit, paused, signal (for the dashboard)."""
    now = now_ms() if now is None else now
    out = []
    for p in _active(order):
        left = elapsed(now, p.deadline_ms, p.unit) if p.status != PartStatus.DONE else None
        out.append(
            {
                "dept": p.dept,
                "role": p.role,
                "status": p.status.value,
                "deadline_ms": p.deadline_ms,
                "left": left,
                "unit": p.unit,
                "paused": p.paused_since_ms is not None,
                "signal": p.signal,
            }
        )
    return out


__all__ = [
    "EDGES",
    "LoopError",
    "accept",
    "apply",
    "arbitrate",
    "assign",
    "check",
    "clock_state",
    "decide_request",
    "post_message",
    "reject",
    "reopen",
    "request_extension",
    "request_suspension",
    "resume_part",
    "return_order",
    "start_part",
    "submit_feedback",
]
