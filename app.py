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
import fcntl
import logging
import os
import signal
import socket
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
    """Runs each child (embedded servers and roles) and restarts one that dies, with backoff."""

    def __init__(self, starters: dict[str, Callable[[], subprocess.Popen[bytes]]]) -> None:
        self.starters = starters
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, list[float]] = {name: [] for name in starters}
        self.stopping = False

    def start_all(self) -> None:
        for name, start in self.starters.items():
            self.procs[name] = start()

    def watch(self) -> None:
        while not self.stopping:
            time.sleep(0.5)
            for name, proc in list(self.procs.items()):
                if proc.poll() is None or self.stopping:
                    continue
                now = time.monotonic()
                recent = [t for t in self.restarts[name] if now - t < 300]
                self.restarts[name] = recent
                if len(recent) >= 5:
                    log.error("%s keeps failing (exit %s); not restarting", name, proc.returncode)
                    del self.procs[name]
                    continue
                delay = min(30.0, 0.5 * 2 ** len(recent))
                log.warning("%s exited with %s; restarting in %.1f s", name, proc.returncode, delay)
                time.sleep(delay)
                self.restarts[name].append(time.monotonic())
                try:
                    self.procs[name] = self.starters[name]()
                except RuntimeError as exc:
                    log.error("%s did not restart: %s", name, exc)

    def stop(self) -> None:
        self.stopping = True
        # Roles first, servers last, so roles do not spend their exit retrying a gone Redis.
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _lock_var_dir(var_dir: Path) -> int:
    """One copy per data directory: two would share (and corrupt) one embedded Redis."""
    var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(var_dir / "gridcc.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(
            f"gridcc is already running with the data directory {var_dir}; "
            "stop it first, or give this copy another VAR_DIR"
        ) from None
    return fd


def _wait_listening(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.2)
    return False


def run_all(port: int | None) -> None:
    from core.config import get_settings, reset_settings
    from core.embedded import die_with_parent, start_broker, start_redis

    if port is not None:
        os.environ["PORT"] = str(port)
    reset_settings()
    s = get_settings()
    lock_fd = _lock_var_dir(s.var_dir)
    env = dict(os.environ)
    starters: dict[str, Callable[[], subprocess.Popen[bytes]]] = {}
    if not s.redis_url:
        proc, url = start_redis(s.var_dir)
        env["REDIS_URL"] = url
        first_redis = [proc]
        # A restart reuses the same socket and append-only file, so no data is lost.
        starters["embedded-redis"] = lambda: (
            first_redis.pop() if first_redis else start_redis(s.var_dir)[0]
        )
        print(f"embedded Redis: {url}", flush=True)
    if not s.mqtt_url:
        proc, url = start_broker("127.0.0.1", s.mqtt_embedded_port)
        broker_port = int(url.rsplit(":", 1)[1])
        env["MQTT_URL"] = url
        env["MQTT_PROTOCOL"] = "3.1.1"
        first_broker = [proc]
        starters["embedded-broker"] = lambda: (
            first_broker.pop() if first_broker else start_broker("127.0.0.1", broker_port)[0]
        )
        print(f"embedded MQTT broker: {url} (devices publish here)", flush=True)

    def role_starter(role: str) -> Callable[[], subprocess.Popen[bytes]]:
        return lambda: subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), role],
            cwd=str(ROOT),
            env=env,
            preexec_fn=die_with_parent,
        )

    roles = ["web", "worker", "ingest-mqtt", "ingest-video"] + (["simulate"] if s.simulate else [])
    for role in roles:
        starters[role] = role_starter(role)
    sup = Supervisor(starters)

    def _stop(signum: int, _frame: object) -> None:
        sup.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        sup.start_all()
        if _wait_listening(s.host, s.port, 60):
            print(f"gridcc command center: http://{s.host}:{s.port}/", flush=True)
        else:
            log.error("the web role is not listening on %s:%s after 60 s", s.host, s.port)
        sup.watch()
    finally:
        sup.stop()
        os.close(lock_fd)


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
