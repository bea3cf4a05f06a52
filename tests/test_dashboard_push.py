"""The push route: a real Redis publish reaches an SSE client; bursts are coalesced;
the subscription ends when the client goes away."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from core import push
from core.keys import keys
from dashboard.push import Coalescer, parse_push, push_bp


def _events(chunks: Iterator[bytes]) -> Iterator[dict]:
    buf = ""
    for chunk in chunks:
        buf += chunk.decode("utf-8")
        while "\n\n" in buf:
            block, buf = buf.split("\n\n", 1)
            data = [ln[6:] for ln in block.split("\n") if ln.startswith("data: ")]
            if data:
                yield json.loads("\n".join(data))


def _numsub(r: redis.Redis) -> int:
    return int(dict(r.pubsub_numsub(keys().push_channel))[keys().push_channel.encode()])


@pytest.fixture
def client(r: redis.Redis):
    app = Flask(__name__)
    app.register_blueprint(push_bp)
    return app.test_client()


def test_publish_reaches_sse_client_and_unsubscribes_on_close(client, r: redis.Redis) -> None:
    resp = client.get("/api/push", buffered=False)
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    events = _events(iter(resp.response))
    hello = next(events)
    assert hello["hello"] is True
    assert _numsub(r) == 1

    t0 = time.monotonic()
    push.publish(r, "alarm", id="AL-1")
    ev = next(events)
    latency = time.monotonic() - t0
    assert ev["topics"] == {"alarm": ["AL-1"]}
    assert latency < 1.0

    resp.close()  # the client goes away: the generator is closed, the subscription dropped
    deadline = time.monotonic() + 3
    while _numsub(r) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _numsub(r) == 0


def test_burst_is_coalesced_per_topic(client, r: redis.Redis) -> None:
    resp = client.get("/api/push", buffered=False)
    events = _events(iter(resp.response))
    assert next(events)["hello"]

    def flood() -> None:
        for i in range(500):
            push.publish(r, "device", id=f"dev{i % 20}")
        push.publish(r, "order", id="GD-1")
        push.publish(r, "order", id="GD-1")

    th = threading.Thread(target=flood)
    th.start()
    got: list[dict] = []
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        ev = next(events)
        if "topics" in ev:
            got.append(ev)
        seen_devices = {d for e in got for d in e["topics"].get("device", [])}
        orders = [e for e in got if "order" in e["topics"]]
        if orders and len(seen_devices) == 20:
            break
    th.join()
    resp.close()
    device_events = [e for e in got if "device" in e["topics"]]
    # 500 device pushes in a burst become a handful of events (device gap is 2 s).
    assert 1 <= len(device_events) <= 3, got
    assert {d for e in device_events for d in e["topics"]["device"]} == {
        f"dev{i}" for i in range(20)
    }
    # Two pushes of one order in a burst: at most a leading and a trailing event.
    order_events = [e["topics"]["order"] for e in got if "order" in e["topics"]]
    assert 1 <= len(order_events) <= 2 and all(ids == ["GD-1"] for ids in order_events)


def test_heartbeat_when_idle(client, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDCC_PUSH_HEARTBEAT_S", "0.3")
    resp = client.get("/api/push", buffered=False)
    it = iter(resp.response)
    raw = b""
    t0 = time.monotonic()
    while b"keep-alive" not in raw and time.monotonic() - t0 < 3:
        raw += next(it)
    resp.close()
    assert b": keep-alive" in raw
    assert b'"hb":true' in raw
    assert time.monotonic() - t0 < 2


def test_stream_ends_with_reconnect_after_max_age(client, r, monkeypatch) -> None:
    monkeypatch.setenv("GRIDCC_PUSH_MAX_AGE_S", "0.5")
    resp = client.get("/api/push", buffered=False)
    evs = list(_events(iter(resp.response)))  # ends by itself
    assert evs[0]["hello"] and "reconnect" in evs[-1]
    assert _numsub(r) == 0


def test_bad_push_payloads_are_refused_not_crashing() -> None:
    assert parse_push(b"not json") is None
    assert parse_push(b'{"no_topic": 1}') is None
    assert parse_push(b"\xff\xfe") is None
    assert parse_push('{"topic":"alarm","id":"A","ids":["B","C"]}') == ("alarm", ["A", "B", "C"])


def test_coalescer_respects_gap() -> None:
    co = Coalescer()
    co.add("device", ["a"])
    assert co.take(100.0) == {"device": ["a"]}
    co.add("device", ["b"])
    assert co.take(101.0) == {}  # within the 2 s device gap
    assert co.next_due() == pytest.approx(102.0)
    assert co.take(102.0) == {"device": ["b"]}
