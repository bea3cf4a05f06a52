"""MQTT ingest: subscribe, decode by device profile, validate, write Redis streams.

Nothing is lost: QoS 1 on a persistent session (stable client id, no clean start) and
manual acknowledgement, so the broker forgets a message only after its reading or
dead letter is in Redis, or, while Redis is unreachable, after it is fsync'd to the
disk spool (``ingest/spool.py``, under ``<VAR_DIR>/spool/<client id>``). When Redis
answers again the spool is replayed in order before anything newer is written; a
non-empty spool left by a stopped or killed process is replayed at start. A full
spool stops acknowledgement, so the broker keeps the messages. Redelivered and
replayed messages are deduplicated by message id (device + time + payload hash; the
spool keeps the first receive time, so a replay has the identity of the first try).

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
from pathlib import Path
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
from ingest.spool import Spool, SpoolError, SpoolFull, SpoolRecord, safe_name

log = logging.getLogger(__name__)

READINGS_MAXLEN = 500_000  # about a day of the demo; workers keep up long before that
DEAD_MAXLEN = 100_000
SEEN_BUCKET_MS = 10 * 60 * 1000  # redelivery happens within minutes of the first try
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue through a long outage
RECEIVE_MAXIMUM = 1000  # unacknowledged messages the broker may send us at once
BATCH_MAX = 500
REPLAY_RETRY_MAX_S = 1.0  # while spooling, how seldom at most Redis is tried again
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
    spooled: int = 0  # acknowledged after the disk spool, not Redis, took them
    replayed: int = 0  # spooled messages Redis has since taken
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
        spool_dir: Path | None = None,
        spool_max_bytes: int | None = None,
    ) -> None:
        self.r = r or get_redis()
        self.processor = Processor(self.r)
        self.client_id = client_id or default_client_id()
        self.session_expiry_s = session_expiry_s
        self.protocol = protocol
        s = get_settings()
        self.spool_dir = spool_dir or s.var_dir / "spool" / safe_name(self.client_id)
        self.spool_max_bytes = spool_max_bytes or s.spool_max_bytes
        self.spool: Spool | None = None
        self._replay_at = 0.0  # monotonic time of the next replay attempt
        self._replay_delay = 0.25
        self._spool_full_logged = False
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
        # Once stopped, the broker connection is closing: an acknowledgement could not
        # reach it, so what is still queued is left to the broker to deliver again.
        while not self._stop.is_set():
            now = time.monotonic()
            spooling = self.spool is not None and self.spool.pending()
            if now - last_beat > 5 and not spooling:
                last_beat = now
                with contextlib.suppress(redis.RedisError):
                    self.r.hset(keys().heartbeats, f"ingest-mqtt:{self.client_id}", now_ms())
            if now - last_log > 60:
                last_log = now
                log.info("ingest stats: %s", self.processor.stats)
            try:
                first = self.queue.get(timeout=0.5)
            except queue.Empty:
                if spooling:
                    self._replay()
                continue
            batch = [first]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._write_with_retry(batch)

    def _write_with_retry(self, batch: list[Incoming]) -> None:
        """Write to Redis, else to the spool; acknowledge only after one of them took it."""
        delay = 0.2
        while True:
            spool = self.spool
            if spool is None or not spool.pending() or self._replay():
                try:
                    write_then_ack(self.processor, batch, self._ack)
                    return
                except redis.RedisError as exc:
                    if spool is None:
                        log.warning(
                            "Redis did not take %d messages (%s); retrying", len(batch), exc
                        )
                    else:
                        if not spool.pending():
                            log.warning(
                                "Redis did not take %d messages (%s); spooling to %s",
                                len(batch),
                                exc,
                                spool.dir,
                            )
                        self._replay_later()
            if spool is not None and self._to_spool(spool, batch):
                return
            if self._stop.wait(delay):
                # Not acknowledged: the broker redelivers them to the next session.
                return
            delay = min(delay * 2, REPLAY_RETRY_MAX_S)

    def _to_spool(self, spool: Spool, batch: Sequence[Incoming]) -> bool:
        records = [SpoolRecord(m.topic, m.payload, m.received_ms, m.qos) for m in batch]
        try:
            spool.append(records)
        except SpoolFull as exc:
            if not self._spool_full_logged:
                log.error("%s", exc)
                self._spool_full_logged = True
            return False
        except (SpoolError, OSError, ValueError) as exc:
            log.error("cannot write the spool %s (%s); not acknowledging", spool.dir, exc)
            return False
        self._spool_full_logged = False
        self.processor.stats.spooled += len(batch)
        for msg in batch:
            if msg.qos > 0:
                self._ack(msg.mid, msg.qos)
        return True

    def _replay_later(self) -> None:
        self._replay_at = time.monotonic() + self._replay_delay
        self._replay_delay = min(self._replay_delay * 2, REPLAY_RETRY_MAX_S)

    def _replay(self) -> bool:
        """Replay the spool into Redis in order; True when it is empty afterwards."""
        spool = self.spool
        if spool is None:
            return True
        if time.monotonic() < self._replay_at:
            return False
        t0 = time.monotonic()
        done = 0
        while not self._stop.is_set():
            try:
                records, end = spool.read(BATCH_MAX)
            except OSError as exc:
                log.error("cannot read the spool %s (%s)", spool.dir, exc)
                self._replay_later()
                return False
            if not records or end is None:
                if done:
                    log.info(
                        "spool replayed: %d messages into Redis in %.2f s",
                        done,
                        time.monotonic() - t0,
                    )
                self._replay_delay = 0.25
                self._spool_full_logged = False
                return True
            batch = [Incoming(x.topic, x.payload, x.received_ms, 0, x.qos) for x in records]
            try:
                self.processor.write(batch)
            except redis.RedisError as exc:
                log.warning("Redis is still not taking the spool (%s)", exc)
                self._replay_later()
                return False
            spool.commit(end)
            done += len(records)
            self.processor.stats.replayed += len(records)
        return False

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
        self.spool = Spool(self.spool_dir, self.spool_max_bytes)
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
        if not writer.is_alive():
            self.spool.close()

    def stop(self) -> None:
        self._stop.set()


def run(stop: threading.Event | None = None) -> None:
    """Entry point of ``python app.py ingest-mqtt``."""
    MqttIngest().run(stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run()
