"""Video events to alarms: one open alarm per camera and rule ``video:<kind>:<zone>``.

Intrusion, crowding, loitering, tampering and offline raise an alarm at the camera's
place (its grid), which opens a work order through the work-order path; a camera coming
back online clears its offline alarm. Motion start/end carry no alarm and are ignored.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alarms.service import OPEN_STATES, OrderHook, _maybe_order, _open_alarms, _save, new_alarm_id
from core import push
from core.keys import keys
from core.models import Alarm, AlarmState, Place, Severity
from core.timeutil import now_ms
from ingest.video_zones import DEFAULT_SEVERITY

ALARM_KINDS = frozenset({"intrusion", "crowding", "loitering", "tampering", "offline"})
IGNORED_KINDS = frozenset({"motion_start", "motion_end"})
KIND_ZH = {
    "intrusion": "区域入侵",
    "crowding": "人员聚集",
    "loitering": "徘徊逗留",
    "offline": "摄像头离线",
}
TAMPER_ZH = {"covered": "摄像头遮挡", "defocused": "摄像头失焦", "moved": "摄像头移位"}
OFFLINE_RULE = "video:offline:camera"
MAX_REPEATS = 50
PLACE_TTL_S = 30.0


class VideoEventError(ValueError):
    """A video event that can never become an alarm; the message says why."""


class VideoEvent(BaseModel):
    """What the worker needs of an event on the video stream (other fields are kept aside)."""

    model_config = ConfigDict(extra="allow")

    camera_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    kind: str = Field(min_length=1, max_length=32)
    ts_ms: int = Field(gt=946_684_800_000)
    zone: str = Field(default="", max_length=32)
    zone_name: str = ""
    camera_name: str = ""
    severity: Severity | None = None
    value: float = 0.0
    threshold: float = 0.0
    event_id: str | None = None
    snapshot: str | None = None
    clip: str | None = None
    error: str = ""


def rule_of(ev: VideoEvent) -> str:
    return f"video:{ev.kind}:{ev.zone or 'camera'}"


_places: dict[tuple[str, str], tuple[float, Place, str]] = {}


def camera_place(r: redis.Redis, camera_id: str) -> tuple[Place, str]:
    """(the camera's place with its grid, its name), from the registry hash ingest writes."""
    key = (keys().prefix, camera_id)
    hit = _places.get(key)
    if hit and hit[0] > time.monotonic():
        return hit[1], hit[2]
    raw = r.hmget(keys().camera(camera_id), ["lon", "lat", "name"])
    lon, lat, name = (v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in raw)
    if not lon or not lat:
        raise VideoEventError(f"camera {camera_id!r} is not registered (no position)")
    try:
        from grids.locate import locator

        place = locator().locate(float(lon), float(lat))
    except ValueError as exc:
        raise VideoEventError(f"camera {camera_id!r} cannot be located: {exc}") from exc
    if len(_places) > 10_000:
        _places.clear()
    _places[key] = (time.monotonic() + PLACE_TTL_S, place, name or camera_id)
    return place, name or camera_id


def _title(ev: VideoEvent, name: str) -> str:
    if ev.kind == "tampering":
        return f"{name} {TAMPER_ZH.get(ev.zone, '摄像头被干扰')}"
    what = KIND_ZH.get(ev.kind, ev.kind)
    if ev.kind == "offline":
        return f"{name} {what}"
    return f"{name} {ev.zone_name or ev.zone} {what}"


def _default_order_hook(r: redis.Redis, alarm: Alarm) -> Any:
    from workorders.service import create_from_alarm

    return create_from_alarm(r, alarm)


def handle_video_event(
    r: redis.Redis,
    data: dict[str, Any],
    *,
    order_hook: OrderHook | None = _default_order_hook,
) -> Alarm | None:
    """Apply the video rules to one event; returns the alarm raised, repeated or cleared."""
    kind = data.get("kind")
    if kind in IGNORED_KINDS:
        return None
    try:
        ev = VideoEvent.model_validate(data)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise VideoEventError(f"not a video event: {detail}") from exc
    if ev.kind == "online":
        return _clear_offline(r, ev)
    if ev.kind not in ALARM_KINDS:
        return None  # kinds of newer analysers: nothing to alarm on yet
    return _raise(r, ev, order_hook)


def _entry(ev: VideoEvent, action: str) -> dict[str, Any]:
    e: dict[str, Any] = {
        "ts_ms": now_ms(),
        "by": "system",
        "action": action,
        "event_ts_ms": ev.ts_ms,
    }
    for name in ("event_id", "snapshot", "clip"):
        if getattr(ev, name):
            e[name] = getattr(ev, name)
    if ev.error:
        e["error"] = ev.error
    return e


def _raise(r: redis.Redis, ev: VideoEvent, order_hook: OrderHook | None) -> Alarm | None:
    k = keys()
    rule = rule_of(ev)
    lock = k.alarm_lock(ev.camera_id, rule)
    current = _open_alarms(r, ev.camera_id, {rule: r.get(lock)})[rule]
    if current is not None:
        return _repeat(r, current, ev, order_hook)
    place, name = camera_place(r, ev.camera_id)
    from modes.service import get_mode

    severity = ev.severity or DEFAULT_SEVERITY[ev.kind]
    ts = now_ms()
    entry = _entry(ev, "raised")
    entry.update(severity=severity.value, mode=get_mode(r, place.code or "4101").mode.value)
    alarm = Alarm(
        id=new_alarm_id(r, ev.ts_ms),
        device_id=ev.camera_id,
        device_type="camera",
        rule=rule,
        metric=ev.kind,
        value=ev.value,
        threshold=ev.threshold,
        severity=severity,
        raised_ms=ev.ts_ms,
        updated_ms=ts,
        place=place,
        title=_title(ev, ev.camera_name or name),
        history=[entry],
    )
    # The body first, then the lock: whoever wins the lock owns the one open alarm.
    r.set(k.alarm(alarm.id), alarm.model_dump_json())
    if not r.set(lock, alarm.id, nx=True):
        r.delete(k.alarm(alarm.id))
        other = _open_alarms(r, ev.camera_id, {rule: r.get(lock)})[rule]
        return _repeat(r, other, ev, order_hook) if other is not None else None
    pipe = r.pipeline(transaction=True)
    _save(pipe, alarm)
    pipe.execute()
    _maybe_order(r, alarm, order_hook)
    push.publish(r, "alarm", id=alarm.id, code=alarm.place.code, severity=alarm.severity.value)
    return alarm


def _repeat(r: redis.Redis, alarm: Alarm, ev: VideoEvent, order_hook: OrderHook | None) -> Alarm:
    """The same rule fired again while its alarm is open: recorded on it, no new alarm."""
    if any(
        h.get("event_ts_ms") == ev.ts_ms and h.get("event_id") == ev.event_id for h in alarm.history
    ):
        return alarm  # a redelivered entry
    alarm.history.append(_entry(ev, "repeated"))
    if len(alarm.history) > MAX_REPEATS:
        alarm.history = alarm.history[:1] + alarm.history[-(MAX_REPEATS - 1) :]
    alarm.value = ev.value
    alarm.updated_ms = now_ms()
    pipe = r.pipeline(transaction=True)
    _save(pipe, alarm)
    pipe.execute()
    if alarm.order_id is None:
        _maybe_order(r, alarm, order_hook)  # a crash may have left it without its order
    push.publish(r, "alarm", id=alarm.id, code=alarm.place.code, severity=alarm.severity.value)
    return alarm


def _clear_offline(r: redis.Redis, ev: VideoEvent) -> Alarm | None:
    k = keys()
    lock = k.alarm_lock(ev.camera_id, OFFLINE_RULE)
    alarm = _open_alarms(r, ev.camera_id, {OFFLINE_RULE: r.get(lock)})[OFFLINE_RULE]
    if alarm is None or alarm.state not in OPEN_STATES:
        return None
    alarm.state = AlarmState.CLEARED
    alarm.updated_ms = now_ms()
    alarm.history.append(_entry(ev, "cleared"))
    pipe = r.pipeline(transaction=True)
    _save(pipe, alarm)
    pipe.delete(lock)
    pipe.execute()
    push.publish(r, "alarm", id=alarm.id, code=alarm.place.code, severity=alarm.severity.value)
    return alarm
