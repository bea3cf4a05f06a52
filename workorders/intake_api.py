"""HTTP intake of reports (article 38): hotline, app, mini-programs, departments, patrols.

POST /api/v1/reports takes one JSON report (UTF-8, ``application/json``), validates it
against ``core.models.Report`` and answers 202 with a report id once it is in the
reports stream; the worker turns it into a located work order. A point outside the
city is accepted with a ``warning`` (the order is held at city level for transfer),
or refused with 422 when the work-order policy says ``outside_city: refuse``. Every refused body is
answered with a JSON error and kept in the dead-letter stream with its raw bytes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from alarms.dead import write_dead
from core.config import get_settings
from core.keys import keys
from core.models import CHANNEL_FIELDS, Report
from core.store import get_redis
from core.timeutil import now_ms
from workorders.service import place_of_report, policy

intake_bp = Blueprint("intake", __name__)

PATH = "/api/v1/reports"
READS_MAXLEN = 1_000_000


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _error(
    status: int, reason: str, detail: str, raw: bytes, extra: dict[str, Any] | None = None
) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": reason, "detail": detail}
    if extra:
        body.update(extra)
    try:
        write_dead(get_redis(), source="intake", reason=reason, detail=detail, raw=raw, topic=PATH)
    except (redis.ConnectionError, redis.TimeoutError):
        body["dead_letter"] = "not stored: storage unavailable"
    return jsonify(body), status


@intake_bp.post(PATH)
def post_report() -> tuple[Response, int]:
    limit = get_settings().max_payload_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        head = request.stream.read(min(declared, limit))
        return _error(
            413, "too_large", f"body of {declared} bytes exceeds the limit of {limit} bytes", head
        )
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        return _error(413, "too_large", f"body exceeds the limit of {limit} bytes", raw[:limit])
    mimetype = (request.mimetype or "").lower()
    if mimetype != "application/json":
        return _error(
            415,
            "unsupported_media_type",
            f"content type must be application/json, not {request.content_type or 'none'!r}",
            raw,
        )
    charset = (request.mimetype_params.get("charset") or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        return _error(415, "unsupported_charset", f"charset must be utf-8, not {charset!r}", raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error(
            400,
            "not_utf8",
            f"body is not UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 2].hex()}); "
            "GBK and other encodings must be converted before sending",
            raw,
        )
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser's stack, e.g. "[" * 30000.
        return _error(400, "bad_json", f"body is not valid JSON: {exc}", raw)
    if not isinstance(data, dict):
        return _error(
            400, "bad_json", f"body must be a JSON object, not {type(data).__name__}", raw
        )
    if data.get("located", True) is not True:
        # Only the import of an export without points makes unlocated reports.
        return _error(
            400,
            "invalid_report",
            "located: a report through the API needs its point (lon, lat)",
            raw,
            {"fields": [{"field": "located", "message": "only an import may be unlocated"}]},
        )
    try:
        report = Report.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(map(str, e["loc"])) or "(root)", "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return _error(400, "invalid_report", detail, raw, {"fields": errors})

    try:
        report_id, warning = submit(report)
    except OutsideCityRefused as exc:
        return _error(422, "outside_city", str(exc), raw)
    except (redis.ConnectionError, redis.TimeoutError):
        return jsonify(
            {"error": "unavailable", "detail": "storage unavailable, send again later"}
        ), 503
    body: dict[str, Any] = {"report_id": report_id, "status": "accepted"}
    if warning:
        body["warning"] = warning
    return jsonify(body), 202


class OutsideCityRefused(ValueError):
    """The policy refuses reports located outside the city."""


def submit(report: Report, report_id: str | None = None) -> tuple[str, str | None]:
    """The one intake path (JSON API, Open311, import): locate, check the policy, mark for
    duplicate merging and put the report on the reports stream; returns (id, warning)."""
    warning = None
    place, note = place_of_report(report)
    if not place.inside_city:
        if policy().outside_city == "refuse":
            raise OutsideCityRefused(note or "point is outside the city")
        warning = note
    report = report.model_copy(update={"merge": policy().merge.enabled})
    report_id = report_id or f"RP{now_ms()}-{uuid.uuid4().hex[:8]}"
    get_redis().xadd(
        keys().reports,
        {
            "report_id": report_id,
            "data": report.model_dump_json(),
            "received_ms": str(now_ms()),
        },
        maxlen=READS_MAXLEN,
        approximate=True,
    )
    return report_id, warning


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the intake endpoint, from the pydantic model."""
    schema = Report.model_json_schema(ref_template="#/components/schemas/{model}")
    # Set by the intake from the policy, not by clients.
    props = schema.get("properties", {})
    props.pop("merge", None)
    # Unlocated reports come only from imports: through the API the point is required.
    props.pop("located", None)
    for f, lim in (("lon", 180), ("lat", 90)):
        if f in props:
            props[f] = {"type": "number", "minimum": -lim, "maximum": lim, "title": f.title()}
    schema["required"] = sorted({*schema.get("required", []), "lon", "lat"})
    schema["description"] = (
        "A report from one intake channel (article 38). Each channel takes its own fields: "
        + "; ".join(
            f"{c.value}: {', '.join(a) or 'none'}"
            + (f" (required: {', '.join(req)})" if req else "")
            for c, (a, req) in CHANNEL_FIELDS.items()
        )
        + ". A field of another channel is refused with 400."
    )
    components = dict(schema.pop("$defs", {}))
    components["Report"] = schema
    components["Error"] = {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string"},
            "detail": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "object"}},
        },
    }
    err = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "gridcc intake", "version": "1"},
        "paths": {
            PATH: {
                "post": {
                    "summary": "Submit a report (hotline, app, patrol, department, higher level, ...)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Report"}}
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted; a work order follows",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "report_id": {"type": "string"},
                                            "status": {"type": "string"},
                                            "warning": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": {
                            "description": "Not UTF-8, not JSON, or not a valid report",
                            "content": err,
                        },
                        "413": {"description": "Body too large", "content": err},
                        "422": {
                            "description": "Outside the city (when refused by policy)",
                            "content": err,
                        },
                        "415": {"description": "Not application/json in UTF-8", "content": err},
                        "503": {"description": "Storage unavailable", "content": err},
                    },
                }
            }
        },
        "components": {"schemas": components},
    }


@intake_bp.get("/api/v1/openapi.json")
def get_openapi() -> Response:
    return jsonify(openapi())
