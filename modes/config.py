"""The modes' plans, read from layouts/modes.yaml."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from core.config import ROOT
from core.models import Mode, Severity

MODES_FILE = ROOT / "layouts" / "modes.yaml"


class Text(BaseModel):
    zh: str
    en: str


class ModeConfig(BaseModel):
    """What one mode means: labels, banner, colour and how it changes limits."""

    code: Mode
    label: Text
    banner: Text
    colour: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    alarm_factor: float = Field(default=1.0, gt=0, le=2)
    time_limit_factor: float = Field(default=1.0, gt=0, le=4)
    # device type -> metric -> "high"|"low" -> severity -> limit
    overrides: dict[str, dict[str, dict[Literal["high", "low"], dict[Severity, float]]]] = Field(
        default_factory=dict
    )
    checklist: dict[str, list[str]] = Field(default_factory=dict)


class ModesFile(BaseModel):
    default: Mode = Mode.DAILY
    modes: dict[Mode, ModeConfig]


def load_modes(path: Path | str | None = None) -> ModesFile:
    """Parse and validate a modes file; every one of the four modes must be present."""
    p = Path(path) if path else MODES_FILE
    with open(p, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    modes = raw.get("modes") or {}
    if not isinstance(modes, dict):
        raise ValueError(f"{p}: 'modes' must be a mapping")
    for code, body in modes.items():
        if isinstance(body, dict):
            body.setdefault("code", code)
    parsed = ModesFile.model_validate(raw)
    missing = [m.value for m in Mode if m not in parsed.modes]
    if missing:
        raise ValueError(f"{p}: modes missing: {', '.join(missing)}")
    return parsed


@lru_cache(maxsize=1)
def modes_config() -> ModesFile:
    return load_modes()


def mode_config(mode: Mode | str) -> ModeConfig:
    return modes_config().modes[Mode(mode)]
