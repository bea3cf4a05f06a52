"""The camera registry (layouts/cameras.yaml) and masking of camera credentials."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.config import ROOT, get_settings
from ingest.video_zones import AnalysisConfig

# Zhengzhou's extent (WGS84) with a small margin; a camera outside it is a typo.
LON_RANGE = (112.70, 114.25)
LAT_RANGE = (34.25, 35.00)

_SECRET_QUERY = {"password", "passwd", "pass", "pwd", "token", "key", "secret", "auth"}
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


class CameraConfigError(ValueError):
    """The camera registry cannot be used; the message says which entry and why."""


def mask_url(url: str) -> str:
    """The URL with user, password and secret query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(r"\g<scheme>***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if k.lower() in _SECRET_QUERY else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_text(text: str, *secrets: str) -> str:
    """Text (an error, a log line) with any URL credentials and the given secrets masked."""
    for s in secrets:
        if s and s in text:
            text = text.replace(s, mask_url(s))
    return _USERINFO.sub(r"\g<scheme>***@", text)


SOURCE_SCHEMES = ("rtsp", "rtsps", "http", "https", "file")


def check_source(source: str) -> None:
    """ValueError (never quoting the source) unless it is an RTSP/HTTP URL or a file path."""
    if "://" not in source:
        if any(ch in source for ch in "\x00\r\n"):
            raise ValueError("source file path holds control characters")
        return
    scheme = source.split("://", 1)[0].lower()
    if scheme not in SOURCE_SCHEMES:
        raise ValueError(
            f"source scheme {scheme!r} is not supported; use {', '.join(SOURCE_SCHEMES[:4])} "
            "or a file path"
        )
    if scheme == "file":
        return
    try:
        parts = urlsplit(source)
        host = parts.hostname
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(f"source is not a valid {scheme} URL (host or port)") from None
    if not host:
        raise ValueError(f"source {scheme} URL has no host")
    if any(ch.isspace() for ch in source):
        raise ValueError("source URL holds white space")


def with_credentials(source: str, username: str, password: str) -> str:
    """The URL with ``username:password@`` put in front of its host (percent-encoded)."""
    parts = urlsplit(source)
    if "@" in parts.netloc:
        raise ValueError("source already holds credentials; give them once")
    if parts.scheme.lower() not in SOURCE_SCHEMES[:4]:
        raise ValueError("credentials apply to RTSP and HTTP sources only")
    user = quote(username, safe="")
    info = f"{user}:{quote(password, safe='')}" if password else user
    return urlunsplit(
        (parts.scheme, f"{info}@{parts.netloc}", parts.path, parts.query, parts.fragment)
    )


class CameraConfig(BaseModel):
    """One camera: where it is, where it looks, where its video comes from."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=100)
    # rtsp(s)://user:pass@host:554/path, http(s) MJPEG, or a video file path
    # (relative paths are taken from the project root).
    source: str = Field(min_length=1, repr=False)
    lon: float = Field(allow_inf_nan=False)
    lat: float = Field(allow_inf_nan=False)
    direction_deg: float = Field(default=0.0, ge=0, lt=360)
    fov_deg: float = Field(default=60.0, gt=0, le=360)
    # No frame for this long means offline; the capture is then reopened.
    frame_age_limit_s: float = Field(default=5.0, gt=0, le=600)
    transport: Literal["tcp", "udp"] = "tcp"
    open_timeout_s: float = Field(default=5.0, gt=0, le=120)
    read_timeout_s: float = Field(default=5.0, gt=0, le=120)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    motion_threshold: float = Field(default=0.02, gt=0, lt=1)
    motion_min_s: float = Field(default=1.0, ge=0, le=600)
    publish_interval_s: float = Field(default=0.5, ge=0.1, le=10)
    jpeg_width: int = Field(default=640, ge=64, le=1920)
    jpeg_quality: int = Field(default=70, ge=10, le=100)
    # Zones, masks, tampering checks and event media (ingest/video_zones.py).
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    enabled: bool = True

    @field_validator("lon")
    @classmethod
    def _lon_in_city(cls, v: float) -> float:
        if not LON_RANGE[0] <= v <= LON_RANGE[1]:
            raise ValueError(f"longitude {v} is outside Zhengzhou ({LON_RANGE[0]}..{LON_RANGE[1]})")
        return v

    @field_validator("lat")
    @classmethod
    def _lat_in_city(cls, v: float) -> float:
        if not LAT_RANGE[0] <= v <= LAT_RANGE[1]:
            raise ValueError(f"latitude {v} is outside Zhengzhou ({LAT_RANGE[0]}..{LAT_RANGE[1]})")
        return v

    @model_validator(mode="after")
    def _source_kind(self) -> CameraConfig:
        check_source(self.source)
        return self

    @property
    def is_file(self) -> bool:
        return "://" not in self.source or self.source.lower().startswith("file://")

    @property
    def is_rtsp(self) -> bool:
        return self.source.lower().startswith(("rtsp://", "rtsps://"))

    @property
    def source_path(self) -> Path:
        """The file a file source plays."""
        raw = (
            self.source[len("file://") :]
            if self.source.lower().startswith("file://")
            else self.source
        )
        p = Path(raw)
        return p if p.is_absolute() else ROOT / p

    @property
    def masked_source(self) -> str:
        return mask_url(self.source) if not self.is_file else self.source


class CameraRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cameras: list[CameraConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> CameraRegistry:
        seen: set[str] = set()
        for c in self.cameras:
            if c.id in seen:
                raise ValueError(f"camera id {c.id!r} appears twice")
            seen.add(c.id)
        return self


def load_cameras(path: Path | str | None = None) -> list[CameraConfig]:
    """The enabled cameras of the registry file (``CAMERAS_FILE`` by default)."""
    path = Path(path) if path is not None else get_settings().cameras_file
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise CameraConfigError(f"camera registry {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise CameraConfigError(f"camera registry {path} is not valid YAML: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, dict):
        raise CameraConfigError(
            f"camera registry {path} must hold a mapping with 'cameras', not {type(data).__name__}"
        )
    try:
        reg = CameraRegistry.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = err["loc"]
            where = ".".join(str(x) for x in loc)
            if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
                items = data.get("cameras") or []
                entry = items[loc[1]] if loc[1] < len(items) else None
                if isinstance(entry, dict) and entry.get("id"):
                    where = f"camera {entry['id']!r} " + ".".join(str(x) for x in loc[2:])
            # Never echo the input: a source value may carry a password.
            lines.append(f"{where}: {mask_text(err['msg'])}")
        raise CameraConfigError(f"camera registry {path}: " + "; ".join(lines)) from None
    return [c for c in reg.cameras if c.enabled]
