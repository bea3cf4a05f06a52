"""The camera wall (视频监控墙): 1/4/9/16 tiles of live MJPEG with rotation, a map of the
cameras' fields of view, and the cameras nearest a place (``?lon=&lat=``).

The tiles are driven in the browser (assets/cameras.js): an MJPEG stream is opened only
while its camera is online and closed as soon as it is not, so an offline camera shows
an offline card instead of its last frame. Camera state comes by push (topic "camera")
and a short re-read, always through ``access`` with the screen's scope.
"""

from __future__ import annotations

import logging
from typing import Any

import dash_leaflet as dl
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash_extensions import SSE

from access.camera_geo import GeoError
from core.config import get_settings
from dashboard import data, mapdata
from dashboard.pages import cameras_data as cd
from i18n import normalize_lang, t

log = logging.getLogger("gridcc.dashboard")

PATH = "/cameras"
TITLE_KEY = "cameras.title"

PUSH_URL = "/api/push"
MAX_TILES = 16
ROTATE_CHOICES = (5, 10, 20, 30, 60)
DEFAULT_ROTATE_S = 10
# Pushes arrive only when a camera's state changes; between them the frame times are
# re-read this often so the age shown stays true and a dead camera process is noticed.
REFRESH_MS = 2000
TEXT_KEYS = (
    "offline",
    "motion",
    "still",
    "frame_age",
    "seconds",
    "pause",
    "resume",
    "page",
    "sees_place",
    "empty_tile",
)


def _tile(i: int, lang: str) -> html.Div:
    return html.Div(
        [
            # No src here: the browser code sets it only while the camera is online.
            html.Img(id=f"cameras-img-{i}", className="cw-img", alt=""),
            html.Div(
                [
                    html.Div(t("cameras.offline", lang), className="cw-offline-big"),
                    html.Div(t("cameras.offline_note", lang), className="cw-offline-note"),
                ],
                className="cw-offline",
            ),
            html.Div(t("cameras.empty_tile", lang), className="cw-emptynote"),
            html.Div(
                [
                    html.Span(id=f"cameras-name-{i}", className="cw-name"),
                    html.Span(id=f"cameras-place-{i}", className="cw-place"),
                ],
                className="cw-cap cw-cap-top",
            ),
            html.Div(
                [
                    html.Span(id=f"cameras-state-{i}", className="cw-badge"),
                    html.Span(id=f"cameras-motion-{i}", className="cw-badge"),
                    html.Span(id=f"cameras-age-{i}", className="cw-age"),
                ],
                className="cw-cap cw-cap-bottom",
            ),
        ],
        id=f"cameras-tile-{i}",
        className="cw-tile cw-empty",
    )


def _map(lang: str, store: dict[str, Any] | None) -> html.Div:
    settings = get_settings()
    layers: list[Any] = []
    if settings.tile_url:
        layers.append(dl.TileLayer(url=settings.tile_url, attribution=settings.tile_attribution))
    layers += [
        dl.GeoJSON(
            data=mapdata.boundaries("township", lang),
            style={"color": "#7f8fa6", "weight": 0.8, "opacity": 0.6, "fillOpacity": 0},
            interactive=False,
        ),
        dl.LayerGroup(cd.map_layers(store), id="cameras-sectors"),
        dl.LayerGroup(id="cameras-place"),
    ]
    cams = (store or {}).get("cameras", [])
    placed = [c for c in cams if c.get("lon") is not None and c.get("lat") is not None]
    if placed:
        lats = [c["lat"] for c in placed]
        lons = [c["lon"] for c in placed]
        pad = 0.004
        bounds = [[min(lats) - pad, min(lons) - pad], [max(lats) + pad, max(lons) + pad]]
    else:
        bounds = mapdata.city_bounds()
    return html.Div(
        [
            html.H2(t("cameras.map", lang)),
            dl.Map(
                layers,
                id="cameras-map",
                bounds=bounds,
                trackViewport=False,
                className="cw-map",
                zoomSnap=0.25,
                attributionControl=bool(settings.tile_url),
            ),
            html.Div(t("cameras.map_hint", lang), className="cw-hint"),
            html.Div(id="cameras-note", className="cw-note", role="status"),
        ],
        className="cw-side gc-panel",
    )


def layout(lang: str | None = None) -> html.Div:
    lang = normalize_lang(lang)
    scope = data.screen_scope()
    store = data.guarded(lambda: cd.read_cameras(scope))
    other = "en" if lang == "zh-CN" else "zh-CN"
    texts = {k: t(f"cameras.{k}", lang) for k in TEXT_KEYS}
    return html.Div(
        [
            dcc.Location(id="cameras-url", refresh=False),
            dcc.Store(id="cameras-lang", data=lang),
            dcc.Store(id="cameras-texts", data=texts),
            dcc.Store(id="cameras-list", data=store),
            dcc.Store(id="cameras-view", data={"n": cd.DEFAULT_LAYOUT, "pinned": None}),
            dcc.Store(id="cameras-sig"),
            dcc.Store(id="cameras-rendered"),
            SSE(id="cameras-push", url=PUSH_URL, concat=True),
            dcc.Interval(id="cameras-tick", interval=1000),
            dcc.Interval(id="cameras-refresh", interval=REFRESH_MS),
            html.Header(
                [
                    html.H1(t("cameras.title", lang), className="gc-title", id="cameras-title"),
                    html.Div(
                        [
                            html.Span(t("cameras.layout", lang), className="cw-label"),
                            dcc.RadioItems(
                                id="cameras-layout",
                                options=[{"label": f"{n}", "value": n} for n in cd.LAYOUTS],
                                value=cd.DEFAULT_LAYOUT,
                                inline=True,
                                className="cw-radio",
                            ),
                            html.Span(t("cameras.rotate", lang), className="cw-label"),
                            dcc.Dropdown(
                                id="cameras-rotate",
                                options=[
                                    {"label": f"{s} {t('cameras.seconds', lang)}", "value": s}
                                    for s in ROTATE_CHOICES
                                ],
                                value=DEFAULT_ROTATE_S,
                                clearable=False,
                                searchable=False,
                                className="cw-rotate",
                            ),
                            html.Button(
                                t("cameras.pause", lang),
                                id="cameras-pause",
                                className="gc-btn",
                                n_clicks=0,
                            ),
                            html.Button(
                                t("cameras.show_all", lang),
                                id="cameras-all",
                                className="gc-btn",
                                n_clicks=0,
                            ),
                            html.Span(id="cameras-pageno", className="cw-pageno"),
                        ],
                        className="cw-controls",
                    ),
                    html.Span(id="cameras-push-status", className="push-dot"),
                    html.A(t("cameras.back", lang), href=f"/?lang={lang}", className="gc-lang"),
                    html.A(
                        t("app.lang_toggle", lang),
                        href=f"{PATH}?lang={other}",
                        className="gc-lang",
                        id="cameras-lang-toggle",
                    ),
                ],
                className="gc-header",
            ),
            html.Div(
                t("data.down_banner", lang),
                className="gc-outage",
                role="alert",
                style={"display": "block" if store is None else "none"},
            ),
            html.Div(
                t("cameras.none", lang),
                className="cw-none",
                style={
                    "display": "block" if store is not None and not store["cameras"] else "none"
                },
            ),
            html.Div(
                [
                    html.Div(
                        [_tile(i, lang) for i in range(MAX_TILES)],
                        id="cameras-wall",
                        className=f"cw-wall cw-n{cd.DEFAULT_LAYOUT}",
                    ),
                    _map(lang, store),
                ],
                className="cw-main",
            ),
        ],
        className="gc-page cw-page",
        lang=lang,
    )


def _view_for_place(search: str | None, lang: str) -> tuple[Any, ...]:
    """(view, layout value, note, place layer) for ``?lon=&lat=``, or the default wall."""
    default = {"n": cd.DEFAULT_LAYOUT, "pinned": None}
    try:
        place = cd.parse_place(search)
    except GeoError as exc:
        return default, cd.DEFAULT_LAYOUT, f"{t('cameras.bad_place', lang)}：{exc}", []
    if place is None:
        return default, cd.DEFAULT_LAYOUT, "", []
    lon, lat = place
    marker = cd.place_layer(lon, lat, t("cameras.place_marker", lang))
    found = data.guarded(lambda: cd.near_place(data.screen_scope(), lon, lat))
    if found is None:
        return default, cd.DEFAULT_LAYOUT, t("data.down", lang), marker
    if not found:
        return default, cd.DEFAULT_LAYOUT, t("cameras.near_none", lang), marker
    n = cd.layout_for(len(found))
    seeing = {f.camera.id for f in found if f.sees}
    view = {"n": n, "pinned": [f.camera.id for f in found], "sees": sorted(seeing)}
    names = "、".join(f"{f.camera.name}（{f.distance_m:.0f} m）" for f in found)
    return view, n, f"{t('cameras.near_place', lang)}：{names}", marker


def register(app: Dash) -> None:
    app.clientside_callback(
        ClientsideFunction("gridcc_cameras", "dispatch"),
        Output("cameras-push", "url"),
        Output("cameras-sig", "data"),
        Output("cameras-push-status", "className"),
        Input("cameras-push", "value"),
        Input("cameras-tick", "n_intervals"),
        State("cameras-push", "url"),
    )
    app.clientside_callback(
        ClientsideFunction("gridcc_cameras", "render"),
        Output("cameras-pageno", "children"),
        Output("cameras-pause", "children"),
        Input("cameras-tick", "n_intervals"),
        Input("cameras-list", "data"),
        Input("cameras-view", "data"),
        Input("cameras-pause", "n_clicks"),
        State("cameras-rotate", "value"),
        State("cameras-texts", "data"),
    )

    @app.callback(
        Output("cameras-list", "data"),
        Output("cameras-sectors", "children"),
        Input("cameras-sig", "data"),
        Input("cameras-refresh", "n_intervals"),
        State("cameras-list", "data"),
        prevent_initial_call=True,
    )
    def on_cameras(_sig: Any, _tick: Any, shown: dict[str, Any] | None) -> tuple[Any, Any]:
        found = data.guarded(lambda: cd.read_cameras(data.screen_scope()))
        if found is None:
            # Down: the frame times stop advancing, so the tiles age into "offline".
            return no_update, no_update
        # The map is redrawn only when a camera comes, goes, or changes state.
        same = cd.online_key(found) == cd.online_key(shown)
        return found, (no_update if same else cd.map_layers(found))

    @app.callback(
        Output("cameras-view", "data"),
        Output("cameras-layout", "value"),
        Output("cameras-note", "children"),
        Output("cameras-place", "children"),
        Input("cameras-url", "search"),
        Input("cameras-layout", "value"),
        Input("cameras-all", "n_clicks"),
        Input({"type": "cameras-sector", "id": ALL}, "n_clicks"),
        Input({"type": "cameras-dot", "id": ALL}, "n_clicks"),
        State("cameras-lang", "data"),
    )
    def on_view(
        search: str | None,
        size: int | None,
        _all: int,
        _sectors: list[int | None],
        _dots: list[int | None],
        lang: str,
    ) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        trig = ctx.triggered_id
        if trig is None or trig == "cameras-url":
            return _view_for_place(search, lang)
        if trig == "cameras-all":
            return {"n": size or cd.DEFAULT_LAYOUT, "pinned": None}, no_update, "", []
        if trig == "cameras-layout":
            n = size if size in cd.LAYOUTS else cd.DEFAULT_LAYOUT
            return {"n": n, "pinned": None}, no_update, "", no_update
        if isinstance(trig, dict) and trig.get("id"):
            # A redrawn map layer mounts with no click: only a real click opens a camera.
            if not ctx.triggered[0].get("value"):
                return (no_update,) * 4
            return {"n": 1, "pinned": [trig["id"]]}, 1, "", no_update
        return (no_update,) * 4
