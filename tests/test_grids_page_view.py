"""What the grid map page shows for a unit: colour classes, the outage state, masked staff."""

from __future__ import annotations

import redis

from access.scope import demo_scope
from dashboard.pages import grids_view as gv
from grids.dataset import load_city
from grids.people import staff_of
from tests.conftest import free_port


def test_colour_classes_put_the_busiest_unit_in_the_darkest_class() -> None:
    assert gv.breaks_for(0) == []
    assert gv.class_of(0, gv.breaks_for(0)) == 0
    breaks = gv.breaks_for(40)
    assert breaks == [10, 20, 30, 40]
    assert [gv.class_of(n, breaks) for n in (0, 1, 10, 11, 39, 40)] == [0, 1, 1, 2, 4, 4]
    # Few orders: fewer classes, still ending at the darkest.
    small = gv.breaks_for(2)
    assert small == [1, 2]
    assert [gv.class_of(n, small) for n in (1, 2)] == [3, 4]


def test_a_dead_data_service_shows_dashes_not_zeros() -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.3, socket_timeout=0.3)
    view = gv.build(demo_scope(), "4101", "zh-CN", r=dead)
    assert view.down and view.counts is None
    assert len(view.layer["features"]) == 15
    for f in view.layer["features"]:
        assert f["properties"]["orders_open"] is None and f["properties"]["c"] == 0
    table = str(gv.children_table(view, "zh-CN"))
    assert gv.NONE in table


def test_grid_view_masks_staff(r: redis.Redis) -> None:
    grid = load_city().units_at("grid")[0].code
    view = gv.build(demo_scope(), grid, "zh-CN", r=r)
    assert view.counts is not None and len(view.layer["features"]) == 1
    raw = staff_of(grid)
    assert view.staff is not None and len(view.staff) == len(raw)
    for shown, person in zip(view.staff, raw, strict=True):
        assert shown["name"] != person.name and shown["name"][0] == person.name[0]
        assert shown["phone"] != person.phone and shown["phone"][-4:] == person.phone[-4:]
    text = str(gv.staff_panel(view, "zh-CN"))
    assert all(p.name not in text and p.phone not in text for p in raw)
