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
