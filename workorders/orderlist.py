"""Filtered lists of open orders for a user's scope (status, category, overdue, channel).

A county or township scope reads its own area index (kept by ``service._save``), newest
first, in batches, and stops once the page is full, so a list costs about the page, not the
city. Every record still passes ``scope.sees`` (one-way visibility).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import redis

from access.scope import Scope
from core.keys import keys
from core.models import WorkOrder
from core.timeutil import now_ms
from workorders.service import FINAL

BATCH = 200


def _index(scope: Scope) -> str:
    k = keys()
    code = scope.jurisdiction
    if len(code) in (6, 9):
        return k.orders_open_in(code)
    if len(code) > 9:
        return k.orders_open_in(code[:9])
    return k.orders_open


def filtered_orders(
    r: redis.Redis,
    scope: Scope,
    *,
    status: Iterable[str] | None = None,
    category: str | None = None,
    channel: str | None = None,
    overdue_only: bool = False,
    limit: int = 50,
    offset: int = 0,
    now: int | None = None,
) -> list[WorkOrder]:
    """Open orders the scope sees that match every filter, newest first."""
    if limit < 1 or offset < 0:
        raise ValueError("limit must be 1 or more and offset 0 or more")
    k = keys()
    idx = _index(scope)
    wanted = set(status) if status else None
    t = now_ms() if now is None else now
    out: list[WorkOrder] = []
    skipped = 0
    start = 0
    while len(out) < limit:
        ids = cast(list[bytes], r.zrevrange(idx, start, start + BATCH - 1))
        if not ids:
            break
        for raw in r.mget([k.order(i.decode()) for i in ids]):
            if not raw:
                continue
            o = WorkOrder.model_validate_json(raw)
            if o.status in FINAL or not scope.sees(o.place.code):
                continue
            if wanted is not None and o.status.value not in wanted:
                continue
            if category is not None and o.category != category:
                continue
            if channel is not None and o.channel.value != channel:
                continue
            if overdue_only and o.deadline_ms >= t:
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(o)
            if len(out) >= limit:
                break
        start += BATCH
    return out


def rebuild_area_indexes(r: redis.Redis) -> int:
    """Fill the per-area indexes from the open orders (after an upgrade); returns orders seen."""
    k = keys()
    n = 0
    start = 0
    while True:
        ids = cast(list[bytes], r.zrange(k.orders_open, start, start + BATCH - 1))
        if not ids:
            return n
        pipe = r.pipeline(transaction=False)
        for raw in r.mget([k.order(i.decode()) for i in ids]):
            if not raw:
                continue
            o = WorkOrder.model_validate_json(raw)
            for code in (o.place.county, o.place.township):
                if code:
                    pipe.zadd(k.orders_open_in(code), {o.id: o.created_ms})
            n += 1
        pipe.execute()
        start += BATCH
