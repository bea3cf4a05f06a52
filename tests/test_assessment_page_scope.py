"""Assessment figures through ``access.assessment``: real orders on the real Redis, taken
through the loop; a township sees only its own orders, live or archived."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import redis

from access.assessment import assessment_for, discipline_for, scoped_orders, supervised_for
from access.scope import Scope
from core.models import Report, WorkOrder
from grids.codes import Level
from grids.dataset import load_city
from workorders import loop
from workorders.archive import archive_closed
from workorders.service import HOUR_MS, create_from_report, policy
from workorders.supervision import sweep

DAY = 86_400_000


@dataclass(frozen=True)
class Town:
    county: str
    code: str
    grid: str
    lon: float
    lat: float


def sibling_towns() -> tuple[Town, Town]:
    """Two townships of one county (金水区), each with a grid's centre point."""
    city = load_city()
    towns = [u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410105")][:2]
    out = []
    for u in towns:
        g = city.units_at(Level.GRID, within=u.code)[0]
        out.append(Town(u.code[:6], u.code, g.code, *g.center))
    return out[0], out[1]


def new_order(r: redis.Redis, town: Town, rid: str, category: str = "城乡建设") -> WorkOrder:
    rep = Report.model_validate(
        {"text": f"井盖破损 {rid}", "lon": town.lon, "lat": town.lat, "category": category}
    )
    return create_from_report(r, rep, report_id=rid)


def handled(r: redis.Redis, town: Town, rid: str, dept: str = "城管局") -> WorkOrder:
    o = new_order(r, town, rid)
    loop.accept(r, o.id, by="op")
    loop.assign(r, o.id, by="op", lead=dept)
    return loop.start_part(r, o.id, dept, by="staff", by_dept=dept)


def closed(
    r: redis.Redis, town: Town, rid: str, dept: str = "城管局", satisfaction: int = 5
) -> WorkOrder:
    o = handled(r, town, rid, dept)
    loop.submit_feedback(r, o.id, dept, by="staff", by_dept=dept, result="ok", evidence=["p.jpg"])
    return loop.check(r, o.id, passed=True, by="grid", satisfaction=satisfaction)


@dataclass(frozen=True)
class Seeded:
    a: Town
    b: Town
    late: WorkOrder  # left open past its deadline, escalated and listed for inspection
    as_of: int  # when it is overdue beyond the inspection limit


def seed(r: redis.Redis) -> Seeded:
    """Town A: 3 城管局 orders (2 closed, one of them dissatisfied; 1 left overdue and
    swept to escalation and discipline inspection) and 1 水务局 closed. Town B: 2 城管局
    closed."""
    a, b = sibling_towns()
    closed(r, a, "a1")
    closed(r, a, "a2", satisfaction=2)
    late = handled(r, a, "a3")
    closed(r, a, "a4", dept="水务局")
    closed(r, b, "b1")
    closed(r, b, "b2")
    due = late.parts[0].deadline_ms
    sup = policy().supervision
    sweep(r, due + 1)
    sweep(r, due + int(sup.escalate_after_hours * HOUR_MS))
    sweep(r, due + int(sup.inspect_after_hours * HOUR_MS))
    return Seeded(a, b, late, due + int(sup.inspect_after_hours * HOUR_MS))


def test_township_user_sees_only_its_own_township(r: redis.Redis) -> None:
    s = seed(r)
    a, b, as_of = s.a, s.b, s.as_of
    city = Scope(user="boss")
    by_town = assessment_for(r, city, "township", as_of_ms=as_of)
    assert by_town["received"].to_dict() == {a.code: 4, b.code: 2}

    user_a = Scope(user="a", jurisdiction=a.code, role="township")
    mine = assessment_for(r, user_a, "township", as_of_ms=as_of)
    assert list(mine.index) == [a.code]  # the sibling township is not there at all
    depts = assessment_for(r, user_a, "dept", as_of_ms=as_of)
    # 城管局 handled 2 orders in B too: A's user counts only the 3 in A.
    assert depts.loc["城管局", "received"] == 3 and depts.loc["水务局", "received"] == 1
    assert depts.loc["城管局", "closed"] == 2 and depts.loc["城管局", "overdue"] == 1
    assert depts.loc["城管局", "dissatisfied"] == 1
    assert assessment_for(r, city, "dept", as_of_ms=as_of).loc["城管局", "received"] == 5

    user_b = Scope(user="b", jurisdiction=b.code, role="township")
    theirs = assessment_for(r, user_b, "dept", as_of_ms=as_of)
    assert list(theirs.index) == ["城管局"] and theirs.loc["城管局", "received"] == 2
    assert theirs.loc["城管局", "overdue"] == 0

    # A department user sees its own department only, still inside its area.
    dept_user = Scope(user="d", jurisdiction=a.code, role="department", department="水务局")
    assert list(assessment_for(r, dept_user, "dept", as_of_ms=as_of).index) == ["水务局"]


def test_supervision_lists_follow_the_scope(r: redis.Redis) -> None:
    s = seed(r)
    a, b, late = s.a, s.b, s.late
    user_a = Scope(user="a", jurisdiction=a.code)
    user_b = Scope(user="b", jurisdiction=b.code)
    assert [x["order_id"] for x in supervised_for(r, user_a)] == [late.id]
    assert supervised_for(r, user_b) == []
    reasons = {(x["order_id"], x["reason"]) for x in discipline_for(r, user_a)}
    assert (late.id, "overdue_beyond_limit") in reasons
    assert any(x["reason"] == "dissatisfied" for x in discipline_for(r, user_a))
    # B's list holds B's own flags (a repeat report at the same place) and none of A's.
    theirs = discipline_for(r, user_b)
    assert theirs and all(x["code"].startswith(b.code) for x in theirs)
    assert {x["order_id"] for x in theirs}.isdisjoint(
        {x["order_id"] for x in discipline_for(r, user_a)}
    )


def test_grid_user_scope_uses_the_orders_own_code(r: redis.Redis) -> None:
    a, _b = sibling_towns()
    city = load_city()
    grids = city.units_at(Level.GRID, within=a.code)[:2]
    other = Town(a.county, a.code, grids[1].code, *grids[1].center)
    closed(r, a, "g1")
    closed(r, other, "g2")
    grid_user = Scope(user="g", jurisdiction=a.grid, role="grid")
    df = scoped_orders(r, grid_user)
    assert len(df) == 1 and df["code"].iloc[0].startswith(a.grid)
    assert len(scoped_orders(r, Scope(user="t", jurisdiction=a.code))) == 2


def test_archived_orders_count_and_stay_scoped(r: redis.Redis) -> None:
    s = seed(r)
    a, b, as_of = s.a, s.b, s.as_of
    before = assessment_for(r, Scope(user="a", jurisdiction=a.code), "dept", as_of_ms=as_of)
    moved = archive_closed(r, older_than_days=1, now=as_of + 2 * DAY)
    assert moved == 5  # every closed order; the overdue one stays live
    after = assessment_for(r, Scope(user="a", jurisdiction=a.code), "dept", as_of_ms=as_of)
    assert after["received"].to_dict() == before["received"].to_dict() == {"城管局": 3, "水务局": 1}
    b_only = assessment_for(r, Scope(user="b", jurisdiction=b.code), "dept", as_of_ms=as_of)
    assert b_only["received"].to_dict() == {"城管局": 2}
    # A grid user below the township reads the archived order's own code.
    grid_user = Scope(user="g", jurisdiction=b.grid)
    assert len(scoped_orders(r, grid_user)) == 2


def test_bad_grouping_is_refused(r: redis.Redis) -> None:
    with pytest.raises(ValueError, match="assessment by 'street'"):
        assessment_for(r, Scope(user="x"), "street")
