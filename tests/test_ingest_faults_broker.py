"""The broker restarts in the middle of a stream of numbered QoS 1 messages: the
publisher resends on its persistent session, ingest reconnects to its own, and every
number is in the readings stream exactly once."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from ingest.mqtt_ingest import MqttIngest
from tests.ingest_faults_support import (
    NumberedPublisher,
    Servers,
    assert_exactly_once,
    count,
    gas_devices,
    numbers,
    record_recovery,
    servers_fixture,  # noqa: F401 - the fixture `servers`
    wait_until,
)


def test_broker_restart_mid_stream_loses_and_duplicates_nothing(
    servers: Servers, artifacts: Path
) -> None:
    r = servers.redis.client()
    devices = gas_devices(r, 3)
    ing = MqttIngest(r, client_id=f"flt-ingest-{uuid.uuid4().hex[:6]}", session_expiry_s=120)
    stop = threading.Event()
    t = threading.Thread(target=ing.run, args=(stop,), daemon=True)
    t.start()
    assert ing.subscribed.wait(10)
    pub = NumberedPublisher(servers.broker.url, servers.root, devices, n=900, rate=300)
    try:
        pub.start()
        wait_until(lambda: count(r) >= 250, 10, "the first part of the stream")
        servers.broker.stop()
        t_down = time.monotonic()
        wait_until(lambda: not ing.connected.is_set(), 5, "ingest to notice")
        time.sleep(1.0)
        before = count(r)
        servers.broker.start()
        t_up = time.monotonic()
        wait_until(ing.connected.is_set, 15, "ingest to reconnect")
        reconnect = time.monotonic() - t_up
        pub.wait_all_published(20)
        wait_until(
            lambda: count(r) >= pub.n,
            20,
            lambda: f"every number in the stream ({count(r)} of {pub.n})",
        )
        recovery = time.monotonic() - t_up
        time.sleep(0.5)  # a late redelivery would show now
        got = numbers(r, pub.base_ms)
        assert_exactly_once(got, pub, in_order=False)
        assert before < pub.n, "the broker restart came too late to test anything"
        record_recovery(
            artifacts,
            "broker_restart",
            {
                "messages": pub.n,
                "in_stream_before_restart": before,
                "outage_s": t_up - t_down,
                "broker_back_to_ingest_connected_s": reconnect,
                "broker_back_to_all_in_stream_s": recovery,
                "duplicates_dropped": ing.processor.stats.duplicates,
                "in_order_per_device": float(all(ns == sorted(ns) for ns in got.values())),
            },
        )
    finally:
        stop.set()
        t.join(15)
        pub.close()
