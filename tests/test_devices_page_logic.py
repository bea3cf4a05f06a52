"""The device page's actions against the real Redis: register, refusals, import, unknown, retire."""

from __future__ import annotations

import base64
import json

import pytest
import redis

from access.scope import Scope, demo_scope
from core.keys import keys
from core.timeutil import now_ms
from dashboard.pages import devices_logic as logic
from devices.catalogue import catalogue
from devices.profiles import decode, profiles
from devices.registry import DeviceStatus, get_device
from grids.coords import wgs84_to_gcj02
from i18n import t
from ingest.mqtt_ingest import _UNKNOWN_LUA

ZH = "zh-CN"
JINSHUI = (113.6835, 34.7740)  # 金水区, near 花园路
BEIJING = (116.397, 39.909)


def _form(**kw: str) -> dict[str, str]:
    base = {
        "id": "gas-page-1",
        "name": "花园路燃气井",
        "type": "gas",
        "profile": "gas_tasmota",
        "lon": str(JINSHUI[0]),
        "lat": str(JINSHUI[1]),
        "crs": "wgs84",
        "topic": "",
    }
    return {**base, **kw}


def _count(r: redis.Redis) -> int:
    return int(r.scard(keys().devices))  # type: ignore[arg-type]


def test_register_shows_topic_with_root_payload_and_waiting_state(
    r: redis.Redis, gridcc_env: dict[str, str]
) -> None:
    out = logic.register_from_form(r, _form(), ZH)
    assert out.ok, out.errors
    assert out.topic == gridcc_env["MQTT_ROOT"] + "tele/gas-page-1/SENSOR"
    assert out.status == "等待首条数据"
    assert out.payload_format == "tasmota"
    # The example payload is one the device's own profile decodes, inside the normal range.
    prof = profiles().get("gas_tasmota")
    msg = decode(prof, out.payload.encode(), now_ms())
    normal = catalogue().get("gas").metrics["ch4_lel"].normal
    assert normal[0] <= msg.metrics["ch4_lel"] <= normal[1]
    dev = get_device(r, "gas-page-1")
    assert dev is not None and dev.status == DeviceStatus.REGISTERED
    assert dev.place is not None and dev.place.county == "410105" and dev.place.grid
    rows = logic.health_table(r, demo_scope(), ZH)
    assert [(x["id"], x["status"], x["type"]) for x in rows] == [
        ("gas-page-1", "等待首条数据", "可燃气体监测")
    ]
    assert rows[0]["grid"] == dev.place.grid


def test_gcj02_point_is_converted_before_it_is_stored(r: redis.Redis) -> None:
    glon, glat = wgs84_to_gcj02(*JINSHUI)
    out = logic.register_from_form(r, _form(lon=f"{glon}", lat=f"{glat}", crs="gcj02"), ZH)
    assert out.ok, out.errors
    dev = get_device(r, "gas-page-1")
    assert dev is not None
    assert abs(dev.lon - JINSHUI[0]) < 1e-5 and abs(dev.lat - JINSHUI[1]) < 1e-5
    # The same numbers taken as WGS84 would sit some hundreds of metres away.
    assert abs(glon - JINSHUI[0]) > 1e-3


@pytest.mark.parametrize(
    ("form", "field", "label"),
    [
        ({"id": ""}, "id", "devices.required"),
        ({"type": ""}, "type", "devices.required"),
        ({"profile": ""}, "profile", "devices.required"),
        ({"id": "燃气/1"}, "id", "devices.err.id"),
        ({"lon": "东经113"}, "lon", "devices.err.number"),
        ({"lon": "nan"}, "lon", "devices.err.number"),
        ({"lat": "134.7"}, "lat", "devices.err.lat_range"),
        ({"crs": "bd09"}, "crs", "devices.err.crs"),
        ({"lon": str(BEIJING[0]), "lat": str(BEIJING[1])}, "lon", "devices.err.outside"),
        # lon/lat swapped: 113.68 is no latitude.
        ({"lon": str(JINSHUI[1]), "lat": str(JINSHUI[0])}, "lat", "devices.err.lat_range"),
        ({"profile": "water_senml"}, "profile", "devices.err.profile_type"),
        ({"topic": "tele/+/SENSOR"}, "topic", "devices.err.topic"),
    ],
)
def test_each_refusal_names_its_field_and_stores_nothing(
    r: redis.Redis, form: dict[str, str], field: str, label: str
) -> None:
    out = logic.register_from_form(r, _form(**form), ZH)
    assert not out.ok
    assert out.errors[field].startswith(t(label, ZH)), out.errors
    assert out.message
    assert _count(r) == 0


def test_duplicate_id_and_duplicate_topic_are_refused(r: redis.Redis) -> None:
    assert logic.register_from_form(r, _form(), ZH).ok
    again = logic.register_from_form(r, _form(name="另一个"), ZH)
    assert not again.ok
    assert again.errors["id"].startswith(t("devices.err.duplicate_id", ZH))
    assert "already registered" in again.errors["id"]  # the registry's own words are kept
    taken = logic.register_from_form(r, _form(id="gas-page-2", topic="tele/gas-page-1/SENSOR"), ZH)
    assert not taken.ok
    assert taken.errors["topic"].startswith(t("devices.err.duplicate_topic", ZH))
    assert "gas-page-1" in taken.errors["topic"]
    assert _count(r) == 1


def test_profiles_offered_for_a_type_decode_that_type() -> None:
    opts = [o["value"] for o in logic.profile_options("gas")]
    assert "gas_tasmota" in opts and "gas_z2m" in opts
    assert "water_senml" not in opts
    assert logic.profile_options(None) == []
    types = {o["value"]: o["label"] for o in logic.type_options(ZH)}
    assert types["gas"].startswith("可燃气体监测")


def _upload(text: str, encoding: str = "utf-8") -> str:
    return "data:text/csv;base64," + base64.b64encode(text.encode(encoding)).decode()


CSV = (
    "id,name,type,profile,lon,lat\n"
    f"gas-csv-1,井一,gas,gas_z2m,{JINSHUI[0]},{JINSHUI[1]}\n"
    f"gas-csv-2,井二,gas,water_senml,{JINSHUI[0]},{JINSHUI[1]}\n"
    f"gas-csv-3,井三,gas,gas_z2m,{BEIJING[0]},{BEIJING[1]}\n"
    f"gas-csv-1,井一重复,gas,gas_z2m,{JINSHUI[0]},{JINSHUI[1]}\n"
    f"gas-csv-5,井五,gas,gas_z2m,abc,{JINSHUI[1]}\n"
)


def test_import_dry_run_reports_every_bad_row_and_stores_nothing(r: redis.Redis) -> None:
    out = logic.import_check(r, _upload(CSV), "devices.csv", ZH)
    assert out.ok and out.bad_rows == 4
    got = {(x["row"], x["column"]) for x in out.report}
    assert {(3, "profile"), (4, "lon"), (5, "id"), (6, "lon")} <= got
    assert "outside the city" in next(x["reason"] for x in out.report if x["row"] == 4)
    assert out.message == t("devices.import.summary", ZH).format(rows=5, good=1, bad=4)
    assert _count(r) == 0

    blocked = logic.import_store(r, out.rows, False, ZH)
    assert not blocked.ok and blocked.message == t("devices.import.blocked", ZH)
    assert _count(r) == 0

    stored = logic.import_store(r, out.rows, True, ZH)
    assert stored.ok and stored.stored == ["gas-csv-1"]
    assert get_device(r, "gas-csv-1") is not None and _count(r) == 1


def test_import_of_unreadable_files_says_why(r: redis.Redis) -> None:
    gbk = logic.import_check(r, _upload(CSV, "gbk"), "devices.csv", ZH)
    assert not gbk.ok and "UTF-8" in gbk.message and "GBK" in gbk.message
    junk = logic.import_check(r, "data:text/csv;base64,@@@", "devices.csv", ZH)
    assert not junk.ok and "base64" in junk.message
    pdf = logic.import_check(r, _upload("x"), "devices.pdf", ZH)
    assert not pdf.ok and pdf.message.startswith(t("devices.import.bad_file", ZH))
    empty = logic.import_check(r, _upload("id,type\n"), "devices.csv", ZH)
    assert not empty.ok and empty.message == t("devices.import.empty", ZH)


def _seen_unknown(r: redis.Redis, topic: str, times: int = 1) -> None:
    """What ingest does for a message on a topic nobody owns (its own script)."""
    script = r.register_script(_UNKNOWN_LUA)
    for i in range(times):
        script(keys=[keys().unknown_devices], args=[topic, now_ms() + i])


def test_unknown_topic_claimed_into_the_form_and_registered(r: redis.Redis) -> None:
    _seen_unknown(r, "zigbee2mqtt/0x00158d0001a2b3c4", times=3)
    rows = logic.unknown_table(r, demo_scope())
    assert [(x["topic"], x["count"]) for x in rows] == [("zigbee2mqtt/0x00158d0001a2b3c4", 3)]
    assert rows[0]["first_seen"].endswith("+08:00")
    pre = logic.claim_prefill("zigbee2mqtt/0x00158d0001a2b3c4")
    assert pre["id"] == "0x00158d0001a2b3c4" and pre["profile"] == "z2m"
    assert pre["topic"] == "zigbee2mqtt/0x00158d0001a2b3c4"
    out = logic.register_from_form(
        r, _form(id=pre["id"], profile=pre["profile"], topic=pre["topic"]), ZH
    )
    assert out.ok, out.errors
    assert logic.unknown_table(r, demo_scope()) == []


def test_block_hides_an_unknown_topic_but_not_a_registered_one(r: redis.Redis) -> None:
    _seen_unknown(r, "tele/stranger/SENSOR")
    ok, msg = logic.block_topic(r, "tele/stranger/SENSOR", ZH)
    assert ok and "tele/stranger/SENSOR" in msg
    assert logic.unknown_table(r, demo_scope()) == []
    assert logic.block_topic(r, None, ZH) == (False, t("devices.unknown.need_row", ZH))
    assert logic.register_from_form(r, _form(), ZH).ok
    ok, msg = logic.block_topic(r, "tele/gas-page-1/SENSOR", ZH)
    assert not ok and "decommission" in msg


def test_decommission_needs_a_reason_and_shows_retired(r: redis.Redis) -> None:
    assert logic.register_from_form(r, _form(), ZH).ok
    scope = demo_scope()
    assert logic.decommission_device(r, scope, "gas-page-1", " ", ZH) == (
        False,
        t("devices.decommission.need_reason", ZH),
    )
    assert not logic.decommission_device(r, scope, None, "坏了", ZH)[0]
    ok, _ = logic.decommission_device(r, scope, "gas-page-1", "井盖改造，设备拆除", ZH)
    assert ok
    assert logic.health_table(r, scope, ZH)[0]["status"] == "已退役"
    dev = get_device(r, "gas-page-1")
    assert dev is not None and dev.decommissioned_by == "demo"
    again = logic.decommission_device(r, scope, "gas-page-1", "再退一次", ZH)
    assert not again[0] and "already decommissioned" in again[1]


def test_a_district_screen_sees_only_its_own_devices(r: redis.Redis) -> None:
    assert logic.register_from_form(r, _form(), ZH).ok
    _seen_unknown(r, "tele/stranger/SENSOR")
    jinshui = Scope(user="jinshui", jurisdiction="410105", role="county_commander")
    zhongyuan = Scope(user="zhongyuan", jurisdiction="410102", role="county_commander")
    assert [x["id"] for x in logic.health_table(r, jinshui, ZH)] == ["gas-page-1"]
    assert logic.health_table(r, zhongyuan, ZH) == []
    # Unknown topics have no place: only the city level sees them.
    assert logic.unknown_table(r, jinshui) == []
    assert len(logic.unknown_table(r, demo_scope())) == 1


def test_health_row_shows_shanghai_time_after_a_reading(r: redis.Redis) -> None:
    from core.models import Reading
    from devices.health import record_reading

    assert logic.register_from_form(r, _form(), ZH).ok
    ts = now_ms()
    reading = Reading(
        device_id="gas-page-1",
        ts_ms=ts,
        received_ms=ts,
        metrics={"ch4_lel": 1.0},
        msg_id=f"gas-page-1-{ts}",
        topic="tele/gas-page-1/SENSOR",
    )
    record_reading(r, reading)
    r.hset(keys().device_state("gas-page-1"), mapping={"last_seen_ms": ts, "battery": 88})
    row = logic.health_table(r, demo_scope(), ZH)[0]
    assert row["status"] == "已校验"
    assert row["last_seen"].endswith("+08:00") and row["battery"] == 88.0
    json.dumps(row)  # the table's data must be plain JSON
