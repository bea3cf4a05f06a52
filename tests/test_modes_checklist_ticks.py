"""The plan's checklist on the real Redis: created on entering a mode, ticks append-only."""

from __future__ import annotations

import json

import pytest
import redis

from core.keys import keys
from core.models import Mode
from modes.checklist import ChecklistError, checklist, checklist_info, tick, untick
from modes.config import load_modes
from modes.service import set_mode


def test_every_mode_has_a_checklist_of_notify_open_and_check_items() -> None:
    for m in load_modes().modes.values():
        assert m.actions, m.code
        assert [a.zh for a in m.actions] == m.checklist["zh"]
        assert {a.kind for a in m.actions} <= {"notify", "open", "check"}
    kinds = {a.kind for a in load_modes().modes[Mode.EMERGENCY].actions}
    assert kinds == {"notify", "open", "check"}


def test_checklist_created_on_entering_a_mode_and_ticks_recorded(r: redis.Redis) -> None:
    set_mode(r, "410105", "emergency", "暴雨红色预警", by="duty-zhang")
    info = checklist_info(r, "410105")
    assert info["mode"] == "emergency" and info["code"] == "410105"
    items = checklist(r, "410105016")  # a township below shares the district's checklist
    assert [i["zh"] for i in items][:2] == ["启动应急预案", "通知各专业力量联络员"]
    assert not any(i["done"] for i in items)
    # Another district's checklist is the daily one.
    assert checklist(r, "410102")[0]["id"] == "duty_on_post"

    ps = r.pubsub()
    ps.subscribe(keys().push_channel)
    ps.get_message(timeout=1)
    item = tick(r, "410105", "activate_plan", "duty-zhang", now=1_790_000_000_000)
    assert item["done"] and item["by"] == "duty-zhang" and item["at_ms"] == 1_790_000_000_000
    msg = ps.get_message(timeout=2)
    assert msg is not None
    assert json.loads(msg["data"]) == {
        "topic": "mode",
        "code": "410105",
        "checklist": info["instance"],
        "item": "activate_plan",
    }
    ps.close()
    tick(r, "410105016", "summon_liaisons", "duty-li", note="短信已发")
    done = {i["id"]: (i["by"], i["note"]) for i in checklist(r, "410105") if i["done"]}
    assert done == {"activate_plan": ("duty-zhang", ""), "summon_liaisons": ("duty-li", "短信已发")}

    # Entering another mode starts a fresh checklist; the old ticks stay in their stream.
    set_mode(r, "410105", "daily", "预警解除", by="duty-zhang")
    assert not any(i["done"] for i in checklist(r, "410105"))
    assert r.xlen(keys().mode_ticks("410105", info["instance"])) == 2


def test_ticks_are_append_only(r: redis.Redis) -> None:
    set_mode(r, "4101", "holiday", "国庆假期", by="duty-wang")
    tick(r, "4101", "leader_on_duty", "duty-wang")
    with pytest.raises(ChecklistError, match="already ticked by duty-wang"):
        tick(r, "4101", "leader_on_duty", "duty-zhao")
    with pytest.raises(ChecklistError, match="cannot be taken back"):
        untick(r, "4101", "leader_on_duty", "duty-wang")
    # A correction is a new entry; the first tick still tells who did it.
    tick(r, "4101", "leader_on_duty", "duty-zhao", note="带班领导改为李副主任")
    item = next(i for i in checklist(r, "4101") if i["id"] == "leader_on_duty")
    assert item["by"] == "duty-wang"
    assert [(t["by"], t["correction"]) for t in item["ticks"]] == [
        ("duty-wang", False),
        ("duty-zhao", True),
    ]


@pytest.mark.parametrize(
    ("item", "by", "note", "msg"),
    [
        ("no_such_item", "duty", "", "no item 'no_such_item'"),
        ("duty_on_post", "  ", "", "who"),
        ("duty_on_post", "duty", "长" * 201, "at most 200"),
    ],
)
def test_bad_ticks_are_refused(r: redis.Redis, item: str, by: str, note: str, msg: str) -> None:
    # No switch yet: the city's default daily checklist is ticked.
    with pytest.raises(ChecklistError, match=msg):
        tick(r, "4101", item, by, note=note)
    assert not any(i["done"] for i in checklist(r, "4101"))
