"""The 考核督办 page in Chromium against the real web role and Redis: the table shows the
received count per department, the weekly chart is drawn (plotly SVG, served locally), the
supervision lists are filled, and the Excel export downloads and reads back with pandas."""

# ruff: noqa: F811  (pytest fixtures imported from tests.browser_support)
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from i18n import t
from tests.browser_support import browser, non_loopback, page_factory, web  # noqa: F401
from tests.test_assessment_page_scope import seed

pytestmark = pytest.mark.browser

ZH = "zh-CN"


def _cell(page: Any, group: str, col: str) -> str:
    row = page.locator("#assessment-table tr", has_text=group).first
    return str(row.locator(f'td[data-dash-column="{col}"]').inner_text().strip())


def test_assessment_page_table_chart_lists_and_export(
    web, page_factory, r: redis.Redis, tmp_path: Path, artifacts: Path
) -> None:
    s = seed(r)
    late = s.late
    rec = page_factory(web.url + "/assessment", wait_for="#assessment-table")
    page = rec.page
    assert page.inner_text("#assessment-title") == t("assessment.page.title", ZH)
    page.locator("#assessment-table td", has_text="城管局").first.wait_for(timeout=15000)
    assert _cell(page, "城管局", "received") == "5"
    assert _cell(page, "水务局", "received") == "1"
    assert "受理 6 件" in page.inner_text("#assessment-range")

    # The chart is drawn by plotly as SVG, with the week's bar.
    page.wait_for_selector("#assessment-chart-received svg.main-svg g.point", timeout=15000)
    assert page.locator("#assessment-chart-received svg.main-svg").count() >= 1
    assert "每周受理量" in page.inner_text("#assessment-chart-received")

    # The supervision lists: the escalated order and the rule that put it on the inspection list.
    page.locator("#assessment-sup td", has_text=str(late.id)).wait_for(timeout=8000)
    assert "超期超过限度" in page.inner_text("#assessment-dis")

    # Group by township: the rows change to named townships.
    page.locator("#assessment-by label", has_text="乡镇（街道）").click()
    page.wait_for_function(
        "() => document.querySelector('#assessment-table th[data-dash-column=\"group\"]')"
        " && document.querySelector('#assessment-table th[data-dash-column=\"group\"]')"
        ".innerText.includes('乡镇')",
        timeout=8000,
    )
    page.locator("#assessment-by label", has_text="部门").click()
    page.locator("#assessment-table td", has_text="城管局").first.wait_for(timeout=8000)

    # Custom dates without dates: the page asks for them instead of failing.
    page.locator("#assessment-period label", has_text="自定义日期").click()
    page.locator("#assessment-msg", has_text="请选择开始日期和结束日期").wait_for(timeout=8000)
    page.locator("#assessment-period label", has_text="本月").click()
    page.wait_for_function(
        "() => document.querySelector('#assessment-msg').innerText.trim() === ''", timeout=8000
    )

    with page.expect_download(timeout=15000) as dl_info:
        page.click("#assessment-export")
    dl = dl_info.value
    assert dl.suggested_filename.endswith(".xlsx")
    saved = tmp_path / dl.suggested_filename
    dl.save_as(saved)
    back = pd.read_excel(saved, index_col=0)
    assert back.loc["城管局", "受理量"] == 5 and back.loc["水务局", "受理量"] == 1
    page.locator("#assessment-msg", has_text="已导出").wait_for(timeout=8000)
    page.screenshot(path=str(artifacts / "assessment-page.png"), full_page=True)

    assert non_loopback(rec.requests) == []
    assert rec.errors == []
