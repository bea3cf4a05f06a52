"""CSV import with a dry-run report, the device-team CLI, and unknown devices to claim or block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from core.keys import keys
from devices.__main__ import main as cli
from devices.onboarding import (
    block_unknown,
    claim_unknown,
    import_file,
    import_rows,
    is_blocked,
    list_unknown,
    parse_csv,
)
from devices.registry import Device, get_device, list_devices, register_device

GOOD = """id,name,type,profile,lon,lat
gas-a1,东风路燃气井,gas,gas_z2m,113.65,34.76
br-a2,北三环桥,bridge,bridge_senml,113.70,34.80
"""

BAD = """id,name,type,profile,lon,lat,topic
gas-b1,ok,gas,gas_z2m,113.65,34.76,
gas-b1,dup id,gas,gas_z2m,113.65,34.76,
gas-b3,unknown type,elevator,gas_z2m,113.65,34.76,
gas-b4,profile for another type,gas,bridge_senml,113.65,34.76,
gas-b5,swapped lon/lat,gas,gas_z2m,34.76,113.65,
gas-b6,not a number,gas,gas_z2m,abc,34.76,
gas-b7,outside city,gas,gas_z2m,116.40,39.90,
gas b8,bad id,gas,gas_z2m,113.65,34.76,
gas-b9,dup topic,gas,gas_z2m,113.65,34.76,zigbee2mqtt/gas-b1
"""


def test_good_file_dry_run_then_store(r: redis.Redis, tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())  # Excel's "CSV UTF-8" has a BOM
    rep = import_file(r, path)
    assert rep.ok and rep.dry_run and len(rep.good) == 2 and list_devices(r) == []
    rep = import_file(r, path, dry_run=False)
    assert rep.stored == ["gas-a1", "br-a2"]
    dev = get_device(r, "gas-a1")
    assert dev is not None and dev.name == "东风路燃气井" and dev.place and dev.place.grid
    again = import_file(r, path, dry_run=False)
    assert {(e.row, e.column) for e in again.errors} == {(2, "id"), (3, "id")}


def test_every_bad_row_reported_and_nothing_stored(r: redis.Redis) -> None:
    rep = import_rows(r, parse_csv(BAD), dry_run=False)
    got = {(e.row, e.column): e.reason for e in rep.errors}
    assert set(got) == {
        (3, "id"),
        (3, "topic"),
        (4, "type"),
        (5, "profile"),
        (6, "lat"),
        (7, "lon"),
        (8, "lon"),
        (9, "id"),
        (10, "topic"),
    }
    assert "duplicate of row 2" in got[(3, "id")]
    assert "unknown device type 'elevator'" in got[(4, "type")]
    assert "outside the city" in got[(8, "lon")]
    assert "duplicates row 2" in got[(10, "topic")]
    assert rep.stored == [] and list_devices(r) == []
    rep = import_rows(r, parse_csv(BAD), dry_run=False, store_good=True)
    assert rep.stored == ["gas-b1"] and [d.id for d in list_devices(r)] == ["gas-b1"]


def test_excel_sheet_imports_like_csv(r: redis.Redis, tmp_path: Path) -> None:
    import pandas as pd

    rows = parse_csv(BAD)
    path = tmp_path / "设备.xlsx"
    pd.DataFrame(rows).to_excel(path, index=False)
    rep = import_file(r, path, dry_run=True)
    assert not rep.ok and rep.stored == []
    assert "outside the city" in {(e.row, e.column): e.reason for e in rep.errors}[(8, "lon")]
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="broken.xlsx"):
        import_file(r, broken)


def test_cli_register_import_list_decommission(
    r: redis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli(
            [
                "register",
                "gas-c1",
                "--type",
                "gas",
                "--profile",
                "gas_z2m",
                "--lon",
                "113.65",
                "--lat",
                "34.76",
            ]
        )
        == 0
    )
    assert "waiting for its first message" in capsys.readouterr().out
    assert (
        cli(
            [
                "register",
                "gas-c1",
                "--type",
                "gas",
                "--profile",
                "gas_z2m",
                "--lon",
                "113.65",
                "--lat",
                "34.76",
            ]
        )
        == 2
    )
    assert "already registered" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD, encoding="utf-8")
    assert cli(["import", str(bad), "--store"]) == 2
    out = capsys.readouterr().out
    assert "row 4, type: unknown device type" in out and "0 stored" in out
    assert cli(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(x["id"], x["status"]) for x in rows] == [("gas-c1", "registered")]
    assert cli(["decommission", "gas-c1", "--by", "李工", "--reason", "更换"]) == 0
    assert get_device(r, "gas-c1").status == "decommissioned"  # type: ignore[union-attr]
    assert cli(["credentials", "gas-c1"]) == 2
    assert "decommissioned" in capsys.readouterr().err


def test_unknown_devices_claim_and_block(r: redis.Redis) -> None:
    k = keys()
    r.hset(
        k.unknown_devices,
        "zigbee2mqtt/stray-1",
        json.dumps({"count": 3, "first_ms": 1, "last_ms": 5}),
    )
    r.hset(
        k.unknown_devices,
        "zigbee2mqtt/stray-2",
        json.dumps({"count": 1, "first_ms": 2, "last_ms": 9}),
    )
    assert [u["topic"] for u in list_unknown(r)] == ["zigbee2mqtt/stray-2", "zigbee2mqtt/stray-1"]
    block_unknown(r, "zigbee2mqtt/stray-2")
    assert is_blocked(r, "zigbee2mqtt/stray-2")
    assert [u["topic"] for u in list_unknown(r)] == ["zigbee2mqtt/stray-1"]
    assert len(list_unknown(r, include_blocked=True)) == 2
    dev = claim_unknown(
        r,
        "zigbee2mqtt/stray-1",
        Device(id="gas-s1", type="gas", profile="gas_z2m", lon=113.65, lat=34.76),
    )
    assert dev.topic == "zigbee2mqtt/stray-1" and list_unknown(r) == []
    register_device(r, Device(id="gas-s2", type="gas", profile="gas_z2m", lon=113.65, lat=34.76))
    with pytest.raises(ValueError, match="registered device"):
        block_unknown(r, "zigbee2mqtt/gas-s2")
