"""The records that cross process boundaries (streams, hashes, the API)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)


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
    micro_grid: str | None = None  # 17-digit code, where the grid has micro-grids
    # 16-digit codes of the dedicated grids (schools, hospitals, ...) holding the point;
    # they lie across ordinary grids, so they come on top of the chain, not in it.
    dedicated: list[str] = Field(default_factory=list)

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


class SummonedDept(BaseModel):
    """One department called by a summons (吹哨) and its acknowledgement (报到)."""

    dept: str
    ack_deadline_ms: int
    acked_ms: int | None = None
    acked_by: str | None = None
    late: bool = False  # acknowledged after the deadline, or not by then
    signal: str = ""  # "" | "yellow" (reminder) | "red" (late)


class Summons(BaseModel):
    """A township (or higher level) summons departments to an order: who, when, why."""

    id: str  # S1, S2, ... within the order
    by: str
    by_level: str  # jurisdiction code of the summoning level (4, 6 or 9 digits)
    reason: str
    ts_ms: int
    limit: float
    unit: str
    departments: list[SummonedDept]


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
    # Every alarm this order answers once alarms of other sensors at the same place joined
    # it: the first (alarm_id), then each that joined; empty while it answers one alarm.
    alarm_ids: list[str] = Field(default_factory=list)
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
    # Everyone whose report this order answers (the first and every merged duplicate), so a
    # result reaches each of them: {"report_id", "channel", "name", "phone", "ts_ms"}.
    reporters: list[dict[str, Any]] = Field(default_factory=list)
    # The intake channel's own fields (call id, referring department, ...).
    channel_fields: dict[str, Any] = Field(default_factory=dict)
    # Routing suggestion from the text and the responsibility list; the operator confirms.
    suggested_category: str | None = None
    suggested_owner: str | None = None
    suggestions: list[dict[str, Any]] = Field(default_factory=list)
    # False for an imported report that came without a point: held at city level, 待定位 (to
    # be located); its place then carries no position (lon/lat 0 mean nothing), never a guess.
    located: bool = True
    # 吹哨报到: departments summoned to the order, each to report in within a limit.
    summons: list[Summons] = Field(default_factory=list)


class Report(BaseModel):
    """A report from a person through one of the intake channels (article 38)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: Channel = Channel.HOTLINE
    text: str = Field(min_length=2, max_length=4000)
    title: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=100)
    # Strict: a boolean or a string is not a coordinate. Required unless ``located`` is
    # false, which only the import of an export without points sets (the API refuses it).
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False, strict=True)
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False, strict=True)
    located: bool = True
    crs: str = Field(default="wgs84", pattern="^(wgs84|gcj02|cgcs2000)$")
    reporter_name: str | None = Field(default=None, max_length=50)
    reporter_phone: str | None = Field(default=None, max_length=30)
    external_id: str | None = Field(default=None, max_length=100)
    occurred_ms: int | None = None
    # Channel-specific fields (article 38); which are allowed and required per channel is in
    # CHANNEL_FIELDS. All optional in the schema so older clients keep working.
    call_id: str | None = Field(default=None, max_length=64, description="hotline: call id")
    app_user_id: str | None = Field(
        default=None, max_length=64, description="app / mini-program: user id"
    )
    from_department: str | None = Field(
        default=None, max_length=100, description="department referral: referring department"
    )
    from_level: str | None = Field(
        default=None, max_length=100, description="higher-level assignment: assigning level"
    )
    assigned_deadline_ms: int | None = Field(
        default=None, gt=0, description="higher-level assignment: deadline set by the level above"
    )
    from_region: str | None = Field(
        default=None, max_length=100, description="cross-region transfer: region it came from"
    )
    enterprise_grid: str | None = Field(
        default=None, max_length=32, description="enterprise: its dedicated grid code"
    )
    enterprise_name: str | None = Field(default=None, max_length=200)
    staff_id: str | None = Field(default=None, max_length=64, description="patrol: grid staff id")
    media_url: str | None = Field(default=None, max_length=1000)
    # Set by the intake paths from the policy: merge into an open order at the same place and
    # category within the window. Direct creators (tools, tests) opt in.
    merge: bool = False

    @model_validator(mode="wrap")
    @classmethod
    def _point(cls, data: Any, handler: ModelWrapValidatorHandler[Report]) -> Report:
        """lon and lat are required (named as missing fields) unless the report is unlocated."""
        missing: list[str] = []
        if isinstance(data, dict) and data.get("located", True) is not False:
            missing = [f for f in ("lon", "lat") if data.get(f) is None]
        elif isinstance(data, dict):
            given = [f for f in ("lon", "lat") if data.get(f) is not None]
            if given:
                raise ValueError(f"an unlocated report carries no point ({', '.join(given)})")
        errors: list[Any] = []
        out: Report | None = None
        try:
            out = handler(data)
        except ValidationError as exc:
            errors = [
                {k: e[k] for k in ("type", "loc", "input", "ctx") if k in e}
                for e in exc.errors(include_url=False)
            ]
        errors = [{"type": "missing", "loc": (f,), "input": data} for f in missing] + errors
        if errors or out is None:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return out

    @model_validator(mode="after")
    def _channel_fields(self) -> Report:
        allowed, required = CHANNEL_FIELDS.get(self.channel, ((), ()))
        present = {f for f in ALL_CHANNEL_FIELDS if getattr(self, f) is not None}
        foreign = sorted(present - set(allowed))
        if foreign:
            raise ValueError(
                f"channel {self.channel.value} does not take {', '.join(foreign)} "
                f"(it takes: {', '.join(allowed) or 'none'})"
            )
        missing = [f for f in required if getattr(self, f) is None]
        if missing:
            raise ValueError(f"channel {self.channel.value} needs {', '.join(missing)}")
        return self

    def channel_values(self) -> dict[str, Any]:
        """The channel's own fields that were given."""
        return {f: getattr(self, f) for f in ALL_CHANNEL_FIELDS if getattr(self, f) is not None}


# channel -> (allowed fields, required fields). media_url is any person's photo link.
CHANNEL_FIELDS: dict[Channel, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Channel.HOTLINE: (("call_id", "media_url"), ()),
    Channel.APP: (("app_user_id", "media_url"), ()),
    Channel.MINIPROGRAM: (("app_user_id", "media_url"), ()),
    Channel.MEDIA: (("media_url",), ()),
    Channel.WINDOW: (("media_url",), ()),
    Channel.DEPARTMENT: (("from_department", "media_url"), ("from_department",)),
    Channel.HIGHER_LEVEL: (
        ("from_level", "assigned_deadline_ms", "media_url"),
        ("from_level", "assigned_deadline_ms"),
    ),
    Channel.TRANSFER: (("from_region", "media_url"), ("from_region",)),
    Channel.ENTERPRISE: (
        ("enterprise_grid", "enterprise_name", "media_url"),
        ("enterprise_grid",),
    ),
    Channel.PATROL: (("staff_id", "media_url"), ("staff_id",)),
    Channel.SENSOR: ((), ()),
    Channel.VIDEO: (("media_url",), ()),
}
ALL_CHANNEL_FIELDS: tuple[str, ...] = (
    "call_id",
    "app_user_id",
    "from_department",
    "from_level",
    "assigned_deadline_ms",
    "from_region",
    "enterprise_grid",
    "enterprise_name",
    "staff_id",
    "media_url",
)


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
    rss_mb: float | None = None  # memory of the camera's process
