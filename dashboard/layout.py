"""The command-center page: header with the mode, key figures, map, camera, lists."""

from __future__ import annotations

import logging
from typing import Any

import dash_leaflet as dl
import redis
from dash import dcc, html
from dash_extensions import SSE
from dash_extensions.javascript import Namespace

from access.reads import list_alarms
from core.config import get_settings
from core.store import get_redis
from dashboard import data, mapdata, views
from i18n import normalize_lang, t

log = logging.getLogger("gridcc.dashboard")

MAP_FN = Namespace("gridcc", "map")
SIGNALS = ("mode", "alarm", "order", "device", "camera")
PUSH_URL = "/api/push"
OUTAGE_SHOWN = {"display": "block"}
OUTAGE_HIDDEN = {"display": "none"}
# How often a screen checks the data service by itself, so an outage shows even when no
# push arrives (and goes away when the service is back).
HEALTH_INTERVAL_MS = 5000
# Open alarms scanned for the pop-up: red ones must not hide behind many blue ones.
POPUP_SCAN = 500
ALARM_SOUND_URL = "/assets/alarm.wav"


def outage_banner(lang: str, down: bool) -> html.Div:
    """The red line that says the figures cannot be trusted; hidden while reads work."""
    return html.Div(
        t("data.down_banner", lang),
        id="outage-banner",
        className="gc-outage",
        role="alert",
        style=OUTAGE_SHOWN if down else OUTAGE_HIDDEN,
    )


def nav(lang: str) -> html.Nav:
    """Links to the pages beside the command center, in the order of their paths."""
    from dashboard.pages import page_modules

    suffix = "" if lang == "zh-CN" else f"?lang={lang}"
    links = [
        html.A(t(mod.TITLE_KEY, lang), href=path + suffix, className="gc-nav-link")
        for path, mod in sorted(page_modules().items())
    ]
    return html.Nav(links, className="gc-nav", id="page-nav")


def header(lang: str, mode: dict[str, Any] | None) -> html.Header:
    badge, style, cls, meta = views.mode_badge(mode, lang)
    other = "en" if lang == "zh-CN" else "zh-CN"
    return html.Header(
        [
            html.H1(t("app.title", lang), className="gc-title", id="title"),
            html.Div(
                [
                    html.Span(t("mode.label", lang), className="gc-mode-label"),
                    html.Span(badge, id="mode-badge", className=cls, style=style),
                    html.Span(meta, id="mode-meta", className="gc-mode-meta"),
                    html.Button(
                        t("mode.switch", lang), id="mode-open", className="gc-btn", n_clicks=0
                    ),
                ],
                className="gc-mode",
            ),
            nav(lang),
            html.Span(id="clock", className="gc-clock"),
            html.Span(
                id="push-status",
                className="push-dot down" if mode is None else "push-dot",
                title=t("app.push_live", lang),
            ),
            html.A(
                t("app.lang_toggle", lang),
                href=f"/?lang={other}",
                className="gc-lang",
                id="lang-toggle",
            ),
        ],
        className="gc-header",
    )


def mode_panel(lang: str) -> html.Div:
    return html.Div(
        [
            html.Div(t("mode.select", lang), className="gc-kpi-label"),
            dcc.RadioItems(
                id="mode-choice",
                options=[{"label": t(f"mode.{m}", lang), "value": m} for m in views.MODES],
                value=None,
                inline=True,
                inputStyle={"marginRight": "0.3rem", "marginLeft": "0.8rem"},
            ),
            dcc.Textarea(
                id="mode-reason",
                placeholder=t("mode.reason_placeholder", lang),
                # The service refuses longer reasons; the header shows them on one line.
                maxLength=200,
                style={"height": "4rem"},
            ),
            html.Div(
                [
                    html.Button(
                        t("mode.confirm", lang), id="mode-confirm", className="gc-btn", n_clicks=0
                    ),
                    html.Button(
                        t("mode.cancel", lang), id="mode-cancel", className="gc-btn", n_clicks=0
                    ),
                ],
                style={"display": "flex", "gap": "0.6rem"},
            ),
            html.Div(
                [
                    html.Div(t("mode.emergency_warning", lang)),
                    html.Button(
                        t("mode.emergency_confirm", lang),
                        id="mode-emergency-confirm",
                        className="gc-btn danger",
                        n_clicks=0,
                        style={"marginTop": "0.5rem"},
                    ),
                ],
                id="mode-emergency",
                className="gc-emergency-confirm",
                style={"display": "none"},
            ),
            html.Div(id="mode-msg", className="gc-msg"),
        ],
        id="mode-panel",
        className="gc-mode-panel",
        style={"display": "none"},
    )


def map_panel(lang: str, markers: list[dict[str, Any]]) -> html.Div:
    settings = get_settings()
    layers: list[Any] = []
    if settings.tile_url:
        layers.append(dl.TileLayer(url=settings.tile_url, attribution=settings.tile_attribution))
    layers += [
        dl.GeoJSON(
            id="layer-county",
            data=mapdata.boundaries("county", lang),
            style=MAP_FN("countyStyle"),
        ),
        dl.GeoJSON(
            id="layer-township",
            # Drawn over the counties, so hovering anywhere names the township and its district.
            data=mapdata.boundaries("township", lang),
            style=MAP_FN("townshipStyle"),
            hoverStyle={"weight": 2, "color": "#ffffff"},
        ),
        dl.GeoJSON(
            id="layer-devices",
            data=mapdata.markers_geojson(markers),
            cluster=True,
            zoomToBoundsOnClick=True,
            superClusterOptions={"radius": 60, "maxZoom": 15},
            pointToLayer=MAP_FN("pointToLayer"),
            clusterToLayer=MAP_FN("clusterToLayer"),
        ),
    ]
    legend = html.Div(
        [
            html.Div(t("map.legend", lang), style={"fontWeight": 700}),
            html.Div(
                [html.Span(className="gc-swatch"), t("map.county", lang)], className="gc-legend-row"
            ),
            html.Div(
                [
                    html.Span(className="gc-swatch generated"),
                    f"{t('map.township', lang)}（{t('map.generated', lang)}）",
                ],
                className="gc-legend-row",
            ),
            html.Div(
                [
                    html.Span(className="gc-dot", style={"background": "#e02424"}),
                    t("map.device_alarm", lang),
                ],
                className="gc-legend-row",
            ),
            html.Div(
                [
                    html.Span(className="gc-dot", style={"background": "#2fd3a5"}),
                    t("map.device_ok", lang),
                ],
                className="gc-legend-row",
            ),
            html.Div(t("map.generated_note", lang), className="gc-note"),
            html.Div(t("map.no_tiles", lang), className="gc-note")
            if not settings.tile_url
            else None,
        ],
        className="gc-legend",
        id="map-legend",
    )
    return html.Div(
        [
            dl.Map(
                layers,
                id="map",
                bounds=mapdata.city_bounds(),
                # No viewport echo to the server: the map is the same for every user.
                trackViewport=False,
                className="gc-map",
                zoomSnap=0.25,
                attributionControl=bool(settings.tile_url),
            ),
            legend,
        ],
        className="gc-map-wrap",
    )


def camera_panel(lang: str, cams: list[dict[str, Any]]) -> html.Div:
    cam = cams[0] if cams else None
    name, online, motion, motion_cls = views.camera_bar(cam, lang)
    src = f"/media/cameras/{cam['id']}/live.mjpeg" if cam else ""
    return html.Div(
        [
            html.H2(t("camera.title", lang)),
            html.Div(
                [
                    html.Img(id="cam-img", src=src, alt=name)
                    if cam
                    else html.Div(name, className="gc-empty"),
                    html.Div(
                        [
                            html.Span(name, id="cam-name"),
                            html.Span(online, id="cam-online"),
                            html.Span(motion, id="cam-motion", className=motion_cls),
                            html.Span(
                                [
                                    t("camera.frame_age", lang),
                                    " ",
                                    html.Span("—", id="cam-age"),
                                    " ",
                                    t("camera.seconds", lang),
                                ]
                            ),
                        ],
                        className="gc-cam-bar",
                    ),
                ],
                className="gc-cam",
            ),
            dcc.Store(id="cam-state", data=cam),
        ],
        className="gc-panel",
    )


def popup_candidates(r: redis.Redis | None = None) -> list[Any]:
    """Open alarms of the screen's scope, read through ``access`` for the pop-up."""
    return list(
        list_alarms(r if r is not None else get_redis(), data.screen_scope(), limit=POPUP_SCAN)
    )


def alarm_popup(lang: str, seen: list[str] | None) -> list[Any]:
    """The full-screen pop-up (hidden until a new red or orange alarm), its tone and state.

    ``seen`` are the alarms already on the screen when it opened: only later ones pop up.
    ``None`` (the read failed) lets the first good read set them.
    """
    return [
        dcc.Store(id="popup-seen", data=seen),
        dcc.Store(id="popup-state", data=None),
        html.Audio(id="popup-audio", src=ALARM_SOUND_URL, loop=True, preload="auto"),
        html.Div(
            html.Div(
                [
                    html.Div(id="popup-body"),
                    html.Div(id="popup-msg", className="gc-msg"),
                    html.Button(
                        t("popup.ack", lang), id="popup-ack", className="gc-popup-ack", n_clicks=0
                    ),
                    html.Div(
                        t("popup.sound_hint", lang),
                        id="popup-sound-hint",
                        className="gc-popup-hint",
                        style={"display": "none"},
                    ),
                ],
                className="gc-popup-card",
            ),
            id="alarm-popup",
            className="gc-popup",
            role="alertdialog",
            style={"display": "none"},
        ),
    ]


def page(lang: str | None = None, r: redis.Redis | None = None) -> html.Div:
    """The whole page in one language; the first paint already holds the data.

    A failed read paints the outage state (banner, "—"), never an empty "all clear".
    """
    lang = normalize_lang(lang)
    scope = data.screen_scope()
    mode = data.guarded(lambda: data.mode_state(scope, r))
    counts = alarms = orders = markers = cams = None
    # Once a read has failed the rest are skipped: each would wait out the client's retries.
    if mode is not None:
        counts = data.guarded(lambda: data.counts(scope, r))
    if counts is not None:
        alarms = data.guarded(lambda: data.alarms(scope, r))
    if alarms is not None:
        orders = data.guarded(lambda: data.orders(scope, r))
    if orders is not None:
        markers = data.guarded(lambda: data.markers(scope, r))
    if markers is not None:
        cams = data.guarded(lambda: data.cameras(scope, r))
    down = cams is None
    seen = None
    if not down:
        found = data.guarded(lambda: popup_candidates(r))
        seen = None if found is None else [a.id for a in found]
    return html.Div(
        [
            dcc.Store(id="lang", data=lang),
            dcc.Store(id="data-down", data=down),
            dcc.Store(id="sig-health"),
            dcc.Interval(id="health-tick", interval=HEALTH_INTERVAL_MS),
            # concat: two events in one network chunk would otherwise leave only the last.
            SSE(id="push", url=PUSH_URL, concat=True),
            dcc.Interval(id="tick", interval=1000),
            # Camera status is rewritten every half second but pushed only on a change, so a
            # frozen camera process pushes nothing: the tile re-reads its status itself.
            dcc.Interval(id="cam-tick", interval=2000),
            dcc.Store(id="city-bounds", data=mapdata.city_bounds()),
            *[dcc.Store(id=f"sig-{s}") for s in SIGNALS],
            header(lang, mode),
            outage_banner(lang, down),
            mode_panel(lang),
            *alarm_popup(lang, seen),
            html.Div(views.kpis(counts, lang), className="gc-kpis", id="kpis"),
            html.Div(
                [
                    map_panel(lang, markers or []),
                    html.Div(
                        [
                            camera_panel(lang, cams or []),
                            html.Div(
                                [
                                    html.H2(t("alarms.title", lang)),
                                    html.Div(
                                        views.alarm_list(alarms, lang),
                                        id="alarm-list",
                                        className="gc-scroll",
                                    ),
                                ],
                                className="gc-panel",
                            ),
                            html.Div(
                                [
                                    html.H2(t("orders.title", lang)),
                                    html.Div(
                                        views.order_list(orders, lang),
                                        id="order-list",
                                        className="gc-scroll",
                                    ),
                                ],
                                className="gc-panel",
                            ),
                        ],
                        className="gc-side",
                    ),
                ],
                className="gc-main",
            ),
        ],
        className="gc-page",
        lang=lang,
    )
