"""Camera status in Redis: the hash ``keys.camera(id)`` written by ingest, read by the web."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from core.keys import keys
from core.models import CameraStatus
from core.timeutil import now_ms
from ingest.camera_config import CameraConfig, mask_text

_BOOL = {"online", "motion_active"}
_INT = {"frame_age_ms", "last_frame_ms", "frame_age_limit_ms", "updated_ms"}
_FLOAT = {"fps", "motion", "lon", "lat", "direction_deg", "fov_deg", "rss_mb"}


def encode(values: dict[str, Any]) -> dict[Any, str]:
    """Hash fields as strings: booleans as 1/0, None as empty."""
    out: dict[Any, str] = {}
    for k, v in values.items():
        if v is None:
            out[k] = ""
        elif isinstance(v, bool):
            out[k] = "1" if v else "0"
        elif isinstance(v, float):
            out[k] = f"{v:.4f}".rstrip("0").rstrip(".") or "0"
        else:
            out[k] = str(v)
    return out


def static_fields(cam: CameraConfig) -> dict[str, Any]:
    """What the registry says about a camera (credentials masked)."""
    return {
        "id": cam.id,
        "name": cam.name,
        "lon": cam.lon,
        "lat": cam.lat,
        "direction_deg": cam.direction_deg,
        "fov_deg": cam.fov_deg,
        "source": cam.masked_source,
        "frame_age_limit_ms": int(cam.frame_age_limit_s * 1000),
    }


def decode(raw: Mapping[Any, Any], *, now: int | None = None) -> CameraStatus:
    """A status hash as a record; frame age and online are judged at read time.

    A camera process that died cannot mark itself offline, so a reader trusts
    ``online`` only while the last frame is younger than the camera's limit.
    """
    d: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else k
        val = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        if key in _BOOL:
            d[key] = val == "1"
        elif key in _INT:
            d[key] = int(float(val)) if val else None
        elif key in _FLOAT:
            d[key] = float(val) if val else None
        elif key in CameraStatus.model_fields:
            d[key] = val
    d.setdefault("id", "")
    d.setdefault("name", d["id"])
    d.setdefault("online", False)
    for k in ("fps", "motion"):
        if d.get(k) is None:
            d[k] = 0.0
    now = now_ms() if now is None else now
    last = d.get("last_frame_ms")
    limit = d.get("frame_age_limit_ms")
    if last is not None:
        d["frame_age_ms"] = max(0, now - last)
        if limit is not None and d["frame_age_ms"] > limit:
            d["online"] = False
    elif d["online"]:
        d["online"] = False
    if not d["online"]:
        d["fps"] = 0.0
        d["motion_active"] = False
    # Belt and braces: whatever wrote the hash, a page never shows a credential.
    d["source"] = mask_text(d.get("source", ""))
    d["error"] = mask_text(d.get("error", ""))
    return CameraStatus.model_validate(d)


def read_status(r: redis.Redis, camera_id: str) -> CameraStatus | None:
    """One camera's status, or None if no such camera is registered."""
    raw = r.hgetall(keys().camera(camera_id))
    if not raw:
        return None
    return decode(raw)


def camera_ids(r: redis.Redis) -> list[str]:
    return sorted(
        m.decode() if isinstance(m, bytes) else str(m) for m in r.smembers(keys().cameras)
    )


def list_statuses(r: redis.Redis) -> list[CameraStatus]:
    """Every registered camera's status, by id."""
    ids = camera_ids(r)
    pipe = r.pipeline(transaction=False)
    for cid in ids:
        pipe.hgetall(keys().camera(cid))
    now = now_ms()
    out = []
    for cid, raw in zip(ids, pipe.execute(), strict=True):
        if raw:
            out.append(decode(raw, now=now))
        else:
            out.append(CameraStatus(id=cid, name=cid, online=False, error="no status yet"))
    return out
