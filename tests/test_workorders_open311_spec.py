"""Open311 GeoReport v2 against the spec's own example requests and responses."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from alarms.worker import ensure_groups, step
from grids.codes import Level
from grids.dataset import load_city
from workorders import loop, open311
from workorders.open311 import open311_bp
from workorders.service import list_orders

BASE = "/open311/v2"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
# The spec's example POST Service Request body, byte for byte.
SPEC_POST = (
    "api_key=xyz&jurisdiction_id=city.gov&service_code=001&lat=37.76524078&long=-122.4212043"
    "&address_string=1234+5th+street&email=smit333%40sfgov.edu&device_id=tt222111"
    "&account_id=123456&first_name=john&last_name=smith&phone=111111111"
    "&description=A+large+sinkhole+is+destroying+the+street"
    "&media_url=http%3A%2F%2Ffarm3.static.flickr.com%2F2002%2F2212426634_5ed477a060.jpg"
    "&attribute[WHISPAWN]=123456&attribute[WHISDORN]=COISL001"
)
# Field names of the spec's example responses.
SPEC_SERVICE = {
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
}
SPEC_POST_RESPONSE = {"service_request_id", "service_notice", "account_id"}
SPEC_REQUEST = {
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
}


@pytest.fixture
def client(gridcc_env: dict[str, str]) -> FlaskClient:
    app = Flask("open311-test")
    app.register_blueprint(open311_bp)
    return app.test_client()


@pytest.fixture(scope="module")
def point() -> tuple[float, float]:
    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410105"))
    return city.units_at(Level.GRID, within=town.code)[0].center


def _ours(point: tuple[float, float]) -> str:
    """The spec's example, sent to this jurisdiction from a point in the city."""
    return (
        SPEC_POST.replace("jurisdiction_id=city.gov", "jurisdiction_id=zhengzhou.gov.cn")
        .replace("lat=37.76524078", f"lat={point[1]}")
        .replace("long=-122.4212043", f"long={point[0]}")
    )


def _is_error(resp: Any, status: int, text: str) -> None:
    assert resp.status_code == status
    body = resp.get_json()
    assert isinstance(body, list) and body[0]["code"] == status
    assert set(body[0]) == {"code", "description"} and text in body[0]["description"]


def test_services_list_has_the_spec_shape(client: FlaskClient) -> None:
    resp = client.get(f"{BASE}/services.json?jurisdiction_id=zhengzhou.gov.cn")
    assert resp.status_code == 200 and resp.content_type == "application/json; charset=utf-8"
    services = resp.get_json()
    assert len(services) == 517 and all(set(s) == SPEC_SERVICE for s in services)
    assert services[0] == {
        "service_code": "001",
        "service_name": "事故处理",
        "description": "城乡建设 / 安全生产 / 事故处理",
        "metadata": False,
        "type": "realtime",
        "keywords": "安全生产",
        "group": "城乡建设",
    }
    assert client.get(f"{BASE}/services.json").status_code == 200  # one jurisdiction
    _is_error(client.get(f"{BASE}/services.json?jurisdiction_id=city.gov"), 404, "city.gov")
    assert client.get(f"{BASE}/services/001.json").get_json()["attributes"] == []
    _is_error(client.get(f"{BASE}/services/999.json"), 404, "999")


def test_spec_example_post_to_another_jurisdiction_is_the_spec_404(client: FlaskClient) -> None:
    _is_error(
        client.post(f"{BASE}/requests.json", data=SPEC_POST, content_type=FORM),
        404,
        "jurisdiction_id 'city.gov' was not found",
    )


def test_spec_example_post_becomes_an_order_and_is_followed_to_closed(
    r: redis.Redis, client: FlaskClient, point: tuple[float, float]
) -> None:
    resp = client.post(f"{BASE}/requests.json", data=_ours(point), content_type=FORM)
    assert resp.status_code == 200, resp.get_json()
    (created,) = resp.get_json()
    assert set(created) == SPEC_POST_RESPONSE and created["account_id"] == "123456"
    rid = created["service_request_id"]

    (view,) = client.get(f"{BASE}/requests/{rid}.json").get_json()
    assert set(view) == SPEC_REQUEST
    assert view["status"] == "open" and view["service_code"] == "001"
    assert view["description"] == "A large sinkhole is destroying the street"
    assert view["requested_datetime"].endswith("+08:00")

    ensure_groups(r)
    assert step(r, "w1", block_ms=100) == 1
    (o,) = list_orders(r)
    assert o.channel.value == "app" and o.category == "城乡建设"
    assert o.reporters[0]["name"] == "john smith" and o.channel_fields["app_user_id"] == "123456"
    (view,) = client.get(f"{BASE}/requests/{rid}.json").get_json()
    assert view["expected_datetime"] and view["agency_responsible"] == o.suggested_owner
    assert "phone" not in json.dumps(view) and "111111111" not in json.dumps(view)

    loop.accept(r, o.id, by="op")
    loop.assign(r, o.id, by="op", lead="城管局")
    loop.start_part(r, o.id, "城管局", by="li", by_dept="城管局")
    loop.submit_feedback(
        r, o.id, "城管局", by="li", by_dept="城管局", result="已回填", evidence=["photo:1"]
    )
    loop.check(r, o.id, passed=True, by="grid-chen", satisfaction=5)
    (view,) = client.get(f"{BASE}/requests/{rid}.json").get_json()
    assert view["status"] == "closed" and view["agency_responsible"] == "城管局"

    closed = client.get(f"{BASE}/requests.json?status=closed").get_json()
    assert [v["service_request_id"] for v in closed] == [rid]
    assert client.get(f"{BASE}/requests.json?status=open").get_json() == []
    assert len(client.get(f"{BASE}/requests.json?service_code=001,002").get_json()) == 1
    assert client.get(f"{BASE}/requests.json?service_code=002").get_json() == []
    by_id = client.get(f"{BASE}/requests.json?service_request_id={rid},nope").get_json()
    assert [v["service_request_id"] for v in by_id] == [rid]


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"service_code": ""}, 400, "service_code was not provided"),
        ({"service_code": "9999"}, 404, "service_code '9999' was not found"),
        ({"lat": "", "long": ""}, 400, "needs lat and long"),
        ({"lat": "north"}, 400, "are not numbers"),
        ({"lat": "91"}, 400, "lat"),
    ],
)
def test_bad_posts_get_the_spec_error_format(
    client: FlaskClient,
    point: tuple[float, float],
    change: dict[str, str],
    status: int,
    text: str,
) -> None:
    form = dict(x.split("=", 1) for x in _ours(point).split("&"))
    form = {k: v.replace("+", " ") for k, v in form.items()}
    form.update(change)
    resp = client.post(f"{BASE}/requests.json", data=urlencode(form), content_type=FORM)
    _is_error(resp, status, text)


def test_json_body_api_key_and_unknown_ids(
    client: FlaskClient, point: tuple[float, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    _is_error(
        client.post(f"{BASE}/requests.json", json={"service_code": "001"}),
        400,
        "x-www-form-urlencoded",
    )
    _is_error(client.get(f"{BASE}/requests/RP-none.json"), 404, "RP-none")
    _is_error(client.get(f"{BASE}/requests.json?status=done"), 400, "status")
    _is_error(client.get(f"{BASE}/requests.json?start_date=yesterday"), 400, "w3")
    cfg = open311.config().model_copy(update={"api_keys": ["k-1"]})
    monkeypatch.setattr(open311, "config", lambda: cfg)
    _is_error(
        client.post(f"{BASE}/requests.json", data=_ours(point), content_type=FORM),
        403,
        "Invalid api_key",
    )
    ok = client.post(
        f"{BASE}/requests.json",
        data=_ours(point).replace("api_key=xyz", "api_key=k-1"),
        content_type=FORM,
    )
    assert ok.status_code == 200


def test_an_archived_request_still_shows_closed(
    r: redis.Redis, client: FlaskClient, point: tuple[float, float]
) -> None:
    from workorders.archive import archive_closed

    rid = client.post(f"{BASE}/requests.json", data=_ours(point), content_type=FORM).get_json()[0][
        "service_request_id"
    ]
    ensure_groups(r)
    step(r, "w1", block_ms=100)
    (o,) = list_orders(r)
    loop.reject(r, o.id, by="op", reason="重复诉求", kind="invalid")
    assert archive_closed(r, older_than_days=0) == 1 and list_orders(r, open_only=False) == []
    (view,) = client.get(f"{BASE}/requests/{rid}.json").get_json()
    assert view["status"] == "closed" and view["status_notes"] == "未受理"
