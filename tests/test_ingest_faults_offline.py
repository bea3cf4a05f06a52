"""A device that falls silent goes offline on time: ingest and worker running, the
worker's own sweep (every OFFLINE_SWEEP_S) and a gas type reporting every second."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion

from alarms import worker
from core.config import get_settings
from core.keys import keys
from core.timeutil import now_ms
from devices.catalogue import catalogue
from devices.registry import Device, DeviceStatus, get_device, register_device
from ingest.mqtt_ingest import MqttIngest, parse_mqtt_url
from tests.ingest_faults_support import record_recovery, wait_until


@pytest.fixture
def running(r: redis.Redis) -> Iterator[None]:
    stop = threading.Event()
    ing = MqttIngest(r, client_id=f"test-ingest-{uuid.uuid4().hex[:8]}", session_expiry_s=30)
    threads = [
        threading.Thread(target=ing.run, args=(stop,), daemon=True),
        threading.Thread(target=worker.run, args=(stop,), kwargs={"r": r}, daemon=True),
    ]
    for t in threads:
        t.start()
    assert ing.subscribed.wait(10)
    yield
    stop.set()
    for t in threads:
        t.join(15)


def test_silent_device_goes_offline_within_its_limit_plus_the_sweep(
    r: redis.Redis, running: None, monkeypatch: pytest.MonkeyPatch, artifacts: Path
) -> None:
    # A type that reports every second is silent after 3 s; the catalogue object is the
    # one the worker reads, so the worker sees the short limit.
    monkeypatch.setattr(catalogue().get("gas"), "interval_s", 1)
    limit_ms = catalogue().get("gas").offline_after_s * 1000
    assert limit_ms == 3000
    sweep_ms = worker.OFFLINE_SWEEP_S * 1000
    dev = register_device(
        r, Device(id="gas-quiet", type="gas", profile="gas_z2m", lon=113.65, lat=34.76)
    )
    target = parse_mqtt_url(get_settings().mqtt_url)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(target.host, target.port)
    pub.loop_start()
    try:
        # Readings inside the normal range commission it: registered → verified → live.
        for v in (1.0, 1.5, 2.0):
            pub.publish(
                get_settings().mqtt_root + dev.topic, json.dumps({"gas_value": v}), qos=1
            ).wait_for_publish(5)
            time.sleep(0.2)

        def live() -> bool:
            d = get_device(r, dev.id)
            return d is not None and d.status == DeviceStatus.LIVE

        wait_until(live, 10, "the device to be live")
        state = keys().device_state(dev.id)
        last_seen = int(wait_until(lambda: r.hget(state, "last_seen_ms"), 5, "last seen"))

        # Still live while inside its limit...
        while now_ms() < last_seen + limit_ms - 300:
            assert live(), "offline before its limit"
            time.sleep(0.1)
        # ...and offline once past it, within one sweep period. The worker sweeps when
        # OFFLINE_SWEEP_S has passed, checked between blocking stream reads of up to
        # BLOCK_MS, so the period it keeps is at most the sum of the two.
        period_ms = sweep_ms + worker.BLOCK_MS
        wait_until(
            lambda: r.hget(state, "status") == b"offline",
            (limit_ms + period_ms) / 1000 + 2,
            "the device to go offline",
        )
        offline_ms = int(r.hget(state, "offline_ms") or 0)
        silent_for = offline_ms - last_seen
        assert limit_ms < silent_for <= limit_ms + period_ms + 300, silent_for
        assert r.hget(state, "offline_reason") == b"silent"
        assert get_device(r, dev.id).status == DeviceStatus.OFFLINE  # type: ignore[union-attr]
        record_recovery(
            artifacts,
            "silent_device_offline",
            {
                "limit_s": limit_ms / 1000,
                "sweep_period_s": sweep_ms / 1000,
                "worst_sweep_gap_s": period_ms / 1000,
                "last_reading_to_offline_s": silent_for / 1000,
            },
        )
    finally:
        pub.disconnect()
        pub.loop_stop()
