"""Staff per grid with classified, masked personal fields; the six elements per unit."""

from __future__ import annotations

import re

import pytest
import redis

from core.keys import keys
from core.models import Channel, OrderStatus, Place, WorkOrder
from core.timeutil import now_ms
from devices.registry import Device, DeviceStatus, register_device, set_status
from grids.codes import Level
from grids.dataset import City, load_city
from grids.elements import ELEMENTS, KEY_GROUPS, REGISTER_FIELD_CLASSES, elements_summary, register
from grids.people import (
    FIELD_CLASSES,
    FORCES,
    DataClass,
    Person,
    Role,
    generated_staff,
    mask,
    mask_record,
    set_on_duty,
    staff_of,
    staff_within,
)


@pytest.fixture(scope="module")
def city() -> City:
    return load_city()


def test_every_grid_has_its_full_roster(city: City) -> None:
    grids = city.units_at(Level.GRID)
    phones: set[str] = set()
    for g in grids:
        staff = generated_staff(g.code)
        roles = [p.role for p in staff]
        assert roles.count(Role.GRID_CHIEF) == 1
        assert roles.count(Role.GRID_MEMBER) >= 1
        assert roles.count(Role.MICRO_GRID_CHIEF) >= 1
        assert {p.force for p in staff if p.role is Role.LIAISON} == set(FORCES)
        for p in staff:
            assert p.grid == g.code and p.generated
            assert re.fullmatch(r"10\d{9}", p.phone)  # no real mobile starts with 10
            assert 2 <= len(p.name) <= 3
            phones.add(p.phone)
    per_grid = len(generated_staff(grids[0].code))
    assert len(phones) == per_grid * len(grids)  # every number unique across the city
    assert generated_staff(grids[7].code) == generated_staff(grids[7].code)  # same every run
    assert {p.force for p in generated_staff(grids[0].code)} >= {
        "police",
        "fire",
        "emergency",
        "urban_management",
        "market_supervision",
    }
    town = city.units_at(Level.TOWNSHIP)[0]
    assert len(staff_within(town.code, city)) == per_grid * len(
        city.units_at(Level.GRID, within=town.code)
    )
    with pytest.raises(ValueError, match="township"):
        generated_staff(town.code)


def test_personal_fields_are_classified_and_masked(city: City) -> None:
    assert set(Person.model_fields) <= set(FIELD_CLASSES)
    assert FIELD_CLASSES["name"] is DataClass.PERSONAL
    assert FIELD_CLASSES["phone"] is DataClass.PERSONAL
    assert FIELD_CLASSES["role"] is DataClass.PUBLIC
    assert mask("13812341234", "personal") == "138****1234"
    assert mask("张三", DataClass.PERSONAL) == "张*"
    assert mask("欧阳娜娜", DataClass.PERSONAL) == "欧***"
    assert mask("410105199001011234", DataClass.SENSITIVE) == "******"
    assert mask("网格长", DataClass.PUBLIC) == "网格长"
    for p in generated_staff(city.units_at(Level.GRID)[3].code):
        shown = mask_record(p.model_dump())
        assert shown["name"] != p.name and shown["name"][0] == p.name[0]
        assert shown["phone"] == p.phone[:3] + "****" + p.phone[-4:]
        assert shown["role"] == p.role and shown["grid"] == p.grid
        full = mask_record(p.model_dump(), cleared=set(DataClass))
        assert full == p.model_dump()
    # A field nobody classified is treated as personal, never shown by accident.
    assert mask_record({"nickname": "小明"})["nickname"] == "小*"


def test_on_duty_state_lives_in_redis(r: redis.Redis, city: City) -> None:
    grid = city.units_at(Level.GRID)[11].code
    chief = staff_of(grid, r)[0]
    assert chief.role is Role.GRID_CHIEF and chief.duty_since_ms is None
    set_on_duty(r, chief.id, False, by="duty-officer")
    got = staff_of(grid, r)[0]
    assert got.on_duty is False and got.duty_since_ms is not None
    set_on_duty(r, chief.id, True)
    assert staff_of(grid, r)[0].on_duty is True
    assert r.hexists(keys().staff_duty, chief.id)
    with pytest.raises(ValueError, match="no grid staff"):
        set_on_duty(r, grid + "-99", True)


def _order(oid: str, grid: str, channel: Channel, category: str, status: OrderStatus) -> WorkOrder:
    t = now_ms()
    return WorkOrder(
        id=oid,
        channel=channel,
        category=category,
        title=category,
        status=status,
        created_ms=t,
        updated_ms=t,
        deadline_ms=t + 3_600_000,
        place=Place(
            lon=113.6,
            lat=34.7,
            county=grid[:6],
            township=grid[:9],
            village=grid[:12],
            grid=grid,
        ),
    )


def _save(r: redis.Redis, order: WorkOrder) -> None:
    # Written the way the order service stores orders.
    k = keys()
    r.set(k.order(order.id), order.model_dump_json())
    r.zadd(k.orders_all, {order.id: order.created_ms})
    if order.status is not OrderStatus.CLOSED:
        r.zadd(k.orders_open, {order.id: order.created_ms})


def test_elements_summary_adds_up_from_grid_to_township(r: redis.Redis, city: City) -> None:
    town = next(t for t in city.units_at(Level.TOWNSHIP) if t.name.endswith("街道"))
    grids = city.units_at(Level.GRID, within=town.code)
    g1, g2 = grids[0].code, grids[-1].code
    other_town_grid = city.units_at(Level.GRID)[-1].code
    _save(r, _order("GD-1", g1, Channel.HOTLINE, "市容环境", OrderStatus.HANDLING))
    _save(r, _order("GD-2", g1, Channel.SENSOR, "燃气", OrderStatus.ASSIGNED))
    _save(r, _order("GD-3", g2, Channel.APP, "市容环境", OrderStatus.CLOSED))
    _save(r, _order("GD-4", other_town_grid, Channel.HOTLINE, "噪声", OrderStatus.HANDLING))
    x, y = grids[0].center
    register_device(r, Device(id="gas-el-1", type="gas", profile="gas_z2m", lon=x, lat=y))
    register_device(r, Device(id="gas-el-2", type="gas", profile="gas_z2m", lon=x, lat=y))
    set_status(r, "gas-el-2", DeviceStatus.OFFLINE)

    s1 = elements_summary(g1, r, city=city)
    st = elements_summary(town.code, r, city=city)
    assert set(ELEMENTS) <= set(st)
    assert s1["grids"] == 1 and st["grids"] == len(grids)
    assert s1["events"]["open_orders"] == 2 and st["events"]["open_orders"] == 2
    assert st["events"]["open_by_category"] == {"市容环境": 1, "燃气": 1}
    # Sentiment counts what people reported (hotline, app), open or closed.
    assert s1["sentiment"]["reports"] == 1 and st["sentiment"]["reports"] == 2
    assert st["sentiment"]["hot_topics"][0] == {"category": "市容环境", "count": 2}
    assert s1["things"]["devices"] == 2 and s1["things"]["devices_offline"] == 1
    assert st["things"]["devices"] == 2
    assert elements_summary(g2, r, city=city)["things"]["devices"] == 0

    per_grid = [elements_summary(g.code, city=city) for g in grids]
    for path in (
        ("people", "residents"),
        ("people", "key_groups", "elderly_alone"),
        ("places", "buildings"),
        ("organisations", "enterprises"),
    ):

        def get(d: dict, p: tuple[str, ...] = path) -> int:
            for k in p:
                d = d[k]
            return int(d)  # type: ignore[call-overload]

        assert get(st) == sum(get(s) for s in per_grid) > 0
    assert st["things"]["facilities"]["hydrants"] == sum(
        s["things"]["facilities"]["hydrants"] for s in per_grid
    )
    county = elements_summary(town.code[:6], r, city=city)
    assert county["people"]["residents"] > st["people"]["residents"]
    assert county["events"]["open_orders"] == 2
    assert "people" in st["generated"] and "events" not in st["generated"]
    # Without live data the live figures are unknown, not zero.
    assert elements_summary(g1, city=city)["events"]["open_orders"] is None
    assert elements_summary(g1, city=city, count_open_orders=lambda c: 7)["events"] == {
        "open_orders": 7
    }


def test_generated_registers_match_counts_and_classify_fields(city: City) -> None:
    grid = city.units_at(Level.GRID)[20].code
    counts = elements_summary(grid, city=city)
    people = register(grid, "people", city)
    assert len(people) == sum(counts["people"]["key_groups"].values())
    assert {p["group"] for p in people} <= set(KEY_GROUPS)
    assert len(register(grid, "places", city)) == counts["places"]["buildings"]
    assert len(register(grid, "organisations", city)) == sum(counts["organisations"].values())
    for rec in people + register(grid, "organisations", city):
        assert rec["generated"] is True
        assert set(rec) <= set(REGISTER_FIELD_CLASSES)
        shown = mask_record(rec, classes=REGISTER_FIELD_CLASSES)
        assert shown["phone"] == rec["phone"][:3] + "****" + rec["phone"][-4:]
    with pytest.raises(ValueError, match="live data"):
        register(grid, "events", city)
