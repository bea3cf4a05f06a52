"""工单办理: one order through the closed loop, acted on as a chosen demo identity."""

from __future__ import annotations

import logging
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html
from dash import no_update as nu
from dash.dash_table.DataTable import DataTable
from flask import abort, send_file

from core.models import Channel, OrderStatus, WorkOrder
from core.store import get_redis
from core.timeutil import fmt_local
from dashboard import data, mapdata
from dashboard.pages import orders_logic as logic
from dashboard.pages import push_listener
from dashboard.pages.devices import TABLE_STYLE
from i18n import normalize_lang, t
from workorders import loop

log = logging.getLogger("gridcc.dashboard.orders")

PATH = "/orders"
TITLE_KEY = "orders.page.title"
EVIDENCE_URL = "/orders/evidence/"
P = "orders"
LIST_COLS = ("id", "created", "channel", "category", "title", "status", "deadline", "signal")
# Form fields the action callback reads, as (component suffix, property).
FORM = (
    ("note", "value"),
    ("reason", "value"),
    ("reject_kind", "value"),
    ("duplicate_of", "value"),
    ("lead", "value"),
    ("co", "value"),
    ("message", "value"),
    ("result", "value"),
    ("photos", "contents"),
    ("evidence_ref", "value"),
    ("verdict", "value"),
    ("satisfaction", "value"),
    ("check_note", "value"),
    ("return_reason", "value"),
    ("arb_part", "value"),
    ("decision", "value"),
    ("arb_to", "value"),
    ("arb_reason", "value"),
)
# Fields emptied after an action is done, so the next identity starts clean.
CLEARED = (
    "note",
    "reason",
    "duplicate_of",
    "message",
    "result",
    "evidence_ref",
    "check_note",
    "return_reason",
    "arb_reason",
)


def _fid(name: str) -> str:
    return f"{P}-{name}"


def _input(name: str, lang: str, placeholder: str | None = None, area: bool = False) -> Any:
    ph = t(placeholder, lang) if placeholder else None
    if area:
        return dcc.Textarea(id=_fid(name), placeholder=ph, className="od-input od-area")
    return dcc.Input(id=_fid(name), type="text", placeholder=ph, className="od-input")


def _radio(name: str, options: list[tuple[str, str]], value: str | None, lang: str) -> Any:
    return dcc.RadioItems(
        id=_fid(name),
        options=[{"label": t(k, lang), "value": v} for v, k in options],
        value=value,
        inline=True,
        className="od-radio",
    )


def _button(action: str, lang: str, danger: bool = False) -> html.Button:
    return html.Button(
        t(f"orders.page.do.{action}", lang),
        id=_fid(f"do-{action}"),
        className="gc-btn danger" if danger else "gc-btn",
        n_clicks=0,
    )


def _box(action: str, lang: str, *children: Any) -> html.Div:
    return html.Div(
        [html.H3(t(f"orders.page.box.{action}", lang)), *children],
        id=_fid(f"box-{action}"),
        className="od-box",
        hidden=True,
    )


def actions_panel(lang: str) -> html.Section:
    dept_opts = [{"label": d, "value": d} for d in logic.DEPARTMENTS]
    return html.Section(
        [
            html.H2(t("orders.page.actions", lang)),
            html.Div(t("orders.page.no_actions", lang), id=_fid("no-actions"), className="od-note"),
            _box(
                "accept",
                lang,
                _input("note", lang, "orders.page.ph.note"),
                _button("accept", lang),
            ),
            _box(
                "reject",
                lang,
                _radio(
                    "reject_kind",
                    [
                        ("invalid", "orders.page.kind.invalid"),
                        ("duplicate", "orders.page.kind.duplicate"),
                    ],
                    "invalid",
                    lang,
                ),
                _input("reason", lang, "orders.page.ph.reason"),
                _input("duplicate_of", lang, "orders.page.ph.duplicate_of"),
                _button("reject", lang, danger=True),
            ),
            _box(
                "assign",
                lang,
                html.Label(t("orders.page.lead", lang), htmlFor=_fid("lead")),
                dcc.Dropdown(id=_fid("lead"), options=dept_opts, className="od-dd"),
                html.Label(t("orders.page.co", lang), htmlFor=_fid("co")),
                dcc.Dropdown(id=_fid("co"), options=dept_opts, multi=True, className="od-dd"),
                _button("assign", lang),
            ),
            _box("start", lang, _button("start", lang)),
            _box(
                "feedback",
                lang,
                _input("result", lang, "orders.page.ph.result", area=True),
                dcc.Upload(
                    html.Div(t("orders.page.upload", lang)),
                    id=_fid("photos"),
                    className="od-upload",
                    multiple=True,
                    accept="image/*",
                    # The browser takes any size so the server can say why a big photo is refused.
                    max_size=-1,
                ),
                html.Div(id=_fid("photo-names"), className="od-note"),
                _input("evidence_ref", lang, "orders.page.ph.evidence_ref"),
                _button("feedback", lang),
            ),
            _box(
                "check",
                lang,
                html.Div(t("orders.page.check_rule", lang), className="od-note"),
                _radio(
                    "verdict",
                    [("pass", "orders.page.verdict.pass"), ("fail", "orders.page.verdict.fail")],
                    None,
                    lang,
                ),
                html.Label(t("orders.page.satisfaction", lang), htmlFor=_fid("satisfaction")),
                _radio(
                    "satisfaction",
                    [(str(n), f"orders.page.sat.{n}") for n in range(1, 6)],
                    None,
                    lang,
                ),
                _input("check_note", lang, "orders.page.ph.check_note"),
                _button("check", lang),
            ),
            _box(
                "return",
                lang,
                _input("return_reason", lang, "orders.page.ph.reason"),
                _button("return", lang, danger=True),
            ),
            _box(
                "arbitrate",
                lang,
                dcc.Dropdown(
                    id=_fid("arb_part"),
                    options=[],
                    placeholder=t("orders.page.ph.arb_part", lang),
                    className="od-dd",
                ),
                _radio(
                    "decision",
                    [
                        ("insist", "orders.page.decision.insist"),
                        ("reassign", "orders.page.decision.reassign"),
                    ],
                    "insist",
                    lang,
                ),
                dcc.Dropdown(
                    id=_fid("arb_to"),
                    options=dept_opts,
                    placeholder=t("orders.page.ph.arb_to", lang),
                    className="od-dd",
                ),
                _input("arb_reason", lang, "orders.page.ph.reason"),
                _button("arbitrate", lang),
            ),
            _box(
                "message",
                lang,
                _input("message", lang, "orders.page.ph.message", area=True),
                _button("message", lang),
            ),
            html.Div(id=_fid("msg"), className="od-msg", role="status"),
        ],
        className="od-panel",
    )


def filters_panel(lang: str) -> html.Section:
    live = [s for s in OrderStatus if s not in (OrderStatus.CLOSED, OrderStatus.REJECTED)]
    return html.Section(
        [
            html.H2(t("orders.page.list", lang)),
            html.Div(
                [
                    dcc.Dropdown(
                        id=_fid("f-status"),
                        options=[
                            {"label": t(f"order_status.{s.value}", lang), "value": s.value}
                            for s in live
                        ],
                        multi=True,
                        placeholder=t("orders.page.f.status", lang),
                        className="od-dd",
                    ),
                    dcc.Dropdown(
                        id=_fid("f-channel"),
                        options=[
                            {"label": t(f"channel.{c.value}", lang), "value": c.value}
                            for c in Channel
                        ],
                        placeholder=t("orders.page.f.channel", lang),
                        className="od-dd",
                    ),
                    dcc.Input(
                        id=_fid("f-category"),
                        type="text",
                        placeholder=t("orders.page.f.category", lang),
                        className="od-input",
                        debounce=True,
                    ),
                    dcc.Checklist(
                        id=_fid("f-overdue"),
                        options=[{"label": t("orders.page.f.overdue", lang), "value": "yes"}],
                        value=[],
                        className="od-check",
                    ),
                ],
                className="od-filters",
            ),
            DataTable(
                id=_fid("list"),
                columns=[{"id": c, "name": t(f"orders.page.col.{c}", lang)} for c in LIST_COLS],
                data=[],
                row_selectable="single",
                selected_rows=[],
                page_size=12,
                **TABLE_STYLE,
            ),
            html.Div(id=_fid("list-msg"), className="od-note"),
        ],
        className="od-panel",
    )


def layout(lang: str | None = None) -> html.Div:
    lang = normalize_lang(lang)
    return html.Div(
        [
            dcc.Store(id=_fid("lang"), data=lang),
            dcc.Store(id=_fid("changed"), data=0),
            dcc.Store(id=_fid("selected")),
            *push_listener.components(P),
            push_listener.header(
                P, PATH, t("orders.page.title", lang), t("orders.page.back", lang), lang
            ),
            html.Div(
                [
                    html.Label(t("orders.page.who", lang), htmlFor=_fid("who")),
                    dcc.RadioItems(
                        id=_fid("who"),
                        options=[
                            {"label": t(i.label_key, lang), "value": i.key}
                            for i in logic.IDENTITIES.values()
                        ],
                        value="center",
                        inline=True,
                        className="od-radio",
                    ),
                    html.Span(t("orders.page.demo_note", lang), className="od-demo"),
                ],
                className="od-who",
                id=_fid("who-bar"),
            ),
            html.Div(
                [
                    html.Div([filters_panel(lang)], className="od-col"),
                    html.Div(
                        [
                            html.Section(
                                html.Div(t("orders.page.pick", lang), className="od-note"),
                                id=_fid("detail"),
                                className="od-panel",
                            ),
                            actions_panel(lang),
                        ],
                        className="od-col wide",
                    ),
                ],
                className="od-main",
            ),
        ],
        className="od-page",
        lang=lang,
    )


def _dl(rows: list[tuple[str, Any]]) -> html.Dl:
    return html.Dl([x for k, v in rows for x in (html.Dt(k), html.Dd(v))], className="od-dl")


def _evidence_view(refs: list[str]) -> list[Any]:
    out: list[Any] = []
    for ref in refs:
        name = ref.removeprefix("photo:")
        if logic.evidence_file(name) is not None:
            out.append(
                html.A(
                    html.Img(src=EVIDENCE_URL + name, className="od-thumb", alt=name),
                    href=EVIDENCE_URL + name,
                    target="_blank",
                )
            )
        else:
            out.append(html.Code(ref))
    return out


def _channel(value: Any, lang: str) -> str:
    try:
        return t(f"channel.{Channel(value).value}", lang)
    except ValueError:
        return str(value or "—")


def detail_view(o: WorkOrder, lang: str) -> list[Any]:
    """The order as text components (Dash escapes every string: report text is never HTML)."""
    pl = o.place
    place = mapdata.place_name(pl.model_dump()) or "—"
    if pl.grid:
        place += f" · {t('orders.page.grid', lang)} {pl.grid}"
    place += f"（{pl.lon:.6f}, {pl.lat:.6f}）"
    if not pl.inside_city:
        place += " " + t("orders.page.outside", lang)
    channel = t(f"channel.{o.channel.value}", lang)
    if o.channel_fields:
        channel += "（" + "，".join(f"{k}: {v}" for k, v in o.channel_fields.items()) + "）"
    reporters = [
        html.Li(
            f"{x.get('name') or t('orders.page.anonymous', lang)} · "
            f"{_channel(x.get('channel'), lang)} · "
            f"{fmt_local(x.get('ts_ms'))}"
        )
        for x in o.reporters
    ]
    clocks = {c["dept"]: c for c in loop.clock_state(o)}
    part_rows = []
    for p in o.parts:
        c = clocks.get(p.dept) if p.status in loop.ACTIVE else None
        part_rows.append(
            html.Tr(
                [
                    html.Td(p.dept),
                    html.Td(t(f"orders.page.role.{p.role}", lang)),
                    html.Td(t(f"orders.page.part.{p.status.value}", lang), className="od-pstatus"),
                    html.Td(fmt_local(p.deadline_ms)),
                    html.Td(
                        logic.clock_text(c, lang) if c else "—",
                        className=f"od-clock {c['signal'] if c else ''}",
                    ),
                    html.Td(logic.who_label(p.handler, lang)),
                    html.Td([html.Div(p.result), *_evidence_view(p.evidence)]),
                ],
                id=_fid(f"part-{p.dept}"),
            )
        )
    parts = (
        html.Table(
            [
                html.Thead(
                    html.Tr(
                        [
                            html.Th(t(f"orders.page.pcol.{c}", lang))
                            for c in (
                                "dept",
                                "role",
                                "status",
                                "deadline",
                                "clock",
                                "handler",
                                "result",
                            )
                        ]
                    )
                ),
                html.Tbody(part_rows),
            ],
            className="od-table",
        )
        if part_rows
        else html.Div(t("orders.page.no_parts", lang), className="od-note")
    )
    history = html.Ol(
        [
            html.Li(
                [
                    html.Span(fmt_local(s.get("ts_ms")), className="od-when"),
                    html.Span(logic.who_label(s.get("by"), lang), className="od-by"),
                    html.Span(logic.history_what(s, lang), className="od-what"),
                    html.Span(str(s["note"]), className="od-why") if s.get("note") else None,
                ]
            )
            for s in o.history
        ],
        id=_fid("history"),
        className="od-history",
    )
    thread = html.Ol(
        [
            html.Li(
                [
                    html.Span(fmt_local(m.get("ts_ms")), className="od-when"),
                    html.Span(
                        f"{logic.who_label(m.get('by'), lang)}（"
                        f"{t('orders.page.center', lang) if m.get('dept') == loop.CENTER else m.get('dept')}）",
                        className="od-by",
                    ),
                    html.Span(str(m.get("text", "")), className="od-text"),
                ]
            )
            for m in o.thread
        ]
        or [html.Li(t("orders.page.no_thread", lang), className="od-note")],
        id=_fid("thread"),
        className="od-history",
    )
    status = t(f"order_status.{o.status.value}", lang)
    summary = [
        (t("orders.page.col.status", lang), html.Span(status, id=_fid("status"))),
        (t("orders.page.col.category", lang), o.category),
        (t("orders.page.col.channel", lang), channel),
        (t("orders.page.place", lang), place),
        (t("orders.page.col.created", lang), fmt_local(o.created_ms)),
        (t("orders.page.col.deadline", lang), fmt_local(o.deadline_ms)),
    ]
    if o.suggested_owner:
        summary.append((t("orders.page.suggested", lang), o.suggested_owner))
    if o.satisfaction is not None:
        summary.append((t("orders.page.satisfaction", lang), str(o.satisfaction)))
    return [
        html.H2([html.Span(o.id, id=_fid("detail-id")), " ", o.title]),
        html.P(o.text, className="od-report", id=_fid("text")),
        _dl(summary),
        html.H3(t("orders.page.reporters", lang)),
        html.Ul(reporters or [html.Li("—")], className="od-list"),
        html.H3(t("orders.page.parts", lang)),
        parts,
        html.H3(t("orders.page.history", lang)),
        history,
        html.H3(t("orders.page.thread", lang)),
        thread,
    ]


def register(app: Dash) -> None:
    push_listener.register(app, P, ("order",))

    @app.server.get(EVIDENCE_URL + "<name>")
    def evidence(name: str) -> Any:
        path = logic.evidence_file(name)
        if path is None:
            abort(404)
        return send_file(path, max_age=3600)

    @app.callback(
        Output(_fid("list"), "data"),
        Output(_fid("list-msg"), "children"),
        Output(_fid("list"), "selected_rows"),
        Input(_fid("sig"), "data"),
        Input(_fid("changed"), "data"),
        Input(_fid("f-status"), "value"),
        Input(_fid("f-channel"), "value"),
        Input(_fid("f-category"), "value"),
        Input(_fid("f-overdue"), "value"),
        State(_fid("lang"), "data"),
        State(_fid("selected"), "data"),
    )
    def on_list(
        _sig: Any,
        _changed: Any,
        status: list[str] | None,
        channel: str | None,
        category: str | None,
        overdue: list[str] | None,
        lang: str,
        selected: str | None,
    ) -> tuple[Any, ...]:
        lang = normalize_lang(lang)
        r = get_redis()
        rows = data.guarded(
            lambda: logic.list_rows(
                r,
                data.screen_scope(),
                lang,
                status=status,
                category=category,
                channel=channel,
                overdue_only="yes" in (overdue or []),
            )
        )
        if rows is None:
            return nu, t("data.down", lang), nu
        msg = t("orders.page.count", lang).format(n=len(rows)) if rows else t("orders.empty", lang)
        # Row positions shift as orders come and go: keep the tick on the chosen order.
        at = [i for i, row in enumerate(rows) if row["id"] == selected]
        return rows, msg, at

    @app.callback(
        Output(_fid("selected"), "data"),
        Input(_fid("list"), "selected_row_ids"),
        prevent_initial_call=True,
    )
    def on_select(ids: list[str] | None) -> Any:
        # Keep the last choice when the list refreshes without it (e.g. the order closed).
        return str(ids[0]) if ids else nu

    @app.callback(
        Output(_fid("detail"), "children"),
        *[Output(_fid(f"box-{a}"), "hidden") for a in logic.ACTIONS],
        Output(_fid("no-actions"), "hidden"),
        Output(_fid("arb_part"), "options"),
        Input(_fid("selected"), "data"),
        Input(_fid("who"), "value"),
        Input(_fid("sig"), "data"),
        Input(_fid("changed"), "data"),
        State(_fid("lang"), "data"),
    )
    def on_detail(order_id: str | None, who: str | None, *rest: Any) -> tuple[Any, ...]:
        lang = normalize_lang(rest[-1])
        ident = logic.identity(who)
        r = get_redis()
        hide_all = [True] * len(logic.ACTIONS)
        if not order_id:
            return html.Div(t("orders.page.pick", lang), className="od-note"), *hide_all, False, []
        try:
            o = logic.load(r, data.screen_scope(), order_id)
        except data.DATA_ERRORS:
            return (
                html.Div(t("data.down", lang), className="od-msg bad"),
                *[nu] * len(hide_all),
                nu,
                nu,
            )
        if o is None:
            gone = t("orders.page.err.not_visible", lang).format(id=order_id)
            return html.Div(gone, className="od-msg bad"), *hide_all, False, []
        can = logic.available_actions(o, ident)
        returned = [
            {"label": p.dept, "value": p.dept} for p in o.parts if p.status.value == "returned"
        ]
        return (
            detail_view(o, lang),
            *[a not in can for a in logic.ACTIONS],
            bool(can),
            returned,
        )

    @app.callback(
        Output(_fid("photo-names"), "children"),
        Input(_fid("photos"), "filename"),
        State(_fid("lang"), "data"),
        prevent_initial_call=True,
    )
    def on_photos(names: list[str] | None, lang: str) -> str:
        if not names:
            return ""
        return t("orders.page.photos_chosen", normalize_lang(lang)).format(names="、".join(names))

    @app.callback(
        Output(_fid("msg"), "children"),
        Output(_fid("msg"), "className"),
        Output(_fid("changed"), "data"),
        *[Output(_fid(f), "value") for f in CLEARED],
        Output(_fid("photos"), "contents"),
        Output(_fid("photos"), "filename"),
        *[Input(_fid(f"do-{a}"), "n_clicks") for a in logic.ACTIONS],
        State(_fid("selected"), "data"),
        State(_fid("who"), "value"),
        *[State(_fid(f), prop) for f, prop in FORM],
        State(_fid("lang"), "data"),
        State(_fid("changed"), "data"),
        prevent_initial_call=True,
    )
    def on_action(*args: Any) -> tuple[Any, ...]:
        n = len(logic.ACTIONS)
        order_id, who = args[n], args[n + 1]
        values = args[n + 2 : n + 2 + len(FORM)]
        lang, changed = normalize_lang(args[-2]), args[-1]
        trig = str(ctx.triggered_id or "")
        action = trig.removeprefix(_fid("do-"))
        keep = [nu] * (len(CLEARED) + 2)
        if not trig.startswith(_fid("do-")):
            return nu, nu, nu, *keep
        form = {name: v for (name, _p), v in zip(FORM, values, strict=True)}
        try:
            ok, msg = logic.perform(get_redis(), order_id, action, who, form, lang)
        except data.DATA_ERRORS as exc:
            log.warning("order action %s failed: %s", action, exc)
            return (
                f"{t('orders.page.refused', lang)}：{t('data.down', lang)}",
                "od-msg bad",
                nu,
                *keep,
            )
        if not ok:
            return msg, "od-msg bad", nu, *keep
        return msg, "od-msg ok", (changed or 0) + 1, *[""] * len(CLEARED), None, None
