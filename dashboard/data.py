"""What a screen reads, always through ``access`` with the screen user's scope."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from access import reads
from access.cameras import list_cameras
from access.scope import Scope, demo_scope
from core.store import get_redis
from dashboard.views import as_dict

log = logging.getLogger("gridcc.dashboard")

LIST_LIMIT = 50
# A read that fails for these reasons means the data service is down, not "no data".
DATA_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

T = TypeVar("T")


def screen_scope() -> Scope:
    """The scope of the user at this screen (accounts come later; the demo commander now)."""
    return demo_scope()


def _r(r: redis.Redis | None) -> redis.Redis:
    return r if r is not None else get_redis()


def mode_state(scope: Scope, r: redis.Redis | None = None) -> dict[str, Any]:
    return as_dict(reads.current_mode(_r(r), scope))


def counts(scope: Scope, r: redis.Redis | None = None) -> dict[str, Any]:
    return as_dict(reads.counts(_r(r), scope))


def alarms(scope: Scope, r: redis.Redis | None = None) -> list[Any]:
    return list(reads.list_alarms(_r(r), scope, open_only=True, limit=LIST_LIMIT))


def orders(scope: Scope, r: redis.Redis | None = None) -> list[Any]:
    return list(reads.list_orders(_r(r), scope, open_only=True, limit=LIST_LIMIT))


def markers(scope: Scope, r: redis.Redis | None = None) -> list[dict[str, Any]]:
    return [as_dict(m) for m in reads.device_markers(_r(r), scope)]


def cameras(scope: Scope, r: redis.Redis | None = None) -> list[dict[str, Any]]:
    return [as_dict(c) for c in list_cameras(_r(r), scope)]


def guarded(fn: Callable[[], T]) -> T | None:
    """The read's result, or ``None`` when the data service is down (logged, never raised)."""
    try:
        return fn()
    except DATA_ERRORS as exc:
        log.warning("data service read failed: %s", exc)
        return None
