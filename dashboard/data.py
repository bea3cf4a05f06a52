"""What a screen reads, always through ``access`` with the screen user's scope."""

from __future__ import annotations

import logging
from typing import Any

from access import reads
from access.cameras import list_cameras
from access.scope import Scope, demo_scope
from core.store import get_redis
from dashboard.views import as_dict

log = logging.getLogger("gridcc.dashboard")

LIST_LIMIT = 50


def screen_scope() -> Scope:
    """The scope of the user at this screen (accounts come later; the demo commander now)."""
    return demo_scope()


def mode_state(scope: Scope) -> dict[str, Any]:
    return as_dict(reads.current_mode(get_redis(), scope))


def counts(scope: Scope) -> dict[str, Any]:
    return as_dict(reads.counts(get_redis(), scope))


def alarms(scope: Scope) -> list[Any]:
    return list(reads.list_alarms(get_redis(), scope, open_only=True, limit=LIST_LIMIT))


def orders(scope: Scope) -> list[Any]:
    return list(reads.list_orders(get_redis(), scope, open_only=True, limit=LIST_LIMIT))


def markers(scope: Scope) -> list[dict[str, Any]]:
    return [as_dict(m) for m in reads.device_markers(get_redis(), scope)]


def cameras(scope: Scope) -> list[dict[str, Any]]:
    return [as_dict(c) for c in list_cameras(get_redis(), scope)]
