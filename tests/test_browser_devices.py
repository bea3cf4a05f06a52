"""The device team's flow in Chromium: register on the page, see it waiting, publish over the
real broker through real ingest and worker processes, see it verified and then live."""

# ruff: noqa: F811  (pytest fixtures imported from tests.browser_support)
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis

from core.keys import keys
from devices.registry import DeviceStatus, get_device
from i18n import t
from ingest.simulator import encode
from tests.browser_support import browser, page_factory, web  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
JINSHUI = (113.6835, 34.7740)  # 金水区, near 花园路
ZH = "zh-CN"


def wait_for(pred: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def roles(gridcc_env: dict[str, str]) -> Iterator[None]:
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


@pytest.fixture
def publish(gridcc_env: dict[str, str]) -> Iterator[Callable[[str, bytes], None]]:
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"devpage-{gridcc_env['GRIDCC_PREFIX']}"
    )
    c.connect("127.0.0.1", 1883)
    c.loop_start()

    def send(topic: str, payload: bytes) -> None:
        c.publish(gridcc_env["MQTT_ROOT"] + topic, payload, qos=1).wait_for_publish(5)

    yield send
    c.loop_stop()
    c.disconnect()


def _row_text(page: Any, table: str, key: str) -> str:
    row = page.locator(f"#{table} tr", has_text=key)
    return row.first.inner_text() if row.count() else ""


def _wait_row(page: Any, table: str, key: str, text: str, timeout_s: float) -> float:
    t0 = time.monotonic()
    page.wait_for_function(
        """([sel, key, txt]) => Array.from(document.querySelectorAll(sel + ' tr')).some(
            tr => tr.innerText.includes(key) && tr.innerText.includes(txt))""",
        arg=[f"#{table}", key, text],
        timeout=timeout_s * 1000,
    )
    return time.monotonic() - t0


def _choose(page: Any, dropdown: str, label: str) -> None:
    page.click(f"#{dropdown}")
    page.get_by_role("option", name=label).click()


def test_register_wait_publish_verified_then_live(
    web,
    page_factory,
    r: redis.Redis,
    gridcc_env: dict[str, str],
    roles: None,
    publish: Callable[[str, bytes], None],
    artifacts: Path,
) -> None:
    rec = page_factory(web.url + "/devices", wait_for="#devices-form")
    page = rec.page
    page.wait_for_selector("#devices-push-status.live", timeout=10000)
    assert page.inner_text("#devices-title") == t("devices.title", ZH)

    # A click on the small map fills lon/lat (WGS84).
    box = page.locator("#devices-map").bounding_box()
    assert box
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("document.querySelector('#devices-lon').value !== ''", timeout=3000)
    lon = float(page.input_value("#devices-lon"))
    lat = float(page.input_value("#devices-lat"))
    assert 112.5 < lon < 114.5 and 34.2 < lat < 35.1, (lon, lat)

    page.fill("#devices-id", "gas-web-1")
    page.fill("#devices-name", "花园路燃气井")
    _choose(page, "devices-type", "可燃气体监测（gas）")
    _choose(page, "devices-profile", "gas_z2m · zigbee2mqtt")
    page.fill("#devices-lon", str(JINSHUI[0]))
    page.fill("#devices-lat", str(JINSHUI[1]))
    page.click("#devices-submit")
    page.wait_for_selector("#devices-result-status", timeout=5000)
    assert page.inner_text("#devices-result-status") == "等待首条数据"
    topic = gridcc_env["MQTT_ROOT"] + "zigbee2mqtt/gas-web-1"
    assert page.inner_text("#devices-result-topic") == topic
    assert '"gas_value"' in page.inner_text("#devices-result-payload")
    _wait_row(page, "devices-health", "gas-web-1", "等待首条数据", 5)

    # The same id again: refused inline, next to the id field.
    page.click("#devices-submit")
    page.wait_for_function(
        "txt => document.querySelector('#devices-err-id').innerText.startsWith(txt)",
        arg=t("devices.err.duplicate_id", ZH),
        timeout=5000,
    )

    # Ingest is subscribed once a probe on a topic nobody owns is listed as unknown.
    probe = "zigbee2mqtt/probe-unregistered"

    def probed() -> bool:
        publish(probe, b'{"gas_value": 1}')
        return bool(r.hexists(keys().unknown_devices, probe))

    wait_for(probed, 30, "ingest to subscribe", every=0.5)
    _wait_row(page, "devices-unknown", probe, "", 5)

    dev = get_device(r, "gas-web-1")
    assert dev is not None
    publish(dev.topic, encode(dev, {"ch4_lel": 1.0}, int(time.time() * 1000), 90, 120))
    wait_for(
        lambda: get_device(r, "gas-web-1").status == DeviceStatus.VERIFIED,  # type: ignore[union-attr]
        10,
        "the first reading to verify the device",
    )
    verified_s = _wait_row(page, "devices-health", "gas-web-1", "已校验", 5)
    page.screenshot(path=str(artifacts / "devices-verified.png"), full_page=True)

    publish(dev.topic, encode(dev, {"ch4_lel": 1.5}, int(time.time() * 1000), 88, 118))
    live_s = _wait_row(page, "devices-health", "gas-web-1", "在线", 10)
    row = _row_text(page, "devices-health", "gas-web-1")
    assert "+08:00" in row and "可燃气体监测" in row
    page.screenshot(path=str(artifacts / "devices-live.png"), full_page=True)
    print(f"verified on screen after {verified_s:.2f} s, live after {live_s:.2f} s")
    assert rec.errors == []


def test_import_dry_run_then_store_the_good_rows(
    web, page_factory, r: redis.Redis, tmp_path: Path
) -> None:
    csv = tmp_path / "devices.csv"
    csv.write_text(
        "id,name,type,profile,lon,lat\n"
        f"gas-csv-1,井一,gas,gas_z2m,{JINSHUI[0]},{JINSHUI[1]}\n"
        f"gas-csv-2,井二,gas,water_senml,{JINSHUI[0]},{JINSHUI[1]}\n",
        encoding="utf-8",
    )
    page = page_factory(web.url + "/devices", wait_for="#devices-form").page
    page.set_input_files("#devices-upload input[type=file]", str(csv))
    _wait_row(page, "devices-import-report", "profile", "water_pressure", 5)
    assert "2 行" in page.inner_text("#devices-import-msg")
    assert r.scard(keys().devices) == 0

    # A bad row blocks the whole file until "store the good ones" is ticked.
    page.click("#devices-import-confirm")
    page.wait_for_function(
        "txt => document.querySelector('#devices-import-msg').innerText === txt",
        arg=t("devices.import.blocked", ZH),
        timeout=5000,
    )
    assert r.scard(keys().devices) == 0
    page.click(f"text={t('devices.import.store_good', ZH)}")
    page.click("#devices-import-confirm")
    _wait_row(page, "devices-health", "gas-csv-1", "等待首条数据", 5)
    assert t("devices.import.stored", ZH).format(n=1) in page.inner_text("#devices-import-msg")
    assert [m.decode() for m in r.smembers(keys().devices)] == ["gas-csv-1"]
    assert page.is_disabled("#devices-import-confirm")
