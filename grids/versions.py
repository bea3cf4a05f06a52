"""Boundary versions (article 10): grids are adjusted, and history must still resolve.

Version 1 is the demo dataset (``grids.dataset.load_city``), valid from 2024-01-01.
Every accepted import adds a version holding only the units it changed (or retired);
the previous boundary of each such unit is closed on the new version's ``valid_from``.

Dates are calendar days in Asia/Shanghai: a version valid from 2025-03-01 takes effect
at 2025-03-01T00:00+08:00, and ``valid_to`` is exclusive. Versions start in order
(a new one may not start before the latest), so the boundaries in force at an instant
are the base overlaid with every version started by then.

On disk, under ``{var_dir}/grids/versions``: ``index.json`` (the list of versions, the
single source of truth, replaced atomically) and one immutable GeoJSON file per
version. A file not named by the index (a crash between the two writes) is ignored.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from shapely.geometry import mapping, shape

from core.config import get_settings
from core.models import Place
from core.timeutil import SHANGHAI, now_ms
from grids.codes import Level, level_of
from grids.dataset import City, Unit, follow_micro_grids, load_city
from grids.locate import Locator

BASE_VALID_FROM = date(2024, 1, 1)
INDEX_NAME = "index.json"


class VersionError(ValueError):
    """A version that cannot be stored or an instant no version covers; the message says why."""


class VersionInfo(BaseModel):
    version: int = Field(ge=1)
    valid_from: date
    created_ms: int
    source: str
    note: str = ""
    # Codes whose boundary this version sets; empty for version 1 (the whole base).
    codes: list[str] = Field(default_factory=list)
    retired: list[str] = Field(default_factory=list)
    # Generated micro-grids re-cut or dropped because their grid changed (replayed on load).
    derived: list[str] = Field(default_factory=list)
    file: str | None = None

    @property
    def start_ms(self) -> int:
        return day_start_ms(self.valid_from)


@dataclass(frozen=True, slots=True)
class BoundaryRecord:
    """One unit's boundary as one version set it, with the days it was in force."""

    unit: Unit
    version: int
    valid_from: date
    valid_to: date | None  # exclusive; None while in force


def day_start_ms(d: date) -> int:
    """00:00 Asia/Shanghai of ``d`` as UTC epoch ms."""
    return int(datetime.combine(d, time(0), tzinfo=SHANGHAI).timestamp() * 1000)


def shanghai_date(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(SHANGHAI).date()


def parse_date(value: date | str | None) -> date:
    """A calendar day: a date, ``YYYY-MM-DD``, or None for today in Asia/Shanghai."""
    if value is None:
        return shanghai_date(now_ms())
    if isinstance(value, datetime):
        raise VersionError("valid_from is a calendar day: give a date, not a datetime")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise VersionError(f"valid_from {value!r} is not a date YYYY-MM-DD") from exc
    raise VersionError(f"valid_from must be a date or YYYY-MM-DD, not {type(value).__name__}")


def unit_feature(u: Unit) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": u.code,
        "geometry": mapping(u.geometry),
        "properties": {
            "code": u.code,
            "name": u.name,
            "level": u.level.value,
            "parent": u.parent,
            "generated": u.generated,
            "source": u.source,
        },
    }


def _unit_from_feature(feat: dict[str, Any]) -> Unit:
    p = feat["properties"]
    return Unit(
        p["code"],
        p["name"],
        Level(p["level"]),
        p["parent"],
        shape(feat["geometry"]),
        bool(p["generated"]),
        p["source"],
    )


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VersionStore:
    """The versions of one city's boundaries, on disk under ``root``."""

    def __init__(self, root: Path | None = None, base: City | None = None) -> None:
        self.root = (
            Path(root) if root is not None else get_settings().var_dir / "grids" / "versions"
        )
        self._base = base
        self._lock = threading.RLock()
        self._stamp: tuple[int, int] | None = None
        self._versions: list[VersionInfo] = []
        self._units: dict[int, list[Unit]] = {}
        self._cities: dict[int, City] = {}
        self._locators: dict[int, Locator] = {}

    @property
    def base(self) -> City:
        if self._base is None:
            self._base = load_city()
        return self._base

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    def _base_info(self) -> VersionInfo:
        return VersionInfo(
            version=1,
            valid_from=BASE_VALID_FROM,
            created_ms=0,
            source=f"demo dataset {self.base.key or ''}".strip(),
            note="generated demo boundaries (official counties and townships)",
        )

    def _refresh(self) -> None:
        """Re-read the index when another process (or store) changed it."""
        try:
            st = os.stat(self.index_path)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and self._versions:
            return
        if stamp is None:
            versions = [self._base_info()]
        else:
            try:
                data = json.loads(self.index_path.read_text(encoding="utf-8"))
                versions = [VersionInfo.model_validate(v) for v in data["versions"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise VersionError(
                    f"boundary version index {INDEX_NAME} is unreadable: {exc}"
                ) from exc
        self._versions = versions
        self._stamp = stamp
        self._cities.clear()
        self._locators.clear()

    def versions(self) -> list[VersionInfo]:
        with self._lock:
            self._refresh()
            return list(self._versions)

    def latest(self) -> VersionInfo:
        return self.versions()[-1]

    def _version_units(self, info: VersionInfo) -> list[Unit]:
        if info.version == 1:
            return self.base.units
        cached = self._units.get(info.version)
        if cached is None:
            if info.file is None:
                raise VersionError(f"version {info.version} names no file")
            path = self.root / info.file
            try:
                fc = json.loads(path.read_text(encoding="utf-8"))
                cached = [_unit_from_feature(f) for f in fc["features"]]
            except (OSError, ValueError, KeyError) as exc:
                raise VersionError(
                    f"boundary version file {info.file} is unreadable: {exc}"
                ) from exc
            self._units[info.version] = cached
        return cached

    def _city_upto(self, k: int) -> City:
        """The city with versions 1..k applied (k is a version number)."""
        city = self._cities.get(k)
        if city is None:
            if k == 1:
                city = self.base
            else:
                before = {u.code: u for u in self._city_upto(k - 1).units}
                by_code = dict(before)
                info = self._versions[k - 1]
                for code in info.retired:
                    by_code.pop(code, None)
                for u in self._version_units(info):
                    by_code[u.code] = u
                # Generated micro-grids are not stored: they are re-cut the same way here.
                follow_micro_grids(before, by_code, set(info.codes), info.retired)
                city = City(list(by_code.values()), key=f"{self.base.key}+v{k}")
            self._cities[k] = city
        return city

    def version_at(self, when_ms: int) -> VersionInfo:
        """The latest version started at ``when_ms`` (UTC epoch ms)."""
        with self._lock:
            self._refresh()
            started = [v for v in self._versions if v.start_ms <= when_ms]
            if not started:
                raise VersionError(
                    f"no boundary version is valid at {when_ms} ms: the first starts on "
                    f"{self._versions[0].valid_from.isoformat()} (Asia/Shanghai)"
                )
            return started[-1]

    def city_at(self, when_ms: int) -> City:
        """The boundaries in force at the instant ``when_ms``."""
        with self._lock:
            return self._city_upto(self.version_at(when_ms).version)

    def current_city(self) -> City:
        """The boundaries in force now."""
        return self.city_at(now_ms())

    def latest_city(self) -> City:
        """The boundaries after every version, including ones that start in the future."""
        with self._lock:
            self._refresh()
            return self._city_upto(self._versions[-1].version)

    def locator_at(self, when_ms: int) -> Locator:
        with self._lock:
            k = self.version_at(when_ms).version
            loc = self._locators.get(k)
            if loc is None:
                loc = Locator(self._city_upto(k))
                self._locators[k] = loc
            return loc

    def locate_at(self, lon: float, lat: float, when_ms: int, crs: str = "wgs84") -> Place:
        """Point → jurisdiction chain with the boundaries valid at ``when_ms``."""
        if isinstance(when_ms, bool) or not isinstance(when_ms, int):
            raise VersionError(f"when_ms must be an integer epoch in ms, not {when_ms!r}")
        return self.locator_at(when_ms).locate(lon, lat, crs)

    def history(self, code: str) -> list[BoundaryRecord]:
        """Every boundary ``code`` has had, oldest first, with its validity."""
        level_of(code)
        with self._lock:
            self._refresh()
            out: list[BoundaryRecord] = []
            for info in self._versions:
                if (
                    out
                    and out[-1].valid_to is None
                    and (code in info.retired or code in info.codes or code in info.derived)
                ):
                    last = out[-1]
                    out[-1] = BoundaryRecord(
                        last.unit, last.version, last.valid_from, info.valid_from
                    )
                unit = None
                if info.version == 1:
                    unit = self.base.get(code)
                elif code in info.codes:
                    unit = next(u for u in self._version_units(info) if u.code == code)
                elif code in info.derived:
                    unit = self._city_upto(info.version).get(code)
                if unit is not None:
                    out.append(BoundaryRecord(unit, info.version, info.valid_from, None))
            return out

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def add_version(
        self,
        units: list[Unit],
        valid_from: date | str | None,
        *,
        retired: list[str] | None = None,
        source: str = "",
        note: str = "",
        expect_latest: int | None = None,
        derived: list[str] | None = None,
    ) -> VersionInfo:
        """Store a new version (the importer calls this after its checks passed).

        ``expect_latest`` guards against another import landing since the checks ran.
        """
        day = parse_date(valid_from)
        retired = sorted(set(retired or []))
        codes = sorted(u.code for u in units)
        if len(set(codes)) != len(codes):
            raise VersionError("a version may set each code only once")
        if not codes and not retired:
            raise VersionError("a version must change at least one unit")
        with self._lock, self._file_lock():
            self._stamp = None
            self._refresh()
            last = self._versions[-1]
            if expect_latest is not None and last.version != expect_latest:
                raise VersionError(
                    f"boundaries changed meanwhile (now version {last.version}, checked against "
                    f"{expect_latest}): run the import again"
                )
            if day < last.valid_from:
                raise VersionError(
                    f"valid_from {day.isoformat()} is before the latest version "
                    f"{last.version} ({last.valid_from.isoformat()}): versions start in order"
                )
            info = VersionInfo(
                version=last.version + 1,
                valid_from=day,
                created_ms=now_ms(),
                source=source,
                note=note,
                codes=codes,
                retired=retired,
                derived=sorted(derived or []),
                file=f"v{last.version + 1:05d}.geojson",
            )
            fc = {
                "type": "FeatureCollection",
                "properties": {"version": info.version, "valid_from": day.isoformat()},
                "features": [unit_feature(u) for u in sorted(units, key=lambda u: u.code)],
            }
            assert info.file is not None
            _atomic_write(self.root / info.file, json.dumps(fc, ensure_ascii=False))
            index = {"versions": [v.model_dump(mode="json") for v in [*self._versions, info]]}
            _atomic_write(self.index_path, json.dumps(index, ensure_ascii=False, indent=1))
            self._stamp = None
            self._refresh()
            return info


_stores: dict[Path, VersionStore] = {}
_stores_lock = threading.Lock()


def default_store() -> VersionStore:
    """The store under the configured ``var_dir`` (one per directory, so tests can switch)."""
    root = get_settings().var_dir / "grids" / "versions"
    with _stores_lock:
        st = _stores.get(root)
        if st is None:
            st = _stores[root] = VersionStore(root)
        return st


def locate_at(lon: float, lat: float, when_ms: int, crs: str = "wgs84") -> Place:
    """Point → jurisdiction chain with the boundaries valid at ``when_ms`` (UTC epoch ms)."""
    return default_store().locate_at(lon, lat, when_ms, crs)


def city_at(when_ms: int) -> City:
    return default_store().city_at(when_ms)


def reset_stores() -> None:
    with _stores_lock:
        _stores.clear()
