"""Duplicate reports: same place (within 50 m) and category within the window join the open
order; each merged reporter is kept on it, so the result reaches them all."""

from __future__ import annotations

import math

import pytest
import redis

from core.keys import keys
from core.models import OrderStatus, Report, WorkOrder
from grids.codes import Level
from grids.dataset import load_city
from workorders import loop
from workorders.service import HOUR_MS, create_from_report, get_order, policy


@pytest.fixture(scope="module")
def point() -> tuple[float, float]:
    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410103"))
    lon, lat = city.units_at(Level.GRID, within=town.code)[0].center
    return lon, lat


def _east(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / (111_320 * math.cos(math.radians(point[1]))), point[1]


def _report(
    r: redis.Redis, p: tuple[float, float], rid: str, category: str = "城乡建设", **kw: str
) -> WorkOrder:
    rep = Report.model_validate(
        {
            "text": "人行道井盖缺失，夜间有人跌倒",
            "lon": p[0],
            "lat": p[1],
            "category": category,
            "merge": True,
            **kw,
        }
    )
    return create_from_report(r, rep, report_id=rid)


def test_reports_within_50_m_merge_and_keep_every_reporter(
    r: redis.Redis, point: tuple[float, float]
) -> None:
    a = _report(r, point, "R1", reporter_name="张先生", reporter_phone="13800000001")
    b = _report(r, _east(point, 30), "R2", reporter_name="王女士", reporter_phone="13800000002")
    assert b.id == a.id
    assert r.zcard(keys().orders_all) == 1
    o = get_order(r, a.id)
    assert o is not None
    assert [(x["report_id"], x["name"], x["phone"]) for x in o.reporters] == [
        ("R1", "张先生", "13800000001"),
        ("R2", "王女士", "13800000002"),
    ]
    assert o.history[-1]["action"] == "merged" and o.history[-1]["report_id"] == "R2"
    assert r.hget(keys().order_refs, "report:R2") == a.id.encode()
    # A redelivered merged report finds its order and is not recorded twice.
    again = _report(r, _east(point, 30), "R2", reporter_name="王女士")
    assert again.id == a.id and len(again.reporters) == 2


def test_farther_than_radius_other_category_or_no_category_open_new_orders(
    r: redis.Redis, point: tuple[float, float]
) -> None:
    a = _report(r, point, "A")
    far = _report(r, _east(point, 80), "B")
    other = _report(r, point, "C", category="环境保护")
    rep = Report.model_validate(
        {"text": "不知道归谁管", "lon": point[0], "lat": point[1], "merge": True}
    )
    u1 = create_from_report(r, rep, report_id="U1")
    u2 = create_from_report(r, rep, report_id="U2")
    assert len({a.id, far.id, other.id, u1.id, u2.id}) == 5


def test_outside_the_window_or_after_closure_a_new_order_opens(
    r: redis.Redis, point: tuple[float, float]
) -> None:
    a = _report(r, point, "W1")
    # Age the order past the window.
    o = get_order(r, a.id)
    assert o is not None
    o.created_ms -= int((policy().merge.window_hours + 1) * HOUR_MS)
    r.set(keys().order(o.id), o.model_dump_json())
    b = _report(r, point, "W2")
    assert b.id != a.id
    # A rejected (final) order takes no more reports.
    loop.reject(r, b.id, by="op", reason="误报")
    assert r.zscore(keys().order_geo("城乡建设"), b.id) is None
    c = _report(r, point, "W3")
    assert c.id not in (a.id, b.id) and c.status == OrderStatus.ACCEPTING


def test_direct_creation_without_merge_flag_never_merges(
    r: redis.Redis, point: tuple[float, float]
) -> None:
    rep = Report.model_validate(
        {"text": "路灯不亮", "lon": point[0], "lat": point[1], "category": "城乡建设"}
    )
    ids = {create_from_report(r, rep, report_id=f"D{i}").id for i in range(2)}
    assert len(ids) == 2
