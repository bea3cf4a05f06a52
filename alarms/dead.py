"""Dead letters: input that could not be taken, kept with its reason and raw bytes."""

from __future__ import annotations

import redis

from core import push
from core.keys import keys
from core.timeutil import now_ms

# Raw bytes beyond this are cut: a dead letter proves what arrived, it is not an archive.
RAW_KEEP = 64 * 1024
DEAD_MAXLEN = 100_000


def write_dead(
    r: redis.Redis,
    *,
    source: str,
    reason: str,
    detail: str = "",
    raw: bytes | str = b"",
    topic: str = "",
) -> str:
    """XADD one dead letter (fields: reason, detail, source, topic, raw, received_ms)."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    if len(data) > RAW_KEEP:
        detail = f"{detail} (raw cut to {RAW_KEEP} of {len(data)} bytes)".strip()
        data = data[:RAW_KEEP]
    entry_id = r.xadd(
        keys().dead,
        {
            "reason": reason,
            "detail": detail[:2000],
            "source": source,
            "topic": topic,
            "raw": data,
            "received_ms": str(now_ms()),
        },
        maxlen=DEAD_MAXLEN,
        approximate=True,
    )
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    push.publish(r, "dead", id=eid, source=source)
    return eid
