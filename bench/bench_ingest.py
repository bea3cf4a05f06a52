"""MQTT ingest throughput against the raw paho receive rate, same broker, same run.

Run on demand (not in CI) against a running Redis and Mosquitto:
``python -m bench.bench_ingest [MESSAGES] [DEVICES]`` from the project root, with
``REDIS_URL``/``MQTT_URL`` (defaults: 127.0.0.1:6379 and :1883). Everything lives under a
private key prefix and topic root, removed at the end.

1. raw: a bare paho subscriber (QoS 1) that only counts;
2. ingest: ``MqttIngest`` (decode, validate, grid lookup via the registry, dedupe, stream write);
3. alarms: the worker (``alarms.worker.run``) on the same stream while ingest runs; every
   device sends one reading over its red limit, and event-to-alarm latency is the alarm's
   store time minus the reading's device timestamp.

The publisher sends paced bursts and waits for the receiver to catch up, so the broker's
per-client queue (1,000 in flight) never drops a message.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt
import redis
from paho.mqtt.enums import CallbackAPIVersion

BURST = 500


def _publisher(host: str, port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(2 * BURST)
    c.connect(host, port)
    c.loop_start()
    return c


Payload = bytes | Callable[[], bytes]


def _publish_paced(
    c: mqtt.Client, msgs: list[tuple[str, Payload]], received: Callable[[], int]
) -> float:
    """Publish in bursts, each after the receiver has caught up to within one burst."""
    t0 = time.perf_counter()
    for i in range(0, len(msgs), BURST):
        while i - received() > BURST:
            time.sleep(0.0005)
        for t, p in msgs[i : i + BURST]:
            c.publish(t, p() if callable(p) else p, qos=1)
    return t0


def _wait(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("benchmark stalled")
        time.sleep(0.001)


def main(n: int = 20_000, n_devices: int = 200) -> None:
    tag = uuid.uuid4().hex[:8]
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ.setdefault("MQTT_URL", "mqtt://127.0.0.1:1883")
    os.environ["GRIDCC_PREFIX"] = f"bench{tag}"
    os.environ["MQTT_ROOT"] = f"bench{tag}/"
    from core.config import get_settings, reset_settings

    reset_settings()
    from alarms import worker
    from core.keys import keys
    from core.store import get_redis
    from core.timeutil import now_ms
    from devices.registry import Device, register_device
    from ingest.mqtt_ingest import MqttIngest, parse_mqtt_url

    s = get_settings()
    target = parse_mqtt_url(s.mqtt_url)
    r = get_redis()
    try:
        devs = [
            register_device(
                r,
                Device(
                    id=f"bench-{i:04d}",
                    type="gas",
                    profile="gas_z2m",
                    lon=113.55 + (i % 20) * 0.01,
                    lat=34.70 + (i // 20) * 0.01,
                ),
            )
            for i in range(n_devices)
        ]

        def hot_payload() -> bytes:
            # Stamped when sent, so the latency counts from the moment the event leaves the device.
            body = {"gas_value": 60.0, "temperature": 20.5, "last_seen": now_ms()}
            return json.dumps(body).encode()

        def messages(spike: bool) -> list[tuple[str, Payload]]:
            base = now_ms() - n
            out: list[tuple[str, Payload]] = []
            for j in range(n):
                d = devs[j % n_devices]
                # One reading per device crosses the red limit (50 %LEL) once, at the end.
                if spike and j >= n - n_devices:
                    out.append((s.mqtt_root + d.topic, hot_payload))
                    continue
                body = {"gas_value": 1.0 + (j % 7) * 0.3, "temperature": 20.5, "linkquality": 120}
                body["last_seen"] = base + j  # a distinct identity per message
                out.append((s.mqtt_root + d.topic, json.dumps(body).encode()))
            return out

        # 1. raw paho receive rate
        count = [0]
        first_last = [0.0, 0.0]
        sub_ready = threading.Event()

        def on_msg(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
            if count[0] == 0:
                first_last[0] = time.perf_counter()
            count[0] += 1
            first_last[1] = time.perf_counter()

        raw = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-raw-{tag}", protocol=mqtt.MQTTv5
        )
        raw.on_message = on_msg
        raw.on_subscribe = lambda *a: sub_ready.set()
        raw.connect(target.host, target.port)
        raw.loop_start()
        raw.subscribe(f"{s.mqtt_root}#", qos=1)
        sub_ready.wait(5)
        pub = _publisher(target.host, target.port)
        msgs = messages(spike=False)
        t0 = _publish_paced(pub, msgs, lambda: count[0])
        _wait(lambda: count[0] >= n)
        raw_rate = n / (first_last[1] - t0)
        raw.disconnect()
        raw.loop_stop()

        # 2 + 3. full ingest with the worker running on the stream
        stop = threading.Event()
        ing = MqttIngest(r, client_id=f"bench-ingest-{tag}", session_expiry_s=60)
        threading.Thread(target=ing.run, args=(stop,), daemon=True).start()
        if not ing.subscribed.wait(10):
            raise RuntimeError("ingest did not subscribe")
        worker.ensure_groups(r)
        wt = threading.Thread(
            target=worker.run, args=(stop,), kwargs={"r": r, "consumer": "bench"}, daemon=True
        )
        wt.start()
        msgs = messages(spike=True)
        t0 = _publish_paced(pub, msgs, lambda: ing.processor.stats.received)
        _wait(lambda: ing.processor.stats.received >= n)
        t_ingest = time.perf_counter() - t0
        ingest_rate = n / t_ingest
        st = ing.processor.stats
        _wait(lambda: r.zcard(keys().alarms_all) >= n_devices, 120)
        t_all = time.perf_counter() - t0
        lat = []
        ids: list[bytes] = r.zrange(keys().alarms_all, 0, -1)  # type: ignore[assignment]
        for aid in ids:
            a = json.loads(r.get(keys().alarm(aid.decode())) or b"{}")
            for h in a.get("history", [])[:1]:
                lat.append(h["ts_ms"] - a["raised_ms"])
        lat.sort()
        stop.set()
        pub.disconnect()
        pub.loop_stop()
        wt.join(10)  # the worker leaves its blocking read before the keys go

        print(f"messages {n}, devices {n_devices}, broker {target.host}:{target.port}")
        print(f"raw paho receive:   {raw_rate:9.0f} msg/s")
        print(
            f"full ingest:        {ingest_rate:9.0f} msg/s  "
            f"(readings {st.readings}, dead {st.dead}, duplicates {st.duplicates})"
        )
        print(f"ratio ingest/raw:   {ingest_rate / raw_rate:9.2f}")
        print(f"worker drained all: {n / t_all:9.0f} msg/s end to end")
        if lat:
            p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
            print(
                f"event-to-alarm latency under load: p50 {lat[len(lat) // 2]} ms, p95 {p95} ms ({len(lat)} alarms)"
            )
    finally:
        rr = redis.Redis.from_url(s.redis_url)
        for key in rr.scan_iter(match=f"{s.gridcc_prefix}:*", count=1000):
            rr.delete(key)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
