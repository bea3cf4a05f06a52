"""Device-team reads, scoped: the health table and the topics nobody registered."""

from __future__ import annotations

from typing import Any

import redis

from access.scope import CITY_CODE, Scope
from devices.health import health_rows
from devices.onboarding import list_unknown


def device_health(r: redis.Redis, scope: Scope, **filters: Any) -> list[dict[str, Any]]:
    """Health rows of the devices the scope sees (``filters`` go to ``health_rows``)."""
    # Unlocated devices belong to the city level (Scope.sees), so the city reads unfiltered.
    prefix = None if scope.jurisdiction == CITY_CODE else scope.jurisdiction
    return health_rows(r, code_prefix=prefix, **filters)


def unknown_topics(r: redis.Redis, scope: Scope) -> list[dict[str, Any]]:
    """Topics that published without a device; they have no place, so only the city sees them."""
    if scope.jurisdiction != CITY_CODE:
        return []
    return list_unknown(r)
