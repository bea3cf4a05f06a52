"""Payload profiles against the real payloads in data/source/mqtt and against bad input."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from core.timeutil import SHANGHAI
from devices.catalogue import catalogue
from devices.profiles import DecodeError, Profile, convert_unit, decode, non_reading_kind, profiles
from devices.registry import Device
from ingest.simulator import PLAN, encode

MQTT_DIR = Path(__file__).resolve().parent.parent / "data" / "source" / "mqtt"
MANIFEST = [json.loads(line) for line in (MQTT_DIR / "_manifest.jsonl").read_text().splitlines()]
NOW = 1_764_750_000_000  # 2025-12-03T08:20:00Z


def _topic(entry: dict[str, str]) -> str:
    return entry["topic"].split(" (")[0]


def _generic_profile(name: str) -> str:
    return {"z2m": "z2m", "tas": "tasmota", "sen": "senml", "ha_": "ha_state"}[name[:3]]


def _prof(**kw: object) -> Profile:
    return Profile.model_validate({"topic": "x/{name}", **kw})


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_every_shared_payload_is_a_reading_or_classified(entry: dict[str, str]) -> None:
    payload = (MQTT_DIR / entry["file"]).read_bytes()
    assert len(payload) == entry["bytes"]
    kind = non_reading_kind(_topic(entry))
    if "bridge" in entry["file"] or "_config" in entry["file"]:
        assert kind in ("bridge", "discovery"), _topic(entry)
        return
    assert kind is None
    prof = profiles().get(_generic_profile(entry["file"]))
    if "negative" in entry["file"]:
        with pytest.raises(DecodeError) as err:
            decode(prof, payload, NOW)
        assert err.value.reason == "bad_senml" and "room1/ temp" in err.value.detail
        return
    msg = decode(prof, payload, NOW)
    assert msg.metrics, entry["file"]
    source = json.loads(payload)
    # Every number the device sent under a plain key comes back unchanged.
    if isinstance(source, dict) and entry["file"].startswith(("z2m", "ha_")):
        for k, v in source.items():
            if (
                isinstance(v, int | float)
                and not isinstance(v, bool)
                and k not in ("battery", "linkquality")
            ):
                assert msg.metrics[k] == v


def test_zigbee2mqtt_battery_and_linkquality() -> None:
    payload = (MQTT_DIR / "z2m_aqara_weather_state_captured.json").read_bytes()
    msg = decode(profiles().get("z2m"), payload, NOW)
    assert (msg.battery, msg.signal, msg.ts_ms) == (100, 152, NOW)
    assert msg.metrics["temperature"] == 20.74 and "battery" not in msg.metrics


def test_tasmota_local_time_and_nested_sensor_to_catalogue_metric() -> None:
    payload = (MQTT_DIR / "tasmota_si7021_sensor_captured.json").read_bytes()
    msg = decode(profiles().get("heating_tasmota"), payload, NOW)
    assert msg.metrics == {"supply_temp_c": 5.4}
    expected = datetime(2019, 1, 10, 22, 15, 52, tzinfo=SHANGHAI).timestamp() * 1000
    assert msg.ts_ms == expected


def test_tasmota_fahrenheit_is_converted() -> None:
    payload = b'{"Time":"2025-12-03T16:00:00","DS18B20":{"Temperature":194.0},"TempUnit":"F"}'
    msg = decode(profiles().get("heating_tasmota"), payload, NOW)
    assert msg.metrics["supply_temp_c"] == pytest.approx(90.0)


def test_tasmota_statussns_wrapper_and_ble_battery() -> None:
    sns = decode(
        profiles().get("tasmota"),
        (MQTT_DIR / "tasmota_pms5003_htu21_statussns.json").read_bytes(),
        NOW,
    )
    assert sns.metrics["HTU21.Temperature"] == 24.7 and sns.metrics["PMS5003.PM2.5"] == 2
    ble = decode(
        profiles().get("tasmota"), (MQTT_DIR / "tasmota_ble_multi_sensor.json").read_bytes(), NOW
    )
    assert ble.battery == 100 and ble.metrics["MJ_HT_V1-d8799d.Humidity"] == 54.6


def test_senml_base_name_time_and_samples() -> None:
    payload = (MQTT_DIR / "senml_room1_temp_pack.json").read_bytes()
    msg = decode(_prof(format="senml", fields={"room1/temp": "temp"}), payload, NOW)
    assert msg.samples == [(1276020076000, {"temp": 23.5}), (1276020091000, {"temp": 23.6})]
    assert msg.metrics == {"temp": 23.6} and msg.ts_ms == 1276020091000


def test_senml_relative_times_and_booleans() -> None:
    payload = (MQTT_DIR / "senml_all_fields_pack.json").read_bytes()
    msg = decode(profiles().get("senml"), payload, NOW)
    assert dict(msg.samples)[NOW - 46670] == {"temp": 22.1}
    assert dict(msg.samples)[NOW - 45670] == {"ok": 1.0}


def test_senml_track_with_battery_and_base_unit() -> None:
    payload = (MQTT_DIR / "senml_rfc8428_multiple_measurements_latlon.json").read_bytes()
    msg = decode(profiles().get("senml"), payload, NOW)
    assert msg.battery == 98
    first = 1_320_067_464_000
    assert dict(msg.samples)[first]["urn:dev:ow:10e2073a01080063"] == 20
    assert dict(msg.samples)[first + 180_000]["lat"] == 60.07967


def test_senml_full_name_matches() -> None:
    payload = (MQTT_DIR / "senml_rfc8428_multiple_datapoints.json").read_bytes()
    prof = _prof(format="senml", fields={"urn:dev:ow:10e2073a01080063:voltage": "v"})
    assert decode(prof, payload, NOW).metrics == {"v": 120.1}


def test_json_map_nested_path_scale_offset_unit() -> None:
    prof = _prof(
        format="json_map",
        device_type="drainage_level",
        ts_field="data.time",
        battery_field="dev.bat",
        fields={"data.depth": {"metric": "ponding_cm", "scale": 2, "offset": 10, "unit": "mm"}},
    )
    payload = json.dumps(
        {"data": {"depth": 50, "time": (NOW - 5000) // 1000}, "dev": {"bat": 77}}
    ).encode()
    msg = decode(prof, payload, NOW)
    assert msg.metrics == {"ponding_cm": pytest.approx(11.0)}  # (50*2+10) mm
    assert msg.ts_ms == NOW - 5000 and msg.battery == 77


def test_plain_number() -> None:
    prof = profiles().get("water_plain")
    assert decode(prof, b" 0.31\n", NOW).metrics == {"pressure_mpa": 0.31}
    for bad, reason in ((b"nan", "not_finite"), (b"inf", "not_finite"), (b"high", "bad_value")):
        with pytest.raises(DecodeError) as err:
            decode(prof, bad, NOW)
        assert err.value.reason == reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"gas_value": 3', "bad_json"),
        (b"online", "bad_json"),
        (b"[1, 2]", "bad_shape"),
        ('{"gas_value": 3, "位置": "郑州"}'.encode("gbk"), "bad_encoding"),
        (b'{"gas_value": 3, "x": "\xff"}', "bad_encoding"),
        (b'{"gas_value": NaN}', "not_finite"),
        (b'{"gas_value": Infinity}', "not_finite"),
        (b'{"gas_value": -Infinity}', "not_finite"),
        (b'{"gas_value": 1e999}', "not_finite"),
        (b'{"gas_value": 3, "last_seen": 1999999999999}', "bad_timestamp"),
        (b'{"gas_value": 3, "last_seen": 900000000}', "bad_timestamp"),
        (b'{"gas_value": 3, "last_seen": "yesterday"}', "bad_timestamp"),
        (b'{"temperature_x": 3}', "no_metrics"),
        (b'{"gas_value": 150}', "out_of_range"),
        (b'{"gas_value": -1}', "out_of_range"),
        (b'{"gas_value": "lots"}', "bad_value"),
    ],
)
def test_bad_payloads_have_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode(profiles().get("gas_z2m"), payload, NOW)
    assert err.value.reason == reason, err.value


def test_gbk_is_named_in_the_detail() -> None:
    with pytest.raises(DecodeError) as err:
        decode(profiles().get("gas_z2m"), '{"gas_value": 3, "位置": "郑州"}'.encode("gbk"), NOW)
    assert "GBK" in err.value.detail


def test_too_large() -> None:
    payload = json.dumps({"gas_value": 3, "pad": "x" * 70_000}).encode()
    with pytest.raises(DecodeError) as err:
        decode(profiles().get("gas_z2m"), payload, NOW)
    assert err.value.reason == "too_large"


@pytest.mark.parametrize("scale", [1, 1000, 1_000_000])
def test_seconds_milliseconds_microseconds(scale: int) -> None:
    ts_s = (NOW - 60_000) // 1000
    payload = json.dumps({"gas_value": 4, "last_seen": ts_s * scale}).encode()
    assert decode(profiles().get("gas_z2m"), payload, NOW).ts_ms == ts_s * 1000


def test_unit_conversions() -> None:
    assert convert_unit(350_000, "Pa", "MPa") == pytest.approx(0.35)
    assert convert_unit(5000, "ppm", "%LEL") == pytest.approx(10)
    assert convert_unit(300, "K", "°C") == pytest.approx(26.85)
    assert convert_unit(1.2e-4, "/", "με") == pytest.approx(120)
    with pytest.raises(DecodeError) as err:
        convert_unit(1, "kPa", "cm")
    assert err.value.reason == "bad_unit"


@pytest.mark.parametrize(("type_key", "profile"), PLAN)
def test_simulated_payloads_decode_back(type_key: str, profile: str) -> None:
    dtype = catalogue().get(type_key)
    dev = Device(id="d1", type=type_key, profile=profile, lon=113.6, lat=34.7)
    metrics = {k: round(sum(m.normal) / 2 + 0.123, 3) for k, m in dtype.metrics.items()}
    if profile == "water_plain":
        metrics = {"pressure_mpa": 0.3}
    ts = (NOW // 1000) * 1000  # Tasmota reports whole seconds
    msg = decode(profiles().get(profile), encode(dev, metrics, ts, battery=80, signal=100), NOW)
    assert msg.ts_ms == ts
    assert msg.metrics == pytest.approx(metrics, rel=1e-6, abs=1e-6)
