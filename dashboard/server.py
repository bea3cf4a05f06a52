"""The web role: Dash command center, intake API, media and push routes, health check."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import dash
import redis
from flask import has_request_context, jsonify, request

from access.cameras import list_cameras
from core.store import get_redis
from dashboard import callbacks, data, layout
from dashboard.pages import page_modules
from dashboard.push import push_bp
from i18n import t

log = logging.getLogger("gridcc.web")

ASSETS = Path(__file__).resolve().parent / "assets"
PAGES = page_modules()


def _page_lang() -> str | None:
    """``?lang=`` of the page: Dash fetches the layout by XHR, so it is read from the referrer."""
    if not has_request_context():
        return None
    lang = request.args.get("lang")
    if not lang and request.referrer:
        found = parse_qs(urlparse(request.referrer).query).get("lang")
        lang = found[0] if found else None
    return lang


def _page_path() -> str:
    """The page's path: like ``?lang=``, read from the referrer of Dash's layout request."""
    if not has_request_context():
        return "/"
    ref = request.referrer
    path = urlparse(ref).path if ref else request.path
    return path.rstrip("/") or "/"


def _serve_layout() -> Any:
    page = PAGES.get(_page_path())
    if page is not None:
        return page.layout(_page_lang())
    return layout.page(_page_lang())


def create_app() -> dash.Dash:
    """The Dash app with every route of the web role; every asset is served by this process."""
    from dashboard.media import media_bp
    from devices.api import devices_api_bp
    from workorders.intake_api import intake_bp
    from workorders.open311 import open311_bp

    app = dash.Dash(
        __name__,
        title=t("app.title"),
        assets_folder=str(ASSETS),
        serve_locally=True,
        update_title="",
        # Each page's components exist only on that page; callbacks of all pages are registered.
        suppress_callback_exceptions=True,
        # The command center must not call out: no CDN for scripts, styles or fonts.
        external_scripts=[],
        external_stylesheets=[],
    )
    app.scripts.config.serve_locally = True
    app.css.config.serve_locally = True
    app.layout = _serve_layout
    callbacks.register(app)
    for page in PAGES.values():
        page.register(app)

    server = app.server

    def camera_visible(camera_id: str) -> bool:
        # The media routes serve a camera only to a screen whose scope sees it.
        scope = data.screen_scope()
        return any(c.id == camera_id for c in list_cameras(get_redis(), scope))

    server.config["GRIDCC_CAMERA_FILTER"] = camera_visible
    server.register_blueprint(push_bp)
    server.register_blueprint(intake_bp)
    server.register_blueprint(open311_bp)
    server.register_blueprint(media_bp)
    server.register_blueprint(devices_api_bp)

    # Dash answers every other path with its page; an API client must get a 404, not HTML.
    @server.route("/api/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @server.route("/open311/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def api_not_found(rest: str) -> Any:
        return jsonify({"error": "not_found", "detail": f"no such endpoint: {request.path}"}), 404

    @server.get("/healthz")
    def healthz() -> Any:
        try:
            get_redis().ping()
        except redis.RedisError as exc:
            return jsonify({"ok": False, "redis": str(exc)}), 503
        return jsonify({"ok": True})

    return app


def run(host: str, port: int) -> None:
    """Serve the web role (threaded: every open page holds one push stream)."""
    app = create_app()
    log.info("command center on http://%s:%d/", host, port)
    app.run(host=host, port=port, debug=False, threaded=True)
