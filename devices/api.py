"""Device registration API for device teams (regulation article 31).

POST /api/v1/devices registers one device (JSON validated by ``devices.registry.Device``)
and answers 201 with the stored device, its place and topic; GET /api/v1/devices/<id>
reads one, GET /api/v1/devices?type=&status= lists them, POST
/api/v1/devices/<id>/decommission retires one. Every refused body is answered with a JSON
error (400 bad input, 409 id or topic taken, 422 outside the city) and kept in the
dead-letter stream with its raw bytes; nothing is stored on an error. The description is
at /api/v1/devices/openapi.json.

Cameras take the same path under /api/v1/cameras (``devices.cameras``); their answers,
logs and dead letters carry the source with its credentials masked.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from alarms.dead import write_dead
from core.config import get_settings
from core.keys import keys
from core.store import get_redis
from devices.cameras import (
    CameraRegistryError,
    CameraState,
    camera_json,
    decommission_camera,
    get_camera,
    list_cameras,
    parse_new,
    register_camera,
)
from devices.catalogue import catalogue
from devices.health import decommission
from devices.profiles import profiles
from devices.registry import Device, DeviceStatus, RegistryError, get_device, list_devices
from devices.registry import register_device as _register
from ingest.camera_config import mask_text, mask_url
from ingest.camera_status import read_status

devices_api_bp = Blueprint("devices_api", __name__)

PATH = "/api/v1/devices"
# What a client may send; the rest (place, status, times) is the registry's to set.
CLIENT_FIELDS = ("id", "name", "type", "profile", "topic", "lon", "lat", "simulated")
_STATE_FIELDS = ("last_seen_ms", "severity", "battery", "signal", "offline_reason")


class _Refused(Exception):
    def __init__(
        self, status: int, reason: str, detail: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.extra = status, reason, detail, extra or {}
        self.raw: bytes | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _error(exc: _Refused, raw: bytes) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": exc.reason, "detail": exc.detail, **exc.extra}
    raw = exc.raw if exc.raw is not None else raw
    if raw is not None:
        try:
            write_dead(
                get_redis(),
                source="devices_api",
                reason=exc.reason,
                detail=exc.detail,
                raw=raw,
                topic=request.path,
            )
        except (redis.ConnectionError, redis.TimeoutError):
            body["dead_letter"] = "not stored: storage unavailable"
    return jsonify(body), exc.status


def _unavailable() -> tuple[Response, int]:
    return jsonify({"error": "unavailable", "detail": "storage unavailable, try again later"}), 503


def _body() -> tuple[bytes, dict[str, Any]]:
    """The raw body and its JSON object; _Refused (with the raw bytes kept) when it is not one."""
    limit = get_settings().max_payload_bytes
    raw = request.stream.read(limit + 1)
    try:
        return raw, _parse(raw, limit)
    except _Refused as exc:
        exc.raw = raw[:limit]
        raise


def _parse(raw: bytes, limit: int) -> dict[str, Any]:
    if len(raw) > limit:
        raise _Refused(413, "too_large", f"body exceeds the limit of {limit} bytes")
    if (request.mimetype or "").lower() != "application/json":
        raise _Refused(
            415,
            "unsupported_media_type",
            f"content type must be application/json, not {request.content_type or 'none'!r}",
        )
    charset = (request.mimetype_params.get("charset") or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        # As the intake API: a body declared in another charset is not silently read as UTF-8.
        raise _Refused(415, "unsupported_charset", f"charset must be utf-8, not {charset!r}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(
            400, "not_utf8", f"body is not UTF-8 (byte {exc.start}); convert GBK before sending"
        ) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser's stack, e.g. "[" * 30000.
        raise _Refused(400, "bad_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Refused(400, "bad_json", f"body must be a JSON object, not {type(data).__name__}")
    return data


def device_json(dev: Device, state: dict[Any, Any] | None = None) -> dict[str, Any]:
    """A device as the API answers it: its record, the full MQTT topic and its live state."""
    out: dict[str, Any] = dev.model_dump(mode="json")
    out["mqtt_topic"] = get_settings().mqtt_root + dev.topic
    if state is not None:
        got = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in state.items()
        }
        out["state"] = {f: got[f] for f in _STATE_FIELDS if got.get(f) not in (None, "")}
    return out


def _check_new(r: redis.Redis, dev: Device) -> None:
    """Refusals with their own status, before anything is stored."""
    try:
        dtype = catalogue().get(dev.type)
    except KeyError as exc:
        raise _Refused(400, "unknown_type", str(exc.args[0])) from None
    try:
        prof = profiles().get(dev.profile)
    except KeyError as exc:
        raise _Refused(400, "unknown_profile", str(exc.args[0])) from None
    if prof.device_type and prof.device_type != dtype.key:
        raise _Refused(
            400,
            "wrong_profile",
            f"profile {prof.key} decodes {prof.device_type} devices, not {dtype.key}",
        )
    if r.exists(keys().device(dev.id)):
        raise _Refused(409, "duplicate_id", f"device {dev.id} is already registered")
    try:
        topic = dev.topic or prof.device_topic(dev.id)
    except ValueError as exc:
        raise _Refused(400, "bad_topic", str(exc)) from None
    owner = r.hget(keys().topic_index, topic)
    if owner is not None:
        who = owner.decode() if isinstance(owner, bytes) else str(owner)
        raise _Refused(409, "duplicate_topic", f"topic {topic!r} already belongs to device {who}")
    from grids.locate import locator

    place = locator().locate(dev.lon, dev.lat)
    if not place.inside_city:
        raise _Refused(
            422,
            "outside_city",
            f"point ({dev.lon}, {dev.lat}) is outside the city; check lon/lat order and CRS",
        )


@devices_api_bp.post(PATH)
def post_device() -> tuple[Response, int]:
    raw = b""
    try:
        raw, data = _body()
        extra = sorted(set(data) - set(CLIENT_FIELDS))
        if extra:
            raise _Refused(
                400,
                "unknown_fields",
                f"fields not accepted: {', '.join(extra)}; allowed: {', '.join(CLIENT_FIELDS)}",
            )
        try:
            # Strict: a coordinate sent as text is a client bug, not a number to guess.
            dev = Device.model_validate(data, strict=True)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(map(str, e["loc"])) or "(root)", "message": e["msg"]}
                for e in exc.errors()
            ]
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            raise _Refused(400, "invalid_device", detail, {"fields": errors}) from None
        r = get_redis()
        _check_new(r, dev)
        try:
            stored = _register(r, dev)
        except RegistryError as exc:
            # Lost a race with another registration of the same id or topic.
            taken = r.exists(keys().device(dev.id)) or "belongs to" in str(exc)
            raise _Refused(409 if taken else 400, "refused", str(exc)) from None
    except _Refused as exc:
        return _error(exc, raw)
    except (redis.ConnectionError, redis.TimeoutError):
        return _unavailable()
    resp = jsonify(device_json(stored))
    resp.headers["Location"] = f"{PATH}/{stored.id}"
    return resp, 201


@devices_api_bp.get(PATH)
def get_devices() -> tuple[Response, int]:
    type_key = request.args.get("type") or None
    status = request.args.get("status") or None
    if type_key is not None and type_key not in catalogue().types:
        known = ", ".join(sorted(catalogue().types))
        return jsonify(
            {"error": "unknown_type", "detail": f"unknown device type {type_key!r}; known: {known}"}
        ), 400
    if status is not None and status not in {s.value for s in DeviceStatus}:
        known = ", ".join(s.value for s in DeviceStatus)
        return jsonify(
            {"error": "unknown_status", "detail": f"unknown status {status!r}; known: {known}"}
        ), 400
    try:
        devs = [d for d in list_devices(get_redis(), type_key) if not status or d.status == status]
    except (redis.ConnectionError, redis.TimeoutError):
        return _unavailable()
    return jsonify({"count": len(devs), "devices": [device_json(d) for d in devs]}), 200


def _not_found(device_id: str) -> tuple[Response, int]:
    return jsonify({"error": "not found", "detail": f"device {device_id} is not registered"}), 404


@devices_api_bp.get(f"{PATH}/<device_id>")
def get_one(device_id: str) -> tuple[Response, int]:
    try:
        r = get_redis()
        dev = get_device(r, device_id)
        state = r.hgetall(keys().device_state(device_id)) if dev else None
    except (redis.ConnectionError, redis.TimeoutError):
        return _unavailable()
    if dev is None:
        return _not_found(device_id)
    return jsonify(device_json(dev, state)), 200


def _decommission_body() -> tuple[bytes, str, str]:
    """The raw body, reason and author of a decommission request, or a 400 refusal."""
    raw, data = _body()
    reason, by = data.get("reason"), data.get("by", "api")
    refusal = None
    if not isinstance(reason, str) or not reason.strip():
        refusal = _Refused(400, "invalid_request", "reason: a non-empty text is required")
    elif not isinstance(by, str) or not by.strip():
        refusal = _Refused(400, "invalid_request", "by: must be a non-empty text when given")
    if refusal is not None:
        refusal.raw = raw  # the dead letter keeps the body that was refused
        raise refusal
    assert isinstance(reason, str) and isinstance(by, str)
    return raw, reason, by


@devices_api_bp.post(f"{PATH}/<device_id>/decommission")
def post_decommission(device_id: str) -> tuple[Response, int]:
    raw = b""
    try:
        raw, reason, by = _decommission_body()
        r = get_redis()
        dev = get_device(r, device_id)
        if dev is None:
            return _not_found(device_id)
        if dev.status == DeviceStatus.DECOMMISSIONED:
            raise _Refused(
                409, "already_decommissioned", f"device {device_id} is already decommissioned"
            )
        try:
            out = decommission(r, device_id, by=by, reason=reason)
        except RegistryError as exc:
            raise _Refused(409, "refused", str(exc)) from None
    except _Refused as exc:
        return _error(exc, raw)
    except (redis.ConnectionError, redis.TimeoutError):
        return _unavailable()
    return jsonify(device_json(out)), 200


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the device API, from the pydantic model."""
    full = Device.model_json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = dict(full.pop("$defs", {}))
    full["properties"]["mqtt_topic"] = {"type": "string", "description": "MQTT root + topic"}
    new = {
        "type": "object",
        "title": "NewDevice",
        "required": ["id", "type", "profile", "lon", "lat"],
        "additionalProperties": False,
        "properties": {k: v for k, v in full["properties"].items() if k in CLIENT_FIELDS},
        "description": "lon/lat in WGS84; topic below the MQTT root, default the profile's "
        "topic for the id. Types: "
        + ", ".join(sorted(catalogue().types))
        + "; profiles: "
        + ", ".join(sorted(profiles().profiles)),
    }
    components.update(
        {
            "Device": full,
            "NewDevice": new,
            "Error": {
                "type": "object",
                "required": ["error", "detail"],
                "properties": {
                    "error": {"type": "string"},
                    "detail": {"type": "string"},
                    "fields": {"type": "array", "items": {"type": "object"}},
                },
            },
        }
    )
    err = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    one = {"application/json": {"schema": {"$ref": "#/components/schemas/Device"}}}
    id_param = {"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "gridcc devices", "version": "1"},
        "paths": {
            PATH: {
                "post": {
                    "summary": "Register one device",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/NewDevice"}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Registered, waiting for its first message",
                            "content": one,
                        },
                        "400": {
                            "description": "Not JSON, invalid fields, unknown type or profile",
                            "content": err,
                        },
                        "409": {"description": "Id or topic already registered", "content": err},
                        "413": {"description": "Body too large", "content": err},
                        "415": {"description": "Not application/json", "content": err},
                        "422": {"description": "Point outside the city", "content": err},
                        "503": {"description": "Storage unavailable", "content": err},
                    },
                },
                "get": {
                    "summary": "List devices",
                    "parameters": [
                        {"name": "type", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "enum": [s.value for s in DeviceStatus]},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "Devices sorted by id",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "count": {"type": "integer"},
                                            "devices": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Device"},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "400": {"description": "Unknown type or status", "content": err},
                    },
                },
            },
            f"{PATH}/{{device_id}}": {
                "get": {
                    "summary": "One device with its live state",
                    "parameters": [id_param],
                    "responses": {
                        "200": {"description": "The device", "content": one},
                        "404": {"description": "not found", "content": err},
                    },
                }
            },
            f"{PATH}/{{device_id}}/decommission": {
                "post": {
                    "summary": "Retire a device: it stops alarming, its history stays",
                    "parameters": [id_param],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["reason"],
                                    "properties": {
                                        "reason": {"type": "string"},
                                        "by": {"type": "string", "default": "api"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "Decommissioned", "content": one},
                        "400": {"description": "No reason", "content": err},
                        "404": {"description": "not found", "content": err},
                        "409": {"description": "Already decommissioned", "content": err},
                    },
                }
            },
        },
        "components": {"schemas": components},
    }


@devices_api_bp.get(f"{PATH}/openapi.json")
def get_openapi() -> Response:
    return jsonify(openapi())


# Cameras (the device onboarding path for video): POST /api/v1/cameras registers one,
# GET lists them or reads one with its live status, POST .../<id>/decommission retires one.
# A source's credentials are stored for camera ingest but never answered, logged or kept
# in a dead letter: refused bodies are kept with the source masked and secrets blanked.
CAMERA_PATH = "/api/v1/cameras"


def _camera_raw(raw: bytes) -> bytes:
    """A refused camera body fit for the dead-letter stream (no credential in it)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # Unparsed text may hold a password anywhere; keep only that it came.
        return f"<{len(raw)} bytes not kept: a camera body may hold credentials>".encode()
    if not isinstance(data, dict):
        return mask_text(json.dumps(data, ensure_ascii=False)).encode()
    safe = dict(data)
    if isinstance(safe.get("source"), str):
        safe["source"] = mask_url(safe["source"])
    for f in ("username", "password"):
        if f in safe:
            safe[f] = "***"
    return mask_text(json.dumps(safe, ensure_ascii=False)).encode()


def _camera_refused(exc: CameraRegistryError) -> _Refused:
    extra = {"fields": exc.fields} if exc.fields else None
    return _Refused(exc.status, exc.reason, str(exc), extra)


def _camera_not_found(camera_id: str) -> tuple[Response, int]:
    return jsonify({"error": "not found", "detail": f"camera {camera_id} is not registered"}), 404


@devices_api_bp.post(CAMERA_PATH)
def post_camera() -> tuple[Response, int]:
    raw = b""
    try:
        try:
            raw, data = _body()
            new = parse_new(data)
            stored = register_camera(get_redis(), new, by="api")
        except CameraRegistryError as exc:
            raise _camera_refused(exc) from None
    except _Refused as exc:
        exc.raw = _camera_raw(exc.raw if exc.raw is not None else raw)
        return _error(exc, raw)
    except (redis.ConnectionError, redis.TimeoutError):
        return _unavailable()
    resp = jsonify(camera_json(stored))
    resp.headers["Location"] = f"{CAMERA_PATH}/{stored.id}"
    return resp, 201


@devices_api_bp.get(CAMERA_PATH)
def get_cameras() -> tuple[Response, int]:
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in CameraState}:
        known = ", ".join(s.value for s in CameraState)
        return jsonify(
            {"error": "unknown_status", "detail": f"unknown status {status!r}; known: {known}"}
        ), 400
    try:
        cams = list_cameras(get_redis(), CameraState(status) if status else None)
    except (redis.ConnectionError, redis.TimeoutError):
        return _unavailable()
    return jsonify({"count": len(cams), "cameras": [camera_json(c) for c in cams]}), 200


@devices_api_bp.get(f"{CAMERA_PATH}/<camera_id>")
def get_camera_one(camera_id: str) -> tuple[Response, int]:
    try:
        r = get_redis()
        rec = get_camera(r, camera_id)
        live = read_status(r, camera_id) if rec is not None else None
    except (redis.ConnectionError, redis.TimeoutError):
        return _unavailable()
    if rec is None:
        return _camera_not_found(camera_id)
    return jsonify(camera_json(rec, live)), 200


@devices_api_bp.post(f"{CAMERA_PATH}/<camera_id>/decommission")
def post_camera_decommission(camera_id: str) -> tuple[Response, int]:
    raw = b""
    try:
        raw, reason, by = _decommission_body()
        try:
            out = decommission_camera(get_redis(), camera_id, by=by, reason=reason)
        except CameraRegistryError as exc:
            if exc.status == 404:
                return _camera_not_found(camera_id)
            raise _camera_refused(exc) from None
    except _Refused as exc:
        return _error(exc, raw)
    except (redis.ConnectionError, redis.TimeoutError):
        return _unavailable()
    return jsonify(camera_json(out)), 200
