"""The label catalogue: zh-CN first, English available, every visible word from one file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from core.config import get_settings

LANGUAGES = ("zh-CN", "en")
CATALOGUE = Path(__file__).with_name("labels.yaml")


class LabelError(KeyError):
    """A label key or language the catalogue does not hold."""


def load_labels(path: Path) -> dict[str, dict[str, str]]:
    """A catalogue file, checked: every key has a non-empty text in every language."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} must hold a mapping of label keys")
    for key, texts in data.items():
        if not isinstance(texts, dict):
            raise ValueError(f"{path.name}: label {key!r} must map languages to texts")
        for lang in LANGUAGES:
            text = texts.get(lang)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{path.name}: label {key!r} has no {lang} text")
    return data


@lru_cache(maxsize=1)
def labels() -> dict[str, dict[str, str]]:
    """The product's catalogue."""
    return load_labels(CATALOGUE)


def normalize_lang(lang: str | None) -> str:
    """A supported language code; unknown or empty falls back to the configured one."""
    if lang:
        low = lang.strip().lower()
        for code in LANGUAGES:
            if low == code.lower():
                return code
        # "en-US" -> "en", "zh" -> "zh-CN": the primary language decides.
        for code in LANGUAGES:
            if low.split("-")[0] == code.split("-")[0].lower():
                return code
    default = get_settings().language
    return default if default in LANGUAGES else LANGUAGES[0]


def t(key: str, lang: str | None = None) -> str:
    """The text of one label in one language (the configured one by default)."""
    texts = labels().get(key)
    if texts is None:
        raise LabelError(f"no label {key!r} in {CATALOGUE.name}")
    return texts[normalize_lang(lang)]
