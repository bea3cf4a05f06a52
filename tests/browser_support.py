"""Helpers for tests that drive the real web role with headless Chromium.

Start the web role in a subprocess on a free port (against the test's Redis prefix),
wait for /healthz, open pages that record every request they make.

    from tests.browser_support import browser, web, page_factory  # noqa: F401  (fixtures)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class WebProcess:
    """A web role started by a test; ``stop()`` ends it (by its own pid) and keeps its log."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_web(
    env: dict[str, str], log_dir: Path, port: int | None = None, timeout: float = 30
) -> WebProcess:
    """``python app.py web`` on a free loopback port, with ``env`` on top of ours; waits for /healthz."""
    port = port or free_port()
    full = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"web-{port}.log"
    fh = open(log_path, "ab")  # noqa: SIM115 - the child writes to it for its whole life
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "web"],
        cwd=ROOT,
        env=full,
        stdout=fh,
        stderr=subprocess.STDOUT,
    )
    fh.close()
    web = WebProcess(proc, port, log_path, env)
    try:
        wait_healthy(web, timeout)
    except Exception:
        web.stop()
        raise
    return web


def wait_healthy(web: WebProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if web.proc.poll() is not None:
            raise RuntimeError(f"web role exited with {web.proc.returncode}:\n{web.log()[-3000:]}")
        try:
            with urllib.request.urlopen(web.url + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"web role not healthy after {timeout}s ({last}):\n{web.log()[-3000:]}")


def non_loopback(urls: list[str]) -> list[str]:
    """Requests that would leave the machine (data: and blob: URLs stay in the page)."""
    out = []
    for u in urls:
        p = urlparse(u)
        if p.scheme in ("data", "blob", "about"):
            continue
        if p.hostname not in LOOPBACK:
            out.append(u)
    return out


def launch_without_cjk_fonts(browser: Any, workdir: Path) -> Any:
    """A second Chromium that sees only the DejaVu fonts, like a kiosk without Chinese fonts."""
    dejavu = Path("/usr/share/fonts/truetype/dejavu")
    if not dejavu.is_dir():
        pytest.skip("DejaVu fonts (fonts-dejavu-core) are needed for the no-CJK screen")
    conf = workdir / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>{dejavu}</dir><cachedir>{workdir / 'fc-cache'}</cachedir></fontconfig>",
        encoding="utf-8",
    )
    env = {**os.environ, "FONTCONFIG_FILE": str(conf)}
    return browser.browser_type.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env)


_shared: dict[str, Any] = {}


def shared_browser() -> Any:
    """One Chromium per test process, whichever test modules import the fixtures."""
    if "browser" not in _shared:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        _shared["pw"] = pw
        _shared["browser"] = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        atexit.register(_close_shared)
    return _shared["browser"]


def _close_shared() -> None:
    with contextlib.suppress(Exception):
        _shared.pop("browser").close()
    with contextlib.suppress(Exception):
        _shared.pop("pw").stop()


@pytest.fixture(scope="session")
def browser() -> Any:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (Debian package 'chromium')")
    return shared_browser()


@pytest.fixture
def web(gridcc_env: dict[str, str], tmp_path: Path) -> Iterator[WebProcess]:
    """The web role on the test's Redis prefix."""
    w = start_web(gridcc_env, tmp_path)
    yield w
    w.stop()


@dataclass
class RecordedPage:
    page: Any
    requests: list[str]
    errors: list[str]


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Callable[..., RecordedPage]]:
    """Open pages (each in its own context) that record every request and page error."""
    contexts: list[Any] = []

    def open_page(
        url: str, width: int = 1920, height: int = 1080, wait_for: str | None = "#mode-badge"
    ) -> RecordedPage:
        ctx = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
        contexts.append(ctx)
        page = ctx.new_page()
        rec = RecordedPage(page, [], [])
        page.on("request", lambda req: rec.requests.append(req.url))
        page.on("pageerror", lambda err: rec.errors.append(str(err)))
        page.goto(url)
        if wait_for:
            page.wait_for_selector(wait_for, timeout=15000)
        return rec

    yield open_page
    for ctx in contexts:
        ctx.close()
