"""Per-device MQTT credentials and a topic ACL for Mosquitto.

Each device is a broker user named by its id that may publish only to its own topic
(and its availability topic, for its last will); the ingest user reads everything
below the MQTT root. The password file uses Mosquitto 2's PBKDF2-SHA512 format
(``$7$<iterations>$<salt>$<hash>``), the same lines ``mosquitto_passwd`` writes, so
the broker reads it as is. Only hashes are kept in Redis; a device's password is
shown once, when it is issued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import redis

from core.config import get_settings
from core.keys import keys
from devices.health import availability_topic
from devices.registry import Device, DeviceStatus, RegistryError, get_device, list_devices

# Mosquitto 2's defaults (mosquitto_passwd): 101 rounds, 12-byte salt.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
DEFAULT_INGEST_USER = "gridcc-ingest"


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """A Mosquitto 2 password hash (the part after ``user:`` in the password file)."""
    if not password:
        raise ValueError("an empty password is not allowed")
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash."""
    try:
        _, kind, rounds, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        want = base64.b64decode(digest)
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode("utf-8"), base64.b64decode(salt), int(rounds)
        )
    except ValueError:
        return False
    return hmac.compare_digest(want, got)


def device_topics(device: Device) -> list[str]:
    """Full topics (with the MQTT root) a device may publish to."""
    root = get_settings().mqtt_root
    topics = [device.topic, availability_topic(device.topic)]
    parts = device.topic.split("/")
    if len(parts) == 3 and parts[0] == "tele" and parts[2] == "SENSOR":
        topics.append(f"tele/{parts[1]}/LWT")  # Tasmota's own last-will topic
    return [root + t for t in topics]


def issue_credentials(r: redis.Redis, device_id: str) -> str:
    """Make (or replace) a device's MQTT password; returns it once, keeps only its hash."""
    dev = get_device(r, device_id)
    if dev is None:
        raise RegistryError(f"device {device_id} is not registered")
    if dev.status in (DeviceStatus.DECOMMISSIONED, DeviceStatus.DISABLED):
        raise RegistryError(f"device {device_id} is {dev.status.value}: no credentials for it")
    password = secrets.token_urlsafe(18)
    r.hset(keys().device_credentials, device_id, hash_password(password))
    return password


def revoke_credentials(r: redis.Redis, device_id: str) -> bool:
    return bool(r.hdel(keys().device_credentials, device_id))


def _users(r: redis.Redis) -> list[tuple[Device, str]]:
    """Devices in service that hold credentials, with their hashes."""
    stored: dict[bytes, bytes] = r.hgetall(keys().device_credentials)  # type: ignore[assignment]
    creds = {_s(k): _s(v) for k, v in stored.items()}
    out = []
    for dev in list_devices(r):
        if dev.id in creds and dev.status not in (
            DeviceStatus.DECOMMISSIONED,
            DeviceStatus.DISABLED,
        ):
            out.append((dev, creds[dev.id]))
    return out


def password_file_text(r: redis.Redis, ingest_user: str, ingest_password: str) -> str:
    """The Mosquitto ``password_file``: the ingest user and every device in service."""
    if ":" in ingest_user or not ingest_user:
        raise ValueError(f"ingest user {ingest_user!r} is not a valid broker user name")
    lines = [f"{ingest_user}:{hash_password(ingest_password)}"]
    lines += [f"{dev.id}:{hashed}" for dev, hashed in _users(r)]
    return "\n".join(lines) + "\n"


def acl_file_text(r: redis.Redis, ingest_user: str) -> str:
    """The Mosquitto ``acl_file``: each device writes only its own topics; ingest reads all."""
    root = get_settings().mqtt_root
    out = [
        "# Generated from the device registry; regenerate instead of editing.",
        f"user {ingest_user}",
        f"topic read {root}#",
        "",
    ]
    for dev, _ in _users(r):
        out.append(f"user {dev.id}")
        out += [f"topic write {t}" for t in device_topics(dev)]
        out.append("")
    return "\n".join(out)


def write_broker_files(
    r: redis.Redis,
    directory: Path | str,
    *,
    ingest_password: str,
    ingest_user: str = DEFAULT_INGEST_USER,
) -> tuple[Path, Path]:
    """Write ``passwd`` and ``acl`` into ``directory`` (mode 0600); returns their paths.

    Point Mosquitto at them with ``password_file`` and ``acl_file`` and send it SIGHUP
    to reload after a change.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    passwd, acl = d / "passwd", d / "acl"
    for path, text in (
        (passwd, password_file_text(r, ingest_user, ingest_password)),
        (acl, acl_file_text(r, ingest_user)),
    ):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)  # the broker never reads a half-written file
    return passwd, acl
