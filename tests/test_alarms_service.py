"""Readings to alarms and work orders on the real Redis."""

from __future__ import annotations

import json

import pytest
import redis

from alarms.rules import Threshold
from alarms.service import (
    AlarmError,
    DeviceInfo,
    acknowledge,
    close,
    get_alarm,
    process_reading,
)
from core.keys import keys
from core.models import AlarmState, Place, Reading, Severity
from core.timeutil import now_ms
from grids.codes import Level
from grids.dataset import load_city
from grids.locate import locator
from modes.service import set_mode
from workorders.service import get_order

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


def _grid_place(township_prefix: str = "410105") -> Place:
    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith(township_prefix))
    grid = city.units_at(Level.GRID, within=town.code)[0]
    place = locator().locate(*grid.center)
    assert place.grid == grid.code
    return place


@pytest.fixture
def dev() -> DeviceInfo:
    return DeviceInfo(id="gas-0001", name="金水路燃气井1号", type="gas", place=_grid_place())


_seq = iter(range(1, 10_000))


def reading(value: float, device_id: str = "gas-0001", metric: str = "ch4_lel") -> Reading:
    n = next(_seq)
    ts = now_ms() - 100_000 + n * 10
    return Reading(
        device_id=device_id,
        ts_ms=ts,
        received_ms=ts + 5,
        metrics={metric: value, "temp_c": 20.0},
        msg_id=f"m{n}",
        topic="t",
    )


def _open_ids(r: redis.Redis) -> list[str]:
    return [i.decode() for i in r.zrange(keys().alarms_open, 0, -1)]


def test_repeated_readings_over_the_limit_open_one_alarm_and_one_order(
    r: redis.Redis, dev: DeviceInfo
) -> None:
    for v in (30, 31, 33, 30, 29):
        process_reading(r, reading(v), device=dev, thresholds=[GAS])
    ids = _open_ids(r)
    assert len(ids) == 1
    alarm = get_alarm(r, ids[0])
    assert alarm is not None
    assert alarm.severity == OR and alarm.state == AlarmState.RAISED and alarm.value == 29
    assert alarm.place.grid == dev.place.grid and "橙色预警" in alarm.title
    assert r.zcard(keys().orders_open) == 1 and r.zcard(keys().orders_all) == 1
    order = get_order(r, alarm.order_id or "")
    assert order is not None and order.alarm_id == alarm.id
    assert order.place.township == dev.place.township and order.priority == 2
    state = r.hgetall(keys().device_state(dev.id))
    assert state[b"severity"] == b"orange" and float(state[b"m:ch4_lel"]) == 29


def test_yellow_alarm_opens_no_order(r: redis.Redis, dev: DeviceInfo) -> None:
    process_reading(r, reading(21), device=dev, thresholds=[GAS])
    (aid,) = _open_ids(r)
    alarm = get_alarm(r, aid)
    assert alarm is not None and alarm.severity == Y and alarm.order_id is None
    assert r.zcard(keys().orders_all) == 0


def test_escalation_updates_the_open_alarm(r: redis.Redis, dev: DeviceInfo) -> None:
    process_reading(r, reading(21), device=dev, thresholds=[GAS])
    (first,) = _open_ids(r)
    process_reading(r, reading(26), device=dev, thresholds=[GAS])
    process_reading(r, reading(55), device=dev, thresholds=[GAS])
    process_reading(r, reading(30), device=dev, thresholds=[GAS])  # back to orange: keeps red
    assert _open_ids(r) == [first]
    alarm = get_alarm(r, first)
    assert alarm is not None and alarm.severity == R and alarm.threshold == 50 and alarm.value == 30
    assert [h["action"] for h in alarm.history if h["action"] == "escalated"] == [
        "escalated",
        "escalated",
    ]
    # The order opened at orange stays the one order.
    assert r.zcard(keys().orders_all) == 1
    assert r.hget(keys().device_state(dev.id), "severity") == b"red"


def test_hysteresis_clears_then_a_new_crossing_opens_a_new_alarm(
    r: redis.Redis, dev: DeviceInfo
) -> None:
    process_reading(r, reading(12), device=dev, thresholds=[GAS])
    (first,) = _open_ids(r)
    process_reading(r, reading(9), device=dev, thresholds=[GAS])
    assert _open_ids(r) == [first]  # inside, but not by the 2 %LEL margin
    process_reading(r, reading(7.5), device=dev, thresholds=[GAS])
    assert _open_ids(r) == []
    cleared = get_alarm(r, first)
    assert cleared is not None and cleared.state == AlarmState.CLEARED
    assert r.get(keys().alarm_lock(dev.id, GAS.rule)) is None
    assert r.hget(keys().device_state(dev.id), "severity") == b""
    process_reading(r, reading(11), device=dev, thresholds=[GAS])
    (second,) = _open_ids(r)
    assert second != first and r.zcard(keys().alarms_all) == 2


def test_emergency_mode_tightens_the_limits(r: redis.Redis, dev: DeviceInfo) -> None:
    assert dev.place.county
    process_reading(r, reading(9), device=dev, thresholds=[GAS])
    assert _open_ids(r) == []
    set_mode(r, dev.place.county, "emergency", "燃气管网抢修期间", by="duty-1")
    process_reading(r, reading(9), device=dev, thresholds=[GAS])
    (aid,) = _open_ids(r)
    alarm = get_alarm(r, aid)
    assert alarm is not None and alarm.severity == B and alarm.threshold < 9
    assert alarm.history[0]["mode"] == "emergency"


def test_emergency_uses_the_catalogue_limits_for_the_mode(r: redis.Redis, dev: DeviceInfo) -> None:
    set_mode(r, "4101", "emergency", "全市应急", by="duty-1")
    process_reading(r, reading(21), device=dev)  # catalogue: emergency orange from 20 %LEL
    (aid,) = _open_ids(r)
    alarm = get_alarm(r, aid)
    assert alarm is not None and alarm.severity == OR and alarm.order_id


def test_older_reading_does_not_undo_a_newer_one(r: redis.Redis, dev: DeviceInfo) -> None:
    late = reading(3)
    process_reading(r, reading(30), device=dev, thresholds=[GAS])
    process_reading(
        r, late.model_copy(update={"ts_ms": late.ts_ms - 50_000}), device=dev, thresholds=[GAS]
    )
    assert len(_open_ids(r)) == 1


def test_acknowledge_and_close(r: redis.Redis, dev: DeviceInfo) -> None:
    ps = r.pubsub()
    ps.subscribe(keys().push_channel)
    ps.get_message(timeout=1)
    process_reading(r, reading(12), device=dev, thresholds=[GAS])
    (aid,) = _open_ids(r)
    topics = set()
    while (msg := ps.get_message(timeout=0.5)) is not None:
        topics.add(json.loads(msg["data"])["topic"])
    assert {"alarm", "device"} <= topics
    ps.close()
    a = acknowledge(r, aid, by="operator-1")
    assert a.state == AlarmState.ACKNOWLEDGED and _open_ids(r) == [aid]
    with pytest.raises(AlarmError, match="cannot be acknowledged"):
        acknowledge(r, aid, by="operator-1")
    with pytest.raises(AlarmError, match="reason"):
        close(r, aid, by="operator-1", reason=" ")
    c = close(r, aid, by="operator-1", reason="误报：井盖被打开通风")
    assert c.state == AlarmState.CLOSED and _open_ids(r) == []
    assert [h["by"] for h in c.history][-2:] == ["operator-1", "operator-1"]
    with pytest.raises(AlarmError, match="does not exist"):
        acknowledge(r, "AL-none", by="x")


def test_concurrent_workers_still_open_one_alarm_and_one_order(
    r: redis.Redis, dev: DeviceInfo
) -> None:
    import threading

    readings = [reading(30 + i % 5) for i in range(40)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(part: list[Reading]) -> None:
        barrier.wait()
        try:
            for rd in part:
                process_reading(r, rd, device=dev, thresholds=[GAS])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(readings[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_open_ids(r)) == 1 and r.zcard(keys().alarms_all) == 1
    assert r.zcard(keys().orders_all) == 1
    assert len(r.keys(keys().alarm("*"))) == 1
