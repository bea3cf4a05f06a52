"""The intake API over Flask's test client, with the worker turning reports into orders."""

from __future__ import annotations

import json

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from access.reads import list_orders
from access.scope import Scope
from alarms.worker import ensure_groups, step
from core.keys import keys
from grids.codes import Level
from grids.dataset import load_city
from workorders.intake_api import intake_bp

URL = "/api/v1/reports"


@pytest.fixture
def client(gridcc_env: dict[str, str]) -> FlaskClient:
    app = Flask("intake-test")
    app.register_blueprint(intake_bp)
    return app.test_client()


def _dead(r: redis.Redis) -> list[dict[str, bytes]]:
    return [{k.decode(): v for k, v in f.items()} for _, f in r.xrange(keys().dead)]


def test_hotline_report_becomes_an_order_in_its_township(
    r: redis.Redis, client: FlaskClient
) -> None:
    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410103"))
    lon, lat = city.units_at(Level.GRID, within=town.code)[0].center
    body = {
        "channel": "hotline",
        "text": "二七区某小区地下车库雨水倒灌，已有车辆被淹，请尽快处理。",
        "title": "地下车库进水",
        "category": "城乡建设",
        "lon": lon,
        "lat": lat,
        "reporter_name": "张先生",
        "reporter_phone": "13800000000",
    }
    resp = client.post(
        URL,
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        content_type="application/json; charset=utf-8",
    )
    assert resp.status_code == 202, resp.get_json()
    report_id = resp.get_json()["report_id"]
    assert r.xlen(keys().reports) == 1

    ensure_groups(r)
    assert step(r, "w1", block_ms=100) == 1
    orders = list_orders(r, Scope(user="town", jurisdiction=town.code))
    assert len(orders) == 1
    o = orders[0]
    assert o.place.township == town.code and o.title == "地下车库进水"
    assert o.text == body["text"] and o.category == "城乡建设"
    assert report_id in o.history[0]["note"]
    assert r.xpending(keys().reports, "workers")["pending"] == 0
    assert _dead(r) == []


@pytest.mark.parametrize(
    ("data", "ctype", "status", "reason"),
    [
        (b'{"text": "abc", "lon": 113.6,', "application/json", 400, "bad_json"),
        (
            '{"text": "井盖丢失", "lon": 113.66, "lat": 34.75}'.encode("gbk"),
            "application/json",
            400,
            "not_utf8",
        ),
        (b'{"text": "hello", "lat": 34.75}', "application/json", 400, "invalid_report"),
        (b'{"text": "hello", "lon": NaN, "lat": 34.75}', "application/json", 400, "bad_json"),
        (
            b'{"text": "hello", "lon": 113.6, "lat": 34.75, "x": 1}',
            "application/json",
            400,
            "invalid_report",
        ),
        (b"[1, 2]", "application/json", 400, "bad_json"),
        # Found by a user: nesting deeper than the parser's stack was a 500.
        (b"[" * 30000 + b"]" * 30000, "application/json", 400, "bad_json"),
        # Found by a user: a boolean or a string passed as a coordinate.
        (
            b'{"text": "hello", "lon": true, "lat": 34.75}',
            "application/json",
            400,
            "invalid_report",
        ),
        (
            b'{"text": "hello", "lon": "113.6", "lat": 34.75}',
            "application/json",
            400,
            "invalid_report",
        ),
        (b"text=hello", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (
            b'{"text": "hello", "lon": 113.6, "lat": 34.75}',
            "application/json; charset=gbk",
            415,
            "unsupported_charset",
        ),
        (b'{"text": "' + b"x" * 200_000 + b'"}', "application/json", 413, "too_large"),
    ],
)
def test_bad_bodies_are_refused_with_a_dead_letter(
    r: redis.Redis, client: FlaskClient, data: bytes, ctype: str, status: int, reason: str
) -> None:
    resp = client.post(URL, data=data, content_type=ctype)
    assert resp.status_code == status
    err = resp.get_json()
    assert err["error"] == reason and err["detail"]
    dead = _dead(r)
    assert len(dead) == 1
    assert dead[0]["source"] == b"intake" and dead[0]["reason"] == reason.encode()
    assert data.startswith(dead[0]["raw"]) and len(dead[0]["raw"]) > 0
    assert r.xlen(keys().reports) == 0


def test_point_outside_the_city_is_accepted_with_a_warning(
    r: redis.Redis, client: FlaskClient
) -> None:
    resp = client.post(
        URL, json={"text": "北京的问题打到了郑州热线", "lon": 116.397, "lat": 39.909}
    )
    assert resp.status_code == 202
    assert "outside the city" in resp.get_json()["warning"]
    ensure_groups(r)
    assert step(r, "w1", block_ms=100) == 1
    # Held at city level: the city sees it, flagged; a county does not.
    (order,) = list_orders(r, Scope(user="city"))
    assert not order.place.inside_city
    assert list_orders(r, Scope(user="c", jurisdiction="410102")) == []


def test_missing_field_names_the_field(client: FlaskClient, r: redis.Redis) -> None:
    resp = client.post(URL, json={"text": "路灯不亮", "lat": 34.75})
    assert resp.status_code == 400
    assert [f["field"] for f in resp.get_json()["fields"]] == ["lon"]


def test_openapi_describes_the_endpoint(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    post = doc["paths"][URL]["post"]
    assert (
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        == "#/components/schemas/Report"
    )
    schema = doc["components"]["schemas"]["Report"]
    assert set(schema["required"]) == {"text", "lon", "lat"}
    assert {"202", "400", "413", "415"} <= set(post["responses"])
    # Every $ref resolves inside the document.
    refs = [v for v in json.dumps(doc).split('"$ref": "')[1:]]
    for ref in refs:
        name = ref.split('"')[0].rsplit("/", 1)[-1]
        assert name in doc["components"]["schemas"]
