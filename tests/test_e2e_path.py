"""The path of one event, all real: broker → ingest process → stream → worker process →
alarm → work order located in its grid, and the dead-letter cases, against the real
Mosquitto and Redis with each role in its own process as `python app.py ROLE` runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis

from core.keys import keys
from devices.registry import Device, get_device, register_device
from ingest.simulator import encode

ROOT = Path(__file__).resolve().parent.parent
JINSHUI = (113.6835, 34.7740)  # 金水区, near 花园路


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def roles(gridcc_env: dict[str, str]) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    env = {**os.environ, **gridcc_env, "LOG_LEVEL": "WARNING"}
    procs = {
        role: subprocess.Popen([sys.executable, str(ROOT / "app.py"), role], cwd=ROOT, env=env)
        for role in ("ingest-mqtt", "worker")
    }
    yield procs
    for p in procs.values():
        p.terminate()
    for p in procs.values():
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture
def publisher(gridcc_env: dict[str, str]) -> Iterator[Callable[[str, bytes], None]]:
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-{gridcc_env['GRIDCC_PREFIX']}"
    )
    c.connect("127.0.0.1", 1883)
    c.loop_start()
    root = gridcc_env["MQTT_ROOT"]

    def publish(topic: str, payload: bytes) -> None:
        c.publish(root + topic, payload, qos=1).wait_for_publish(5)

    yield publish
    c.loop_stop()
    c.disconnect()


def _dead(r: redis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in r.xrange(keys().dead)]


def _warm_up(r: redis.Redis, publish: Callable[[str, bytes], None], dev: Device) -> None:
    """Publish normal readings until ingest has subscribed and the worker has seen one."""

    def seen() -> bool:
        publish(dev.topic, encode(dev, {"ch4_lel": 1.0}, int(time.time() * 1000), 90, 120))
        return bool(r.hget(keys().device_state(dev.id), "last_seen_ms"))

    wait_for(seen, 30, "the first reading to reach the worker")


def test_threshold_crossing_becomes_alarm_and_located_order(
    r: redis.Redis,
    roles: dict[str, subprocess.Popen[bytes]],
    publisher: Callable[[str, bytes], None],
) -> None:
    dev = register_device(
        r,
        Device(
            id="gas-e2e-1",
            name="花园路燃气井",
            type="gas",
            profile="gas_z2m",
            lon=JINSHUI[0],
            lat=JINSHUI[1],
        ),
    )
    assert dev.place is not None and dev.place.county == "410105"
    _warm_up(r, publisher, dev)
    assert r.zcard(keys().alarms_open) == 0

    t0 = time.monotonic()
    publisher(dev.topic, encode(dev, {"ch4_lel": 62.0}, int(time.time() * 1000), 90, 120))
    order_id = wait_for(lambda: r.zrange(keys().orders_open, 0, -1), 10, "a work order")[0].decode()
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"event to work order took {elapsed:.2f} s"

    alarm_ids = r.zrange(keys().alarms_open, 0, -1)
    assert len(alarm_ids) == 1
    alarm = json.loads(r.get(keys().alarm(alarm_ids[0].decode())) or b"{}")
    assert alarm["severity"] == "red" and alarm["value"] == 62.0 and alarm["metric"] == "ch4_lel"
    order = json.loads(r.get(keys().order(order_id)) or b"{}")
    assert order["alarm_id"] == alarm["id"] and order["channel"] == "sensor"
    assert order["place"]["county"] == "410105"
    assert order["place"]["township"] == dev.place.township
    assert order["place"]["grid"] == dev.place.grid and len(order["place"]["grid"]) == 15
    assert r.hget(keys().device_state(dev.id), "severity") == b"red"
    # The first reading was inside the normal range (verified), the next made it live.
    assert get_device(r, dev.id).status == "live"  # type: ignore[union-attr]

    # Repeated readings over the limit keep the one alarm and the one order.
    for v in (63.0, 64.0, 65.0):
        publisher(dev.topic, encode(dev, {"ch4_lel": v}, int(time.time() * 1000), 90, 120))
    time.sleep(1.0)
    assert r.zcard(keys().alarms_open) == 1
    assert r.zcard(keys().orders_open) == 1


def test_bad_messages_go_to_dead_letters_and_ingest_goes_on(
    r: redis.Redis,
    roles: dict[str, subprocess.Popen[bytes]],
    publisher: Callable[[str, bytes], None],
) -> None:
    dev = register_device(
        r, Device(id="gas-e2e-2", type="gas", profile="gas_z2m", lon=JINSHUI[0], lat=JINSHUI[1])
    )
    _warm_up(r, publisher, dev)
    bad = {
        "bad_json": b'{"gas_value": 3,',
        "bad_encoding": '{"gas_value": 3, "note": "燃气"}'.encode("gbk"),
    }
    for payload in bad.values():
        publisher(dev.topic, payload)
    publisher("zigbee2mqtt/nobody-registered-this", b'{"gas_value": 3}')

    def reasons() -> dict[str, bytes]:
        return {f[b"reason"].decode(): f[b"raw"] for f in _dead(r)}

    got = wait_for(lambda: len(reasons()) >= 3 and reasons(), 10, "three dead letters")
    for reason, payload in bad.items():
        assert got[reason] == payload  # the exact raw bytes are kept
    assert got["unknown_device"] == b'{"gas_value": 3}'
    assert roles["ingest-mqtt"].poll() is None

    before = r.xlen(keys().readings)
    publisher(dev.topic, encode(dev, {"ch4_lel": 2.0}, int(time.time() * 1000), 90, 120))
    wait_for(lambda: r.xlen(keys().readings) > before, 10, "a good message after the bad ones")
