"""Server push to open screens: GET /api/push streams Redis pub/sub as text/event-stream.

A pushed event names topics and ids only; the page re-reads through ``access`` with its
own scope. Bursts are coalesced here, per connection, so a flood of readings becomes at
most one event per topic per gap instead of a pile of callbacks in the browser.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import redis
from flask import Blueprint, Response

from core.keys import keys
from core.store import get_redis
from core.timeutil import now_ms

log = logging.getLogger("gridcc.push")

# Smallest gap between two events that carry the same topic. Alarms, orders and modes go
# out almost at once; device and camera churn follows every reading, so it is thinned.
MIN_GAP_S: dict[str, float] = {"device": 2.0, "camera": 1.0}
DEFAULT_GAP_S = 0.3
# Ids per topic in one event; beyond it the page is told "many" and re-reads the lists.
MAX_IDS = 50


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    return value if value > 0 else default


def heartbeat_s() -> float:
    """Keep-alive interval: also how soon a page notices a dead stream (it reconnects)."""
    return _env_float("GRIDCC_PUSH_HEARTBEAT_S", 5.0)


def max_age_s() -> float:
    """A stream ends after this and the page reconnects, so browser buffers stay small."""
    return _env_float("GRIDCC_PUSH_MAX_AGE_S", 900.0)


def sse(data: dict[str, Any], *, comment: str = "", event_id: int | None = None) -> str:
    """One text/event-stream block."""
    lines = []
    if comment:
        lines.append(f": {comment}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    # An empty last data line ends the payload with a newline: the page keeps the stream
    # as one concatenated text (so no event is lost when two arrive in one chunk) and
    # splits it at newlines.
    lines.append("data: ")
    return "\n".join(lines) + "\n\n"


def parse_push(raw: bytes | str) -> tuple[str, list[str]] | None:
    """A pub/sub payload to (topic, ids); None for a payload that is not a push."""
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("topic"), str):
        return None
    ids: list[str] = []
    for k, v in msg.items():
        if k == "topic" or v is None:
            continue
        if isinstance(v, list):
            ids.extend(str(x) for x in v)
        else:
            ids.append(str(v))
    return msg["topic"], ids


class Coalescer:
    """Collects pushes and says what may go out now, honouring each topic's gap."""

    def __init__(self) -> None:
        self.pending: dict[str, list[str]] = {}
        self.last_sent: dict[str, float] = {}

    def add(self, topic: str, ids: list[str]) -> None:
        bucket = self.pending.setdefault(topic, [])
        for i in ids:
            if len(bucket) > MAX_IDS:
                break
            if i not in bucket:
                bucket.append(i)

    def _due(self, topic: str) -> float:
        gap = MIN_GAP_S.get(topic, DEFAULT_GAP_S)
        return self.last_sent.get(topic, float("-inf")) + gap

    def next_due(self) -> float | None:
        """When the earliest pending topic may go out (monotonic seconds)."""
        return min((self._due(t) for t in self.pending), default=None)

    def take(self, now: float) -> dict[str, list[str] | str]:
        out: dict[str, list[str] | str] = {}
        for topic in list(self.pending):
            if self._due(topic) <= now:
                ids = self.pending.pop(topic)
                out[topic] = "many" if len(ids) > MAX_IDS else ids
                self.last_sent[topic] = now
        return out


def stream_pushes(
    r: redis.Redis,
    channel: str,
    *,
    heartbeat: float | None = None,
    max_age: float | None = None,
) -> Iterator[str]:
    """Yield SSE blocks until the client goes away (the write fails) or max_age passes."""
    hb = heartbeat or heartbeat_s()
    age = max_age or max_age_s()
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    seq = 0
    try:
        pubsub.subscribe(channel)
        started = last_write = time.monotonic()
        # "hello" tells the page to re-read everything: pushes missed while it was not
        # connected are not replayed.
        yield sse(
            {"seq": seq, "t": now_ms(), "hello": True, "keepalive_s": hb},
            comment="gridcc push",
            event_id=seq,
        )
        co = Coalescer()
        while True:
            now = time.monotonic()
            if now - started >= age:
                seq += 1
                yield sse({"seq": seq, "t": now_ms(), "reconnect": 0}, event_id=seq)
                return
            due = co.next_due()
            wait = min(hb - (now - last_write), 1.0)
            if due is not None:
                wait = min(wait, due - now)
            msg = pubsub.get_message(timeout=max(wait, 0.0))
            while msg is not None:
                if msg.get("type") == "message":
                    parsed = parse_push(msg["data"])
                    if parsed is None:
                        log.warning("ignored a push that is not JSON with a topic: %r", msg["data"])
                    else:
                        co.add(*parsed)
                # Drain what is already there so one burst becomes one event.
                msg = pubsub.get_message(timeout=0)
            now = time.monotonic()
            topics = co.take(now)
            if topics:
                seq += 1
                yield sse({"seq": seq, "t": now_ms(), "topics": topics}, event_id=seq)
                last_write = now
            elif now - last_write >= hb:
                seq += 1
                # The comment keeps proxies from closing an idle stream; the data line
                # lets the page see the stream is alive (comments reach no callback).
                yield sse({"seq": seq, "t": now_ms(), "hb": True}, comment="keep-alive")
                last_write = now
    except redis.RedisError as exc:
        log.warning("push stream lost Redis: %s", exc)
        seq += 1
        yield sse({"seq": seq, "t": now_ms(), "reconnect": 2000, "error": "redis"})
    finally:
        with contextlib.suppress(redis.RedisError):
            pubsub.close()


push_bp = Blueprint("push", __name__)


@push_bp.get("/api/push")
def push_route() -> Response:
    r = get_redis()
    resp = Response(stream_pushes(r, keys().push_channel), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache, no-transform"
    resp.headers["X-Accel-Buffering"] = "no"  # proxies must not buffer the stream
    return resp
