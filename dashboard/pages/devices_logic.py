"""What the device page does, apart from Dash: register, import, health, unknown topics.

Each function takes the Redis client and the page language and returns plain data, so the
callbacks stay thin and the behaviour is checked without a browser.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from pydantic import ValidationError

from access.devices import device_health, unknown_topics
from access.scope import Scope
from core.config import get_settings
from core.timeutil import fmt_local, now_ms
from devices.catalogue import catalogue
from devices.health import decommission
from devices.onboarding import block_unknown, claim_unknown, import_rows, read_table
from devices.profiles import profiles
from devices.registry import Device, DeviceStatus, RegistryError, register_device
from i18n import t

FORM_FIELDS = ("id", "name", "type", "profile", "lon", "lat", "crs", "topic")
CRS_OPTIONS = ("wgs84", "gcj02")
# Bigger files are refused before parsing: a device list of this size would be a mistake.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")

# RegistryError text -> (form field, label): the registry says why in English; the page
# names the field and says it in the page's language, keeping the original as detail.
_REFUSALS = (
    ("is already registered", "id", "devices.err.duplicate_id"),
    ("already belongs to device", "topic", "devices.err.duplicate_topic"),
    ("outside the city", "lon", "devices.err.outside"),
    ("devices, not", "profile", "devices.err.profile_type"),
    ("unknown device type", "type", "devices.err.unknown_type"),
    ("unknown profile", "profile", "devices.err.unknown_profile"),
    ("wildcards", "topic", "devices.err.topic"),
    ("cannot be part of an MQTT topic", "id", "devices.err.topic"),
)


def status_label(status: str, lang: str) -> str:
    try:
        return t(f"devices.status.{DeviceStatus(status).value}", lang)
    except ValueError:
        return status


def type_label(type_key: str, lang: str) -> str:
    dtype = catalogue().types.get(type_key)
    return dtype.label(lang) if dtype else type_key


def type_options(lang: str) -> list[dict[str, str]]:
    """Catalogue types, named in the page's language."""
    return [
        {"label": f"{d.label(lang)}（{key}）", "value": key} for key, d in catalogue().types.items()
    ]


def profile_options(type_key: str | None) -> list[dict[str, str]]:
    """Profiles that decode the type: its own ones first, then the generic ones."""
    own, generic = [], []
    for key, p in profiles().profiles.items():
        opt = {"label": f"{key} · {p.format}", "value": key}
        if p.device_type is None:
            generic.append(opt)
        elif type_key and p.device_type == type_key:
            own.append(opt)
    return own + generic if type_key else []


def mqtt_topic(device_topic: str) -> str:
    """The full topic a device publishes on: the deployment's MQTT root, then its own topic."""
    return get_settings().mqtt_root + device_topic


def example_payload(device: Device) -> str:
    """A reading this device would send (mid-normal values), in its profile's format."""
    from ingest.simulator import encode

    dtype = device.device_type
    prof = device.profile_def
    names = [fm.metric for fm in prof.fields.values()] or list(dtype.metrics)
    metrics = {
        m: round((dtype.metrics[m].normal[0] + dtype.metrics[m].normal[1]) / 2, 3)
        for m in names
        if m in dtype.metrics
    }
    raw = encode(device, metrics, now_ms(), battery=95, signal=120)
    text = raw.decode("utf-8")
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
    except ValueError:
        return text


@dataclass
class RegisterOutcome:
    ok: bool
    errors: dict[str, str] = field(default_factory=dict)  # form field -> message
    message: str = ""
    device: Device | None = None
    topic: str = ""  # with the MQTT root
    payload: str = ""
    payload_format: str = ""
    status: str = ""


def _number(raw: Any) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _refusal(exc: Exception, lang: str) -> tuple[str, str]:
    text = str(exc)
    for needle, fld, key in _REFUSALS:
        if needle in text:
            return fld, f"{t(key, lang)}（{text}）"
    return "", f"{t('devices.err.refused', lang)}：{text}"


def register_from_form(r: redis.Redis, form: Mapping[str, Any], lang: str) -> RegisterOutcome:
    """Check the form field by field, then register; every refusal names its field."""
    f = {k: ("" if form.get(k) is None else str(form.get(k)).strip()) for k in FORM_FIELDS}
    errors: dict[str, str] = {}
    for k in ("id", "type", "profile", "lon", "lat"):
        if not f[k]:
            errors[k] = t("devices.required", lang)
    lon, lat = _number(f["lon"]), _number(f["lat"])
    if f["lon"] and lon is None:
        errors["lon"] = t("devices.err.number", lang)
    elif lon is not None and not -180 <= lon <= 180:
        errors["lon"] = t("devices.err.lon_range", lang)
    if f["lat"] and lat is None:
        errors["lat"] = t("devices.err.number", lang)
    elif lat is not None and not -90 <= lat <= 90:
        errors["lat"] = t("devices.err.lat_range", lang)
    crs = f["crs"] or "wgs84"
    if crs not in CRS_OPTIONS:
        errors["crs"] = t("devices.err.crs", lang)
    if errors:
        return RegisterOutcome(False, errors, t("devices.err.form", lang))
    assert lon is not None and lat is not None
    if crs == "gcj02":
        from grids.coords import gcj02_to_wgs84

        lon, lat = gcj02_to_wgs84(lon, lat)
    try:
        dev = Device(
            id=f["id"],
            name=f["name"],
            type=f["type"],
            profile=f["profile"],
            topic=f["topic"],
            lon=lon,
            lat=lat,
        )
    except ValidationError as exc:
        for err in exc.errors():
            loc = str(err["loc"][0]) if err["loc"] else ""
            errors[loc or "id"] = t("devices.err.id", lang) if loc == "id" else f"{err['msg']}"
        return RegisterOutcome(False, errors, t("devices.err.form", lang))
    try:
        # A claimed topic: registering it also lifts a block on it.
        stored = claim_unknown(r, f["topic"], dev) if f["topic"] else register_device(r, dev)
    except RegistryError as exc:
        fld, msg = _refusal(exc, lang)
        if fld:
            errors[fld] = msg
        return RegisterOutcome(False, errors, msg)
    return RegisterOutcome(
        True,
        message=t("devices.registered", lang),
        device=stored,
        topic=mqtt_topic(stored.topic),
        payload=example_payload(stored),
        payload_format=stored.profile_def.format,
        status=status_label(stored.status.value, lang),
    )


# --- import ----------------------------------------------------------------------------------


@dataclass
class ImportOutcome:
    ok: bool  # the file could be read
    message: str
    rows: list[dict[str, str]] = field(default_factory=list)
    report: list[dict[str, Any]] = field(default_factory=list)  # row, column, reason
    bad_rows: int = 0
    stored: list[str] = field(default_factory=list)


def parse_upload(contents: str | None, filename: str | None) -> list[dict[str, str]]:
    """Rows of an uploaded CSV or Excel file (``dcc.Upload`` data URL); ValueError says why."""
    if not contents:
        raise ValueError("no file")
    _, _, b64 = contents.partition(",")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the upload is not valid base64") from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise ValueError(f"file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    name = Path(filename or "devices.csv").name
    suffix = Path(name).suffix.lower()
    if suffix not in (".csv", ".txt", *EXCEL_SUFFIXES):
        raise ValueError(f"{name}: only CSV (UTF-8) or Excel files are read")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(raw)
        return read_table(path)


def _report(rep_errors: list[Any]) -> list[dict[str, Any]]:
    return [{"row": e.row, "column": e.column, "reason": e.reason} for e in rep_errors]


def import_check(
    r: redis.Redis, contents: str | None, filename: str | None, lang: str
) -> ImportOutcome:
    """Dry run: every bad row with its column and reason; nothing is stored."""
    try:
        rows = parse_upload(contents, filename)
    except ValueError as exc:
        return ImportOutcome(False, f"{t('devices.import.bad_file', lang)}：{exc}")
    if not rows:
        return ImportOutcome(False, t("devices.import.empty", lang))
    rep = import_rows(r, rows, dry_run=True)
    bad = len({e.row for e in rep.errors})
    msg = t("devices.import.summary", lang).format(rows=rep.rows, good=len(rep.good), bad=bad)
    return ImportOutcome(True, msg, rows, _report(rep.errors), bad)


def import_store(
    r: redis.Redis, rows: list[dict[str, str]] | None, store_good: bool, lang: str
) -> ImportOutcome:
    """Store checked rows; with any bad row nothing is stored unless ``store_good``."""
    if not rows:
        return ImportOutcome(False, t("devices.import.none", lang))
    rep = import_rows(r, rows, dry_run=False, store_good=store_good)
    bad = len({e.row for e in rep.errors})
    if rep.errors and not store_good:
        return ImportOutcome(
            False, t("devices.import.blocked", lang), rows, _report(rep.errors), bad
        )
    msg = t("devices.import.stored", lang).format(n=len(rep.stored))
    return ImportOutcome(True, msg, rows, _report(rep.errors), bad, rep.stored)


# --- health and unknown devices ----------------------------------------------------------------


def health_table(r: redis.Redis, scope: Scope, lang: str) -> list[dict[str, Any]]:
    """Rows of the health table as shown: Chinese labels, Shanghai time, rounded figures."""
    out = []
    for row in device_health(r, scope):
        out.append(
            {
                "id": row["id"],
                "name": row["name"],
                "type": type_label(row["type"], lang),
                "status": status_label(row["status"], lang),
                "last_seen": fmt_local(row["last_seen_ms"]) if row["last_seen_ms"] else "",
                "rate_per_min": row["rate_per_min"],
                "battery": row["battery"],
                "signal": row["signal"],
                "grid": row["grid"] or "",
            }
        )
    return out


def unknown_table(r: redis.Redis, scope: Scope) -> list[dict[str, Any]]:
    return [
        {
            "id": u["topic"],  # the table's row id: selection follows the row, not its index
            "topic": u["topic"],
            "first_seen": fmt_local(u["first_ms"]) if u["first_ms"] else "",
            "last_seen": fmt_local(u["last_ms"]) if u["last_ms"] else "",
            "count": u["count"],
        }
        for u in unknown_topics(r, scope)
    ]


def decommission_device(
    r: redis.Redis, scope: Scope, device_id: str | None, reason: str | None, lang: str
) -> tuple[bool, str]:
    if not device_id:
        return False, t("devices.decommission.need_row", lang)
    if not (reason or "").strip():
        return False, t("devices.decommission.need_reason", lang)
    try:
        decommission(r, device_id, scope.user, reason or "")
    except RegistryError as exc:
        return False, f"{t('devices.err.failed', lang)}：{exc}"
    return True, t("devices.decommission.done", lang).format(id=device_id)


def block_topic(r: redis.Redis, topic: str | None, lang: str) -> tuple[bool, str]:
    if not topic:
        return False, t("devices.unknown.need_row", lang)
    try:
        block_unknown(r, topic)
    except (RegistryError, ValueError) as exc:
        return False, f"{t('devices.err.failed', lang)}：{exc}"
    return True, t("devices.unknown.blocked", lang).format(topic=topic)


def claim_prefill(topic: str) -> dict[str, str]:
    """Form values for a claimed topic: the topic, and the profile and id its shape suggests."""
    out = {"topic": topic, "id": "", "profile": "", "type": ""}
    for key, p in profiles().profiles.items():
        pattern = "^" + re.escape(p.topic).replace(re.escape("{name}"), "([^/]+)") + "$"
        m = re.match(pattern, topic)
        if m:
            # Generic profiles come first in the file; a typed one would guess too much.
            out.update(id=m.group(1), profile=key, type=p.device_type or "")
            break
    return out
