"""The full-screen alarm pop-up and kiosk mode in headless Chromium, real web role and Redis."""

# ruff: noqa: F811  (pytest fixtures imported from tests.browser_support)
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis

from access.reads import list_alarms
from access.scope import demo_scope
from alarms import worker
from core.keys import keys
from core.models import Alarm, Reading
from core.timeutil import now_ms
from devices.registry import Device, register_device
from i18n import t
from tests.browser_support import browser, page_factory, web  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

POPUP_SHOWN = "document.querySelector('#alarm-popup').style.display === 'flex'"
POPUP_HIDDEN = "document.querySelector('#alarm-popup').style.display === 'none'"


def _raise(r: redis.Redis, device_id: str, value: float, lon: float) -> Alarm:
    """One gas reading through the alarm worker; the alarm it raised."""
    register_device(
        r,
        Device(id=device_id, name="燃气井", type="gas", profile="gas_tasmota", lon=lon, lat=34.776),
    )
    worker.ensure_groups(r)
    ts = now_ms()
    reading = Reading(
        device_id=device_id,
        ts_ms=ts,
        received_ms=ts,
        metrics={"ch4_lel": value},
        msg_id=f"{device_id}-{ts}",
        topic=f"tele/{device_id}/SENSOR",
    )
    r.xadd(keys().readings, {"data": reading.model_dump_json()})
    assert worker.step(r, "browser-popup", block_ms=1000) >= 1
    found = [a for a in list_alarms(r, demo_scope()) if a.device_id == device_id]
    assert found, f"no alarm raised for {device_id}"
    return found[0]


def test_red_alarm_pops_up_on_every_screen_and_one_acknowledge_closes_all(
    web, page_factory, r: redis.Redis, artifacts: Path
) -> None:
    a = page_factory(web.url + "/").page
    b = page_factory(web.url + "/").page
    for p in (a, b):
        p.wait_for_selector("#push-status.live", timeout=10000)
        assert p.evaluate(POPUP_HIDDEN)

    # A blue alarm shows in the list but does not take the screen.
    _raise(r, "gas-popup-blue", 12.0, lon=113.70)
    a.wait_for_function(
        "txt => document.querySelector('#alarm-list').innerText.includes(txt)",
        arg=t("severity.blue", "zh-CN"),
        timeout=2000,
    )
    time.sleep(0.5)
    assert a.evaluate(POPUP_HIDDEN) and b.evaluate(POPUP_HIDDEN)

    t0 = time.monotonic()
    red = _raise(r, "gas-popup-red", 62.0, lon=113.686)
    a.wait_for_function(POPUP_SHOWN, timeout=2000)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0
    print(f"red alarm -> pop-up: {elapsed * 1000:.0f} ms")
    b.wait_for_function(POPUP_SHOWN, timeout=2000)
    for p in (a, b):
        assert p.inner_text("#popup-title") == red.title
        assert "+08:00" in p.inner_text("#popup-time")
        assert "金水区" in p.inner_text("#popup-place")
        assert "62 %LEL" in p.inner_text("#popup-value")
        assert "sev-red" in (p.get_attribute("#alarm-popup", "class") or "")
    # The tone plays, or the screen asks once for the click the browser needs first.
    a.wait_for_function(
        "() => { const au = document.querySelector('#popup-audio');"
        " const h = document.querySelector('#popup-sound-hint');"
        " return !au.paused || h.style.display === 'block'; }",
        timeout=2000,
    )
    playing = a.evaluate("!document.querySelector('#popup-audio').paused")
    print(f"tone: {'playing' if playing else 'blocked, hint shown'}")
    assert a.evaluate("document.querySelector('#popup-audio').loop")
    assert a.evaluate("document.querySelector('#popup-audio').src").endswith("/assets/alarm.wav")
    a.screenshot(path=str(artifacts / "alarm-popup.png"))

    t0 = time.monotonic()
    a.click("#popup-ack")
    b.wait_for_function(POPUP_HIDDEN, timeout=2000)
    a.wait_for_function(POPUP_HIDDEN, timeout=2000)
    print(
        f"acknowledge -> pop-up gone on the other screen: {(time.monotonic() - t0) * 1000:.0f} ms"
    )
    stored = Alarm.model_validate_json(r.get(keys().alarm(red.id)) or b"")
    assert stored.state.value == "acknowledged"
    assert stored.history[-1]["by"] == "screen"
    # The tone stops with the pop-up (its clientside callback runs just after the re-render).
    a.wait_for_function("document.querySelector('#popup-audio').paused", timeout=1000)


def test_several_new_alarms_queue_with_a_count(web, page_factory, r: redis.Redis) -> None:
    page = page_factory(web.url + "/").page
    page.wait_for_selector("#push-status.live", timeout=10000)
    first = _raise(r, "gas-popup-q1", 62.0, lon=113.686)
    second = _raise(r, "gas-popup-q2", 30.0, lon=113.72)
    page.wait_for_function(
        "txt => { const e = document.querySelector('#popup-count'); return e && e.innerText === txt; }",
        arg=t("popup.queue", "zh-CN").format(n=1),
        timeout=2000,
    )
    assert page.inner_text("#popup-title") == first.title
    page.click("#popup-ack")
    # The orange one comes next, then nothing is left.
    page.wait_for_function(
        "() => (document.querySelector('#alarm-popup').className || '').includes('sev-orange')",
        timeout=2000,
    )
    assert page.inner_text("#popup-title") == second.title
    assert page.inner_text("#popup-count") == ""
    page.click("#popup-ack")
    page.wait_for_function(POPUP_HIDDEN, timeout=2000)


def test_kiosk_hides_controls_and_the_resting_cursor(web, page_factory) -> None:
    plain = page_factory(web.url + "/").page
    assert plain.is_visible("#mode-open") and plain.is_visible("#page-nav")

    rec = page_factory(web.url + "/?kiosk=1")
    page: Any = rec.page
    assert not page.is_visible("#mode-open")
    assert not page.is_visible("#page-nav")
    assert page.is_visible("#mode-badge") and page.is_visible("#map")
    box = page.locator(".gc-page").bounding_box()
    assert box and box["width"] >= 1919 and box["height"] >= 1079
    page.mouse.move(200, 200)
    assert not page.evaluate("document.documentElement.classList.contains('gc-nocursor')")
    page.wait_for_function(
        "document.documentElement.classList.contains('gc-nocursor')", timeout=4500
    )
    assert page.evaluate("getComputedStyle(document.querySelector('#map')).cursor") == "none"
    page.mouse.move(300, 300)
    assert not page.evaluate("document.documentElement.classList.contains('gc-nocursor')")
    assert rec.errors == []


# Headless Chromium lets pages play sound at once; a kiosk browser just started does not.
# This makes the page's own play() refuse the way such a browser does, until a real click.
REFUSE_SOUND_UNTIL_CLICK = """
(() => {
  let clicked = false;
  window.addEventListener("pointerdown", () => { clicked = true; }, true);
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (clicked) { return play.call(this); }
    return Promise.reject(new DOMException("play() needs a user gesture", "NotAllowedError"));
  };
})();
"""


def test_blocked_sound_asks_once_for_a_click_and_the_popup_shows_anyway(
    web, browser, r: redis.Redis
) -> None:
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    try:
        ctx.add_init_script(REFUSE_SOUND_UNTIL_CLICK)
        page = ctx.new_page()
        page.goto(web.url + "/")
        page.wait_for_selector("#push-status.live", timeout=15000)
        _raise(r, "gas-popup-mute", 62.0, lon=113.686)
        page.wait_for_function(POPUP_SHOWN, timeout=2000)
        page.wait_for_function(
            "document.querySelector('#popup-sound-hint').style.display === 'block'", timeout=2000
        )
        assert page.inner_text("#popup-sound-hint") == t("popup.sound_hint", "zh-CN")
        assert page.evaluate("document.querySelector('#popup-audio').paused")
        page.click("#popup-sound-hint")
        page.wait_for_function("!document.querySelector('#popup-audio').paused", timeout=2000)
        assert page.evaluate("document.querySelector('#popup-sound-hint').style.display") == "none"
        assert page.evaluate(POPUP_SHOWN)
    finally:
        ctx.close()
