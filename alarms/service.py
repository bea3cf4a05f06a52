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

from alarms.rules import (
    Decision,
    Direction,
    RateRule,
    Threshold,
    decide,
    decide_rate,
    for_mode,
    hold,
)
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
                    min_duration_s=m.min_duration_s,
                )
            )
    return tuple(out)


def catalogue_rates(device_type: str) -> list[RateRule]:
    """Rate-of-change rules of a device type from the catalogue."""
    return list(_catalogue_rates(device_type))


@lru_cache(maxsize=256)
def _catalogue_rates(device_type: str) -> tuple[RateRule, ...]:
    from devices.catalogue import catalogue

    try:
        dt = catalogue().get(device_type)
    except KeyError:
        return ()
    return tuple(
        RateRule(
            metric=key,
            levels=dict(m.rate.per_min),
            direction=m.rate.direction,
            min_gap_s=m.rate.min_gap_s,
            max_gap_s=m.rate.max_gap_s,
            clear_after_s=m.rate.clear_after_s,
            unit=m.unit,
            label=m.name.get("zh-CN") or m.name.get("en") or key,
            device_type=device_type,
        )
        for key, m in dt.metrics.items()
        if m.rate is not None
    )


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
OFFLINE_RULE = "offline"
_REASON_ZH = {"silent": "超时无数据", "last_will": "连接中断（遗嘱消息）"}


def _default_order_hook(r: redis.Redis, alarm: Alarm) -> Any:
    return order_for_alarm(r, alarm)


@dataclass(frozen=True)
class _Spec:
    """What the alarms of one rule say: id, metric, unit, the limit and title per severity."""

    rule: str
    metric: str
    unit: str
    limit: Callable[[Severity], float]
    title: Callable[[float, Severity], str]


def _threshold_spec(dev: DeviceInfo, t: Threshold) -> _Spec:
    return _Spec(t.rule, t.metric, t.unit, t.limit, lambda v, s: _title(dev, t, v, s))


def _rate_spec(dev: DeviceInfo, rr: RateRule) -> _Spec:
    unit = f"{rr.unit}/min"

    def title(v: float, s: Severity) -> str:
        word = {"rise": "上升", "fall": "下降", "both": "变化"}[rr.direction]
        return (
            f"{dev.name} {rr.label or rr.metric}{word}过快 {v:+.2f}{rr.unit}/分钟 "
            f"超过{SEVERITY_ZH[s]}限值 {rr.limit(s):g}{rr.unit}/分钟"
        )

    return _Spec(rr.rule, rr.metric, unit, rr.limit, title)


def process_reading(
    r: redis.Redis,
    reading: Reading,
    *,
    device: DeviceInfo | None = None,
    thresholds: Sequence[Threshold] | None = None,
    rates: Sequence[RateRule] | None = None,
    order_hook: OrderHook | None = _default_order_hook,
) -> list[Alarm]:
    """Apply the rules to a reading; returns the alarms it raised, changed or cleared.

    ``thresholds`` are daily limits (default: the device catalogue); the mode in force
    at the device's place adjusts them. ``rates`` are rate-of-change rules (default: the
    catalogue's, or none when ``thresholds`` are given). A reading also clears the
    device's open offline alarm. ``order_hook`` opens a work order for an alarm (None:
    alarms only). A reading with nothing to change costs two round trips.
    """
    dev = device or cached_device_info(r, reading.device_id)
    daily = list(thresholds) if thresholds is not None else catalogue_thresholds(dev.type)
    if rates is None:
        rates = catalogue_rates(dev.type) if thresholds is None else []
    rate_rules = [rr for rr in rates if rr.metric in reading.metrics]
    k = keys()
    state_key = k.device_state(dev.id)
    code = dev.place.code or CITY_CODE
    chain = mode_chain(code)
    rule_ids = sorted({t.rule for t in daily} | {rr.rule for rr in rate_rules} | {OFFLINE_RULE})
    held = [f"since:{t.rule}" for t in daily if t.min_duration_s > 0]
    held += [f for rr in rate_rules for f in (f"r0:{rr.metric}", f"rx:{rr.metric}")]

    pipe = r.pipeline(transaction=False)
    pipe.hmget(state_key, ["last_ts_ms", "severity", "last_seen_ms", *held])
    pipe.hmget(k.modes, chain)
    pipe.mget([k.alarm_lock(dev.id, rid) for rid in rule_ids])
    (last_ts, prev_sev, prev_seen, *held_raw), mode_raw, lock_raw = pipe.execute()
    kept = {name: _s(v) for name, v in zip(held, held_raw, strict=True) if v is not None}
    mode = resolve_mode(code, chain, mode_raw)
    current = _open_alarms(r, dev.id, dict(zip(rule_ids, lock_raw, strict=True)))

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
    forget: list[str] = []

    changed: list[Alarm] = []
    for t in in_force(daily, mode.mode):
        if t.metric not in reading.metrics:
            continue
        value = float(reading.metrics[t.metric])
        cur = current.get(t.rule)
        since_field = f"since:{t.rule}"
        since = int(kept[since_field]) if since_field in kept else None
        d, started = hold(
            decide(t, value, cur.severity if cur else None), reading.ts_ms, since, t.min_duration_s
        )
        if started is not None:
            state[since_field] = str(started)
        elif since_field in kept:
            forget.append(since_field)
        extra: dict[str, Any] = {"mode": mode.mode.value}
        if since is not None and d.action == "raise":
            extra["over_since_ms"] = since
        alarm, now_open = _act(
            r, dev, _threshold_spec(dev, t), d, value, reading.ts_ms, order_hook, cur, extra
        )
        current[t.rule] = now_open
        if alarm is not None:
            changed.append(alarm)

    for rr in rate_rules:
        value = float(reading.metrics[rr.metric])
        rate, ref = _rate_step(rr, kept.get(f"r0:{rr.metric}"), reading.ts_ms, value)
        state[f"r0:{rr.metric}"] = ref
        last_cross = kept.get(f"rx:{rr.metric}")
        if rate is not None and rr.crossed(rate) is not None:
            state[f"rx:{rr.metric}"] = str(reading.ts_ms)
        cur = current.get(rr.rule)
        d = decide_rate(
            rr,
            rate,
            reading.ts_ms,
            int(last_cross) if last_cross else None,
            cur.severity if cur else None,
        )
        if d.action == "raise" and any(
            a is not None and a.metric == rr.metric and a.rule.startswith("threshold:")
            for a in current.values()
        ):
            # The threshold alarm of the metric already says more than an early warning.
            d = Decision("none")
        alarm, now_open = _act(
            r, dev, _rate_spec(dev, rr), d, rate, reading.ts_ms, order_hook, cur, {}
        )
        current[rr.rule] = now_open
        if alarm is not None:
            changed.append(alarm)

    offline = current.get(OFFLINE_RULE)
    if offline is not None:
        alarm, now_open = _act(
            r,
            dev,
            _offline_spec(dev, offline.threshold, "silent"),
            Decision("clear", offline.severity),
            None,
            reading.ts_ms,
            order_hook,
            offline,
            {"note": "device reported again"},
        )
        current[OFFLINE_RULE] = now_open
        if alarm is not None:
            changed.append(alarm)

    sevs = [a.severity for a in current.values() if a is not None]
    state["severity"] = min(sevs, key=lambda s: s.rank).value if sevs else ""
    pipe = r.pipeline(transaction=False)
    pipe.hset(state_key, mapping=state)
    if forget:
        pipe.hdel(state_key, *forget)
    pipe.execute()
    if prev_seen is None or _s(prev_sev or b"") != state["severity"]:
        # Screens are told about changes; last values ride along with the next change.
        push.publish(r, "device", id=dev.id, code=dev.place.code, severity=state["severity"])
    return changed


def _rate_step(rr: RateRule, ref: str | None, ts_ms: int, value: float) -> tuple[float | None, str]:
    """(the rate against the reference reading, the reference to keep as ``ts:value``).

    The reference moves only when a rate was taken or it went stale, so readings closer
    than ``min_gap_s`` are measured against an older one instead of each other.
    """
    here = f"{ts_ms}:{value!r}"
    if not ref:
        return None, here
    try:
        t0_s, v0_s = ref.split(":", 1)
        t0, v0 = int(t0_s), float(v0_s)
    except ValueError:
        return None, here
    gap = ts_ms - t0
    if gap > rr.max_gap_s * 1000 or gap < 0:
        return None, here
    if gap < rr.min_gap_s * 1000 or gap == 0:
        return None, ref
    return rr.per_min(v0, t0, value, ts_ms), here


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


def _act(
    r: redis.Redis,
    dev: DeviceInfo,
    spec: _Spec,
    d: Decision,
    value: float | None,
    raised_ms: int,
    order_hook: OrderHook | None,
    current: Alarm | None,
    extra: Mapping[str, Any],
    _tries: int = 3,
) -> tuple[Alarm | None, Alarm | None]:
    """Carry out a decision on one rule's alarm.

    Returns (the alarm if it changed in a way screens must hear of, the rule's open alarm
    after). ``value`` None keeps the alarm's last value (a rate that could not be taken).
    """
    k = keys()
    lock = k.alarm_lock(dev.id, spec.rule)
    ts = now_ms()
    if d.action in ("none", "pending") or (current is None and d.action != "raise"):
        return None, current
    if d.action == "raise" and current is None:
        assert d.severity is not None and value is not None
        sev = d.severity
        alarm = Alarm(
            id=new_alarm_id(r, raised_ms),
            device_id=dev.id,
            device_type=dev.type,
            rule=spec.rule,
            metric=spec.metric,
            value=value,
            threshold=spec.limit(sev),
            unit=spec.unit,
            severity=sev,
            raised_ms=raised_ms,
            updated_ms=ts,
            place=dev.place,
            title=spec.title(value, sev),
            history=[
                {
                    "ts_ms": ts,
                    "by": "system",
                    "action": "raised",
                    "severity": sev.value,
                    "value": value,
                    **extra,
                }
            ],
        )
        # The body first, then the lock: whoever wins the lock owns the one open alarm.
        r.set(k.alarm(alarm.id), alarm.model_dump_json())
        if not r.set(lock, alarm.id, nx=True):
            r.delete(k.alarm(alarm.id))
            other = _open_alarms(r, dev.id, {spec.rule: r.get(lock)})[spec.rule]
            if _tries <= 0:
                return None, other
            if other is not None:
                d = (
                    Decision("escalate", sev)
                    if sev.rank < other.severity.rank
                    else Decision("update", other.severity)
                )
            return _act(r, dev, spec, d, value, raised_ms, order_hook, other, extra, _tries - 1)
        pipe = r.pipeline(transaction=True)
        _save(pipe, alarm)
        pipe.execute()
        _maybe_order(r, alarm, order_hook)
        push.publish(r, "alarm", id=alarm.id, code=alarm.place.code, severity=alarm.severity.value)
        return alarm, alarm
    assert current is not None
    alarm = current
    if d.action == "update" and value is None:
        return None, alarm  # nothing new to say
    if value is not None:
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
                "value": alarm.value,
            }
        )
        alarm.severity = d.severity
        alarm.threshold = spec.limit(d.severity)
        alarm.title = spec.title(alarm.value, d.severity)
    elif d.action == "clear":
        alarm.state = AlarmState.CLEARED
        alarm.history.append(
            {"ts_ms": ts, "by": "system", "action": "cleared", "value": alarm.value, **extra}
        )
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
    joined = getattr(order, "alarm_id", None) not in (None, alarm.id)
    alarm.history.append(
        {
            "ts_ms": now_ms(),
            "by": "system",
            "action": "order_joined" if joined else "order",
            "order_id": order.id,
        }
    )
    r.set(keys().alarm(alarm.id), alarm.model_dump_json())


# --- offline rule -------------------------------------------------------------------------


def _offline_spec(dev: DeviceInfo, limit_s: float, reason: str) -> _Spec:
    return _Spec(
        OFFLINE_RULE,
        OFFLINE_RULE,
        "s",
        lambda _s: limit_s,
        lambda v, s: f"{dev.name} 离线：{_REASON_ZH.get(reason, reason)}，已 {v:.0f} 秒无数据",
    )


def raise_offline(
    r: redis.Redis,
    device_ids: Iterable[str],
    reason: str,
    ts_ms: int | None = None,
    *,
    order_hook: OrderHook | None = _default_order_hook,
) -> list[Alarm]:
    """Raise the "offline" alarm of each device just marked offline (``silent`` or
    ``last_will``), at the severity its type gives; one open per device. A device whose
    type sets no offline severity, or an unregistered one, is skipped."""
    from devices.catalogue import catalogue

    ts = now_ms() if ts_ms is None else ts_ms
    k = keys()
    out: list[Alarm] = []
    for device_id in device_ids:
        try:
            dev = cached_device_info(r, device_id)
            dtype = catalogue().get(dev.type)
        except (UnknownDevice, KeyError):
            continue
        if dtype.offline_severity is None:
            continue
        lock = k.alarm_lock(device_id, OFFLINE_RULE)
        current = _open_alarms(r, device_id, {OFFLINE_RULE: r.get(lock)})[OFFLINE_RULE]
        if current is not None:
            continue
        seen = r.hget(k.device_state(device_id), "last_seen_ms")
        silent_s = max(0.0, (ts - int(_s(seen))) / 1000) if seen else 0.0
        alarm, _open = _act(
            r,
            dev,
            _offline_spec(dev, float(dtype.offline_after_s), reason),
            Decision("raise", dtype.offline_severity),
            silent_s,
            ts,
            order_hook,
            None,
            {"reason": reason},
        )
        if alarm is not None:
            out.append(alarm)
            r.hset(k.device_state(device_id), "severity", alarm.severity.value)
    return out


# --- one work order for many sensors at one place ------------------------------------------


def order_for_alarm(r: redis.Redis, alarm: Alarm) -> Any:
    """The work order of an alarm: its own, else the open order of an alarm of the same
    device type within the type's ``alarm_merge`` radius and window (the alarm joins it),
    else a new one through ``workorders.service.create_from_alarm``. None when the
    alarm's severity opens no order."""
    from devices.catalogue import AlarmMerge, catalogue
    from workorders.service import create_from_alarm, get_order, policy

    k = keys()
    ref = r.hget(k.order_refs, f"alarm:{alarm.id}")
    if ref:
        found = get_order(r, _s(ref))
        if found is not None:
            return found
    if alarm.severity not in policy().alarm_order_severities:
        return None
    try:
        merge = catalogue().get(alarm.device_type).alarm_merge
    except KeyError:
        merge = AlarmMerge()
    if merge.radius_m <= 0 or not alarm.place.inside_city:
        return create_from_alarm(r, alarm)
    geo = k.alarm_order_geo(alarm.device_type)
    try:
        # Serialises the look-then-create of workers handling neighbours at the same moment.
        with r.lock(f"{geo}:lock", timeout=10, blocking_timeout=10):
            joined = _join_nearby(r, alarm, geo, merge.radius_m, merge.window_s)
            if joined is not None:
                return joined
            order = create_from_alarm(r, alarm)
            if order is not None and order.alarm_id == alarm.id:
                r.geoadd(geo, (alarm.place.lon, alarm.place.lat, order.id))
            return order
    except redis.exceptions.LockError:
        return create_from_alarm(r, alarm)


def _join_nearby(r: redis.Redis, alarm: Alarm, geo: str, radius_m: float, window_s: float) -> Any:
    from core.models import WorkOrder
    from workorders.service import FINAL, alarm_category

    k = keys()
    category = alarm_category(alarm.device_type)
    near = cast(
        list[Any],
        r.geosearch(
            geo,
            longitude=alarm.place.lon,
            latitude=alarm.place.lat,
            radius=radius_m,
            unit="m",
            sort="ASC",
            withdist=True,
        ),
    )
    since = now_ms() - int(window_s * 1000)
    for raw_id, dist in near:
        oid = _s(raw_id)
        out: dict[str, Any] = {}

        def txn(pipe: Any, oid: str = oid, dist: float = float(dist), out: dict = out) -> None:
            raw = pipe.get(k.order(oid))
            order = WorkOrder.model_validate_json(raw) if raw else None
            if order is None or order.status in FINAL or order.created_ms < since:
                out["stale"] = True
                return
            if order.category != category:
                return
            ts = now_ms()
            order.alarm_ids = [*(order.alarm_ids or [order.alarm_id or ""]), alarm.id]
            order.history.append(
                {
                    "ts_ms": ts,
                    "by": "system",
                    "action": "alarm_joined",
                    "alarm_id": alarm.id,
                    "device_id": alarm.device_id,
                    "severity": alarm.severity.value,
                    "distance_m": round(dist, 1),
                    "note": f"{alarm.title}（相距 {dist:.0f} 米）",
                }
            )
            order.updated_ms = ts
            pipe.multi()
            pipe.set(k.order(order.id), order.model_dump_json())
            pipe.hset(k.order_refs, f"alarm:{alarm.id}", order.id)
            out["order"] = order

        r.transaction(txn, k.order(oid))
        if out.get("stale"):
            r.zrem(geo, oid)  # closed or too old: no later alarm may join it
            continue
        if "order" in out:
            order = out["order"]
            push.publish(r, "order", id=order.id, code=order.place.code, status=order.status.value)
            return order
    return None


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
