"""Device registry on the real Redis."""

from __future__ import annotations

import importlib.util
import time

import pytest
import redis

from core.keys import keys
from devices.registry import (
    Device,
    DeviceStatus,
    RegistryError,
    TopicCache,
    get_device,
    list_devices,
    register_device,
    unregister_device,
)
from ingest.simulator import CITY_BBOX, PLAN, demo_devices, register_demo_devices

HAVE_GRIDS = importlib.util.find_spec("grids.locate") is not None


def _gas(dev_id: str = "gas-001", **kw: object) -> Device:
    return Device.model_validate(
        {"id": dev_id, "type": "gas", "profile": "gas_z2m", "lon": 113.65, "lat": 34.76, **kw}
    )


def test_register_get_list_and_topic(r: redis.Redis) -> None:
    dev = register_device(r, _gas(name="东风路燃气井"))
    assert dev.topic == "zigbee2mqtt/gas-001" and dev.status == DeviceStatus.REGISTERED
    assert r.sismember(keys().devices, "gas-001")
    assert r.hget(keys().topic_index, "zigbee2mqtt/gas-001") == b"gas-001"
    stored = get_device(r, "gas-001")
    assert stored == dev and stored.name == "东风路燃气井"
    if HAVE_GRIDS:
        assert stored.place is not None and stored.place.inside_city
        assert stored.place.grid and stored.place.grid.startswith("4101")
    register_device(r, _gas("gas-002"))
    assert [d.id for d in list_devices(r)] == ["gas-001", "gas-002"]
    assert list_devices(r, "bridge") == []
    assert unregister_device(r, "gas-002") and get_device(r, "gas-002") is None
    assert r.hget(keys().topic_index, "zigbee2mqtt/gas-002") is None


def test_refusals_say_why(r: redis.Redis) -> None:
    register_device(r, _gas())
    with pytest.raises(RegistryError, match="already registered"):
        register_device(r, _gas())
    with pytest.raises(RegistryError, match="already belongs to device gas-001"):
        register_device(r, _gas("gas-009", topic="zigbee2mqtt/gas-001"))
    with pytest.raises(RegistryError, match="unknown device type"):
        register_device(r, _gas("x1", type="elevator"))
    with pytest.raises(RegistryError, match="unknown profile"):
        register_device(r, _gas("x2", profile="modbus"))
    with pytest.raises(RegistryError, match="decodes heating devices"):
        register_device(r, _gas("x3", profile="heating_tasmota"))
    with pytest.raises(RegistryError, match="wildcards"):
        register_device(r, _gas("x4", topic="zigbee2mqtt/#"))
    with pytest.raises(ValueError, match="device id"):
        _gas("bad id/with slash")


@pytest.mark.skipif(not HAVE_GRIDS, reason="grids.locate not available")
def test_point_outside_the_city_is_refused(r: redis.Redis) -> None:
    with pytest.raises(RegistryError, match="outside the city"):
        register_device(r, _gas("far", lon=34.76, lat=113.65 - 90))  # swapped-looking point
    with pytest.raises(RegistryError, match="outside the city"):
        register_device(r, _gas("beijing", lon=116.40, lat=39.90))
    dev = register_device(r, _gas("beijing", lon=116.40, lat=39.90), allow_outside=True)
    assert dev.place is not None and not dev.place.inside_city


def test_replace_moves_the_topic(r: redis.Redis) -> None:
    register_device(r, _gas())
    register_device(r, _gas(topic="zigbee2mqtt/well-7"), replace=True)
    assert r.hget(keys().topic_index, "zigbee2mqtt/gas-001") is None
    assert r.hget(keys().topic_index, "zigbee2mqtt/well-7") == b"gas-001"


def test_topic_cache_sees_new_devices_at_once_and_refreshes(r: redis.Redis) -> None:
    cache = TopicCache(r, ttl_s=0.3)
    assert cache.lookup("zigbee2mqtt/gas-001") is None
    register_device(r, _gas())
    # A remembered miss lasts until the next refresh.
    time.sleep(0.35)
    found = cache.lookup("zigbee2mqtt/gas-001")
    assert found is not None and found.id == "gas-001"
    register_device(r, _gas("gas-002"))
    assert cache.lookup("zigbee2mqtt/gas-002") is not None  # never looked up: read at once


def test_demo_devices_cover_all_types_inside_the_city(r: redis.Redis) -> None:
    devices = register_demo_devices(r, 30)
    assert len(devices) == 30
    assert {d.type for d in devices} == {t for t, _ in PLAN}
    assert {d.profile_def.format for d in devices} == {
        "zigbee2mqtt",
        "tasmota",
        "senml",
        "json_map",
        "plain",
    }
    for d in devices:
        assert CITY_BBOX[0] <= d.lon <= CITY_BBOX[2] and CITY_BBOX[1] <= d.lat <= CITY_BBOX[3]
        if HAVE_GRIDS:
            assert d.place is not None and d.place.inside_city and d.place.grid
    # Seeded: the same devices every time.
    assert [(d.lon, d.lat) for d in demo_devices(30)] == [(d.lon, d.lat) for d in devices]
    assert len(list_devices(r)) == 30
