"""gridcc: one code base, one process per role.

python app.py                 everything on one box (embedded Redis and broker by default)
python app.py web             the command center (Dash), intake API, push and media routes
python app.py ingest-mqtt     MQTT ingest
python app.py ingest-video    camera ingest (a process per camera)
python app.py worker          rules, alarms, work orders
python app.py simulate        demo sensors publishing real payload formats
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("gridcc")


def _run_web(stop: threading.Event) -> None:
    from core.config import get_settings
    from dashboard.server import run

    s = get_settings()
    run(s.host, s.port)


def _run_ingest_mqtt(stop: threading.Event) -> None:
    from ingest.mqtt_ingest import run

    run(stop)


def _run_ingest_video(stop: threading.Event) -> None:
    from ingest.video import run

    run(stop)


def _run_worker(stop: threading.Event) -> None:
    from alarms.worker import run

    run(stop)


def _run_simulate(stop: threading.Event) -> None:
    from ingest.simulator import run

    run(stop)


ROLES: dict[str, Callable[[threading.Event], None]] = {
    "web": _run_web,
    "ingest-mqtt": _run_ingest_mqtt,
    "ingest-video": _run_ingest_video,
    "worker": _run_worker,
    "simulate": _run_simulate,
}


def run_role(role: str) -> None:
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stop.set()
        if role == "web":
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ROLES[role](stop)


class Supervisor:
    """Runs every role as a child process and restarts one that dies, with backoff."""

    def __init__(self, env: dict[str, str], roles: list[str]) -> None:
        self.env = env
        self.roles = roles
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, list[float]] = {r: [] for r in roles}
        self.stopping = False

    def spawn(self, role: str) -> None:
        self.procs[role] = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), role], cwd=str(ROOT), env=self.env
        )

    def run(self) -> None:
        for role in self.roles:
            self.spawn(role)
        while not self.stopping:
            time.sleep(0.5)
            for role, proc in list(self.procs.items()):
                if proc.poll() is None or self.stopping:
                    continue
                now = time.monotonic()
                recent = [t for t in self.restarts[role] if now - t < 300]
                self.restarts[role] = recent
                if len(recent) >= 5:
                    log.error(
                        "role %s keeps failing (exit %s); not restarting", role, proc.returncode
                    )
                    del self.procs[role]
                    continue
                delay = min(30.0, 0.5 * 2 ** len(recent))
                log.warning(
                    "role %s exited with %s; restarting in %.1f s", role, proc.returncode, delay
                )
                time.sleep(delay)
                self.restarts[role].append(time.monotonic())
                self.spawn(role)

    def stop(self) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def run_all(port: int | None) -> None:
    from core.config import get_settings, reset_settings
    from core.embedded import start_broker, start_redis

    if port is not None:
        os.environ["PORT"] = str(port)
    reset_settings()
    s = get_settings()
    servers: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    if not s.redis_url:
        proc, url = start_redis(s.var_dir)
        servers.append(proc)
        env["REDIS_URL"] = url
        print(f"embedded Redis: {url}", flush=True)
    if not s.mqtt_url:
        proc, url = start_broker("127.0.0.1", 1883)
        servers.append(proc)
        env["MQTT_URL"] = url
        env["MQTT_PROTOCOL"] = "3.1.1"
        print(f"embedded MQTT broker: {url}", flush=True)
    roles = ["web", "worker", "ingest-mqtt", "ingest-video"]
    if s.simulate:
        roles.append("simulate")
    sup = Supervisor(env, roles)

    def _stop(signum: int, _frame: object) -> None:
        sup.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"gridcc command center: http://{s.host}:{s.port}/", flush=True)
    try:
        sup.run()
    finally:
        sup.stop()
        for proc in servers:
            proc.terminate()
        for proc in servers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="all", choices=["all", *ROLES])
    parser.add_argument("--port", type=int, default=None, help="web port (default PORT or 8050)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.role == "all":
        run_all(args.port)
        return
    if args.port is not None:
        os.environ["PORT"] = str(args.port)
    run_role(args.role)


if __name__ == "__main__":
    main()
