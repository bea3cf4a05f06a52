"""Redis goes away in the middle of a stream of numbered messages: ingest spools to disk,
acknowledges, and replays in order when Redis is back; none lost, none duplicated."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from core.config import get_settings
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


def _start(
    r: redis.Redis, client_id: str, **kw: int
) -> tuple[MqttIngest, threading.Thread, threading.Event, list[int]]:
    ing = MqttIngest(r, client_id=client_id, session_expiry_s=120, **kw)  # type: ignore[arg-type]
    acked: list[int] = []
    plain_ack = ing._ack

    def ack(mid: int, qos: int) -> None:
        acked.append(mid)
        plain_ack(mid, qos)

    ing._ack = ack  # type: ignore[method-assign]
    stop = threading.Event()
    t = threading.Thread(target=ing.run, args=(stop,), daemon=True)
    t.start()
    assert ing.subscribed.wait(10), "ingest did not subscribe"
    return ing, t, stop, acked


def _segments(ing: MqttIngest) -> list[Path]:
    return [p for p in ing.spool_dir.glob("*.seg") if p.stat().st_size > 0]


def test_redis_outage_mid_stream_spools_acks_and_replays_in_order(
    servers: Servers, artifacts: Path
) -> None:
    r = servers.redis.client()
    devices = gas_devices(r, 3)
    ing, t, stop, acked = _start(r, f"flt-ingest-{uuid.uuid4().hex[:6]}")
    pub = NumberedPublisher(servers.broker.url, servers.root, devices, n=900, rate=300)
    try:
        pub.start()
        wait_until(lambda: count(r) >= 200, 10, "a third of the stream in Redis")
        servers.redis.stop()
        t_down = time.monotonic()
        pub.wait_all_published(15)
        # Every message Redis did not take is on disk and acknowledged, Redis still down.
        wait_until(
            lambda: ing.processor.stats.readings + ing.processor.stats.spooled >= pub.n,
            10,
            lambda: (
                f"the rest of the stream in the spool ({ing.processor.stats}, "
                f"{len(acked)} acked, {ing.queue.qsize()} queued)"
            ),
        )
        assert ing.processor.stats.spooled >= 300, ing.processor.stats
        wait_until(lambda: len(acked) == pub.n, 10, "every message acknowledged")
        assert _segments(ing), "nothing in the spool directory"
        outage = time.monotonic() - t_down

        servers.redis.start()
        t_up = time.monotonic()
        wait_until(lambda: count(r) >= pub.n, 15, "every number in the stream")
        recovery = time.monotonic() - t_up
        time.sleep(0.3)  # a late duplicate would show now
        assert_exactly_once(numbers(r, pub.base_ms), pub, in_order=True)
        assert ing.processor.stats.replayed == ing.processor.stats.spooled
        assert _segments(ing) == []
        record_recovery(
            artifacts,
            "redis_outage",
            {
                "messages": pub.n,
                "spooled": ing.processor.stats.spooled,
                "outage_s": outage,
                "redis_back_to_all_in_stream_s": recovery,
            },
        )
    finally:
        stop.set()
        t.join(15)
        pub.close()


def test_restart_with_a_spool_left_replays_at_start(servers: Servers, artifacts: Path) -> None:
    r = servers.redis.client()
    devices = gas_devices(r, 2)
    client_id = f"flt-ingest-{uuid.uuid4().hex[:6]}"
    ing, t, stop, acked = _start(r, client_id)
    pub = NumberedPublisher(servers.broker.url, servers.root, devices, n=200, rate=1000)
    try:
        servers.redis.stop()
        pub.start()
        pub.wait_all_published(10)
        wait_until(lambda: ing.processor.stats.spooled == pub.n, 10, "the stream in the spool")
        # Each batch is acknowledged just after its spool write returns.
        wait_until(lambda: len(acked) == pub.n, 10, "every spooled message acknowledged")
        spool_dir = ing.spool_dir
    finally:
        stop.set()
        t.join(15)
    assert not t.is_alive()
    assert [p for p in spool_dir.glob("*.seg") if p.stat().st_size]

    servers.redis.start()
    t_up = time.monotonic()
    ing2, t2, stop2, acked2 = _start(r, client_id)
    try:
        wait_until(lambda: count(r) >= pub.n, 10, "the spool replayed at start")
        recovery = time.monotonic() - t_up
        time.sleep(0.5)
        assert_exactly_once(numbers(r, pub.base_ms), pub, in_order=True)
        # They were acknowledged before the restart: the broker sent none of them again.
        assert ing2.processor.stats.replayed == pub.n
        assert ing2.processor.stats.duplicates == 0
        assert acked2 == []
        assert not [p for p in spool_dir.glob("*.seg") if p.stat().st_size]
        record_recovery(
            artifacts, "ingest_restart_with_spool", {"messages": pub.n, "start_to_all_s": recovery}
        )
    finally:
        stop2.set()
        t2.join(15)
        pub.close()


def test_full_spool_stops_acknowledging_and_nothing_is_lost(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    r = servers.redis.client()
    devices = gas_devices(r, 1)
    ing, t, stop, acked = _start(r, f"flt-ingest-{uuid.uuid4().hex[:6]}", spool_max_bytes=4096)
    pub = NumberedPublisher(servers.broker.url, servers.root, devices, n=150, rate=150)
    caplog.set_level(logging.ERROR, logger="ingest.mqtt_ingest")
    try:
        servers.redis.stop()
        pub.start()
        pub.wait_all_published(10)
        wait_until(lambda: "is full" in caplog.text, 10, "the spool-full message")
        time.sleep(0.5)
        spooled = ing.processor.stats.spooled
        assert 0 < spooled < pub.n
        assert len(acked) == spooled  # the rest stay with the broker, unacknowledged
        assert ing.spool is not None and ing.spool.size_bytes <= 4096
        assert str(get_settings().var_dir) in caplog.text

        servers.redis.start()
        wait_until(lambda: count(r) >= pub.n, 15, "every number in the stream")
        time.sleep(0.3)
        assert_exactly_once(numbers(r, pub.base_ms), pub, in_order=True)
        wait_until(lambda: len(acked) == pub.n, 10, "every message acknowledged")
    finally:
        stop.set()
        t.join(15)
        pub.close()
