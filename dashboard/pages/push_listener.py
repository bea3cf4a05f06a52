"""The push listener a page shares with the command center.

A page puts ``components(page)`` in its layout (a server-sent-event source, a store that
changes when the page should re-read, a one-second tick) and a status dot with the id
``<page>-push-status``, then calls ``register(app, page, topics)``. The listener parses the
shared stream, wakes the page on its topics and on "hello" (re-read after a reconnect), and
reconnects a stream that has gone quiet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dash import Dash, Input, Output, State, dcc
from dash_extensions import SSE

PUSH_URL = "/api/push"

_JS = """function (value, tick, url) {
    const nu = window.dash_clientside.no_update;
    const key = "gcPush_" + PAGE;
    const s = window[key] = window[key] ||
        {seen: 0, last: 0, attempt: Date.now(), stale: 13000, conn: 0, n: 0, retryAt: null};
    const now = Date.now();
    let wake = false, newUrl = nu;
    const trig = (window.dash_clientside.callback_context.triggered || []).map(x => x.prop_id);
    if (trig.indexOf(PAGE + "-push.value") >= 0 && value) {
        if (value.length < s.seen) { s.seen = 0; }
        const fresh = value.slice(s.seen), cut = fresh.lastIndexOf("\\n");
        if (cut >= 0) {
            s.seen += cut + 1;
            fresh.slice(0, cut).split("\\n").forEach(function (line) {
                let msg = null;
                try { msg = line ? JSON.parse(line) : null; } catch (e) { msg = null; }
                if (!msg) { return; }
                s.last = now;
                if (msg.keepalive_s) { s.stale = msg.keepalive_s * 2500 + 1000; }
                if (msg.hello || msg.error) { wake = true; }
                if (msg.topics && TOPICS.some(function (t) { return msg.topics[t] !== undefined; })) {
                    wake = true;
                }
                if (msg.reconnect !== undefined) { s.retryAt = now + (msg.reconnect || 0); }
            });
        }
    }
    const silent = now - s.last > s.stale && now - s.attempt > s.stale;
    if ((s.retryAt !== null && now >= s.retryAt) || silent) {
        s.retryAt = null; s.attempt = now; s.conn += 1; s.seen = 0;
        newUrl = PUSH_URL + "?c=" + s.conn + "&p=" + PAGE;
    }
    if (wake) { s.n += 1; }
    const live = now - s.last <= s.stale;
    return [newUrl, wake ? s.n : nu, live ? PAGE + "-push-dot live" : PAGE + "-push-dot"];
}"""


def listener_js(page: str, topics: Sequence[str]) -> str:
    """The clientside function for one page, its name and topics bound in."""
    head = (
        f"const PAGE = {json.dumps(page)}, TOPICS = {json.dumps(list(topics))}, "
        f"PUSH_URL = {json.dumps(PUSH_URL)};\n"
    )
    return "function (value, tick, url) {\n" + head + "return (" + _JS + ")(value, tick, url);\n}"


def components(page: str) -> list[Any]:
    """The listener's parts for the page's layout; ``<page>-sig`` changes on every wake."""
    return [
        dcc.Store(id=f"{page}-sig"),
        SSE(id=f"{page}-push", url=PUSH_URL, concat=True),
        dcc.Interval(id=f"{page}-tick", interval=1000),
    ]


def register(app: Dash, page: str, topics: Sequence[str]) -> None:
    app.clientside_callback(
        listener_js(page, topics),
        Output(f"{page}-push", "url"),
        Output(f"{page}-sig", "data"),
        Output(f"{page}-push-status", "className"),
        Input(f"{page}-push", "value"),
        Input(f"{page}-tick", "n_intervals"),
        State(f"{page}-push", "url"),
    )


def header(page: str, path: str, title: str, back: str, lang: str) -> Any:
    """A page's header: its title, the way back to the command center, the push dot and the
    language switch, with the ids ``<page>-title``, ``<page>-push-status``, ``<page>-lang-toggle``."""
    from dash import html

    from i18n import t

    other = "en" if lang == "zh-CN" else "zh-CN"
    return html.Header(
        [
            html.H1(title, className="gc-title", id=f"{page}-title"),
            html.A(back, href=f"/?lang={lang}", className="gc-lang"),
            html.Span(id=f"{page}-push-status", className=f"{page}-push-dot"),
            html.A(
                t("app.lang_toggle", lang),
                href=f"{path}?lang={other}",
                className="gc-lang",
                id=f"{page}-lang-toggle",
            ),
        ],
        className="gc-header",
    )
