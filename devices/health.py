"""Device health and commissioning: offline on silence or last will, message rate, retirement.

Commissioning: ``registered`` (waiting for the first message) → ``verified`` (a reading
with every metric inside its normal range) → ``live`` (the next reading after it).
``offline`` comes from silence beyond the type's ``offline_after_s`` (:func:`sweep_offline`)
or at once from the device's MQTT last will (:func:`on_last_will`); a reading brings it
back to ``live``. ``decommissioned`` devices keep their history but never alarm.

Last will convention: a device sets its will on ``<device topic>/availability`` with the
payload ``offline`` (zigbee2mqtt's own convention; Tasmota's ``tele/<name>/LWT`` with
``Offline`` is understood too), and publishes ``online`` there when it connects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from core import push
from core.keys import keys
from core.models import Reading
from core.timeutil import now_ms as _now_ms
from devices.catalogue import catalogue
from devices.profiles import non_reading_kind
from devices.registry import Device, DeviceStatus, RegistryError, get_device, list_devices

AVAILABILITY_SUFFIX = "/availability"
# Smoothing of the inter-arrival time: a few messages move the rate, one outlier does not.
_RATE_WEIGHT = 0.2
# Only a device that has spoken can fall silent: a registered one may not be installed yet.
_SILENT_STATES = (DeviceStatus.LIVE, DeviceStatus.VERIFIED)
NOT_ALARMING = frozenset({DeviceStatus.DECOMMISSIONED, DeviceStatus.DISABLED})


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def is_alarming(device: Device | Mapping[str, Any] | str | None) -> bool:
    """Whether readings of this device may raise alarms (decommissioned/disabled may not).

    Takes a :class:`Device`, a registry dict or a status string.
    """
    if device is None:
        return False
    if isinstance(device, Device):
        status: Any = device.status
    elif isinstance(device, Mapping):
        status = device.get("status", DeviceStatus.REGISTERED)
    else:
        status = device
    try:
        return DeviceStatus(_s(status).strip('"')) not in NOT_ALARMING
    except ValueError:
        return True  # an unknown status must not silence a gas alarm


def availability_topic(device_topic: str) -> str:
    """The topic a device's last will goes to."""
    return device_topic + AVAILABILITY_SUFFIX


def device_topic_of_availability(topic: str) -> str | None:
    """The device topic an availability topic speaks for, or None when it is not one."""
    if non_reading_kind(topic) != "availability":
        return None
    if topic.endswith(AVAILABILITY_SUFFIX):
        return topic[: -len(AVAILABILITY_SUFFIX)]
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "tele" and parts[2] == "LWT":
        return f"tele/{parts[1]}/SENSOR"
    return None


def availability_state(payload: bytes) -> str | None:
    """``online``/``offline`` from an availability payload (plain text or ``{"state": ...}``)."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        text = str(obj.get("state", "")) if isinstance(obj, dict) else ""
    low = text.lower()
    return low if low in ("online", "offline") else None


def _mark_offline(r: redis.Redis, device_ids: Iterable[str], reason: str, ts_ms: int) -> None:
    k = keys()
    pipe = r.pipeline(transaction=False)
    ids = list(device_ids)
    for i in ids:
        pipe.hset(k.device(i), "status", json.dumps(DeviceStatus.OFFLINE.value))
        pipe.hset(
            k.device_state(i),
            mapping={"status": "offline", "offline_ms": str(ts_ms), "offline_reason": reason},
        )
    if ids:
        push.publish(pipe, "device", ids=ids)
    pipe.execute()
    if ids:
        # Both ways of going offline (the sweep's silence, the last will) raise the alarm.
        from alarms.service import raise_offline

        raise_offline(r, ids, reason, ts_ms)


def sweep_offline(r: redis.Redis, now_ms: int | None = None) -> list[str]:
    """Mark offline every verified/live device silent longer than its type allows.

    Silence counts from the last message (``last_seen_ms`` in the device state), or
    from registration when the device was marked live before any state was written.
    Returns the ids newly marked offline (a worker calls this every few seconds).
    """
    now = _now_ms() if now_ms is None else now_ms
    k = keys()
    devices = [d for d in list_devices(r) if d.status in _SILENT_STATES]
    if not devices:
        return []
    pipe = r.pipeline(transaction=False)
    for d in devices:
        pipe.hget(k.device_state(d.id), "last_seen_ms")
    gone: list[str] = []
    for d, seen in zip(devices, pipe.execute(), strict=True):
        try:
            limit_ms = catalogue().get(d.type).offline_after_s * 1000
        except KeyError:
            continue
        last = int(_s(seen)) if seen else d.registered_ms
        if now - last > limit_ms:
            gone.append(d.id)
    _mark_offline(r, gone, "silent", now)
    return gone


def on_last_will(r: redis.Redis, device_id: str, now_ms: int | None = None) -> bool:
    """Mark a device offline at once (its last will arrived); False when it is unknown
    or not in service (decommissioned, disabled, never seen)."""
    dev = get_device(r, device_id)
    if dev is None or dev.status in (*NOT_ALARMING, DeviceStatus.REGISTERED):
        return False
    if dev.status != DeviceStatus.OFFLINE:
        _mark_offline(r, [device_id], "last_will", _now_ms() if now_ms is None else now_ms)
    return True


def on_availability(r: redis.Redis, topic: str, payload: bytes) -> str | None:
    """Handle a message on an availability topic (below the MQTT root) as ingest sees it.

    Returns the device id marked offline, or None (online, unknown device, not availability).
    Ingest calls this for topics where ``non_reading_kind(topic) == "availability"``.
    """
    dtopic = device_topic_of_availability(topic)
    if dtopic is None or availability_state(payload) != "offline":
        return None
    device_id = r.hget(keys().topic_index, dtopic)
    if device_id is None:
        return None
    did = _s(device_id)
    return did if on_last_will(r, did) else None


def in_normal_range(device_type: str, metrics: Mapping[str, float]) -> bool:
    """Whether every metric of a reading lies in the type's normal range (a test reading)."""
    try:
        dtype = catalogue().get(device_type)
    except KeyError:
        return False
    checked = 0
    for name, v in metrics.items():
        m = dtype.metrics.get(name)
        if m is None:
            continue
        checked += 1
        if not m.normal[0] <= float(v) <= m.normal[1]:
            return False
    return checked > 0


def on_reading(r: redis.Redis, reading: Reading) -> DeviceStatus | None:
    """Commissioning and health bookkeeping for one reading; returns the new status when it changed."""
    return record_reading(r, reading)[1]


def record_reading(
    r: redis.Redis, reading: Reading
) -> tuple[DeviceStatus | None, DeviceStatus | None]:
    """What the worker calls per reading: (status in force after it, new status if changed).

    Updates the smoothed message interval and moves the status: registered → verified
    (reading inside the normal range), verified → live, offline → live. An unregistered
    device gives (None, None).
    """
    k = keys()
    pipe = r.pipeline(transaction=False)
    pipe.hmget(k.device(reading.device_id), ["status", "type", "verified_ms"])
    pipe.hmget(k.device_state(reading.device_id), ["rx_last_ms", "rx_gap_ms"])
    (raw_status, raw_type, raw_verified), (rx_last, rx_gap) = pipe.execute()
    if raw_status is None:
        return None, None
    status = DeviceStatus(json.loads(raw_status))
    dtype = json.loads(raw_type) if raw_type else ""
    t = reading.received_ms
    st: dict[str, str] = {"rx_last_ms": str(t)}
    if rx_last is not None and t > int(rx_last):
        gap = t - int(rx_last)
        old = float(rx_gap) if rx_gap is not None else float(gap)
        st["rx_gap_ms"] = repr(old + _RATE_WEIGHT * (gap - old))
    new: DeviceStatus | None = None
    dev_fields: dict[str, str] = {}
    normal = in_normal_range(dtype, reading.metrics)
    if status == DeviceStatus.REGISTERED and normal:
        new = DeviceStatus.VERIFIED
    elif status in (DeviceStatus.VERIFIED, DeviceStatus.OFFLINE):
        new = DeviceStatus.LIVE
    if normal and raw_verified is None and status not in NOT_ALARMING:
        dev_fields["verified_ms"] = json.dumps(t)
    if new is not None:
        dev_fields["status"] = json.dumps(new.value)
        st["status"] = "online"
    pipe = r.pipeline(transaction=False)
    pipe.hset(k.device_state(reading.device_id), mapping=st)  # type: ignore[arg-type]
    if dev_fields:
        pipe.hset(k.device(reading.device_id), mapping=dev_fields)  # type: ignore[arg-type]
    if new is not None:
        push.publish(pipe, "device", ids=[reading.device_id])
    pipe.execute()
    return (new or status), new


def go_live(r: redis.Redis, device_id: str) -> Device:
    """Put a verified device in service without waiting for its next reading."""
    dev = get_device(r, device_id)
    if dev is None:
        raise RegistryError(f"device {device_id} is not registered")
    if dev.status != DeviceStatus.VERIFIED:
        raise RegistryError(f"device {device_id} is {dev.status.value}, not verified")
    r.hset(keys().device(device_id), "status", json.dumps(DeviceStatus.LIVE.value))
    push.publish(r, "device", ids=[device_id])
    return dev.model_copy(update={"status": DeviceStatus.LIVE})


def decommission(r: redis.Redis, device_id: str, by: str, reason: str) -> Device:
    """Retire a device: it stops alarming, its readings and alarms stay as history."""
    if not by.strip() or not reason.strip():
        raise RegistryError("decommissioning needs who does it and why")
    dev = get_device(r, device_id)
    if dev is None:
        raise RegistryError(f"device {device_id} is not registered")
    if dev.status == DeviceStatus.DECOMMISSIONED:
        raise RegistryError(f"device {device_id} is already decommissioned")
    ts = _now_ms()
    upd = {
        "status": DeviceStatus.DECOMMISSIONED,
        "decommissioned_ms": ts,
        "decommissioned_by": by.strip(),
        "decommission_reason": reason.strip(),
    }
    out = dev.model_copy(update=upd)
    k = keys()
    pipe = r.pipeline(transaction=True)
    pipe.hset(k.device(device_id), mapping=out.to_hash())  # type: ignore[arg-type]
    pipe.hset(k.device_state(device_id), "status", "decommissioned")
    push.publish(pipe, "device", ids=[device_id])
    pipe.execute()
    return out


HEALTH_COLUMNS = (
    "id",
    "name",
    "type",
    "status",
    "last_seen_ms",
    "rate_per_min",
    "battery",
    "signal",
    "grid",
)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        return float(_s(v))
    except ValueError:
        return None


def health_rows(
    r: redis.Redis,
    *,
    now_ms: int | None = None,
    status: str | None = None,
    type_key: str | None = None,
    code_prefix: str | None = None,
    text: str | None = None,
    sort: str = "id",
    descending: bool = False,
) -> list[dict[str, Any]]:
    """One row per device for the device-health page, filtered and sorted.

    ``rate_per_min`` is from the smoothed interval between messages; it falls as a
    device stays silent. ``code_prefix`` keeps devices whose place code starts with it
    (the caller's scope); ``text`` matches id or name. Missing values sort last.
    """
    if sort not in HEALTH_COLUMNS:
        raise ValueError(f"cannot sort by {sort!r}; columns: {', '.join(HEALTH_COLUMNS)}")
    now = _now_ms() if now_ms is None else now_ms
    k = keys()
    devices = list_devices(r, type_key)
    pipe = r.pipeline(transaction=False)
    for d in devices:
        pipe.hmget(
            k.device_state(d.id), ["last_seen_ms", "rx_last_ms", "rx_gap_ms", "battery", "signal"]
        )
    rows: list[dict[str, Any]] = []
    needle = (text or "").strip().lower()
    for d, (seen, rx_last, rx_gap, battery, signal) in zip(devices, pipe.execute(), strict=True):
        code = d.place.code if d.place else ""
        if code_prefix and not code.startswith(code_prefix):
            continue
        if status and d.status.value != status:
            continue
        if needle and needle not in d.id.lower() and needle not in d.name.lower():
            continue
        last = int(_s(seen)) if seen else (int(_s(rx_last)) if rx_last else None)
        rate = None
        if rx_gap is not None and rx_last is not None:
            gap = max(float(_s(rx_gap)), float(now - int(_s(rx_last))), 1.0)
            rate = round(60_000.0 / gap, 3)
        rows.append(
            {
                "id": d.id,
                "name": d.name or d.id,
                "type": d.type,
                "status": d.status.value,
                "last_seen_ms": last,
                "rate_per_min": rate,
                "battery": _num(battery),
                "signal": _num(signal),
                "grid": d.place.grid if d.place else None,
            }
        )
    present = [row for row in rows if row[sort] is not None]
    missing = [row for row in rows if row[sort] is None]
    present.sort(key=lambda row: row[sort], reverse=descending)
    return present + missing
