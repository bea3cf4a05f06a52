"""Triage: the versioned responsibility list and the category suggestion from the text.

Versions live in Redis (a list of JSON documents, oldest first) so administrators can add
one while the workers read; ``responsibility.yaml`` seeds version 1. A version applies from
its ``valid_from``; the one in force at a time is the latest valid before it, so history
and future-dated versions are kept side by side and never edited in place.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import redis
import yaml
from pydantic import BaseModel, Field, field_validator

from core.keys import keys
from core.models import Place
from core.timeutil import now_ms

SEED_FILE = Path(__file__).resolve().parent / "responsibility.yaml"
TAXONOMY = (
    Path(__file__).resolve().parent.parent / "data" / "source" / "messages" / "taxonomy_3level.csv"
)
LEVELS = ("city", "district", "township", "*")


class Rule(BaseModel):
    category: str = Field(min_length=1, max_length=200)
    level: str = "*"
    owner: str = Field(min_length=1, max_length=100)

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v not in LEVELS:
            raise ValueError(f"level {v!r} is not one of {', '.join(LEVELS)}")
        return v

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        v = v.strip().strip("/")
        if v != "*" and not v.startswith("lifeline"):
            first = v.split("/")[0]
            if first not in taxonomy_first_levels():
                raise ValueError(f"category {v!r}: {first!r} is not a first-level category")
        return v


class Version(BaseModel):
    version: int
    valid_from_ms: int
    rules: list[Rule]
    by: str = "seed"
    note: str = ""
    created_ms: int = 0


@lru_cache(maxsize=1)
def taxonomy() -> pd.DataFrame:
    """The three-level category taxonomy (一级分类, 二级分类, 三级分类), file order."""
    df = pd.read_csv(TAXONOMY, dtype=str).fillna("")
    return df[["一级分类", "二级分类", "三级分类"]]


@lru_cache(maxsize=1)
def taxonomy_first_levels() -> frozenset[str]:
    return frozenset(taxonomy()["一级分类"])


def _ms(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    dt = datetime.fromisoformat(str(value))
    if dt.tzinfo is None:
        raise ValueError(f"valid_from {value!r} needs a UTC offset")
    return int(dt.timestamp() * 1000)


def _seed() -> Version:
    with open(SEED_FILE, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    return Version(
        version=1,
        valid_from_ms=_ms(doc["valid_from"]),
        rules=[Rule.model_validate(x) for x in doc.get("rules") or []],
        note="seed",
    )


def versions(r: redis.Redis) -> list[Version]:
    """Every version, oldest first; the seed is stored on first use."""
    key = keys().responsibility
    raws = r.lrange(key, 0, -1)
    if not raws:
        seed = _seed().model_dump_json()

        def txn(pipe: Any) -> None:
            # Two workers may seed at once: only an empty list takes the seed.
            if pipe.llen(key) == 0:
                pipe.multi()
                pipe.rpush(key, seed)

        r.transaction(txn, key)
        raws = r.lrange(key, 0, -1)
    return [Version.model_validate_json(x) for x in raws]


def add_version(
    r: redis.Redis,
    rules: list[dict[str, Any]] | list[Rule],
    *,
    valid_from: Any,
    by: str,
    note: str = "",
) -> Version:
    """A new version of the whole list (administrators); earlier versions stay as history."""
    if not (by or "").strip():
        raise ValueError("a new responsibility version needs the name of who makes it")
    parsed = [x if isinstance(x, Rule) else Rule.model_validate(x) for x in rules]
    if not parsed:
        raise ValueError("a responsibility version needs at least one rule")
    seen: set[tuple[str, str]] = set()
    for rule in parsed:
        if (rule.category, rule.level) in seen:
            raise ValueError(f"rule for {rule.category} at {rule.level} is given twice")
        seen.add((rule.category, rule.level))
    current = versions(r)
    ver = Version(
        version=max(v.version for v in current) + 1,
        valid_from_ms=_ms(valid_from),
        rules=parsed,
        by=by.strip(),
        note=note,
        created_ms=now_ms(),
    )
    r.rpush(keys().responsibility, ver.model_dump_json())
    return ver


def version_at(r: redis.Redis, at_ms: int | None = None) -> Version:
    at = now_ms() if at_ms is None else at_ms
    valid = [v for v in versions(r) if v.valid_from_ms <= at]
    if not valid:
        raise ValueError("no responsibility version is valid at that time")
    return max(valid, key=lambda v: (v.valid_from_ms, v.version))


def level_of(place: Place) -> str:
    if place.township:
        return "township"
    if place.county:
        return "district"
    return "city"


def owner_for(r: redis.Redis, category: str, level: str, at_ms: int | None = None) -> str | None:
    """The owner of the most specific rule for the category path and level."""
    ver = version_at(r, at_ms)
    path = category.strip().strip("/")
    best: tuple[int, int, str] | None = None
    for rule in ver.rules:
        if rule.level not in (level, "*"):
            continue
        if rule.category == "*":
            depth = 0
        elif path == rule.category or path.startswith(rule.category + "/"):
            depth = rule.category.count("/") + 1
        else:
            continue
        rank = (depth, 1 if rule.level == level else 0, rule.owner)
        if best is None or rank[:2] > best[:2]:
            best = rank
    return best[2] if best else None


def suggest_route(
    r: redis.Redis, text: str, place: Place, given_category: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Top-3 category suggestions from the text and the owner of the given category (or of
    the top suggestion) at the order's level."""
    from workorders.classify import suggest

    top = suggest(text)
    sugg: list[dict[str, Any]] = [{"category": c, "score": s} for c, s in top]
    cat = given_category or (top[0][0] if top else None)
    owner = owner_for(r, cat, level_of(place)) if cat else None
    return sugg, owner


def suggest(r: redis.Redis, text: str, level: str = "township") -> dict[str, Any]:
    """``{"suggestions": [(category, score)] top-3, "owner": ...}`` for an operator screen."""
    from workorders.classify import suggest as classify

    top = classify(text)
    return {
        "suggestions": top,
        "owner": owner_for(r, top[0][0], level) if top else None,
        "version": version_at(r).version,
    }


def history(r: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(v.model_dump_json()) for v in versions(r)]
