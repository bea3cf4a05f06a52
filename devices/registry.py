"""Device registry in Redis (regulation article 31: every sensor registered on one platform).

A device is a hash ``keys.device(id)`` whose fields hold JSON values, its id is in the
set ``keys.devices`` and its topic (below the MQTT root) in the hash ``keys.topic_index``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from enum import StrEnum
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.keys import keys
from core.models import Place
from core.timeutil import now_ms
from devices.catalogue import DeviceType, catalogue
from devices.profiles import Profile, profiles

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DeviceStatus(StrEnum):
    REGISTERED = "registered"  # known, waiting for its first message
    VERIFIED = "verified"  # a test reading inside the normal range arrived
    LIVE = "live"  # reporting in service
    OFFLINE = "offline"  # silent for longer than its type allows, or its last will came
    DISABLED = "disabled"  # taken out of service by the device team
    DECOMMISSIONED = "decommissioned"  # retired: history kept, never alarms again


class RegistryError(ValueError):
    """A registration that cannot be accepted; the message says why."""


class Device(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    # A name is a label on tables and maps, not a document.
    name: str = Field(default="", max_length=100)
    type: str
    profile: str
    topic: str = ""  # below the MQTT root; empty: the profile's topic for the id
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    place: Place | None = None
    status: DeviceStatus = DeviceStatus.REGISTERED
    registered_ms: int = 0
    simulated: bool = False
    decommissioned_ms: int | None = None
    decommissioned_by: str = ""
    decommission_reason: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(
                "device id must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return v

    @property
    def device_type(self) -> DeviceType:
        return catalogue().get(self.type)

    @property
    def profile_def(self) -> Profile:
        return profiles().get(self.profile)

    def to_hash(self) -> dict[str, str]:
        return {
            k: json.dumps(v, ensure_ascii=False) for k, v in self.model_dump(mode="json").items()
        }

    @classmethod
    def from_hash(cls, data: dict[bytes, bytes] | dict[str, str]) -> Device:
        fields: dict[str, Any] = {}
        for k, v in data.items():
            key = k.decode() if isinstance(k, bytes) else k
            fields[key] = json.loads(v)
        return cls.model_validate(fields)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _locate(lon: float, lat: float) -> Place | None:
    try:
        from grids.locate import locator
    except ImportError:  # the grid package is optional for the registry
        return None
    return locator().locate(lon, lat)


def register_device(
    r: redis.Redis,
    device: Device,
    *,
    allow_outside: bool = False,
    replace: bool = False,
) -> Device:
    """Validate and store a device; returns it with its place and topic filled in.

    Refused (``RegistryError``): unknown type or profile, a profile for another type,
    a topic another device owns, a point outside the city (unless ``allow_outside``),
    an id already registered (unless ``replace``).
    """
    try:
        dtype = catalogue().get(device.type)
        prof = profiles().get(device.profile)
    except KeyError as exc:
        raise RegistryError(str(exc.args[0])) from None
    if prof.device_type and prof.device_type != dtype.key:
        raise RegistryError(
            f"profile {prof.key} decodes {prof.device_type} devices, not {dtype.key}"
        )
    try:
        topic = device.topic or prof.device_topic(device.id)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    if any(c in topic for c in "+#\x00"):
        raise RegistryError(f"topic {topic!r} may not hold wildcards")
    place = _locate(device.lon, device.lat)
    if place is not None and not place.inside_city and not allow_outside:
        raise RegistryError(
            f"point ({device.lon}, {device.lat}) is outside the city; check lon/lat order and CRS"
        )
    dev = device.model_copy(
        update={
            "topic": topic,
            "place": place,
            "name": device.name or device.id,
            "registered_ms": device.registered_ms or now_ms(),
        }
    )
    k = keys()
    owner = _text(r.hget(k.topic_index, topic))
    if owner is not None and owner != dev.id:
        raise RegistryError(f"topic {topic!r} already belongs to device {owner}")
    old_raw: dict[bytes, bytes] = r.hgetall(k.device(dev.id))  # type: ignore[assignment]
    if old_raw and not replace:
        raise RegistryError(f"device {dev.id} is already registered")
    pipe = r.pipeline(transaction=True)
    if old_raw:
        old = Device.from_hash(old_raw)
        if old.topic != topic:
            pipe.hdel(k.topic_index, old.topic)
        pipe.delete(k.device(dev.id))
    pipe.hset(k.device(dev.id), mapping=dev.to_hash())  # type: ignore[arg-type]
    pipe.sadd(k.devices, dev.id)
    pipe.hset(k.topic_index, topic, dev.id)
    pipe.hdel(k.unknown_devices, topic)
    pipe.execute()
    return dev


def unregister_device(r: redis.Redis, device_id: str) -> bool:
    dev = get_device(r, device_id)
    if dev is None:
        return False
    k = keys()
    pipe = r.pipeline(transaction=True)
    pipe.delete(k.device(device_id))
    pipe.srem(k.devices, device_id)
    pipe.hdel(k.topic_index, dev.topic)
    pipe.execute()
    return True


def get_device(r: redis.Redis, device_id: str) -> Device | None:
    raw: dict[bytes, bytes] = r.hgetall(keys().device(device_id))  # type: ignore[assignment]
    return Device.from_hash(raw) if raw else None


def list_devices(r: redis.Redis, type_key: str | None = None) -> list[Device]:
    """Every registered device (optionally of one type), sorted by id."""
    ids = sorted(i.decode() for i in r.smembers(keys().devices))  # type: ignore[union-attr]
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(keys().device(i))
    out = []
    for raw in pipe.execute():
        if raw:
            dev = Device.from_hash(raw)
            if type_key is None or dev.type == type_key:
                out.append(dev)
    return out


def set_status(r: redis.Redis, device_id: str, status: DeviceStatus) -> None:
    r.hset(keys().device(device_id), "status", json.dumps(status.value))


def device_for_topic(r: redis.Redis, topic: str) -> Device | None:
    device_id = _text(r.hget(keys().topic_index, topic))
    return get_device(r, device_id) if device_id else None


class TopicCache:
    """Topic -> device lookups for ingest, refreshed from Redis every ``ttl_s`` seconds.

    A topic missing from the cache is looked up in Redis at once, so a device
    registered a moment ago is found; a topic nobody owns is remembered as unknown
    until the next refresh, so a flood of unknown messages costs no Redis round trips.
    """

    def __init__(self, r: redis.Redis, ttl_s: float = 5.0) -> None:
        self.r = r
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._by_topic: dict[str, Device | None] = {}
        self._loaded = 0.0

    def refresh(self) -> None:
        k = keys()
        index: dict[bytes, bytes] = self.r.hgetall(k.topic_index)  # type: ignore[assignment]
        pipe = self.r.pipeline(transaction=False)
        topics: list[str] = []
        for raw_topic, raw_id in index.items():
            topics.append(raw_topic.decode())
            pipe.hgetall(k.device(raw_id.decode()))
        fresh: dict[str, Device | None] = {}
        for topic, raw in zip(topics, pipe.execute(), strict=True):
            try:
                fresh[topic] = Device.from_hash(raw) if raw else None
            except ValueError as exc:
                log.warning("device record for topic %s is unreadable: %s", topic, exc)
        with self._lock:
            self._by_topic = fresh
            self._loaded = time.monotonic()

    def lookup(self, topic: str) -> Device | None:
        if time.monotonic() - self._loaded > self.ttl_s:
            self.refresh()
        with self._lock:
            if topic in self._by_topic:
                return self._by_topic[topic]
        dev = device_for_topic(self.r, topic)
        with self._lock:
            self._by_topic[topic] = dev
        return dev

    def forget(self, topic: str) -> None:
        with self._lock:
            self._by_topic.pop(topic, None)
