"""The worker: consumer group ``workers`` over the input streams.

An entry is acknowledged only after its effect is stored. A malformed entry goes to the
dead-letter stream with its reason and is acknowledged, so it cannot block the group.
Entries left pending by a dead worker for more than ``CLAIM_IDLE_MS`` are claimed
(XAUTOCLAIM) and processed again; the processing is idempotent (one open alarm per
device and rule, one order per source). A lost connection is retried with backoff and
the groups are recreated if a restarted Redis lost them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import redis
from pydantic import ValidationError

from alarms.dead import write_dead
from alarms.service import UnknownDevice, process_reading
from core.keys import keys
from core.models import Reading, Report
from core.store import get_redis
from core.timeutil import now_ms
from devices.health import is_alarming, record_reading, sweep_offline
from modes.schedule import sweep_schedules
from workorders.supervision import sweep as sweep_orders

log = logging.getLogger("gridcc.worker")

GROUP = "workers"
# A report left pending by a worker that died is taken over within about 20 s.
CLAIM_IDLE_MS = 15_000
CLAIM_EVERY_S = 5.0
# Silent devices go offline within this much of their limit.
OFFLINE_SWEEP_S = 5.0
BLOCK_MS = 2000
BATCH = 100

StopFlag = threading.Event | Callable[[], bool] | None


class Malformed(ValueError):
    """A stream entry that can never be processed; it goes to the dead letters."""


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def streams() -> list[str]:
    k = keys()
    return [k.readings, k.reports, k.video_events]


def ensure_groups(r: redis.Redis) -> None:
    for s in streams():
        try:
            r.xgroup_create(s, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def _data(fields: dict[Any, Any]) -> bytes:
    raw = fields.get(b"data", fields.get("data"))
    if raw is None:
        raise Malformed("entry has no 'data' field")
    return raw if isinstance(raw, bytes) else str(raw).encode()


def handle(r: redis.Redis, stream: str, entry_id: str, fields: dict[Any, Any]) -> None:
    """Process one entry; raise Malformed when it can never be processed."""
    k = keys()
    raw = _data(fields)
    if stream == k.readings:
        try:
            reading = Reading.model_validate_json(raw)
        except ValidationError as exc:
            raise Malformed(f"not a reading: {_errors(exc)}") from exc
        status, _changed = record_reading(r, reading)
        if status is not None and not is_alarming(status):
            # Decommissioned and disabled devices keep their history but raise nothing.
            return
        try:
            process_reading(r, reading)
        except UnknownDevice as exc:
            raise Malformed(str(exc)) from exc
    elif stream == k.reports:
        from workorders.service import OrderError, create_from_report

        try:
            report = Report.model_validate_json(raw)
        except ValidationError as exc:
            raise Malformed(f"not a report: {_errors(exc)}") from exc
        report_id = _s(fields.get(b"report_id", fields.get("report_id", entry_id)))
        try:
            create_from_report(r, report, report_id=report_id)
        except OrderError as exc:
            raise Malformed(str(exc)) from exc
    elif stream == k.video_events:
        try:
            event = json.loads(raw)
        except ValueError as exc:
            raise Malformed(f"video event is not JSON: {exc}") from exc
        if not isinstance(event, dict) or not event.get("camera_id"):
            raise Malformed("video event needs a camera_id")
        from alarms.video_rules import VideoEventError, handle_video_event

        try:
            handle_video_event(r, event)
        except VideoEventError as exc:
            raise Malformed(str(exc)) from exc
    else:
        raise Malformed(f"unknown stream {stream}")


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()
    )


def _process_batch(r: redis.Redis, stream: str, entries: list[Any]) -> int:
    """Process entries in order, then acknowledge them together.

    The acknowledgement follows the stored work; if the connection drops midway, the
    unacknowledged rest is delivered again, which the idempotent processing absorbs.
    """
    done: list[Any] = []
    try:
        for entry_id, fields in entries:
            if fields is not None:  # None: deleted from the stream while pending
                _process_one(r, stream, _s(entry_id), fields)
            done.append(entry_id)
    finally:
        if done:
            try:
                r.xack(stream, GROUP, *done)
            except (redis.ConnectionError, redis.TimeoutError):
                log.warning(
                    "could not acknowledge %d entries of %s; they will be redelivered",
                    len(done),
                    stream,
                )
    return len(done)


def _process_one(r: redis.Redis, stream: str, eid: str, fields: dict[Any, Any]) -> None:
    try:
        handle(r, stream, eid, fields)
    except (redis.ConnectionError, redis.TimeoutError):
        raise  # left pending: retried after reconnect or claimed by another worker
    except Exception as exc:  # noqa: BLE001 - one bad entry must not stop the loop
        reason = "malformed" if isinstance(exc, Malformed) else "processing_failed"
        if reason == "processing_failed":
            log.exception("entry %s of %s failed", eid, stream)
        raw = fields.get(b"data", fields.get("data")) or json.dumps(
            {_s(a): _s(b) for a, b in fields.items()}, ensure_ascii=False
        )
        write_dead(
            r,
            source="worker",
            reason=reason,
            detail=f"{stream} {eid}: {exc}",
            raw=raw,
            topic=stream,
        )


def claim_stale(r: redis.Redis, consumer: str, idle_ms: int = CLAIM_IDLE_MS) -> int:
    """Take over and process entries a dead consumer left pending for ``idle_ms``."""
    done = 0
    for s in streams():
        start = "0-0"
        while True:
            res = cast(
                list[Any],
                r.xautoclaim(
                    s, GROUP, consumer, min_idle_time=idle_ms, start_id=start, count=BATCH
                ),
            )
            start, entries = _s(res[0]), list(res[1])
            done += _process_batch(r, s, entries)
            if start == "0-0" or not entries:
                break
    return done


def step(r: redis.Redis, consumer: str, block_ms: int = BLOCK_MS) -> int:
    """Read one batch of new entries and process it; returns how many were handled."""
    resp = cast(
        list[Any] | None,
        r.xreadgroup(GROUP, consumer, {s: ">" for s in streams()}, count=BATCH, block=block_ms),
    )
    done = 0
    for stream, entries in resp or []:
        done += _process_batch(r, _s(stream), entries)
    return done


def _stopped(stop: StopFlag) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def run(
    stop: StopFlag = None,
    *,
    r: redis.Redis | None = None,
    consumer: str | None = None,
    block_ms: int = BLOCK_MS,
    claim_idle_ms: int = CLAIM_IDLE_MS,
    claim_every_s: float = CLAIM_EVERY_S,
) -> None:
    """Work until ``stop`` is set; survives lost connections and Redis restarts."""
    r = r or get_redis()
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    # Train the category suggestion before the first report, not while a screen waits for it.
    from workorders.classify import model

    model()
    backoff = 0.2
    ready = False
    last_claim = 0.0
    last_sweep = 0.0
    while not _stopped(stop):
        try:
            if not ready:
                ensure_groups(r)
                ready = True
            if time.monotonic() - last_claim >= claim_every_s:
                claim_stale(r, consumer, claim_idle_ms)
                last_claim = time.monotonic()
            if time.monotonic() - last_sweep >= OFFLINE_SWEEP_S:
                sweep_offline(r)
                # Reminders, overdue warnings and escalation of work-order clocks.
                sweep_orders(r, now_ms())
                # Scheduled mode switches, their reminders and switches back.
                sweep_schedules(r, now_ms())
                last_sweep = time.monotonic()
            step(r, consumer, block_ms)
            r.hset(keys().heartbeats, f"worker:{consumer}", now_ms())
            backoff = 0.2
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("redis unavailable (%s); retrying in %.1f s", exc, backoff)
            ready = False
            _sleep(stop, backoff)
            backoff = min(backoff * 2, 5.0)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                # A restarted Redis without persistence lost the groups: recreate them.
                ready = False
                continue
            log.exception("redis refused a command")
            _sleep(stop, backoff)
            backoff = min(backoff * 2, 5.0)


def _sleep(stop: StopFlag, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not _stopped(stop):
        time.sleep(min(0.05, seconds))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run()


if __name__ == "__main__":
    main()
