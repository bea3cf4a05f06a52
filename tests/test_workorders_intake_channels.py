"""Intake channels (article 38): each channel's own fields, validated per channel, through the
HTTP API and the worker, and documented in the OpenAPI description."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from alarms.worker import ensure_groups, step
from core.models import Report
from core.timeutil import now_ms
from grids.codes import Level
from grids.dataset import load_city
from workorders.intake_api import intake_bp, openapi
from workorders.service import get_order, list_orders

URL = "/api/v1/reports"


@pytest.fixture
def client(gridcc_env: dict[str, str]) -> FlaskClient:
    app = Flask("channels-test")
    app.register_blueprint(intake_bp)
    return app.test_client()


@pytest.fixture(scope="module")
def point() -> tuple[float, float]:
    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410105"))
    lon, lat = city.units_at(Level.GRID, within=town.code)[0].center
    return lon, lat


def _post(client: FlaskClient, body: dict[str, Any]) -> Any:
    return client.post(
        URL, data=json.dumps(body, ensure_ascii=False).encode(), content_type="application/json"
    )


CASES: list[tuple[str, dict[str, Any]]] = [
    ("hotline", {"call_id": "12345-20261203-0001"}),
    ("app", {"app_user_id": "u-889"}),
    ("department", {"from_department": "市场监督管理局"}),
    ("higher_level", {"from_level": "市政府督查室", "assigned_deadline_ms": None}),
    ("transfer", {"from_region": "开封市"}),
    ("enterprise", {"enterprise_grid": "410105001001901", "enterprise_name": "某化工公司"}),
    ("patrol", {"staff_id": "GS-0042"}),
]


@pytest.mark.parametrize(("channel", "fields"), CASES)
def test_each_channel_keeps_its_own_fields_on_the_order(
    r: redis.Redis,
    client: FlaskClient,
    point: tuple[float, float],
    channel: str,
    fields: dict[str, Any],
) -> None:
    fields = dict(fields)
    if "assigned_deadline_ms" in fields:
        fields["assigned_deadline_ms"] = now_ms() + 3_600_000  # one hour: shorter than policy
    body = {
        "channel": channel,
        "text": "小区门口路面塌陷，车辆无法通行",
        "lon": point[0],
        "lat": point[1],
    }
    resp = _post(client, {**body, **fields})
    assert resp.status_code == 202, resp.get_json()
    ensure_groups(r)
    assert step(r, "w1", block_ms=100) == 1
    (o,) = list_orders(r)
    assert o.channel.value == channel
    assert o.channel_fields == fields
    assert o.reporters[0]["report_id"] == resp.get_json()["report_id"]
    if channel == "higher_level":
        assert o.deadline_ms == fields["assigned_deadline_ms"]
    # The worker path fills the routing suggestion for the operator to confirm.
    assert o.suggested_category == "城乡建设" and len(o.suggestions) == 3
    assert o.suggested_owner


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"channel": "department"}, "channel department needs from_department"),
        ({"channel": "patrol"}, "channel patrol needs staff_id"),
        ({"channel": "higher_level", "from_level": "市政府"}, "needs assigned_deadline_ms"),
        ({"channel": "transfer"}, "needs from_region"),
        ({"channel": "enterprise"}, "needs enterprise_grid"),
        ({"channel": "hotline", "staff_id": "GS-1"}, "channel hotline does not take staff_id"),
        ({"channel": "app", "call_id": "x"}, "channel app does not take call_id"),
    ],
)
def test_wrong_channel_fields_are_refused_with_the_reason(
    client: FlaskClient, point: tuple[float, float], body: dict[str, Any], message: str
) -> None:
    resp = _post(client, {"text": "路灯不亮", "lon": point[0], "lat": point[1], **body})
    assert resp.status_code == 400
    assert message in resp.get_json()["detail"]


def test_older_clients_without_channel_fields_still_work(point: tuple[float, float]) -> None:
    rep = Report(text="井盖缺失", lon=point[0], lat=point[1])
    assert rep.channel_values() == {} and rep.merge is False


def test_openapi_documents_every_channel_field() -> None:
    spec = openapi()
    props = spec["components"]["schemas"]["Report"]["properties"]
    for name in (
        "call_id",
        "app_user_id",
        "from_department",
        "from_level",
        "assigned_deadline_ms",
        "from_region",
        "enterprise_grid",
        "staff_id",
    ):
        assert props[name]["description"]
    desc = spec["components"]["schemas"]["Report"]["description"]
    assert "department: from_department, media_url (required: from_department)" in desc
    assert "merge" not in props


def test_order_keeps_reporter_for_feedback(
    r: redis.Redis, client: FlaskClient, point: tuple[float, float]
) -> None:
    resp = _post(
        client,
        {
            "text": "噪音扰民",
            "lon": point[0],
            "lat": point[1],
            "reporter_name": "李女士",
            "reporter_phone": "13900000000",
            "call_id": "c-1",
        },
    )
    ensure_groups(r)
    step(r, "w1", block_ms=100)
    (o,) = list_orders(r)
    rep = o.reporters[0]
    assert (rep["name"], rep["phone"], rep["call_id"]) == ("李女士", "13900000000", "c-1")
    assert rep["report_id"] == resp.get_json()["report_id"]
    assert get_order(r, o.id) == o
