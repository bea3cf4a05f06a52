"""设备管理: the device team's page — register, import, health, unknown devices."""

from __future__ import annotations

import logging
from typing import Any

import dash_leaflet as dl
from dash import Dash, Input, Output, State, ctx, dcc, html
from dash import no_update as nu
from dash.dash_table.DataTable import DataTable

from core.store import get_redis
from dashboard import data, mapdata
from dashboard.pages import devices_logic as logic
from dashboard.pages import push_listener
from i18n import normalize_lang, t

log = logging.getLogger("gridcc.dashboard.devices")

PATH = "/devices"
TITLE_KEY = "devices.title"
P = "devices"  # component id prefix
INPUT_FIELDS = ("id", "name", "lon", "lat", "topic")
ERROR_FIELDS = ("id", "name", "type", "profile", "lon", "lat", "crs", "topic")
HEALTH_COLS = (
    ("id", "devices.col.id", "text"),
    ("name", "devices.col.name", "text"),
    ("type", "devices.col.type", "text"),
    ("status", "devices.col.status", "text"),
    ("last_seen", "devices.col.last_seen", "text"),
    ("rate_per_min", "devices.col.rate", "numeric"),
    ("battery", "devices.col.battery", "numeric"),
    ("signal", "devices.col.signal", "numeric"),
    ("grid", "devices.col.grid", "text"),
)
UNKNOWN_COLS = (
    ("topic", "devices.unknown.topic", "text"),
    ("first_seen", "devices.unknown.first", "text"),
    ("last_seen", "devices.unknown.last", "text"),
    ("count", "devices.unknown.count", "numeric"),
)
# DataTable styles its cells inline, so the dark theme goes in here rather than in CSS.
TABLE_STYLE: dict[str, Any] = {
    "style_as_list_view": True,
    "style_table": {"overflowX": "auto"},
    "style_cell": {
        "textAlign": "left",
        "whiteSpace": "normal",
        "backgroundColor": "#10243a",
        "color": "#e6f1ff",
        "border": "1px solid #1f3b5a",
        "fontFamily": "inherit",
        "fontSize": "0.95rem",
        "padding": "0.3rem 0.5rem",
    },
    "style_header": {"backgroundColor": "#17395c", "fontWeight": 700, "color": "#e6f1ff"},
    "style_filter": {"backgroundColor": "#06101c", "color": "#e6f1ff"},
}
_COUNTY_STYLE = {"color": "#4cc9f0", "weight": 1.5, "fillOpacity": 0.05}


def _fid(name: str) -> str:
    return f"{P}-{name}"


def _text_input(name: str) -> dcc.Input:
    return dcc.Input(id=_fid(name), type="text", className="dv-input")


def _field(label: str, control: Any, name: str) -> html.Div:
    return html.Div(
        [
            html.Label(label, htmlFor=_fid(name)),
            control,
            html.Div(id=_fid(f"err-{name}"), className="dv-err", role="alert"),
        ],
        className="dv-field",
    )


def register_panel(lang: str) -> html.Section:
    return html.Section(
        [
            html.H2(t("devices.register.title", lang)),
            html.Div(
                [
                    _field(t("devices.field.id", lang), _text_input("id"), "id"),
                    _field(t("devices.field.name", lang), _text_input("name"), "name"),
                    _field(
                        t("devices.field.type", lang),
                        dcc.Dropdown(
                            id=_fid("type"),
                            options=logic.type_options(lang),
                            placeholder=t("devices.choose", lang),
                            className="dv-dd",
                        ),
                        "type",
                    ),
                    _field(
                        t("devices.field.profile", lang),
                        dcc.Dropdown(
                            id=_fid("profile"),
                            options=[],
                            placeholder=t("devices.choose", lang),
                            className="dv-dd",
                        ),
                        "profile",
                    ),
                    _field(t("devices.field.lon", lang), _text_input("lon"), "lon"),
                    _field(t("devices.field.lat", lang), _text_input("lat"), "lat"),
                    _field(
                        t("devices.field.crs", lang),
                        dcc.RadioItems(
                            id=_fid("crs"),
                            options=[
                                {"label": t(f"devices.crs.{c}", lang), "value": c}
                                for c in logic.CRS_OPTIONS
                            ],
                            value="wgs84",
                            inline=True,
                            className="dv-radio",
                        ),
                        "crs",
                    ),
                    _field(t("devices.field.topic", lang), _text_input("topic"), "topic"),
                ],
                className="dv-form",
                id=_fid("form"),
            ),
            html.Div(t("devices.map_hint", lang), className="dv-note"),
            dl.Map(
                [
                    dl.GeoJSON(data=mapdata.boundaries("county", lang), style=_COUNTY_STYLE),
                    dl.LayerGroup(id=_fid("pick")),
                ],
                id=_fid("map"),
                bounds=mapdata.city_bounds(),
                className="dv-map",
                trackViewport=False,
                attributionControl=False,
            ),
            html.Button(
                t("devices.register.submit", lang),
                id=_fid("submit"),
                className="gc-btn",
                n_clicks=0,
            ),
            html.Div(id=_fid("msg"), className="dv-msg", role="status"),
            html.Div(id=_fid("result"), className="dv-result"),
        ],
        className="gc-panel dv-panel",
    )


def import_panel(lang: str) -> html.Section:
    return html.Section(
        [
            html.H2(t("devices.import.title", lang)),
            dcc.Upload(
                html.Div(t("devices.import.drop", lang)),
                id=_fid("upload"),
                className="dv-upload",
                multiple=False,
                # The browser takes any size so the server can say why a big file is refused.
                max_size=-1,
            ),
            html.Div(t("devices.import.columns", lang), className="dv-note"),
            html.Div(id=_fid("import-msg"), className="dv-msg", role="status"),
            DataTable(
                id=_fid("import-report"),
                columns=[
                    {"id": c, "name": t(f"devices.import.{c}", lang)}
                    for c in ("row", "column", "reason")
                ],
                data=[],
                page_size=10,
                **TABLE_STYLE,
            ),
            dcc.Checklist(
                id=_fid("store-good"),
                options=[{"label": t("devices.import.store_good", lang), "value": "yes"}],
                value=[],
                className="dv-check",
            ),
            html.Button(
                t("devices.import.confirm", lang),
                id=_fid("import-confirm"),
                className="gc-btn",
                n_clicks=0,
                disabled=True,
            ),
            dcc.Store(id=_fid("import-rows")),
        ],
        className="gc-panel dv-panel",
    )


def _table(tid: str, cols: tuple[tuple[str, str, str], ...], lang: str) -> DataTable:
    columns: list[Any] = [{"id": c, "name": t(k, lang), "type": typ} for c, k, typ in cols]
    return DataTable(
        id=_fid(tid),
        columns=columns,
        data=[],
        sort_action="native",
        filter_action="native",
        filter_options={"placeholder_text": t("devices.filter", lang), "case": "insensitive"},
        row_selectable="single",
        selected_rows=[],
        page_size=15,
        **TABLE_STYLE,
    )


def health_panel(lang: str) -> html.Section:
    return html.Section(
        [
            html.H2(t("devices.health.title", lang)),
            _table("health", HEALTH_COLS, lang),
            html.Div(
                [
                    dcc.Input(
                        id=_fid("decom-reason"),
                        placeholder=t("devices.decommission.reason", lang),
                        className="dv-input",
                        maxLength=200,
                    ),
                    html.Button(
                        t("devices.decommission", lang),
                        id=_fid("decom"),
                        className="gc-btn danger",
                        n_clicks=0,
                    ),
                ],
                className="dv-actions",
            ),
            html.Div(id=_fid("decom-msg"), className="dv-msg", role="status"),
        ],
        className="gc-panel dv-panel",
    )


def unknown_panel(lang: str) -> html.Section:
    return html.Section(
        [
            html.H2(t("devices.unknown.title", lang)),
            _table("unknown", UNKNOWN_COLS, lang),
            html.Div(
                [
                    html.Button(
                        t("devices.unknown.claim", lang),
                        id=_fid("claim"),
                        className="gc-btn",
                        n_clicks=0,
                    ),
                    html.Button(
                        t("devices.unknown.block", lang),
                        id=_fid("block"),
                        className="gc-btn danger",
                        n_clicks=0,
                    ),
                ],
                className="dv-actions",
            ),
            html.Div(id=_fid("unknown-msg"), className="dv-msg", role="status"),
        ],
        className="gc-panel dv-panel",
    )


def layout(lang: str | None = None) -> html.Div:
    lang = normalize_lang(lang)
    return html.Div(
        [
            dcc.Store(id=_fid("lang"), data=lang),
            dcc.Store(id=_fid("changed"), data=0),
            *push_listener.components(P),
            push_listener.header(P, PATH, t("devices.title", lang), t("devices.back", lang), lang),
            html.Div(
                [
                    html.Div([register_panel(lang), import_panel(lang)], className="dv-col"),
                    html.Div([health_panel(lang), unknown_panel(lang)], className="dv-col wide"),
                ],
                className="dv-main",
            ),
        ],
        className="dv-page",
        lang=lang,
    )


def _result_view(out: logic.RegisterOutcome, lang: str) -> html.Div:
    dev = out.device
    assert dev is not None
    grid = dev.place.grid if dev.place and dev.place.grid else "—"
    rows: list[tuple[str, Any]] = [
        (t("devices.result.status", lang), html.Span(out.status, id=_fid("result-status"))),
        (t("devices.result.topic", lang), html.Code(out.topic, id=_fid("result-topic"))),
        (t("devices.result.format", lang), out.payload_format),
        (t("devices.result.grid", lang), grid),
    ]
    return html.Div(
        [
            html.Dl([x for k, v in rows for x in (html.Dt(k), html.Dd(v))]),
            html.Div(t("devices.result.payload", lang), className="dv-note"),
            html.Pre(out.payload, id=_fid("result-payload"), className="dv-pre"),
        ]
    )


def register(app: Dash) -> None:
    push_listener.register(app, P, ("device", "dead"))

    @app.callback(
        Output(_fid("profile"), "options"),
        Output(_fid("profile"), "value"),
        Input(_fid("type"), "value"),
        State(_fid("profile"), "value"),
    )
    def on_type(type_key: str | None, current: str | None) -> tuple[Any, ...]:
        opts = logic.profile_options(type_key)
        keep = current if any(o["value"] == current for o in opts) else None
        return opts, keep

    @app.callback(
        Output(_fid("lon"), "value", allow_duplicate=True),
        Output(_fid("lat"), "value", allow_duplicate=True),
        Output(_fid("crs"), "value", allow_duplicate=True),
        Input(_fid("map"), "clickData"),
        prevent_initial_call=True,
    )
    def on_map_click(click: dict[str, Any] | None) -> tuple[Any, ...]:
        ll = (click or {}).get("latlng") or {}
        if "lat" not in ll or "lng" not in ll:
            return nu, nu, nu
        # The map is drawn in WGS84, so a picked point is WGS84.
        return f"{float(ll['lng']):.6f}", f"{float(ll['lat']):.6f}", "wgs84"

    @app.callback(
        Output(_fid("pick"), "children"),
        Input(_fid("lon"), "value"),
        Input(_fid("lat"), "value"),
        Input(_fid("crs"), "value"),
    )
    def on_point(lon: Any, lat: Any, crs: str | None) -> Any:
        x, y = logic._number(lon), logic._number(lat)
        if x is None or y is None or not (-180 <= x <= 180 and -90 <= y <= 90):
            return []
        if crs == "gcj02":
            from grids.coords import gcj02_to_wgs84

            x, y = gcj02_to_wgs84(x, y)
        return [dl.CircleMarker(center=[y, x], radius=7, color="#ffffff", fillColor="#ff8a00")]

    @app.callback(
        *[Output(_fid(f"err-{f}"), "children") for f in ERROR_FIELDS],
        Output(_fid("msg"), "children"),
        Output(_fid("msg"), "className"),
        Output(_fid("result"), "children"),
        Output(_fid("changed"), "data", allow_duplicate=True),
        Input(_fid("submit"), "n_clicks"),
        *[
            State(_fid(f), "value")
            for f in ("id", "name", "type", "profile", "lon", "lat", "crs", "topic")
        ],
        State(_fid("lang"), "data"),
        State(_fid("changed"), "data"),
        prevent_initial_call=True,
    )
    def on_submit(_n: int, *args: Any) -> tuple[Any, ...]:
        *values, lang, changed = args
        lang = normalize_lang(lang)
        form = dict(
            zip(
                ("id", "name", "type", "profile", "lon", "lat", "crs", "topic"), values, strict=True
            )
        )
        try:
            out = logic.register_from_form(get_redis(), form, lang)
        except data.DATA_ERRORS as exc:
            log.warning("register failed: %s", exc)
            msg = f"{t('devices.err.failed', lang)}：{t('data.down', lang)}"
            return (*[""] * len(ERROR_FIELDS), msg, "dv-msg bad", nu, nu)
        errs = [out.errors.get(f, "") for f in ERROR_FIELDS]
        if not out.ok:
            return (*errs, out.message, "dv-msg bad", [], nu)
        return (*errs, out.message, "dv-msg ok", _result_view(out, lang), (changed or 0) + 1)

    @app.callback(
        Output(_fid("health"), "data"),
        Output(_fid("unknown"), "data"),
        Input(_fid("sig"), "data"),
        Input(_fid("changed"), "data"),
        State(_fid("lang"), "data"),
    )
    def on_refresh(_sig: Any, _changed: Any, lang: str) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        scope = data.screen_scope()
        r = get_redis()
        rows = data.guarded(lambda: logic.health_table(r, scope, lang))
        unknown = data.guarded(lambda: logic.unknown_table(r, scope))
        # Down: keep what is shown; the push dot says the stream is gone.
        return (nu if rows is None else rows), (nu if unknown is None else unknown)

    @app.callback(
        Output(_fid("import-msg"), "children"),
        Output(_fid("import-msg"), "className"),
        Output(_fid("import-report"), "data"),
        Output(_fid("import-rows"), "data"),
        Output(_fid("import-confirm"), "disabled"),
        Output(_fid("changed"), "data", allow_duplicate=True),
        Input(_fid("upload"), "contents"),
        Input(_fid("import-confirm"), "n_clicks"),
        State(_fid("upload"), "filename"),
        State(_fid("import-rows"), "data"),
        State(_fid("store-good"), "value"),
        State(_fid("lang"), "data"),
        State(_fid("changed"), "data"),
        prevent_initial_call=True,
    )
    def on_import(
        contents: str | None,
        _n: int,
        filename: str | None,
        rows: list[dict[str, str]] | None,
        store_good: list[str] | None,
        lang: str,
        changed: int | None,
    ) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        r = get_redis()
        try:
            if ctx.triggered_id == _fid("upload"):
                out = logic.import_check(r, contents, filename, lang)
                cls = "dv-msg ok" if out.ok and not out.bad_rows else "dv-msg bad"
                return out.message, cls, out.report, out.rows, not out.ok, nu
            out = logic.import_store(r, rows, "yes" in (store_good or []), lang)
        except data.DATA_ERRORS as exc:
            log.warning("import failed: %s", exc)
            return (
                f"{t('devices.err.failed', lang)}：{t('data.down', lang)}",
                "dv-msg bad",
                nu,
                nu,
                nu,
                nu,
            )
        if not out.ok:
            return out.message, "dv-msg bad", out.report, nu, nu, nu
        # Stored: the same file cannot be stored twice.
        return out.message, "dv-msg ok", out.report, None, True, (changed or 0) + 1

    @app.callback(
        Output(_fid("decom-msg"), "children"),
        Output(_fid("decom-msg"), "className"),
        Output(_fid("decom-reason"), "value"),
        Output(_fid("changed"), "data", allow_duplicate=True),
        Input(_fid("decom"), "n_clicks"),
        State(_fid("health"), "selected_row_ids"),
        State(_fid("decom-reason"), "value"),
        State(_fid("lang"), "data"),
        State(_fid("changed"), "data"),
        prevent_initial_call=True,
    )
    def on_decommission(
        _n: int,
        selected: list[str] | None,
        reason: str | None,
        lang: str,
        changed: int | None,
    ) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        device_id = str(selected[0]) if selected else None
        try:
            ok, msg = logic.decommission_device(
                get_redis(), data.screen_scope(), device_id, reason, lang
            )
        except data.DATA_ERRORS:
            return f"{t('devices.err.failed', lang)}：{t('data.down', lang)}", "dv-msg bad", nu, nu
        if not ok:
            return msg, "dv-msg bad", nu, nu
        return msg, "dv-msg ok", "", (changed or 0) + 1

    @app.callback(
        Output(_fid("unknown-msg"), "children"),
        Output(_fid("unknown-msg"), "className"),
        Output(_fid("topic"), "value"),
        Output(_fid("id"), "value"),
        Output(_fid("type"), "value"),
        Output(_fid("profile"), "value", allow_duplicate=True),
        Output(_fid("changed"), "data", allow_duplicate=True),
        Input(_fid("claim"), "n_clicks"),
        Input(_fid("block"), "n_clicks"),
        State(_fid("unknown"), "selected_row_ids"),
        State(_fid("lang"), "data"),
        State(_fid("changed"), "data"),
        prevent_initial_call=True,
    )
    def on_unknown(
        _c: int,
        _b: int,
        selected: list[str] | None,
        lang: str,
        changed: int | None,
    ) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        topic = str(selected[0]) if selected else None
        if not topic:
            return t("devices.unknown.need_row", lang), "dv-msg bad", nu, nu, nu, nu, nu
        if ctx.triggered_id == _fid("claim"):
            pre = logic.claim_prefill(topic)
            return (
                t("devices.unknown.claimed", lang),
                "dv-msg ok",
                pre["topic"],
                pre["id"],
                pre["type"] or nu,
                pre["profile"] or nu,
                nu,
            )
        try:
            ok, msg = logic.block_topic(get_redis(), topic, lang)
        except data.DATA_ERRORS:
            return (
                f"{t('devices.err.failed', lang)}：{t('data.down', lang)}",
                "dv-msg bad",
                nu,
                nu,
                nu,
                nu,
                nu,
            )
        return (
            msg,
            ("dv-msg ok" if ok else "dv-msg bad"),
            nu,
            nu,
            nu,
            nu,
            (changed or 0) + 1 if ok else nu,
        )
