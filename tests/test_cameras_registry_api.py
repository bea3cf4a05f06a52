"""Camera onboarding through the device path: registry, API and CLI on the real Redis.

The source's credentials are stored for camera ingest but never answered, logged, kept
in a dead letter or put in the status hash.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from core.keys import keys
from devices import __main__ as cli
from devices.api import devices_api_bp
from devices.cameras import active_configs
from grids.coords import gcj02_to_wgs84

URL = "/api/v1/cameras"
SECRET = "Tr0ub4dor&3"
CLIP = "data/source/video/car-detection_intel.mp4"


@pytest.fixture
def client(gridcc_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> FlaskClient:
    caplog.set_level(logging.DEBUG)
    app = Flask("cameras-api-test")
    app.register_blueprint(devices_api_bp)
    return app.test_client()


def body(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "cam-gate-1",
        "name": "东门出入口",
        "source": "rtsp://10.20.30.40:554/Streaming/Channels/101",
        "username": "admin",
        "password": SECRET,
        "transport": "udp",
        "lon": 113.6254,
        "lat": 34.7466,
        "direction_deg": 90,
        "fov_deg": 75,
        "frame_age_limit_s": 4,
    }
    base.update(kw)
    return base


def everything_stored(r: redis.Redis) -> bytes:
    """Every value under this test's prefix except the one hash that must hold the source."""
    out = b""
    prefix = keys().prefix
    for key in r.scan_iter(match=f"{prefix}:*"):
        if key.decode() == keys().camera_sources:
            continue
        kind = r.type(key)
        if kind == b"hash":
            out += b"".join(k + v for k, v in r.hgetall(key).items())
        elif kind == b"stream":
            out += b"".join(b"".join(v for v in f.values()) for _, f in r.xrange(key))
        elif kind == b"string":
            out += r.get(key) or b""
        elif kind == b"set":
            out += b"".join(r.smembers(key))
    return out


def test_register_read_list_decommission(
    r: redis.Redis, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    resp = client.post(URL, json=body())
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Location"] == f"{URL}/cam-gate-1"
    cam = resp.get_json()
    assert cam["source"] == "rtsp://***@10.20.30.40:554/Streaming/Channels/101"
    assert cam["has_credentials"] is True
    assert cam["transport"] == "udp" and cam["status"] == "active"
    assert cam["direction_deg"] == 90 and cam["fov_deg"] == 75 and cam["frame_age_limit_s"] == 4
    # The point resolved to its grid through grids.locate: a 15-digit code of Zhengzhou.
    assert cam["place"]["inside_city"] and cam["grid"] == cam["place"]["grid"]
    assert len(cam["grid"]) == 15 and cam["grid"].startswith("4101")

    one = client.get(f"{URL}/cam-gate-1")
    assert one.status_code == 200 and one.get_json()["grid"] == cam["grid"]
    assert one.get_json()["live"] is None  # ingest has not seen it yet
    listed = client.get(URL).get_json()
    assert listed["count"] == 1 and listed["cameras"][0]["id"] == "cam-gate-1"

    # Ingest gets the source with the credentials put in, percent-encoded.
    [(cfg, code)] = active_configs(r)
    assert cfg.source == "rtsp://admin:Tr0ub4dor%263@10.20.30.40:554/Streaming/Channels/101"
    assert cfg.transport == "udp" and cfg.frame_age_limit_s == 4 and code == cam["grid"]

    resp = client.post(f"{URL}/cam-gate-1/decommission", json={"reason": "拆除", "by": "张工"})
    assert resp.status_code == 200
    gone = resp.get_json()
    assert gone["status"] == "decommissioned" and gone["decommissioned_by"] == "张工"
    assert active_configs(r) == []
    # The credentials are dropped with the camera; the record stays as history.
    assert not r.hexists(keys().camera_sources, "cam-gate-1")
    assert client.get(f"{URL}?status=decommissioned").get_json()["count"] == 1
    assert client.get(f"{URL}?status=active").get_json()["count"] == 0
    again = client.post(f"{URL}/cam-gate-1/decommission", json={"reason": "x"})
    assert again.status_code == 409 and again.get_json()["error"] == "already_decommissioned"
    assert client.post(f"{URL}/cam-gate-1/decommission", json={}).status_code == 400
    assert client.post(f"{URL}/nobody/decommission", json={"reason": "x"}).status_code == 404
    assert client.get(f"{URL}/nobody").status_code == 404
    assert client.get(f"{URL}?status=broken").status_code == 400
    # A decommissioned id stays taken: history must not mix two cameras.
    taken = client.post(URL, json=body())
    assert taken.status_code == 409 and "id is not reused" in taken.get_json()["detail"]

    for text in (
        json.dumps([cam, one.get_json(), listed, gone]),
        caplog.text,
    ):
        assert SECRET not in text and "Tr0ub4dor" not in text
    assert b"Tr0ub4dor" not in everything_stored(r)


def test_gcj02_point_is_converted(client: FlaskClient) -> None:
    resp = client.post(
        URL, json=body(id="cam-gcj", lon=113.6254, lat=34.7466, crs="gcj02", password="")
    )
    assert resp.status_code == 201, resp.get_json()
    cam = resp.get_json()
    lon, lat = gcj02_to_wgs84(113.6254, 34.7466)
    assert cam["lon"] == pytest.approx(lon) and cam["lat"] == pytest.approx(lat)
    assert abs(cam["lon"] - 113.6254) > 1e-3  # GCJ-02 sits a few hundred metres off
    assert cam["source"] == "rtsp://***@10.20.30.40:554/Streaming/Channels/101"


@pytest.mark.parametrize(
    ("change", "status", "reason", "says"),
    [
        ({"lon": 116.40, "lat": 39.90}, 422, "outside_city", "outside the city"),
        ({"source": f"gopher://u:{SECRET}@h/x", "password": ""}, 400, "invalid_camera", "gopher"),
        ({"source": "rtmp://10.0.0.1/live"}, 400, "invalid_camera", "'rtmp' is not supported"),
        ({"source": "rtsp:///x"}, 400, "invalid_camera", "no host"),
        ({"source": "http://10.0.0.1:99999/x"}, 400, "invalid_camera", "host or port"),
        (
            {"source": f"rtsp://admin:{SECRET}@10.0.0.1/x"},
            400,
            "bad_source",
            "give them once",
        ),
        (
            {"source": "data/source/video/missing.mp4", "password": "", "username": ""},
            400,
            "bad_source",
            "does not exist",
        ),
        (
            {"source": "/etc/hosts", "password": "", "username": ""},
            400,
            "bad_source",
            "data or var",
        ),
        ({"lon": "113.62"}, 400, "invalid_camera", "lon"),
        ({"crs": "bd09"}, 400, "invalid_camera", "crs"),
        ({"id": "bad id"}, 400, "invalid_camera", "id"),
        ({"fov_deg": 0}, 400, "invalid_camera", "fov_deg"),
        ({"owner": "x"}, 400, "invalid_camera", "owner"),
        ({"id": "cam-demo-001"}, 409, "duplicate_id", "reviewed camera file"),
    ],
)
def test_refusals_are_clear_and_keep_no_secret(
    r: redis.Redis,
    client: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, Any],
    status: int,
    reason: str,
    says: str,
) -> None:
    resp = client.post(URL, json=body(**change))
    assert resp.status_code == status, resp.get_json()
    err = resp.get_json()
    assert err["error"] == reason and says in err["detail"]
    assert SECRET not in resp.get_data(as_text=True)
    assert not r.exists(keys().camera_registry) and not r.exists(keys().camera_sources)
    # The refusal is kept as a dead letter, with the credentials masked.
    [(_, dead)] = r.xrange(keys().dead)
    assert dead[b"reason"].decode() == reason and dead[b"source"] == b"devices_api"
    kept = json.loads(dead[b"raw"])
    assert kept["password"] == "***" and kept["username"] == "***"
    assert b"Tr0ub4dor" not in everything_stored(r)
    assert "Tr0ub4dor" not in caplog.text


def test_duplicate_and_malformed_bodies(r: redis.Redis, client: FlaskClient) -> None:
    assert client.post(URL, json=body()).status_code == 201
    dup = client.post(URL, json=body(name="另一个"))
    assert dup.status_code == 409 and dup.get_json()["error"] == "duplicate_id"
    assert client.get(f"{URL}/cam-gate-1").get_json()["name"] == "东门出入口"
    broken = f'{{"id": "x", "source": "rtsp://a:{SECRET}@h/x", '.encode()
    resp = client.post(URL, data=broken, content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"] == "bad_json"
    assert SECRET not in resp.get_data(as_text=True)
    resp = client.post(URL, data=b"id=x", content_type="text/plain")
    assert resp.status_code == 415
    raws = b"".join(f[b"raw"] for _, f in r.xrange(keys().dead))
    assert b"Tr0ub4dor" not in raws and b"not kept" in raws
    assert client.get(URL).get_json()["count"] == 1


def test_cli_register_list_decommission(
    r: redis.Redis,
    gridcc_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    code = cli.main(
        [
            "camera",
            "register",
            "cam-cli-1",
            "--name",
            "北门",
            "--source",
            "rtsp://10.1.1.1/live",
            "--username",
            "ops",
            "--password-stdin",
            "--lon",
            "113.66",
            "--lat",
            "34.75",
            "--direction",
            "200",
            "--fov",
            "90",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "registered camera cam-cli-1 at rtsp://***@10.1.1.1/live, grid 4101" in out.out
    [(cfg, _)] = active_configs(r)
    assert cfg.source == "rtsp://ops:Tr0ub4dor%263@10.1.1.1/live" and cfg.direction_deg == 200

    assert cli.main(["camera", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in listed] == ["cam-cli-1"] and listed[0]["fov_deg"] == 90

    bad = cli.main(
        ["camera", "register", "cam-cli-2", "--name", "x", "--source", "ftp://h/x"]
        + ["--lon", "113.66", "--lat", "34.75"]
    )
    out = capsys.readouterr()
    assert bad == 2 and "'ftp' is not supported" in out.err
    outside = cli.main(
        ["camera", "register", "cam-cli-3", "--name", "x", "--source", CLIP]
        + ["--lon", "34.75", "--lat", "113.66"]
    )
    assert outside == 2 and "were they given as lat, lon?" in capsys.readouterr().err
    shanghai = cli.main(
        ["camera", "register", "cam-cli-4", "--name", "x", "--source", CLIP]
        + ["--lon", "121.47", "--lat", "31.23"]
    )
    assert shanghai == 2 and "outside the city" in capsys.readouterr().err
    assert [c.id for c, _ in active_configs(r)] == ["cam-cli-1"]

    assert (
        cli.main(["camera", "decommission", "cam-cli-1", "--by", "李工", "--reason", "迁移"]) == 0
    )
    assert "decommissioned camera cam-cli-1" in capsys.readouterr().out
    assert cli.main(["camera", "list"]) == 0
    row = capsys.readouterr().out
    assert "cam-cli-1\t北门\tdecommissioned\trtsp://***@10.1.1.1/live" in row
    assert SECRET not in row
    assert b"Tr0ub4dor" not in everything_stored(r)
