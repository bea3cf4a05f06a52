"""Pages beside the command center, one module each, found by their path.

A page module defines ``PATH`` (e.g. ``"/devices"``), ``TITLE_KEY`` (a label key),
``layout(lang: str | None) -> Component`` and ``register(app) -> None`` for its callbacks.
Component ids of a page start with its module name, so pages never collide.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def page_modules() -> dict[str, ModuleType]:
    """Path -> page module, for every module in this package."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        path = getattr(mod, "PATH", None)
        if path:
            found[path.rstrip("/") or "/"] = mod
    return found
