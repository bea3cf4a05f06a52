"""Pure renderers: records read through ``access`` in, Dash components out.

Text from people (report titles and texts) goes in as component children, which Dash
renders as text, never as HTML.
"""

from __future__ import annotations

from typing import Any

from dash import html

from core.models import Severity
from core.timeutil import fmt_local, now_ms
from dashboard.mapdata import place_name
from i18n import t

SEVERITIES = [s.value for s in sorted(Severity, key=lambda s: s.rank)]
MODES = ("daily", "holiday", "major_task", "emergency")


def as_dict(obj: Any) -> dict[str, Any]:
    """A record as a plain dict, whether it came as a model or a mapping."""
    if obj is None:
        return {}
    if hasattr(obj, "model_dump"):
        return dict(obj.model_dump(mode="json"))
    if isinstance(obj, dict):
        return obj
    return dict(vars(obj))


def _label(prefix: str, value: Any, lang: str) -> str:
    """The catalogue label of an enum value; an unknown value is shown as it is."""
    try:
        return t(f"{prefix}.{value}", lang)
    except KeyError:
        return str(value)


NO_DATA = "—"


def mode_badge(state: Any, lang: str) -> tuple[str, dict[str, str], str, str]:
    """(badge text, badge style, badge class, meta line) of the mode in force.

    ``None`` means the mode could not be read: a guessed "not set" would be a lie.
    """
    if state is None:
        return (
            NO_DATA,
            {"backgroundColor": "#7a1010"},
            "gc-mode-badge mode-down",
            t("data.down", lang),
        )
    st = as_dict(state)
    mode = str(st.get("mode") or "")
    text = _label("mode", mode, lang) if mode else t("mode.unknown", lang)
    colour = str(st.get("colour") or "#455a64")
    meta_parts = []
    if st.get("since_ms"):
        meta_parts.append(f"{t('mode.since', lang)} {fmt_local(int(st['since_ms']))}")
    if st.get("by"):
        meta_parts.append(f"{t('mode.by', lang)} {st['by']}")
    if st.get("reason"):
        meta_parts.append(str(st["reason"]))
    return (
        text,
        {"backgroundColor": colour},
        f"gc-mode-badge mode-{mode or 'unknown'}",
        " · ".join(meta_parts),
    )


def kpis(c: dict[str, Any] | None, lang: str) -> list[html.Div]:
    """Key figures: open alarms by colour, open and overdue orders, devices online.

    ``None`` means the figures could not be read: every card shows "—", never a false 0.
    """
    down = c is None
    c = c or {}
    by_sev = c.get("alarms_open") or {}
    cards = []
    for sev in SEVERITIES:
        cards.append(
            _kpi(
                f"kpi-alarm-{sev}",
                t("kpi.alarms_open_by", lang).format(severity=t("severity." + sev, lang)),
                NO_DATA if down else int(by_sev.get(sev, 0) or 0),
                f"sev-{sev}",
            )
        )
    if down:
        for kid, key in (
            ("kpi-orders", "kpi.orders_open"),
            ("kpi-overdue", "kpi.orders_overdue"),
            ("kpi-devices", "kpi.devices_online"),
        ):
            cards.append(_kpi(kid, t(key, lang), NO_DATA))
        return cards
    cards.append(_kpi("kpi-orders", t("kpi.orders_open", lang), int(c.get("orders_open", 0) or 0)))
    cards.append(
        _kpi(
            "kpi-overdue",
            t("kpi.orders_overdue", lang),
            int(c.get("orders_overdue", 0) or 0),
            "sev-red" if c.get("orders_overdue") else "",
        )
    )
    online = int(c.get("devices_online", 0) or 0)
    total = online + int(c.get("devices_offline", 0) or 0)
    cards.append(_kpi("kpi-devices", t("kpi.devices_online", lang), f"{online}/{total}"))
    return cards


def _kpi(kid: str, label: str, value: Any, cls: str = "") -> html.Div:
    return html.Div(
        [
            html.Div(label, className="gc-kpi-label"),
            html.Div(str(value), className="gc-kpi-value", id=kid),
        ],
        className=f"gc-kpi {cls}".strip(),
    )


def _down(lang: str) -> html.Div:
    return html.Div(t("data.down", lang), className="gc-empty gc-down")


def alarm_list(alarms: list[Any] | None, lang: str) -> html.Ul | html.Div:
    if alarms is None:
        return _down(lang)
    if not alarms:
        return html.Div(t("alarms.empty", lang), className="gc-empty")
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    # Worst first, then newest: a red alarm must never scroll out of sight under blue ones.
    ordered = sorted(
        map(as_dict, alarms),
        key=lambda a: (rank.get(str(a.get("severity")), len(rank)), -int(a.get("raised_ms") or 0)),
    )
    rows = []
    for a in ordered:
        sev = str(a.get("severity", ""))
        where = place_name(a.get("place"))
        sub = " · ".join(x for x in (where, _label("alarm_state", a.get("state", ""), lang)) if x)
        rows.append(
            html.Li(
                [
                    html.Span(_label("severity", sev, lang), className=f"gc-chip sev-{sev}"),
                    html.Span(str(a.get("title", "")), className="gc-what"),
                    html.Span(sub, className="gc-sub"),
                    html.Span(fmt_local(a.get("raised_ms")), className="gc-time"),
                    *_camera_link(a.get("place"), lang),
                ],
                className="gc-row",
                id={"type": "alarm-row", "id": str(a.get("id", ""))},
            )
        )
    return html.Ul(rows, className="gc-list")


def _camera_link(place: Any, lang: str) -> list[html.A]:
    """The cameras that see an alarm's place open on the wall from its row."""
    p = as_dict(place) if place is not None else {}
    lon, lat = p.get("lon"), p.get("lat")
    if lon is None or lat is None or not p.get("inside_city", True):
        return []
    suffix = "" if lang == "zh-CN" else f"&lang={lang}"
    href = f"/cameras?lon={float(lon):.6f}&lat={float(lat):.6f}{suffix}"
    return [html.A(t("alarms.cameras", lang), href=href, className="gc-cam-link")]


def order_list(orders: list[Any] | None, lang: str, now: int | None = None) -> html.Ul | html.Div:
    if orders is None:
        return _down(lang)
    if not orders:
        return html.Div(t("orders.empty", lang), className="gc-empty")
    now = now_ms() if now is None else now
    rows = []
    for o in map(as_dict, orders):
        status = str(o.get("status", ""))
        overdue = (
            bool(o.get("deadline_ms"))
            and int(o["deadline_ms"]) < now
            and status not in ("closed", "rejected")
        )
        chip = (
            html.Span(t("orders.overdue", lang), className="gc-chip overdue")
            if overdue
            else html.Span(_label("order_status", status, lang), className="gc-chip status")
        )
        sub = " · ".join(
            x
            for x in (
                str(o.get("id", "")),
                _label("channel", o.get("channel", ""), lang),
                place_name(o.get("place")),
                f"{t('orders.deadline', lang)} {fmt_local(o.get('deadline_ms'))}"
                if o.get("deadline_ms")
                else "",
            )
            if x
        )
        rows.append(
            html.Li(
                [
                    chip,
                    # A citizen's words: a plain string child is rendered as text by React.
                    html.Span(str(o.get("title", "")), className="gc-what"),
                    html.Span(sub, className="gc-sub"),
                    html.Span(fmt_local(o.get("created_ms")), className="gc-time"),
                ],
                className="gc-row",
                id={"type": "order-row", "id": str(o.get("id", ""))},
            )
        )
    return html.Ul(rows, className="gc-list")


def camera_bar(cam: dict[str, Any] | None, lang: str) -> tuple[str, str, str, str]:
    """(name, online text, motion text, motion class) of the shown camera."""
    if not cam:
        return t("camera.none", lang), "", "", "gc-motion"
    online = t("camera.online", lang) if cam.get("online") else t("camera.offline", lang)
    active = bool(cam.get("motion_active"))
    motion = t("camera.motion", lang) if active else t("camera.still", lang)
    return (
        str(cam.get("name") or cam.get("id") or ""),
        online,
        motion,
        "gc-motion active" if active else "gc-motion",
    )


# --- alarm pop-up ---------------------------------------------------------------------------

# Severities that take the whole screen until someone acknowledges them.
POPUP_SEVERITIES = ("red", "orange")


def popup_queue(alarms: list[Any] | None, seen_before: list[str] | None) -> list[dict[str, Any]]:
    """Alarms waiting for acknowledgement on the pop-up: new (not on the screen when it opened),
    red or orange, still raised; worst first, then in the order they came."""
    skip = set(seen_before or [])
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    waiting = [
        a
        for a in map(as_dict, alarms or [])
        if str(a.get("severity")) in POPUP_SEVERITIES
        and str(a.get("state")) == "raised"
        and str(a.get("id", "")) not in skip
    ]
    return sorted(
        waiting,
        key=lambda a: (rank.get(str(a.get("severity")), len(rank)), int(a.get("raised_ms") or 0)),
    )


def _amount(value: Any, unit: Any) -> str:
    try:
        num = f"{float(value):g}"
    except (TypeError, ValueError):
        num = NO_DATA
    return f"{num} {unit}".strip() if unit else num


def alarm_popup(alarm: Any, lang: str, waiting: int = 0) -> list[Any]:
    """The pop-up's content for one alarm; ``waiting`` more are queued behind it.

    Title and place go in as text children, so whatever a device or person sent is shown
    literally.
    """
    a = as_dict(alarm)
    sev = str(a.get("severity", ""))
    where = place_name(a.get("place")) or t("popup.unlocated", lang)
    rows = [
        (t("popup.place", lang), where, "popup-place"),
        (t("popup.time", lang), fmt_local(a.get("raised_ms")) or NO_DATA, "popup-time"),
        (
            t("popup.value", lang),
            f"{_amount(a.get('value'), a.get('unit'))}（{t('popup.limit', lang)} "
            f"{_amount(a.get('threshold'), a.get('unit'))}）",
            "popup-value",
        ),
        (t("popup.device", lang), str(a.get("device_id", "")) or NO_DATA, "popup-device"),
    ]
    return [
        html.Div(
            [
                html.Span(_label("severity", sev, lang), className=f"gc-chip sev-{sev}"),
                html.Span(t("popup.title", lang), className="gc-popup-kind"),
            ],
            className="gc-popup-head",
        ),
        html.Div(str(a.get("title", "")), id="popup-title", className="gc-popup-title"),
        html.Dl(
            [
                part
                for label, value, pid in rows
                for part in (html.Dt(label), html.Dd(value, id=pid))
            ],
            className="gc-popup-facts",
        ),
        html.Div(
            t("popup.queue", lang).format(n=waiting) if waiting else "",
            id="popup-count",
            className="gc-popup-count",
        ),
    ]
