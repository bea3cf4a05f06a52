#!/usr/bin/python3
"""Serve an MP4 file as an RTSP camera, for tests and demos.

Runs with the system ``python3`` and GStreamer's RTSP server (python3-gi,
gir1.2-gst-rtsp-server-1.0). The H.264 track is sent as is; the audio track is
ignored. Every client gets its own pipeline that loops the file, so a client
that reconnects starts a fresh stream.

``--silent`` instead accepts TCP connections and never answers, as a camera
that hangs does.

Prints ``READY rtsp://host:port/path`` (or ``READY silent host:port``) once it
accepts connections.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time


def _silent(host: str, port: int) -> int:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(16)
    held: list[socket.socket] = []

    def drain(conn: socket.socket) -> None:
        # Read and drop the request so the client's send never blocks; never answer.
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass

    print(f"READY silent {host}:{port}", flush=True)
    try:
        while True:
            conn, _ = srv.accept()
            held.append(conn)
            threading.Thread(target=drain, args=(conn,), daemon=True).start()
    except KeyboardInterrupt:
        return 0
    finally:
        for c in held:
            c.close()
        srv.close()


def _serve(host: str, port: int, path: str, file: str) -> int:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)

    def loop_media(
        _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
    ) -> None:
        # An end of stream would end the session; drop it and seek back to the start instead.
        pay = media.get_element().get_by_name("pay0")
        pay_sink = pay.get_static_pad("sink")

        def rewind() -> bool:
            pay.send_event(
                Gst.Event.new_seek(
                    1.0,
                    Gst.Format.TIME,
                    Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT,
                    Gst.SeekType.SET,
                    0,
                    Gst.SeekType.NONE,
                    -1,
                )
            )
            return False

        def on_event(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            event = info.get_event()
            if event is not None and event.type == Gst.EventType.EOS:
                GLib.idle_add(rewind)
                return Gst.PadProbeReturn.DROP
            return Gst.PadProbeReturn.OK

        pay_sink.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)

    location = file.replace("\\", "\\\\").replace('"', '\\"')
    launch = (
        f'( filesrc location="{location}" ! qtdemux ! h264parse '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.connect("media-configure", loop_media)
    factory.set_shared(False)
    factory.set_eos_shutdown(False)

    server = GstRtspServer.RTSPServer()
    server.set_address(host)
    server.set_service(str(port))
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {host}:{port}", file=sys.stderr, flush=True)
        return 2

    loop = GLib.MainLoop()

    def quit_loop(*_: object) -> bool:
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, quit_loop)

    # Drop sessions of clients that vanished, so their pipelines do not pile up.
    def cleanup() -> bool:
        server.get_session_pool().cleanup()
        return True

    GLib.timeout_add_seconds(2, cleanup)
    print(f"READY rtsp://{host}:{port}{path}", flush=True)
    loop.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--file", help="MP4 file with an H.264 track")
    ap.add_argument("--silent", action="store_true", help="accept connections, never answer")
    args = ap.parse_args(argv)
    if args.silent:
        return _silent(args.host, args.port)
    if not args.file:
        ap.error("--file is required unless --silent")
    if not os.path.isfile(args.file):
        print(f"no such file: {args.file}", file=sys.stderr, flush=True)
        return 2
    if not args.path.startswith("/"):
        ap.error("--path must start with /")
    started = time.monotonic()
    rc = _serve(args.host, args.port, args.path, os.path.abspath(args.file))
    print(f"stopped after {time.monotonic() - started:.1f} s", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
