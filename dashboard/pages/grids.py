"""The electronic grid map (电子网格地图): drill city → county → township → village → grid.

Each level draws its children's boundaries coloured by open orders, with open alarms and
offline devices in the tooltip and the table; the side panel shows the unit, its six
elements and, for a grid, its staff with personal fields masked. The drawn level can be
downloaded as GeoJSON and printed.

``/grids?code=410102&grids=all`` opens at a unit, optionally with every grid below it.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlparse

import dash
import dash_leaflet as dl
import redis
from dash import ALL, Input, Output, State, dcc, html
from dash_extensions.javascript import Namespace
from flask import has_request_context, request

from access import grids as agrids
from core.config import get_settings
from dashboard import data, mapdata
from dashboard.pages import grids_view as gv
from grids.codes import CodeError
from grids.dataset import UnitNotFound
from i18n import normalize_lang, t

log = logging.getLogger("gridcc.dashboard.grids")

PATH = "/grids"
TITLE_KEY = "grids.title"

UNIT_FN = Namespace("gridccGrids", "map")
DEVICE_FN = Namespace("gridcc", "map")
LOOKUP_ERRORS = (agrids.OutOfScope, UnitNotFound, CodeError)


def _query() -> dict[str, str]:
    """The page's query string: Dash fetches the layout by XHR, so it is read from the referrer."""
    if not has_request_context():
        return {}
    q = {k: v[0] for k, v in parse_qs(urlparse(request.referrer or "").query).items() if v}
    q.update({k: v for k, v in request.args.items() if v})
    return q


def _viewport(view: gv.View) -> dict[str, Any]:
    return {"bounds": view.bounds, "transition": "fitBounds", "options": {"animate": False}}


def _error_text(exc: Exception, lang: str) -> str:
    key = "grids.out_of_scope" if isinstance(exc, agrids.OutOfScope) else "grids.not_found"
    return f"{t(key, lang)}：{exc}"


def _view(code: str, lang: str, all_grids: bool, r: redis.Redis | None = None) -> gv.View:
    return gv.build(data.screen_scope(), code, lang, all_grids, r)


def map_panel(view: gv.View, lang: str) -> html.Div:
    settings = get_settings()
    layers: list[Any] = []
    if settings.tile_url:
        layers.append(dl.TileLayer(url=settings.tile_url, attribution=settings.tile_attribution))
    layers += [
        dl.GeoJSON(
            id="grids-layer",
            data=view.layer,
            style=UNIT_FN("unitStyle"),
            onEachFeature=UNIT_FN("unitTooltip"),
            hideout=gv.hideout(lang),
            hoverStyle={"weight": 3, "color": "#ffffff"},
        ),
        dl.GeoJSON(
            id="grids-devices",
            data=mapdata.markers_geojson(view.markers or []),
            cluster=True,
            zoomToBoundsOnClick=True,
            superClusterOptions={"radius": 60, "maxZoom": 16},
            pointToLayer=DEVICE_FN("pointToLayer"),
            clusterToLayer=DEVICE_FN("clusterToLayer"),
        ),
    ]
    return html.Div(
        [
            dl.Map(
                layers,
                id="grids-map",
                bounds=view.bounds,
                viewport=_viewport(view),
                trackViewport=False,
                className="gc-map gc-grids-map",
                zoomSnap=0.25,
                attributionControl=bool(settings.tile_url),
            ),
            html.Div(gv.legend(view, lang), className="gc-legend", id="grids-legend"),
        ],
        className="gc-map-wrap gc-grids-map-wrap",
    )


def _side(view: gv.View, lang: str) -> list[Any]:
    return [
        html.Div(gv.unit_card(view, lang), className="gc-panel gc-grids-card", id="grids-card"),
        html.Div(gv.elements_panel(view.elements, lang), className="gc-panel", id="grids-elements"),
        html.Div(gv.staff_panel(view, lang), className="gc-panel", id="grids-staff-panel")
        if view.staff is not None
        else None,
    ]


def layout(lang: str | None = None, r: redis.Redis | None = None) -> html.Div:
    lang = normalize_lang(lang)
    q = _query()
    scope = data.screen_scope()
    all_grids = q.get("grids") == "all"
    msg = ""
    code = q.get("code") or scope.jurisdiction
    try:
        view = _view(code, lang, all_grids, r)
    except LOOKUP_ERRORS as exc:
        msg = _error_text(exc, lang)
        code = scope.jurisdiction
        view = _view(code, lang, all_grids, r)
    other = "en" if lang == "zh-CN" else "zh-CN"
    return html.Div(
        [
            dcc.Store(id="grids-lang", data=lang),
            dcc.Store(id="grids-state", data={"code": view.unit.code, "all": all_grids}),
            dcc.Store(id="grids-printed"),
            dcc.Download(id="grids-download"),
            html.Header(
                [
                    html.H1(t("grids.title", lang), className="gc-title", id="grids-title"),
                    html.A(t("grids.home", lang), href=f"/?lang={lang}", className="gc-lang"),
                    html.A(
                        t("app.lang_toggle", lang),
                        href=f"{PATH}?lang={other}",
                        className="gc-lang gc-grids-langlink",
                    ),
                ],
                className="gc-header",
            ),
            html.Div(
                t("data.down_banner", lang),
                id="grids-outage",
                className="gc-outage",
                role="alert",
                style={"display": "block" if view.down else "none"},
            ),
            html.Div(
                [
                    html.Nav(
                        gv.crumbs(view, lang),
                        id="grids-crumbs",
                        className="gc-grids-crumbs",
                        **gv.aria(label=t("grids.crumbs", lang)),
                    ),
                    html.Button(
                        t("grids.back", lang), id="grids-back", className="gc-btn", n_clicks=0
                    ),
                    dcc.Checklist(
                        id="grids-all",
                        options=[{"label": t("grids.all_grids", lang), "value": "all"}],
                        value=["all"] if all_grids else [],
                        className="gc-grids-check",
                    ),
                    html.Button(
                        t("grids.export", lang), id="grids-export", className="gc-btn", n_clicks=0
                    ),
                    html.Button(
                        t("grids.print", lang), id="grids-print", className="gc-btn", n_clicks=0
                    ),
                    html.Span(msg, id="grids-msg", className="gc-msg"),
                ],
                className="gc-grids-toolbar",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            map_panel(view, lang),
                            html.Div(
                                gv.children_table(view, lang),
                                className="gc-panel gc-grids-tablewrap",
                                id="grids-table-panel",
                            ),
                        ],
                        className="gc-grids-left",
                    ),
                    html.Div(_side(view, lang), className="gc-grids-side", id="grids-side"),
                ],
                className="gc-grids-main",
            ),
        ],
        className="gc-page gc-grids-page",
        lang=lang,
    )


def _target(
    trig: Any, value: Any, click: dict[str, Any] | None, state: dict[str, Any]
) -> str | None:
    """The unit a user action asks for, or None when the action asks for nothing."""
    if trig == "grids-layer":
        # dash-leaflet's clickData of a GeoJSON layer is the clicked feature itself.
        props = (click or {}).get("properties") or {}
        code = props.get("code")
        return str(code) if code and code != state.get("code") else None
    if isinstance(trig, dict) and trig.get("type") == "grids-crumb":
        # A crumb drawn anew reports n_clicks 0: that is no click.
        return str(trig["code"]) if value else None
    if trig == "grids-back":
        crumbs = agrids.breadcrumbs(data.screen_scope(), str(state.get("code")))
        return crumbs[-2].code if len(crumbs) > 1 else None
    return None


def register(app: dash.Dash) -> None:
    @app.callback(
        Output("grids-state", "data"),
        Output("grids-msg", "children"),
        Input("grids-layer", "n_clicks"),
        Input({"type": "grids-crumb", "code": ALL}, "n_clicks"),
        Input("grids-back", "n_clicks"),
        Input("grids-all", "value"),
        State("grids-layer", "clickData"),
        State("grids-state", "data"),
        State("grids-lang", "data"),
        prevent_initial_call=True,
    )
    def navigate(
        _n: Any, _crumbs: Any, _back: Any, all_value: Any, click: Any, state: Any, lang: Any
    ) -> tuple[Any, Any]:
        state = dict(state or {})
        trig = dash.ctx.triggered_id
        if trig == "grids-all":
            want = bool(all_value)
            if want == bool(state.get("all")):
                return dash.no_update, dash.no_update
            return {**state, "all": want}, ""
        value = dash.ctx.triggered[0]["value"] if dash.ctx.triggered else None
        try:
            code = _target(trig, value, click, state)
            if code is None:
                return dash.no_update, dash.no_update
            agrids.unit_in_scope(data.screen_scope(), code)
        except LOOKUP_ERRORS as exc:
            return dash.no_update, _error_text(exc, lang)
        return {**state, "code": code}, ""

    @app.callback(
        Output("grids-layer", "data"),
        Output("grids-devices", "data"),
        Output("grids-map", "viewport"),
        Output("grids-crumbs", "children"),
        Output("grids-legend", "children"),
        Output("grids-table-panel", "children"),
        Output("grids-side", "children"),
        Output("grids-outage", "style"),
        Input("grids-state", "data"),
        State("grids-lang", "data"),
        prevent_initial_call=True,
    )
    def render(state: Any, lang: Any) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        view = _view(str((state or {}).get("code")), lang, bool((state or {}).get("all")))
        return (
            view.layer,
            mapdata.markers_geojson(view.markers or []),
            _viewport(view),
            gv.crumbs(view, lang),
            gv.legend(view, lang),
            gv.children_table(view, lang),
            _side(view, lang),
            {"display": "block" if view.down else "none"},
        )

    @app.callback(
        Output("grids-download", "data"),
        Input("grids-export", "n_clicks"),
        State("grids-state", "data"),
        prevent_initial_call=True,
    )
    def export(n: Any, state: Any) -> Any:
        if not n:
            return dash.no_update
        code = str((state or {}).get("code"))
        all_grids = bool((state or {}).get("all"))
        fc = agrids.export_geojson(data.screen_scope(), code, all_grids)
        level = fc["features"][0]["properties"]["level"] if fc["features"] else "none"
        return {
            "content": json.dumps(fc, ensure_ascii=False),
            "filename": f"grids-{code}-{level}.geojson",
            "type": "application/geo+json",
        }

    app.clientside_callback(
        dash.ClientsideFunction(namespace="gridccGrids", function_name="print"),
        Output("grids-printed", "data"),
        Input("grids-print", "n_clicks"),
        prevent_initial_call=True,
    )
