"""The command center in headless Chromium against the real web role and Redis."""

# ruff: noqa: F811  (pytest fixtures imported from tests.browser_support)
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from core.keys import keys
from core.models import Reading
from core.timeutil import now_ms
from grids.dataset import load_city
from i18n import t
from tests.browser_support import (  # noqa: F401  (fixtures)
    browser,
    launch_without_cjk_fonts,
    non_loopback,
    page_factory,
    web,
)

pytestmark = pytest.mark.browser


def _wait_text(page: Any, selector: str, text: str, timeout_s: float) -> float:
    """Seconds until ``selector`` shows ``text`` (fails after ``timeout_s``)."""
    t0 = time.monotonic()
    page.wait_for_function(
        "([sel, txt]) => { const e = document.querySelector(sel); return e && e.innerText.includes(txt); }",
        arg=[selector, text],
        timeout=timeout_s * 1000,
    )
    return time.monotonic() - t0


def _wait_push_live(page: Any, timeout_s: float = 10) -> None:
    page.wait_for_selector("#push-status.live", timeout=timeout_s * 1000)


def test_page_shows_city_map_and_stays_on_loopback(web, page_factory, artifacts: Path) -> None:
    rec = page_factory(web.url + "/")
    page = rec.page
    _wait_push_live(page)
    assert page.inner_text("#title") == t("app.title", "zh-CN")

    # 15 county outlines and 208 township polygons are drawn as SVG paths.
    page.wait_for_function(
        "document.querySelectorAll('.leaflet-overlay-pane path').length >= 223", timeout=10000
    )
    assert page.locator(".leaflet-overlay-pane path").count() >= 15 + 208

    # Hovering the map shows a township's tooltip, marked generated, with its district.
    city = load_city()
    counties = {u.name for u in city.units_at("county")}
    townships = {u.name for u in city.units_at("township")}
    box = page.locator("#map").bounding_box()
    assert box
    tip = ""
    for dx, dy in ((0.5, 0.5), (0.45, 0.4), (0.55, 0.6), (0.4, 0.55)):
        page.mouse.move(box["x"] + box["width"] * dx, box["y"] + box["height"] * dy)
        try:
            page.wait_for_selector(".leaflet-tooltip", timeout=1500)
        except Exception:
            continue
        tip = page.inner_text(".leaflet-tooltip")
        break
    assert "（生成）" in tip, tip
    town, _, county = tip.partition(" · ")
    assert town.replace("（生成）", "") in townships
    assert county in counties
    assert "生成" in page.inner_text("#map-legend")

    page.screenshot(path=str(artifacts / "dashboard-zh.png"))
    assert rec.errors == []
    assert non_loopback(rec.requests) == [], non_loopback(rec.requests)
    # Every script and style came from this server (nothing from a CDN).
    assert any("/_dash-component-suites/dash_leaflet/" in u for u in rec.requests)


def test_mode_switch_on_one_page_shows_on_another_within_2s(
    web, page_factory, r: redis.Redis
) -> None:
    a = page_factory(web.url + "/").page
    b = page_factory(web.url + "/").page
    _wait_push_live(a)
    _wait_push_live(b)
    assert b.inner_text("#mode-badge") == t("mode.daily", "zh-CN")

    a.click("#mode-open")
    a.click(f"text={t('mode.major_task', 'zh-CN')}")
    a.fill("#mode-reason", "国际马拉松赛事保障")
    t0 = time.monotonic()
    a.click("#mode-confirm")
    b.wait_for_function(
        "txt => document.querySelector('#mode-badge').innerText === txt",
        arg=t("mode.major_task", "zh-CN"),
        timeout=2000,
    )
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0
    assert "国际马拉松赛事保障" in b.inner_text("#mode-meta")
    print(f"mode switch A->B: {elapsed * 1000:.0f} ms")

    # Emergency needs a second confirmation; until then nothing changes.
    a.click("#mode-open")
    a.click(f"text={t('mode.emergency', 'zh-CN')}")
    a.fill("#mode-reason", "暴雨红色预警")
    a.click("#mode-confirm")
    a.wait_for_selector("#mode-emergency-confirm", state="visible", timeout=2000)
    time.sleep(0.5)
    assert b.inner_text("#mode-badge") == t("mode.major_task", "zh-CN")
    t0 = time.monotonic()
    a.click("#mode-emergency-confirm")
    b.wait_for_function(
        "txt => document.querySelector('#mode-badge').innerText === txt",
        arg=t("mode.emergency", "zh-CN"),
        timeout=2000,
    )
    assert time.monotonic() - t0 < 2.0
    log: Any = r.xrevrange(keys().mode_log, count=1)
    assert log[0][1][b"mode"] == b"emergency" and log[0][1][b"by"] == b"demo"


def test_mode_switch_without_reason_is_refused(web, page_factory, r: redis.Redis) -> None:
    a = page_factory(web.url + "/").page
    a.click("#mode-open")
    a.click(f"text={t('mode.holiday', 'zh-CN')}")
    a.click("#mode-confirm")
    _wait_text(a, "#mode-msg", t("mode.need_reason", "zh-CN"), 3)
    assert r.hget(keys().modes, "4101") is None


def _gas_device(r: redis.Redis) -> str:
    from devices.registry import Device, register_device

    # 金水区: a point inside the city so the alarm is located in a grid.
    dev = register_device(
        r,
        Device(
            id="gas-jinshui-01",
            name="金水路燃气井",
            type="gas",
            profile="gas_tasmota",
            lon=113.686,
            lat=34.776,
        ),
    )
    return dev.id


def test_alarm_from_worker_path_appears_within_2s(web, page_factory, r: redis.Redis) -> None:
    from alarms import worker

    device_id = _gas_device(r)
    worker.ensure_groups(r)
    page = page_factory(web.url + "/").page
    _wait_push_live(page)
    assert t("alarms.empty", "zh-CN") in page.inner_text("#alarm-list")

    ts = now_ms()
    reading = Reading(
        device_id=device_id,
        ts_ms=ts,
        received_ms=ts,
        metrics={"ch4_lel": 62.0},
        msg_id=f"{device_id}-{ts}",
        topic="tele/gas-jinshui-01/SENSOR",
    )
    r.xadd(keys().readings, {"data": reading.model_dump_json()})
    t0 = time.monotonic()
    assert worker.step(r, "browser-test", block_ms=1000) >= 1
    _wait_text(page, "#alarm-list", t("severity.red", "zh-CN"), 2)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0
    row = page.inner_text("#alarm-list")
    assert "+08:00" in row and "金水区" in row
    page.wait_for_function(
        "document.querySelector('#kpi-alarm-red').innerText === '1'", timeout=2000
    )
    # The device's marker (or its cluster) turns red on the map.
    page.wait_for_selector(".gc-dev-red, .gc-cluster-red", timeout=3000)
    print(f"alarm to screen: {elapsed * 1000:.0f} ms")


def test_citizen_text_is_shown_as_text_not_html(web, page_factory, r: redis.Redis) -> None:
    from core.models import Channel, Report
    from workorders.service import create_from_report

    page = page_factory(web.url + "/").page
    _wait_push_live(page)
    title = "<img src=x onerror=alert(1)>井盖<b>缺失</b>"
    rep = Report(
        channel=Channel.HOTLINE,
        text="金水路与经三路口井盖缺失，夜间危险",
        title=title,
        lon=113.686,
        lat=34.776,
    )
    t0 = time.monotonic()
    create_from_report(r, rep, report_id="rpt-browser-1")
    _wait_text(page, "#order-list", "<img src=x onerror=alert(1)>井盖<b>缺失</b>", 2)
    assert time.monotonic() - t0 < 2.0
    assert page.locator("#order-list img").count() == 0
    assert page.locator("#order-list b").count() == 0
    assert t("channel.hotline", "zh-CN") in page.inner_text("#order-list")


def _glyph_report(page: Any, selector: str = "#title", font: str | None = None) -> dict[str, Any]:
    """Draws each title character and a surely-missing code point with the title's font."""
    return page.evaluate(
        """([sel, font]) => {
        const el = document.querySelector(sel);
        const cs = getComputedStyle(el);
        const c = document.createElement('canvas'); c.width = 64; c.height = 64;
        const g = c.getContext('2d');
        g.font = '40px ' + (font || cs.fontFamily);
        const draw = ch => { g.clearRect(0, 0, 64, 64); g.fillText(ch, 4, 48);
            return Array.from(g.getImageData(0, 0, 64, 64).data.filter((v, i) => i % 4 === 3)).join(','); };
        const text = el.innerText;
        const range = document.createRange(); range.selectNodeContents(el);
        return {
            text: text,
            fontSize: parseFloat(cs.fontSize),
            letterSpacing: parseFloat(cs.letterSpacing) || 0,
            width: range.getBoundingClientRect().width,
            glyphs: Array.from(text).map(draw),
            missing: draw('\\u{10FFFD}'),
        };
    }""",
        [selector, font],
    )


def test_chinese_renders_with_cjk_glyphs(web, page_factory, artifacts: Path) -> None:
    rec = page_factory(web.url + "/")
    page = rec.page
    page.screenshot(
        path=str(artifacts / "dashboard-header-zh.png"),
        clip={"x": 0, "y": 0, "width": 1920, "height": 90},
    )
    rep = _glyph_report(page)
    title = t("app.title", "zh-CN")
    assert rep["text"] == title
    # No glyph is the "missing" box, and distinct characters draw distinct shapes
    # (tofu boxes would all look alike).
    assert all(gl != rep["missing"] for gl in rep["glyphs"])
    distinct_chars = len(set(title))
    assert len(set(rep["glyphs"])) == distinct_chars
    # CJK glyphs are full-width: each takes about one em (plus the letter spacing).
    per_char = rep["width"] / len(title)
    assert 0.9 <= (per_char - rep["letterSpacing"]) / rep["fontSize"] <= 1.15, rep["width"]

    # Chromium names the face it actually used for the title.
    cdp = page.context.new_cdp_session(page)
    doc = cdp.send("DOM.getDocument")
    node = cdp.send("DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": "#title"})
    cdp.send("CSS.enable")
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
    used = {f["familyName"]: f["glyphCount"] for f in fonts}
    assert any("CJK" in name or name == "GridCC CJK" for name in used), used
    (artifacts / "dashboard-fonts.json").write_text(json.dumps(used, ensure_ascii=False))


def test_english_toggle(web, page_factory) -> None:
    page = page_factory(web.url + "/?lang=en").page
    assert page.inner_text("#title") == t("app.title", "en")
    assert page.inner_text("#mode-badge") == t("mode.daily", "en")
    assert page.inner_text("#lang-toggle") == t("app.lang_toggle", "en")


def _camera(r: redis.Redis, motion: bool) -> str:
    """A camera as the camera process leaves it in Redis: status hash and a real JPEG frame."""
    import cv2

    from core.config import get_settings
    from ingest.camera_status import encode

    cap = cv2.VideoCapture(str(get_settings().demo_video))
    ok, frame = cap.read()
    cap.release()
    assert ok
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(frame, (640, 360)))
    assert ok
    k = keys()
    r.sadd(k.cameras, "cam-1")
    r.set(k.camera_jpeg("cam-1"), jpeg.tobytes())
    r.hset(
        k.camera("cam-1"),
        mapping=encode(
            {
                "id": "cam-1",
                "name": "金水路口",
                "lon": 113.686,
                "lat": 34.776,
                "online": True,
                "fps": 12.0,
                "motion": 0.2 if motion else 0.0,
                "motion_active": motion,
                "last_frame_ms": now_ms(),
                "frame_age_limit_ms": 60000,
            }
        ),
    )
    return "cam-1"


def test_camera_tile_shows_live_view_motion_and_frame_age(
    web, page_factory, r: redis.Redis
) -> None:
    from core import push

    cam = _camera(r, motion=True)
    rec = page_factory(web.url + "/")
    page = rec.page
    _wait_push_live(page)
    assert page.get_attribute("#cam-img", "src") == f"/media/cameras/{cam}/live.mjpeg"
    page.wait_for_function("document.querySelector('#cam-img').naturalWidth === 640", timeout=5000)
    assert page.inner_text("#cam-name") == "金水路口"
    assert page.inner_text("#cam-motion") == t("camera.motion", "zh-CN")
    age = float(page.inner_text("#cam-age"))
    assert 0 <= age < 10

    r.hset(keys().camera(cam), mapping={"motion_active": "0", "motion": "0"})
    t0 = time.monotonic()
    push.publish(r, "camera", id=cam)
    _wait_text(page, "#cam-motion", t("camera.still", "zh-CN"), 2)
    assert time.monotonic() - t0 < 2.0


def test_bundled_font_draws_chinese_on_a_screen_without_cjk_fonts(
    web, browser, tmp_path: Path, artifacts: Path
) -> None:
    bare = launch_without_cjk_fonts(browser, tmp_path)
    try:
        page = bare.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(web.url + "/")
        page.wait_for_selector("#mode-badge", timeout=15000)
        page.evaluate("document.fonts.ready")
        # Control: with a system font only, this browser draws Chinese as empty boxes ...
        tofu = _glyph_report(page, "#title", font='"DejaVu Sans"')
        assert all(gl == tofu["missing"] for gl in tofu["glyphs"])
        # ... while the page, with its bundled face, draws every character of the title.
        rep = _glyph_report(page)
        assert all(gl != rep["missing"] for gl in rep["glyphs"])
        assert len(set(rep["glyphs"])) == len(set(t("app.title", "zh-CN")))
        loaded = page.evaluate(
            "() => [...document.fonts].filter(f => f.family.includes('GridCC CJK') && f.status === 'loaded').length"
        )
        assert loaded >= 1
        page.screenshot(path=str(artifacts / "dashboard-no-system-cjk.png"))
    finally:
        bare.close()


def test_long_stored_reason_keeps_header_one_line_and_mode_names_legible(
    web, page_factory, r: redis.Redis, artifacts: Path
) -> None:
    # A reason stored before the service limited it: the header must not grow.
    rec = {"mode": "major_task", "since_ms": now_ms(), "by": "值班长", "reason": "原因" * 2500}
    r.hset(keys().modes, "4101", json.dumps(rec, ensure_ascii=False))
    page = page_factory(web.url + "/").page
    _wait_push_live(page)
    header = page.locator(".gc-header").bounding_box()
    title = page.locator("#title").bounding_box()
    page.screenshot(path=str(artifacts / "dashboard-long-reason.png"))
    assert header and title and header["height"] < title["height"] * 2.2, (header, title)
    meta = page.evaluate(
        """() => { const e = document.querySelector('#mode-meta'); const s = getComputedStyle(e);
        return {h: e.getBoundingClientRect().height, ov: s.textOverflow, ws: s.whiteSpace,
                clipped: e.scrollWidth > e.clientWidth}; }"""
    )
    assert meta["ov"] == "ellipsis" and meta["ws"] == "nowrap" and meta["clipped"], meta
    assert page.get_attribute("#mode-reason", "maxlength") == "200"

    # The mode names in the dialog: light text on the dark panel, the chosen one marked.
    page.click("#mode-open")
    page.click(f"text={t('mode.holiday', 'zh-CN')}")
    looks = page.evaluate(
        """() => Array.from(document.querySelectorAll('#mode-choice label')).map(l => {
            const s = getComputedStyle(l);
            const rgb = s.color.match(/\\d+/g).map(Number);
            return {text: l.innerText.trim(), lum: (rgb[0] * 299 + rgb[1] * 587 + rgb[2] * 114) / 1000,
                    border: s.borderColor, checked: !!l.querySelector('input:checked')}; })"""
    )
    assert [x["text"] for x in looks] == [
        t(f"mode.{m}", "zh-CN") for m in ("daily", "holiday", "major_task", "emergency")
    ]
    assert all(x["lum"] > 180 for x in looks), looks
    chosen = [x for x in looks if x["checked"]]
    others = {x["border"] for x in looks if not x["checked"]}
    assert [x["text"] for x in chosen] == [t("mode.holiday", "zh-CN")]
    assert chosen[0]["border"] not in others, looks


def test_frozen_camera_turns_offline_on_the_tile_without_a_push(
    web, page_factory, r: redis.Redis
) -> None:
    # Found by a user: with the camera process stopped (SIGSTOP) nothing is pushed, and the
    # tile kept saying online over a frozen picture while the camera wall said offline.
    import threading

    cam = _camera(r, motion=False)
    r.hset(keys().camera(cam), mapping={"frame_age_limit_ms": "3000"})
    frozen = threading.Event()

    def live_camera() -> None:
        # Like a camera process: the status is rewritten every half second, never pushed.
        while not frozen.is_set():
            r.hset(keys().camera(cam), "last_frame_ms", str(now_ms()))
            frozen.wait(0.5)

    writer = threading.Thread(target=live_camera, daemon=True)
    writer.start()
    try:
        page = page_factory(web.url + "/").page
        _wait_push_live(page)
        _wait_text(page, "#cam-online", t("camera.online", "zh-CN"), 10)
    finally:
        frozen.set()
        writer.join(5)
    # No more writes and no push: the status ages like a frozen camera's.
    _wait_text(page, "#cam-online", t("camera.offline", "zh-CN"), 8)


@pytest.mark.parametrize(
    ("path", "width", "height"),
    [("/", 1366, 768), ("/?lang=en", 1920, 1080), ("/?lang=en", 1366, 768)],
)
def test_header_items_never_overlap(
    web, page_factory, r: redis.Redis, artifacts: Path, path: str, width: int, height: int
) -> None:
    # Found by a user: at 1366x768, and in English, the mode button covered the page links.
    rec = {"mode": "holiday", "since_ms": now_ms(), "by": "值班长", "reason": "春节保障" * 20}
    r.hset(keys().modes, "4101", json.dumps(rec, ensure_ascii=False))
    page = page_factory(web.url + path, width=width, height=height).page
    _wait_push_live(page)
    boxes = page.evaluate(
        """() => [...document.querySelectorAll('.gc-header > *, .gc-mode > *, .gc-nav > *')]
              .filter(e => !e.classList.contains('gc-mode') && !e.classList.contains('gc-nav'))
              .map(e => { const b = e.getBoundingClientRect();
                          return [e.id || e.className, b.left, b.top, b.right, b.bottom]; })"""
    )
    page.screenshot(path=str(artifacts / f"header-{width}-{'en' if 'en' in path else 'zh'}.png"))
    for i, (na, l1, t1, r1, b1) in enumerate(boxes):
        for nb, l2, t2, r2, b2 in boxes[i + 1 :]:
            overlap = min(r1, r2) - max(l1, l2) > 1 and min(b1, b2) - max(t1, t2) > 1
            assert not overlap, f"{na} overlaps {nb}"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
