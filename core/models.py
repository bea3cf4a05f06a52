"""The records that cross process boundaries (streams, hashes, the API)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    """Warning levels of the Emergency Response Law: red (1) is the highest."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"

    @property
    def rank(self) -> int:
        return {"red": 1, "orange": 2, "yellow": 3, "blue": 4}[self.value]


SEVERITY_COLOURS = {
    Severity.RED: "#e02424",
    Severity.ORANGE: "#ff8a00",
    Severity.YELLOW: "#f5c400",
    Severity.BLUE: "#1c64f2",
}


class Mode(StrEnum):
    DAILY = "daily"  # 日常
    HOLIDAY = "holiday"  # 重要节假日
    MAJOR_TASK = "major_task"  # 重大任务
    EMERGENCY = "emergency"  # 应急


class Place(BaseModel):
    """Where something is: WGS84 point and the jurisdiction chain it resolved to."""

    model_config = ConfigDict(extra="forbid")

    lon: float
    lat: float
    county: str | None = None  # 6-digit code
    township: str | None = None  # 9-digit code
    village: str | None = None  # 12-digit code
    grid: str | None = None  # 15-digit code
    inside_city: bool = True

    @property
    def code(self) -> str:
        """The most precise jurisdiction code; scope checks compare its prefix."""
        return self.grid or self.village or self.township or self.county or ""


class Reading(BaseModel):
    """One decoded, validated sensor message."""

    device_id: str
    ts_ms: int
    received_ms: int
    metrics: dict[str, float]
    battery: float | None = None
    signal: float | None = None
    msg_id: str  # identity for dedupe (device + ts + payload hash)
    topic: str


class DeadLetter(BaseModel):
    reason: str
    detail: str = ""
    source: str  # "mqtt", "intake", "video"
    topic: str = ""
    raw: bytes = b""
    received_ms: int


class AlarmState(StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"
    CLOSED = "closed"


class Alarm(BaseModel):
    id: str
    device_id: str
    device_type: str
    rule: str  # e.g. "threshold:ch4_lel"
    metric: str
    value: float
    threshold: float
    unit: str = ""
    severity: Severity
    state: AlarmState = AlarmState.RAISED
    raised_ms: int
    updated_ms: int
    place: Place
    title: str
    order_id: str | None = None
    # Every step: {"ts_ms", "by", "action", ...}; acknowledgement and closing record who.
    history: list[dict[str, Any]] = Field(default_factory=list)


class OrderStatus(StrEnum):
    # 受理核实 → 分流交办 → 协同处置 → 结果反馈 → 核查评价 → 办结
    ACCEPTING = "accepting"
    ASSIGNED = "assigned"
    HANDLING = "handling"
    FEEDBACK = "feedback"
    CHECKING = "checking"
    CLOSED = "closed"
    REJECTED = "rejected"


class Channel(StrEnum):
    PATROL = "patrol"
    HOTLINE = "hotline"
    APP = "app"
    MINIPROGRAM = "miniprogram"
    MEDIA = "media"
    WINDOW = "window"
    DEPARTMENT = "department"
    HIGHER_LEVEL = "higher_level"
    TRANSFER = "transfer"
    ENTERPRISE = "enterprise"
    SENSOR = "sensor"
    VIDEO = "video"


class PartStatus(StrEnum):
    ASSIGNED = "assigned"  # 已交办, not yet taken up
    HANDLING = "handling"  # 处置中
    DONE = "done"  # result fed back
    RETURNED = "returned"  # 退单, waiting for the center's arbitration
    WITHDRAWN = "withdrawn"  # taken away by arbitration (reassigned)


class OrderPart(BaseModel):
    """One department's share of an order (lead or co-department), with its own clock."""

    dept: str
    role: str = "lead"  # "lead" | "co"
    status: PartStatus = PartStatus.ASSIGNED
    assigned_ms: int
    assigned_by: str = ""
    limit: float = 0.0
    unit: str = "work_hours"
    deadline_ms: int
    started_ms: int | None = None
    handler: str | None = None
    done_ms: int | None = None
    result: str = ""
    evidence: list[str] = Field(default_factory=list)
    paused_since_ms: int | None = None
    signal: str = ""  # "" | "yellow" (reminder) | "red" (overdue) | "escalated" (督办)


class WorkOrder(BaseModel):
    id: str  # e.g. GD20261203-000123
    channel: Channel
    category: str
    title: str
    text: str = ""
    priority: int = Field(default=3, ge=1, le=4)
    status: OrderStatus = OrderStatus.ACCEPTING
    created_ms: int
    updated_ms: int
    deadline_ms: int
    place: Place
    alarm_id: str | None = None
    source_ref: str | None = None  # the intake report id or device id
    history: list[dict[str, Any]] = Field(default_factory=list)
    # The closed loop (workorders/loop.py); empty for orders that have not been assigned.
    parts: list[OrderPart] = Field(default_factory=list)
    thread: list[dict[str, Any]] = Field(default_factory=list)  # 会商 messages
    requests: list[dict[str, Any]] = Field(default_factory=list)  # extensions, suspensions
    satisfaction: int | None = None  # reporter's, 1 (very dissatisfied) .. 5
    checked_by: str | None = None
    closed_ms: int | None = None
    reopen_count: int = 0
    rework_count: int = 0
    flags: list[str] = Field(default_factory=list)  # suspected false closure, overdue...
    signal: str = ""  # worst signal of its clocks: "" | "yellow" | "red" | "escalated"


class Report(BaseModel):
    """A report from a person through one of the intake channels (article 38)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: Channel = Channel.HOTLINE
    text: str = Field(min_length=2, max_length=4000)
    title: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=100)
    # Strict: a boolean or a string is not a coordinate.
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, strict=True)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, strict=True)
    crs: str = Field(default="wgs84", pattern="^(wgs84|gcj02|cgcs2000)$")
    reporter_name: str | None = Field(default=None, max_length=50)
    reporter_phone: str | None = Field(default=None, max_length=30)
    external_id: str | None = Field(default=None, max_length=100)
    occurred_ms: int | None = None


class CameraStatus(BaseModel):
    id: str
    name: str
    online: bool
    fps: float = 0.0
    frame_age_ms: int | None = None
    motion: float = 0.0  # foreground share 0..1
    motion_active: bool = False
    last_frame_ms: int | None = None
    error: str = ""
    # Where the camera is and looks, for the map; source with credentials masked.
    lon: float | None = None
    lat: float | None = None
    direction_deg: float | None = None
    fov_deg: float | None = None
    source: str = ""
    frame_age_limit_ms: int | None = None
    updated_ms: int | None = None
