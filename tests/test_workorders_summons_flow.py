"""吹哨报到 on the real Redis: a township summons departments, they report in; the sweep
flags late acknowledgements; every refusal says why."""

from __future__ import annotations

import json

import pytest
import redis

from access.scope import Scope
from core.keys import keys
from core.models import Report, WorkOrder
from grids.codes import Level
from grids.dataset import load_city
from workorders import loop, summons
from workorders.clock import deadline
from workorders.service import HOUR_MS, create_from_report, get_order, policy
from workorders.summons import SummonsError, report_in, summon
from workorders.supervision import supervised_list, sweep

MIN_MS = 60_000


@pytest.fixture(scope="module")
def town() -> tuple[str, str, float, float]:
    city = load_city()
    t = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410102"))
    lon, lat = city.units_at(Level.GRID, within=t.code)[0].center
    return t.code[:6], t.code, lon, lat


def new_order(r: redis.Redis, town: tuple[str, str, float, float], rid: str = "R1") -> WorkOrder:
    rep = Report.model_validate(
        {"text": "小区门口占道经营，垃圾遍地", "lon": town[2], "lat": town[3]}
    )
    return create_from_report(r, rep, report_id=rid)


def ack_due(r: redis.Redis, oid: str, sid: str, dept: str) -> float | None:
    return r.zscore(keys().order_due, summons.ack_clock_id(oid, sid, dept))


def test_summon_and_report_in_records_every_step(
    r: redis.Redis, town: tuple[str, str, float, float]
) -> None:
    o = new_order(r, town)
    sub = r.pubsub()
    sub.subscribe(keys().push_channel)
    sub.get_message(timeout=1)
    o = summon(r, o.id, "街道-张", town[1], ["城管局", "市场监管所"], "占道经营需联合执法")
    push = sub.get_message(timeout=2)
    assert push is not None and json.loads(push["data"])["topic"] == "order"
    [s] = o.summons
    assert (s.id, s.by, s.by_level, s.reason) == ("S1", "街道-张", town[1], "占道经营需联合执法")
    # Policy default: 30 calendar minutes.
    assert policy().summons.ack_limit_minutes == 30 and s.unit == "calendar_hours"
    assert [d.ack_deadline_ms - s.ts_ms for d in s.departments] == [30 * MIN_MS] * 2
    assert ack_due(r, o.id, "S1", "城管局") == s.ts_ms + 30 * MIN_MS
    h = o.history[-1]
    assert h["action"] == "summoned" and h["by"] == "街道-张" and h["note"] == "占道经营需联合执法"
    assert h["departments"] == ["城管局", "市场监管所"] and h["level"] == town[1]

    o = report_in(r, o.id, "城管局", by="城管-李")
    d = o.summons[0].departments[0]
    assert d.acked_by == "城管-李" and d.acked_ms is not None and not d.late
    h = o.history[-1]
    assert (h["action"], h["by"], h["dept"], h["late"]) == (
        "reported_in",
        "城管-李",
        "城管局",
        False,
    )
    assert ack_due(r, o.id, "S1", "城管局") is None  # its clock is gone
    assert ack_due(r, o.id, "S1", "市场监管所") is not None
    assert summons.pending(o) == [
        {"summons": "S1", "dept": "市场监管所", "deadline_ms": d.ack_deadline_ms, "late": False}
    ]
    # A department that reported in may write in the consultation thread once assigned.
    loop.accept(r, o.id, by="op")
    loop.assign(r, o.id, by="op", lead="街道办事处")
    o = loop.post_message(r, o.id, by="城管-李", by_dept="城管局", text="已到场")
    assert o.thread[-1]["dept"] == "城管局"
    with pytest.raises(loop.LoopError, match="not a party"):
        loop.post_message(r, o.id, by="x", by_dept="市场监管所", text="未报到")


def test_refusals(r: redis.Redis, town: tuple[str, str, float, float]) -> None:
    o = new_order(r, town)
    other_town = next(
        u.code
        for u in load_city().units_at(Level.TOWNSHIP)
        if u.code.startswith(town[0]) and u.code != town[1]
    )
    with pytest.raises(SummonsError, match="does not own the place"):
        summon(r, o.id, "邻街道", other_town, ["城管局"], "越界")
    with pytest.raises(SummonsError, match="does not own the place"):
        summon(r, o.id, "外区", "410105", ["城管局"], "越界")
    with pytest.raises(SummonsError, match="only a township or above"):
        summon(r, o.id, "社区", o.place.code[:12], ["城管局"], "社区不能吹哨")
    with pytest.raises(SummonsError, match="reason"):
        summon(r, o.id, "街道", town[1], ["城管局"], " ")
    with pytest.raises(SummonsError, match="at least one department"):
        summon(r, o.id, "街道", town[1], [], "x")
    with pytest.raises(SummonsError, match="named twice"):
        summon(r, o.id, "街道", town[1], ["城管局", "城管局"], "x")
    with pytest.raises(SummonsError, match="ack_limit_minutes"):
        summon(r, o.id, "街道", town[1], ["城管局"], "x", ack_limit_minutes=0)
    with pytest.raises(loop.LoopError, match="does not exist"):
        summon(r, "GD-none", "街道", town[1], ["城管局"], "x")
    # The district and the city own the township's places too.
    o = summon(r, o.id, "区-王", town[0], ["城管局"], "区级吹哨", ack_limit_minutes=15)
    assert o.summons[0].departments[0].ack_deadline_ms - o.summons[0].ts_ms == 15 * MIN_MS
    with pytest.raises(SummonsError, match="already summoned"):
        summon(r, o.id, "市", "4101", ["城管局"], "again")

    with pytest.raises(SummonsError, match="was not summoned"):
        report_in(r, o.id, "公安局", by="x")
    report_in(r, o.id, "城管局", by="李")
    with pytest.raises(SummonsError, match="already reported in"):
        report_in(r, o.id, "城管局", by="李")
    before = get_order(r, o.id)
    assert before is not None and len(before.history) == len(o.history) + 1  # refusals leave none
    # Reported in, it may be summoned again, and reports in to the new summons.
    o = summon(r, o.id, "市-赵", "4101", ["城管局"], "再次吹哨")
    o = report_in(r, o.id, "城管局", by="李")
    assert [s.departments[0].acked_by for s in o.summons] == ["李", "李"]


def test_sweep_flags_late_acknowledgement(
    r: redis.Redis, town: tuple[str, str, float, float]
) -> None:
    o = new_order(r, town)
    o = summon(r, o.id, "街道-张", town[1], ["城管局", "供水公司"], "管道破裂", 20)
    s = o.summons[0]
    due = s.departments[0].ack_deadline_ms
    remind_at = due - int(policy().reminder_share * (due - s.ts_ms))
    accept_due = r.zscore(keys().order_due, f"{o.id}|accept|")
    assert accept_due is not None and accept_due > due  # only the summons clocks fall due here

    assert sweep(r, remind_at - 1)["remind"] == 0
    assert sweep(r, remind_at)["remind"] == 2
    o2 = get_order(r, o.id)
    assert o2 is not None and o2.signal == "yellow"
    assert [d.signal for d in o2.summons[0].departments] == ["yellow", "yellow"]
    report_in(r, o.id, "城管局", by="李")  # in time
    assert supervised_list(r) == []

    counts = sweep(r, due + 1)
    assert counts["due"] == 1  # only 供水公司 is still pending
    o2 = get_order(r, o.id)
    assert o2 is not None and o2.signal == "red" and "summons_late" in o2.flags
    late = {d.dept: d.late for d in o2.summons[0].departments}
    assert late == {"城管局": False, "供水公司": True}
    step = o2.history[-1]
    assert step["action"] == "summons_late" and step["dept"] == "供水公司"
    [rec] = supervised_list(r)
    assert (rec["order_id"], rec["dept"], rec["to"], rec["reason"]) == (
        o.id,
        "供水公司",
        town[1],
        "summons_late",
    )
    # The township that summoned sees it; another district does not.
    assert supervised_list(r, Scope(user="t", jurisdiction=town[1])) != []
    assert supervised_list(r, Scope(user="d", jurisdiction="410105")) == []
    # Listed once: the clock has left every set, and later sweeps add nothing about it.
    cid = summons.ack_clock_id(o.id, "S1", "供水公司")
    k = keys()
    for zkey in (k.order_due, k.order_remind, k.order_escalate, k.order_inspect):
        assert r.zscore(zkey, cid) is None
    sweep(r, due + 100 * HOUR_MS)
    o2 = get_order(r, o.id)
    assert o2 is not None
    assert [h["action"] for h in o2.history].count("summons_late") == 1
    assert [x["stage"] for x in supervised_list(r)].count("summons") == 1
    o3 = report_in(r, o.id, "供水公司", by="王")
    assert o3.history[-1]["late"] is True


def test_late_report_in_before_the_sweep_is_still_late(
    r: redis.Redis, town: tuple[str, str, float, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    o = new_order(r, town)
    o = summon(r, o.id, "街道", town[1], ["城管局"], "x", ack_limit_minutes=1)
    due = o.summons[0].departments[0].ack_deadline_ms
    monkeypatch.setattr("workorders.loop.now_ms", lambda: due + 5 * MIN_MS)
    o = report_in(r, o.id, "城管局", by="李")
    assert o.summons[0].departments[0].late and o.history[-1]["late"] is True
    assert [x["dept"] for x in supervised_list(r)] == ["城管局"]


def test_working_time_limit_and_closure_clears_clocks(
    r: redis.Redis, town: tuple[str, str, float, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    pol = policy().summons
    monkeypatch.setattr(pol, "unit", "work_hours")
    o = new_order(r, town)
    o = summon(r, o.id, "街道", town[1], ["城管局"], "夜间吹哨", ack_limit_minutes=30)
    s = o.summons[0]
    assert s.unit == "work_hours"
    assert s.departments[0].ack_deadline_ms == deadline(s.ts_ms, 0.5, "work_hours")
    # A rejected order takes its acknowledgement clocks with it.
    loop.reject(r, o.id, by="op", reason="重复")
    assert ack_due(r, o.id, "S1", "城管局") is None
    with pytest.raises(SummonsError, match="no summons"):
        summon(r, o.id, "街道", town[1], ["公安局"], "x")
