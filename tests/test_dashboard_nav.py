"""The command center's header links to every page beside it, in the page's language."""

from __future__ import annotations

from typing import Any

from dashboard.layout import nav
from dashboard.pages import page_modules
from i18n import t


def _links(component: Any) -> list[tuple[str, str]]:
    return [(a.children, a.href) for a in component.children]


def test_header_links_every_page_in_chinese_and_english() -> None:
    pages = page_modules()
    assert {"/devices", "/cameras"} <= set(pages)
    zh = _links(nav("zh-CN"))
    assert zh == [(t(m.TITLE_KEY, "zh-CN"), p) for p, m in sorted(pages.items())]
    en = _links(nav("en"))
    assert all(href.endswith("?lang=en") for _, href in en)
    assert [text for text, _ in en] == [t(m.TITLE_KEY, "en") for _, m in sorted(pages.items())]


def test_alarm_row_links_to_the_cameras_that_see_its_place() -> None:
    from dashboard.views import alarm_list

    alarm = {
        "id": "AL1",
        "severity": "red",
        "title": "燃气井甲烷浓度高",
        "state": "raised",
        "raised_ms": 1_764_000_000_000,
        "place": {"lon": 113.6835, "lat": 34.774, "county": "410105", "inside_city": True},
    }
    outside = {**alarm, "id": "AL2", "place": {"lon": 116.39, "lat": 39.9, "inside_city": False}}
    rows = alarm_list([alarm, outside], "zh-CN").children
    links = [c for row in rows for c in row.children if getattr(c, "href", None)]
    assert [a.href for a in links] == ["/cameras?lon=113.683500&lat=34.774000"]
    assert links[0].children == t("alarms.cameras", "zh-CN")
    en = [
        c
        for row in alarm_list([alarm], "en").children
        for c in row.children
        if getattr(c, "href", None)
    ]
    assert en[0].href.endswith("&lang=en")
