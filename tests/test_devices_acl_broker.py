"""Per-device credentials and topic ACL, enforced by a private Mosquitto on a free port."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from devices.broker_acl import check_password, hash_password, issue_credentials, write_broker_files
from devices.health import decommission
from devices.registry import Device, register_device
from tests.conftest import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
pytestmark = pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed")


def test_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    h = hash_password("s3cret")
    assert h.startswith("$7$101$") and check_password("s3cret", h) and not check_password("x", h)
    if shutil.which("mosquitto_passwd"):
        pw = tmp_path / "pw"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "u", "s3cret"], check=True)
        assert check_password("s3cret", pw.read_text().strip().split(":", 1)[1])


@pytest.fixture
def broker(r: redis.Redis, tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    devs = {}
    for i in ("acl-1", "acl-2"):
        register_device(r, Device(id=i, type="gas", profile="gas_z2m", lon=113.65, lat=34.76))
        devs[i] = issue_credentials(r, i)
    register_device(r, Device(id="acl-3", type="gas", profile="gas_z2m", lon=113.65, lat=34.76))
    devs["acl-3"] = issue_credentials(r, "acl-3")
    decommission(r, "acl-3", "ops", "retired")
    passwd, acl = write_broker_files(r, tmp_path / "broker", ingest_password="ingest-pw")
    assert "user acl-3" not in acl.read_text()
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        f"acl_file {acl}\npersistence false\nuser {getpass.getuser()}\n"
    )
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, devs
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def _connect(port: int, user: str, pw: str) -> tuple[mqtt.Client, bool]:
    done = threading.Event()
    ok: list[bool] = []
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.time_ns()}", protocol=mqtt.MQTTv5
    )
    c.username_pw_set(user, pw)

    def on_connect(c: mqtt.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
        ok.append(not rc.is_failure)
        done.set()

    c.on_connect = on_connect
    c.on_disconnect = lambda c, u, f, rc, p: done.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    done.wait(5)
    return c, bool(ok and ok[0])


def test_broker_enforces_credentials_and_topics(
    r: redis.Redis, broker: tuple[int, dict[str, str]]
) -> None:
    port, pws = broker
    from core.config import get_settings

    root = get_settings().mqtt_root
    got: list[tuple[str, bytes]] = []
    sub, ok = _connect(port, "gridcc-ingest", "ingest-pw")
    assert ok
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: got.append((m.topic, bytes(m.payload)))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe(f"{root}#", qos=1)
    assert subscribed.wait(5)

    bad, ok = _connect(port, "acl-1", "wrong-password")
    assert not ok, "a wrong password must be refused"
    bad.loop_stop()
    retired, ok = _connect(port, "acl-3", pws["acl-3"])
    assert not ok, "a decommissioned device has no credentials"
    retired.loop_stop()

    dev, ok = _connect(port, "acl-1", pws["acl-1"])
    assert ok
    dev.publish(f"{root}zigbee2mqtt/acl-2", b'{"gas_value": 1}', qos=1).wait_for_publish(5)
    dev.publish(f"{root}zigbee2mqtt/acl-1/set", b"{}", qos=1).wait_for_publish(5)
    dev.publish(f"{root}zigbee2mqtt/acl-1", b'{"gas_value": 2}', qos=1).wait_for_publish(5)
    dev.publish(f"{root}zigbee2mqtt/acl-1/availability", b"online", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything not allowed would have arrived by now
    assert got == [
        (f"{root}zigbee2mqtt/acl-1", b'{"gas_value": 2}'),
        (f"{root}zigbee2mqtt/acl-1/availability", b"online"),
    ]
    for c in (dev, sub):
        c.disconnect()
        c.loop_stop()
