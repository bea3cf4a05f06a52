"""Payload profiles: decode a vendor's MQTT payload into catalogue metrics.

Formats: ``zigbee2mqtt`` (JSON state object), ``tasmota`` (``tele/<name>/SENSOR``
with nested sensor objects), ``senml`` (RFC 8428 JSON packs), ``json_map`` (any
JSON object with configured paths) and ``plain`` (one number as text). Every refusal
is a :class:`DecodeError` with a short reason code for the dead-letter stream.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.config import get_settings
from core.timeutil import TimestampError, normalize_epoch
from devices.catalogue import Catalogue, DeviceType, catalogue

PROFILES_FILE = Path(__file__).resolve().parent / "profiles.yaml"

Format = Literal["zigbee2mqtt", "tasmota", "senml", "json_map", "plain"]

# Reason codes written to the dead-letter stream.
REASONS = (
    "bad_encoding",
    "bad_json",
    "not_finite",
    "bad_timestamp",
    "too_large",
    "no_metrics",
    "out_of_range",
    "bad_shape",
    "bad_senml",
    "bad_value",
    "bad_unit",
)

# RFC 8428 section 4.5.1: what a resolved SenML name may contain.
_SENML_NAME = re.compile(r"^[A-Za-z0-9][-:./A-Za-z0-9_]*$")
# RFC 8428 section 4.5.3: smaller times are relative to "now".
_SENML_RELATIVE_LIMIT = 2**28
_SENML_VERSION = 10


class DecodeError(ValueError):
    """A payload that cannot become a reading; ``reason`` is the dead-letter code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class FieldMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None  # what the device sends; converted to the catalogue unit


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = ""
    format: Format
    topic: str = Field(pattern=r"\{name\}")
    device_type: str | None = None
    fields: dict[str, FieldMap] = Field(default_factory=dict)
    ts_field: str | None = None
    battery_field: str | None = None
    signal_field: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_fields(cls, data: Any) -> Any:
        # "temperature: temp_c" is the common case; expand it to a FieldMap.
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            data = dict(data)
            data["fields"] = {
                k: {"metric": v} if isinstance(v, str) else v for k, v in data["fields"].items()
            }
        return data

    def device_topic(self, name: str) -> str:
        """The topic (below the MQTT root) a device of this profile publishes on."""
        if not name or any(c in name for c in "+#\x00") or name.startswith("$"):
            raise ValueError(f"device name {name!r} cannot be part of an MQTT topic")
        return self.topic.replace("{name}", name)


class ProfileSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscriptions: list[str]
    profiles: dict[str, Profile]

    def check(self, cat: Catalogue) -> ProfileSet:
        for key, p in self.profiles.items():
            p.key = key
            if p.device_type is None:
                continue
            dtype = cat.get(p.device_type)
            for src, fm in p.fields.items():
                if fm.metric not in dtype.metrics:
                    raise ValueError(
                        f"profile {key}: field {src!r} maps to {fm.metric!r}, "
                        f"not a metric of {p.device_type}"
                    )
                if fm.unit is not None:
                    convert_unit(1.0, fm.unit, dtype.metrics[fm.metric].unit)
        return self

    def get(self, key: str) -> Profile:
        try:
            return self.profiles[key]
        except KeyError:
            raise KeyError(
                f"unknown profile {key!r}; known: {', '.join(sorted(self.profiles))}"
            ) from None


def load_profiles(path: Path | str = PROFILES_FILE, cat: Catalogue | None = None) -> ProfileSet:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return ProfileSet.model_validate(data).check(cat or catalogue())


@lru_cache(maxsize=1)
def profiles() -> ProfileSet:
    return load_profiles()


# --- units -----------------------------------------------------------------------------

_UNIT_ALIASES = {
    "cel": "°C",
    "degc": "°C",
    "c": "°C",
    "°c": "°C",
    "f": "°F",
    "degf": "°F",
    "°f": "°F",
    "k": "K",
    "pa": "Pa",
    "hpa": "hPa",
    "kpa": "kPa",
    "mpa": "MPa",
    "bar": "bar",
    "mbar": "hPa",
    "mm": "mm",
    "cm": "cm",
    "m": "m",
    "%lel": "%LEL",
    "ppm": "ppm",
    "/": "/",
    "ue": "με",
    "με": "με",
    "µε": "με",
    "%rh": "%RH",
    "%": "%",
}
# unit -> (dimension, factor to the dimension's base unit)
_LINEAR = {
    "Pa": ("pressure", 1.0),
    "hPa": ("pressure", 100.0),
    "kPa": ("pressure", 1e3),
    "MPa": ("pressure", 1e6),
    "bar": ("pressure", 1e5),
    "mm": ("length", 1e-3),
    "cm": ("length", 1e-2),
    "m": ("length", 1.0),
    "/": ("strain", 1.0),
    "με": ("strain", 1e-6),
    # Methane's lower explosive limit is 5 %vol = 50,000 ppm, so 1 %LEL = 500 ppm.
    "ppm": ("ch4", 1.0 / 500.0),
    "%LEL": ("ch4", 1.0),
}


def canonical_unit(unit: str) -> str:
    u = unit.strip()
    return _UNIT_ALIASES.get(u.lower(), u)


def _to_celsius(v: float, unit: str) -> float:
    return {"°C": v, "°F": (v - 32) * 5 / 9, "K": v - 273.15}[unit]


def _from_celsius(v: float, unit: str) -> float:
    return {"°C": v, "°F": v * 9 / 5 + 32, "K": v + 273.15}[unit]


def convert_unit(value: float, src: str, dst: str) -> float:
    """Convert between the units devices send and catalogue units."""
    s, d = canonical_unit(src), canonical_unit(dst)
    if s == d:
        return value
    temps = ("°C", "°F", "K")
    if s in temps and d in temps:
        return _from_celsius(_to_celsius(value, s), d)
    if s in _LINEAR and d in _LINEAR and _LINEAR[s][0] == _LINEAR[d][0]:
        return value * _LINEAR[s][1] / _LINEAR[d][1]
    raise DecodeError("bad_unit", f"cannot convert {src!r} to {dst!r}")


# --- decoding --------------------------------------------------------------------------


@dataclass
class DecodedMessage:
    """Metrics of one payload. ``samples`` holds every (ts_ms, metrics) of a pack with
    several times (SenML); ``metrics``/``ts_ms`` are the latest value of each metric."""

    metrics: dict[str, float]
    ts_ms: int
    battery: float | None = None
    signal: float | None = None
    samples: list[tuple[int, dict[str, float]]] = field(default_factory=list)


@dataclass
class _Leaf:
    path: str
    value: Any
    unit: str | None = None
    ts_ms: int | None = None
    alias: str | None = None  # SenML: the full resolved name, also matchable


def _reject_constant(name: str) -> float:
    raise DecodeError("not_finite", f"{name} is not a number a sensor can report")


def _parse_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise DecodeError("not_finite", f"{text} overflows a float")
    return v


def _text(payload: bytes) -> str:
    max_bytes = get_settings().max_payload_bytes
    if len(payload) > max_bytes:
        raise DecodeError("too_large", f"{len(payload)} bytes, limit {max_bytes}")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = ""
        try:
            payload.decode("gbk")
            hint = "; the bytes read as GBK: devices must send UTF-8"
        except UnicodeDecodeError:
            pass
        raise DecodeError(
            "bad_encoding", f"not UTF-8 at byte {exc.start} ({exc.reason}){hint}"
        ) from None


def _json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DecodeError("bad_json", str(exc)[:200]) from None


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_flatten(v, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out.append((prefix, obj))
    return out


def _number(value: Any, where: str, *, strict: bool) -> float | None:
    """A leaf as a float; booleans are 0/1. Non-numbers are None unless ``strict``."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        v = float(value)
    elif isinstance(value, str) and strict:
        word = value.strip().upper()
        if word in ("ON", "OPEN", "TRUE"):
            return 1.0
        if word in ("OFF", "CLOSED", "FALSE"):
            return 0.0
        try:
            v = float(value)
        except ValueError:
            raise DecodeError("bad_value", f"{where}={value!r} is not a number") from None
    elif strict and value is not None:
        raise DecodeError("bad_value", f"{where} holds {type(value).__name__}, not a number")
    else:
        return None
    if not math.isfinite(v):
        raise DecodeError("not_finite", f"{where}={value!r}")
    return v


def _timestamp(value: Any, where: str, now_ms: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DecodeError("bad_timestamp", f"{where}={value!r} is not a time")
    try:
        return normalize_epoch(value, now=now_ms)
    except TimestampError as exc:
        raise DecodeError("bad_timestamp", f"{where}: {exc}") from None


def _lookup(leaves: list[_Leaf], pattern: str) -> _Leaf | None:
    for leaf in leaves:
        if pattern in (leaf.path, leaf.alias):
            return leaf
    if "*" in pattern:
        for leaf in leaves:
            if fnmatch.fnmatchcase(leaf.path, pattern) and leaf.path.count(".") == pattern.count(
                "."
            ):
                return leaf
    return None


def _object(data: Any, fmt: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DecodeError(
            "bad_shape", f"{fmt} payload must be a JSON object, not {type(data).__name__}"
        )
    return data


def _leaves_zigbee2mqtt(
    data: Any, profile: Profile, now_ms: int
) -> tuple[list[_Leaf], int, float | None, float | None]:
    obj = _object(data, "zigbee2mqtt")
    ts = now_ms
    ts_field = profile.ts_field or "last_seen"
    if obj.get(ts_field) is not None:
        ts = _timestamp(obj[ts_field], ts_field, now_ms)
    battery = _number(obj.get(profile.battery_field or "battery"), "battery", strict=False)
    signal = _number(obj.get(profile.signal_field or "linkquality"), "linkquality", strict=False)
    skip = {ts_field, profile.battery_field or "battery", profile.signal_field or "linkquality"}
    leaves = [_Leaf(p, v) for p, v in _flatten(obj) if p not in skip]
    return leaves, ts, battery, signal


_TASMOTA_UNITS = {"Temperature": "TempUnit", "DewPoint": "TempUnit", "Pressure": "PressureUnit"}


def _leaves_tasmota(
    data: Any, profile: Profile, now_ms: int
) -> tuple[list[_Leaf], int, float | None, float | None]:
    obj = _object(data, "tasmota")
    # STATUS10 replies wrap the same object a tele/<name>/SENSOR message carries.
    if set(obj) == {"StatusSNS"} and isinstance(obj["StatusSNS"], dict):
        obj = obj["StatusSNS"]
    ts = now_ms
    if obj.get("Time") is not None:
        ts = _timestamp(obj["Time"], "Time", now_ms)
    leaves: list[_Leaf] = []
    battery = signal = None
    for path, value in _flatten(obj):
        if path in ("Time", "TempUnit", "PressureUnit", "SpeedUnit"):
            continue
        leaf_name = path.rsplit(".", 1)[-1]
        unit_key = _TASMOTA_UNITS.get(leaf_name)
        unit = obj.get(unit_key) if unit_key else None
        leaves.append(_Leaf(path, value, unit if isinstance(unit, str) else None))
        if leaf_name == "Battery" and battery is None:
            battery = _number(value, path, strict=False)
        if leaf_name in ("RSSI", "Signal", "LinkQuality") and signal is None:
            signal = _number(value, path, strict=False)
    if profile.battery_field:
        found = _lookup(leaves, profile.battery_field)
        battery = _number(found.value, found.path, strict=False) if found else None
    if profile.signal_field:
        found = _lookup(leaves, profile.signal_field)
        signal = _number(found.value, found.path, strict=False) if found else None
    return leaves, ts, battery, signal


def _leaves_json_map(
    data: Any, profile: Profile, now_ms: int
) -> tuple[list[_Leaf], int, float | None, float | None]:
    obj = _object(data, "json_map")
    leaves = [_Leaf(p, v) for p, v in _flatten(obj)]
    ts = now_ms
    if profile.ts_field:
        found = _lookup(leaves, profile.ts_field)
        if found is not None and found.value is not None:
            ts = _timestamp(found.value, found.path, now_ms)
    battery = signal = None
    if profile.battery_field and (found := _lookup(leaves, profile.battery_field)):
        battery = _number(found.value, found.path, strict=True)
    if profile.signal_field and (found := _lookup(leaves, profile.signal_field)):
        signal = _number(found.value, found.path, strict=True)
    used = {profile.ts_field, profile.battery_field, profile.signal_field}
    return [leaf for leaf in leaves if leaf.path not in used], ts, battery, signal


def _leaves_plain(
    text: str, profile: Profile, now_ms: int
) -> tuple[list[_Leaf], int, float | None, float | None]:
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        raise DecodeError("bad_value", f"plain payload {raw[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise DecodeError("not_finite", f"plain payload {raw[:40]!r}")
    return [_Leaf("value", value)], now_ms, None, None


def _leaves_senml(
    data: Any, profile: Profile, now_ms: int
) -> tuple[list[_Leaf], int, float | None, float | None]:
    if not isinstance(data, list) or not data:
        raise DecodeError("bad_senml", "a SenML pack is a non-empty JSON array of records")
    bn, bt, bu, bv = "", 0.0, None, 0.0
    leaves: list[_Leaf] = []
    battery = signal = None
    latest = -1
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DecodeError("bad_senml", f"record {i} is not an object")
        if "bver" in rec:
            ver = rec["bver"]
            if isinstance(ver, bool) or not isinstance(ver, int) or ver > _SENML_VERSION:
                raise DecodeError("bad_senml", f"record {i}: unsupported bver {ver!r}")
        if "bn" in rec:
            if not isinstance(rec["bn"], str):
                raise DecodeError("bad_senml", f"record {i}: bn must be a string")
            bn = rec["bn"]
        if "bt" in rec:
            bt = _senml_num(rec["bt"], i, "bt")
        if "bu" in rec:
            bu = rec["bu"] if isinstance(rec["bu"], str) else None
        if "bv" in rec:
            bv = _senml_num(rec["bv"], i, "bv")
        n = rec.get("n", "")
        if not isinstance(n, str):
            raise DecodeError("bad_senml", f"record {i}: n must be a string")
        name = bn + n
        if not _SENML_NAME.match(name):
            raise DecodeError("bad_senml", f"record {i}: name {name!r} is not a valid SenML name")
        t = bt + _senml_num(rec.get("t", 0), i, "t")
        if t < _SENML_RELATIVE_LIMIT:
            ts = _timestamp(now_ms + int(round(t * 1000)), f"record {i} t", now_ms)
        else:
            ts = _timestamp(t, f"record {i} t", now_ms)
        unit = rec.get("u", bu)
        if "v" in rec:
            value: Any = bv + _senml_num(rec["v"], i, "v")
        elif "vb" in rec:
            if not isinstance(rec["vb"], bool):
                raise DecodeError("bad_senml", f"record {i}: vb must be true or false")
            value = rec["vb"]
        elif "s" in rec:
            value = _senml_num(rec["s"], i, "s")
        else:
            continue  # string (vs) and data (vd) values carry no metric
        # RFC 8428 5.1.3 sends a track as records named like the device with units lon/lat.
        key = unit if unit in ("lon", "lat") else (n or name)
        leaf = _Leaf(key, value, unit if isinstance(unit, str) else None, ts, alias=name)
        if unit == "%EL" or key.lower() == "battery":
            battery = _number(value, key, strict=False)
            continue
        if unit == "dBm" or key.lower() in ("rssi", "signal"):
            signal = _number(value, key, strict=False)
            continue
        leaves.append(leaf)
        latest = max(latest, ts)
    return leaves, latest if latest >= 0 else now_ms, battery, signal


def _senml_num(value: Any, i: int, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError("bad_senml", f"record {i}: {name} must be a number, got {value!r}")
    return float(value)


_FORMATS = {
    "zigbee2mqtt": _leaves_zigbee2mqtt,
    "tasmota": _leaves_tasmota,
    "senml": _leaves_senml,
    "json_map": _leaves_json_map,
}


def decode(
    profile: Profile,
    payload: bytes,
    now_ms: int,
    device_type: DeviceType | None = None,
) -> DecodedMessage:
    """Decode and validate one payload; raise :class:`DecodeError` with a reason code.

    With a device type (the profile's, or the one given), metrics are converted to
    the catalogue units and checked against the physical limits.
    """
    if device_type is None and profile.device_type:
        device_type = catalogue().get(profile.device_type)
    text = _text(payload)
    if profile.format == "plain":
        leaves, ts, battery, signal = _leaves_plain(text, profile, now_ms)
    else:
        leaves, ts, battery, signal = _FORMATS[profile.format](_json(text), profile, now_ms)

    # Several readings of one metric at different times only come from SenML packs.
    values: list[tuple[int, str, float]] = []
    if profile.fields:
        for src, fm in profile.fields.items():
            for leaf in _matches(leaves, src, profile.format):
                v = _number(leaf.value, leaf.path, strict=True)
                if v is None:
                    continue
                v = v * fm.scale + fm.offset
                unit = fm.unit or leaf.unit
                if device_type is not None and unit:
                    v = convert_unit(v, unit, device_type.metrics[fm.metric].unit)
                values.append((leaf.ts_ms or ts, fm.metric, v))
    else:
        for leaf in leaves:
            v = _number(leaf.value, leaf.path, strict=False)
            if v is None:
                continue
            if device_type is not None:
                if leaf.path not in device_type.metrics:
                    continue
                if leaf.unit:
                    v = convert_unit(v, leaf.unit, device_type.metrics[leaf.path].unit)
            values.append((leaf.ts_ms or ts, leaf.path, v))
    if not values:
        wanted = ", ".join(profile.fields) if profile.fields else "any numeric field"
        raise DecodeError("no_metrics", f"payload holds none of: {wanted}"[:300])

    if device_type is not None:
        for _, metric, v in values:
            m = device_type.metrics[metric]
            if not m.in_physical_range(v):
                raise DecodeError(
                    "out_of_range",
                    f"{metric}={v:g} {m.unit} outside the sensor's range "
                    f"[{m.physical[0]:g}, {m.physical[1]:g}]",
                )

    by_ts: dict[int, dict[str, float]] = {}
    for t, metric, v in sorted(values, key=lambda x: x[0]):
        by_ts.setdefault(t, {})[metric] = v
    samples = sorted(by_ts.items())
    latest: dict[str, float] = {}
    for _, metrics in samples:
        latest.update(metrics)
    return DecodedMessage(
        metrics=latest,
        ts_ms=samples[-1][0],
        battery=battery,
        signal=signal,
        samples=samples,
    )


def _matches(leaves: list[_Leaf], pattern: str, fmt: str) -> list[_Leaf]:
    if fmt == "senml":
        # A pack may carry the same name at several times: take every record.
        return [
            leaf
            for leaf in leaves
            if pattern in (leaf.path, leaf.alias) or fnmatch.fnmatchcase(leaf.path, pattern)
        ]
    found = _lookup(leaves, pattern)
    return [found] if found else []


# --- topics that carry no reading --------------------------------------------------------

_NON_READING = (
    ("zigbee2mqtt/bridge", "bridge"),
    ("homeassistant/*/config", "discovery"),
    ("homeassistant/*/*/config", "discovery"),
    ("homeassistant/*/*/*/config", "discovery"),
    ("*/availability", "availability"),
    ("*/set", "command"),
    ("*/get", "command"),
    ("tele/*/LWT", "availability"),
)


def non_reading_kind(topic: str) -> str | None:
    """What a message on ``topic`` (below the root) is, when it is not a reading."""
    if topic == "zigbee2mqtt/bridge" or topic.startswith("zigbee2mqtt/bridge/"):
        return "bridge"
    for pattern, kind in _NON_READING[1:]:
        if fnmatch.fnmatchcase(topic, pattern):
            return kind
    return None
