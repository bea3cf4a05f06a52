"""The Redis connection every role uses."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from core.config import get_settings

_clients: dict[str, redis.Redis] = {}


def redis_url() -> str:
    s = get_settings()
    url = s.redis_url
    if not url:
        # A command run beside `python app.py` (the device team's CLI) finds its embedded Redis.
        sock = (s.var_dir / "redis" / "redis.sock").resolve()
        if sock.exists():
            return f"unix://{sock}"
        raise RuntimeError(
            "REDIS_URL is not set: run `python app.py` for the embedded default, "
            "or set REDIS_URL=redis://host:6379/0"
        )
    return url


def get_redis(url: str | None = None) -> redis.Redis:
    """A shared client (thread-safe pool) with timeouts, so a dead Redis fails fast."""
    url = url or redis_url()
    client = _clients.get(url)
    if client is None:
        client = redis.Redis.from_url(
            url,
            socket_timeout=5,
            socket_connect_timeout=2,
            health_check_interval=15,
            # Two quick retries ride out a blip; the roles' own loops handle an outage, and
            # screens must say "down" in a second, not after redis-py's default retries.
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2),
        )
        _clients[url] = client
    return client


def reset_clients() -> None:
    for c in _clients.values():
        c.close()
    _clients.clear()
