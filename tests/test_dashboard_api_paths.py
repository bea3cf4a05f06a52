"""Unknown API paths answer 404 JSON (found by a user: they got the page's HTML with 200),
while the real endpoints keep working."""

from __future__ import annotations

import pytest
import redis

from dashboard.server import create_app


@pytest.mark.parametrize(
    "path",
    ["/api/v1/nothing", "/api/v2/reports", "/open311/v2/foo.json", "/open311/v2/requests/.json"],
)
def test_unknown_api_path_is_a_json_404(r: redis.Redis, path: str) -> None:
    client = create_app().server.test_client()
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp.get_json()["error"] == "not_found"


def test_real_endpoints_still_answer(r: redis.Redis) -> None:
    client = create_app().server.test_client()
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/open311/v2/services.json").status_code == 200
    assert client.get("/healthz").status_code == 200
    page = client.get("/no/such/page")
    assert page.status_code == 200 and b"<html" in page.data.lower()
