"""The mode in force at a jurisdiction, switching it, and the log of every switch.

A mode set at a node holds for everything below it until a nearer node sets its own,
so a district can run in emergency while the rest of the city stays daily.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

import redis
from pydantic import BaseModel

from core import push
from core.keys import keys
from core.models import Mode
from core.timeutil import now_ms
from modes.config import mode_config, modes_config

CITY_CODE = "4101"
# Jurisdiction code lengths: city, county, township, village, grid, micro-grid.
CODE_LENGTHS = (4, 6, 9, 12, 15, 17)
_CODE_RE = re.compile(r"^\d+$")


class ModeError(ValueError):
    """A mode switch that was refused; the message says why."""


class ModeState(BaseModel):
    """The mode in force at ``asked_code``, set at ``code`` (itself or an ancestor)."""

    asked_code: str
    code: str
    mode: Mode
    label_zh: str
    label_en: str
    banner_zh: str
    banner_en: str
    colour: str
    alarm_factor: float
    time_limit_factor: float
    checklist: dict[str, list[str]]
    since_ms: int | None = None
    by: str | None = None
    reason: str | None = None

    @property
    def inherited(self) -> bool:
        return self.code != self.asked_code


def ancestors(code: str) -> list[str]:
    """The node and its ancestors, nearest first."""
    return [code[:n] for n in reversed(CODE_LENGTHS) if n <= len(code)]


def _check_code(code: str) -> str:
    code = (code or "").strip()
    if not _CODE_RE.match(code) or len(code) not in CODE_LENGTHS:
        raise ModeError(
            f"jurisdiction code {code!r} is not a code of {'/'.join(map(str, CODE_LENGTHS))} digits"
        )
    if not code.startswith(CITY_CODE):
        raise ModeError(f"jurisdiction code {code!r} is outside the city {CITY_CODE}")
    return code


def _state(asked: str, code: str, mode: Mode, rec: dict[str, Any] | None) -> ModeState:
    cfg = mode_config(mode)
    rec = rec or {}
    return ModeState(
        asked_code=asked,
        code=code,
        mode=mode,
        label_zh=cfg.label.zh,
        label_en=cfg.label.en,
        banner_zh=cfg.banner.zh,
        banner_en=cfg.banner.en,
        colour=cfg.colour,
        alarm_factor=cfg.alarm_factor,
        time_limit_factor=cfg.time_limit_factor,
        checklist=cfg.checklist,
        since_ms=rec.get("since_ms"),
        by=rec.get("by"),
        reason=rec.get("reason"),
    )


def mode_chain(code: str) -> list[str]:
    """The nodes whose mode may apply at ``code``, nearest first (the HMGET fields)."""
    code = (code or CITY_CODE).strip()
    chain = ancestors(code) if _CODE_RE.match(code) else []
    return chain or [CITY_CODE]


def resolve_mode(code: str, chain: list[str], values: list[Any]) -> ModeState:
    """The mode in force from the HMGET of ``mode_chain(code)`` (for pipelined callers)."""
    for node, raw in zip(chain, values, strict=True):
        if raw is None:
            continue
        try:
            rec = json.loads(raw)
            return _state(code, node, Mode(rec["mode"]), rec)
        except (ValueError, KeyError, TypeError):
            # A damaged entry must not take the screens down; fall through to the parent.
            continue
    return _state(code, CITY_CODE, modes_config().default, None)


def get_mode(r: redis.Redis, code: str = CITY_CODE) -> ModeState:
    """The mode in force at ``code``: the nearest ancestor-or-self with a mode set."""
    code = (code or CITY_CODE).strip()
    chain = mode_chain(code)
    return resolve_mode(code, chain, cast(list[Any], r.hmget(keys().modes, chain)))


# Shown in every screen's header: long enough for a sentence, short enough for one line.
MAX_REASON = 200


def set_mode(
    r: redis.Redis,
    code: str,
    mode: Mode | str,
    reason: str,
    by: str,
    *,
    now: int | None = None,
) -> ModeState:
    """Switch the mode at ``code``; every switch is logged with who, why and when,
    and the new mode's checklist is created there."""
    code = _check_code(code)
    try:
        m = Mode(mode)
    except ValueError:
        raise ModeError(
            f"unknown mode {mode!r}; one of {', '.join(x.value for x in Mode)}"
        ) from None
    reason, by = _check_reason_by(reason, by)
    from modes.checklist import new_instance

    previous = get_mode(r, code)
    ts = now_ms() if now is None else now
    rec = {"mode": m.value, "reason": reason, "by": by, "since_ms": ts}
    k = keys()
    pipe = r.pipeline(transaction=True)
    pipe.hset(k.modes, code, json.dumps(rec, ensure_ascii=False))
    pipe.hset(
        k.mode_checklists, code, json.dumps(new_instance(code, m, ts, by), ensure_ascii=False)
    )
    pipe.xadd(
        k.mode_log,
        {
            "code": code,
            "mode": m.value,
            "previous": previous.mode.value,
            "reason": reason,
            "by": by,
            "ts_ms": str(ts),
        },
    )
    pipe.execute()
    push.publish(r, "mode", code=code, mode=m.value)
    return _state(code, code, m, rec)


def _check_reason_by(reason: str, by: str) -> tuple[str, str]:
    reason = (reason or "").strip()
    if not reason:
        raise ModeError("a mode switch needs a reason")
    if len(reason) > MAX_REASON:
        raise ModeError(f"the reason is {len(reason)} characters; at most {MAX_REASON} are kept")
    by = (by or "").strip()
    if not by:
        raise ModeError("a mode switch needs the name of who switches it")
    return reason, by


def clear_mode(
    r: redis.Redis, code: str, reason: str, by: str, *, now: int | None = None
) -> ModeState:
    """Drop the mode set at ``code`` so it follows its parent again; logged like a switch."""
    code = _check_code(code)
    reason, by = _check_reason_by(reason, by)
    previous = get_mode(r, code)
    k = keys()
    if r.hget(k.modes, code) is None:
        raise ModeError(f"{code} has no mode of its own; it already follows its parent")
    parent = get_mode(r, ancestors(code)[1]) if code != CITY_CODE else None
    after = parent.mode if parent else modes_config().default
    ts = now_ms() if now is None else now
    pipe = r.pipeline(transaction=True)
    pipe.hdel(k.modes, code)
    pipe.hdel(k.mode_checklists, code)
    pipe.xadd(
        k.mode_log,
        {
            "code": code,
            "mode": after.value,
            "previous": previous.mode.value,
            "reason": reason,
            "by": by,
            "ts_ms": str(ts),
            "inherited": "1",
        },
    )
    pipe.execute()
    push.publish(r, "mode", code=code, mode=after.value)
    return get_mode(r, code)


def mode_history(r: redis.Redis, limit: int = 50) -> list[dict[str, Any]]:
    """The latest switches, newest first."""
    out: list[dict[str, Any]] = []
    entries = cast(
        list[tuple[Any, dict[Any, Any]]], r.xrevrange(keys().mode_log, count=max(1, limit))
    )
    for entry_id, fields in entries:
        rec: dict[str, Any] = {_s(k): _s(v) for k, v in fields.items()}
        rec["id"] = _s(entry_id)
        rec["ts_ms"] = int(rec.get("ts_ms") or 0)
        out.append(rec)
    return out


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
