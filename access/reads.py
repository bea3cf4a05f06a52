"""Every read a screen makes, each taking the user's Scope first.

Records are filtered by ``scope.sees(place.code)``; an order out of scope is answered
exactly like a missing one, so a user cannot even learn that it exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis
from pydantic import BaseModel

from access.scope import Scope
from core.keys import keys
from core.models import Alarm, AlarmState, Place, Severity, WorkOrder
from core.timeutil import now_ms
from devices.catalogue import catalogue
from devices.registry import Device, DeviceStatus
from modes.service import ModeState, get_mode

T = TypeVar("T", bound=BaseModel)
BATCH = 200
# Silence after which a device of an unknown type counts as offline.
DEFAULT_OFFLINE_AFTER_MS = 10 * 60 * 1000
OPEN_ALARM_STATES = (AlarmState.RAISED, AlarmState.ACKNOWLEDGED)


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _scan(
    r: redis.Redis,
    index: str,
    key_of: Callable[[str], str],
    model: type[T],
    code_of: Callable[[T], str],
    scope: Scope,
) -> Iterator[T]:
    """Records of a sorted-set index, newest first, that the scope sees; batched MGETs."""
    start = 0
    while True:
        ids = r.zrevrange(index, start, start + BATCH - 1)
        if not ids:
            return
        for raw in r.mget([key_of(_s(i)) for i in ids]):
            if not raw:
                continue
            rec = model.model_validate_json(raw)
            if scope.sees(code_of(rec)):
                yield rec
        start += BATCH


def list_alarms(
    r: redis.Redis, scope: Scope, *, open_only: bool = True, limit: int = 50
) -> list[Alarm]:
    """Alarms the scope sees, newest raised first."""
    k = keys()
    out: list[Alarm] = []
    idx = k.alarms_open if open_only else k.alarms_all
    for a in _scan(r, idx, k.alarm, Alarm, lambda a: a.place.code, scope):
        out.append(a)
        if len(out) >= limit:
            break
    return out


def list_orders(
    r: redis.Redis, scope: Scope, *, open_only: bool = True, limit: int = 50
) -> list[WorkOrder]:
    """Work orders the scope sees, newest first."""
    k = keys()
    out: list[WorkOrder] = []
    idx = k.orders_open if open_only else k.orders_all
    for o in _scan(r, idx, k.order, WorkOrder, lambda o: o.place.code, scope):
        out.append(o)
        if len(out) >= limit:
            break
    return out


def get_order(r: redis.Redis, scope: Scope, order_id: str) -> WorkOrder | None:
    """One order, or None when it is missing or outside the scope (indistinguishable)."""
    raw = r.get(keys().order(order_id))
    if not raw:
        return None
    order = WorkOrder.model_validate_json(raw)
    return order if scope.sees(order.place.code) else None


def get_alarm(r: redis.Redis, scope: Scope, alarm_id: str) -> Alarm | None:
    raw = r.get(keys().alarm(alarm_id))
    if not raw:
        return None
    alarm = Alarm.model_validate_json(raw)
    return alarm if scope.sees(alarm.place.code) else None


def _offline_after_ms(device_type: str, cache: dict[str, int]) -> int:
    if device_type not in cache:
        try:
            cache[device_type] = catalogue().get(device_type).offline_after_s * 1000
        except KeyError:
            cache[device_type] = DEFAULT_OFFLINE_AFTER_MS
    return cache[device_type]


def device_markers(r: redis.Redis, scope: Scope) -> list[dict[str, Any]]:
    """One marker per device the scope sees: where, what, its worst open severity, last values."""
    k = keys()
    ids = sorted(_s(i) for i in r.smembers(k.devices))
    if not ids:
        return []
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(k.device(i))
        pipe.hgetall(k.device_state(i))
    res = pipe.execute()
    now = now_ms()
    limits: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for n in range(len(ids)):
        raw_reg, raw_st = res[2 * n], res[2 * n + 1]
        if not raw_reg:
            continue
        try:
            dev = Device.from_hash(raw_reg)
        except ValueError:
            continue  # an unreadable registration is the device team's to fix, not a screen's
        place = dev.place or Place(lon=dev.lon, lat=dev.lat)
        if not scope.sees(place.code):
            continue
        st = {_s(a): _s(b) for a, b in (raw_st or {}).items()}
        last_seen = int(st["last_seen_ms"]) if st.get("last_seen_ms") else None
        if dev.status == DeviceStatus.DISABLED:
            status = "disabled"
        elif last_seen is not None and now - last_seen <= _offline_after_ms(dev.type, limits):
            status = "online"
        else:
            status = "offline"
        values = {name[2:]: float(v) for name, v in st.items() if name.startswith("m:")}
        out.append(
            {
                "id": dev.id,
                "name": dev.name or dev.id,
                "type": dev.type,
                "lon": place.lon,
                "lat": place.lat,
                "code": place.code,
                "severity": st.get("severity") or None,
                "values": values,
                "last_seen_ms": last_seen,
                "status": status,
            }
        )
    return out


def current_mode(r: redis.Redis, scope: Scope) -> ModeState:
    """The mode in force at the user's own jurisdiction."""
    return get_mode(r, scope.jurisdiction)


def counts(r: redis.Redis, scope: Scope) -> dict[str, Any]:
    """Figures for the header of a screen, all within the scope."""
    k = keys()
    by_sev = {s.value: 0 for s in Severity}
    for a in _scan(r, k.alarms_open, k.alarm, Alarm, lambda a: a.place.code, scope):
        if a.state in OPEN_ALARM_STATES:
            by_sev[a.severity.value] += 1
    now = now_ms()
    open_orders = overdue = 0
    for o in _scan(r, k.orders_open, k.order, WorkOrder, lambda o: o.place.code, scope):
        open_orders += 1
        if o.deadline_ms < now:
            overdue += 1
    markers = device_markers(r, scope)
    online = sum(1 for m in markers if m["status"] == "online")
    # Dead letters carry no place: only the city level and the device team see them.
    sees_dead = scope.sees(None) or "dead_letters" in scope.permissions
    return {
        "alarms_open": by_sev,
        "alarms_open_total": sum(by_sev.values()),
        "orders_open": open_orders,
        "orders_overdue": overdue,
        "devices_online": online,
        "devices_offline": len(markers) - online,
        "dead_letters": int(r.xlen(k.dead)) if sees_dead else None,
    }


def mode_log(r: redis.Redis, scope: Scope, limit: int = 50) -> list[dict[str, Any]]:
    """Mode switches at the scope's node, above it (they apply here) or below it."""
    from modes.service import mode_history

    out = []
    for rec in mode_history(r, limit=limit * 4):
        code = rec.get("code", "")
        if scope.sees(code) or scope.jurisdiction.startswith(code):
            out.append(rec)
        if len(out) >= limit:
            break
    return out


def as_json(rec: BaseModel) -> dict[str, Any]:
    return dict(json.loads(rec.model_dump_json()))
