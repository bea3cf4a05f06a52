"""Camera media routes: snapshot, MJPEG live view and the camera list, from Redis;
the snapshot and clip of each video event, from the media folder.

The camera processes write the latest JPEG to Redis; these routes only read it, so
any number of web processes can serve any number of viewers without touching a camera.

Visibility: an app may set ``app.config["GRIDCC_CAMERA_FILTER"]`` to a callable
``(camera_id) -> bool`` that says whether the current request may see a camera;
without it every camera is served.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import redis
from flask import Blueprint, Response, current_app, jsonify, request, send_file

from core.keys import keys
from core.store import get_redis
from ingest.camera_status import list_statuses, read_status
from ingest.video_media import event_dir_exists, event_file

media_bp = Blueprint("media", __name__, url_prefix="/media")

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
BOUNDARY = "gridccframe"
MAX_FPS = 5.0
# Resend an unchanged frame now and then: it keeps proxies from timing the stream
# out and is how a vanished client is noticed.
KEEPALIVE_S = 2.0
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}


def _allowed(camera_id: str) -> bool:
    check: Callable[[str], bool] | None = current_app.config.get("GRIDCC_CAMERA_FILTER")
    return True if check is None else bool(check(camera_id))


def _known(r: redis.Redis, camera_id: str) -> bool:
    return bool(_ID.match(camera_id)) and bool(r.sismember(keys().cameras, camera_id))


def _text(body: str, status: int, **headers: str) -> Response:
    return Response(body, status=status, mimetype="text/plain", headers={**NO_CACHE, **headers})


def _unavailable() -> Response:
    return _text("camera data unavailable", 503, **{"Retry-After": "2"})


@media_bp.get("/cameras")
def cameras() -> Response:
    try:
        statuses = list_statuses(get_redis())
    except redis.RedisError:
        return _unavailable()
    body = [s.model_dump(mode="json") for s in statuses if _allowed(s.id)]
    resp = jsonify(body)
    resp.headers.update(NO_CACHE)
    return resp


@media_bp.get("/cameras/<camera_id>")
def camera(camera_id: str) -> Response:
    try:
        r = get_redis()
        status = read_status(r, camera_id) if _known(r, camera_id) else None
    except redis.RedisError:
        return _unavailable()
    if status is None or not _allowed(camera_id):
        return _text("not found", 404)
    resp = jsonify(status.model_dump(mode="json"))
    resp.headers.update(NO_CACHE)
    return resp


@media_bp.get("/cameras/<camera_id>/snapshot.jpg")
def snapshot(camera_id: str) -> Response:
    try:
        r = get_redis()
        if not _known(r, camera_id) or not _allowed(camera_id):
            return _text("not found", 404)
        image = r.get(keys().camera_jpeg(camera_id))
    except redis.RedisError:
        return _unavailable()
    if not image:
        return _text("no frame yet", 503, **{"Retry-After": "1"})
    data = image if isinstance(image, bytes) else str(image).encode()
    return Response(data, mimetype="image/jpeg", headers=NO_CACHE)


def _mjpeg(r: redis.Redis, camera_id: str, fps: float, max_s: float | None) -> Iterator[bytes]:
    key = keys().camera_jpeg(camera_id)
    period = 1.0 / fps
    last: bytes | None = None
    last_sent = 0.0
    started = time.monotonic()
    while max_s is None or time.monotonic() - started < max_s:
        tick = time.monotonic()
        try:
            image = r.get(key)
        except redis.RedisError:
            image = None
        if image and (image != last or tick - last_sent >= KEEPALIVE_S):
            last = image if isinstance(image, bytes) else str(image).encode()
            last_sent = tick
            # A write to a closed connection ends this generator (the server closes it).
            yield (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(last)}\r\n\r\n".encode()
                + last
                + b"\r\n"
            )
        time.sleep(max(0.0, period - (time.monotonic() - tick)))


@media_bp.get("/cameras/<camera_id>/live.mjpeg")
def live(camera_id: str) -> Response:
    try:
        fps = float(request.args.get("fps", MAX_FPS))
        max_s = float(request.args["max_s"]) if "max_s" in request.args else None
    except ValueError:
        return _text("fps and max_s must be numbers", 400)
    if not (0 < fps <= 1000) or (max_s is not None and not 0 < max_s <= 86400):
        return _text("fps must be in (0, 1000] and max_s in (0, 86400]", 400)
    fps = min(fps, MAX_FPS)
    try:
        r = get_redis()
        if not _known(r, camera_id) or not _allowed(camera_id):
            return _text("not found", 404)
    except redis.RedisError:
        return _unavailable()
    return Response(
        _mjpeg(r, camera_id, fps, max_s),
        mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={**NO_CACHE, "X-Accel-Buffering": "no"},
        direct_passthrough=True,
    )


def _event_media(camera_id: str, event_id: str, what: str, mimetype: str) -> Response:
    # Names are checked against strict patterns and the resolved path must stay inside
    # the media folder, so no request can reach another file.
    if not _ID.match(camera_id) or not _allowed(camera_id):
        return _text("not found", 404)
    path = event_file(camera_id, event_id, what)
    if path is None:
        if what == "clip" and event_dir_exists(camera_id, event_id):
            return _text("clip not ready yet", 503, **{"Retry-After": "2"})
        return _text("not found", 404)
    resp = send_file(path, mimetype=mimetype, conditional=True, max_age=0)
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@media_bp.get("/cameras/<camera_id>/events/<event_id>/snapshot.jpg")
def event_snapshot(camera_id: str, event_id: str) -> Response:
    return _event_media(camera_id, event_id, "snapshot", "image/jpeg")


@media_bp.get("/cameras/<camera_id>/events/<event_id>/clip")
def event_clip(camera_id: str, event_id: str) -> Response:
    """The event's clip: Motion-JPEG in AVI, a few seconds before and after."""
    return _event_media(camera_id, event_id, "clip", "video/x-msvideo")
