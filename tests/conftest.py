"""Fixtures: real Redis and a real MQTT broker, isolated per test by key prefix and topic root."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core import store
from core.config import reset_settings

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MQTT_URL = os.environ.get("TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gridcc_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Point the product at the real Redis and broker under a fresh prefix and topic root."""
    tag = uuid.uuid4().hex[:10]
    env = {
        "REDIS_URL": REDIS_URL,
        "MQTT_URL": MQTT_URL,
        "GRIDCC_PREFIX": f"test{tag}",
        "MQTT_ROOT": f"t{tag}/",
        "VAR_DIR": str(tmp_path / "var"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()
    store.reset_clients()
    yield env
    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter(match=f"{env['GRIDCC_PREFIX']}:*", count=1000):
        r.delete(key)
    r.close()
    store.reset_clients()
    reset_settings()


@pytest.fixture
def r(gridcc_env: dict[str, str]) -> redis.Redis:
    return store.get_redis()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
