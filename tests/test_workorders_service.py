"""Work orders on the real Redis: ids, location, deadlines under modes, the status machine."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import redis

from core.keys import keys
from core.models import Channel, OrderStatus, Report
from core.timeutil import SHANGHAI, now_ms
from grids.codes import Level
from grids.coords import wgs84_to_gcj02
from grids.dataset import load_city
from modes.service import set_mode
from workorders.service import (
    HOUR_MS,
    OrderError,
    accept,
    create_from_report,
    get_order,
    list_orders,
    policy,
    transition,
)


def _town_point(prefix: str) -> tuple[str, float, float]:
    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith(prefix))
    lon, lat = city.units_at(Level.GRID, within=town.code)[0].center
    return town.code, lon, lat


def _report(lon: float, lat: float, **kw: object) -> Report:
    data = {
        "text": "小区门口井盖缺失，夜间有行人跌落风险",
        "lon": lon,
        "lat": lat,
        "category": "城乡建设",
    }
    data.update(kw)
    return Report.model_validate(data)


def test_report_becomes_an_order_in_its_township(r: redis.Redis) -> None:
    town, lon, lat = _town_point("410102")
    order = create_from_report(r, _report(lon, lat), report_id="RP1")
    assert re.fullmatch(r"GD\d{8}-\d{6}", order.id)
    assert order.id[2:10] == datetime.now(SHANGHAI).strftime("%Y%m%d")
    assert order.place.township == town and order.place.inside_city
    assert order.status == OrderStatus.ACCEPTING and order.channel == Channel.HOTLINE
    assert order.history[0]["action"] == "created"
    stored = get_order(r, order.id)
    assert stored == order
    assert r.zscore(keys().orders_open, order.id) == order.created_ms
    # Time limit of 城乡建设 at priority 3, daily mode.
    hours = policy().limit_hours("城乡建设", 3)
    assert order.deadline_ms - order.created_ms == int(hours * HOUR_MS)


def test_same_report_twice_gives_one_order(r: redis.Redis) -> None:
    _, lon, lat = _town_point("410102")
    a = create_from_report(r, _report(lon, lat), report_id="RP-dup")
    b = create_from_report(r, _report(lon, lat), report_id="RP-dup")
    assert a.id == b.id and r.zcard(keys().orders_all) == 1


def test_ids_count_up(r: redis.Redis) -> None:
    _, lon, lat = _town_point("410102")
    ids = [create_from_report(r, _report(lon, lat), report_id=f"RP{i}").id for i in range(3)]
    assert [int(i[-6:]) for i in ids] == [1, 2, 3]


def test_gcj02_input_is_converted(r: redis.Redis) -> None:
    town, lon, lat = _town_point("410105")
    glon, glat = wgs84_to_gcj02(lon, lat)
    order = create_from_report(r, _report(glon, glat, crs="gcj02"), report_id="RP-g")
    assert order.place.lon == pytest.approx(lon, abs=1e-5)
    assert order.place.lat == pytest.approx(lat, abs=1e-5)
    assert order.place.township == town
    assert any("GCJ-02" in h.get("note", "") for h in order.history)


def test_outside_city_is_stored_flagged_for_city_level(r: redis.Redis) -> None:
    order = create_from_report(r, _report(116.397, 39.909), report_id="RP-bj")
    assert not order.place.inside_city and order.place.code == ""
    assert any("outside the city" in h.get("note", "") for h in order.history)


def test_emergency_mode_shortens_the_deadline(r: redis.Redis) -> None:
    _, lon, lat = _town_point("410102")
    daily = create_from_report(r, _report(lon, lat), report_id="RP-a")
    set_mode(r, "410102", "emergency", "防汛应急响应", by="duty")
    urgent = create_from_report(r, _report(lon, lat), report_id="RP-b")
    assert (urgent.deadline_ms - urgent.created_ms) == pytest.approx(
        (daily.deadline_ms - daily.created_ms) * 0.25, abs=2
    )


def test_status_machine_allows_the_loop_and_refuses_illegal_moves(r: redis.Redis) -> None:
    _, lon, lat = _town_point("410102")
    order = create_from_report(r, _report(lon, lat), report_id="RP-s")
    with pytest.raises(OrderError, match="cannot move to closed"):
        transition(r, order.id, OrderStatus.CLOSED, by="op")
    with pytest.raises(OrderError, match="unknown status"):
        transition(r, order.id, "done", by="op")
    with pytest.raises(OrderError, match="reason"):
        transition(r, order.id, OrderStatus.REJECTED, by="op")
    o = accept(r, order.id, by="op-1", note="核实属实")
    assert o.status == OrderStatus.ASSIGNED
    for to in ("handling", "feedback", "checking", "closed"):
        o = transition(r, order.id, to, by="op-2")
    assert o.status == OrderStatus.CLOSED
    assert [h.get("to") for h in o.history] == [
        "accepting",
        "assigned",
        "handling",
        "feedback",
        "checking",
        "closed",
    ]
    assert all(h["by"] and h["ts_ms"] <= now_ms() for h in o.history)
    assert r.zscore(keys().orders_open, order.id) is None
    assert list_orders(r) == [] and [x.id for x in list_orders(r, open_only=False)] == [order.id]
    with pytest.raises(OrderError, match=r"allowed: none \(final\)"):
        transition(r, order.id, OrderStatus.HANDLING, by="op")
    with pytest.raises(OrderError, match="does not exist"):
        transition(r, "GD20000101-000000", OrderStatus.ASSIGNED, by="op")
