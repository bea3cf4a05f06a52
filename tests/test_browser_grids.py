"""The electronic grid map in headless Chromium: drill city → grid and back, export, print."""

# ruff: noqa: F811  (pytest fixtures imported from tests.browser_support)
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from core.models import Report
from grids.codes import Level
from grids.dataset import Unit, load_city
from tests.browser_support import (  # noqa: F401  (fixtures)
    browser,
    non_loopback,
    page_factory,
    web,
)
from workorders.service import create_from_report

pytestmark = pytest.mark.browser

UNIT_PATHS = ".leaflet-overlay-pane path.gc-grids-unit"
CURRENT = "#grids-crumbs .gc-grids-crumb.current"
FIND_POINT = """(sel) => {
    const path = document.querySelector(sel);
    const b = path.getBoundingClientRect();
    for (let fy = 0.5; fy < 1; fy += 0.05) {
        for (const y of [b.top + b.height * fy, b.top + b.height * (1 - fy)]) {
            for (let fx = 0.05; fx < 1; fx += 0.05) {
                const x = b.left + b.width * fx;
                if (document.elementFromPoint(x, y) === path) { return [x, y]; }
            }
        }
    }
    return null;
}"""


def _wait_level(page: Any, name: str, paths: int) -> None:
    """Until the current crumb names ``name`` and the map draws ``paths`` boundaries."""
    page.wait_for_function(
        """([sel, cur, name, n]) => {
            const c = document.querySelector(cur);
            return c && c.innerText.trim() === name && document.querySelectorAll(sel).length === n;
        }""",
        arg=[UNIT_PATHS, CURRENT, name, paths],
        timeout=15000,
    )


def _crumbs(page: Any) -> list[str]:
    return [
        e.inner_text().strip() for e in page.query_selector_all("#grids-crumbs .gc-grids-crumb")
    ]


def _drill(page: Any, city_units: dict[str, Unit], level: Level) -> Unit:
    """Click the first drawn unit; returns the unit the page then shows."""
    before = page.inner_text(CURRENT).strip()
    # A real click, at a point the first boundary really covers (a concave outline's box
    # centre can lie in its neighbour).
    xy = page.evaluate(FIND_POINT, UNIT_PATHS)
    assert xy, "no clickable point on the first boundary"
    page.mouse.click(xy[0], xy[1])
    page.wait_for_function(
        "([cur, before]) => { const c = document.querySelector(cur); return c && c.innerText.trim() !== before; }",
        arg=[CURRENT, before],
        timeout=15000,
    )
    name = page.inner_text(CURRENT).strip()
    unit = city_units[name]
    assert unit.level is level, (name, unit.level)
    return unit


def test_drill_from_city_to_grid_and_back(
    web: Any, page_factory: Any, r: redis.Redis, artifacts: Path
) -> None:
    city = load_city()
    by_name = {u.name: u for u in city}
    # Open orders in one grid of the first county, so the map has something to colour.
    first_county = city.children(city.code)[0]
    target = city.units_at(Level.GRID, within=first_county.code)[0]
    lon, lat = target.center
    for i, cat in enumerate(("城乡建设", "生态环境")):
        report = Report.model_validate(
            {"text": f"测试诉求{i}：路面塌陷需处理", "lon": lon, "lat": lat, "category": cat}
        )
        create_from_report(r, report, report_id=f"MAP{i}")

    rec = page_factory(web.url + "/grids", wait_for=CURRENT)
    page = rec.page
    _wait_level(page, city.root.name, 15)
    assert _crumbs(page) == [city.root.name]
    assert page.inner_text("#grids-total-orders_open") == "2"
    page.screenshot(path=str(artifacts / "grids-city.png"))

    chain = [city.root]
    for level in (Level.COUNTY, Level.TOWNSHIP, Level.VILLAGE, Level.GRID):
        unit = _drill(page, by_name, level)
        assert unit.parent == chain[-1].code
        chain.append(unit)
        expected = len(city.children(unit.code)) or 1  # a grid draws itself
        _wait_level(page, unit.name, expected)
        assert _crumbs(page) == [u.name for u in chain]
        assert page.inner_text("#grids-unit-name") == unit.name

    grid = chain[-1]
    # At a grid: its staff, with names and phones masked, and the generated mark.
    page.wait_for_selector("#grids-staff")
    staff_text = page.inner_text("#grids-staff")
    assert "网格长" in staff_text and "*" in staff_text
    assert page.inner_text("#grids-unit-generated") == "生成"
    assert grid.code in page.inner_text("#grids-card")
    page.screenshot(path=str(artifacts / "grids-grid.png"))

    # Back one level with the button, then by breadcrumbs up to the city.
    page.click("#grids-back")
    _wait_level(page, chain[3].name, len(city.children(chain[3].code)))
    page.click(f"#grids-crumbs button.gc-grids-crumb >> text={chain[2].name}")
    _wait_level(page, chain[2].name, len(city.children(chain[2].code)))
    assert _crumbs(page) == [u.name for u in chain[:3]]

    # Export what is drawn: a GeoJSON file with one feature per boundary on the map.
    with page.expect_download() as dl:
        page.click("#grids-export")
    fc = json.loads(Path(dl.value.path()).read_text(encoding="utf-8"))
    assert dl.value.suggested_filename.endswith(".geojson")
    assert fc["type"] == "FeatureCollection"
    assert [f["properties"]["code"] for f in fc["features"]] == [
        u.code for u in city.children(chain[2].code)
    ]
    assert all(
        set(f["properties"]) == {"code", "name", "level", "generated"} for f in fc["features"]
    )

    # On paper: the map and the table, no buttons and no side panel.
    page.emulate_media(media="print")
    assert page.is_visible("#grids-map") and page.is_visible("#grids-table")
    assert not page.is_visible("#grids-export") and not page.is_visible("#grids-side")
    page.emulate_media(media="screen")

    page.click(f"#grids-crumbs button.gc-grids-crumb >> text={city.root.name}")
    _wait_level(page, city.root.name, 15)
    assert _crumbs(page) == [city.root.name]

    # Every grid of the city at once.
    page.check("#grids-all input[type=checkbox]")
    page.wait_for_function(
        f"document.querySelectorAll('{UNIT_PATHS}').length === {len(city.units_at(Level.GRID))}",
        timeout=20000,
    )
    page.screenshot(path=str(artifacts / "grids-all.png"))
    assert rec.errors == []
    assert non_loopback(rec.requests) == []
