"""People per grid (articles 11, 12): grid chief, members, micro-grid chiefs, force liaisons.

A dedicated grid (school, hospital, ...) has its own chief (专属网格长) and the
liaisons of every professional force plus the sector department of its kind
(``KIND_FORCES``: education for a school, health for a hospital, ...).

No real roster exists for the demo, so every grid gets GENERATED staff, the same on
every run (seeded by the grid code). Generated records say so (``generated=True``),
and their phone numbers start with ``10``, which no Chinese mobile number does, so
they can never reach a real person.

Personal fields are declared with a classification in ``FIELD_CLASSES``; the
security layer masks them with ``mask`` / ``mask_record`` for users not cleared for
that class. The on-duty state is live: it is kept in Redis (``keys().staff_duty``),
with the generated roster's state as the default.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Any

import numpy as np
import redis
from pydantic import BaseModel

from core.keys import keys
from core.timeutil import now_ms
from grids.codes import DedicatedKind, Level, dedicated_kind, level_of
from grids.dataset import MICRO_GRIDS_PER_GRID, City, load_city


class DataClass(StrEnum):
    """Data classification (article 33): who may see a field unmasked."""

    PUBLIC = "public"  # anyone who sees the grid
    INTERNAL = "internal"  # staff of the platform
    PERSONAL = "personal"  # personal information: masked unless the matter needs it
    SENSITIVE = "sensitive"  # sensitive personal information: always masked on screens


class Role(StrEnum):
    GRID_CHIEF = "grid_chief"  # 网格长
    GRID_MEMBER = "grid_member"  # 网格员
    MICRO_GRID_CHIEF = "micro_grid_chief"  # 微网格长
    LIAISON = "liaison"  # 专业力量联络员


ROLE_NAMES_ZH = {
    Role.GRID_CHIEF: "网格长",
    Role.GRID_MEMBER: "网格员",
    Role.MICRO_GRID_CHIEF: "微网格长",
    Role.LIAISON: "专业力量联络员",
}

# Professional forces with a liaison in every grid: key → (name, department).
FORCES: dict[str, tuple[str, str]] = {
    "police": ("公安", "派出所"),
    "fire": ("消防", "消防救援站"),
    "emergency": ("应急", "应急管理办"),
    "urban_management": ("城管", "城市管理执法中队"),
    "market_supervision": ("市场监管", "市场监管所"),
    "judicial": ("司法", "司法所"),
}

# The sector department that joins the liaisons of a dedicated grid of each kind.
KIND_FORCES: dict[DedicatedKind, tuple[str, str, str]] = {
    DedicatedKind.SCHOOL: ("education", "教育", "教育局"),
    DedicatedKind.HOSPITAL: ("health", "卫健", "卫生健康委"),
    DedicatedKind.INDUSTRIAL_PARK: ("industry", "工信", "工业和信息化局"),
    DedicatedKind.MARKET: ("commerce", "商务", "商务局"),
    DedicatedKind.CONSTRUCTION_SITE: ("housing", "住建", "住房和城乡建设局"),
    DedicatedKind.KEY_POINT: ("transport", "交通", "交通运输局"),
}

GRID_MEMBERS = 2
# One micro-grid chief per micro-grid (``micro_grid`` is its 2-digit sequence).
SEED_SALT = 20251204
GENERATED_PHONE_PREFIX = "10"

FIELD_CLASSES: dict[str, DataClass] = {
    "id": DataClass.INTERNAL,
    "grid": DataClass.PUBLIC,
    "role": DataClass.PUBLIC,
    "role_name": DataClass.PUBLIC,
    "force": DataClass.PUBLIC,
    "department": DataClass.PUBLIC,
    "micro_grid": DataClass.PUBLIC,
    "name": DataClass.PERSONAL,
    "phone": DataClass.PERSONAL,
    "id_number": DataClass.SENSITIVE,
    "address": DataClass.PERSONAL,
    "on_duty": DataClass.INTERNAL,
    "duty_since_ms": DataClass.INTERNAL,
    "generated": DataClass.PUBLIC,
}

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国建华志强海燕文杰红梅玉兰晓东丹丹春梅鑫宇浩然子涵欣怡梓轩雨萱一鸣佳琪思远嘉怡俊杰"
_DIGIT_RUN = re.compile(r"\d{7,}")


class Person(BaseModel):
    """One member of a grid's staff; see FIELD_CLASSES for what each field may show."""

    id: str
    grid: str
    role: Role
    role_name: str
    name: str
    phone: str
    force: str | None = None
    department: str | None = None
    micro_grid: int | None = None
    on_duty: bool = True
    duty_since_ms: int | None = None
    generated: bool = True


def _rng(code: str) -> np.random.Generator:
    return np.random.default_rng([SEED_SALT, int(code)])


def generated_name(rng: np.random.Generator) -> str:
    surname = _SURNAMES[int(rng.integers(len(_SURNAMES)))]
    n = 1 + int(rng.integers(2))
    given = "".join(_GIVEN[int(rng.integers(len(_GIVEN)))] for _ in range(n))
    return surname + given


def generated_phone(code: str, seq: int) -> str:
    """A fake 11-digit number starting ``10``, unique per grid and position.

    The digits spell county, township, village and grid sequence and ``seq``, so no
    two generated people share a number; codes beyond that layout fall back to a hash.
    """
    county, town, village, grid = code[4:6], code[6:9], code[9:12], code[12:15]
    if int(village) < 10 and int(grid) < 10 and 0 <= seq < 100:
        return f"{GENERATED_PHONE_PREFIX}{county}{town}{int(village)}{int(grid)}{seq:02d}"
    digest = hashlib.sha256(f"{code}:{seq}".encode()).hexdigest()
    return GENERATED_PHONE_PREFIX + f"{int(digest[:12], 16) % 10**9:09d}"


def _check_grid(code: str) -> Level:
    lv = level_of(code)
    if lv not in (Level.GRID, Level.DEDICATED):
        raise ValueError(
            f"staff belong to a grid (15 digits) or a dedicated grid (16 digits); "
            f"{code!r} is a {lv.value} code"
        )
    return lv


def generated_staff(grid: str) -> list[Person]:
    """The generated roster of one grid or dedicated grid (deterministic)."""
    if _check_grid(grid) is Level.DEDICATED:
        return _dedicated_staff(grid)
    rng = _rng(grid)
    out: list[Person] = []

    def add(role: Role, **extra: Any) -> None:
        seq = len(out) + 1
        out.append(
            Person(
                id=f"{grid}-{seq:02d}",
                grid=grid,
                role=role,
                role_name=extra.pop("role_name", ROLE_NAMES_ZH[role]),
                name=generated_name(rng),
                phone=generated_phone(grid, seq),
                # About one in eight members of staff is off duty at any time.
                on_duty=bool(rng.random() >= 0.125),
                **extra,
            )
        )

    add(Role.GRID_CHIEF)
    for _ in range(GRID_MEMBERS):
        add(Role.GRID_MEMBER)
    for m in range(1, MICRO_GRIDS_PER_GRID + 1):
        add(Role.MICRO_GRID_CHIEF, micro_grid=m, role_name=f"第{m}微网格长")
    for force, (zh, dept) in FORCES.items():
        add(Role.LIAISON, force=force, department=dept, role_name=f"{zh}联络员")
    return out


def _dedicated_staff(code: str) -> list[Person]:
    rng = _rng(code)
    kind = dedicated_kind(code)
    out: list[Person] = []

    def add(role: Role, role_name: str, **extra: Any) -> None:
        seq = len(out) + 1
        out.append(
            Person(
                id=f"{code}-{seq:02d}",
                grid=code,
                role=role,
                role_name=role_name,
                name=generated_name(rng),
                phone=generated_phone(code, seq),
                on_duty=bool(rng.random() >= 0.125),
                **extra,
            )
        )

    add(Role.GRID_CHIEF, "专属网格长")
    forces = {**FORCES, KIND_FORCES[kind][0]: KIND_FORCES[kind][1:]}
    for force, (zh, dept) in forces.items():
        add(Role.LIAISON, f"{zh}联络员", force=force, department=dept)
    return out


def staff_within(code: str, city: City | None = None, dedicated: bool = False) -> list[Person]:
    """The rosters of every grid at or below ``code`` (by grid code); with
    ``dedicated`` also those of the dedicated grids coded below it."""
    city = city or load_city()
    lv = level_of(code)
    if lv is Level.MICRO_GRID:
        code = code[: Level.GRID.digits]
    if lv in (Level.GRID, Level.MICRO_GRID, Level.DEDICATED):
        city.unit(code)
        return generated_staff(code)
    out: list[Person] = []
    for g in city.units_at(Level.GRID, within=code):
        out.extend(generated_staff(g.code))
    if dedicated:
        for d in city.dedicated(within=code):
            out.extend(generated_staff(d.code))
    return out


def _apply_duty(people: list[Person], states: list[bytes | None]) -> list[Person]:
    out = []
    for p, raw in zip(people, states, strict=True):
        if raw:
            st = json.loads(raw)
            p = p.model_copy(
                update={"on_duty": bool(st["on_duty"]), "duty_since_ms": st["since_ms"]}
            )
        out.append(p)
    return out


def staff_of(grid: str, r: redis.Redis | None = None) -> list[Person]:
    """One grid's roster, with the live on-duty state from Redis when ``r`` is given."""
    people = generated_staff(grid)
    if r is None:
        return people
    states = r.hmget(keys().staff_duty, [p.id for p in people])
    return _apply_duty(people, states)  # type: ignore[arg-type]


def set_on_duty(r: redis.Redis, person_id: str, on_duty: bool, by: str = "") -> Person:
    """Record a person going on or off duty; unknown ids raise ValueError."""
    grid, _, seq = person_id.partition("-")
    try:
        _check_grid(grid)
        person = next(p for p in generated_staff(grid) if p.id == person_id)
    except (ValueError, StopIteration):
        raise ValueError(f"no grid staff has id {person_id!r}") from None
    since = now_ms()
    r.hset(
        keys().staff_duty,
        person_id,
        json.dumps({"on_duty": bool(on_duty), "since_ms": since, "by": by}),
    )
    return person.model_copy(update={"on_duty": bool(on_duty), "duty_since_ms": since})


def mask(value: Any, cls: DataClass | str) -> Any:
    """``value`` as a user not cleared for ``cls`` may see it.

    Public and internal values pass unchanged (the caller decides who is internal);
    personal ones keep a hint (138****1234, 张*); sensitive ones show nothing.
    """
    c = DataClass(cls)
    if value is None or c in (DataClass.PUBLIC, DataClass.INTERNAL):
        return value
    text = str(value)
    if c is DataClass.SENSITIVE:
        return "*" * min(len(text), 6) if text else text
    if _DIGIT_RUN.search(text):
        # A phone or another number: keep the first 3 and last 4 digits.
        digits = re.sub(r"\D", "", text)
        if len(digits) > 7:
            return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
        return "*" * len(digits)
    if len(text) <= 1:
        return "*"
    return text[0] + "*" * (len(text) - 1)


def mask_record(
    record: dict[str, Any],
    cleared: set[DataClass] | frozenset[DataClass] = frozenset(
        {DataClass.PUBLIC, DataClass.INTERNAL}
    ),
    classes: dict[str, DataClass] | None = None,
) -> dict[str, Any]:
    """A copy of ``record`` with every field of a class not in ``cleared`` masked.

    A field without a declared class is treated as personal, so a new field is never
    shown by accident.
    """
    classes = classes or FIELD_CLASSES
    out = {}
    for k, v in record.items():
        cls = classes.get(k, DataClass.PERSONAL)
        out[k] = v if cls in cleared else mask(v, cls)
    return out


__all__ = [
    "FIELD_CLASSES",
    "FORCES",
    "KIND_FORCES",
    "DataClass",
    "Person",
    "Role",
    "generated_staff",
    "mask",
    "mask_record",
    "set_on_duty",
    "staff_of",
    "staff_within",
]
