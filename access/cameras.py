"""Camera reads on behalf of a user: only the cameras inside the user's scope."""

from __future__ import annotations

import redis

from access.scope import Scope
from core.keys import keys
from core.models import CameraStatus


def _code_of(r: redis.Redis, camera_id: str) -> str | None:
    """The jurisdiction code at the camera's registered point; None when it has none."""
    from grids.locate import LocateError, locate

    raw = r.hmget(keys().camera(camera_id), ["lon", "lat"])
    try:
        lon, lat = float(raw[0] or ""), float(raw[1] or "")
        return locate(lon, lat).code or None
    except (ValueError, LocateError):
        # Unplaced cameras belong to the city level only (Scope.sees(None)).
        return None


def list_cameras(r: redis.Redis, scope: Scope) -> list[CameraStatus]:
    """Status of every camera the scope sees, by id (online and frame age judged now)."""
    from ingest.camera_status import list_statuses

    return [s for s in list_statuses(r) if scope.sees(_code_of(r, s.id))]
