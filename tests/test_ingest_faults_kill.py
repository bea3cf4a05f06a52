"""The ingest process is killed (SIGKILL) in the middle of a stream of numbered messages
and started again, as `python app.py ingest-mqtt` runs it: none lost, none duplicated,
with Redis up (the broker redelivers) and with Redis down (the spool on disk replays)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.keys import keys
from devices.registry import Device, register_device
from tests.ingest_faults_support import (
    ROOT,
    NumberedPublisher,
    Servers,
    assert_exactly_once,
    count,
    gas_devices,
    ingest_env,
    numbers,
    record_recovery,
    servers_fixture,  # noqa: F401 - the fixture `servers`
    wait_until,
)


class IngestProcess:
    def __init__(self, s: Servers, log: Path) -> None:
        self.s = s
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "ingest-mqtt"],
                cwd=ROOT,
                env=ingest_env(self.s),
                stdout=fh,
                stderr=subprocess.STDOUT,
            )

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "ingest died on its own"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def ingest_proc(servers: Servers, tmp_path: Path) -> Iterator[IngestProcess]:
    p = IngestProcess(servers, tmp_path / "ingest.log")
    yield p
    p.stop()


def _warm_up(r: redis.Redis, s: Servers) -> None:
    """Publish until the ingest process has subscribed and written a reading."""
    warm = register_device(
        r, Device(id="gas-warm", type="gas", profile="gas_z2m", lon=113.65, lat=34.76)
    )
    pub = NumberedPublisher(s.broker.url, s.root, [warm], n=0, rate=1)
    try:

        def arrived() -> bool:
            pub.client.publish(s.root + warm.topic, b'{"gas_value": 1}', qos=1)
            time.sleep(0.2)
            return count(r) > 0

        wait_until(arrived, 20, "the ingest process to take a first message")
    finally:
        pub.close()


def _readings_after_warm_up(r: redis.Redis) -> int:
    return max(0, count(r) - 1)


def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    servers: Servers, ingest_proc: IngestProcess, artifacts: Path
) -> None:
    r = servers.redis.client()
    devices = gas_devices(r, 3)
    ingest_proc.start()
    _warm_up(r, servers)
    pub = NumberedPublisher(servers.broker.url, servers.root, devices, n=900, rate=300)
    try:
        pub.start()
        wait_until(lambda: _readings_after_warm_up(r) >= 250, 10, "a part of the stream")
        ingest_proc.kill9()
        before = _readings_after_warm_up(r)
        ingest_proc.start()
        t_restart = time.monotonic()
        wait_until(lambda: _readings_after_warm_up(r) > before, 15, "the first new reading")
        first = time.monotonic() - t_restart
        pub.wait_all_published(15)
        wait_until(
            lambda: _readings_after_warm_up(r) >= pub.n,
            15,
            lambda: f"every number ({_readings_after_warm_up(r)} of {pub.n})",
        )
        recovery = time.monotonic() - t_restart
        time.sleep(0.5)  # a late redelivery would show now
        got = numbers(r, pub.base_ms)
        assert_exactly_once(got, pub, in_order=True)
        assert before < pub.n
        record_recovery(
            artifacts,
            "ingest_kill_9",
            {
                "messages": pub.n,
                "in_stream_at_kill": before,
                "restart_to_first_reading_s": first,
                "restart_to_all_in_stream_s": recovery,
            },
        )
    finally:
        pub.close()


def test_kill_9_while_spooling_then_redis_back(
    servers: Servers, ingest_proc: IngestProcess, artifacts: Path
) -> None:
    r = servers.redis.client()
    devices = gas_devices(r, 2)
    ingest_proc.start()
    _warm_up(r, servers)
    pub = NumberedPublisher(servers.broker.url, servers.root, devices, n=600, rate=300)
    spool = Path(servers.env["VAR_DIR"]) / "spool"
    try:
        pub.start()
        wait_until(lambda: _readings_after_warm_up(r) >= 100, 10, "a part of the stream")
        servers.redis.stop()

        def spooled() -> int:
            return sum(p.stat().st_size for p in spool.rglob("*.seg"))

        wait_until(lambda: spooled() > 5_000, 10, "messages in the spool")
        ingest_proc.kill9()  # mid-stream, mid-spool
        pub.wait_all_published(15)
        servers.redis.start()
        ingest_proc.start()
        t_restart = time.monotonic()
        wait_until(
            lambda: _readings_after_warm_up(r) >= pub.n,
            20,
            lambda: f"every number ({_readings_after_warm_up(r)} of {pub.n})",
        )
        recovery = time.monotonic() - t_restart
        time.sleep(0.5)
        assert_exactly_once(numbers(r, pub.base_ms), pub, in_order=True)
        wait_until(lambda: spooled() == 0, 5, "the spool emptied")
        assert r.xlen(keys().dead) == 0
        record_recovery(
            artifacts,
            "ingest_kill_9_while_spooling",
            {"messages": pub.n, "restart_to_all_in_stream_s": recovery},
        )
    finally:
        pub.close()
