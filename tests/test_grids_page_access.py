"""The grid map's reads (access.grids) on the real Redis: counts per child, scope, export."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import redis
import shapely
from shapely.geometry import shape

from access import grids as ag
from access.scope import Scope, demo_scope
from alarms.rules import Threshold
from alarms.service import DeviceInfo, close, process_reading
from core.keys import keys
from core.models import Place, Reading, Report, Severity
from core.timeutil import now_ms
from devices.registry import Device, register_device
from grids.codes import Level
from grids.dataset import UnitNotFound, load_city
from grids.locate import locator
from workorders.service import create_from_report

R, OR, Y, B = Severity.RED, Severity.ORANGE, Severity.YELLOW, Severity.BLUE
GAS = Threshold(
    "ch4_lel",
    "high",
    {B: 10, Y: 20, OR: 25, R: 50},
    hysteresis=2,
    unit="%LEL",
    label="甲烷浓度",
    device_type="gas",
    normal=(0, 5),
)
COUNTY = "410105"


@dataclass
class Setup:
    county: str
    t1: str
    t2: str
    g1a: str  # two open orders, one online device
    g1b: str  # one open alarm, one offline device (in another village of t1)
    g2: str  # one open order, one offline device
    alarm_id: str


def _place(grid: str) -> Place:
    place = locator().locate(*load_city().unit(grid).center)
    assert place.grid == grid
    return place


def _report(grid: str, text: str, category: str) -> Report:
    lon, lat = load_city().unit(grid).center
    return Report.model_validate({"text": text, "lon": lon, "lat": lat, "category": category})


def _device(dev_id: str, grid: str) -> Device:
    lon, lat = load_city().unit(grid).center
    return Device.model_validate(
        {"id": dev_id, "type": "gas", "profile": "gas_z2m", "lon": lon, "lat": lat}
    )


@pytest.fixture
def world(r: redis.Redis) -> Setup:
    city = load_city()
    t1, t2 = (u.code for u in city.children(COUNTY)[:2])
    v1a, v1b = (u.code for u in city.children(t1)[:2])
    g1a = city.children(v1a)[0].code
    g1b = city.children(v1b)[0].code
    g2 = city.units_at(Level.GRID, within=t2)[0].code

    create_from_report(
        r, _report(g1a, "小区门口井盖缺失，夜间有跌落风险", "城乡建设"), report_id="A1"
    )
    create_from_report(r, _report(g1a, "楼下餐馆油烟直排扰民", "生态环境"), report_id="A2")
    create_from_report(r, _report(g2, "路灯连续三晚不亮", "城乡建设"), report_id="B1")

    dev = DeviceInfo(id="gas-map-1", name="燃气井", type="gas", place=_place(g1b))
    ts = now_ms() - 1000
    reading = Reading(
        device_id=dev.id,
        ts_ms=ts,
        received_ms=ts + 5,
        metrics={"ch4_lel": 21.0},
        msg_id="m1",
        topic="t",
    )
    (alarm,) = process_reading(r, reading, device=dev, thresholds=[GAS], order_hook=None)

    register_device(r, _device("dev-g1a", g1a))
    register_device(r, _device("dev-g1b", g1b))
    register_device(r, _device("dev-g2", g2))
    # Only the device in g1a has reported lately; the others never did, so they are offline.
    r.hset(keys().device_state("dev-g1a"), mapping={"last_seen_ms": str(now_ms())})
    return Setup(COUNTY, t1, t2, g1a, g1b, g2, alarm.id)


def _fig(orders: int, alarms: int, offline: int) -> dict[str, int]:
    return {"orders_open": orders, "alarms_open": alarms, "devices_offline": offline}


def test_counts_per_child_at_every_level(r: redis.Redis, world: Setup) -> None:
    city_scope = demo_scope()
    at_city = ag.child_counts(r, city_scope, "4101")
    assert at_city.level == "county" and len(at_city.children) == 15
    assert at_city.children[world.county] == _fig(3, 1, 2)
    assert at_city.total == _fig(3, 1, 2)
    assert all(v == _fig(0, 0, 0) for k, v in at_city.children.items() if k != world.county)

    at_county = ag.child_counts(r, city_scope, world.county)
    assert at_county.level == "township"
    assert at_county.children[world.t1] == _fig(2, 1, 1)
    assert at_county.children[world.t2] == _fig(1, 0, 1)

    at_town = ag.child_counts(r, city_scope, world.t1)
    assert at_town.children[world.g1a[:12]] == _fig(2, 0, 0)
    assert at_town.children[world.g1b[:12]] == _fig(0, 1, 1)
    assert at_town.total == _fig(2, 1, 1)

    # Every grid of the county at once: the figures land on the grids themselves.
    all_grids = ag.child_counts(r, city_scope, world.county, all_grids=True)
    assert all_grids.level == "grid"
    assert len(all_grids.children) == len(load_city().units_at(Level.GRID, within=world.county))
    assert all_grids.children[world.g1a] == _fig(2, 0, 0)
    assert all_grids.children[world.g1b] == _fig(0, 1, 1)
    assert all_grids.children[world.g2] == _fig(1, 0, 1)

    # A grid has nothing below it on the map: it draws, and counts, itself.
    at_grid = ag.child_counts(r, city_scope, world.g1a)
    assert at_grid.children == {world.g1a: _fig(2, 0, 0)}

    # A closed alarm is no longer open on the map.
    close(r, world.alarm_id, by="值班员", reason="现场核实为误报")
    assert ag.child_counts(r, city_scope, world.t1).children[world.g1b[:12]] == _fig(0, 0, 1)


def test_a_township_user_drills_only_within_their_township(r: redis.Redis, world: Setup) -> None:
    town = Scope(user="street-1", jurisdiction=world.t1, role="township_officer")
    assert ag.root_unit(town).code == world.t1
    assert ag.child_counts(r, town, world.t1).total == _fig(2, 1, 1)
    assert [u.code for u in ag.breadcrumbs(town, world.g1a)] == [
        world.t1,
        world.g1a[:12],
        world.g1a,
    ]
    for code in (world.t2, world.g2, world.county, "4101"):
        with pytest.raises(ag.OutOfScope):
            ag.child_counts(r, town, code)
        with pytest.raises(ag.OutOfScope):
            ag.export_geojson(town, code)
    with pytest.raises(ag.OutOfScope):
        ag.grid_staff(r, town, world.g2)
    with pytest.raises(ag.OutOfScope):
        ag.unit_elements(r, town, world.t2)
    # Markers outside the township never reach its user.
    assert {m["id"] for m in ag.device_markers(r, town, world.t1)} == {"dev-g1a", "dev-g1b"}
    # A bad or unknown code is told apart from one out of scope.
    with pytest.raises(UnitNotFound):
        ag.child_counts(r, town, world.t1[:6] + "999")
    with pytest.raises(ValueError, match="digits|length|code"):
        ag.child_counts(r, town, "41x1")


def test_grid_staff_and_elements_come_masked_and_live(r: redis.Redis, world: Setup) -> None:
    staff = ag.grid_staff(r, demo_scope(), world.g1a)
    assert {p["role"] for p in staff} >= {"grid_chief", "grid_member", "liaison"}
    for p in staff:
        assert "*" in p["name"] and len(p["name"]) >= 2
        assert p["phone"][:3].isdigit() and "****" in p["phone"] and p["phone"][-4:].isdigit()
    with pytest.raises(ValueError, match="grid"):
        ag.grid_staff(r, demo_scope(), world.t1)
    el = ag.unit_elements(r, demo_scope(), world.t1)
    assert el["events"]["open_orders"] == 2
    assert el["things"]["devices"] == 2 and el["things"]["devices_offline"] == 1


def test_export_is_geojson_of_the_drawn_level(world: Setup) -> None:
    city = load_city()
    fc = json.loads(json.dumps(ag.export_geojson(demo_scope(), world.t1), ensure_ascii=False))
    assert fc["type"] == "FeatureCollection"
    villages = city.children(world.t1)
    assert [f["properties"]["code"] for f in fc["features"]] == [u.code for u in villages]
    for f, u in zip(fc["features"], villages, strict=True):
        assert f["type"] == "Feature"
        assert set(f["properties"]) == {"code", "name", "level", "generated"}
        assert f["properties"] == {
            "code": u.code,
            "name": u.name,
            "level": "village",
            "generated": True,
        }
        geom = shape(f["geometry"])
        assert geom.geom_type in ("Polygon", "MultiPolygon") and geom.is_valid
        # The export keeps the stored geometry: no simplification.
        assert shapely.equals_exact(geom, u.geometry, tolerance=1e-12)
    grids = ag.export_geojson(demo_scope(), world.county, all_grids=True)
    assert len(grids["features"]) == len(city.units_at(Level.GRID, within=world.county))
    assert {f["properties"]["level"] for f in grids["features"]} == {"grid"}


def test_map_geometry_is_simplified_and_rounded_per_level(world: Setup) -> None:
    city = load_city()
    fc = ag.boundaries(demo_scope(), "4101")
    assert len(fc["features"]) == 15
    county = city.unit(world.county)
    drawn = shape(fc["features"][[f["id"] for f in fc["features"]].index(world.county)]["geometry"])
    exact = shapely.get_num_coordinates(county.geometry)
    assert shapely.get_num_coordinates(drawn) < exact
    # Simplified, but still the same place: the outlines overlap almost entirely.
    assert drawn.intersection(county.geometry).area / county.geometry.area > 0.98
    ring = fc["features"][0]["geometry"]["coordinates"][0]
    while isinstance(ring[0], list):
        ring = ring[0]
    assert all(round(x, ag.MAP_DIGITS) == x for x in ring)
