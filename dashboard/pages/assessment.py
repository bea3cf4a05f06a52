"""考核督办: assessment figures per department, township and district over a period, weekly
trends, the escalated (督办) and discipline-inspection lists, and the Excel export."""

from __future__ import annotations

import logging
from typing import Any

from dash import Dash, Input, Output, State, dcc, html
from dash import no_update as nu
from dash.dash_table.DataTable import DataTable

from core.store import get_redis
from core.timeutil import now_ms
from dashboard import data
from dashboard.pages import assessment_logic as logic
from dashboard.pages.devices import TABLE_STYLE
from i18n import normalize_lang, t

log = logging.getLogger("gridcc.dashboard.assessment")

PATH = "/assessment"
TITLE_KEY = "assessment.page.title"
P = "assessment"
SUP_COLS = ("order_id", "place", "dept", "stage", "to", "deadline", "when")
DIS_COLS = ("order_id", "place", "category", "rule", "detail", "when")
# Plotly's own bundle is served by the web role; these keep the chart from offering
# anything that would call out (no link to the chart studio, no logo).
GRAPH_CONFIG: Any = {"displaylogo": False, "showLink": False, "showSendToCloud": False}


def _fid(name: str) -> str:
    return f"{P}-{name}"


def _radio(name: str, values: tuple[str, ...], prefix: str, value: str, lang: str) -> Any:
    return dcc.RadioItems(
        id=_fid(name),
        options=[{"label": t(f"{prefix}.{v}", lang), "value": v} for v in values],
        value=value,
        inline=True,
        className="as-radio",
    )


def _list_table(name: str, cols: tuple[str, ...], lang: str) -> DataTable:
    return DataTable(
        id=_fid(name),
        columns=[{"id": c, "name": t(f"assessment.{name}.{c}", lang)} for c in cols],
        data=[],
        page_size=10,
        **TABLE_STYLE,
    )


def layout(lang: str | None = None) -> html.Div:
    lang = normalize_lang(lang)
    other = "en" if lang == "zh-CN" else "zh-CN"
    return html.Div(
        [
            dcc.Store(id=_fid("lang"), data=lang),
            dcc.Download(id=_fid("download")),
            html.Header(
                [
                    html.H1(t(TITLE_KEY, lang), className="gc-title", id=_fid("title")),
                    html.A(t("assessment.back", lang), href=f"/?lang={lang}", className="gc-lang"),
                    html.A(
                        t("app.lang_toggle", lang),
                        href=f"{PATH}?lang={other}",
                        className="gc-lang",
                        id=_fid("lang-toggle"),
                    ),
                ],
                className="gc-header",
            ),
            html.Section(
                [
                    html.Div(
                        [
                            html.Label(t("assessment.period", lang), htmlFor=_fid("period")),
                            _radio("period", logic.PERIODS, "assessment.period", "month", lang),
                            dcc.DatePickerRange(
                                id=_fid("dates"),
                                display_format="YYYY-MM-DD",
                                first_day_of_week=1,
                                start_date_placeholder_text=t("assessment.dates.start", lang),
                                end_date_placeholder_text=t("assessment.dates.end", lang),
                                className="as-dates",
                            ),
                        ],
                        className="as-row",
                    ),
                    html.Div(
                        [
                            html.Label(t("assessment.group", lang), htmlFor=_fid("by")),
                            _radio("by", logic.GROUPS, "assessment.by", "dept", lang),
                            html.Button(
                                t("assessment.export", lang),
                                id=_fid("export"),
                                className="gc-btn",
                                n_clicks=0,
                            ),
                            html.Button(
                                t("assessment.refresh", lang),
                                id=_fid("refresh"),
                                className="gc-btn",
                                n_clicks=0,
                            ),
                        ],
                        className="as-row",
                    ),
                    html.Div(id=_fid("range"), className="as-note"),
                    html.Div(id=_fid("msg"), className="as-msg", role="status"),
                ],
                className="as-panel",
            ),
            html.Section(
                [
                    html.H2(t("assessment.table", lang)),
                    DataTable(
                        id=_fid("table"),
                        columns=logic.table_columns("dept", lang),
                        data=[],
                        page_size=20,
                        sort_action="native",
                        style_table={"overflowX": "auto", "minWidth": "100%"},
                        **{k: v for k, v in TABLE_STYLE.items() if k != "style_table"},
                    ),
                    html.Div(t("assessment.definitions", lang), className="as-note"),
                ],
                className="as-panel",
            ),
            html.Section(
                [
                    html.H2(t("assessment.trend", lang)),
                    html.Div(
                        [
                            dcc.Graph(id=_fid("chart-received"), config=GRAPH_CONFIG),
                            dcc.Graph(id=_fid("chart-ontime"), config=GRAPH_CONFIG),
                        ],
                        className="as-charts",
                    ),
                ],
                className="as-panel",
            ),
            html.Div(
                [
                    html.Section(
                        [
                            html.H2(t("assessment.supervised.title", lang)),
                            _list_table("sup", SUP_COLS, lang),
                        ],
                        className="as-panel",
                    ),
                    html.Section(
                        [
                            html.H2(t("assessment.discipline.title", lang)),
                            _list_table("dis", DIS_COLS, lang),
                        ],
                        className="as-panel",
                    ),
                ],
                className="as-lists",
            ),
        ],
        className="as-page",
        lang=lang,
    )


def _period(kind: str | None, start: str | None, end: str | None) -> logic.Period:
    return logic.period_range(kind or "month", start, end)


def register(app: Dash) -> None:
    @app.callback(
        Output(_fid("dates"), "disabled"),
        Input(_fid("period"), "value"),
    )
    def on_kind(kind: str | None) -> bool:
        return kind != "custom"

    @app.callback(
        Output(_fid("table"), "columns"),
        Output(_fid("table"), "data"),
        Output(_fid("chart-received"), "figure"),
        Output(_fid("chart-ontime"), "figure"),
        Output(_fid("sup"), "data"),
        Output(_fid("dis"), "data"),
        Output(_fid("range"), "children"),
        Output(_fid("msg"), "children"),
        Input(_fid("period"), "value"),
        Input(_fid("dates"), "start_date"),
        Input(_fid("dates"), "end_date"),
        Input(_fid("by"), "value"),
        Input(_fid("refresh"), "n_clicks"),
        State(_fid("lang"), "data"),
    )
    def on_view(
        kind: str | None,
        start: str | None,
        end: str | None,
        by: str | None,
        _n: Any,
        lang: str,
    ) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        by = by if by in logic.GROUPS else "dept"
        keep = (nu,) * 7
        try:
            period = _period(kind, start, end)
        except logic.PeriodError as exc:
            return *keep, f"{t('assessment.bad_period', lang)}：{exc.text(lang)}"
        got = data.guarded(
            lambda: logic.page_data(get_redis(), data.screen_scope(), by, period, now_ms())
        )
        if got is None:
            return *keep, t("data.down", lang)
        fig_recv, fig_rate = logic.trend_figures(got.trend, lang)
        n = int(got.table["received"].sum()) if not got.table.empty else 0
        summary = t("assessment.summary", lang).format(period=period.label(), n=n)
        return (
            logic.table_columns(by, lang),
            logic.table_rows(got.table, by, lang),
            fig_recv,
            fig_rate,
            logic.supervised_rows(got.supervised, lang),
            logic.discipline_rows(got.discipline, lang),
            summary,
            "" if n else t("assessment.empty", lang),
        )

    @app.callback(
        Output(_fid("download"), "data"),
        Output(_fid("msg"), "children", allow_duplicate=True),
        Input(_fid("export"), "n_clicks"),
        State(_fid("period"), "value"),
        State(_fid("dates"), "start_date"),
        State(_fid("dates"), "end_date"),
        State(_fid("by"), "value"),
        State(_fid("lang"), "data"),
        prevent_initial_call=True,
    )
    def on_export(
        n: int | None,
        kind: str | None,
        start: str | None,
        end: str | None,
        by: str | None,
        lang: str,
    ) -> tuple[Any, Any]:
        lang = normalize_lang(lang)
        if not n:
            return nu, nu
        by = by if by in logic.GROUPS else "dept"
        try:
            period = _period(kind, start, end)
        except logic.PeriodError as exc:
            return nu, f"{t('assessment.bad_period', lang)}：{exc.text(lang)}"
        got = data.guarded(
            lambda: logic.page_data(get_redis(), data.screen_scope(), by, period, now_ms())
        )
        if got is None:
            return nu, t("data.down", lang)
        content, suffix = logic.export_bytes(got.table, by, lang)
        stamp = period.label()[:10]
        name = f"{t('assessment.file', lang)}-{t(f'assessment.by.{by}', lang)}-{stamp}{suffix}"
        log.info("assessment export by %s, %d rows", by, len(got.table))
        return dcc.send_bytes(content, name), t("assessment.exported", lang).format(name=name)
