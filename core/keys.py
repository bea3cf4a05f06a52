"""Every Redis key and stream name the product uses, in one place.

Keys carry a hash tag ``{...}`` for what must live in one Redis Cluster slot
(a stream and its dedupe set; an entity's hash and its index).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import get_settings


@dataclass(frozen=True)
class Keys:
    prefix: str

    # Streams
    @property
    def readings(self) -> str:
        """Decoded sensor readings, written by MQTT ingest, read by workers."""
        return f"{self.prefix}:{{in}}:readings"

    @property
    def reports(self) -> str:
        """Reports from people (hotline, app, patrol, departments), written by intake."""
        return f"{self.prefix}:{{in}}:reports"

    @property
    def video_events(self) -> str:
        """Events from camera analysis (motion, offline)."""
        return f"{self.prefix}:{{in}}:video"

    @property
    def dead(self) -> str:
        """Dead letters: every input that could not be taken, with its reason and raw bytes."""
        return f"{self.prefix}:{{in}}:dead"

    @property
    def seen(self) -> str:
        """Message identities already written (dedupe of redelivered messages)."""
        return f"{self.prefix}:{{in}}:seen"

    # Devices
    def device(self, device_id: str) -> str:
        return f"{self.prefix}:device:{device_id}"

    @property
    def devices(self) -> str:
        """Set of registered device ids."""
        return f"{self.prefix}:devices"

    @property
    def topic_index(self) -> str:
        """Hash: MQTT topic (without root) -> device id."""
        return f"{self.prefix}:topic2device"

    def device_state(self, device_id: str) -> str:
        """Hash: last values, last_seen_ms, status, severity of one device."""
        return f"{self.prefix}:devstate:{device_id}"

    @property
    def unknown_devices(self) -> str:
        """Hash: topic -> JSON of first/last seen and count, for devices nobody registered."""
        return f"{self.prefix}:unknown"

    @property
    def blocked_topics(self) -> str:
        """Set of topics a device team blocked; their messages stay dead letters."""
        return f"{self.prefix}:unknown:blocked"

    @property
    def device_credentials(self) -> str:
        """Hash: device id -> Mosquitto password-file hash of its MQTT password."""
        return f"{self.prefix}:devcreds"

    # Alarms and orders
    def alarm(self, alarm_id: str) -> str:
        return f"{self.prefix}:alarm:{alarm_id}"

    @property
    def alarms_open(self) -> str:
        """Sorted set of open alarm ids by raised time."""
        return f"{self.prefix}:alarms:open"

    @property
    def alarms_all(self) -> str:
        """Sorted set of all alarm ids by raised time (live window)."""
        return f"{self.prefix}:alarms:all"

    def alarm_lock(self, device_id: str, rule: str) -> str:
        """The one open alarm per device and rule."""
        return f"{self.prefix}:alarmkey:{device_id}:{rule}"

    def order(self, order_id: str) -> str:
        return f"{self.prefix}:order:{order_id}"

    @property
    def orders_open(self) -> str:
        return f"{self.prefix}:orders:open"

    @property
    def orders_all(self) -> str:
        return f"{self.prefix}:orders:all"

    @property
    def order_refs(self) -> str:
        """Hash: source (alarm:<id> / report:<id>) -> order id, so a source opens one order."""
        return f"{self.prefix}:orders:byref"

    @property
    def order_due(self) -> str:
        """Sorted set: clock id (order|stage|dept) -> deadline ms, for the overdue sweep."""
        return f"{self.prefix}:orders:due"

    @property
    def order_remind(self) -> str:
        """Sorted set: clock id -> ms of the reminder (yellow) before the deadline."""
        return f"{self.prefix}:orders:remind"

    @property
    def order_escalate(self) -> str:
        """Sorted set: clock id -> ms at which an overdue clock is escalated (督办)."""
        return f"{self.prefix}:orders:escalate"

    @property
    def order_inspect(self) -> str:
        """Sorted set: clock id -> ms at which an overdue clock goes to discipline inspection."""
        return f"{self.prefix}:orders:inspect"

    @property
    def orders_supervised(self) -> str:
        """Hash: order id -> JSON of the escalation (督办): to which level, when, why."""
        return f"{self.prefix}:orders:supervised"

    @property
    def orders_discipline(self) -> str:
        """Hash: order id -> JSON list of reasons for discipline inspection."""
        return f"{self.prefix}:orders:discipline"

    def order_closures(self, category: str, place: str) -> str:
        """Sorted set: order id -> closed ms, per category and place (repeat reports)."""
        return f"{self.prefix}:orders:closed:{category}:{place}"

    def order_geo(self, category: str) -> str:
        """Geo set: open report orders of one category by place, to merge duplicates."""
        return f"{self.prefix}:orders:geo:{category}"

    def alarm_order_geo(self, device_type: str) -> str:
        """Geo set: open orders opened by alarms of one device type, by the alarm's place,
        so alarms of nearby sensors join the one order."""
        return f"{self.prefix}:orders:alarmgeo:{device_type}"

    def orders_open_in(self, code: str) -> str:
        """Sorted set: open orders by created ms within one county (6) or township (9) code."""
        return f"{self.prefix}:orders:open:in:{code}"

    @property
    def open311_requests(self) -> str:
        """Hash: Open311 service_request_id (the report id) -> JSON of what the client sent."""
        return f"{self.prefix}:open311:requests"

    @property
    def responsibility(self) -> str:
        """List of JSON versions of the responsibility list (category, level -> owner)."""
        return f"{self.prefix}:resp:versions"

    @property
    def order_seq(self) -> str:
        return f"{self.prefix}:seq:order"

    @property
    def alarm_seq(self) -> str:
        return f"{self.prefix}:seq:alarm"

    # Cameras
    def camera(self, camera_id: str) -> str:
        """Hash: status, fps, frame age, motion of one camera."""
        return f"{self.prefix}:cam:{camera_id}"

    def camera_jpeg(self, camera_id: str) -> str:
        """Latest JPEG frame of one camera (bytes)."""
        return f"{self.prefix}:cam:{camera_id}:jpeg"

    @property
    def cameras(self) -> str:
        """Set of registered camera ids."""
        return f"{self.prefix}:cameras"

    @property
    def camera_registry(self) -> str:
        """Hash: camera id -> JSON of a camera onboarded through the device path (no secrets)."""
        return f"{self.prefix}:camreg"

    @property
    def camera_sources(self) -> str:
        """Hash: camera id -> its source URL with credentials; read by camera ingest only."""
        return f"{self.prefix}:camreg:sources"

    # Operating modes
    @property
    def modes(self) -> str:
        """Hash: jurisdiction code -> JSON of the mode in force there."""
        return f"{self.prefix}:modes"

    @property
    def mode_log(self) -> str:
        """Stream of every mode switch, with who and why."""
        return f"{self.prefix}:modelog"

    @property
    def mode_schedules(self) -> str:
        """Hash: schedule id -> JSON of a scheduled mode switch and its state."""
        return f"{self.prefix}:modesched"

    @property
    def mode_schedule_due(self) -> str:
        """Sorted set: '<schedule id>:remind|start|end' -> ms at which that step is due."""
        return f"{self.prefix}:modesched:due"

    @property
    def mode_schedule_seq(self) -> str:
        return f"{self.prefix}:seq:modesched"

    @property
    def mode_schedule_log(self) -> str:
        """Stream of what happened to scheduled switches: created, reminder, applied, ..."""
        return f"{self.prefix}:modesched:log"

    @property
    def mode_checklists(self) -> str:
        """Hash: jurisdiction code -> JSON of the checklist instance of the mode in force."""
        return f"{self.prefix}:modecheck"

    def mode_ticks(self, code: str, instance: str) -> str:
        """Stream of ticks of one checklist instance (append-only: who, when, note)."""
        return f"{self.prefix}:modecheck:{code}:{instance}"

    # Grid staff
    @property
    def staff_duty(self) -> str:
        """Hash: grid staff id -> JSON of on_duty, since_ms, by (live duty state)."""
        return f"{self.prefix}:staff:duty"

    # Push
    @property
    def push_channel(self) -> str:
        """Pub/sub channel that tells open screens what changed."""
        return f"{self.prefix}:push"

    @property
    def heartbeats(self) -> str:
        """Hash: role/process -> last heartbeat ms."""
        return f"{self.prefix}:heartbeats"


def keys() -> Keys:
    return Keys(get_settings().gridcc_prefix)
