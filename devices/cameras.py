"""Cameras onboarded through the device path (regulation article 31), kept in Redis.

A camera's record (``keys.camera_registry``: id -> JSON) holds where it is, the grid its
point falls in, where it looks and its source URL with credentials masked; the source as
given, with its credentials, sits apart in ``keys.camera_sources`` so that only camera
ingest ever reads it. Camera ingest (``ingest.video.run``) polls both every few seconds:
a registered camera starts, a decommissioned one stops, no restart needed.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import redis
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from core import push
from core.config import ROOT, get_settings
from core.keys import keys
from core.models import Place
from core.timeutil import now_ms
from ingest.camera_config import (
    CameraConfig,
    CameraConfigError,
    check_source,
    load_cameras,
    mask_text,
    mask_url,
    with_credentials,
)
from ingest.video_zones import AnalysisConfig, Point, ZoneConfig

log = logging.getLogger(__name__)

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class CameraState(StrEnum):
    ACTIVE = "active"  # ingest runs it
    DECOMMISSIONED = "decommissioned"  # retired: ingest stops it, the record stays as history


class CameraRegistryError(ValueError):
    """A camera request that cannot be taken; ``status`` and ``reason`` say how to answer it."""

    def __init__(
        self, detail: str, *, status: int = 400, reason: str = "refused", fields: Any = None
    ) -> None:
        super().__init__(detail)
        self.status, self.reason, self.fields = status, reason, fields


class NewCamera(BaseModel):
    """What a device team sends to register a camera."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    # rtsp(s)://[user:pass@]host[:port]/path, http(s)://... (MJPEG), or a video file path.
    source: str = Field(min_length=1, max_length=2000, repr=False)
    # Credentials given apart from the URL are put into it; never echoed back.
    username: str = Field(default="", max_length=200, repr=False)
    password: SecretStr = Field(default=SecretStr(""), max_length=200)
    transport: Literal["tcp", "udp"] = "tcp"
    # Strict numbers: a coordinate sent as text is a client bug, not a number to guess.
    lon: float = Field(allow_inf_nan=False, strict=True)
    lat: float = Field(allow_inf_nan=False, strict=True)
    crs: Literal["wgs84", "gcj02"] = "wgs84"
    direction_deg: float = Field(default=0.0, ge=0, lt=360, strict=True)
    fov_deg: float = Field(default=60.0, gt=0, le=360, strict=True)
    frame_age_limit_s: float = Field(default=5.0, gt=0, le=600, strict=True)
    zones: list[ZoneConfig] = Field(default_factory=list)
    masks: list[list[Point]] = Field(default_factory=list)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        check_source(v)
        return v


class CameraRecord(BaseModel):
    """A registered camera as stored and answered: the source only ever masked."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    source: str  # masked
    has_credentials: bool = False
    transport: Literal["tcp", "udp"] = "tcp"
    lon: float
    lat: float
    place: Place
    direction_deg: float
    fov_deg: float
    frame_age_limit_s: float
    zones: list[ZoneConfig] = Field(default_factory=list)
    masks: list[list[Point]] = Field(default_factory=list)
    status: CameraState = CameraState.ACTIVE
    registered_ms: int
    registered_by: str = ""
    decommissioned_ms: int | None = None
    decommissioned_by: str = ""
    decommission_reason: str = ""

    def config(self, source: str) -> CameraConfig:
        """The camera as ingest runs it, given its unmasked source."""
        return CameraConfig(
            id=self.id,
            name=self.name,
            source=source,
            lon=self.lon,
            lat=self.lat,
            direction_deg=self.direction_deg,
            fov_deg=self.fov_deg,
            frame_age_limit_s=self.frame_age_limit_s,
            transport=self.transport,
            analysis=AnalysisConfig(zones=self.zones, masks=self.masks),
        )


def _field_errors(exc: ValidationError, *secrets: str) -> list[dict[str, str]]:
    # Only pydantic's message, never its copy of the input: a source may hold a password.
    return [
        {
            "field": ".".join(map(str, e["loc"])) or "(root)",
            "message": mask_text(e["msg"], *secrets),
        }
        for e in exc.errors()
    ]


def parse_new(data: dict[str, Any]) -> NewCamera:
    """A request body as a NewCamera; CameraRegistryError (400) listing each bad field."""
    secrets = [str(data.get("source", "")), str(data.get("password", ""))]
    try:
        return NewCamera.model_validate(data)
    except ValidationError as exc:
        errors = _field_errors(exc, *secrets)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise CameraRegistryError(detail, reason="invalid_camera", fields=errors) from None


def _file_allowed(path: Path) -> bool:
    """File sources are for demos and replays: only clips under data/ or the var folder."""
    real = path.resolve()
    roots = [(ROOT / "data").resolve(), get_settings().var_dir.resolve()]
    return any(real.is_relative_to(root) for root in roots)


def _yaml_ids() -> set[str]:
    try:
        return {c.id for c in load_cameras()}
    except CameraConfigError as exc:
        # A broken reviewed file is the file's problem; it must not block onboarding.
        log.warning("camera registry file unreadable while checking ids: %s", exc)
        return set()


def register_camera(r: redis.Redis, new: NewCamera, *, by: str = "") -> CameraRecord:
    """Validate and store a camera; CameraRegistryError says why one is refused.

    Refused: a bad CRS or a point outside the city (422), a file source that is missing
    or outside the data folders, credentials given twice, an id already registered here
    or in the reviewed camera file (409).
    """
    from grids.locate import LocateError, locator

    source = new.source
    secret = new.password.get_secret_value()
    if new.username or secret:
        try:
            source = with_credentials(source, new.username, secret)
        except ValueError as exc:
            raise CameraRegistryError(str(exc), reason="bad_source") from None
    try:
        place = locator().locate(new.lon, new.lat, new.crs)
    except LocateError as exc:
        raise CameraRegistryError(str(exc), status=400, reason="bad_point") from None
    if not place.inside_city:
        raise CameraRegistryError(
            f"point ({new.lon}, {new.lat}) in {new.crs} is outside the city; "
            "check lon/lat order and CRS",
            status=422,
            reason="outside_city",
        )
    record = CameraRecord(
        id=new.id,
        name=new.name,
        source=mask_url(source) if "://" in source else source,
        has_credentials=source != mask_url(source),
        transport=new.transport,
        lon=place.lon,
        lat=place.lat,
        place=place,
        direction_deg=new.direction_deg,
        fov_deg=new.fov_deg,
        frame_age_limit_s=new.frame_age_limit_s,
        zones=new.zones,
        masks=new.masks,
        registered_ms=now_ms(),
        registered_by=by,
    )
    try:
        cfg = record.config(source)
    except ValidationError as exc:
        errors = _field_errors(exc, source)
        raise CameraRegistryError(
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            reason="invalid_camera",
            fields=errors,
        ) from None
    if cfg.is_file:
        path = cfg.source_path
        if not _file_allowed(path):
            raise CameraRegistryError(
                "file sources must lie under the data or var folder", reason="bad_source"
            )
        if not path.is_file():
            raise CameraRegistryError(f"video file {path.name} does not exist", reason="bad_source")
    if new.id in _yaml_ids():
        raise CameraRegistryError(
            f"camera {new.id} is already in the reviewed camera file",
            status=409,
            reason="duplicate_id",
        )
    k = keys()
    # HSETNX decides a race between two registrations of one id.
    if not r.hsetnx(k.camera_registry, new.id, record.model_dump_json()):
        old = get_camera(r, new.id)
        retired = old is not None and old.status == CameraState.DECOMMISSIONED
        raise CameraRegistryError(
            f"camera {new.id} is already registered"
            + (
                " (decommissioned; its id is not reused, so its history stays its own)"
                if retired
                else ""
            ),
            status=409,
            reason="duplicate_id",
        )
    r.hset(k.camera_sources, new.id, source)
    push.publish(r, "camera", id=new.id)
    log.info("camera %s registered at %s (grid %s)", new.id, record.source, place.grid or "-")
    return record


def _record(raw: Any) -> CameraRecord:
    return CameraRecord.model_validate_json(raw)


def get_camera(r: redis.Redis, camera_id: str) -> CameraRecord | None:
    raw = r.hget(keys().camera_registry, camera_id)
    return _record(raw) if raw else None


def list_cameras(r: redis.Redis, status: CameraState | None = None) -> list[CameraRecord]:
    """Every registered camera (optionally in one state), by id."""
    out = []
    raw_all: dict[Any, Any] = r.hgetall(keys().camera_registry)
    for cid, raw in sorted(raw_all.items()):
        try:
            rec = _record(raw)
        except ValidationError:
            log.error("camera registry entry %r is unreadable; skipped", cid)
            continue
        if status is None or rec.status == status:
            out.append(rec)
    return out


def decommission_camera(r: redis.Redis, camera_id: str, by: str, reason: str) -> CameraRecord:
    """Retire a camera: ingest stops it, its credentials are dropped, its record stays."""
    if not by.strip() or not reason.strip():
        raise CameraRegistryError("decommissioning needs who does it and why")
    k = keys()
    rec = get_camera(r, camera_id)
    if rec is None:
        raise CameraRegistryError(
            f"camera {camera_id} is not registered", status=404, reason="not_found"
        )
    if rec.status == CameraState.DECOMMISSIONED:
        raise CameraRegistryError(
            f"camera {camera_id} is already decommissioned",
            status=409,
            reason="already_decommissioned",
        )
    out = rec.model_copy(
        update={
            "status": CameraState.DECOMMISSIONED,
            "decommissioned_ms": now_ms(),
            "decommissioned_by": by.strip(),
            "decommission_reason": reason.strip(),
        }
    )
    pipe = r.pipeline(transaction=True)
    pipe.hset(k.camera_registry, camera_id, out.model_dump_json())
    pipe.hdel(k.camera_sources, camera_id)
    pipe.execute()
    retire_status(r, camera_id)
    log.info("camera %s decommissioned by %s", camera_id, out.decommissioned_by)
    return out


def retire_status(r: redis.Redis, camera_id: str) -> None:
    """Take a retired camera off the wall: out of the camera set, no live frame, marked."""
    k = keys()
    pipe = r.pipeline(transaction=True)
    pipe.srem(k.cameras, camera_id)
    pipe.delete(k.camera_jpeg(camera_id))
    pipe.hset(k.camera(camera_id), mapping={"online": "0", "fps": "0", "error": "decommissioned"})
    pipe.execute()
    push.publish(r, "camera", id=camera_id)


def active_configs(r: redis.Redis) -> list[tuple[CameraConfig, str]]:
    """The active registered cameras as ingest runs them (with their credentials), each
    with the jurisdiction code of its place (for the operating mode in force there)."""
    k = keys()
    sources: dict[Any, Any] = r.hgetall(k.camera_sources)
    by_id = {
        (i.decode() if isinstance(i, bytes) else i): (s.decode() if isinstance(s, bytes) else s)
        for i, s in sources.items()
    }
    out = []
    for rec in list_cameras(r, CameraState.ACTIVE):
        source = by_id.get(rec.id)
        if source is None:
            continue  # registration in flight: the source follows its record
        try:
            out.append((rec.config(source), rec.place.code or "4101"))
        except ValidationError as exc:
            log.error(
                "camera %s: registered record cannot run: %s",
                rec.id,
                mask_text(str(exc.errors(include_input=False)), source),
            )
    return out


def camera_json(rec: CameraRecord, status: Any = None) -> dict[str, Any]:
    """A camera as the API answers it; ``status`` is its live CameraStatus when known."""
    out: dict[str, Any] = rec.model_dump(mode="json")
    out["grid"] = rec.place.grid
    out["live"] = None  # ingest has not reported yet
    if status is not None:
        live = status.model_dump(mode="json")
        out["live"] = {
            f: live.get(f)
            for f in ("online", "fps", "frame_age_ms", "last_frame_ms", "error", "updated_ms")
        }
    # The record never holds a credential; masking again guards against a hand-edited entry.
    out["source"] = mask_text(out["source"])
    return out
