"""Device health on the real Redis: offline on silence and last will, commissioning, retirement."""

from __future__ import annotations

import redis

from core.keys import keys
from core.models import Reading
from core.timeutil import now_ms
from devices.health import (
    availability_topic,
    decommission,
    health_rows,
    is_alarming,
    on_availability,
    on_reading,
    sweep_offline,
)
from devices.registry import Device, DeviceStatus, get_device, register_device


def _gas(dev_id: str, **kw: object) -> Device:
    return Device.model_validate(
        {"id": dev_id, "type": "gas", "profile": "gas_z2m", "lon": 113.65, "lat": 34.76, **kw}
    )


def _reading(dev_id: str, t: int, ch4: float = 1.0) -> Reading:
    return Reading(
        device_id=dev_id,
        ts_ms=t,
        received_ms=t,
        metrics={"ch4_lel": ch4},
        msg_id=f"{dev_id}:{t}",
        topic="x",
    )


def test_commissioning_then_silence_goes_offline_on_time(r: redis.Redis) -> None:
    register_device(r, _gas("g1"))
    t0 = now_ms() - 600_000
    # Out of the normal range (0-5 %LEL): not a test reading, still waiting.
    assert on_reading(r, _reading("g1", t0, ch4=30)) is None
    assert get_device(r, "g1").status == DeviceStatus.REGISTERED  # type: ignore[union-attr]
    assert on_reading(r, _reading("g1", t0 + 60_000)) == DeviceStatus.VERIFIED
    assert on_reading(r, _reading("g1", t0 + 120_000)) == DeviceStatus.LIVE
    r.hset(keys().device_state("g1"), "last_seen_ms", t0 + 120_000)
    limit = 3 * 60_000  # gas reports every 60 s; offline after three intervals
    assert sweep_offline(r, t0 + 120_000 + limit) == []
    assert sweep_offline(r, t0 + 120_000 + limit + 1) == ["g1"]
    assert get_device(r, "g1").status == DeviceStatus.OFFLINE  # type: ignore[union-attr]
    assert r.hget(keys().device_state("g1"), "offline_reason") == b"silent"
    assert sweep_offline(r, t0 + 10 * limit) == []  # already offline: not again
    assert on_reading(r, _reading("g1", t0 + 10 * limit)) == DeviceStatus.LIVE


def test_registered_device_never_heard_is_not_offline(r: redis.Redis) -> None:
    register_device(r, _gas("g2"))
    assert sweep_offline(r, now_ms() + 86_400_000) == []


def test_last_will_marks_offline_at_once(r: redis.Redis) -> None:
    dev = register_device(r, _gas("g3"))
    r.hset(keys().device(dev.id), "status", '"live"')
    topic = availability_topic(dev.topic)
    assert topic == "zigbee2mqtt/g3/availability"
    assert on_availability(r, topic, b"online") is None
    assert on_availability(r, "zigbee2mqtt/nobody/availability", b"offline") is None
    assert on_availability(r, topic, b'{"state":"offline"}') == "g3"
    assert get_device(r, "g3").status == DeviceStatus.OFFLINE  # type: ignore[union-attr]
    assert r.hget(keys().device_state("g3"), "offline_reason") == b"last_will"
    t = register_device(
        r, Device(id="t1", type="gas", profile="gas_tasmota", lon=113.65, lat=34.76)
    )
    r.hset(keys().device(t.id), "status", '"live"')
    assert on_availability(r, "tele/t1/LWT", b"Offline") == "t1"


def test_decommissioned_keeps_record_and_stops_alarming(r: redis.Redis) -> None:
    register_device(r, _gas("g4"))
    assert is_alarming(get_device(r, "g4"))
    dev = decommission(r, "g4", "张工", "管线改造拆除")
    stored = get_device(r, "g4")
    assert stored == dev and stored.status == DeviceStatus.DECOMMISSIONED
    assert stored.decommissioned_by == "张工" and stored.decommissioned_ms
    assert not is_alarming(stored) and not is_alarming("decommissioned")
    assert r.sismember(keys().devices, "g4")  # history stays addressable
    assert sweep_offline(r, now_ms() + 86_400_000) == []


def test_health_rows_rate_sort_filter(r: redis.Redis) -> None:
    now = now_ms()
    for i, gap in ((1, 60_000), (2, 20_000)):
        register_device(r, _gas(f"h{i}", name=f"井{i}"))
        for n in range(6):
            on_reading(r, _reading(f"h{i}", now - (6 - n) * gap))
        r.hset(
            keys().device_state(f"h{i}"),
            mapping={"last_seen_ms": now - gap, "battery": 90 - i, "signal": -60 - i},
        )
    register_device(r, _gas("h3"))
    rows = health_rows(r, now_ms=now, sort="rate_per_min", descending=True)
    assert [row["id"] for row in rows] == ["h2", "h1", "h3"]  # no rate: last
    assert abs(rows[0]["rate_per_min"] - 3.0) < 0.01 and abs(rows[1]["rate_per_min"] - 1.0) < 0.01
    assert rows[0]["battery"] == 88.0 and rows[0]["signal"] == -62.0 and rows[0]["grid"]
    assert [row["id"] for row in health_rows(r, status="registered")] == ["h3"]
    assert [row["id"] for row in health_rows(r, text="井1")] == ["h1"]
    # Silence lowers the rate: 10 minutes without a message is at most 0.1/min.
    late = health_rows(r, now_ms=now + 600_000, sort="id")
    assert late[1]["rate_per_min"] <= 0.1
