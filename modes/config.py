"""The modes' plans, read from layouts/modes.yaml."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, model_validator

from core.config import ROOT
from core.models import Mode, Severity

MODES_FILE = ROOT / "layouts" / "modes.yaml"


class Text(BaseModel):
    zh: str
    en: str


class ChecklistItem(BaseModel):
    """One action of a mode's plan: whom to notify, what to open or what to check."""

    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    kind: Literal["notify", "open", "check"] = "check"
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


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
    # Texts by language, for screens that only show the list.
    checklist: dict[str, list[str]] = Field(default_factory=dict)
    # The same list with ids and kinds, for ticking.
    actions: list[ChecklistItem] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _checklist_forms(cls, data: Any) -> Any:
        """Accept the checklist as a list of items, or as texts by language."""
        if not isinstance(data, dict):
            return data
        cl = data.get("checklist")
        if isinstance(cl, list):
            data = {**data, "actions": cl}
            data["checklist"] = {
                lang: [str(i.get(lang, "")) if isinstance(i, dict) else "" for i in cl]
                for lang in ("zh", "en")
            }
        elif isinstance(cl, dict) and not data.get("actions"):
            zh, en = list(cl.get("zh") or []), list(cl.get("en") or [])
            data = {
                **data,
                "actions": [
                    {"id": f"c{i + 1}", "zh": z, "en": en[i] if i < len(en) else z}
                    for i, z in enumerate(zh)
                ],
            }
        return data

    @model_validator(mode="after")
    def _unique_ids(self) -> ModeConfig:
        ids = [a.id for a in self.actions]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"mode {self.code.value}: checklist ids repeated: {', '.join(dup)}")
        return self


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
