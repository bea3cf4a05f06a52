"""The read layer: one-way visibility for lists, single reads, markers, counts and the mode."""

from __future__ import annotations

import pytest
import redis

from access.reads import (
    counts,
    current_mode,
    device_markers,
    get_alarm,
    get_order,
    list_alarms,
    list_orders,
)
from access.scope import Scope
from alarms.dead import write_dead
from alarms.service import process_reading
from core.keys import keys
from core.models import Reading, Report
from core.timeutil import now_ms
from devices.registry import Device, register_device
from grids.codes import Level
from grids.dataset import load_city
from modes.service import set_mode
from workorders.service import create_from_report

CITY = Scope(user="city")


@pytest.fixture
def towns() -> list[tuple[str, float, float]]:
    """Two townships of different districts with a point inside each."""
    city = load_city()
    out = []
    for county in ("410102", "410105"):
        town = city.units_at(Level.TOWNSHIP, within=county)[0]
        lon, lat = city.units_at(Level.GRID, within=town.code)[0].center
        out.append((town.code, lon, lat))
    return out


def _order(r: redis.Redis, lon: float, lat: float, rid: str):
    return create_from_report(r, Report(text="占道经营影响通行", lon=lon, lat=lat), report_id=rid)


def test_township_scope_sees_only_its_own_orders(
    r: redis.Redis, towns: list[tuple[str, float, float]]
) -> None:
    (ta, la, pa), (tb, lb, pb) = towns
    oa = _order(r, la, pa, "A")
    ob = _order(r, lb, pb, "B")
    outside = _order(r, 116.4, 39.9, "OUT")
    sa = Scope(user="a", jurisdiction=ta, role="township")
    assert [o.id for o in list_orders(r, sa)] == [oa.id]
    assert get_order(r, sa, oa.id) == oa
    # Another township's order is answered exactly like a missing one.
    assert get_order(r, sa, ob.id) is None
    assert get_order(r, sa, "GD19990101-000000") is None
    assert get_order(r, sa, outside.id) is None
    # The county above township A sees A, not B; the city sees all, newest first.
    county = Scope(user="c", jurisdiction=ta[:6], role="county")
    assert [o.id for o in list_orders(r, county)] == [oa.id]
    assert [o.id for o in list_orders(r, CITY)] == [outside.id, ob.id, oa.id]
    assert len(list_orders(r, CITY, limit=2)) == 2
    # Nor may a lower level see upward: a grid scope inside township A sees only its grid.
    grid_scope = Scope(user="g", jurisdiction=oa.place.grid or "", role="grid")
    assert [o.id for o in list_orders(r, grid_scope)] == [oa.id]
    other_grid = Scope(user="g2", jurisdiction=ta + "999", role="village")
    assert list_orders(r, other_grid) == []


def test_alarms_markers_and_counts_follow_the_scope(
    r: redis.Redis, towns: list[tuple[str, float, float]]
) -> None:
    (ta, la, pa), (tb, lb, pb) = towns
    for i, (lon, lat) in enumerate(((la, pa), (lb, pb))):
        register_device(
            r,
            Device(
                id=f"gas-{i}", name=f"燃气井{i}", type="gas", profile="gas_z2m", lon=lon, lat=lat
            ),
        )
    register_device(r, Device(id="gas-silent", type="gas", profile="gas_z2m", lon=la, lat=pa))
    ts = now_ms()
    for i, v in enumerate((60.0, 12.0)):
        process_reading(
            r,
            Reading(
                device_id=f"gas-{i}",
                ts_ms=ts,
                received_ms=ts,
                metrics={"ch4_lel": v},
                msg_id=f"m{i}",
                topic="t",
            ),
        )
    write_dead(r, source="mqtt", reason="bad_json", raw=b"{")

    sa = Scope(user="a", jurisdiction=ta)
    alarms_a = list_alarms(r, sa)
    assert [a.device_id for a in alarms_a] == ["gas-0"] and alarms_a[0].severity.value == "red"
    assert len(list_alarms(r, CITY)) == 2
    other = (
        list_alarms(r, CITY)[0]
        if list_alarms(r, CITY)[0].device_id == "gas-1"
        else list_alarms(r, CITY)[1]
    )
    assert get_alarm(r, sa, other.id) is None and get_alarm(r, sa, alarms_a[0].id) is not None

    markers = {m["id"]: m for m in device_markers(r, sa)}
    assert set(markers) == {"gas-0", "gas-silent"}
    assert markers["gas-0"]["severity"] == "red" and markers["gas-0"]["status"] == "online"
    assert markers["gas-0"]["values"] == {"ch4_lel": 60.0}
    assert (
        markers["gas-silent"]["status"] == "offline" and markers["gas-silent"]["severity"] is None
    )
    assert markers["gas-0"]["lon"] == pytest.approx(la)

    ca = counts(r, sa)
    assert ca["alarms_open"] == {"red": 1, "orange": 0, "yellow": 0, "blue": 0}
    assert ca["orders_open"] == 1 and ca["orders_overdue"] == 0
    assert ca["devices_online"] == 1 and ca["devices_offline"] == 1
    assert ca["dead_letters"] is None  # no place on a dead letter: city level only
    cc = counts(r, CITY)
    assert cc["alarms_open"]["blue"] == 1 and cc["alarms_open_total"] == 2
    assert cc["orders_open"] == 1 and cc["dead_letters"] == 1 and cc["devices_online"] == 2


def test_overdue_orders_are_counted(r: redis.Redis, towns: list[tuple[str, float, float]]) -> None:
    (ta, la, pa), _ = towns
    o = _order(r, la, pa, "late")
    o.deadline_ms = now_ms() - 1
    r.set(keys().order(o.id), o.model_dump_json())
    assert counts(r, Scope(user="a", jurisdiction=ta))["orders_overdue"] == 1


def test_current_mode_is_the_mode_in_force_at_the_users_node(
    r: redis.Redis, towns: list[tuple[str, float, float]]
) -> None:
    (ta, _, _), (tb, _, _) = towns
    set_mode(r, ta[:6], "major_task", "重大活动", by="duty")
    assert current_mode(r, Scope(user="a", jurisdiction=ta)).mode.value == "major_task"
    assert current_mode(r, Scope(user="b", jurisdiction=tb)).mode.value == "daily"
    assert current_mode(r, CITY).mode.value == "daily"
