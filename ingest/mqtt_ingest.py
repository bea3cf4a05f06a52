"""MQTT ingest: subscribe, decode by device profile, validate, write Redis streams.

Nothing is lost: QoS 1 on a persistent session (stable client id, no clean start) and
manual acknowledgement, so the broker forgets a message only after its reading or
dead letter is in Redis. While Redis is unreachable, the batch in hand is retried and
nothing further is acknowledged; the broker keeps the rest, and a restarted ingest
gets the unacknowledged messages again. Redelivered messages are deduplicated by
message id (device + time + payload hash).

Subscriptions (below ``MQTT_ROOT``) come from ``devices/profiles.yaml``:
``zigbee2mqtt/#``, ``tele/+/SENSOR``, ``senml/#``, ``gridcc/#``,
``homeassistant/+/+/state``; with ``MQTT_SHARED_GROUP`` each is subscribed as
``$share/<group>/...`` so several ingest processes split the load.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import redis
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from core import push
from core.config import get_settings
from core.keys import keys
from core.models import Reading
from core.store import get_redis
from core.timeutil import now_ms
from devices.health import on_availability
from devices.onboarding import is_blocked
from devices.profiles import DecodeError, decode, non_reading_kind, profiles
from devices.registry import DeviceStatus, TopicCache

log = logging.getLogger(__name__)

READINGS_MAXLEN = 500_000  # about a day of the demo; workers keep up long before that
DEAD_MAXLEN = 100_000
SEEN_BUCKET_MS = 10 * 60 * 1000  # redelivery happens within minutes of the first try
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue through a long outage
RECEIVE_MAXIMUM = 1000  # unacknowledged messages the broker may send us at once
BATCH_MAX = 500
DEAD_PUSH_EVERY_S = 5.0

# Dedupe and append in one step, so a redelivered message is never written twice and a
# first delivery is never marked seen without being written.
_READING_LUA = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'data', ARGV[2])
return 1
"""

# Several ingest processes may see the same unknown topic: count it atomically.
_UNKNOWN_LUA = """
local now = tonumber(ARGV[2])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local o
if cur then
  o = cjson.decode(cur)
  o['count'] = (o['count'] or 0) + 1
  o['last_ms'] = now
else
  o = {count = 1, first_ms = now, last_ms = now}
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(o))
return o['count']
"""


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str) -> MqttTarget:
    """``mqtt://user:pass@host:port`` (or ``mqtts://``, ``tcp://``) to its parts."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT_URL {url!r}: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"MQTT_URL {url!r} names no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError(f"MQTT_URL {url!r}: {exc}") from None
    return MqttTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


@dataclass
class Incoming:
    """One received MQTT message, held until it is written and acknowledged."""

    topic: bytes
    payload: bytes
    received_ms: int
    mid: int = 0
    qos: int = 0


@dataclass
class Stats:
    received: int = 0
    readings: int = 0
    duplicates: int = 0
    dead: int = 0
    skipped: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Processor:
    """Decode, validate and write a batch of messages in one Redis pipeline."""

    def __init__(self, r: redis.Redis, cache: TopicCache | None = None) -> None:
        self.r = r
        self.cache = cache or TopicCache(r)
        self.root = get_settings().mqtt_root
        self.k = keys()
        self.stats = Stats()
        self._reading_script = r.register_script(_READING_LUA)
        self._unknown_script = r.register_script(_UNKNOWN_LUA)
        self._last_dead_push = 0.0

    def write(self, batch: Sequence[Incoming]) -> Stats:
        """Write the batch; raises ``redis.RedisError`` when Redis did not take it all.

        Only after this returns may the messages be acknowledged.
        """
        pipe = self.r.pipeline(transaction=False)
        counts = Stats()
        reading_at: list[int] = []  # pipeline positions of the dedupe-and-append calls
        for msg in batch:
            counts.received += 1
            try:
                self._one(pipe, msg, counts, reading_at)
            except redis.RedisError:
                raise  # the whole batch is retried; nothing of it is acknowledged
            except Exception as exc:  # never let one message stop ingest
                log.exception("unexpected failure on a message")
                self._dead(pipe, msg, "internal", repr(exc)[:300], counts)
        push_dead = counts.dead and time.monotonic() - self._last_dead_push > DEAD_PUSH_EVERY_S
        if push_dead:
            push.publish(pipe, "dead", count=counts.dead)
        results = pipe.execute(raise_on_error=True)
        if push_dead:
            self._last_dead_push = time.monotonic()
        counts.readings = sum(1 for i in reading_at if results[i] == 1)
        counts.duplicates = len(reading_at) - counts.readings
        s = self.stats
        s.received += counts.received
        s.readings += counts.readings
        s.duplicates += counts.duplicates
        s.dead += counts.dead
        s.skipped += counts.skipped
        for reason, n in counts.by_reason.items():
            s.by_reason[reason] = s.by_reason.get(reason, 0) + n
        return counts

    def _one(
        self,
        pipe: Any,
        msg: Incoming,
        counts: Stats,
        reading_at: list[int],
    ) -> None:
        try:
            full_topic = msg.topic.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._dead(pipe, msg, "bad_topic", f"topic is not UTF-8 at byte {exc.start}", counts)
            return
        topic = full_topic[len(self.root) :] if full_topic.startswith(self.root) else full_topic
        kind = non_reading_kind(topic)
        if kind:
            if kind == "availability":
                # A last will: the device is offline now, not after its silence limit.
                on_availability(self.r, topic, msg.payload)
            counts.skipped += 1
            return
        dev = self.cache.lookup(topic)
        if dev is None and is_blocked(self.r, topic):
            self._dead(
                pipe, msg, "blocked_device", f"{topic} is blocked by the device team", counts
            )
            return
        if dev is None:
            self._unknown_script(
                keys=[self.k.unknown_devices], args=[topic, msg.received_ms], client=pipe
            )
            self._dead(pipe, msg, "unknown_device", f"no device registered on {topic}", counts)
            return
        if dev.status in (DeviceStatus.DISABLED, DeviceStatus.DECOMMISSIONED):
            self._dead(pipe, msg, "device_disabled", f"device {dev.id} is disabled", counts)
            return
        try:
            decoded = decode(dev.profile_def, msg.payload, msg.received_ms, dev.device_type)
        except DecodeError as exc:
            self._dead(pipe, msg, exc.reason, f"device {dev.id}: {exc.detail}", counts)
            return
        except KeyError as exc:  # device record names a type or profile that is gone
            self._dead(pipe, msg, "bad_device", str(exc.args[0]), counts)
            return
        digest = hashlib.sha1(msg.payload, usedforsecurity=False).hexdigest()[:16]
        for ts, metrics in decoded.samples:
            reading = Reading(
                device_id=dev.id,
                ts_ms=ts,
                received_ms=msg.received_ms,
                metrics=metrics,
                battery=decoded.battery,
                signal=decoded.signal,
                msg_id=f"{dev.id}:{ts}:{digest}",
                topic=topic,
            )
            bucket = msg.received_ms // SEEN_BUCKET_MS
            reading_at.append(len(pipe.command_stack))
            self._reading_script(
                keys=[
                    f"{self.k.seen}:{bucket}",
                    f"{self.k.seen}:{bucket - 1}",
                    self.k.readings,
                ],
                args=[
                    reading.msg_id,
                    reading.model_dump_json(),
                    3 * SEEN_BUCKET_MS,
                    READINGS_MAXLEN,
                ],
                client=pipe,
            )

    def _dead(self, pipe: Any, msg: Incoming, reason: str, detail: str, counts: Stats) -> None:
        pipe.xadd(
            self.k.dead,
            {
                "reason": reason,
                "detail": detail,
                "source": "mqtt",
                "topic": msg.topic.decode("utf-8", errors="backslashreplace"),
                "raw": msg.payload,
                "received_ms": str(msg.received_ms),
            },
            maxlen=DEAD_MAXLEN,
            approximate=True,
        )
        counts.dead += 1
        counts.by_reason[reason] = counts.by_reason.get(reason, 0) + 1


def write_then_ack(
    processor: Processor, batch: Sequence[Incoming], ack: Callable[[int, int], Any]
) -> Stats:
    """Write a batch, then acknowledge it; if the write raises, nothing is acknowledged."""
    counts = processor.write(batch)
    for msg in batch:
        if msg.qos > 0:
            ack(msg.mid, msg.qos)
    return counts


def subscriptions() -> list[str]:
    s = get_settings()
    share = f"$share/{s.mqtt_shared_group}/" if s.mqtt_shared_group else ""
    return [f"{share}{s.mqtt_root}{p}" for p in profiles().subscriptions]


def default_client_id(role: str = "ingest") -> str:
    """Stable across restarts, so the broker resumes the same session."""
    s = get_settings()
    return s.mqtt_client_id or f"gridcc-{role}-{s.gridcc_prefix}-{socket.gethostname()}"[:64]


def make_client(
    client_id: str,
    *,
    protocol: int = mqtt.MQTTv5,
    manual_ack: bool = False,
) -> mqtt.Client:
    target = parse_mqtt_url(get_settings().mqtt_url or "mqtt://127.0.0.1:1883")
    if protocol == mqtt.MQTTv5:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=manual_ack,
        )
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    return client


def connect_properties(session_expiry_s: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


def probe_protocol(timeout_s: float = 5.0) -> int:
    """MQTT 5 when the broker speaks it, else 3.1.1 (the embedded broker)."""
    target = parse_mqtt_url(get_settings().mqtt_url or "mqtt://127.0.0.1:1883")
    done = threading.Event()
    result: dict[str, Any] = {}

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        result["ok"] = not rc.is_failure
        done.set()

    def on_disconnect(c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        done.set()

    probe = make_client(f"gridcc-probe-{time.time_ns() % 10**9}")
    probe.on_connect = on_connect
    probe.on_disconnect = on_disconnect
    try:
        probe.connect(target.host, target.port, keepalive=10, clean_start=True)
        probe.loop_start()
        done.wait(timeout_s)
        probe.disconnect()
        probe.loop_stop()
    except OSError:
        return mqtt.MQTTv5  # broker not up yet: the reconnect loop will keep trying
    return mqtt.MQTTv5 if result.get("ok") else mqtt.MQTTv311


class MqttIngest:
    """The ingest role: one MQTT client, one writer thread."""

    def __init__(
        self,
        r: redis.Redis | None = None,
        *,
        client_id: str | None = None,
        session_expiry_s: int = SESSION_EXPIRY_S,
        protocol: int | None = None,
    ) -> None:
        self.r = r or get_redis()
        self.processor = Processor(self.r)
        self.client_id = client_id or default_client_id()
        self.session_expiry_s = session_expiry_s
        self.protocol = protocol
        self.queue: queue.Queue[Incoming] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._stop = threading.Event()
        self.client: mqtt.Client | None = None

    # --- MQTT callbacks (network thread) ---
    def _on_connect(self, c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        log.info("connected to the broker (session present: %s)", flags.session_present)
        self.connected.set()
        subs = [(t, SubscribeOptions(qos=1)) for t in subscriptions()]
        if self.protocol == mqtt.MQTTv5:
            c.subscribe(subs)
        else:
            c.subscribe([(t, 1) for t, _ in subs])

    def _on_subscribe(self, c: mqtt.Client, u: Any, mid: int, rcs: Any, props: Any) -> None:
        for rc in rcs:
            if rc.is_failure:
                log.error("subscription refused: %s", rc)
        self.subscribed.set()

    def _on_disconnect(
        self, c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", rc)

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        # The raw topic: a topic that is not UTF-8 must reach the dead-letter stream too.
        topic = getattr(msg, "_topic", b"")
        self.queue.put(Incoming(bytes(topic), bytes(msg.payload), now_ms(), msg.mid, msg.qos))

    # --- writer thread ---
    def _writer(self) -> None:
        last_beat = 0.0
        last_log = time.monotonic()
        while not self._stop.is_set() or not self.queue.empty():
            now = time.monotonic()
            if now - last_beat > 5:
                last_beat = now
                with contextlib.suppress(redis.RedisError):
                    self.r.hset(keys().heartbeats, f"ingest-mqtt:{self.client_id}", now_ms())
            if now - last_log > 60:
                last_log = now
                log.info("ingest stats: %s", self.processor.stats)
            try:
                first = self.queue.get(timeout=0.5)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            batch = [first]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._write_with_retry(batch)

    def _write_with_retry(self, batch: list[Incoming]) -> None:
        delay = 0.2
        while True:
            try:
                write_then_ack(self.processor, batch, self._ack)
                return
            except redis.RedisError as exc:
                log.warning("Redis did not take %d messages (%s); retrying", len(batch), exc)
                if self._stop.wait(delay):
                    # Not acknowledged: the broker redelivers them to the next session.
                    return
                delay = min(delay * 2, 5.0)

    def _ack(self, mid: int, qos: int) -> None:
        if self.client is not None:
            self.client.ack(mid, qos)

    # --- lifecycle ---
    def run(self, stop: threading.Event | None = None) -> None:
        """Run until ``stop`` is set (or forever); reconnects on its own."""
        if stop is not None:
            self._stop = stop
        target = parse_mqtt_url(get_settings().mqtt_url or "mqtt://127.0.0.1:1883")
        if self.protocol is None:
            # A broker configured as 3.1.1 (the embedded one) is not probed with MQTT 5,
            # which it would log as an invalid connection.
            if get_settings().mqtt_protocol == "3.1.1":
                self.protocol = mqtt.MQTTv311
            else:
                self.protocol = probe_protocol()
        client = make_client(self.client_id, protocol=self.protocol, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client
        writer = threading.Thread(target=self._writer, name="ingest-writer", daemon=True)
        writer.start()

        def watch_stop() -> None:
            self._stop.wait()
            client.disconnect()

        threading.Thread(target=watch_stop, name="ingest-stop", daemon=True).start()
        log.info(
            "MQTT ingest %s on %s:%d, topics %s",
            self.client_id,
            target.host,
            target.port,
            subscriptions(),
        )
        while not self._stop.is_set():
            try:
                if self.protocol == mqtt.MQTTv5:
                    client.connect(
                        target.host,
                        target.port,
                        keepalive=30,
                        clean_start=False,
                        properties=connect_properties(self.session_expiry_s),
                    )
                else:
                    client.connect(target.host, target.port, keepalive=30)
                client.loop_forever(retry_first_connection=True)
            except OSError as exc:
                log.warning("cannot reach the broker at %s:%d (%s)", target.host, target.port, exc)
                self._stop.wait(2.0)
        writer.join(timeout=10)

    def stop(self) -> None:
        self._stop.set()


def run(stop: threading.Event | None = None) -> None:
    """Entry point of ``python app.py ingest-mqtt``."""
    MqttIngest().run(stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run()
