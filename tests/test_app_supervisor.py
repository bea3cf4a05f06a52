"""`python app.py` on the embedded default, as a user runs it: the address is printed once the
page answers, a second copy on the same data is refused, and a killed embedded Redis comes
back by itself with its data (each found by a user trying to break it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def _env(var: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "MQTT_URL", "GRIDCC_PREFIX", "MQTT_ROOT")
    }
    env.update(
        {
            "VAR_DIR": str(var),
            "SIMULATE": "false",
            "MQTT_EMBEDDED_PORT": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    port = free_port()
    var = tmp_path / "var"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port)],
        cwd=ROOT,
        env=_env(var),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    yield proc, port, var
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _read_until(proc: subprocess.Popen[str], prefix: str, timeout: float = 90) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no line starting {prefix!r}")


def test_embedded_default_recovers_redis_and_refuses_a_second_copy(
    running: tuple[subprocess.Popen[str], int, Path],
) -> None:
    proc, port, var = running
    redis_line = _read_until(proc, "embedded Redis:")
    url = redis_line.split(": ", 1)[1]
    line = _read_until(proc, "gridcc command center:")
    assert line.endswith(f":{port}/")
    # Printed only once the page answers.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert resp.status == 200

    r = redis.Redis.from_url(url)
    r.set("gc:test:kept", "郑州")
    second = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--port", str(free_port())],
        cwd=ROOT,
        env=_env(var),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0 and "already running" in second.stderr

    server = next(
        p for p in psutil.Process(proc.pid).children(recursive=True) if "redis-server" in p.name()
    )
    time.sleep(1.2)  # the append-only file is synced every second
    server.kill()
    deadline = time.monotonic() + 30
    value = None
    while time.monotonic() < deadline:
        try:
            value = redis.Redis.from_url(url, socket_connect_timeout=1).get("gc:test:kept")
            if value:
                break
        except redis.RedisError:
            pass
        time.sleep(0.3)
    assert value == "郑州".encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert resp.status == 200


def test_children_end_with_a_killed_supervisor(
    running: tuple[subprocess.Popen[str], int, Path],
) -> None:
    proc, _port, _var = running
    _read_until(proc, "gridcc command center:")
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any("redis-server" in c.name() for c in children)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"orphans left: {[c.cmdline() for c in alive]}"
