"""One hotline order through the whole loop on the 工单办理 page, by three demo identities,
in Chromium against the real web role and Redis; a second screen follows it by push."""

# ruff: noqa: F811  (pytest fixtures imported from tests.browser_support)
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from core.models import Channel, OrderStatus, Report
from dashboard.pages import orders_logic as logic
from i18n import t
from tests.browser_support import browser, page_factory, web  # noqa: F401  (fixtures)
from workorders.service import create_from_report, get_order

pytestmark = pytest.mark.browser

ZH = "zh-CN"
JINSHUI = (113.6835, 34.7740)


def _text_is(page: Any, sel: str, text: str, timeout_s: float = 8) -> None:
    page.wait_for_function(
        "([s, x]) => { const e = document.querySelector(s); return !!e && e.innerText.trim() === x; }",
        arg=[sel, text],
        timeout=timeout_s * 1000,
    )


def _has_text(page: Any, sel: str, text: str, timeout_s: float = 8) -> None:
    page.wait_for_function(
        "([s, x]) => { const e = document.querySelector(s); return !!e && e.innerText.includes(x); }",
        arg=[sel, text],
        timeout=timeout_s * 1000,
    )


def _act_as(page: Any, key: str) -> None:
    page.locator("#orders-who label", has_text=t(f"orders.page.who.{key}", ZH)).click()


def _select(page: Any, oid: str) -> None:
    row = page.locator("#orders-list tr", has_text=oid)
    row.wait_for(timeout=10000)
    row.locator("input").first.click()
    _text_is(page, "#orders-detail-id", oid)


def test_one_order_through_the_loop_by_three_users(
    web, page_factory, r: redis.Redis, tmp_path: Path, artifacts: Path
) -> None:
    rep = Report(
        channel=Channel.HOTLINE,
        text="花园路人行道井盖破损<b>危险</b>",
        category="城乡建设",
        lon=JINSHUI[0],
        lat=JINSHUI[1],
        reporter_name="王女士",
        call_id="C-2001",
    )
    oid = create_from_report(r, rep, report_id="rpt-browser-loop").id
    photo = tmp_path / "现场照片.png"
    ok, buf = cv2.imencode(".png", np.full((60, 80, 3), (40, 160, 220), dtype=np.uint8))
    assert ok
    photo.write_bytes(buf.tobytes())

    rec = page_factory(web.url + "/orders", wait_for="#orders-who")
    page = rec.page
    page.wait_for_selector("#orders-push-status.live", timeout=10000)
    assert page.inner_text("#orders-title") == t("orders.page.title", ZH)
    assert t("orders.page.demo_note", ZH) in page.inner_text("#orders-who-bar")
    watcher = page_factory(web.url + "/orders", wait_for="#orders-who").page
    watcher.wait_for_selector("#orders-push-status.live", timeout=10000)
    _select(watcher, oid)

    # 1. The center operator accepts and assigns to 城管.
    _select(page, oid)
    _text_is(page, "#orders-status", "受理核实")
    # The report's markup is shown as the citizen typed it, never as HTML.
    assert page.inner_text("#orders-text") == rep.text
    assert page.locator("#orders-text b").count() == 0
    page.fill("#orders-note", "电话回访核实属实")
    page.click("#orders-do-accept")
    _text_is(page, "#orders-msg", f"工单 {oid} 已受理")
    _text_is(page, "#orders-status", "分流交办")
    page.click("#orders-lead")
    page.get_by_role("option", name="城管", exact=True).click()
    page.click("#orders-do-assign")
    _text_is(page, "#orders-msg", f"工单 {oid} 已交办")
    page.wait_for_selector('[id="orders-part-城管"]', timeout=8000)
    assert "剩余" in page.inner_text('[id="orders-part-城管"]')
    # The other screen follows by push, without a click.
    _text_is(watcher, "#orders-status", "分流交办")

    # 2. 城管 staff start, consult, and report with a photo.
    _act_as(page, "chengguan")
    page.wait_for_selector("#orders-do-start", state="visible", timeout=8000)
    assert page.is_hidden("#orders-do-assign")
    page.click("#orders-do-start")
    _text_is(page, "#orders-status", "协同处置")
    page.fill("#orders-message", "井盖规格已确认，今日更换")
    page.click("#orders-do-message")
    _has_text(page, "#orders-thread", "井盖规格已确认，今日更换")
    assert "城管局工作人员（城管）" in page.inner_text("#orders-thread")
    page.fill("#orders-result", "已更换井盖并恢复通行")
    page.set_input_files("#orders-photos input[type=file]", str(photo))
    _has_text(page, "#orders-photo-names", "现场照片.png")
    page.click("#orders-do-feedback")
    _text_is(page, "#orders-status", "结果反馈")
    page.wait_for_function(
        "() => { const i = document.querySelector('img.od-thumb');"
        " return !!i && i.complete && i.naturalWidth === 80; }",
        timeout=8000,
    )

    # The handler tries to check their own work: refused, with the reason, nothing changes.
    page.locator("#orders-verdict label", has_text="核查通过").click()
    page.locator("#orders-satisfaction label", has_text="5 很满意").click()
    page.click("#orders-do-check")
    _text_is(page, "#orders-msg", "操作未执行：城管局工作人员 是本工单的处置人，不能核查自己的工作")
    assert page.inner_text("#orders-status") == "结果反馈"
    page.screenshot(path=str(artifacts / "orders-refused-own-check.png"), full_page=True)

    # 3. The grid member checks: passed, satisfaction 5 -> closed.
    _act_as(page, "grid")
    page.wait_for_selector("#orders-do-check", state="visible", timeout=8000)
    assert page.is_hidden("#orders-do-feedback")
    page.locator("#orders-verdict label", has_text="核查通过").click()
    page.locator("#orders-satisfaction label", has_text="5 很满意").click()
    t0 = time.monotonic()
    page.click("#orders-do-check")
    _text_is(page, "#orders-status", "办结")
    _text_is(watcher, "#orders-status", "办结")
    print(f"closed on the watching screen {time.monotonic() - t0:.2f} s after the click")
    _text_is(page, "#orders-no-actions", t("orders.page.no_actions", ZH))
    history = page.inner_text("#orders-history")
    for who in ("指挥中心值班员", "城管局工作人员", "网格员"):
        assert who in history
    assert "+08:00" in history and "诉求人满意度 5" in history
    page.screenshot(path=str(artifacts / "orders-closed.png"), full_page=True)

    o = get_order(r, oid)
    assert o is not None and o.status == OrderStatus.CLOSED and o.satisfaction == 5
    bys = {s["by"] for s in o.history if s["action"] in ("status", "assigned", "feedback")}
    assert bys == {i.by for i in logic.IDENTITIES.values() if i.key != "shuiwu"}
    assert o.parts[0].evidence[0].startswith("photo:ev-") and o.parts[0].evidence[0].endswith(
        ".png"
    )
    assert rec.errors == []
