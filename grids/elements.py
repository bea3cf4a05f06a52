"""The six elements per grid (article 30): 人 people, 地 places, 事 events, 物 things,
情 sentiment, 组织 organisations.

Events, sentiment and devices come from the live data in Redis (work orders and the
device registry), matched to a unit by the grid code of their place. The base
registers (population, key groups, buildings, facilities, organisations) have no
public source, so they are GENERATED per grid, the same on every run, and every
generated figure and record says so. ``elements_summary(code)`` adds up the grids
below any unit.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np
import redis

from core.keys import keys
from core.models import Channel
from grids.codes import Level, level_of
from grids.dataset import City, load_city
from grids.people import DataClass, generated_name, generated_phone

ELEMENTS = ("people", "places", "events", "things", "sentiment", "organisations")
ELEMENT_NAMES_ZH = {
    "people": "人",
    "places": "地",
    "events": "事",
    "things": "物",
    "sentiment": "情",
    "organisations": "组织",
}
KEY_GROUPS: dict[str, str] = {
    "elderly_alone": "独居老人",
    "left_behind_children": "留守儿童",
    "disabled": "残疾人",
    "low_income": "低保户",
    "community_correction": "社区矫正对象",
    "severe_mental_disorder": "严重精神障碍患者",
}
# Channels through which people speak (sentiment); sensors and video are not opinion.
PEOPLE_CHANNELS = frozenset(
    {Channel.HOTLINE, Channel.APP, Channel.MINIPROGRAM, Channel.MEDIA, Channel.WINDOW}
)
SEED_SALT = 20251205
REGISTER_FIELD_CLASSES: dict[str, DataClass] = {
    "id": DataClass.INTERNAL,
    "grid": DataClass.PUBLIC,
    "kind": DataClass.PUBLIC,
    "kind_name": DataClass.PUBLIC,
    "name": DataClass.PERSONAL,  # a person's name; organisations' names are public (see below)
    "org_name": DataClass.PUBLIC,
    "legal_rep": DataClass.PERSONAL,
    "phone": DataClass.PERSONAL,
    "address": DataClass.PERSONAL,
    "id_number": DataClass.SENSITIVE,
    "group": DataClass.SENSITIVE,  # belonging to a key group is itself sensitive
    "group_name": DataClass.SENSITIVE,
    "floors": DataClass.PUBLIC,
    "households": DataClass.PUBLIC,
    "generated": DataClass.PUBLIC,
}


def _rng(code: str, what: str) -> np.random.Generator:
    tag = int(hashlib.sha256(what.encode()).hexdigest()[:8], 16)
    return np.random.default_rng([SEED_SALT, int(code), tag])


def _is_urban(city: City, grid: str) -> bool:
    town = city.get(grid[: Level.TOWNSHIP.digits])
    return bool(town and town.name.endswith("街道"))


def generated_counts(grid: str, urban: bool) -> dict[str, Any]:
    """The generated base figures of one grid (people, places, things, organisations)."""
    rng = _rng(grid, "counts")
    households = int(rng.integers(300, 600) if urban else rng.integers(150, 350))
    residents = int(households * rng.uniform(2.4, 3.0))
    floating = int(residents * (rng.uniform(0.15, 0.35) if urban else rng.uniform(0.02, 0.1)))
    groups = {
        "elderly_alone": int(rng.integers(3, 15) if urban else rng.integers(8, 25)),
        "left_behind_children": int(rng.integers(0, 4) if urban else rng.integers(5, 20)),
        "disabled": int(rng.integers(3, 12)),
        "low_income": int(rng.integers(2, 10)),
        "community_correction": int(rng.integers(0, 3)),
        "severe_mental_disorder": int(rng.integers(0, 4)),
    }
    buildings = int(rng.integers(20, 60) if urban else rng.integers(60, 150))
    return {
        "people": {
            "households": households,
            "residents": residents,
            "floating": floating,
            "key_groups": groups,
        },
        "places": {
            "buildings": buildings,
            "addresses": households + int(rng.integers(10, 60)),
            "shops": int(rng.integers(20, 80) if urban else rng.integers(3, 20)),
            "key_places": int(rng.integers(1, 6)),
        },
        "facilities": {
            "hydrants": int(rng.integers(4, 16) if urban else rng.integers(1, 5)),
            "manholes": int(rng.integers(40, 120) if urban else rng.integers(5, 30)),
            "street_lights": int(rng.integers(30, 90) if urban else rng.integers(10, 40)),
        },
        "organisations": {
            "enterprises": int(rng.integers(5, 40) if urban else rng.integers(1, 10)),
            "individual_businesses": int(rng.integers(20, 90) if urban else rng.integers(5, 30)),
            "social_organisations": int(rng.integers(1, 6)),
            "party_organisations": int(rng.integers(1, 4)),
        },
    }


def _add(into: dict[str, Any], more: dict[str, Any]) -> None:
    for k, v in more.items():
        if isinstance(v, dict):
            _add(into.setdefault(k, {}), v)
        else:
            into[k] = into.get(k, 0) + v


def _chunks(items: list[bytes], n: int = 500) -> Iterable[list[bytes]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def order_stats(r: redis.Redis, code: str) -> dict[str, Any]:
    """Open orders (事) and people's reports and their top topics (情) at or below ``code``."""
    k = keys()
    open_ids: set[bytes] = set(cast(list[bytes], r.zrange(k.orders_open, 0, -1)))
    all_ids: set[bytes] = set(cast(list[bytes], r.zrange(k.orders_all, 0, -1)))
    open_n = 0
    by_cat: Counter[str] = Counter()
    reports = 0
    complaints: Counter[str] = Counter()
    for chunk in _chunks(sorted(all_ids | open_ids)):
        for oid, raw in zip(chunk, r.mget([k.order(i.decode()) for i in chunk]), strict=True):
            if not raw:
                continue
            try:
                order = json.loads(raw)
                grid = (order.get("place") or {}).get("grid") or ""
            except (ValueError, AttributeError):
                continue  # a torn record is the order service's to report, not a count
            if not grid.startswith(code):
                continue
            cat = str(order.get("category") or "未分类")
            if oid in open_ids:
                open_n += 1
                by_cat[cat] += 1
            if order.get("channel") in {c.value for c in PEOPLE_CHANNELS}:
                reports += 1
                complaints[cat] += 1
    return {
        "events": {"open_orders": open_n, "open_by_category": dict(by_cat.most_common())},
        "sentiment": {
            "reports": reports,
            "hot_topics": [{"category": c, "count": n} for c, n in complaints.most_common(5)],
        },
    }


def device_stats(r: redis.Redis, code: str) -> dict[str, int]:
    """Registered devices (物) at or below ``code``, and how many are offline."""
    k = keys()
    ids = sorted(i.decode() for i in r.smembers(k.devices))  # type: ignore[union-attr]
    total = offline = 0
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hmget(k.device(i), ["place", "status"])
    for place_raw, status_raw in pipe.execute():
        try:
            place = json.loads(place_raw) if place_raw else None
            status = json.loads(status_raw) if status_raw else ""
        except ValueError:
            continue
        grid = (place or {}).get("grid") or ""
        if not grid.startswith(code):
            continue
        total += 1
        offline += status == "offline"
    return {"devices": total, "devices_offline": offline}


def elements_summary(
    code: str,
    r: redis.Redis | None = None,
    *,
    city: City | None = None,
    count_open_orders: Callable[[str], int] | None = None,
) -> dict[str, Any]:
    """The six elements of any unit, added up over the grids below it.

    Live figures come from ``r`` (or ``count_open_orders(code)`` for 事 alone); without
    either they are None, never a guess.
    """
    city = city or load_city()
    unit = city.unit(code)
    grid_code = code[: Level.GRID.digits] if unit.level is Level.MICRO_GRID else code
    grids = (
        [city.unit(grid_code)]
        if level_of(grid_code) is Level.GRID
        else city.units_at(Level.GRID, within=code)
    )
    base: dict[str, Any] = {}
    for g in grids:
        _add(base, generated_counts(g.code, _is_urban(city, g.code)))
    live: dict[str, Any] = {}
    if r is not None:
        live = order_stats(r, grid_code)
        live["things"] = device_stats(r, grid_code)
    elif count_open_orders is not None:
        live = {"events": {"open_orders": int(count_open_orders(grid_code))}}
    events = live.get("events", {"open_orders": None})
    things = {**live.get("things", {"devices": None, "devices_offline": None})}
    things["facilities"] = base.get("facilities", {})
    return {
        "code": unit.code,
        "name": unit.name,
        "level": unit.level.value,
        "grids": len(grids),
        "people": base.get("people", {}),
        "places": base.get("places", {}),
        "events": events,
        "things": things,
        "sentiment": live.get("sentiment", {"reports": None, "hot_topics": []}),
        "organisations": base.get("organisations", {}),
        # Which figures are generated stand-ins rather than live or official data.
        "generated": ["people", "places", "things.facilities", "organisations"],
    }


def register(grid: str, element: str, city: City | None = None) -> list[dict[str, Any]]:
    """The generated register of one grid: ``people`` (key groups), ``places`` or
    ``organisations``. Fields are classified in REGISTER_FIELD_CLASSES."""
    if level_of(grid) is not Level.GRID:
        raise ValueError(f"registers are kept per grid (15 digits), not for {grid!r}")
    city = city or load_city()
    unit = city.unit(grid)
    counts = generated_counts(grid, _is_urban(city, grid))
    rng = _rng(grid, f"register:{element}")
    out: list[dict[str, Any]] = []
    if element == "people":
        seq = 0
        for group, n in counts["people"]["key_groups"].items():
            for _ in range(n):
                seq += 1
                out.append(
                    {
                        "id": f"{grid}-P{seq:04d}",
                        "grid": grid,
                        "group": group,
                        "group_name": KEY_GROUPS[group],
                        "name": generated_name(rng),
                        "phone": generated_phone(grid, 1000 + seq),
                        "address": f"{unit.name}{int(rng.integers(1, counts['places']['buildings'] + 1))}号楼",
                        "generated": True,
                    }
                )
    elif element == "places":
        for b in range(1, counts["places"]["buildings"] + 1):
            out.append(
                {
                    "id": f"{grid}-B{b:04d}",
                    "grid": grid,
                    "kind": "building",
                    "kind_name": "楼栋",
                    "org_name": f"{unit.name}{b}号楼",
                    "floors": int(rng.integers(2, 33)),
                    "households": int(rng.integers(4, 120)),
                    "generated": True,
                }
            )
    elif element == "organisations":
        kinds = {
            "enterprises": "企业",
            "individual_businesses": "个体工商户",
            "social_organisations": "社会组织",
            "party_organisations": "党组织",
        }
        seq = 0
        for kind, n in counts["organisations"].items():
            for j in range(1, n + 1):
                seq += 1
                out.append(
                    {
                        "id": f"{grid}-O{seq:04d}",
                        "grid": grid,
                        "kind": kind,
                        "kind_name": kinds[kind],
                        "org_name": f"{unit.name}{kinds[kind]}{j}（生成）",
                        "legal_rep": generated_name(rng),
                        "phone": generated_phone(grid, 5000 + seq),
                        "generated": True,
                    }
                )
    else:
        raise ValueError(
            f"no generated register {element!r}: use people, places or organisations "
            "(events, things and sentiment are live data)"
        )
    return out


__all__ = [
    "ELEMENTS",
    "ELEMENT_NAMES_ZH",
    "KEY_GROUPS",
    "REGISTER_FIELD_CLASSES",
    "device_stats",
    "elements_summary",
    "generated_counts",
    "order_stats",
    "register",
]
