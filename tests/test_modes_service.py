"""Operating modes on the real Redis: inheritance down the tree, refusals, the switch log."""

from __future__ import annotations

import json

import pytest
import redis

from core.keys import keys
from core.models import Mode
from modes.config import load_modes, modes_config
from modes.service import ModeError, get_mode, mode_history, set_mode


def test_modes_file_holds_the_four_modes_with_chinese_labels() -> None:
    cfg = load_modes()
    assert set(cfg.modes) == set(Mode)
    assert cfg.modes[Mode.EMERGENCY].label.zh == "应急"
    assert cfg.modes[Mode.HOLIDAY].label.zh == "重要节假日"
    assert cfg.modes[Mode.MAJOR_TASK].label.zh == "重大任务"
    assert cfg.modes[Mode.DAILY].label.zh == "日常"
    for m in cfg.modes.values():
        assert m.checklist["zh"] and m.checklist["en"]
    # Heightened modes must tighten limits and shorten time limits.
    assert cfg.modes[Mode.EMERGENCY].alarm_factor < cfg.modes[Mode.DAILY].alarm_factor
    assert cfg.modes[Mode.EMERGENCY].time_limit_factor < 1


def test_modes_file_missing_a_mode_is_refused(tmp_path) -> None:
    text = modes_config().model_dump_json()  # a valid body to cut from
    data = json.loads(text)
    del data["modes"]["holiday"]
    p = tmp_path / "modes.yaml"
    p.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="holiday"):
        load_modes(p)


def test_default_is_daily_and_nearest_ancestor_wins(r: redis.Redis) -> None:
    assert get_mode(r, "410105016").mode == Mode.DAILY
    set_mode(r, "410105", "emergency", "暴雨红色预警", by="duty-zhang")
    township = get_mode(r, "410105016003")
    assert township.mode == Mode.EMERGENCY
    assert township.code == "410105" and township.inherited
    assert township.label_zh == "应急" and township.reason == "暴雨红色预警"
    # A sibling district and the city are untouched.
    assert get_mode(r, "410102001").mode == Mode.DAILY
    assert get_mode(r, "4101").mode == Mode.DAILY
    # A nearer node's own mode overrides its ancestor's.
    set_mode(r, "410105016", Mode.DAILY, "本街道不受影响", by="duty-li")
    assert get_mode(r, "410105016003").mode == Mode.DAILY
    assert get_mode(r, "410105001").mode == Mode.EMERGENCY


@pytest.mark.parametrize(
    ("code", "mode", "reason", "by", "msg"),
    [
        ("4101", "emergency", "", "duty", "reason"),
        ("4101", "emergency", "   ", "duty", "reason"),
        ("4101", "panic", "测试", "duty", "unknown mode"),
        # Found by a user: a 5,000-character reason grew every screen's header.
        ("4101", "holiday", "长" * 201, "duty", "at most 200"),
        ("4101", "emergency", "测试", "", "who"),
        ("12345", "emergency", "测试", "duty", "not a code"),
        ("110105", "emergency", "测试", "duty", "outside the city"),
    ],
)
def test_set_mode_refuses_bad_input(
    r: redis.Redis, code: str, mode: str, reason: str, by: str, msg: str
) -> None:
    with pytest.raises(ModeError, match=msg):
        set_mode(r, code, mode, reason, by)
    assert r.hlen(keys().modes) == 0
    assert r.xlen(keys().mode_log) == 0


def test_every_switch_is_logged_and_pushed(r: redis.Redis) -> None:
    ps = r.pubsub()
    ps.subscribe(keys().push_channel)
    ps.get_message(timeout=1)
    set_mode(r, "4101", "holiday", "国庆假期", by="duty-wang")
    set_mode(r, "4101", "major_task", "重大活动保障", by="duty-zhao")
    set_mode(r, "410102", "emergency", "燃气泄漏", by="duty-zhao")
    log = mode_history(r, limit=10)
    assert [(e["code"], e["mode"], e["by"]) for e in log] == [
        ("410102", "emergency", "duty-zhao"),
        ("4101", "major_task", "duty-zhao"),
        ("4101", "holiday", "duty-wang"),
    ]
    assert log[1]["previous"] == "holiday" and log[1]["reason"] == "重大活动保障"
    assert all(e["ts_ms"] > 0 for e in log)
    assert len(mode_history(r, limit=2)) == 2
    pushed = []
    for _ in range(3):
        msg = ps.get_message(timeout=2)
        assert msg is not None
        pushed.append(json.loads(msg["data"]))
    assert [p["topic"] for p in pushed] == ["mode"] * 3
    assert pushed[2] == {"topic": "mode", "code": "410102", "mode": "emergency"}
    ps.close()
