"""Demo devices publishing the real payload formats (zigbee2mqtt, Tasmota, SenML, ...).

Every device is registered like a real one, placed at a seeded random point inside
the city, and publishes through the broker with QoS 1; values stay in the normal
range with noise, and a few devices run a recurring excursion over their thresholds
so that alarms appear in the demo. All of it is generated data, marked ``simulated``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import redis

from core.config import get_settings
from core.store import get_redis
from core.timeutil import SHANGHAI, now_ms
from devices.catalogue import DeviceType, Metric
from devices.profiles import FieldMap, Profile, canonical_unit, convert_unit
from devices.registry import Device, RegistryError, register_device
from ingest.mqtt_ingest import make_client, parse_mqtt_url, probe_protocol

log = logging.getLogger(__name__)

SEED = 20261203
# Outer bounds of the city, used when the grid package cannot say what is inside.
CITY_BBOX = (112.8, 34.3, 114.2, 34.99)
URBAN_CENTRE = (113.66, 34.76)

# (type, profile) per device in turn: every type in two formats, all five formats.
PLAN = (
    ("gas", "gas_z2m"),
    ("water_pressure", "water_senml"),
    ("drainage_level", "drainage_json"),
    ("heating", "heating_tasmota"),
    ("bridge", "bridge_senml"),
    ("gas", "gas_tasmota"),
    ("water_pressure", "water_plain"),
    ("drainage_level", "drainage_z2m"),
    ("heating", "heating_senml"),
    ("bridge", "bridge_json"),
)
_SHORT = {
    "gas": "gas",
    "water_pressure": "water",
    "drainage_level": "drain",
    "heating": "heat",
    "bridge": "bridge",
}
_NAMES = {
    "gas": "燃气井",
    "water_pressure": "供水压力点",
    "drainage_level": "积水点",
    "heating": "热力管网",
    "bridge": "桥梁监测",
}
_TASMOTA_SENSOR = {"gas": "MQ4", "heating": "HEAT"}
# Metrics whose excursion drives the demo alarms, and how often it comes back.
_EXCURSION = {
    "gas": ("ch4_lel", 120.0),
    "drainage_level": ("ponding_cm", 300.0),
    "water_pressure": ("pressure_mpa", 240.0),
}
_SENML_UNITS = {"°C": "Cel", "%RH": "%RH"}


def _inside(lon: float, lat: float) -> bool:
    try:
        from grids.locate import locator
    except ImportError:
        return True
    return locator().locate(lon, lat).inside_city


def demo_points(n: int, seed: int = SEED) -> list[tuple[float, float]]:
    """``n`` seeded points inside the city, most of them in the urban area."""
    rng = random.Random(seed)
    out: list[tuple[float, float]] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n:
            raise RuntimeError("cannot place demo devices inside the city")
        if rng.random() < 0.7:
            lon = rng.gauss(URBAN_CENTRE[0], 0.08)
            lat = rng.gauss(URBAN_CENTRE[1], 0.06)
        else:
            lon = rng.uniform(CITY_BBOX[0], CITY_BBOX[2])
            lat = rng.uniform(CITY_BBOX[1], CITY_BBOX[3])
        lon, lat = round(lon, 6), round(lat, 6)
        if (
            CITY_BBOX[0] <= lon <= CITY_BBOX[2]
            and CITY_BBOX[1] <= lat <= CITY_BBOX[3]
            and _inside(lon, lat)
        ):
            out.append((lon, lat))
    return out


def demo_devices(n: int | None = None, seed: int = SEED) -> list[Device]:
    n = n or get_settings().sim_devices
    devices = []
    for i, (lon, lat) in enumerate(demo_points(n, seed)):
        type_key, profile = PLAN[i % len(PLAN)]
        dev_id = f"sim-{_SHORT[type_key]}-{i + 1:03d}"
        devices.append(
            Device(
                id=dev_id,
                name=f"{_NAMES[type_key]} {i + 1:03d}",
                type=type_key,
                profile=profile,
                lon=lon,
                lat=lat,
                simulated=True,
            )
        )
    return devices


def register_demo_devices(r: redis.Redis, n: int | None = None, seed: int = SEED) -> list[Device]:
    """Register (or refresh) the demo devices; returns them as stored."""
    out = []
    for dev in demo_devices(n, seed):
        try:
            out.append(register_device(r, dev, replace=True))
        except RegistryError as exc:
            log.error("demo device %s not registered: %s", dev.id, exc)
    return out


# --- payloads ----------------------------------------------------------------------------


def _vendor_value(value: float, fm: FieldMap, metric: Metric, unit: str | None) -> float:
    if unit:
        value = convert_unit(value, metric.unit, unit)
    # Significant digits, not decimals: a strain ratio is a few parts per million.
    return float(f"{(value - fm.offset) / fm.scale:.9g}")


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for p in parts[:-1]:
        obj = obj.setdefault(p, {})
    obj[parts[-1]] = value


def encode(
    device: Device,
    metrics: dict[str, float],
    ts_ms: int,
    battery: float | None = None,
    signal: float | None = None,
) -> bytes:
    """The payload a real device of this profile would send for these metrics."""
    prof: Profile = device.profile_def
    dtype = device.device_type
    by_metric = {fm.metric: (src, fm) for src, fm in prof.fields.items()}
    fields: dict[str, tuple[float, str | None]] = {}
    for metric, value in metrics.items():
        src, fm = by_metric.get(metric, (metric, FieldMap(metric=metric)))
        m = dtype.metrics[metric]
        unit = fm.unit
        if prof.format == "tasmota" and src.endswith("Pressure") and not unit:
            unit = "hPa"
        fields[src] = (_vendor_value(value, fm, m, unit), unit or m.unit)

    if prof.format == "plain":
        (value, _), *_ = fields.values()
        return f"{value:g}".encode()
    if prof.format == "zigbee2mqtt":
        z: dict[str, Any] = {k: v for k, (v, _) in fields.items()}
        if battery is not None:
            z["battery"] = round(battery)
        if signal is not None:
            z["linkquality"] = round(signal)
        z["last_seen"] = ts_ms
        return json.dumps(z).encode()
    if prof.format == "tasmota":
        local = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(SHANGHAI)
        sensor = _TASMOTA_SENSOR.get(device.type, "SENSOR")
        t: dict[str, Any] = {"Time": local.strftime("%Y-%m-%dT%H:%M:%S")}
        t[sensor] = {src.split(".")[-1]: v for src, (v, _) in fields.items()}
        t["TempUnit"] = "C"
        if any(src.endswith("Pressure") for src in fields):
            t["PressureUnit"] = "hPa"
        return json.dumps(t).encode()
    if prof.format == "senml":
        pack: list[dict[str, Any]] = [{"bn": f"urn:dev:gridcc:{device.id}:", "bt": ts_ms / 1000}]
        for i, (src, (v, unit)) in enumerate(fields.items()):
            rec = {"n": src, "u": _SENML_UNITS.get(canonical_unit(unit or ""), unit), "v": v}
            if i == 0:
                pack[0].update(rec)
            else:
                pack.append(rec)
        if battery is not None:
            pack.append({"n": "battery", "u": "%EL", "v": round(battery)})
        return json.dumps(pack).encode()
    # json_map
    j: dict[str, Any] = {}
    for src, (v, _) in fields.items():
        _set_path(j, src, v)
    _set_path(j, prof.ts_field or "ts", ts_ms)
    if prof.battery_field and battery is not None:
        _set_path(j, prof.battery_field, round(battery))
    if prof.signal_field and signal is not None:
        _set_path(j, prof.signal_field, round(signal))
    return json.dumps(j).encode()


def publish_reading(
    client: mqtt.Client,
    device: Device,
    metrics: dict[str, float],
    ts_ms: int | None = None,
    *,
    battery: float | None = 90,
    signal: float | None = 120,
) -> mqtt.MQTTMessageInfo:
    """Publish one reading of ``device`` in its profile's format, QoS 1."""
    payload = encode(device, metrics, ts_ms or now_ms(), battery, signal)
    return client.publish(get_settings().mqtt_root + device.topic, payload, qos=1)


# --- values ------------------------------------------------------------------------------


class _Signal:
    """A device's values: a random walk in the normal range, plus its excursion."""

    def __init__(self, device: Device, rng: random.Random, excursion: bool) -> None:
        self.device = device
        self.rng = rng
        self.type: DeviceType = device.device_type
        self.state = {k: rng.uniform(*m.normal) for k, m in self.type.metrics.items()}
        self.battery = rng.uniform(60, 100)
        self.excursion = _EXCURSION.get(device.type) if excursion else None
        self.phase = rng.uniform(0, 1)

    def next(self, t: float) -> dict[str, float]:
        out = {}
        for key, m in self.type.metrics.items():
            lo, hi = m.normal
            span = (hi - lo) or 1.0
            v = self.state[key] + self.rng.gauss(0, span * 0.05)
            v = min(max(v, lo), hi)
            self.state[key] = v
            out[key] = v
        if self.excursion:
            metric, period = self.excursion
            m = self.type.metrics[metric]
            frac = ((t / period) + self.phase) % 1.0
            if frac < 0.3:  # rise and fall over 30 % of the period, peaking past the red limit
                bump = math.sin(math.pi * frac / 0.3)
                limits = m.thresholds
                if limits.high:
                    top = max(limits.high.values()) * 1.1
                    out[metric] = out[metric] + (top - out[metric]) * bump
                elif limits.low:
                    bottom = min(limits.low.values()) * 0.8
                    out[metric] = out[metric] - (out[metric] - bottom) * bump
        self.battery = max(5.0, self.battery - 0.001)
        return {k: round(v, 4) for k, v in out.items()}


def run(stop: threading.Event | None = None) -> None:
    """Entry point of ``python app.py simulate``: register, then publish until stopped."""
    stop = stop or threading.Event()
    settings = get_settings()
    r = get_redis()
    devices = register_demo_devices(r)
    log.info("simulating %d devices every %.1f s", len(devices), settings.sim_interval_s)
    rng = random.Random(SEED)
    # The first device of each excursion type runs the demo alarm cycle.
    first: set[str] = set()
    signals = []
    for d in devices:
        signals.append(_Signal(d, rng, excursion=d.type not in first))
        first.add(d.type)

    target = parse_mqtt_url(settings.mqtt_url or "mqtt://127.0.0.1:1883")
    client = make_client(
        f"gridcc-sim-{settings.gridcc_prefix}-{time.time_ns() % 10**6}",
        protocol=(mqtt.MQTTv311 if settings.mqtt_protocol == "3.1.1" else probe_protocol()),
    )
    client.max_inflight_messages_set(200)
    client.connect_async(target.host, target.port, keepalive=30)
    client.loop_start()
    try:
        while not stop.is_set():
            started = time.monotonic()
            now = now_ms()
            for s in signals:
                try:
                    publish_reading(
                        client,
                        s.device,
                        s.next(now / 1000),
                        now,
                        battery=s.battery,
                        signal=rng.uniform(60, 200),
                    )
                except Exception:  # one bad device must not stop the demo
                    log.exception("publishing %s failed", s.device.id)
            stop.wait(max(0.05, settings.sim_interval_s - (time.monotonic() - started)))
    finally:
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run()
