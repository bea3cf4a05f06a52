"""Acknowledge only what Redis holds; survive restarts and Redis outages."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.config import get_settings
from core.keys import keys
from core.models import Reading
from core.timeutil import now_ms
from devices.registry import Device, TopicCache, register_device
from ingest.mqtt_ingest import (
    Incoming,
    MqttIngest,
    Processor,
    parse_mqtt_url,
    subscriptions,
    write_then_ack,
)
from tests.conftest import free_port
from tests.test_ingest_mqtt_flow import wait_for


def _gas(r: redis.Redis) -> Device:
    return register_device(
        r, Device(id="gas-001", type="gas", profile="gas_z2m", lon=113.65, lat=34.76)
    )


def _msg(topic: str, payload: bytes, mid: int = 1) -> Incoming:
    return Incoming(topic.encode(), payload, now_ms(), mid=mid, qos=1)


def test_ack_comes_after_the_stream_write(r: redis.Redis) -> None:
    dev = _gas(r)
    root = get_settings().mqtt_root
    acks: list[tuple[int, int, int, int]] = []

    def ack(mid: int, qos: int) -> None:
        acks.append((mid, qos, r.xlen(keys().readings), r.xlen(keys().dead)))

    batch = [_msg(root + dev.topic, b'{"gas_value": 3}', 11), _msg(root + dev.topic, b"{oops", 12)]
    counts = write_then_ack(Processor(r), batch, ack)
    assert (counts.readings, counts.dead) == (1, 1)
    # At the moment of each ack, both writes were already in Redis.
    assert acks == [(11, 1, 1, 1), (12, 1, 1, 1)]


def test_no_ack_when_redis_fails(r: redis.Redis) -> None:
    dev = _gas(r)
    broken = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    proc = Processor(broken, cache=TopicCache(r))
    acks: list[int] = []
    with pytest.raises(redis.ConnectionError):
        write_then_ack(
            proc,
            [_msg(get_settings().mqtt_root + dev.topic, b'{"gas_value": 3}')],
            lambda mid, qos: acks.append(mid),
        )
    assert acks == []
    assert r.xlen(keys().readings) == 0


def test_invalid_utf8_topic_is_a_dead_letter(r: redis.Redis) -> None:
    # Brokers refuse such topics from clients, so the message is built here.
    raw = b'{"gas_value": 3}'
    counts = Processor(r).write([Incoming(b"zigbee2mqtt/\xff\xfe", raw, now_ms(), 1, 1)])
    assert counts.dead == 1
    ((_, letter),) = r.xrange(keys().dead)
    assert letter[b"reason"] == b"bad_topic" and letter[b"raw"] == raw
    assert letter[b"topic"] == b"zigbee2mqtt/\\xff\\xfe"


def test_parse_mqtt_url() -> None:
    t = parse_mqtt_url("mqtt://ingest:p%40ss@broker.local:11883")
    assert (t.host, t.port, t.username, t.password, t.tls) == (
        "broker.local",
        11883,
        "ingest",
        "p@ss",
        False,
    )
    assert parse_mqtt_url("mqtts://b").port == 8883
    assert parse_mqtt_url("mqtt://127.0.0.1").username is None
    for bad in ("http://x", "mqtt://", "mqtt://h:99999"):
        with pytest.raises(ValueError, match="MQTT_URL"):
            parse_mqtt_url(bad)


def test_shared_subscription(gridcc_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import reset_settings

    monkeypatch.setenv("MQTT_SHARED_GROUP", "ingest")
    reset_settings()
    root = gridcc_env["MQTT_ROOT"]
    assert f"$share/ingest/{root}zigbee2mqtt/#" in subscriptions()


def _publisher() -> mqtt.Client:
    target = parse_mqtt_url(get_settings().mqtt_url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect(target.host, target.port)
    c.loop_start()
    return c


def _start(ing: MqttIngest) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    t = threading.Thread(target=ing.run, args=(stop,), daemon=True)
    t.start()
    assert ing.subscribed.wait(10)
    return t, stop


def test_messages_sent_while_ingest_is_down_arrive_after_restart(r: redis.Redis) -> None:
    dev = _gas(r)
    client_id = f"test-ingest-{uuid.uuid4().hex[:8]}"
    t, stop = _start(MqttIngest(r, client_id=client_id, session_expiry_s=30))
    stop.set()
    t.join(10)
    pub = _publisher()
    try:
        for v in (1.0, 2.0, 3.0):
            pub.publish(
                get_settings().mqtt_root + dev.topic, json.dumps({"gas_value": v}), qos=1
            ).wait_for_publish(5)
        assert r.xlen(keys().readings) == 0
        t, stop = _start(MqttIngest(r, client_id=client_id, session_expiry_s=30))
        got = wait_for(lambda: r.xlen(keys().readings) >= 3 and r.xrange(keys().readings))
        values = [Reading.model_validate_json(f[b"data"]).metrics["ch4_lel"] for _, f in got]
        assert values == [1.0, 2.0, 3.0]
    finally:
        stop.set()
        t.join(10)
        pub.disconnect()
        pub.loop_stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server binary not found")
    port = free_port()
    yield port, tmp_path
    subprocess.run(
        ["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, timeout=5
    )


def _redis_server(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    c = redis.Redis(port=port)
    wait_for(lambda: _pings(c), timeout=5)
    return proc


def _pings(c: redis.Redis) -> bool:
    try:
        return bool(c.ping())
    except redis.ConnectionError:
        return False


def test_redis_outage_loses_nothing(
    gridcc_env: dict[str, str], own_redis: tuple[int, Path]
) -> None:
    port, workdir = own_redis
    server = _redis_server(port, workdir)
    r = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    dev = _gas(r)
    t, stop = _start(
        MqttIngest(r, client_id=f"test-ingest-{uuid.uuid4().hex[:8]}", session_expiry_s=30)
    )
    pub = _publisher()
    topic = get_settings().mqtt_root + dev.topic
    try:
        pub.publish(topic, b'{"gas_value": 1}', qos=1).wait_for_publish(5)
        wait_for(lambda: r.xlen(keys().readings) == 1)
        server.terminate()
        server.wait(5)
        for v in (2, 3, 4):
            pub.publish(topic, json.dumps({"gas_value": v}), qos=1).wait_for_publish(5)
        time.sleep(1.0)  # ingest now holds them, unacknowledged, and retries
        server = _redis_server(port, workdir)  # an empty Redis: the device must be known again
        _gas(r)
        got = wait_for(
            lambda: r.xlen(keys().readings) >= 3 and r.xrange(keys().readings), timeout=15
        )
        assert [Reading.model_validate_json(f[b"data"]).metrics["ch4_lel"] for _, f in got] == [
            2,
            3,
            4,
        ]
    finally:
        stop.set()
        t.join(15)
        pub.disconnect()
        pub.loop_stop()
        server.terminate()
        server.wait(5)
