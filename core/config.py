"""Configuration from the environment, an optional YAML file, then defaults.

With nothing set, the product runs on the embedded default: an embedded Redis and
an embedded MQTT broker started by ``python app.py``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


def _yaml_file() -> dict[str, Any]:
    path = os.environ.get("GRIDCC_CONFIG")
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    return {k.lower(): v for k, v in data.items()}


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _yaml_file()


class Settings(BaseSettings):
    """All settings; environment names are the upper-case field names."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    # Empty means: start the embedded server.
    redis_url: str = ""
    mqtt_url: str = ""
    # Prefix of every Redis key, so tests and several cities can share one Redis.
    gridcc_prefix: str = "gc"
    # Prefix of every MQTT topic the product subscribes to (tests isolate with it).
    mqtt_root: str = ""
    mqtt_client_id: str = ""
    mqtt_shared_group: str = ""
    # "5" for servers that speak MQTT 5 (Mosquitto, EMQX); the embedded broker speaks only 3.1.1.
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    # Port of the embedded broker; when it is taken, a free one is used and printed.
    mqtt_embedded_port: int = Field(default=1883, ge=0, le=65535)

    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=1, le=65535)
    var_dir: Path = ROOT / "var"
    data_dir: Path = ROOT / "data"
    source_dir: Path = ROOT / "data" / "source"

    # Basemap tiles are optional: boundaries and markers draw without them.
    tile_url: str = ""
    tile_attribution: str = ""

    language: str = "zh-CN"
    timezone: str = "Asia/Shanghai"

    # Demo parts that `python app.py` starts.
    simulate: bool = True
    sim_interval_s: float = Field(default=2.0, gt=0)
    sim_devices: int = Field(default=60, ge=1)
    demo_video: Path = ROOT / "data" / "source" / "video" / "car-detection_intel.mp4"
    cameras_file: Path = ROOT / "layouts" / "cameras.yaml"

    max_payload_bytes: int = 64 * 1024
    # Each camera process is killed and restarted above this resident memory.
    camera_max_rss_mb: int = Field(default=512, ge=64)
    # Bound of ingest's disk spool (used while Redis is unreachable); when full, ingest
    # stops acknowledging and the broker keeps the messages.
    spool_max_bytes: int = Field(default=1024 * 1024 * 1024, ge=4096)

    @field_validator("redis_url", "mqtt_url")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls), file_secret_settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
