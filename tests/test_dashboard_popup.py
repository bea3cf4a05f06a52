"""The alarm pop-up's content, queue and acknowledgement, against the real Redis."""

from __future__ import annotations

import io
import json
import wave
from typing import Any

import plotly.io  # noqa: F401  (Dash's JSON encoder needs it loaded)
import redis
from dash import html
from plotly.utils import PlotlyJSONEncoder

from alarms import worker
from core.keys import keys
from core.models import Alarm, Reading
from core.timeutil import now_ms
from dashboard import alarm_sound, callbacks, layout, views
from devices.registry import Device, register_device


def _find(node: Any, cid: str) -> Any:
    if getattr(node, "id", None) == cid:
        return node
    kids = getattr(node, "children", None)
    for k in kids if isinstance(kids, list) else [kids]:
        if k is not None and not isinstance(k, str):
            hit = _find(k, cid)
            if hit is not None:
                return hit
    return None


def _text(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "".join(_text(n) for n in node)
    kids = getattr(node, "children", None)
    return "" if kids is None else _text(kids)


def _alarm(**over: Any) -> dict[str, Any]:
    a = {
        "id": "al-1",
        "device_id": "gas-1",
        "device_type": "gas",
        "rule": "threshold:ch4_lel",
        "metric": "ch4_lel",
        "value": 62.0,
        "threshold": 50.0,
        "unit": "%LEL",
        "severity": "red",
        "state": "raised",
        "raised_ms": 1_760_000_000_000,
        "updated_ms": 1_760_000_000_000,
        "place": {"lon": 113.686, "lat": 34.776, "county": "410105"},
        "title": "甲烷浓度超限",
    }
    a.update(over)
    return a


def test_popup_shows_fields_and_keeps_markup_as_text() -> None:
    evil = '<img src=x onerror="alert(1)"><b>燃气</b>'
    body = html.Div(views.alarm_popup(_alarm(title=evil), "zh-CN", waiting=2))
    title = _find(body, "popup-title")
    # The title is one plain string child: Dash renders it as text, never parses it.
    assert title.children == evil
    dumped = json.dumps(body, cls=PlotlyJSONEncoder)
    assert "dangerouslySetInnerHTML" not in dumped
    assert _text(_find(body, "popup-place")).startswith("金水区")
    # 1_760_000_000_000 ms is 2025-10-09 08:53:20 UTC, so 16:53:20 in Zhengzhou.
    assert _text(_find(body, "popup-time")) == "2025-10-09 16:53:20+08:00"
    assert _text(_find(body, "popup-value")) == "62 %LEL（限值 50 %LEL）"
    assert _text(_find(body, "popup-count")) == "另有 2 条待确认"
    assert "红色" in _text(body)


def test_popup_in_english_and_unlocated() -> None:
    body = html.Div(views.alarm_popup(_alarm(place=None, severity="orange"), "en", waiting=0))
    assert _text(_find(body, "popup-place")) == "Place unknown"
    assert _text(_find(body, "popup-count")) == ""
    assert "Orange" in _text(body)


def test_queue_takes_new_raised_red_and_orange_worst_then_oldest() -> None:
    alarms = [
        _alarm(id="blue", severity="blue", raised_ms=1),
        _alarm(id="yellow", severity="yellow", raised_ms=1),
        _alarm(id="orange-old", severity="orange", raised_ms=1),
        _alarm(id="red-new", severity="red", raised_ms=30),
        _alarm(id="red-old", severity="red", raised_ms=20),
        _alarm(id="red-acked", severity="red", state="acknowledged", raised_ms=5),
        _alarm(id="red-before", severity="red", raised_ms=2),
    ]
    queue = views.popup_queue(alarms, seen_before=["red-before"])
    assert [a["id"] for a in queue] == ["red-old", "red-new", "orange-old"]
    assert views.popup_queue(None, None) == []


def _raise(r: redis.Redis, device_id: str, value: float, lon: float = 113.686) -> None:
    register_device(
        r,
        Device(id=device_id, name="燃气井", type="gas", profile="gas_tasmota", lon=lon, lat=34.776),
    )
    worker.ensure_groups(r)
    ts = now_ms()
    reading = Reading(
        device_id=device_id,
        ts_ms=ts,
        received_ms=ts,
        metrics={"ch4_lel": value},
        msg_id=f"{device_id}-{ts}",
        topic=f"tele/{device_id}/SENSOR",
    )
    r.xadd(keys().readings, {"data": reading.model_dump_json()})
    assert worker.step(r, "popup-test", block_ms=1000) >= 1


def test_popup_view_shows_new_red_and_acknowledge_closes_it(r: redis.Redis) -> None:
    seen = [a.id for a in layout.popup_candidates(r)]
    body, cls, style, state, seen = callbacks.popup_view("zh-CN", seen, r)
    assert style == callbacks.HIDDEN and state is None

    _raise(r, "gas-popup-blue", 12.0, lon=113.70)
    body, cls, style, state, seen = callbacks.popup_view("zh-CN", seen, r)
    assert style == callbacks.HIDDEN, "a blue alarm must not take the screen"

    _raise(r, "gas-popup-red", 62.0)
    body, cls, style, state, seen = callbacks.popup_view("zh-CN", seen, r)
    assert style == callbacks.SHOWN and cls == "gc-popup sev-red"
    assert state and state["severity"] == "red"
    assert "62 %LEL" in _text(html.Div(body))

    assert callbacks.popup_ack(state["id"], "zh-CN", r) == ""
    stored = Alarm.model_validate_json(r.get(keys().alarm(state["id"])) or b"")
    assert stored.state.value == "acknowledged"
    assert stored.history[-1]["by"] == "screen"
    assert stored.history[-1]["action"] == "acknowledged"
    body, cls, style, state2, seen = callbacks.popup_view("zh-CN", seen, r)
    assert style == callbacks.HIDDEN and state2 is None

    # A second acknowledgement (another screen was quicker) says why, it does not crash.
    assert "确认失败" in callbacks.popup_ack(state["id"], "zh-CN", r)
    assert "确认失败" in callbacks.popup_ack("no-such-alarm", "zh-CN", r)


def test_first_good_read_after_failed_paint_sets_what_was_already_open(r: redis.Redis) -> None:
    _raise(r, "gas-popup-old", 62.0)
    body, cls, style, state, seen = callbacks.popup_view("zh-CN", None, r)
    assert style == callbacks.HIDDEN and state is None
    assert len(seen) == 1


def test_alarm_sound_is_the_generated_wav() -> None:
    shipped = alarm_sound.SOUND_PATH.read_bytes()
    assert shipped == alarm_sound.alarm_wav()
    with wave.open(io.BytesIO(shipped)) as w:
        secs = w.getnframes() / w.getframerate()
    assert 0.5 < secs < 3 and len(shipped) < 20_000
