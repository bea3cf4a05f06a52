"""Device team CLI: ``python -m devices register|import|list|decommission|credentials|camera|...``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import redis

from core.store import get_redis
from core.timeutil import fmt_local
from devices import broker_acl, cameras, health, onboarding
from devices.registry import Device, RegistryError, register_device


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devices", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    reg = sub.add_parser("register", help="register one device")
    reg.add_argument("id")
    reg.add_argument("--type", required=True)
    reg.add_argument("--profile", required=True)
    reg.add_argument("--lon", type=float, required=True)
    reg.add_argument("--lat", type=float, required=True)
    reg.add_argument("--name", default="")
    reg.add_argument("--topic", default="", help="below the MQTT root; default: the profile's")
    imp = sub.add_parser("import", help="import devices from CSV (dry run unless --store)")
    imp.add_argument("file")
    imp.add_argument("--store", action="store_true", help="store when every row is good")
    imp.add_argument(
        "--store-good", action="store_true", help="store the good rows even if some are bad"
    )
    lst = sub.add_parser("list", help="device health table")
    lst.add_argument("--status")
    lst.add_argument("--type")
    lst.add_argument("--sort", default="id")
    lst.add_argument("--desc", action="store_true")
    lst.add_argument("--json", action="store_true")
    dec = sub.add_parser("decommission", help="retire a device (keeps its history)")
    dec.add_argument("id")
    dec.add_argument("--by", required=True)
    dec.add_argument("--reason", required=True)
    cred = sub.add_parser("credentials", help="issue MQTT credentials, or write broker files")
    cred.add_argument("id", nargs="?", help="device to issue a password for")
    cred.add_argument("--write", metavar="DIR", help="write Mosquitto passwd and acl into DIR")
    cred.add_argument("--ingest-user", default=broker_acl.DEFAULT_INGEST_USER)
    cred.add_argument("--ingest-password", help="password of the ingest user (with --write)")
    sub.add_parser("unknown", help="devices that publish without a registration")
    clm = sub.add_parser("claim", help="register an unknown topic's device")
    clm.add_argument("topic")
    clm.add_argument("id")
    clm.add_argument("--type", required=True)
    clm.add_argument("--profile", required=True)
    clm.add_argument("--lon", type=float, required=True)
    clm.add_argument("--lat", type=float, required=True)
    clm.add_argument("--name", default="")
    blk = sub.add_parser("block", help="hide an unknown topic (its messages stay dead letters)")
    blk.add_argument("topic")
    _camera_parser(sub)
    return p


def _camera_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cam = sub.add_parser("camera", help="register, list or decommission cameras")
    csub = cam.add_subparsers(dest="camera_cmd", required=True)
    reg = csub.add_parser("register", help="register one camera; ingest starts it by itself")
    reg.add_argument("id")
    reg.add_argument("--name", required=True)
    reg.add_argument(
        "--source", required=True, help="rtsp(s):// or http(s):// URL, or a video file path"
    )
    reg.add_argument("--username", default="", help="put into the source URL")
    reg.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the source's password from the first line of standard input",
    )
    reg.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    reg.add_argument("--lon", type=float, required=True)
    reg.add_argument("--lat", type=float, required=True)
    reg.add_argument("--crs", choices=("wgs84", "gcj02"), default="wgs84")
    reg.add_argument("--direction", type=float, default=0.0, help="degrees clockwise from north")
    reg.add_argument("--fov", type=float, default=60.0, help="horizontal field of view, degrees")
    reg.add_argument("--frame-age-limit", type=float, default=5.0, help="seconds")
    reg.add_argument("--zones", help="JSON file with a list of zones (as in cameras.yaml)")
    reg.add_argument("--by", default="cli")
    lst = csub.add_parser("list", help="registered cameras")
    lst.add_argument("--status", choices=[s.value for s in cameras.CameraState])
    lst.add_argument("--json", action="store_true")
    dec = csub.add_parser("decommission", help="retire a camera: ingest stops it")
    dec.add_argument("id")
    dec.add_argument("--by", required=True)
    dec.add_argument("--reason", required=True)


def _camera(args: argparse.Namespace) -> int:
    r = get_redis()
    if args.camera_cmd == "register":
        data: dict[str, object] = {
            "id": args.id,
            "name": args.name,
            "source": args.source,
            "username": args.username,
            "transport": args.transport,
            "lon": args.lon,
            "lat": args.lat,
            "crs": args.crs,
            "direction_deg": args.direction,
            "fov_deg": args.fov,
            "frame_age_limit_s": args.frame_age_limit,
        }
        if args.password_stdin:
            data["password"] = sys.stdin.readline().rstrip("\r\n")
        if args.zones:
            with open(args.zones, encoding="utf-8") as fh:
                data["zones"] = json.load(fh)
        rec = cameras.register_camera(r, cameras.parse_new(data), by=args.by)
        print(
            f"registered camera {rec.id} at {rec.source}, grid {rec.place.grid or '-'}; "
            "camera ingest starts it within a few seconds"
        )
    elif args.camera_cmd == "list":
        recs = cameras.list_cameras(r, cameras.CameraState(args.status) if args.status else None)
        if args.json:
            print(json.dumps([cameras.camera_json(c) for c in recs], ensure_ascii=False))
        else:
            for c in recs:
                print(
                    f"{c.id}\t{c.name}\t{c.status.value}\t{c.source}\t"
                    f"{c.place.grid or '-'}\t{c.direction_deg:g}°/{c.fov_deg:g}°"
                )
    else:
        rec = cameras.decommission_camera(r, args.id, args.by, args.reason)
        print(f"decommissioned camera {rec.id}; camera ingest stops it, its record is kept")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # Unset REDIS_URL is a RuntimeError with the fix in its message.
        r = get_redis()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.cmd == "camera":
            return _camera(args)
        if args.cmd in ("register", "claim"):
            dev = Device(
                id=args.id,
                name=args.name,
                type=args.type,
                profile=args.profile,
                lon=args.lon,
                lat=args.lat,
                topic=getattr(args, "topic", "") if args.cmd == "register" else "",
            )
            if args.cmd == "claim":
                dev = onboarding.claim_unknown(r, args.topic, dev)
            else:
                dev = register_device(r, dev)
            grid = dev.place.grid if dev.place else ""
            print(
                f"registered {dev.id} on topic {dev.topic}, grid {grid or '-'}; waiting for its first message"
            )
        elif args.cmd == "import":
            rep = onboarding.import_file(
                r,
                args.file,
                dry_run=not (args.store or args.store_good),
                store_good=args.store_good,
            )
            print(rep.summary())
            return 0 if rep.ok else 2
        elif args.cmd == "list":
            rows = health.health_rows(
                r, status=args.status, type_key=args.type, sort=args.sort, descending=args.desc
            )
            if args.json:
                print(json.dumps(rows, ensure_ascii=False))
            else:
                for row in rows:
                    seen = fmt_local(row["last_seen_ms"]) if row["last_seen_ms"] else "-"
                    print(
                        f"{row['id']}\t{row['type']}\t{row['status']}\t{seen}\t"
                        f"{row['rate_per_min'] if row['rate_per_min'] is not None else '-'}/min\t"
                        f"{row['grid'] or '-'}"
                    )
        elif args.cmd == "decommission":
            health.decommission(r, args.id, args.by, args.reason)
            broker_acl.revoke_credentials(r, args.id)
            print(f"decommissioned {args.id}; its history is kept, it no longer alarms")
        elif args.cmd == "credentials":
            if args.id:
                pw = broker_acl.issue_credentials(r, args.id)
                print(
                    f"MQTT user {args.id} password {pw}  (shown once; regenerate the broker files)"
                )
            if args.write:
                if not args.ingest_password:
                    print("--write needs --ingest-password", file=sys.stderr)
                    return 2
                passwd, acl = broker_acl.write_broker_files(
                    r,
                    args.write,
                    ingest_user=args.ingest_user,
                    ingest_password=args.ingest_password,
                )
                print(f"wrote {passwd} and {acl}; send the broker SIGHUP to reload")
            if not args.id and not args.write:
                print("give a device id, --write DIR, or both", file=sys.stderr)
                return 2
        elif args.cmd == "unknown":
            for u in onboarding.list_unknown(r):
                print(f"{u['topic']}\t{u['count']} messages\tlast {fmt_local(u['last_ms'])}")
        elif args.cmd == "block":
            onboarding.block_unknown(r, args.topic)
            print(f"blocked {args.topic}; its messages stay in the dead-letter stream")
    except (RegistryError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"error: storage unavailable: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
