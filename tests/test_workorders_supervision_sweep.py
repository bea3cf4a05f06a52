"""Supervision on the real Redis: reminder, overdue, escalation, discipline inspection,
extensions and suspensions, and each rule of suspected false closure."""

from __future__ import annotations

import time

import pytest
import redis

from access.scope import Scope
from core.keys import keys
from core.models import OrderStatus, Report, WorkOrder
from grids.codes import Level
from grids.dataset import load_city
from workorders import loop
from workorders.clock import deadline, elapsed
from workorders.service import HOUR_MS, create_from_report, get_order, policy, transition
from workorders.supervision import discipline_list, false_closures, supervised_list, sweep


@pytest.fixture(scope="module")
def town() -> tuple[str, str, float, float]:
    city = load_city()
    t = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410102"))
    lon, lat = city.units_at(Level.GRID, within=t.code)[0].center
    return t.code[:6], t.code, lon, lat


def new_order(r: redis.Redis, town: tuple[str, str, float, float], rid: str) -> WorkOrder:
    rep = Report.model_validate(
        {"text": "人行道井盖缺失", "lon": town[2], "lat": town[3], "category": "城乡建设"}
    )
    return create_from_report(r, rep, report_id=rid)


def handling(r: redis.Redis, town: tuple[str, str, float, float], rid: str = "R") -> WorkOrder:
    o = new_order(r, town, rid)
    loop.accept(r, o.id, by="op")
    loop.assign(r, o.id, by="op", lead="城管局")
    return loop.start_part(r, o.id, "城管局", by="li", by_dept="城管局")


def close(r: redis.Redis, oid: str, satisfaction: int = 5) -> WorkOrder:
    loop.submit_feedback(
        r, oid, "城管局", by="li", by_dept="城管局", result="ok", evidence=["p.jpg"]
    )
    return loop.check(r, oid, passed=True, by="grid", satisfaction=satisfaction)


def test_reminder_overdue_escalation_and_inspection(
    r: redis.Redis, town: tuple[str, str, float, float]
) -> None:
    o = handling(r, town)
    part = o.parts[0]
    due, start = part.deadline_ms, part.assigned_ms
    sup = policy().supervision
    remind_at = due - int(policy().reminder_share * (due - start))
    before = sweep(r, remind_at - 1)
    assert before["remind"] == 0 and before["due"] == 0
    o2 = get_order(r, o.id)
    assert o2 is not None and o2.parts[0].signal == "" and o2.signal == ""

    assert sweep(r, remind_at)["remind"] == 1
    o2 = get_order(r, o.id)
    assert o2 is not None and o2.parts[0].signal == "yellow" and o2.signal == "yellow"
    assert sweep(r, remind_at + 1)["remind"] == 0  # once only

    assert sweep(r, due + 1)["due"] == 1
    o2 = get_order(r, o.id)
    assert o2 is not None and o2.signal == "red" and "overdue" in o2.flags
    assert supervised_list(r) == []

    esc_at = due + int(sup.escalate_after_hours * HOUR_MS)
    assert sweep(r, esc_at)["escalate"] == 1
    o2 = get_order(r, o.id)
    assert o2 is not None and o2.signal == "escalated"
    [rec] = supervised_list(r)
    assert rec["order_id"] == o.id and rec["to"] == town[0] and rec["dept"] == "城管局"
    assert any(h["action"] == "escalated" and h["to"] == town[0] for h in o2.history)
    # The county above sees it; a sibling county does not.
    assert supervised_list(r, Scope(user="c", jurisdiction=town[0])) != []
    assert supervised_list(r, Scope(user="c", jurisdiction="410105")) == []
    assert discipline_list(r) == []

    assert sweep(r, due + int(sup.inspect_after_hours * HOUR_MS))["inspect"] == 1
    [d] = discipline_list(r)
    assert d["order_id"] == o.id and d["reason"] == "overdue_beyond_limit"
    assert sweep(r, due + 100 * HOUR_MS) == {"remind": 0, "due": 0, "escalate": 0, "inspect": 0}


def test_accept_stage_clock_is_supervised(
    r: redis.Redis, town: tuple[str, str, float, float]
) -> None:
    o = new_order(r, town, "late-accept")
    limit, unit = policy().stage_limit("accept", o.category, o.priority)
    due = deadline(o.created_ms, limit, unit)
    assert sweep(r, due + 1)["due"] == 1
    o2 = get_order(r, o.id)
    assert o2 is not None and o2.signal == "red"
    loop.accept(r, o.id, by="op")
    assert sweep(r, due + 100 * HOUR_MS)["escalate"] == 0  # accepted: the clock is gone


def test_extension_moves_the_deadline_only_once_approved(
    r: redis.Redis, town: tuple[str, str, float, float]
) -> None:
    o = handling(r, town)
    p = o.parts[0]
    o = loop.request_extension(
        r, o.id, "城管局", by="li", by_dept="城管局", amount=2, reason="需采购井盖"
    )
    rid = o.requests[0]["id"]
    assert o.parts[0].deadline_ms == p.deadline_ms  # pending: nothing moves
    assert sweep(r, p.deadline_ms + 1)["due"] == 1
    with pytest.raises(loop.LoopError, match="cannot decide it"):
        loop.decide_request(r, o.id, rid, by="li", approve=True)
    o = loop.decide_request(r, o.id, rid, by="op-boss", approve=True, note="同意")
    new_due = deadline(p.deadline_ms, 2, p.unit)
    assert o.parts[0].deadline_ms == new_due > p.deadline_ms
    assert o.parts[0].signal == ""
    assert r.zscore(keys().order_due, f"{o.id}|handling|城管局") == new_due
    with pytest.raises(loop.LoopError, match="already approved"):
        loop.decide_request(r, o.id, rid, by="op-boss", approve=False)
    # Refused: no change.
    o = loop.request_extension(
        r, o.id, "城管局", by="li", by_dept="城管局", amount=5, reason="再延"
    )
    o = loop.decide_request(r, o.id, o.requests[-1]["id"], by="op-boss", approve=False)
    assert o.parts[0].deadline_ms == new_due


def test_suspension_pauses_the_clock_once_approved(
    r: redis.Redis, town: tuple[str, str, float, float]
) -> None:
    o = handling(r, town)
    p = o.parts[0]
    o = loop.request_suspension(r, o.id, "城管局", by="li", by_dept="城管局", reason="等待产权单位")
    assert r.zscore(keys().order_due, f"{o.id}|handling|城管局") == p.deadline_ms
    o = loop.decide_request(r, o.id, o.requests[0]["id"], by="op-boss", approve=True)
    assert o.parts[0].paused_since_ms is not None
    assert sweep(r, p.deadline_ms + 10 * HOUR_MS)["due"] == 0  # paused: never overdue
    with pytest.raises(loop.LoopError, match="suspended"):
        loop.submit_feedback(
            r, o.id, "城管局", by="li", by_dept="城管局", result="x", evidence=["p.jpg"]
        )
    paused = o.parts[0].paused_since_ms
    o = loop.resume_part(r, o.id, "城管局", by="op-boss")
    left = elapsed(paused, p.deadline_ms, p.unit)
    resumed = o.history[-1]["ts_ms"]
    assert o.parts[0].deadline_ms == deadline(resumed, left, p.unit)
    assert r.zscore(keys().order_due, f"{o.id}|handling|城管局") == o.parts[0].deadline_ms


def _reasons(r: redis.Redis, oid: str) -> set[str]:
    return {x["reason"] for x in false_closures(r) if x["order_id"] == oid}


def test_each_false_closure_rule(r: redis.Redis, town: tuple[str, str, float, float]) -> None:
    clean = handling(r, town, "clean")
    close(r, clean.id)
    assert _reasons(r, clean.id) == set()

    sad = handling(r, town, "sad")
    assert close(r, sad.id, satisfaction=2).flags == ["dissatisfied"]
    assert _reasons(r, sad.id) == {"dissatisfied"}

    failed = handling(r, town, "failed")
    loop.submit_feedback(
        r, failed.id, "城管局", by="li", by_dept="城管局", result="ok", evidence=["p.jpg"]
    )
    loop.check(r, failed.id, passed=False, by="grid", note="井盖未安装")
    assert _reasons(r, failed.id) == {"check_failed"}

    reopened = handling(r, town, "reopened")
    close(r, reopened.id)
    loop.reopen(r, reopened.id, by="op", reason="市民反映仍未修复")
    assert _reasons(r, reopened.id) == {"reopened"}

    # A status jump that bypasses the loop closes without any evidence.
    bare = new_order(r, town, "bare")
    for to in ("assigned", "handling", "feedback", "checking", "closed"):
        transition(r, bare.id, to, by="op")
    assert _reasons(r, bare.id) == {"closed_without_evidence"}

    # Same category at the same place within 30 days of closure: the clean one is suspect.
    again = new_order(r, town, "again")
    loop.accept(r, again.id, by="op")
    assert "repeat_after_closure" in _reasons(r, clean.id)
    flagged = get_order(r, clean.id)
    assert flagged is not None and flagged.status == OrderStatus.CLOSED
    assert "repeat_after_closure" in flagged.flags
    assert "repeat_after_closure" in _reasons(r, sad.id)
    # A reopened order is no longer a closure to repeat.
    assert _reasons(r, reopened.id) == {"reopened"}
    before = {(x["order_id"], x["reason"]) for x in discipline_list(r)}
    # Another category at the same place is not a repeat.
    rep = Report.model_validate(
        {"text": "噪音扰民", "lon": town[2], "lat": town[3], "category": "环境保护"}
    )
    other = create_from_report(r, rep, report_id="other")
    loop.accept(r, other.id, by="op")
    assert {(x["order_id"], x["reason"]) for x in discipline_list(r)} == before


def test_sweep_reads_only_what_is_due(r: redis.Redis, town: tuple[str, str, float, float]) -> None:
    """100,000 running clocks; the sweep costs what is due, not what is open."""
    k = keys()
    far = 4_000_000_000_000
    pipe = r.pipeline(transaction=False)
    for i in range(100_000):
        pipe.zadd(k.order_due, {f"GDX-{i:06d}|handling|d": far + i})
        pipe.zadd(k.order_remind, {f"GDX-{i:06d}|handling|d": far + i - 1000})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    o = handling(r, town)
    due = o.parts[0].deadline_ms
    t0 = time.perf_counter()
    counts = sweep(r, due + 1)
    took = time.perf_counter() - t0
    assert counts["due"] == 1 and counts["remind"] == 1
    assert took < 0.2, took
    print(f"sweep over 100,000 clocks with 1 due: {took * 1000:.1f} ms")
