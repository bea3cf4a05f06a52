"""The worker on the real Redis: malformed entries, reclaiming a dead consumer's entries, restarts."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alarms.worker import GROUP, claim_stale, ensure_groups, run, step
from core.keys import keys
from core.models import Reading
from core.timeutil import now_ms
from devices.registry import Device, register_device
from grids.codes import Level
from grids.dataset import load_city
from tests.conftest import free_port


def _register(r: redis.Redis, device_id: str = "gas-w1") -> Device:
    city = load_city()
    lon, lat = city.units_at(Level.GRID, within="410105")[0].center
    return register_device(
        r, Device(id=device_id, name="测试燃气井", type="gas", profile="gas_z2m", lon=lon, lat=lat)
    )


def _reading(device_id: str, value: float, n: int = 0) -> str:
    ts = now_ms() - 1000 + n
    return Reading(
        device_id=device_id,
        ts_ms=ts,
        received_ms=ts,
        metrics={"ch4_lel": value},
        msg_id=f"{device_id}-{n}",
        topic="zigbee2mqtt/x",
    ).model_dump_json()


def test_malformed_entries_go_to_dead_letters_and_the_loop_goes_on(r: redis.Redis) -> None:
    k = keys()
    _register(r)
    ensure_groups(r)
    r.xadd(k.readings, {"nodata": "1"})
    r.xadd(k.readings, {"data": b"\xff\xfe not json"})
    r.xadd(k.readings, {"data": '{"device_id": "gas-w1"}'})
    r.xadd(k.readings, {"data": _reading("nobody", 30)})
    r.xadd(k.reports, {"data": '{"text": "x"}', "report_id": "RP-bad"})
    r.xadd(k.video_events, {"data": "[]"})
    r.xadd(k.readings, {"data": _reading("gas-w1", 30, 1)})
    handled = 0
    for _ in range(5):
        handled += step(r, "w1", block_ms=50)
    assert handled == 7
    dead = [{a.decode(): b for a, b in f.items()} for _, f in r.xrange(k.dead)]
    assert len(dead) == 6
    assert {d["reason"] for d in dead} == {b"malformed"}
    assert any(b"not registered" in d["detail"] for d in dead)
    assert any(d["raw"] == b"\xff\xfe not json" for d in dead)
    for s in (k.readings, k.reports, k.video_events):
        assert r.xpending(s, GROUP)["pending"] == 0
    # The good reading behind the bad ones raised its alarm and opened its order.
    assert r.zcard(k.alarms_open) == 1 and r.zcard(k.orders_open) == 1


def test_entries_of_a_dead_consumer_are_reclaimed(r: redis.Redis) -> None:
    k = keys()
    _register(r)
    ensure_groups(r)
    for n in range(3):
        r.xadd(k.readings, {"data": _reading("gas-w1", 30 + n, n)})
    # A consumer reads and dies before acknowledging.
    got = r.xreadgroup(GROUP, "dead-one", {k.readings: ">"}, count=10)
    assert len(got[0][1]) == 3
    assert r.xpending(k.readings, GROUP)["pending"] == 3
    assert claim_stale(r, "heir", idle_ms=60_000) == 0  # not idle long enough yet
    time.sleep(0.25)
    assert claim_stale(r, "heir", idle_ms=200) == 3
    assert r.xpending(k.readings, GROUP)["pending"] == 0
    assert r.zcard(k.alarms_open) == 1 and r.zcard(k.orders_all) == 1
    # Reclaimed twice (a slow first consumer acking late) changes nothing: idempotent.
    assert claim_stale(r, "heir", idle_ms=0) == 0


def test_run_processes_until_stopped(r: redis.Redis) -> None:
    k = keys()
    _register(r)
    stop = threading.Event()
    t = threading.Thread(
        target=run, kwargs={"stop": stop, "r": r, "consumer": "loop", "block_ms": 100}, daemon=True
    )
    t.start()
    r.xadd(k.readings, {"data": "not json"})
    r.xadd(k.readings, {"data": _reading("gas-w1", 55, 1)})
    deadline = time.monotonic() + 5
    while r.zcard(k.alarms_open) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join(timeout=3)
    assert not t.is_alive()
    assert r.zcard(k.alarms_open) == 1 and r.xlen(k.dead) == 1
    assert r.hget(k.heartbeats, "worker:loop") is not None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server binary not available")
    yield free_port(), tmp_path


def _start(port: int, d: Path) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(d),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    c = redis.Redis(port=port)
    for _ in range(100):
        try:
            c.ping()
            return p
        except redis.ConnectionError:
            time.sleep(0.02)
    raise RuntimeError("private redis did not start")


def test_worker_survives_a_redis_restart(
    gridcc_env: dict[str, str], private_redis: tuple[int, Path]
) -> None:
    port, d = private_redis
    server = _start(port, d)
    r = redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1)
    stop = threading.Event()
    try:
        _register(r)
        t = threading.Thread(
            target=run,
            kwargs={"stop": stop, "r": r, "consumer": "c1", "block_ms": 100},
            daemon=True,
        )
        t.start()
        time.sleep(0.3)
        server.terminate()
        server.wait(timeout=5)
        time.sleep(0.5)  # the worker now sees refused connections
        server = _start(port, d)  # empty: streams and groups are gone
        _register(r)
        r.xadd(keys().readings, {"data": _reading("gas-w1", 60, 2)})
        deadline = time.monotonic() + 10
        while r.zcard(keys().alarms_open) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.zcard(keys().alarms_open) == 1
        assert t.is_alive()
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=5)
        r.close()
