"""Open311 GeoReport v2 (JSON) so existing citizen apps can report and follow requests.

Blueprint ``open311_bp`` under ``/open311/v2``: ``GET services.json`` (the three-level
taxonomy, one service per third-level category, code = its row number, zero-padded),
``GET services/{code}.json``, ``POST requests.json`` (form-encoded, as the spec says; the
request becomes a report through the same intake path as the JSON API, channel ``app``),
``GET requests/{id}.json`` and ``GET requests.json`` (filters service_request_id,
service_code, start_date, end_date, status). Errors are the spec's list of
``{"code", "description"}``. Only requests made through this endpoint are listed, and no
personal field (name, phone, e-mail) is ever returned.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import redis
import yaml
from flask import Blueprint, Response, request
from pydantic import BaseModel, Field, ValidationError

from core.keys import keys
from core.models import Channel, OrderStatus, Report
from core.store import get_redis
from core.timeutil import SHANGHAI, now_ms
from workorders.intake_api import OutsideCityRefused, submit
from workorders.routing import taxonomy

open311_bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
CONFIG = Path(__file__).resolve().parent / "open311.yaml"
MAX_LIST = 1000
DEFAULT_SPAN = timedelta(days=90)


class Open311Config(BaseModel):
    jurisdiction_ids: list[str] = Field(min_length=1)
    api_keys: list[str] = Field(default_factory=list)
    service_notice: str = ""


@lru_cache(maxsize=1)
def config() -> Open311Config:
    with open(CONFIG, encoding="utf-8") as fh:
        return Open311Config.model_validate(yaml.safe_load(fh) or {})


@lru_cache(maxsize=1)
def services() -> list[dict[str, Any]]:
    out = []
    for n, row in enumerate(taxonomy().itertuples(index=False), start=1):
        first, second, third = (str(x) for x in row)
        out.append(
            {
                "service_code": f"{n:03d}",
                "service_name": third,
                "description": f"{first} / {second} / {third}",
                "metadata": False,
                "type": "realtime",
                "keywords": second,
                "group": first,
            }
        )
    return out


def _service(code: str) -> dict[str, Any] | None:
    return next((s for s in services() if s["service_code"] == code), None)


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json; charset=utf-8",
    )


def _errors(status: int, *descriptions: str) -> Response:
    return _json([{"code": status, "description": d} for d in descriptions], status)


def _jurisdiction() -> Response | None:
    """None when the jurisdiction is ours (or not given), else the spec's 404."""
    jid = (request.values.get("jurisdiction_id") or "").strip()
    if jid and jid not in config().jurisdiction_ids:
        return _errors(404, f"jurisdiction_id {jid!r} was not found")
    return None


def _w3(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(SHANGHAI).isoformat(timespec="seconds")
    )


def _parse_w3(value: str, name: str) -> int:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a w3 date-time") from None
    if dt.tzinfo is None:
        raise ValueError(f"{name} {value!r} needs a time zone (Z or +HH:MM)")
    return int(dt.timestamp() * 1000)


@open311_bp.get("/services.json")
def get_services() -> Response:
    return _jurisdiction() or _json(services())


@open311_bp.get("/services/<code>.json")
def get_service_definition(code: str) -> Response:
    err = _jurisdiction()
    if err:
        return err
    if _service(code) is None:
        return _errors(404, f"service_code {code!r} was not found")
    # No service has extra attributes (metadata is false for all).
    return _json({"service_code": code, "attributes": []})


@open311_bp.post("/requests.json")
def post_request() -> Response:
    if (request.mimetype or "") != "application/x-www-form-urlencoded":
        return _errors(
            400, "POST Service Request takes application/x-www-form-urlencoded; charset=utf-8"
        )
    err = _jurisdiction()
    if err:
        return err
    f = request.form
    keys_ok = config().api_keys
    if keys_ok and f.get("api_key") not in keys_ok:
        return _errors(403, "Invalid api_key received -- can't proceed with create_request.")
    code = (f.get("service_code") or "").strip()
    if not code:
        return _errors(400, "service_code was not provided")
    svc = _service(code)
    if svc is None:
        return _errors(404, f"service_code {code!r} was not found")
    lat_s, lon_s = (f.get("lat") or "").strip(), (f.get("long") or "").strip()
    if not lat_s or not lon_s:
        if f.get("address_string") or f.get("address_id"):
            return _errors(400, "this endpoint needs lat and long; an address alone is not located")
        return _errors(400, "a location is required: lat and long")
    try:
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        return _errors(400, f"lat {lat_s!r} / long {lon_s!r} are not numbers")
    name = " ".join(x for x in (f.get("first_name"), f.get("last_name")) if x) or None
    description = (f.get("description") or "").strip() or svc["service_name"]
    data = {
        "channel": Channel.APP.value,
        "text": description,
        "title": svc["service_name"],
        "category": svc["group"],
        "lon": lon,
        "lat": lat,
        "reporter_name": name,
        "reporter_phone": f.get("phone") or None,
        "app_user_id": f.get("account_id") or f.get("device_id") or None,
        "media_url": f.get("media_url") or None,
    }
    try:
        report = Report.model_validate(data)
    except ValidationError as exc:
        field_names = {"lon": "long", "text": "description", "app_user_id": "account_id"}
        return _errors(
            400,
            *(
                f"{field_names.get(str(e['loc'][0]), str(e['loc'][0])) if e['loc'] else 'request'}"
                f": {e['msg']}"
                for e in exc.errors()
            ),
        )
    try:
        rid, warning = submit(report)
    except OutsideCityRefused as exc:
        return _errors(400, str(exc))
    except (redis.ConnectionError, redis.TimeoutError):
        return _errors(400, "General service error: storage unavailable, try again later")
    rec = {
        "service_code": code,
        "requested_ms": now_ms(),
        "lat": lat,
        "long": lon,
        "description": description,
        "address": f.get("address_string") or None,
        "media_url": f.get("media_url") or None,
        "account_id": f.get("account_id") or None,
    }
    get_redis().hset(keys().open311_requests, rid, json.dumps(rec, ensure_ascii=False))
    notice = config().service_notice + (f" {warning}" if warning else "")
    return _json(
        [{"service_request_id": rid, "service_notice": notice, "account_id": rec["account_id"]}]
    )


def _request_view(r: redis.Redis, rid: str, rec: dict[str, Any]) -> dict[str, Any]:
    from workorders.service import get_order

    k = keys()
    oid = r.hget(k.order_refs, f"report:{rid}")
    order = None
    if oid:
        order_id = oid.decode() if isinstance(oid, bytes) else str(oid)
        order = get_order(r, order_id)
        if order is None:
            from workorders.archive import archived_order

            order = archived_order(order_id)
    svc = _service(rec["service_code"]) or {}
    status, notes, agency, updated, expected = "open", "已受理，待生成工单", None, None, None
    if order is not None:
        closed = order.status in (OrderStatus.CLOSED, OrderStatus.REJECTED)
        status = "closed" if closed else "open"
        notes = {
            OrderStatus.ACCEPTING: "受理核实中",
            OrderStatus.ASSIGNED: "已交办",
            OrderStatus.HANDLING: "处置中",
            OrderStatus.FEEDBACK: "已反馈处置结果",
            OrderStatus.CHECKING: "核查中",
            OrderStatus.CLOSED: "已办结",
            OrderStatus.REJECTED: "未受理",
        }[order.status]
        if order.id and order.source_ref != rid:
            notes += f"（与同一地点的同类诉求合并办理，工单 {order.id}）"
        lead = next((p.dept for p in order.parts if p.role == "lead"), None)
        agency = lead or order.suggested_owner
        updated, expected = order.updated_ms, order.deadline_ms
    return {
        "service_request_id": rid,
        "status": status,
        "status_notes": notes,
        "service_name": svc.get("service_name"),
        "service_code": rec["service_code"],
        "description": rec.get("description"),
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": _w3(rec["requested_ms"]),
        "updated_datetime": _w3(updated or rec["requested_ms"]),
        "expected_datetime": _w3(expected),
        "address": rec.get("address"),
        "address_id": None,
        "zipcode": None,
        "lat": rec["lat"],
        "long": rec["long"],
        "media_url": rec.get("media_url"),
    }


@open311_bp.get("/requests/<rid>.json")
def get_request(rid: str) -> Response:
    err = _jurisdiction()
    if err:
        return err
    r = get_redis()
    raw = r.hget(keys().open311_requests, rid)
    if not raw:
        return _errors(404, f"service_request_id {rid!r} was not found")
    return _json([_request_view(r, rid, json.loads(raw))])


@open311_bp.get("/requests.json")
def get_requests() -> Response:
    err = _jurisdiction()
    if err:
        return err
    a = request.args
    r = get_redis()
    recs = {
        (k.decode() if isinstance(k, bytes) else k): json.loads(v)
        for k, v in r.hgetall(keys().open311_requests).items()
    }
    ids = [x.strip() for x in (a.get("service_request_id") or "").split(",") if x.strip()]
    if ids:
        # The spec: with service_request_id, every other filter is ignored.
        return _json([_request_view(r, i, recs[i]) for i in ids if i in recs])
    try:
        end = _parse_w3(a["end_date"], "end_date") if a.get("end_date") else now_ms()
        start = (
            _parse_w3(a["start_date"], "start_date")
            if a.get("start_date")
            else end - int(DEFAULT_SPAN.total_seconds() * 1000)
        )
    except ValueError as exc:
        return _errors(400, str(exc))
    if end - start > DEFAULT_SPAN.total_seconds() * 1000:
        return _errors(400, "start_date and end_date may not span more than 90 days")
    codes = {x.strip() for x in (a.get("service_code") or "").split(",") if x.strip()}
    statuses = {x.strip() for x in (a.get("status") or "").split(",") if x.strip()}
    if statuses - {"open", "closed"}:
        return _errors(400, f"status must be open and/or closed, not {sorted(statuses)}")
    out = []
    for rid, rec in sorted(recs.items(), key=lambda kv: -int(kv[1]["requested_ms"])):
        if not start <= rec["requested_ms"] <= end or (codes and rec["service_code"] not in codes):
            continue
        view = _request_view(r, rid, rec)
        if statuses and view["status"] not in statuses:
            continue
        out.append(view)
        if len(out) >= MAX_LIST:
            break
    return _json(out)
