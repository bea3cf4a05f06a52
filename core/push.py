"""Tell open screens what changed.

A push names a topic and ids, never the data itself: each screen re-reads through
the access layer with its own user's scope, so a push cannot leak what a screen
may not see.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from core.keys import keys

TOPICS = ("mode", "alarm", "order", "device", "camera", "dead")


def publish(r: redis.Redis, topic: str, **ids: Any) -> None:
    if topic not in TOPICS:
        raise ValueError(f"unknown push topic {topic!r}")
    r.publish(keys().push_channel, json.dumps({"topic": topic, **ids}, ensure_ascii=False))
