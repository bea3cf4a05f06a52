"""Many sensors at one place: their alarms open one work order, on the real Redis."""

from __future__ import annotations

import threading

import redis

from alarms.service import get_alarm, order_for_alarm, process_reading
from core.keys import keys
from core.models import Alarm, Reading, WorkOrder
from core.timeutil import now_ms
from devices.registry import Device, register_device
from workorders.service import get_order, transition

JINSHUI = (113.6655, 34.7736)
DEG_PER_50M = 50 / 111_320  # latitude degrees


def _gas(r: redis.Redis, device_id: str, north_m: float, east_m: float = 0.0) -> Device:
    lat = JINSHUI[1] + north_m / 111_320
    lon = JINSHUI[0] + east_m / (111_320 * 0.822)  # cos(34.77°)
    return register_device(r, Device(id=device_id, type="gas", profile="gas_z2m", lon=lon, lat=lat))


def _cross(r: redis.Redis, device_id: str, value: float = 30.0, metric: str = "ch4_lel") -> Alarm:
    ts = now_ms() - 1_000
    reading = Reading(
        device_id=device_id,
        ts_ms=ts,
        received_ms=ts,
        metrics={metric: value},
        msg_id=f"{device_id}:{ts}",
        topic="t",
    )
    (alarm,) = process_reading(r, reading)
    return alarm


def _orders(r: redis.Redis) -> list[WorkOrder]:
    ids = [i.decode() for i in r.zrange(keys().orders_all, 0, -1)]
    return [o for o in (get_order(r, i) for i in ids) if o is not None]


def test_three_gas_sensors_50_m_apart_open_one_order(r: redis.Redis) -> None:
    for n in range(3):
        _gas(r, f"gas-{n}", north_m=50 * n)
    alarms = [_cross(r, f"gas-{n}") for n in range(3)]
    assert len({a.id for a in alarms}) == 3 and r.zcard(keys().alarms_open) == 3
    (order,) = _orders(r)
    assert order.alarm_id == alarms[0].id
    assert order.alarm_ids == [a.id for a in alarms]
    joined = [h for h in order.history if h["action"] == "alarm_joined"]
    assert [h["device_id"] for h in joined] == ["gas-1", "gas-2"]
    assert 45 < joined[0]["distance_m"] < 55 and 95 < joined[1]["distance_m"] < 105
    for a in alarms:
        stored = get_alarm(r, a.id)
        assert stored is not None and stored.order_id == order.id
    assert get_alarm(r, alarms[1].id).history[-1]["action"] == "order_joined"  # type: ignore[union-attr]
    # Handling the same alarm again (a redelivered entry) changes nothing.
    again = order_for_alarm(r, alarms[2])
    assert again.id == order.id and len(again.history) == len(order.history)


def test_far_sensor_other_type_and_closed_orders_get_their_own(r: redis.Redis) -> None:
    _gas(r, "near-0", 0)
    _gas(r, "near-1", 60)
    _gas(r, "far", 0, east_m=1_000)
    register_device(
        r,
        Device(id="br-0", type="bridge", profile="bridge_json", lon=JINSHUI[0], lat=JINSHUI[1]),
    )
    first = _cross(r, "near-0")
    far = _cross(r, "far")
    wp = _cross(r, "br-0", 60.0, "displacement_mm")  # red, another type at the same place
    assert len({get_alarm(r, a.id).order_id for a in (first, far, wp)}) == 3  # type: ignore[union-attr]
    # The first order is rejected: the next alarm near it opens a new one.
    transition(r, first.order_id or "", "rejected", by="duty-1", reason="误报：通风检修")
    nxt = _cross(r, "near-1")
    assert nxt.order_id not in (None, first.order_id)
    assert len(_orders(r)) == 4


def test_an_order_older_than_the_window_is_not_joined(r: redis.Redis) -> None:
    _gas(r, "old-0", 0)
    _gas(r, "old-1", 40)
    first = _cross(r, "old-0")
    order = get_order(r, first.order_id or "")
    assert order is not None
    # The gas window is 3600 s: an order opened two hours ago stands alone.
    aged = order.model_copy(update={"created_ms": now_ms() - 7_200_000})
    r.set(keys().order(order.id), aged.model_dump_json())
    second = _cross(r, "old-1")
    assert second.order_id != first.order_id
    assert order.id not in {m.decode() for m in r.zrange(keys().alarm_order_geo("gas"), 0, -1)}


def test_neighbours_crossing_at_the_same_moment_still_open_one_order(r: redis.Redis) -> None:
    for n in range(6):
        _gas(r, f"sim-{n}", north_m=20 * n)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        barrier.wait()
        try:
            _cross(r, f"sim-{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    (order,) = _orders(r)
    assert sorted(order.alarm_ids) == sorted(
        i.decode() for i in r.zrange(keys().alarms_open, 0, -1)
    )
    assert len(order.alarm_ids) == 6
