"""Device registration API over Flask's test client on the real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from core.keys import keys
from core.models import Reading
from core.timeutil import now_ms
from devices.api import devices_api_bp
from devices.health import on_reading

URL = "/api/v1/devices"
JINSHUI = (113.6655, 34.7736)


@pytest.fixture
def client(gridcc_env: dict[str, str]) -> FlaskClient:
    app = Flask("devices-api-test")
    app.register_blueprint(devices_api_bp)
    return app.test_client()


def _gas(device_id: str = "gas-api-1", **kw: Any) -> dict[str, Any]:
    return {
        "id": device_id,
        "name": "花园路燃气井",
        "type": "gas",
        "profile": "gas_z2m",
        "lon": JINSHUI[0],
        "lat": JINSHUI[1],
        **kw,
    }


def _stored(r: redis.Redis) -> tuple[int, int]:
    return int(r.scard(keys().devices)), int(r.hlen(keys().topic_index))


def _dead(r: redis.Redis) -> list[dict[str, bytes]]:
    return [{k.decode(): v for k, v in f.items()} for _, f in r.xrange(keys().dead)]


def test_register_read_and_list(
    r: redis.Redis, client: FlaskClient, gridcc_env: dict[str, str]
) -> None:
    resp = client.post(URL, json=_gas())
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["id"] == "gas-api-1" and body["status"] == "registered"
    assert body["topic"] == "zigbee2mqtt/gas-api-1"
    assert body["mqtt_topic"] == gridcc_env["MQTT_ROOT"] + "zigbee2mqtt/gas-api-1"
    assert body["place"]["county"] == "410105" and len(body["place"]["grid"]) == 15
    assert resp.headers["Location"] == f"{URL}/gas-api-1"
    assert r.hget(keys().topic_index, "zigbee2mqtt/gas-api-1") == b"gas-api-1"

    one = client.get(f"{URL}/gas-api-1")
    assert one.status_code == 200 and one.get_json()["place"] == body["place"]
    assert one.get_json()["state"] == {}
    t = now_ms()
    on_reading(
        r,
        Reading(
            device_id="gas-api-1",
            ts_ms=t,
            received_ms=t,
            metrics={"ch4_lel": 1.0},
            msg_id="m1",
            topic="x",
        ),
    )
    r.hset(keys().device_state("gas-api-1"), "last_seen_ms", t)
    seen = client.get(f"{URL}/gas-api-1").get_json()
    assert seen["status"] == "verified" and seen["state"]["last_seen_ms"] == str(t)

    wp = _gas("wp-api-1", type="water_pressure", profile="water_plain", name="")
    assert client.post(URL, json=wp).status_code == 201
    all_ = client.get(URL).get_json()
    assert all_["count"] == 2 and [d["id"] for d in all_["devices"]] == ["gas-api-1", "wp-api-1"]
    assert [d["id"] for d in client.get(f"{URL}?type=gas").get_json()["devices"]] == ["gas-api-1"]
    regd = client.get(f"{URL}?status=registered").get_json()
    assert [d["id"] for d in regd["devices"]] == ["wp-api-1"]
    assert client.get(f"{URL}?type=gas&status=live").get_json()["count"] == 0
    bad = client.get(f"{URL}?status=broken")
    assert bad.status_code == 400 and "registered" in bad.get_json()["detail"]
    assert client.get(f"{URL}?type=rocket").status_code == 400


def test_missing_device_is_404(client: FlaskClient) -> None:
    resp = client.get(f"{URL}/nobody")
    assert resp.status_code == 404 and resp.get_json()["error"] == "not found"
    resp = client.post(f"{URL}/nobody/decommission", json={"reason": "拆除"})
    assert resp.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "error", "words"),
    [
        (_gas(lon="113.6"), 400, "invalid_device", "lon"),
        (_gas(id="bad id!"), 400, "invalid_device", "device id must be"),
        ({"id": "x1", "type": "gas"}, 400, "invalid_device", "profile"),
        (_gas(type="rocket"), 400, "unknown_type", "rocket"),
        (_gas(profile="nope"), 400, "unknown_profile", "nope"),
        (_gas(profile="water_plain"), 400, "wrong_profile", "water_pressure"),
        (_gas(topic="a/+/b"), 400, "refused", "wildcard"),
        (_gas(status="live"), 400, "unknown_fields", "status"),
        (_gas(lon=JINSHUI[1], lat=JINSHUI[0]), 400, "invalid_device", "lat"),
        (_gas(simulated="yes"), 400, "invalid_device", "simulated"),
        (_gas(lon=113.2, lat=34.2), 422, "outside_city", "outside the city"),
        (_gas(lon=116.40, lat=39.90), 422, "outside_city", "lon/lat order"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_nothing_stored(
    r: redis.Redis,
    client: FlaskClient,
    body: dict[str, Any],
    status: int,
    error: str,
    words: str,
) -> None:
    resp = client.post(URL, json=body)
    assert resp.status_code == status, resp.get_json()
    got = resp.get_json()
    assert got["error"] == error and words in got["detail"]
    assert _stored(r) == (0, 0) and not r.keys(keys().device("*"))
    (dead,) = _dead(r)
    assert dead["source"] == b"devices_api" and dead["reason"] == error.encode()


def test_bodies_that_are_not_json_objects(r: redis.Redis, client: FlaskClient) -> None:
    gbk = '{"id": "燃气"}'.encode("gbk")
    cases = [
        (b"{not json", "application/json", 400, "bad_json"),
        (b"[1, 2]", "application/json", 400, "bad_json"),
        (b'{"id": "g", "lon": NaN}', "application/json", 400, "bad_json"),
        (gbk, "application/json", 400, "not_utf8"),
        (b'{"id": "g"}', "text/plain", 415, "unsupported_media_type"),
        (b"{" + b" " * 70_000 + b"}", "application/json", 413, "too_large"),
    ]
    for raw, ctype, status, error in cases:
        resp = client.post(URL, data=raw, content_type=ctype)
        assert (resp.status_code, resp.get_json()["error"]) == (status, error)
    dead = _dead(r)
    assert [d["reason"].decode() for d in dead] == [c[3] for c in cases]
    assert dead[3]["raw"] == gbk  # the raw bytes are kept as they came
    assert _stored(r) == (0, 0)


def test_duplicate_id_and_topic_are_409_and_change_nothing(
    r: redis.Redis, client: FlaskClient
) -> None:
    assert client.post(URL, json=_gas()).status_code == 201
    before = r.hgetall(keys().device("gas-api-1"))
    again = client.post(URL, json=_gas(name="另一个名字"))
    assert again.status_code == 409 and again.get_json()["error"] == "duplicate_id"
    topic = client.post(URL, json=_gas("gas-api-2", topic="zigbee2mqtt/gas-api-1"))
    assert topic.status_code == 409 and topic.get_json()["error"] == "duplicate_topic"
    assert "gas-api-1" in topic.get_json()["detail"]
    assert r.hgetall(keys().device("gas-api-1")) == before
    assert _stored(r) == (1, 1)


def test_decommission(r: redis.Redis, client: FlaskClient) -> None:
    assert client.post(URL, json=_gas()).status_code == 201
    no_reason = client.post(f"{URL}/gas-api-1/decommission", json={"reason": "  "})
    assert no_reason.status_code == 400 and "reason" in no_reason.get_json()["detail"]
    resp = client.post(
        f"{URL}/gas-api-1/decommission", json={"reason": "管线改造，设备拆除", "by": "dev-team-1"}
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert (
        body["status"] == "decommissioned" and body["decommission_reason"] == "管线改造，设备拆除"
    )
    assert body["decommissioned_by"] == "dev-team-1"
    assert client.get(f"{URL}/gas-api-1").get_json()["status"] == "decommissioned"
    twice = client.post(f"{URL}/gas-api-1/decommission", json={"reason": "再次"})
    assert twice.status_code == 409 and twice.get_json()["error"] == "already_decommissioned"
    assert client.get(f"{URL}?status=decommissioned").get_json()["count"] == 1


def test_openapi_describes_every_route(client: FlaskClient) -> None:
    spec = client.get(f"{URL}/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {URL, f"{URL}/{{device_id}}", f"{URL}/{{device_id}}/decommission"}
    new = spec["components"]["schemas"]["NewDevice"]
    assert set(new["required"]) == {"id", "type", "profile", "lon", "lat"}
    assert "status" not in new["properties"] and "place" not in new["properties"]
    assert {"201", "400", "409", "422"} <= set(spec["paths"][URL]["post"]["responses"])
    assert "gas_z2m" in new["description"]


def test_the_web_role_serves_the_device_api(gridcc_env: dict[str, str]) -> None:
    from dashboard.server import create_app

    web = create_app().server.test_client()
    assert web.get(f"{URL}/openapi.json").status_code == 200
    assert web.get(f"{URL}/nobody").status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/devices", "/api/v1/cameras"])
def test_deeply_nested_json_is_bad_json_not_a_server_error(r: redis.Redis, path: str) -> None:
    # Found by a user: nesting deeper than the parser's stack answered 500.
    from dashboard.server import create_app

    client = create_app().server.test_client()
    resp = client.post(path, data=b"[" * 30000 + b"]" * 30000, content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "bad_json"


def test_other_charset_and_overlong_name_are_refused(r: redis.Redis) -> None:
    # Found by a user: charset=gbk was read as UTF-8, and a 20,000-character name was stored.
    import json

    from dashboard.server import create_app

    client = create_app().server.test_client()
    body = json.dumps(_gas(id="gas-cs")).encode()
    resp = client.post("/api/v1/devices", data=body, content_type="application/json; charset=gbk")
    assert resp.status_code == 415 and resp.get_json()["error"] == "unsupported_charset"
    long = json.dumps(_gas(id="gas-long", name="名" * 101), ensure_ascii=False).encode()
    resp = client.post("/api/v1/devices", data=long, content_type="application/json")
    assert resp.status_code == 400 and "name" in resp.get_json()["detail"]
    assert client.get("/api/v1/devices/gas-cs").status_code == 404
    assert client.get("/api/v1/devices/gas-long").status_code == 404
