"""The whole path on the screen: a reading published to the real Mosquitto goes through the
real ingest and worker processes, and the open page shows the red alarm, the red marker and
the located work order within two seconds of the publish; a hotline report posted to the
intake API of the same web process appears as an order the same way."""

# ruff: noqa: F811
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis

from core.keys import keys
from core.timeutil import now_ms
from devices.registry import Device, register_device
from i18n import t
from ingest.simulator import encode
from tests.browser_support import browser, page_factory, web  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.browser


@pytest.fixture
def pipeline_roles(gridcc_env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    env = {**os.environ, **gridcc_env, "LOG_LEVEL": "WARNING"}
    procs = [
        subprocess.Popen([sys.executable, str(ROOT / "app.py"), role], cwd=ROOT, env=env)
        for role in ("ingest-mqtt", "worker")
    ]
    yield
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def _text_within(page: Any, selector: str, text: str, seconds: float) -> None:
    page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return !!e && e.innerText.includes(t); }",
        arg=[selector, text],
        timeout=seconds * 1000,
    )


def test_mqtt_reading_reaches_the_page_as_alarm_and_order(
    web,
    page_factory,
    r: redis.Redis,
    gridcc_env: dict[str, str],
    pipeline_roles: None,
    artifacts: Path,
) -> None:
    dev = register_device(
        r,
        Device(
            id="gas-e2e-page",
            name="花园路燃气井",
            type="gas",
            profile="gas_z2m",
            lon=113.6835,
            lat=34.7740,
        ),
    )
    assert dev.place is not None
    pub = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"page-{gridcc_env['GRIDCC_PREFIX']}"
    )
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    topic = gridcc_env["MQTT_ROOT"] + dev.topic
    try:
        # Normal readings until ingest and the worker have seen one: the path is warm.
        deadline = time.monotonic() + 30
        while not r.hget(keys().device_state(dev.id), "last_seen_ms"):
            assert time.monotonic() < deadline, "ingest and worker never saw a reading"
            pub.publish(
                topic, encode(dev, {"ch4_lel": 1.0}, now_ms(), 90, 120), qos=1
            ).wait_for_publish(5)
            time.sleep(0.3)

        page = page_factory(web.url + "/").page
        page.wait_for_selector("#push-status.live", timeout=10000)
        assert t("alarms.empty", "zh-CN") in page.inner_text("#alarm-list")

        t0 = time.monotonic()
        pub.publish(
            topic, encode(dev, {"ch4_lel": 62.0}, now_ms(), 90, 120), qos=1
        ).wait_for_publish(5)
        _text_within(page, "#alarm-list", t("severity.red", "zh-CN"), 2)
        _text_within(page, "#order-list", "金水区", 2)
        elapsed = time.monotonic() - t0
        assert elapsed < 2.0, f"publish to screen took {elapsed:.2f} s"
        page.wait_for_selector(".gc-dev-red, .gc-cluster-red", timeout=2000)
        page.screenshot(path=str(artifacts / "e2e-mqtt-alarm.png"))
        print(f"MQTT publish to alarm and order on screen: {elapsed * 1000:.0f} ms")
    finally:
        pub.loop_stop()
        pub.disconnect()

    # A hotline report through the same web process's intake API.
    body = json.dumps(
        {
            "channel": "hotline",
            "title": "花园路积水",
            "text": "花园路农业路口积水严重，车辆无法通行",
            "lon": 113.6840,
            "lat": 34.7760,
        },
        ensure_ascii=False,
    ).encode()
    req = urllib.request.Request(
        web.url + "/api/v1/reports",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 202
    _text_within(page, "#order-list", "花园路积水", 2)
    assert time.monotonic() - t0 < 2.0
