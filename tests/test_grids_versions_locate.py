"""Boundary versions: an event resolves with the boundaries valid on its date."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import mapping

from core.models import Place
from core.timeutil import SHANGHAI
from grids import versions
from grids.codes import Level
from grids.dataset import City, Unit, load_city
from grids.importer import import_geojson
from grids.versions import VersionError, VersionStore


@pytest.fixture(scope="module")
def city() -> City:
    return load_city()


def ms(text: str) -> int:
    """Local Asia/Shanghai wall time → UTC epoch ms."""
    return int(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp() * 1000)


def adjustment(city: City) -> tuple[Unit, Unit, Any, dict[str, Any]]:
    """Grids a, b sharing an edge, a piece of b, and the GeoJSON that hands it to a."""
    village = city.units_at(Level.VILLAGE)[5]
    kids = city.children(village.code)
    a, b = next(
        (x, y)
        for x in kids
        for y in kids
        if x.code < y.code and x.geometry.boundary.intersection(y.geometry.boundary).length > 0
    )
    edge = shapely.line_merge(a.geometry.boundary.intersection(b.geometry.boundary))
    mid = shapely.line_interpolate_point(edge, 0.5, normalized=True)
    piece = b.geometry.intersection(mid.buffer(0.002))
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": mapping(a.geometry.union(piece)),
                "properties": {"code": a.code, "name": a.name},
            },
            {
                "type": "Feature",
                "geometry": mapping(b.geometry.difference(piece)),
                "properties": {"code": b.code, "name": b.name},
            },
        ],
    }
    return a, b, piece, fc


def test_demo_dataset_is_version_1_from_2024(tmp_path: Path, city: City) -> None:
    store = VersionStore(tmp_path, base=city)
    (v1,) = store.versions()
    assert v1.version == 1 and v1.valid_from == date(2024, 1, 1)
    grid = city.units_at(Level.GRID)[100]
    x, y = grid.center
    assert store.locate_at(x, y, ms("2024-01-01T00:00:00")).grid == grid.code
    with pytest.raises(VersionError, match="2024-01-01"):
        store.locate_at(x, y, ms("2023-12-31T23:59:59"))
    with pytest.raises(VersionError, match="integer epoch"):
        store.locate_at(x, y, 1.7e12)  # type: ignore[arg-type]


def test_event_resolves_with_boundaries_of_its_date(tmp_path: Path, city: City) -> None:
    store = VersionStore(tmp_path, base=city)
    a, b, piece, fc = adjustment(city)
    probe = piece.representative_point()
    rep = import_geojson(fc, valid_from="2025-06-01", store=store)
    assert rep.applied and rep.version == 2

    # The day starts at midnight in Shanghai, which is still 31 May in UTC.
    before = store.locate_at(probe.x, probe.y, ms("2025-05-31T23:59:59"))
    after = store.locate_at(probe.x, probe.y, ms("2025-06-01T00:00:01"))
    assert before.grid == b.code and after.grid == a.code
    assert isinstance(after, Place) and after.village == a.code[:12]
    # A point the adjustment did not touch keeps its grid on both sides.
    far = a.geometry.difference(piece.buffer(0.001)).representative_point()
    for when in ("2024-05-01T12:00:00", "2026-01-01T12:00:00"):
        assert store.locate_at(far.x, far.y, ms(when)).grid == a.code

    hist = store.history(a.code)
    assert [(h.version, h.valid_from, h.valid_to) for h in hist] == [
        (1, date(2024, 1, 1), date(2025, 6, 1)),
        (2, date(2025, 6, 1), None),
    ]
    assert hist[0].unit.geometry.equals(a.geometry)
    untouched = city.units_at(Level.GRID)[0]
    assert [(h.version, h.valid_to) for h in store.history(untouched.code)] == [(1, None)]


def test_versions_persist_and_are_seen_by_another_process(tmp_path: Path, city: City) -> None:
    store = VersionStore(tmp_path, base=city)
    a, b, piece, fc = adjustment(city)
    probe = piece.representative_point()
    other = VersionStore(tmp_path, base=city)  # stands for another process
    when = ms("2025-07-01T09:00:00")
    assert other.locate_at(probe.x, probe.y, when).grid == b.code
    import_geojson(fc, valid_from="2025-06-01", store=store)
    assert other.locate_at(probe.x, probe.y, when).grid == a.code
    index = json.loads((tmp_path / "index.json").read_text(encoding="utf-8"))
    assert [v["version"] for v in index["versions"]] == [1, 2]
    assert index["versions"][1]["valid_from"] == "2025-06-01"
    stored = json.loads((tmp_path / index["versions"][1]["file"]).read_text(encoding="utf-8"))
    assert sorted(f["properties"]["code"] for f in stored["features"]) == sorted([a.code, b.code])


def test_second_adjustment_and_back_dating(tmp_path: Path, city: City) -> None:
    store = VersionStore(tmp_path, base=city)
    a, b, piece, fc = adjustment(city)
    probe = piece.representative_point()
    import_geojson(fc, valid_from="2025-06-01", store=store)
    # Undo it a year later: the piece goes back to b.
    undo = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": mapping(u.geometry), "properties": {"code": u.code}}
            for u in (a, b)
        ],
    }
    rep = import_geojson(undo, valid_from="2026-06-01", store=store)
    assert rep.version == 3 and rep.changed == sorted([a.code, b.code])
    got = [
        store.locate_at(probe.x, probe.y, ms(t)).grid
        for t in ("2025-01-01T08:00:00", "2025-12-01T08:00:00", "2026-06-02T08:00:00")
    ]
    assert got == [b.code, a.code, b.code]
    assert [h.valid_to for h in store.history(b.code)] == [
        date(2025, 6, 1),
        date(2026, 6, 1),
        None,
    ]
    with pytest.raises(VersionError, match="versions start in order"):
        store.add_version([a], "2025-01-01")


def test_module_locate_at_uses_var_dir(gridcc_env: dict[str, str], city: City) -> None:
    versions.reset_stores()
    a, b, piece, fc = adjustment(city)
    probe = piece.representative_point()
    store = versions.default_store()
    assert str(store.root).startswith(gridcc_env["VAR_DIR"])
    rep = import_geojson(fc, valid_from="2025-06-01")
    assert rep.applied
    assert (Path(gridcc_env["VAR_DIR"]) / "grids" / "versions" / "index.json").exists()
    assert versions.locate_at(probe.x, probe.y, ms("2025-06-02T10:00:00")).grid == a.code
    assert versions.locate_at(probe.x, probe.y, ms("2025-05-02T10:00:00")).grid == b.code
    outside = versions.locate_at(100.0, 30.0, ms("2025-05-02T10:00:00"))
    assert outside.inside_city is False and outside.grid is None
    versions.reset_stores()
