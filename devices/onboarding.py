"""Onboarding many devices at once, and the devices nobody registered.

An import is checked in full before anything is stored: every bad row is reported with
its row number (as a spreadsheet shows it, header = row 1), column and reason, and
nothing is stored while any row is bad unless the caller asks to store the good ones.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from core.keys import keys
from devices.catalogue import catalogue
from devices.profiles import profiles
from devices.registry import _ID, Device, RegistryError, _locate, register_device

COLUMNS = ("id", "name", "type", "profile", "lon", "lat", "topic", "crs")
REQUIRED = ("id", "type", "profile", "lon", "lat")
CRS_CHOICES = ("wgs84", "cgcs2000", "gcj02")


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.reason}"


@dataclass
class ImportReport:
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    good: list[Device] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    dry_run: bool = True

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        head = (
            f"{self.rows} rows: {len(self.good)} good, "
            f"{len({e.row for e in self.errors})} bad, {len(self.stored)} stored"
        )
        if self.dry_run:
            head += " (dry run)"
        return "\n".join([head, *map(str, self.errors)])


def read_table(path: Path | str) -> list[dict[str, str]]:
    """Rows of a CSV (UTF-8, with or without BOM) or Excel file as column -> text."""
    p = Path(path)
    if p.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        if importlib.util.find_spec("openpyxl") is None:
            raise ValueError(
                f"{p.name}: reading Excel needs the openpyxl package; save the sheet as CSV (UTF-8)"
            )
        import pandas as pd

        try:
            frame = pd.read_excel(p, dtype=str).fillna("")
        except Exception as exc:  # openpyxl raises zip, XML and key errors for damaged files
            raise ValueError(f"{p.name} is not a readable Excel sheet: {exc}") from None
        return [{str(k): str(v) for k, v in row.items()} for row in frame.to_dict("records")]
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{p.name} is not UTF-8 (byte {exc.start}); save it as CSV UTF-8, not GBK"
        ) from None
    return parse_csv(text)


def parse_csv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        return []
    return [
        {
            (k or "").strip().lower(): (v or "").strip() if isinstance(v, str) else ""
            for k, v in row.items()
        }
        for row in reader
    ]


def _float(value: str) -> float | None:
    try:
        v = float(value)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def check_rows(
    r: redis.Redis, rows: Iterable[Mapping[str, str]], *, replace: bool = False
) -> ImportReport:
    """Validate every row against the catalogue, profiles, city and registry; store nothing."""
    rep = ImportReport()
    k = keys()
    cat, profs = catalogue(), profiles()
    seen_ids: dict[str, int] = {}
    seen_topics: dict[str, int] = {}
    row_list = list(rows)
    missing = [c for c in REQUIRED if row_list and c not in row_list[0]]
    for n, row in enumerate(row_list, start=2):
        rep.rows += 1
        errs: list[RowError] = []

        def bad(column: str, reason: str, n: int = n, errs: list[RowError] = errs) -> None:
            errs.append(RowError(n, column, reason))

        for c in missing:
            bad(c, "column missing")
        dev_id = row.get("id", "")
        if not dev_id:
            bad("id", "empty")
        elif not _ID.match(dev_id):
            bad(
                "id",
                "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
            )
        elif dev_id in seen_ids:
            bad("id", f"duplicate of row {seen_ids[dev_id]}")
        elif not replace and r.exists(k.device(dev_id)):
            bad("id", "already registered")
        if dev_id:
            seen_ids.setdefault(dev_id, n)
        type_key, prof_key = row.get("type", ""), row.get("profile", "")
        if type_key not in cat.types:
            bad("type", f"unknown device type {type_key!r}")
        prof = profs.profiles.get(prof_key)
        if prof is None:
            bad("profile", f"unknown profile {prof_key!r}")
        elif prof.device_type and type_key in cat.types and prof.device_type != type_key:
            bad("profile", f"profile {prof_key} decodes {prof.device_type} devices, not {type_key}")
        crs = (row.get("crs") or "wgs84").lower()
        if crs not in CRS_CHOICES:
            bad("crs", f"must be one of {', '.join(CRS_CHOICES)}")
        lon, lat = _float(row.get("lon", "")), _float(row.get("lat", ""))
        if lon is None or not -180 <= lon <= 180:
            bad("lon", f"{row.get('lon', '')!r} is not a longitude")
        if lat is None or not -90 <= lat <= 90:
            bad("lat", f"{row.get('lat', '')!r} is not a latitude")
        if lon is not None and lat is not None and -180 <= lon <= 180 and -90 <= lat <= 90:
            if crs == "gcj02":
                from grids.coords import gcj02_to_wgs84

                lon, lat = gcj02_to_wgs84(lon, lat)
            place = _locate(lon, lat)
            if place is not None and not place.inside_city:
                bad("lon", f"({lon}, {lat}) is outside the city; check lon/lat order and CRS")
        topic = row.get("topic", "")
        if not topic and prof is not None and dev_id and _ID.match(dev_id):
            topic = prof.device_topic(dev_id)
        if topic:
            if any(c in topic for c in "+#\x00") or topic.startswith("$"):
                bad("topic", f"{topic!r} may not hold wildcards or start with '$'")
            elif topic in seen_topics:
                bad("topic", f"{topic!r} duplicates row {seen_topics[topic]}")
            else:
                owner = r.hget(k.topic_index, topic)
                if owner is not None and owner.decode() != dev_id:  # type: ignore[union-attr]
                    bad("topic", f"{topic!r} already belongs to device {owner.decode()}")  # type: ignore[union-attr]
            seen_topics.setdefault(topic, n)
        if not errs:
            try:
                rep.good.append(
                    Device(
                        id=dev_id,
                        name=row.get("name", ""),
                        type=type_key,
                        profile=prof_key,
                        topic=row.get("topic", ""),
                        lon=lon,  # type: ignore[arg-type]
                        lat=lat,  # type: ignore[arg-type]
                    )
                )
            except ValueError as exc:
                bad("id", str(exc).splitlines()[-1])
        rep.errors.extend(errs)
    return rep


def import_rows(
    r: redis.Redis,
    rows: Iterable[Mapping[str, str]],
    *,
    dry_run: bool = True,
    store_good: bool = False,
    replace: bool = False,
) -> ImportReport:
    """Check all rows, then store them unless ``dry_run``; with errors, store only when
    ``store_good`` (then the good rows are stored and the bad ones reported)."""
    rep = check_rows(r, rows, replace=replace)
    rep.dry_run = dry_run
    if dry_run or (rep.errors and not store_good):
        return rep
    for dev in rep.good:
        try:
            register_device(r, dev, replace=replace)
            rep.stored.append(dev.id)
        except RegistryError as exc:  # a race with another registration
            rep.errors.append(RowError(0, "id", f"{dev.id}: {exc}"))
    return rep


def import_file(r: redis.Redis, path: Path | str, **kw: Any) -> ImportReport:
    return import_rows(r, read_table(path), **kw)


# --- devices nobody registered -------------------------------------------------------------


def list_unknown(r: redis.Redis, *, include_blocked: bool = False) -> list[dict[str, Any]]:
    """Topics that published without a registered device, most recent first."""
    k = keys()
    blocked = {b.decode() for b in r.smembers(k.blocked_topics)}  # type: ignore[union-attr]
    out = []
    unknown: dict[bytes, bytes] = r.hgetall(k.unknown_devices)  # type: ignore[assignment]
    for raw_topic, raw in unknown.items():
        topic = raw_topic.decode()
        if topic in blocked and not include_blocked:
            continue
        try:
            info = json.loads(raw)
        except ValueError:
            info = {}
        out.append(
            {
                "topic": topic,
                "count": int(info.get("count", 0)),
                "first_ms": info.get("first_ms"),
                "last_ms": info.get("last_ms"),
                "blocked": topic in blocked,
            }
        )
    out.sort(key=lambda u: u["last_ms"] or 0, reverse=True)
    return out


def claim_unknown(
    r: redis.Redis, topic: str, device: Device, *, allow_outside: bool = False
) -> Device:
    """Register a device on a topic that was publishing unknown (lifts a block on it)."""
    dev = register_device(
        r, device.model_copy(update={"topic": topic}), allow_outside=allow_outside
    )
    r.srem(keys().blocked_topics, topic)
    return dev


def block_unknown(r: redis.Redis, topic: str) -> None:
    """Hide a topic from the unknown list; its messages stay dead letters."""
    if not topic:
        raise ValueError("no topic to block")
    if r.hexists(keys().topic_index, topic):
        raise RegistryError(
            f"topic {topic!r} belongs to a registered device; decommission it instead"
        )
    r.sadd(keys().blocked_topics, topic)


def unblock_unknown(r: redis.Redis, topic: str) -> bool:
    return bool(r.srem(keys().blocked_topics, topic))


def is_blocked(r: redis.Redis, topic: str) -> bool:
    return bool(r.sismember(keys().blocked_topics, topic))
