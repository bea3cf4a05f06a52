"""Minimum duration, rate of change and offline rules, with explicit timestamps, on the real Redis."""

from __future__ import annotations

import pytest
import redis

from alarms.rules import Decision, RateRule, Threshold, decide_rate, hold
from alarms.service import (
    DeviceInfo,
    catalogue_rates,
    catalogue_thresholds,
    get_alarm,
    process_reading,
)
from alarms.worker import handle
from core.keys import keys
from core.models import Alarm, AlarmState, Reading, Severity
from core.timeutil import now_ms
from devices.health import on_last_will, on_reading, sweep_offline
from devices.registry import Device, DeviceStatus, get_device, register_device
from grids.locate import locator

R, OR, Y, B = Severity.RED, Severity.ORANGE, Severity.YELLOW, Severity.BLUE
MIN = 60_000
SLOW = Threshold(
    "ponding_cm", "high", {Y: 3, OR: 10, R: 25}, hysteresis=1, unit="cm", min_duration_s=120
)
JINSHUI = (113.6655, 34.7736)


@pytest.fixture
def t0() -> int:
    return now_ms() - 3_600_000


def _rd(device_id: str, ts: int, **metrics: float) -> Reading:
    return Reading(
        device_id=device_id,
        ts_ms=ts,
        received_ms=ts + 5,
        metrics=metrics,
        msg_id=f"{device_id}:{ts}",
        topic="t",
    )


def _dev(device_id: str, dtype: str) -> DeviceInfo:
    return DeviceInfo(id=device_id, name=device_id, type=dtype, place=locator().locate(*JINSHUI))


def _open(r: redis.Redis) -> list[Alarm]:
    ids = [i.decode() for i in r.zrange(keys().alarms_open, 0, -1)]
    return [a for a in (get_alarm(r, i) for i in ids) if a is not None]


# --- pure rules ----------------------------------------------------------------------------


def test_hold_waits_for_the_minimum_duration_and_resets() -> None:
    raise_ = Decision("raise", Y)
    d, since = hold(raise_, 1_000, None, 60)
    assert d.action == "pending" and since == 1_000
    d, since = hold(raise_, 60_999, 1_000, 60)
    assert d.action == "pending" and since == 1_000
    d, since = hold(raise_, 61_000, 1_000, 60)
    assert d == raise_ and since is None
    assert hold(Decision("none"), 30_000, 1_000, 60) == (Decision("none"), None)
    assert hold(raise_, 5, None, 0) == (raise_, None)  # 0: at once, as before


def test_rate_rule_per_minute_direction_and_gaps() -> None:
    rr = RateRule("ch4_lel", {Y: 5, OR: 10}, max_gap_s=600)
    assert rr.rule == "rate:ch4_lel"
    assert rr.per_min(1, 0, 7, 60_000) == pytest.approx(6)
    assert rr.per_min(1, 0, 7, 700_000) is None  # over a silence: no rate
    assert rr.per_min(1, 10, 7, 10) is None
    assert rr.crossed(6) == Y and rr.crossed(12) == OR and rr.crossed(-12) is None
    assert RateRule("p", {Y: 0.1}, direction="fall").crossed(-0.2) == Y
    assert RateRule("p", {Y: 0.1}, direction="both").crossed(-0.2) == Y
    with pytest.raises(ValueError, match="out of order"):
        RateRule("x", {Y: 10, OR: 5})
    with pytest.raises(ValueError, match="rise, fall or both"):
        RateRule("x", {Y: 1}, direction="up")  # type: ignore[arg-type]


def test_rate_alarm_clears_only_after_a_quiet_period() -> None:
    rr = RateRule("ch4_lel", {Y: 5}, clear_after_s=300)
    assert decide_rate(rr, -8, 100 * MIN, 99 * MIN, Y).action == "update"  # fluctuating
    assert decide_rate(rr, 0.1, 103 * MIN, 99 * MIN, Y).action == "update"
    assert decide_rate(rr, 0.1, 103 * MIN, 99 * MIN, Y).severity == Y
    assert decide_rate(rr, 0.1, 105 * MIN, 99 * MIN, Y).action == "clear"
    assert decide_rate(rr, 2, 105 * MIN, None, None).action == "none"
    assert decide_rate(rr, None, 105 * MIN, None, None).action == "none"
    assert decide_rate(rr, 12, 105 * MIN, None, None) == Decision("raise", Y)
    assert RateRule("ch4_lel", {Y: 5, OR: 10}).crossed(12) == OR


def test_catalogue_gives_durations_rates_and_offline_settings() -> None:
    from devices.catalogue import catalogue

    by_rule = {t.rule: t for t in catalogue_thresholds("drainage_level")}
    assert by_rule["threshold:ponding_cm"].min_duration_s == 240
    assert {t.min_duration_s for t in catalogue_thresholds("gas")} == {0}
    (gas_rate,) = catalogue_rates("gas")
    assert gas_rate.rule == "rate:ch4_lel" and gas_rate.direction == "rise"
    assert catalogue_rates("water_pressure")[0].direction == "fall"
    assert catalogue().get("gas").offline_severity == Y
    assert catalogue().get("bridge").offline_severity == B
    assert catalogue().get("gas").alarm_merge.radius_m == 150


# --- minimum duration on the real Redis ----------------------------------------------------


def test_crossing_alarms_only_after_staying_over_the_limit(r: redis.Redis, t0: int) -> None:
    dev = _dev("drain-1", "drainage_level")
    for dt, v in ((0, 12), (60_000, 14), (119_000, 11)):
        assert (
            process_reading(r, _rd(dev.id, t0 + dt, ponding_cm=v), device=dev, thresholds=[SLOW])
            == []
        )
    assert _open(r) == []
    (alarm,) = process_reading(
        r, _rd(dev.id, t0 + 120_000, ponding_cm=11), device=dev, thresholds=[SLOW]
    )
    assert alarm.rule == "threshold:ponding_cm" and alarm.severity == OR
    assert alarm.raised_ms == t0 + 120_000 and alarm.history[0]["over_since_ms"] == t0
    assert r.hget(keys().device_state(dev.id), "since:threshold:ponding_cm") is None


def test_a_reading_back_inside_restarts_the_wait(r: redis.Redis, t0: int) -> None:
    dev = _dev("drain-2", "drainage_level")
    for dt, v in ((0, 12), (100_000, 1), (110_000, 12), (200_000, 12)):
        process_reading(r, _rd(dev.id, t0 + dt, ponding_cm=v), device=dev, thresholds=[SLOW])
    assert _open(r) == []  # 90 s over since the dip, not 120
    process_reading(r, _rd(dev.id, t0 + 230_000, ponding_cm=12), device=dev, thresholds=[SLOW])
    (alarm,) = _open(r)
    assert alarm.history[0]["over_since_ms"] == t0 + 110_000


def test_catalogue_duration_applies_through_the_default_rules(r: redis.Redis, t0: int) -> None:
    dev = _dev("drain-3", "drainage_level")
    process_reading(r, _rd(dev.id, t0, ponding_cm=30), device=dev)
    process_reading(r, _rd(dev.id, t0 + 120_000, ponding_cm=30), device=dev)
    assert _open(r) == []  # the catalogue asks for 240 s
    process_reading(r, _rd(dev.id, t0 + 240_000, ponding_cm=30), device=dev)
    (alarm,) = _open(r)
    assert alarm.severity == R and alarm.order_id  # red opens its work order


# --- rate of change ------------------------------------------------------------------------


def test_sharp_rise_below_the_limits_raises_a_rate_alarm(r: redis.Redis, t0: int) -> None:
    dev = _dev("gas-rate-1", "gas")
    for dt, v in ((0, 1.0), (MIN, 4.0)):  # 3 %LEL/min: under the 5 %LEL/min rule
        assert process_reading(r, _rd(dev.id, t0 + dt, ch4_lel=v), device=dev) == []
    (alarm,) = process_reading(r, _rd(dev.id, t0 + 2 * MIN, ch4_lel=9.5), device=dev)
    assert alarm.rule == "rate:ch4_lel" and alarm.severity == Y
    assert alarm.value == pytest.approx(5.5) and alarm.unit == "%LEL/min"
    assert alarm.threshold == 5 and "上升过快" in alarm.title and alarm.order_id is None
    # A burst 5 s later is measured against the older reading, not 5 s back.
    assert process_reading(r, _rd(dev.id, t0 + 2 * MIN + 5_000, ch4_lel=9.9), device=dev) == []
    # Fluctuating (a fall) keeps it open; a faster rise escalates to orange with an order.
    process_reading(r, _rd(dev.id, t0 + 3 * MIN, ch4_lel=2.0), device=dev)
    (escalated,) = process_reading(r, _rd(dev.id, t0 + 210_000, ch4_lel=8.0), device=dev)
    assert escalated.id == alarm.id and escalated.severity == OR and escalated.order_id
    # Quiet for the clear_after_s of 300 s since the last crossing: cleared.
    process_reading(r, _rd(dev.id, t0 + 6 * MIN, ch4_lel=9.5), device=dev)
    assert [a.rule for a in _open(r)] == ["rate:ch4_lel"]
    (cleared,) = process_reading(r, _rd(dev.id, t0 + 9 * MIN, ch4_lel=9.4), device=dev)
    assert cleared.id == alarm.id and cleared.state == AlarmState.CLEARED
    assert _open(r) == []


def test_steady_biogas_rise_and_silences_raise_no_rate_alarm(r: redis.Redis, t0: int) -> None:
    dev = _dev("gas-rate-2", "gas")
    for i in range(8):  # 1 %LEL per minute: a steady seep
        process_reading(r, _rd(dev.id, t0 + i * MIN, ch4_lel=1.0 + i), device=dev)
    # 8 → 9 after eleven minutes of silence: the rate is not taken over the gap.
    process_reading(r, _rd(dev.id, t0 + 18 * MIN, ch4_lel=9.0), device=dev)
    assert _open(r) == []


def test_threshold_alarm_takes_precedence_over_the_rate_alarm(r: redis.Redis, t0: int) -> None:
    dev = _dev("gas-rate-3", "gas")
    process_reading(r, _rd(dev.id, t0, ch4_lel=1.0), device=dev)
    changed = process_reading(r, _rd(dev.id, t0 + MIN, ch4_lel=30.0), device=dev)
    assert [(a.rule, a.severity) for a in changed] == [("threshold:ch4_lel", OR)]
    assert r.zcard(keys().orders_all) == 1


# --- offline -------------------------------------------------------------------------------


def _live(r: redis.Redis, device_id: str, dtype: str, profile: str, t: int, **m: float) -> None:
    register_device(
        r,
        Device(id=device_id, type=dtype, profile=profile, lon=JINSHUI[0], lat=JINSHUI[1]),
    )
    on_reading(r, _rd(device_id, t, **m))
    on_reading(r, _rd(device_id, t + 1_000, **m))
    assert get_device(r, device_id).status == DeviceStatus.LIVE  # type: ignore[union-attr]
    r.hset(keys().device_state(device_id), "last_seen_ms", t + 1_000)


def test_silent_device_raises_one_offline_alarm_cleared_when_it_reports(
    r: redis.Redis, t0: int
) -> None:
    _live(r, "gas-off-1", "gas", "gas_z2m", t0, ch4_lel=1.0)
    assert sweep_offline(r, t0 + 1_000 + 3 * MIN + 1) == ["gas-off-1"]
    (alarm,) = _open(r)
    assert alarm.rule == "offline" and alarm.severity == Y and alarm.device_id == "gas-off-1"
    assert alarm.history[0]["reason"] == "silent" and alarm.value == pytest.approx(180.001)
    assert "离线" in alarm.title and alarm.order_id is None  # yellow opens no order
    assert r.hget(keys().device_state("gas-off-1"), "severity") == b"yellow"
    # The last will of a device already offline raises nothing more.
    assert on_last_will(r, "gas-off-1")
    assert len(_open(r)) == 1
    # The device reports again through the worker: back live, the alarm cleared.
    ts = now_ms()
    handle(
        r, keys().readings, "1-0", {b"data": _rd("gas-off-1", ts, ch4_lel=1.0).model_dump_json()}
    )
    assert get_device(r, "gas-off-1").status == DeviceStatus.LIVE  # type: ignore[union-attr]
    assert _open(r) == []
    cleared = get_alarm(r, alarm.id)
    assert cleared is not None and cleared.state == AlarmState.CLEARED
    assert cleared.history[-1]["note"] == "device reported again"
    assert r.hget(keys().device_state("gas-off-1"), "severity") == b""


def test_last_will_raises_the_offline_alarm_at_the_types_severity(r: redis.Redis, t0: int) -> None:
    _live(r, "wp-off-1", "water_pressure", "water_plain", t0, pressure_mpa=0.3)
    assert on_last_will(r, "wp-off-1", t0 + 5_000)
    (alarm,) = _open(r)
    assert alarm.rule == "offline" and alarm.severity == B
    assert alarm.history[0]["reason"] == "last_will" and "遗嘱" in alarm.title
