"""MQTT ingest end to end: real Mosquitto, real Redis, the ingest role in a thread."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion

from core.config import get_settings
from core.keys import keys
from core.models import Reading
from core.timeutil import now_ms
from devices.registry import Device, DeviceStatus, get_device, register_device
from ingest.mqtt_ingest import MqttIngest, parse_mqtt_url
from ingest.simulator import publish_reading


def wait_for(cond: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def ingest(r: redis.Redis) -> Iterator[MqttIngest]:
    stop = threading.Event()
    ing = MqttIngest(r, client_id=f"test-ingest-{uuid.uuid4().hex[:8]}", session_expiry_s=30)
    t = threading.Thread(target=ing.run, args=(stop,), daemon=True)
    t.start()
    assert ing.subscribed.wait(10), "ingest did not subscribe"
    yield ing
    stop.set()
    t.join(10)
    assert not t.is_alive()


@pytest.fixture
def pub(gridcc_env: dict[str, str]) -> Iterator[mqtt.Client]:
    target = parse_mqtt_url(gridcc_env["MQTT_URL"])
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(target.host, target.port)
    c.loop_start()
    yield c
    c.disconnect()
    c.loop_stop()


def send(c: mqtt.Client, topic: str, payload: bytes) -> None:
    c.publish(get_settings().mqtt_root + topic, payload, qos=1).wait_for_publish(5)


def readings(r: redis.Redis) -> list[Reading]:
    return [Reading.model_validate_json(f[b"data"]) for _, f in r.xrange(keys().readings)]


def dead(r: redis.Redis) -> list[dict[str, bytes]]:
    return [{k.decode(): v for k, v in f.items()} for _, f in r.xrange(keys().dead)]


def _gas(r: redis.Redis, dev_id: str = "gas-001") -> Device:
    return register_device(
        r, Device(id=dev_id, type="gas", profile="gas_z2m", lon=113.65, lat=34.76)
    )


def test_z2m_reading_arrives_with_catalogue_metrics(
    r: redis.Redis, ingest: MqttIngest, pub: mqtt.Client
) -> None:
    dev = _gas(r)
    before = now_ms()
    send(
        pub,
        dev.topic,
        json.dumps(
            {"gas_value": 12.5, "temperature": 18.2, "battery": 87, "linkquality": 140}
        ).encode(),
    )
    (got,) = wait_for(lambda: readings(r))
    assert got.device_id == "gas-001" and got.topic == "zigbee2mqtt/gas-001"
    assert got.metrics == {"ch4_lel": 12.5, "temp_c": 18.2}
    assert (got.battery, got.signal) == (87, 140)
    assert before <= got.ts_ms == got.received_ms <= now_ms()
    assert got.msg_id.startswith(f"gas-001:{got.ts_ms}:")
    # Commissioning is the worker's: ingest alone leaves the device waiting for verification.
    assert get_device(r, "gas-001").status == DeviceStatus.REGISTERED  # type: ignore[union-attr]


def test_every_simulated_format_arrives(
    r: redis.Redis, ingest: MqttIngest, pub: mqtt.Client
) -> None:
    from ingest.simulator import register_demo_devices

    devices = register_demo_devices(r, 10)
    sent = {}
    for d in devices:
        metrics = {k: round(m.normal[1], 3) for k, m in d.device_type.metrics.items()}
        if d.profile == "water_plain":
            metrics = {"pressure_mpa": 0.42}
        sent[d.id] = metrics
        publish_reading(pub, d, metrics).wait_for_publish(5)
    got = wait_for(lambda: len(readings(r)) >= 10 and readings(r))
    by_device = {g.device_id: g.metrics for g in got}
    assert set(by_device) == set(sent)
    for dev_id, metrics in sent.items():
        assert by_device[dev_id] == pytest.approx(metrics), dev_id
    assert dead(r) == []


BAD = [
    (b'{"gas_value": 3', "bad_json"),
    ('{"gas_value": 3, "位置": "郑州"}'.encode("gbk"), "bad_encoding"),
    (b'{"gas_value": NaN}', "not_finite"),
    (json.dumps({"gas_value": 3, "last_seen": now_ms() + 86_400_000}).encode(), "bad_timestamp"),
    (b'{"gas_value": 3, "last_seen": 915148800}', "bad_timestamp"),  # 1999-01-01
    (json.dumps({"gas_value": 3, "pad": "x" * 70_000}).encode(), "too_large"),
    (b'{"gas_value": 120}', "out_of_range"),
    (b'{"humidity_x": 1}', "no_metrics"),
]


def test_bad_input_goes_to_dead_letters_and_ingest_keeps_going(
    r: redis.Redis, ingest: MqttIngest, pub: mqtt.Client
) -> None:
    dev = _gas(r)
    for payload, _ in BAD:
        send(pub, dev.topic, payload)
    send(pub, "zigbee2mqtt/nobody-registered", b'{"gas_value": 1}')
    send(pub, "zigbee2mqtt/nobody-registered", b'{"gas_value": 2}')
    send(pub, "zigbee2mqtt/bridge/state", b"online")  # not a reading, not an error either
    ts_s = now_ms() // 1000 - 30
    for scale in (1, 1000, 1_000_000):
        send(pub, dev.topic, json.dumps({"gas_value": 4, "last_seen": ts_s * scale}).encode())
    got = wait_for(lambda: len(readings(r)) >= 3 and readings(r))
    assert [g.ts_ms for g in got] == [ts_s * 1000] * 3

    letters = wait_for(lambda: len(dead(r)) >= len(BAD) + 2 and dead(r))
    assert len(letters) == len(BAD) + 2
    for (payload, reason), letter in zip(BAD, letters, strict=False):
        assert letter["reason"].decode() == reason
        assert letter["raw"] == payload  # the exact bytes
        assert letter["source"] == b"mqtt"
        assert letter["topic"].decode() == get_settings().mqtt_root + dev.topic
        assert letter["detail"]
        assert abs(int(letter["received_ms"]) - now_ms()) < 60_000
    unknown = letters[-2:]
    assert [u["reason"] for u in unknown] == [b"unknown_device"] * 2
    record = json.loads(r.hget(keys().unknown_devices, "zigbee2mqtt/nobody-registered"))  # type: ignore[arg-type]
    assert record["count"] == 2 and record["first_ms"] <= record["last_ms"]

    send(pub, dev.topic, b'{"gas_value": 7.5}')
    last = wait_for(lambda: len(readings(r)) == 4 and readings(r)[-1])
    assert last.metrics == {"ch4_lel": 7.5}
    assert ingest.processor.stats.skipped == 1


def test_redelivered_message_is_written_once(
    r: redis.Redis, ingest: MqttIngest, pub: mqtt.Client
) -> None:
    dev = _gas(r)
    payload = json.dumps({"gas_value": 2.0, "last_seen": now_ms() - 1000}).encode()
    send(pub, dev.topic, payload)
    send(pub, dev.topic, payload)  # same device, time and bytes: a redelivery
    send(pub, dev.topic, b'{"gas_value": 2.5}')
    got = wait_for(lambda: len(readings(r)) >= 2 and readings(r))
    time.sleep(0.3)
    assert [g.metrics["ch4_lel"] for g in readings(r)] == [2.0, 2.5]
    assert ingest.processor.stats.duplicates == 1
    assert len(got) == 2
