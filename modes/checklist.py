"""The plan's checklist of the mode in force: created on entering a mode, ticked by people.

Ticks are an audit trail and only ever appended: an item once ticked cannot be unticked;
a mistake is corrected by a new tick with a note saying what was wrong.
A place below a node whose mode it inherits shares that node's checklist.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis

from core import push
from core.keys import keys
from core.models import Mode
from core.timeutil import now_ms
from modes.config import mode_config

MAX_NOTE = 200


class ChecklistError(ValueError):
    """A tick that was refused; the message says why."""


def new_instance(
    code: str, mode: Mode | str, since_ms: int | None, by: str | None
) -> dict[str, Any]:
    """The checklist record of a jurisdiction entering ``mode``; items are copied from the
    plan so a later edit of the plan does not change a checklist already being worked."""
    m = Mode(mode)
    return {
        "instance": f"{since_ms or 0}-{m.value}",
        "code": code,
        "mode": m.value,
        "since_ms": since_ms,
        "by": by,
        "items": [a.model_dump() for a in mode_config(m).actions],
    }


def _instance(r: redis.Redis, code: str) -> dict[str, Any]:
    """The checklist of the mode in force at ``code``, created if the switch predates it."""
    from modes.service import get_mode

    state = get_mode(r, code)
    k = keys()
    raw = r.hget(k.mode_checklists, state.code)
    if raw is not None:
        try:
            rec = cast(dict[str, Any], json.loads(raw))
            if rec.get("mode") == state.mode.value and rec.get("since_ms") == state.since_ms:
                return rec
        except (ValueError, TypeError):
            pass  # a damaged record is replaced by a fresh one below
    rec = new_instance(state.code, state.mode, state.since_ms, state.by)
    # The instance id is derived from the switch, so two screens creating it agree.
    r.hset(k.mode_checklists, state.code, json.dumps(rec, ensure_ascii=False))
    return rec


def _ticks(r: redis.Redis, rec: dict[str, Any]) -> list[dict[str, Any]]:
    entries = cast(
        list[tuple[Any, dict[Any, Any]]],
        r.xrange(keys().mode_ticks(rec["code"], rec["instance"])),
    )
    out = []
    for entry_id, fields in entries:
        t: dict[str, Any] = {_s(a): _s(b) for a, b in fields.items()}
        t["id"] = _s(entry_id)
        t["at_ms"] = int(t.get("at_ms") or 0)
        t["correction"] = t.get("correction") == "1"
        out.append(t)
    return out


def _items(rec: dict[str, Any], ticks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in rec["items"]:
        mine = [t for t in ticks if t.get("item") == item["id"]]
        first = mine[0] if mine else None
        out.append(
            {
                **item,
                "done": first is not None,
                "by": first["by"] if first else None,
                "at_ms": first["at_ms"] if first else None,
                "note": first.get("note", "") if first else "",
                "ticks": mine,
            }
        )
    return out


def checklist(r: redis.Redis, code: str) -> list[dict[str, Any]]:
    """The items of the mode in force at ``code``: id, kind, zh, en, done, by, at_ms, note,
    and every tick of the item (the first one makes it done; later ones are corrections)."""
    rec = _instance(r, code)
    return _items(rec, _ticks(r, rec))


def checklist_info(r: redis.Redis, code: str) -> dict[str, Any]:
    """The checklist with where and when it was created (code, mode, since_ms, instance)."""
    rec = _instance(r, code)
    return {**{k: v for k, v in rec.items() if k != "items"}, "items": checklist(r, code)}


def tick(
    r: redis.Redis, code: str, item_id: str, by: str, note: str = "", *, now: int | None = None
) -> dict[str, Any]:
    """Record that ``by`` did ``item_id``; a second tick of an item needs a note (a correction)."""
    by = (by or "").strip()
    if not by:
        raise ChecklistError("a tick needs the name of who did it")
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ChecklistError(f"the note is {len(note)} characters; at most {MAX_NOTE} are kept")
    rec = _instance(r, code)
    ids = [i["id"] for i in rec["items"]]
    if item_id not in ids:
        raise ChecklistError(
            f"no item {item_id!r} in the {rec['mode']} checklist of {rec['code']}; "
            f"one of {', '.join(ids)}"
        )
    ticks = _ticks(r, rec)
    earlier = [t for t in ticks if t.get("item") == item_id]
    if earlier and not note:
        first = earlier[0]
        raise ChecklistError(
            f"{item_id!r} was already ticked by {first['by']}; "
            "to correct it, tick it again with a note saying what was wrong"
        )
    at = now_ms() if now is None else now
    r.xadd(
        keys().mode_ticks(rec["code"], rec["instance"]),
        {
            "item": item_id,
            "by": by,
            "note": note,
            "at_ms": str(at),
            "correction": "1" if earlier else "0",
        },
    )
    push.publish(r, "mode", code=rec["code"], checklist=rec["instance"], item=item_id)
    return next(i for i in checklist(r, code) if i["id"] == item_id)


def untick(r: redis.Redis, code: str, item_id: str, by: str) -> None:
    """Always refused: ticks are an audit trail."""
    raise ChecklistError(
        f"ticks cannot be taken back ({item_id!r} at {code}); "
        "record a correction as a new tick with a note"
    )


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
