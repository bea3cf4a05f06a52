"""Readings to alarms: rules under the mode in force, one open alarm per device and rule.

Lifecycle: raised → acknowledged → cleared → closed. An alarm is open (listed in
``alarms_open``, holding its ``alarm_lock``) while raised or acknowledged; when the value
is back inside by the hysteresis margin it is cleared and the lock is released, so the
next crossing opens a new alarm. An operator may close an alarm in any state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

import redis

from alarms.rules import Decision, Direction, Threshold, decide, for_mode
from core import push
from core.keys import keys
from core.models import Alarm, AlarmState, Mode, Place, Reading, Severity
from core.timeutil import SHANGHAI, now_ms
from modes.config import mode_config
from modes.service import CITY_CODE, mode_chain, resolve_mode

SEVERITY_ZH = {
    Severity.RED: "红色预警",
    Severity.ORANGE: "橙色预警",
    Severity.YELLOW: "黄色预警",
    Severity.BLUE: "蓝色预警",
}
OPEN_STATES = frozenset({AlarmState.RAISED, AlarmState.ACKNOWLEDGED})


class AlarmError(ValueError):
    """A refused alarm operation; the message says why."""


class UnknownDevice(LookupError):
    """A reading from a device nobody registered."""


@dataclass(frozen=True)
class DeviceInfo:
    """What the rules need to know about a device."""

    id: str
    name: str
    type: str
    place: Place


# --- devices and thresholds (from the device registry and catalogue) ---------------------


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def device_info(r: redis.Redis, device_id: str) -> DeviceInfo:
    """The registered device, with its place; UnknownDevice when it is not registered."""
    from devices.registry import get_device

    dev = get_device(r, device_id)
    if dev is None:
        raise UnknownDevice(f"device {device_id!r} is not registered")
    place = _get(dev, "place")
    if isinstance(place, dict):
        place = Place.model_validate(place)
    if not isinstance(place, Place):
        lon, lat = float(_get(dev, "lon")), float(_get(dev, "lat"))
        place = _locate(lon, lat)
    dtype = _get(dev, "type") or _get(dev, "device_type") or _get(dev, "type_key") or ""
    return DeviceInfo(
        id=device_id,
        name=str(_get(dev, "name") or device_id),
        type=str(dtype),
        place=place,
    )


DEVICE_TTL_S = 30.0
_device_cache: dict[tuple[str, str], tuple[float, DeviceInfo]] = {}


def cached_device_info(r: redis.Redis, device_id: str) -> DeviceInfo:
    """device_info, remembered for DEVICE_TTL_S: a moved or retyped device is seen within it."""
    key = (keys().prefix, device_id)
    hit = _device_cache.get(key)
    now = time.monotonic()
    if hit and hit[0] > now:
        return hit[1]
    info = device_info(r, device_id)
    if len(_device_cache) > 100_000:
        _device_cache.clear()
    _device_cache[key] = (now + DEVICE_TTL_S, info)
    return info


def _locate(lon: float, lat: float) -> Place:
    try:
        from grids.locate import locator
    except ImportError:
        return Place(lon=lon, lat=lat)
    return locator().locate(lon, lat)


def catalogue_thresholds(device_type: str) -> list[Threshold]:
    """Daily thresholds of a device type from the catalogue, with its per-mode limits."""
    return list(_catalogue_thresholds(device_type))


@lru_cache(maxsize=256)
def _catalogue_thresholds(device_type: str) -> tuple[Threshold, ...]:
    from devices.catalogue import catalogue

    dt = catalogue().get(device_type)
    out: list[Threshold] = []
    for key, m in dt.metrics.items():
        for direction in ("high", "low"):
            daily = dict(getattr(m.thresholds, direction))
            per_mode = {
                mode.value: dict(getattr(lim, direction))
                for mode, lim in m.modes.items()
                if getattr(lim, direction)
            }
            if not daily:
                continue
            out.append(
                Threshold(
                    metric=key,
                    direction=cast(Direction, direction),
                    levels=daily,
                    hysteresis=m.hysteresis,
                    unit=m.unit,
                    label=m.name.get("zh-CN") or m.name.get("en") or key,
                    device_type=device_type,
                    normal=(float(m.normal[0]), float(m.normal[1])),
                    mode_levels=per_mode,
                )
            )
    return tuple(out)


def in_force(thresholds: Iterable[Threshold], mode: Mode | str) -> list[Threshold]:
    """The thresholds as the mode changes them."""
    cfg = mode_config(mode)
    return [
        for_mode(
            t,
            Mode(mode).value,
            factor=cfg.alarm_factor,
            overrides=cast(
                Mapping[str, Mapping[str, Mapping[str, Mapping[Severity, float]]]], cfg.overrides
            ),
        )
        for t in thresholds
    ]


# --- storage ------------------------------------------------------------------------------


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def new_alarm_id(r: redis.Redis, ts_ms: int) -> str:
    seq = int(r.incr(keys().alarm_seq))
    day = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(SHANGHAI)
    return f"AL{day:%Y%m%d}-{seq:06d}"


def get_alarm(r: redis.Redis, alarm_id: str) -> Alarm | None:
    """Unscoped read for workers; screens read through access.reads."""
    raw = r.get(keys().alarm(alarm_id))
    return Alarm.model_validate_json(raw) if raw else None


def _save(pipe: Any, alarm: Alarm) -> None:
    k = keys()
    pipe.set(k.alarm(alarm.id), alarm.model_dump_json())
    pipe.zadd(k.alarms_all, {alarm.id: alarm.raised_ms})
    if alarm.state in OPEN_STATES:
        pipe.zadd(k.alarms_open, {alarm.id: alarm.raised_ms})
    else:
        pipe.zrem(k.alarms_open, alarm.id)


def _title(dev: DeviceInfo, t: Threshold, value: float, sev: Severity) -> str:
    word = "高于" if t.direction == "high" else "低于"
    return (
        f"{dev.name} {t.label or t.metric} {value:g}{t.unit} {word}{SEVERITY_ZH[sev]}限值 "
        f"{t.limit(sev):g}{t.unit}"
    )


# --- the rules applied to one reading -----------------------------------------------------


OrderHook = Callable[[redis.Redis, Alarm], Any]


def _default_order_hook(r: redis.Redis, alarm: Alarm) -> Any:
    from workorders.service import create_from_alarm

    return create_from_alarm(r, alarm)


def process_reading(
    r: redis.Redis,
    reading: Reading,
    *,
    device: DeviceInfo | None = None,
    thresholds: Sequence[Threshold] | None = None,
    order_hook: OrderHook | None = _default_order_hook,
) -> list[Alarm]:
    """Apply the rules to a reading; returns the alarms it raised, changed or cleared.

    ``thresholds`` are daily limits (default: the device catalogue); the mode in force
    at the device's place adjusts them. ``order_hook`` opens a work order for an alarm
    (None: alarms only). A reading with nothing to change costs two round trips.
    """
    dev = device or cached_device_info(r, reading.device_id)
    daily = list(thresholds) if thresholds is not None else catalogue_thresholds(dev.type)
    k = keys()
    state_key = k.device_state(dev.id)
    code = dev.place.code or CITY_CODE
    chain = mode_chain(code)
    rule_ids = sorted({t.rule for t in daily})

    pipe = r.pipeline(transaction=False)
    pipe.hmget(state_key, ["last_ts_ms", "severity", "last_seen_ms"])
    pipe.hmget(k.modes, chain)
    pipe.mget([k.alarm_lock(dev.id, rid) for rid in rule_ids] or [k.alarm_lock(dev.id, "-")])
    (last_ts, prev_sev, prev_seen), mode_raw, lock_raw = pipe.execute()
    mode = resolve_mode(code, chain, mode_raw)
    current = _open_alarms(r, dev.id, dict(zip(rule_ids, lock_raw, strict=False)))

    state: dict[Any, Any] = {f"m:{name}": repr(float(v)) for name, v in reading.metrics.items()}
    state.update({"last_seen_ms": str(reading.received_ms), "status": "online"})
    if reading.battery is not None:
        state["battery"] = repr(float(reading.battery))
    if reading.signal is not None:
        state["signal"] = repr(float(reading.signal))
    if last_ts is not None and reading.ts_ms < int(last_ts):
        # A late, older reading must not clear or raise over what a newer one decided.
        r.hset(state_key, "last_seen_ms", str(reading.received_ms))
        return []
    state["last_ts_ms"] = str(reading.ts_ms)

    changed: list[Alarm] = []
    for t in in_force(daily, mode.mode):
        if t.metric not in reading.metrics:
            continue
        alarm, now_open = _apply(
            r,
            dev,
            t,
            float(reading.metrics[t.metric]),
            reading,
            mode.mode,
            order_hook,
            current.get(t.rule),
        )
        current[t.rule] = now_open
        if alarm is not None:
            changed.append(alarm)

    sevs = [a.severity for a in current.values() if a is not None]
    state["severity"] = min(sevs, key=lambda s: s.rank).value if sevs else ""
    r.hset(state_key, mapping=state)
    if prev_seen is None or _s(prev_sev or b"") != state["severity"]:
        # Screens are told about changes; last values ride along with the next change.
        push.publish(r, "device", id=dev.id, code=dev.place.code, severity=state["severity"])
    return changed


def _open_alarms(r: redis.Redis, device_id: str, locks: dict[str, Any]) -> dict[str, Alarm | None]:
    """Rule -> its open alarm; a lock left behind by a crash is removed."""
    k = keys()
    held = {rule: _s(v) for rule, v in locks.items() if v}
    out: dict[str, Alarm | None] = dict.fromkeys(locks)
    if not held:
        return out
    for (rule, aid), raw in zip(
        held.items(), r.mget([k.alarm(i) for i in held.values()]), strict=True
    ):
        alarm = Alarm.model_validate_json(raw) if raw else None
        if alarm is None or alarm.state not in OPEN_STATES:
            # A lock without its open alarm must not block new alarms for ever.
            lock = k.alarm_lock(device_id, rule)
            if _s(r.get(lock) or b"") == aid:
                r.delete(lock)
            alarm = None
        out[rule] = alarm
    return out


def _apply(
    r: redis.Redis,
    dev: DeviceInfo,
    t: Threshold,
    value: float,
    reading: Reading,
    mode: Mode,
    order_hook: OrderHook | None,
    current: Alarm | None,
) -> tuple[Alarm | None, Alarm | None]:
    """(the alarm if it changed in a way screens must hear of, the rule's open alarm after)."""
    k = keys()
    lock = k.alarm_lock(dev.id, t.rule)
    d: Decision = decide(t, value, current.severity if current else None)
    ts = now_ms()
    if d.action == "none":
        return None, None
    if d.action == "raise" and current is None:
        assert d.severity is not None
        alarm = Alarm(
            id=new_alarm_id(r, reading.ts_ms),
            device_id=dev.id,
            device_type=dev.type,
            rule=t.rule,
            metric=t.metric,
            value=value,
            threshold=t.limit(d.severity),
            unit=t.unit,
            severity=d.severity,
            raised_ms=reading.ts_ms,
            updated_ms=ts,
            place=dev.place,
            title=_title(dev, t, value, d.severity),
            history=[
                {
                    "ts_ms": ts,
                    "by": "system",
                    "action": "raised",
                    "severity": d.severity.value,
                    "value": value,
                    "mode": mode.value,
                }
            ],
        )
        # The body first, then the lock: whoever wins the lock owns the one open alarm.
        r.set(k.alarm(alarm.id), alarm.model_dump_json())
        if not r.set(lock, alarm.id, nx=True):
            r.delete(k.alarm(alarm.id))
            other = _open_alarms(r, dev.id, {t.rule: r.get(lock)})[t.rule]
            return _apply(r, dev, t, value, reading, mode, order_hook, other)
        pipe = r.pipeline(transaction=True)
        _save(pipe, alarm)
        pipe.execute()
        _maybe_order(r, alarm, order_hook)
        push.publish(r, "alarm", id=alarm.id, code=alarm.place.code, severity=alarm.severity.value)
        return alarm, alarm
    assert current is not None
    alarm = current
    alarm.value = value
    alarm.updated_ms = ts
    if d.action == "escalate":
        assert d.severity is not None
        alarm.history.append(
            {
                "ts_ms": ts,
                "by": "system",
                "action": "escalated",
                "from": alarm.severity.value,
                "to": d.severity.value,
                "value": value,
            }
        )
        alarm.severity = d.severity
        alarm.threshold = t.limit(d.severity)
        alarm.title = _title(dev, t, value, d.severity)
    elif d.action == "clear":
        alarm.state = AlarmState.CLEARED
        alarm.history.append({"ts_ms": ts, "by": "system", "action": "cleared", "value": value})
    pipe = r.pipeline(transaction=True)
    _save(pipe, alarm)
    if d.action == "clear":
        pipe.delete(lock)
    pipe.execute()
    if d.action == "update":
        if alarm.order_id is None:
            _maybe_order(r, alarm, order_hook)  # a crash may have left it without its order
        return None, alarm
    if d.action == "escalate":
        _maybe_order(r, alarm, order_hook)
    push.publish(r, "alarm", id=alarm.id, code=alarm.place.code, severity=alarm.severity.value)
    return alarm, (None if d.action == "clear" else alarm)


def _maybe_order(r: redis.Redis, alarm: Alarm, order_hook: OrderHook | None) -> None:
    if order_hook is None or alarm.order_id:
        return
    order = order_hook(r, alarm)
    if order is None:
        return
    alarm.order_id = order.id
    alarm.history.append(
        {"ts_ms": now_ms(), "by": "system", "action": "order", "order_id": order.id}
    )
    r.set(keys().alarm(alarm.id), alarm.model_dump_json())


# --- operator actions ---------------------------------------------------------------------


def _operate(
    r: redis.Redis,
    alarm_id: str,
    by: str,
    action: str,
    to: AlarmState,
    allowed: frozenset[AlarmState],
    note: str = "",
) -> Alarm:
    by = (by or "").strip()
    if not by:
        raise AlarmError(f"{action} needs the name of who does it")
    k = keys()
    result: dict[str, Alarm] = {}

    def txn(pipe: Any) -> None:
        raw = pipe.get(k.alarm(alarm_id))
        if not raw:
            raise AlarmError(f"alarm {alarm_id} does not exist")
        alarm = Alarm.model_validate_json(raw)
        if alarm.state not in allowed:
            raise AlarmError(f"alarm {alarm_id} is {alarm.state.value}; it cannot be {to.value}")
        ts = now_ms()
        entry: dict[str, Any] = {"ts_ms": ts, "by": by, "action": action}
        if note:
            entry["note"] = note
        alarm.history.append(entry)
        was_open = alarm.state in OPEN_STATES
        alarm.state = to
        alarm.updated_ms = ts
        pipe.multi()
        _save(pipe, alarm)
        if was_open and to not in OPEN_STATES:
            pipe.delete(k.alarm_lock(alarm.device_id, alarm.rule))
        result["a"] = alarm

    r.transaction(txn, k.alarm(alarm_id))
    alarm = result["a"]
    push.publish(r, "alarm", id=alarm.id, code=alarm.place.code, severity=alarm.severity.value)
    return alarm


def acknowledge(r: redis.Redis, alarm_id: str, by: str) -> Alarm:
    return _operate(
        r, alarm_id, by, "acknowledged", AlarmState.ACKNOWLEDGED, frozenset({AlarmState.RAISED})
    )


def close(r: redis.Redis, alarm_id: str, by: str, reason: str) -> Alarm:
    """Close an alarm; closing one that is still open (e.g. a false alarm) needs a reason."""
    if not (reason or "").strip():
        raise AlarmError("closing an alarm needs a reason")
    return _operate(
        r,
        alarm_id,
        by,
        "closed",
        AlarmState.CLOSED,
        frozenset({AlarmState.RAISED, AlarmState.ACKNOWLEDGED, AlarmState.CLEARED}),
        reason.strip(),
    )


def alarm_json(alarm: Alarm) -> dict[str, Any]:
    return json.loads(alarm.model_dump_json())
