"""考核督办 page data from real orders on the real Redis: period picker, table rows, weekly
trend charts, supervision lists and the Excel export read back with pandas."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pandas as pd
import pytest
import redis

from access.scope import Scope
from core.timeutil import SHANGHAI, now_ms
from dashboard.pages import assessment_logic as logic
from i18n import t
from tests.test_assessment_page_scope import seed

ZH = "zh-CN"


def _ms(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> int:
    return int(datetime(y, m, d, hh, mm, tzinfo=SHANGHAI).timestamp() * 1000)


def test_period_picker_in_shanghai_time() -> None:
    # 2026-12-03 01:30 in Shanghai is still 2 December in UTC: the day is Shanghai's.
    now = _ms(2026, 12, 3, 1, 30)
    assert datetime.fromtimestamp(now / 1000, tz=UTC).day == 2
    assert logic.period_range("week", now=now) == logic.Period(_ms(2026, 11, 30), _ms(2026, 12, 4))
    assert logic.period_range("month", now=now).start_ms == _ms(2026, 12, 1)
    assert logic.period_range("quarter", now=now).start_ms == _ms(2026, 10, 1)
    p = logic.period_range("custom", "2026-01-01", "2026-01-31")
    assert (p.start_ms, p.end_ms) == (_ms(2026, 1, 1), _ms(2026, 2, 1))
    assert p.label().startswith("2026-01-01 00:00") and "+08:00" in p.label()
    for args, msg in (
        (("custom", "2026-02-01", "2026-01-01"), "before start"),
        (("custom", None, "2026-01-01"), "start date missing"),
        (("custom", "2026-13-01", "2026-01-01"), "not YYYY-MM-DD"),
        (("custom", "2024-01-01", "2026-01-01"), "at most 366 days"),
        (("year",), "unknown period 'year'"),
    ):
        with pytest.raises(logic.PeriodError, match=msg) as err:
            logic.period_range(*args)
        # The page says it in Chinese, with the offending value where there is one.
        assert err.value.text(ZH) and "{" not in err.value.text(ZH)
    with pytest.raises(logic.PeriodError) as bad:
        logic.period_range("custom", "2026-13-01", "2026-01-01")
    assert bad.value.text(ZH) == "日期 2026-13-01 无法识别，请按 YYYY-MM-DD 填写"


def test_table_trend_and_lists_from_real_orders(r: redis.Redis) -> None:
    s = seed(r)
    a, as_of, late = s.a, s.as_of, s.late
    period = logic.period_range("month")
    got = logic.page_data(r, Scope(user="boss"), "dept", period, as_of_ms=as_of)
    rows = {row["group"]: row for row in logic.table_rows(got.table, "dept", ZH)}
    cg = rows["城管局"]
    assert cg["received"] == 5 and cg["closed"] == 4 and cg["overdue"] == 1
    assert cg["on_time_rate"] == "100.0 %"  # the 4 closed were closed well within the limit
    assert cg["satisfaction"] == 4.25 and cg["dissatisfied"] == 1
    assert rows["水务局"]["received"] == 1 and rows["水务局"]["rework_rate"] == "0.0 %"
    assert [c["id"] for c in logic.table_columns("dept", ZH)][:3] == [
        "group",
        "received",
        "closed",
    ]

    # By township the groups are named.
    by_town = logic.page_data(r, Scope(user="boss"), "township", period, as_of_ms=as_of)
    names = [row["group"] for row in logic.table_rows(by_town.table, "township", ZH)]
    assert any(n.endswith(f"（{a.code}）") and not n.startswith(a.code) for n in names)

    # Every order was made this week: one week, all 6 received, 5 of 5 closed on time.
    assert got.trend["received"].tolist() == [6]
    assert got.trend["on_time_rate"].tolist() == [1.0]
    recv, rate = logic.trend_figures(got.trend, ZH)
    assert list(recv.data[0].y) == [6] and list(rate.data[0].y) == [100.0]
    week = datetime.fromtimestamp(now_ms() / 1000, tz=UTC).astimezone(SHANGHAI)
    assert recv.data[0].x[0] <= week.strftime("%Y-%m-%d")
    assert recv.layout.title.text == t("assessment.chart.received", ZH)

    sup = logic.supervised_rows(got.supervised, ZH)
    assert [x["order_id"] for x in sup] == [late.id]
    assert sup[0]["dept"] == "城管局" and "+08:00" in sup[0]["deadline"]
    dis = logic.discipline_rows(got.discipline, ZH)
    rules = {x["rule"] for x in dis}
    assert {"超期超过限度", "诉求人不满意", "办结后同地点重复反映"} <= rules


def test_export_reads_back_as_excel(r: redis.Redis) -> None:
    s = seed(r)
    got = logic.page_data(
        r,
        Scope(user="boss"),
        "dept",
        logic.period_range("month"),
        as_of_ms=s.as_of,
    )
    content, suffix = logic.export_bytes(got.table, "dept", ZH)
    assert suffix == ".xlsx" and content[:2] == b"PK"
    back = pd.read_excel(io.BytesIO(content), index_col=0)
    assert back.index.name == "部门"
    assert back.loc["城管局", "受理量"] == 5 and back.loc["水务局", "受理量"] == 1
    assert back.loc["城管局", "按期办结率"] == 1.0


def test_empty_period_gives_empty_table_and_charts(r: redis.Redis) -> None:
    p = logic.period_range("custom", "2020-01-01", "2020-01-31")
    got = logic.page_data(r, Scope(user="boss"), "district", p)
    assert got.table.empty and logic.table_rows(got.table, "district", ZH) == []
    recv, _rate = logic.trend_figures(got.trend, ZH)
    assert len(recv.data[0].x or []) == 0
    with pytest.raises(ValueError, match="group by 'street'"):
        logic.page_data(r, Scope(user="boss"), "street", p)
