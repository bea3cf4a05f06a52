"""考核督办 page logic: the period, the table rows, the trend charts, the supervision lists
and the Excel export, all from ``access.assessment`` with the screen user's scope."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import redis

from access import assessment as acc
from access.scope import Scope
from core.timeutil import SHANGHAI, fmt_local, now_ms
from dashboard.mapdata import unit_names
from i18n import t
from workorders.assessment import assess, export, result_columns

PERIODS = ("week", "month", "quarter", "custom")
GROUPS = ("dept", "township", "district")
RATE_COLS = ("on_time_rate", "rework_rate")
# The table's columns in the order a supervisor reads them.
TABLE_COLS = ("group", *result_columns())
MAX_CUSTOM_DAYS = 366


class PeriodError(ValueError):
    """A custom period that cannot be used (missing, unreadable, reversed or too long);
    ``key`` and ``params`` give the page's label ``assessment.err.<key>``."""

    def __init__(self, message: str, key: str, **params: Any) -> None:
        super().__init__(message)
        self.key = key
        self.params = params

    def text(self, lang: str) -> str:
        return t(f"assessment.err.{self.key}", lang).format(**self.params)


@dataclass(frozen=True)
class Period:
    start_ms: int
    end_ms: int  # exclusive

    def label(self) -> str:
        last = self.end_ms - 1
        return f"{fmt_local(self.start_ms)} — {fmt_local(last)}"


def _local(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(SHANGHAI)


def _ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=SHANGHAI).timestamp() * 1000)


def _parse(value: str | None, what: str) -> date:
    if not value:
        raise PeriodError(f"{what} date missing", "missing")
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise PeriodError(
            f"{what} date {value!r} is not YYYY-MM-DD", "bad_date", value=value
        ) from exc


def period_range(
    kind: str, start: str | None = None, end: str | None = None, now: int | None = None
) -> Period:
    """This week (from Monday) / month / quarter up to now, or whole custom days
    [start, end] in Asia/Shanghai."""
    today = _local(now_ms() if now is None else now).date()
    if kind == "week":
        first = today - timedelta(days=today.weekday())
    elif kind == "month":
        first = today.replace(day=1)
    elif kind == "quarter":
        first = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
    elif kind == "custom":
        a, b = _parse(start, "start"), _parse(end, "end")
        if b < a:
            raise PeriodError(f"end date {b} is before start date {a}", "reversed")
        if (b - a).days >= MAX_CUSTOM_DAYS:
            raise PeriodError(
                f"a custom period is at most {MAX_CUSTOM_DAYS} days", "too_long", n=MAX_CUSTOM_DAYS
            )
        return Period(_ms(a), _ms(b + timedelta(days=1)))
    else:
        raise PeriodError(
            f"unknown period {kind!r}: use one of {', '.join(PERIODS)}", "unknown", kind=kind
        )
    return Period(_ms(first), _ms(today + timedelta(days=1)))


def group_label(code: str, by: str, lang: str) -> str:
    """A township or district code with its name; departments are names already."""
    if by == "dept" or not code:
        return code or t("assessment.unlocated", lang)
    name = unit_names().get(code)
    return f"{name}（{code}）" if name else code


def _num(v: Any, rate: bool = False) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "—"
    if rate:
        return f"{float(v) * 100:.1f} %"
    if isinstance(v, float):
        return round(v, 2)
    return int(v)


def table_rows(table: pd.DataFrame, by: str, lang: str) -> list[dict[str, Any]]:
    """DataTable rows: the group's name, counts, rates as percent, hours, '—' when none."""
    rows = []
    for code, rec in table.iterrows():
        row: dict[str, Any] = {"group": group_label(str(code), by, lang)}
        for c in result_columns():
            row[c] = _num(rec[c], rate=c in RATE_COLS)
        rows.append(row)
    return rows


def table_columns(by: str, lang: str) -> list[Any]:
    first = {"id": "group", "name": t(f"assessment.by.{by}", lang)}
    return [first, *({"id": c, "name": t(f"assessment.col.{c}", lang)} for c in result_columns())]


def export_frame(table: pd.DataFrame, by: str, lang: str) -> pd.DataFrame:
    """The table with named groups and the page's column headings (numbers stay numbers)."""
    out = table.copy()
    out.index = pd.Index(
        [group_label(str(c), by, lang) for c in out.index], name=t(f"assessment.by.{by}", lang)
    )
    return out.rename(columns={c: t(f"assessment.col.{c}", lang) for c in out.columns})


def export_bytes(table: pd.DataFrame, by: str, lang: str) -> tuple[bytes, str]:
    """The table as an Excel file (via ``workorders.assessment.export``): content and suffix."""
    with tempfile.TemporaryDirectory(prefix="gridcc-assessment-") as d:
        out = export(export_frame(table, by, lang), Path(d) / "assessment.xlsx")
        return out.read_bytes(), out.suffix


def trend_figures(trend: pd.DataFrame, lang: str) -> tuple[go.Figure, go.Figure]:
    """Received per week (bars) and on-time rate per week (line, percent)."""
    weeks = [_local(int(w)).strftime("%Y-%m-%d") for w in trend["week_ms"]]
    rates = [
        None if pd.isna(v) else round(float(v) * 100, 1) for v in trend["on_time_rate"].tolist()
    ]
    base: dict[str, Any] = {
        "template": "plotly_dark",
        "paper_bgcolor": "#10243a",
        "plot_bgcolor": "#0b1a2b",
        "margin": {"l": 48, "r": 16, "t": 40, "b": 40},
        "height": 260,
        "font": {"family": "Noto Sans CJK SC, sans-serif", "color": "#e6f1ff"},
        "xaxis": {"title": {"text": t("assessment.chart.week", lang)}, "type": "category"},
    }
    received = go.Figure(
        go.Bar(
            x=weeks,
            y=[int(v) for v in trend["received"]],
            name=t("assessment.col.received", lang),
            marker_color="#4cc9f0",
        )
    )
    received.update_layout(
        title={"text": t("assessment.chart.received", lang)},
        yaxis={"title": {"text": t("assessment.col.received", lang)}, "rangemode": "tozero"},
        **base,
    )
    on_time = go.Figure(
        go.Scatter(
            x=weeks,
            y=rates,
            mode="lines+markers",
            name=t("assessment.col.on_time_rate", lang),
            line={"color": "#80ed99"},
            connectgaps=False,
        )
    )
    on_time.update_layout(
        title={"text": t("assessment.chart.on_time", lang)},
        yaxis={"title": {"text": "%"}, "range": [0, 105]},
        **base,
    )
    return received, on_time


def supervised_rows(recs: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    return [
        {
            "order_id": x.get("order_id", ""),
            "place": group_label(str(x.get("code") or "")[:9], "township", lang),
            "dept": x.get("dept") or "—",
            "stage": t(f"assessment.stage.{x.get('stage') or 'handling'}", lang),
            "to": group_label(str(x.get("to") or ""), "district", lang),
            "deadline": fmt_local(x.get("deadline_ms")),
            "when": fmt_local(x.get("ts_ms")),
        }
        for x in recs
    ]


def discipline_rows(recs: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    return [
        {
            "order_id": x.get("order_id", ""),
            "place": group_label(str(x.get("code") or "")[:9], "township", lang),
            "category": x.get("category") or "—",
            "rule": t(f"assessment.rule.{x.get('reason')}", lang)
            if f"assessment.rule.{x.get('reason')}" in _rule_keys()
            else str(x.get("reason")),
            "detail": x.get("detail") or "",
            "when": fmt_local(x.get("ts_ms")),
        }
        for x in recs
    ]


def _rule_keys() -> set[str]:
    from i18n import labels

    return {k for k in labels() if k.startswith("assessment.rule.")}


@dataclass
class PageData:
    period: Period
    table: pd.DataFrame
    trend: pd.DataFrame
    supervised: list[dict[str, Any]]
    discipline: list[dict[str, Any]]


def page_data(
    r: redis.Redis, scope: Scope, by: str, period: Period, as_of_ms: int | None = None
) -> PageData:
    """Everything the page shows for one scope, grouping and period (one read of the orders)."""
    if by not in GROUPS:
        raise ValueError(f"group by {by!r}: use one of {', '.join(GROUPS)}")
    as_of = now_ms() if as_of_ms is None else as_of_ms
    df = acc.scoped_orders(r, scope, period.start_ms, period.end_ms)
    return PageData(
        period=period,
        table=assess(df, by, period.start_ms, period.end_ms, as_of),
        trend=acc.weekly_trend(df, as_of),
        supervised=acc.supervised_for(r, scope),
        discipline=acc.discipline_for(r, scope),
    )
