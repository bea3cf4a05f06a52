"""The closed loop on the real Redis: every step, every refused step, who/when/what/why."""

from __future__ import annotations

import json
import threading
from typing import Any, cast

import pytest
import redis

from core.keys import keys
from core.models import OrderStatus, PartStatus, Report, WorkOrder
from core.store import get_redis
from grids.codes import Level
from grids.dataset import load_city
from workorders import loop
from workorders.clock import deadline
from workorders.loop import LoopError
from workorders.service import create_from_report, get_order, transition

CENTER = "center"


@pytest.fixture(scope="module")
def point() -> tuple[float, float]:
    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410102"))
    lon, lat = city.units_at(Level.GRID, within=town.code)[0].center
    return lon, lat


def new_order(r: redis.Redis, point: tuple[float, float], rid: str = "R1") -> WorkOrder:
    rep = Report.model_validate(
        {"text": "路灯损坏，夜间道路漆黑", "lon": point[0], "lat": point[1], "category": "城乡建设"}
    )
    return create_from_report(r, rep, report_id=rid)


def assigned(
    r: redis.Redis, point: tuple[float, float], co: tuple[str, ...] = ("供电公司",)
) -> str:
    o = new_order(r, point)
    loop.accept(r, o.id, by="op-wang", note="现场核实属实")
    loop.assign(r, o.id, by="op-wang", lead="城管局", co=co)
    return o.id


def test_the_whole_loop_with_lead_and_co_department(
    r: redis.Redis, point: tuple[float, float]
) -> None:
    sub = get_redis().pubsub()
    sub.subscribe(keys().push_channel)
    sub.get_message(timeout=1)
    o = new_order(r, point)
    assert r.zscore(keys().order_due, f"{o.id}|accept|") is not None  # the accept clock runs
    o = loop.accept(r, o.id, by="op-wang", note="现场核实属实")
    assert o.status == OrderStatus.ASSIGNED
    assert r.zscore(keys().order_due, f"{o.id}|accept|") is None
    o = loop.assign(r, o.id, by="op-wang", lead="城管局", co=["供电公司"])
    assert [(p.dept, p.role, p.status) for p in o.parts] == [
        ("城管局", "lead", PartStatus.ASSIGNED),
        ("供电公司", "co", PartStatus.ASSIGNED),
    ]
    for p in o.parts:
        # Each part has its own clock, in the index the sweep reads.
        assert p.unit == "work_days" and p.limit == 10
        assert p.deadline_ms == deadline(p.assigned_ms, 10, "work_days")
        assert r.zscore(keys().order_due, f"{o.id}|handling|{p.dept}") == p.deadline_ms
    o = loop.start_part(r, o.id, "城管局", by="li", by_dept="城管局")
    assert o.status == OrderStatus.HANDLING
    o = loop.start_part(r, o.id, "供电公司", by="zhao", by_dept="供电公司")
    loop.post_message(r, o.id, by="li", by_dept="城管局", text="请供电公司确认线路是否带电")
    o = loop.post_message(r, o.id, by="zhao", by_dept="供电公司", text="已断电，可以施工")
    assert [m["dept"] for m in o.thread] == ["城管局", "供电公司"]
    o = loop.submit_feedback(
        r, o.id, "供电公司", by="zhao", by_dept="供电公司", result="已断电配合"
    )
    assert o.status == OrderStatus.HANDLING  # the lead has not reported yet
    o = loop.submit_feedback(
        r,
        o.id,
        "城管局",
        by="li",
        by_dept="城管局",
        result="更换灯具",
        evidence=["photo:a1", "x/b.jpg"],
    )
    assert o.status == OrderStatus.FEEDBACK
    assert r.zscore(keys().order_due, f"{o.id}|check|") is not None
    assert r.zscore(keys().order_due, f"{o.id}|handling|城管局") is None
    o = loop.check(r, o.id, passed=True, by="grid-chen", satisfaction=5, note="夜间复查灯亮")
    assert o.status == OrderStatus.CLOSED and o.closed_ms and o.checked_by == "grid-chen"
    assert o.satisfaction == 5 and o.flags == []
    statuses = [h["to"] for h in o.history if h["action"] == "status"]
    assert statuses == ["assigned", "handling", "feedback", "checking", "closed"]
    assert all(h["by"] and h["ts_ms"] for h in o.history)
    assert get_order(r, o.id) == o
    assert r.zscore(keys().orders_open, o.id) is None
    running = [str(m, "utf-8") for m in cast(list[bytes], r.zrange(keys().order_due, 0, -1))]
    assert not any(m.startswith(o.id) for m in running)
    pushed = []
    while (m := sub.get_message(timeout=0.2)) is not None:
        if m["type"] == "message":
            pushed.append(json.loads(m["data"]))
    sub.close()
    assert [p["status"] for p in pushed if p["id"] == o.id][-1] == "closed"
    assert len([p for p in pushed if p["id"] == o.id]) >= 10


def test_reject_invalid_and_duplicate(r: redis.Redis, point: tuple[float, float]) -> None:
    a = new_order(r, point, "A")
    b = new_order(r, point, "B")
    with pytest.raises(LoopError, match="reason"):
        loop.reject(r, a.id, by="op", reason=" ")
    with pytest.raises(LoopError, match="not another existing"):
        loop.reject(r, b.id, by="op", reason="重复", kind="duplicate", duplicate_of="GD1-1")
    with pytest.raises(LoopError, match="'invalid' or 'duplicate'"):
        loop.reject(r, b.id, by="op", reason="x", kind="spam")
    o = loop.reject(r, b.id, by="op", reason="同一路灯已受理", kind="duplicate", duplicate_of=a.id)
    assert o.status == OrderStatus.REJECTED
    assert o.history[-1]["duplicate_of"] == a.id and o.history[-1]["note"] == "同一路灯已受理"
    assert r.zscore(keys().order_due, f"{b.id}|accept|") is None
    with pytest.raises(LoopError, match=r"allowed: none \(final\)"):
        loop.accept(r, b.id, by="op")


def test_skipping_steps_is_refused(r: redis.Redis, point: tuple[float, float]) -> None:
    o = new_order(r, point)
    with pytest.raises(LoopError, match="assigning needs it assigned"):
        loop.assign(r, o.id, by="op", lead="城管局")
    loop.accept(r, o.id, by="op")
    with pytest.raises(LoopError, match="no part for department"):
        loop.start_part(r, o.id, "城管局", by="li", by_dept="城管局")
    with pytest.raises(LoopError, match="result feedback needs it handling"):
        loop.submit_feedback(r, o.id, "城管局", by="li", by_dept="城管局", result="x")
    with pytest.raises(LoopError, match="appears twice"):
        loop.assign(r, o.id, by="op", lead="城管局", co=["城管局"])
    loop.assign(r, o.id, by="op", lead="城管局")
    with pytest.raises(LoopError, match="already assigned"):
        loop.assign(r, o.id, by="op", lead="水务局")
    with pytest.raises(LoopError, match="checking needs it feedback"):
        loop.check(r, o.id, passed=True, by="grid")
    loop.start_part(r, o.id, "城管局", by="li", by_dept="城管局")
    with pytest.raises(LoopError, match="not assigned"):
        loop.start_part(r, o.id, "城管局", by="li", by_dept="城管局")
    with pytest.raises(LoopError, match="does not exist"):
        loop.accept(r, "GD20000101-000000", by="op")


def test_a_department_acts_only_on_its_own_part(r: redis.Redis, point: tuple[float, float]) -> None:
    oid = assigned(r, point)
    with pytest.raises(LoopError, match="only a department acts on its own part"):
        loop.start_part(r, oid, "城管局", by="zhao", by_dept="供电公司")
    loop.start_part(r, oid, "城管局", by="li", by_dept="城管局")
    with pytest.raises(LoopError, match="供电公司 cannot report on the part of 城管局"):
        loop.submit_feedback(
            r, oid, "城管局", by="zhao", by_dept="供电公司", result="x", evidence=["photo:1"]
        )
    with pytest.raises(LoopError, match="not a party"):
        loop.post_message(r, oid, by="x", by_dept="水务局", text="我来看看")
    o = loop.post_message(r, oid, by="op", by_dept=CENTER, text="请加快")
    assert o.thread[-1]["dept"] == CENTER
    with pytest.raises(LoopError, match="not a photo reference"):
        loop.submit_feedback(
            r, oid, "城管局", by="li", by_dept="城管局", result="x", evidence=["see attachment"]
        )


def test_handler_cannot_check_and_closure_needs_evidence(
    r: redis.Redis, point: tuple[float, float]
) -> None:
    oid = assigned(r, point, co=())
    loop.start_part(r, oid, "城管局", by="li", by_dept="城管局")
    loop.submit_feedback(r, oid, "城管局", by="li", by_dept="城管局", result="已修复")
    with pytest.raises(LoopError, match="li handled work order .* cannot check it"):
        loop.check(r, oid, passed=True, by="li")
    with pytest.raises(LoopError, match="cannot close without photo evidence"):
        loop.check(r, oid, passed=True, by="grid-chen", satisfaction=4)
    with pytest.raises(LoopError, match="satisfaction"):
        loop.check(r, oid, passed=True, by="grid-chen", satisfaction=9)
    with pytest.raises(LoopError, match="needs a note"):
        loop.check(r, oid, passed=False, by="grid-chen")
    o = get_order(r, oid)
    assert o is not None and o.status == OrderStatus.FEEDBACK  # nothing half-applied
    # Rework: back to handling, the part's clock restarts.
    o = loop.check(r, oid, passed=False, by="grid-chen", note="无现场照片，灯仍不亮")
    assert o.status == OrderStatus.HANDLING and o.rework_count == 1
    assert o.parts[0].status == PartStatus.HANDLING
    assert r.zscore(keys().order_due, f"{oid}|handling|城管局") == o.parts[0].deadline_ms
    loop.submit_feedback(
        r, oid, "城管局", by="li", by_dept="城管局", result="已更换", evidence=["photo:9"]
    )
    o = loop.check(r, oid, passed=True, by="grid-chen", satisfaction=4)
    assert o.status == OrderStatus.CLOSED and "check_failed" in o.flags


def test_return_and_arbitration(
    r: redis.Redis, point: tuple[float, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = assigned(r, point)
    with pytest.raises(LoopError, match="a reason"):
        loop.return_order(r, oid, "供电公司", by="zhao", by_dept="供电公司", reason="")
    with pytest.raises(LoopError, match="not returned"):
        loop.arbitrate(r, oid, "供电公司", by="op", decision="insist", reason="x")
    o = loop.return_order(
        r, oid, "供电公司", by="zhao", by_dept="供电公司", reason="非供电线路，属路灯所"
    )
    assert o.parts[1].status == PartStatus.RETURNED
    assert r.zscore(keys().order_due, f"{oid}|handling|供电公司") is None
    with pytest.raises(LoopError, match="already a party"):
        loop.arbitrate(
            r, oid, "供电公司", by="op", decision="reassign", reason="x", to_dept="城管局"
        )
    with pytest.raises(LoopError, match="the department to reassign to"):
        loop.arbitrate(r, oid, "供电公司", by="op", decision="reassign", reason="x")
    o = loop.arbitrate(
        r, oid, "供电公司", by="op", decision="reassign", reason="属实", to_dept="路灯所"
    )
    assert [(p.dept, p.status) for p in o.parts] == [
        ("城管局", PartStatus.ASSIGNED),
        ("供电公司", PartStatus.WITHDRAWN),
        ("路灯所", PartStatus.ASSIGNED),
    ]
    assert o.history[-1]["decision"] == "reassign" and o.history[-1]["to"] == "路灯所"
    # Insisting puts the part back with its old deadline.
    loop.return_order(r, oid, "城管局", by="li", by_dept="城管局", reason="不归我局")
    o = loop.arbitrate(r, oid, "城管局", by="op", decision="insist", reason="清单明确属城管")
    lead = o.parts[0]
    assert lead.status == PartStatus.ASSIGNED
    assert r.zscore(keys().order_due, f"{oid}|handling|城管局") == lead.deadline_ms
    # After the return limit (2 work hours at priority 3) a return is refused.
    late = deadline(lead.assigned_ms, 3, "work_hours")
    monkeypatch.setattr(loop, "now_ms", lambda: late)
    with pytest.raises(LoopError, match="return limit"):
        loop.return_order(r, oid, "路灯所", by="x", by_dept="路灯所", reason="不归我")


def test_reopen_a_closed_order(r: redis.Redis, point: tuple[float, float]) -> None:
    oid = assigned(r, point, co=())
    loop.start_part(r, oid, "城管局", by="li", by_dept="城管局")
    loop.submit_feedback(
        r, oid, "城管局", by="li", by_dept="城管局", result="ok", evidence=["p.png"]
    )
    loop.check(r, oid, passed=True, by="grid", satisfaction=5)
    with pytest.raises(LoopError, match="a reason"):
        loop.reopen(r, oid, by="op", reason="")
    o = loop.reopen(r, oid, by="op", reason="市民再次来电：灯又灭了")
    assert o.status == OrderStatus.HANDLING and o.reopen_count == 1 and "reopened" in o.flags
    assert r.zscore(keys().orders_open, oid) is not None


def test_two_operators_cannot_both_apply_a_transition(
    r: redis.Redis, point: tuple[float, float]
) -> None:
    o = new_order(r, point)
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        cli = redis.Redis.from_url(get_url(r))
        barrier.wait()
        try:
            results.append(loop.accept(cli, o.id, by=f"op-{i}"))
        except LoopError as exc:
            results.append(exc)
        finally:
            cli.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [x for x in results if isinstance(x, WorkOrder)]
    assert len(ok) == 1 and len(results) == 8
    assert all("cannot move to assigned" in str(x) for x in results if not isinstance(x, WorkOrder))
    stored = get_order(r, o.id)
    assert stored is not None
    assert len([h for h in stored.history if h.get("to") == "assigned"]) == 1


def get_url(r: redis.Redis) -> str:
    kw = r.connection_pool.connection_kwargs
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def test_legacy_transition_still_works(r: redis.Redis, point: tuple[float, float]) -> None:
    o = new_order(r, point)
    o = transition(r, o.id, OrderStatus.ASSIGNED, by="op")
    assert o.status == OrderStatus.ASSIGNED
