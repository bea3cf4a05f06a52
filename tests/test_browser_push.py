"""The push stream in the browser: the page reconnects by itself when the server restarts."""

# ruff: noqa: F811  (pytest fixtures imported from tests.browser_support)
from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from i18n import t
from modes.service import set_mode
from tests.browser_support import browser, page_factory, start_web  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def _wait_push_live(page, timeout_s: float = 10) -> None:
    page.wait_for_selector("#push-status.live", timeout=timeout_s * 1000)


def test_push_reconnects_after_server_restart(
    gridcc_env, page_factory, r: redis.Redis, tmp_path: Path
) -> None:
    env = {**gridcc_env, "GRIDCC_PUSH_HEARTBEAT_S": "1"}
    w = start_web(env, tmp_path)
    try:
        rec = page_factory(w.url + "/")
        page = rec.page
        _wait_push_live(page)
        port = w.port
        w.stop()
        # The page notices the dead stream (no keep-alive for 3.5 s) ...
        page.wait_for_selector("#push-status:not(.live)", timeout=8000)
        w = start_web(env, tmp_path, port=port)
        t0 = time.monotonic()
        # ... and, with the server back, opens a new stream by itself.
        _wait_push_live(page, timeout_s=10)
        assert any("/api/push?c=" in u for u in rec.requests)
        set_mode(r, "4101", "holiday", "春节保障", "test")
        page.wait_for_function(
            "txt => document.querySelector('#mode-badge').innerText === txt",
            arg=t("mode.holiday", "zh-CN"),
            timeout=2000,
        )
        print(f"reconnected and updated {time.monotonic() - t0:.1f} s after restart")
    finally:
        w.stop()
