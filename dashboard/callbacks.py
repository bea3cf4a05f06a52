"""Callbacks: a push signal in, a re-read through ``access`` out; and the mode switch."""

from __future__ import annotations

import logging
from typing import Any

import redis
from dash import ClientsideFunction, Dash, Input, Output, State, ctx, no_update

from access.reads import get_alarm
from alarms.service import AlarmError, acknowledge
from core.store import get_redis
from dashboard import data, layout, mapdata, views
from i18n import normalize_lang, t
from modes.service import ModeError, set_mode

log = logging.getLogger("gridcc.dashboard")

HIDDEN = {"display": "none"}
SHOWN = {"display": "flex"}
SHOWN_BLOCK = {"display": "block"}
# Who the pop-up's acknowledgement is recorded as (screens have no accounts yet).
POPUP_BY = "screen"


# What each re-read shows; ``r`` lets a check point them at a given Redis.
def mode_view(lang: str, r: redis.Redis | None = None) -> tuple[Any, ...]:
    scope = data.screen_scope()
    return views.mode_badge(data.guarded(lambda: data.mode_state(scope, r)), lang)


def kpis_view(lang: str, r: redis.Redis | None = None) -> Any:
    scope = data.screen_scope()
    return views.kpis(data.guarded(lambda: data.counts(scope, r)), lang)


def alarms_view(lang: str, r: redis.Redis | None = None) -> Any:
    scope = data.screen_scope()
    return views.alarm_list(data.guarded(lambda: data.alarms(scope, r)), lang)


def orders_view(lang: str, r: redis.Redis | None = None) -> Any:
    scope = data.screen_scope()
    return views.order_list(data.guarded(lambda: data.orders(scope, r)), lang)


def health_view(r: redis.Redis | None = None) -> tuple[dict[str, str], bool]:
    """(banner style, data down?) from a real read through ``access``."""
    scope = data.screen_scope()
    down = data.guarded(lambda: data.mode_state(scope, r)) is None
    return (layout.OUTAGE_SHOWN if down else layout.OUTAGE_HIDDEN), down


def popup_view(lang: str, seen: list[str] | None, r: redis.Redis | None = None) -> tuple[Any, ...]:
    """(body, class, style, shown alarm, seen ids) of the pop-up after a fresh read.

    Everything is ``no_update`` when the read fails: the pop-up stays as it was, since a
    red alarm must not vanish because the data service hiccupped.
    """
    found = data.guarded(lambda: layout.popup_candidates(r))
    if found is None:
        return (no_update,) * 5
    ids = [a.id for a in found]
    if seen is None:
        # The first good read after a failed paint: what is open now was already there.
        return [], "gc-popup", HIDDEN, None, ids
    # Only ids still open are kept, so the list never grows while a screen runs for weeks.
    still = set(ids)
    seen = [i for i in seen if i in still]
    queue = views.popup_queue(found, seen)
    if not queue:
        return [], "gc-popup", HIDDEN, None, seen
    top = queue[0]
    state = {"id": top["id"], "severity": top["severity"]}
    body = views.alarm_popup(top, lang, len(queue) - 1)
    return body, f"gc-popup sev-{top['severity']}", SHOWN, state, seen


def popup_ack(alarm_id: str, lang: str, r: redis.Redis | None = None) -> str:
    """Acknowledge the shown alarm as the screen; the error text, or "" when done."""
    r = r if r is not None else get_redis()
    try:
        # Only an alarm this screen may see can be acknowledged from it.
        if get_alarm(r, data.screen_scope(), alarm_id) is None:
            raise AlarmError(f"alarm {alarm_id} does not exist")
        acknowledge(r, alarm_id, by=POPUP_BY)
    except AlarmError as exc:
        return f"{t('popup.ack_failed', lang)}：{exc}"
    except data.DATA_ERRORS:
        return f"{t('popup.ack_failed', lang)}：{t('data.down', lang)}"
    return ""


def register(app: Dash) -> None:
    app.clientside_callback(
        ClientsideFunction("gridcc", "dispatch"),
        Output("push", "url"),
        Output("sig-mode", "data"),
        Output("sig-alarm", "data"),
        Output("sig-order", "data"),
        Output("sig-device", "data"),
        Output("sig-camera", "data"),
        Output("push-status", "className"),
        Output("sig-health", "data"),
        Input("push", "value"),
        Input("tick", "n_intervals"),
        State("push", "url"),
        # A State, read on the next tick: as an Input it would close a loop through on_health.
        State("data-down", "data"),
    )
    app.clientside_callback(
        ClientsideFunction("gridcc", "clock"),
        Output("clock", "children"),
        Output("cam-age", "children"),
        Input("tick", "n_intervals"),
        State("cam-state", "data"),
    )

    # Leaflet measures its box when it mounts, before the page grid has its final height:
    # measure again and fit the city once the page has settled.
    app.clientside_callback(
        """function (n, bounds) {
            const nu = window.dash_clientside.no_update;
            if (n === 1 && bounds) { return [n, {bounds: bounds}]; }
            return [nu, nu];
        }""",
        Output("map", "invalidateSize"),
        Output("map", "viewport"),
        Input("tick", "n_intervals"),
        State("city-bounds", "data"),
    )

    @app.callback(
        Output("mode-badge", "children"),
        Output("mode-badge", "style"),
        Output("mode-badge", "className"),
        Output("mode-meta", "children"),
        Input("sig-mode", "data"),
        State("lang", "data"),
        prevent_initial_call=True,
    )
    def on_mode(_sig: Any, lang: str) -> tuple[Any, ...]:
        return mode_view(normalize_lang(lang))

    @app.callback(
        Output("outage-banner", "style"),
        Output("data-down", "data"),
        Input("sig-health", "data"),
        Input("health-tick", "n_intervals"),
        Input("sig-mode", "data"),
        prevent_initial_call=True,
    )
    def on_health(_sig: Any, _tick: Any, _mode: Any) -> tuple[Any, ...]:
        return health_view()

    @app.callback(
        Output("kpis", "children"),
        Input("sig-alarm", "data"),
        Input("sig-order", "data"),
        Input("sig-device", "data"),
        State("lang", "data"),
        prevent_initial_call=True,
    )
    def on_counts(_a: Any, _o: Any, _d: Any, lang: str) -> Any:
        return kpis_view(normalize_lang(lang))

    @app.callback(
        Output("alarm-list", "children"),
        Input("sig-alarm", "data"),
        State("lang", "data"),
        prevent_initial_call=True,
    )
    def on_alarms(_sig: Any, lang: str) -> Any:
        return alarms_view(normalize_lang(lang))

    @app.callback(
        Output("popup-body", "children"),
        Output("alarm-popup", "className"),
        Output("alarm-popup", "style"),
        Output("popup-state", "data"),
        Output("popup-seen", "data"),
        Output("popup-msg", "children"),
        Input("sig-alarm", "data"),
        Input("popup-ack", "n_clicks"),
        State("popup-seen", "data"),
        State("popup-state", "data"),
        State("lang", "data"),
        prevent_initial_call=True,
    )
    def on_popup(
        _sig: Any, _ack: Any, seen: list[str] | None, shown: dict[str, Any] | None, lang: str
    ) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        msg = ""
        if ctx.triggered_id == "popup-ack" and shown and shown.get("id"):
            msg = popup_ack(str(shown["id"]), lang)
        # Every screen closes the pop-up when the acknowledgement's push re-reads; this one
        # re-reads at once so the operator sees the next queued alarm without waiting.
        return (*popup_view(lang, seen), msg)

    app.clientside_callback(
        ClientsideFunction("gridcc_popup", "sound"),
        Output("popup-audio", "title"),
        Input("popup-state", "data"),
    )

    @app.callback(
        Output("order-list", "children"),
        Input("sig-order", "data"),
        State("lang", "data"),
        prevent_initial_call=True,
    )
    def on_orders(_sig: Any, lang: str) -> Any:
        return orders_view(normalize_lang(lang))

    @app.callback(
        Output("layer-devices", "data"),
        Input("sig-device", "data"),
        Input("sig-alarm", "data"),
        prevent_initial_call=True,
    )
    def on_markers(_d: Any, _a: Any) -> Any:
        found = data.guarded(lambda: data.markers(data.screen_scope()))
        # Down: keep the last markers drawn; the banner says they may be stale.
        return no_update if found is None else mapdata.markers_geojson(found)

    @app.callback(
        Output("cam-state", "data"),
        Output("cam-name", "children"),
        Output("cam-online", "children"),
        Output("cam-motion", "children"),
        Output("cam-motion", "className"),
        Input("sig-camera", "data"),
        Input("cam-tick", "n_intervals"),
        State("cam-state", "data"),
        State("lang", "data"),
        prevent_initial_call=True,
    )
    def on_camera(
        _sig: Any, _tick: Any, shown: dict[str, Any] | None, lang: str
    ) -> tuple[Any, ...]:
        if not shown:
            # The tile was drawn without a camera; a reload picks up a new one.
            return (no_update,) * 5
        found = data.guarded(lambda: data.cameras(data.screen_scope()))
        if found is None:
            return (no_update,) * 5
        cams = {c.get("id"): c for c in found}
        cam = cams.get(shown.get("id"))
        return (cam, *views.camera_bar(cam, normalize_lang(lang)))

    @app.callback(
        Output("mode-panel", "style"),
        Output("mode-emergency", "style"),
        Output("mode-msg", "children"),
        Output("mode-reason", "value"),
        Input("mode-open", "n_clicks"),
        Input("mode-cancel", "n_clicks"),
        Input("mode-confirm", "n_clicks"),
        Input("mode-emergency-confirm", "n_clicks"),
        State("mode-choice", "value"),
        State("mode-reason", "value"),
        State("mode-panel", "style"),
        State("lang", "data"),
        prevent_initial_call=True,
    )
    def on_mode_switch(
        _open: int,
        _cancel: int,
        _confirm: int,
        _emergency: int,
        choice: str | None,
        reason: str | None,
        panel_style: dict[str, str] | None,
        lang: str,
    ) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        trig = ctx.triggered_id
        if trig == "mode-open":
            shown = (panel_style or HIDDEN).get("display") != "none"
            return (HIDDEN if shown else SHOWN), HIDDEN, "", no_update
        if trig == "mode-cancel":
            return HIDDEN, HIDDEN, "", no_update
        if not choice:
            return no_update, HIDDEN, t("mode.need_mode", lang), no_update
        if not (reason or "").strip():
            return no_update, HIDDEN, t("mode.need_reason", lang), no_update
        if choice == "emergency" and trig == "mode-confirm":
            # Emergency changes every limit and summons every force: ask a second time.
            return no_update, SHOWN_BLOCK, "", no_update
        scope = data.screen_scope()
        try:
            set_mode(get_redis(), scope.jurisdiction, choice, reason or "", scope.user)
        except ModeError as exc:
            return no_update, no_update, f"{t('mode.failed', lang)}：{exc}", no_update
        except data.DATA_ERRORS:
            return (
                no_update,
                no_update,
                f"{t('mode.failed', lang)}：{t('data.down', lang)}",
                no_update,
            )
        # The badge itself changes when the push comes back, on this screen and every other.
        return HIDDEN, HIDDEN, t("mode.done", lang), ""
