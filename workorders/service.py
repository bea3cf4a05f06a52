"""Work orders: creation from alarms and reports, the status machine, deadlines.

A report whose point lies outside the city is stored, flagged ``inside_city = false``
with a note in its history, and held at city level (only the city scope sees an
unlocated order) so the city centre can transfer it to the right authority: nothing a
citizen reports is dropped. ``outside_city: refuse`` in the policy refuses it instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import redis
import yaml
from pydantic import BaseModel, Field

from core import push
from core.keys import keys
from core.models import (
    Alarm,
    Channel,
    OrderStatus,
    Place,
    Report,
    Severity,
    WorkOrder,
)
from core.timeutil import SHANGHAI, now_ms

POLICY_FILE = Path(__file__).resolve().parent / "policy.yaml"
HOUR_MS = 3_600_000

# 受理核实 → 分流交办 → 协同处置 → 结果反馈 → 核查评价 → 办结; checking may send it back.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.ACCEPTING: frozenset({OrderStatus.ASSIGNED, OrderStatus.REJECTED}),
    OrderStatus.ASSIGNED: frozenset({OrderStatus.HANDLING, OrderStatus.ACCEPTING}),
    OrderStatus.HANDLING: frozenset({OrderStatus.FEEDBACK}),
    OrderStatus.FEEDBACK: frozenset({OrderStatus.CHECKING, OrderStatus.HANDLING}),
    OrderStatus.CHECKING: frozenset({OrderStatus.CLOSED, OrderStatus.HANDLING}),
    OrderStatus.CLOSED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
}
FINAL = frozenset({OrderStatus.CLOSED, OrderStatus.REJECTED})

Locate = Callable[[float, float], Place]


class OrderError(ValueError):
    """A refused work-order operation; the message says why."""


class OutsideCity(OrderError):
    """The reported point is outside the city and the policy refuses such reports."""


class StageLimit(BaseModel):
    """Time limit of one stage of the loop: unit, amount per priority, category rows."""

    unit: str = Field(default="work_hours", pattern="^(work_hours|calendar_hours|work_days)$")
    # Priorities whose clock runs in calendar hours whatever the unit (urgent orders).
    calendar_priorities: list[int] = Field(default_factory=lambda: [1])
    default: dict[int, float]
    categories: dict[str, dict[int, float]] = Field(default_factory=dict)

    def limit(self, category: str, priority: int) -> tuple[float, str]:
        row = self.categories.get(category) or {}
        amount = row.get(priority, self.default.get(priority))
        if amount is None:
            raise ValueError(f"policy: stage limit has no value for priority {priority}")
        if priority in self.calendar_priorities and self.unit != "calendar_hours":
            hours = float(amount) * (7.0 if self.unit == "work_days" else 1.0)
            return hours, "calendar_hours"
        return float(amount), self.unit


class Supervision(BaseModel):
    """When the supervision sweep reminds, escalates and lists for discipline inspection."""

    escalate_after_hours: float = Field(default=4, ge=0)
    inspect_after_hours: float = Field(default=24, ge=0)
    repeat_days: float = Field(default=30, gt=0)
    dissatisfied_at_most: int = Field(default=2, ge=1, le=5)


class MergePolicy(BaseModel):
    """Reports at the same place and category within the window join the open order."""

    enabled: bool = True
    radius_m: float = Field(default=50, gt=0, le=1000)
    window_hours: float = Field(default=24, gt=0)


class SummonsPolicy(BaseModel):
    """吹哨报到: how long a summoned department has to report in, and on which clock."""

    ack_limit_minutes: float = Field(default=30, gt=0, le=7 * 24 * 60)
    unit: str = Field(default="calendar_hours", pattern="^(work_hours|calendar_hours)$")


class Policy(BaseModel):
    alarm_order_severities: list[Severity] = Field(
        default_factory=lambda: [Severity.RED, Severity.ORANGE]
    )
    priority_by_severity: dict[Severity, int] = Field(
        default_factory=lambda: {
            Severity.RED: 1,
            Severity.ORANGE: 2,
            Severity.YELLOW: 3,
            Severity.BLUE: 4,
        }
    )
    report_priority: int = Field(default=3, ge=1, le=4)
    time_limit_hours: dict[str, dict[int, float]]
    reminder_share: float = Field(default=0.2, ge=0, lt=1)
    outside_city: str = Field(default="store", pattern="^(store|refuse)$")
    stage_limits: dict[str, StageLimit] = Field(default_factory=dict)
    supervision: Supervision = Field(default_factory=Supervision)
    merge: MergePolicy = Field(default_factory=MergePolicy)
    summons: SummonsPolicy = Field(default_factory=SummonsPolicy)

    def stage_limit(self, stage: str, category: str, priority: int) -> tuple[float, str]:
        """(amount, unit) of a loop stage; unknown stages are a policy error."""
        if stage not in self.stage_limits:
            raise ValueError(f"policy: no stage_limits.{stage}")
        return self.stage_limits[stage].limit(category, priority)

    def limit_hours(self, category: str, priority: int) -> float:
        row = self.time_limit_hours.get(category) or self.time_limit_hours["default"]
        if priority in row:
            return float(row[priority])
        return float(self.time_limit_hours["default"][priority])


def load_policy(path: Path | str | None = None) -> Policy:
    with open(path or POLICY_FILE, encoding="utf-8") as fh:
        pol = Policy.model_validate(yaml.safe_load(fh) or {})
    if "default" not in pol.time_limit_hours or set(pol.time_limit_hours["default"]) != {
        1,
        2,
        3,
        4,
    }:
        raise ValueError("policy: time_limit_hours.default must give hours for priorities 1-4")
    return pol


@lru_cache(maxsize=1)
def policy() -> Policy:
    return load_policy()


# --- ids, storage ---------------------------------------------------------------------


def new_order_id(r: redis.Redis, ts_ms: int | None = None) -> str:
    """GD + the Asia/Shanghai date + a city-wide sequence number."""
    seq = int(r.incr(keys().order_seq))
    day = datetime.fromtimestamp((ts_ms or now_ms()) / 1000, tz=UTC).astimezone(SHANGHAI)
    return f"GD{day:%Y%m%d}-{seq:06d}"


def get_order(r: redis.Redis, order_id: str) -> WorkOrder | None:
    """Unscoped read for the workers; screens read through access.reads."""
    raw = r.get(keys().order(order_id))
    return WorkOrder.model_validate_json(raw) if raw else None


def _save(pipe: Any, order: WorkOrder) -> None:
    from workorders.clockindex import on_save

    k = keys()
    # Before SET: on_save may add a flag to the order.
    on_save(pipe, order, order.updated_ms)
    pipe.set(k.order(order.id), order.model_dump_json())
    pipe.zadd(k.orders_all, {order.id: order.created_ms})
    areas = [c for c in (order.place.county, order.place.township) if c]
    if order.status in FINAL:
        pipe.zrem(k.orders_open, order.id)
        pipe.zrem(k.order_geo(order.category), order.id)
        for code in areas:
            pipe.zrem(k.orders_open_in(code), order.id)
    else:
        pipe.zadd(k.orders_open, {order.id: order.created_ms})
        # Per-area indexes keep a district's or township's list fast at any city size.
        for code in areas:
            pipe.zadd(k.orders_open_in(code), {order.id: order.created_ms})


def deadline_for(r: redis.Redis, category: str, priority: int, place: Place, start_ms: int) -> int:
    """The time limit of the category and priority, scaled by the mode in force at the place."""
    from modes.service import get_mode

    factor = get_mode(r, place.code or "4101").time_limit_factor
    return start_ms + int(policy().limit_hours(category, priority) * factor * HOUR_MS)


def _create(
    r: redis.Redis,
    *,
    source_ref: str,
    build: Callable[[str, int], WorkOrder],
) -> WorkOrder:
    """Create once per source: a redelivered alarm or report finds its existing order."""
    refs = keys().order_refs
    existing = r.hget(refs, source_ref)
    if existing:
        oid = existing.decode() if isinstance(existing, bytes) else str(existing)
        found = get_order(r, oid)
        if found:
            return found
    else:
        ts = now_ms()
        oid = new_order_id(r, ts)
        if not r.hsetnx(refs, source_ref, oid):
            # Another worker reserved an id for this source first; use that one.
            other = r.hget(refs, source_ref)
            oid = other.decode() if isinstance(other, bytes) else str(other)
            found = get_order(r, oid)
            if found:
                return found
    # The id is reserved but the order was never written (a crash in between): write it now.
    order = build(oid, now_ms())
    from workorders.clockindex import clock_id, set_clock, stage_clock

    acc = stage_clock(r, order, "accept", order.created_ms)
    pipe = r.pipeline(transaction=True)
    _save(pipe, order)
    if acc:
        set_clock(pipe, clock_id(order.id, "accept"), order.created_ms, acc[2])
    pipe.execute()
    push.publish(r, "order", id=order.id, code=order.place.code, status=order.status.value)
    return order


def _step(by: str, action: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {
        "ts_ms": ts,
        "by": by,
        "action": action,
        **{k: v for k, v in extra.items() if v is not None},
    }


def alarm_category(device_type: str) -> str:
    t = device_type.lower()
    for word, cat in (
        ("gas", "lifeline_gas"),
        ("water", "lifeline_water"),
        ("drain", "lifeline_drainage"),
        ("flood", "lifeline_drainage"),
    ):
        if word in t:
            return cat
    return f"lifeline_{t}" if t else "lifeline"


def create_from_alarm(r: redis.Redis, alarm: Alarm) -> WorkOrder | None:
    """An alarm of a configured severity (orange/red by default) opens one work order."""
    pol = policy()
    if alarm.severity not in pol.alarm_order_severities:
        return None
    priority = pol.priority_by_severity.get(alarm.severity, 3)
    category = alarm_category(alarm.device_type)

    def build(oid: str, ts: int) -> WorkOrder:
        return WorkOrder(
            id=oid,
            channel=Channel.SENSOR,
            category=category,
            title=alarm.title,
            text=f"{alarm.metric} = {alarm.value:g}{alarm.unit} (限值 {alarm.threshold:g}{alarm.unit})",
            priority=priority,
            created_ms=ts,
            updated_ms=ts,
            deadline_ms=deadline_for(r, category, priority, alarm.place, ts),
            place=alarm.place,
            alarm_id=alarm.id,
            source_ref=alarm.device_id,
            history=[
                _step(
                    "system",
                    "created",
                    ts,
                    to=OrderStatus.ACCEPTING.value,
                    note=f"{alarm.severity.value} alarm {alarm.id}",
                )
            ],
        )

    return _create(r, source_ref=f"alarm:{alarm.id}", build=build)


def _default_locate() -> Locate:
    from grids.locate import locator

    return locator().locate


# An unlocated report's place: held at city level (no code), lon/lat carry no position.
UNLOCATED_PLACE = Place(lon=0.0, lat=0.0, inside_city=False)
UNLOCATED_NOTE = "待定位: the report came without a point; held at city level to be located"


def place_of_report(report: Report, locate: Locate | None = None) -> tuple[Place, str | None]:
    """WGS84 place of a report, and a note when the input needed care."""
    if not report.located or report.lon is None or report.lat is None:
        # No point was given: nothing to locate, and no point is made up.
        return UNLOCATED_PLACE.model_copy(), UNLOCATED_NOTE
    lon, lat = report.lon, report.lat
    note = None
    if report.crs == "gcj02":
        from grids.coords import gcj02_to_wgs84

        lon, lat = gcj02_to_wgs84(lon, lat)
        note = f"GCJ-02 ({report.lon:.6f}, {report.lat:.6f}) converted to WGS84"
    place = (locate or _default_locate())(lon, lat)
    if not place.inside_city:
        msg = f"point ({lon:.6f}, {lat:.6f}) is outside the city; held at city level for transfer"
        note = f"{note}; {msg}" if note else msg
    return place, note


UNCATEGORISED = "未分类"
TO_LOCATE = "to_locate"  # flag of an order held at city level, 待定位


def _reporter(report: Report, report_id: str, ts: int) -> dict[str, Any]:
    return {
        k: v
        for k, v in {
            "report_id": report_id,
            "channel": report.channel.value,
            "name": report.reporter_name,
            "phone": report.reporter_phone,
            "ts_ms": ts,
            **report.channel_values(),
        }.items()
        if v is not None
    }


def _merge_into(
    r: redis.Redis, report: Report, report_id: str, category: str, place: Place
) -> WorkOrder | None:
    """The open order of the category within the merge radius and window, with this report
    recorded on it; None when there is none."""
    mp = policy().merge
    k = keys()
    try:
        near = r.geosearch(
            k.order_geo(category),
            longitude=place.lon,
            latitude=place.lat,
            radius=mp.radius_m,
            unit="m",
            sort="ASC",
        )
    except redis.ResponseError:
        return None
    since = now_ms() - int(mp.window_hours * HOUR_MS)
    for raw_id in near:
        oid = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        out: dict[str, WorkOrder] = {}

        def txn(pipe: Any, oid: str = oid, out: dict[str, WorkOrder] = out) -> None:
            raw = pipe.get(k.order(oid))
            if not raw:
                return
            order = WorkOrder.model_validate_json(raw)
            if order.status in FINAL or order.created_ms < since or order.category != category:
                return
            ts = now_ms()
            order.reporters.append(_reporter(report, report_id, ts))
            order.history.append(
                _step(
                    report.reporter_name or report.channel.value,
                    "merged",
                    ts,
                    note=f"report {report_id} via {report.channel.value}",
                    report_id=report_id,
                )
            )
            order.updated_ms = ts
            pipe.multi()
            pipe.set(k.order(order.id), order.model_dump_json())
            pipe.hset(k.order_refs, f"report:{report_id}", order.id)
            out["order"] = order

        r.transaction(txn, k.order(oid))
        if "order" in out:
            order = out["order"]
            push.publish(r, "order", id=order.id, code=order.place.code, status=order.status.value)
            return order
    return None


def _routing(
    r: redis.Redis, report: Report, place: Place
) -> tuple[list[dict[str, Any]], str | None]:
    """Suggested categories from the text and the owner from the responsibility list; a
    routing failure never stops a report from becoming an order."""
    from workorders import routing

    # The model learnt from subject + details, so the title is part of the evidence.
    text = f"{report.title}。{report.text}" if report.title else report.text
    try:
        return routing.suggest_route(r, text, place, report.category)
    except (OSError, ValueError) as exc:
        return [{"error": str(exc)}], None


def create_from_report(
    r: redis.Redis,
    report: Report,
    *,
    report_id: str,
    locate: Locate | None = None,
) -> WorkOrder:
    """A work order for a person's report, located in its grid, or the report merged into
    the open order of its category at the same place (``report.merge``, policy ``merge``)."""
    place, note = place_of_report(report, locate)
    pol = policy()
    if report.located and not place.inside_city and pol.outside_city == "refuse":
        raise OutsideCity(
            f"report {report_id}: point ({place.lon:.6f}, {place.lat:.6f}) is outside the city"
        )
    category = report.category or UNCATEGORISED
    k = keys()
    existing = r.hget(k.order_refs, f"report:{report_id}")
    if existing:
        found = get_order(r, existing.decode() if isinstance(existing, bytes) else str(existing))
        if found:
            return found
    # An unknown category cannot be judged a duplicate: the operator decides.
    if report.merge and pol.merge.enabled and category != UNCATEGORISED and place.inside_city:
        merged = _merge_into(r, report, report_id, category, place)
        if merged is not None:
            return merged
    priority = pol.report_priority
    title = report.title or report.text[:40]
    suggestions, owner = _routing(r, report, place)

    def build(oid: str, ts: int) -> WorkOrder:
        history = [
            _step(
                report.reporter_name or report.channel.value,
                "created",
                ts,
                to=OrderStatus.ACCEPTING.value,
                note=f"report {report_id} via {report.channel.value}",
            )
        ]
        if note:
            action = "located" if report.located else TO_LOCATE
            history.append(_step("system", action, ts, note=note))
        # The clock runs from intake, not from when it happened: the time limit is ours.
        deadline = deadline_for(r, category, priority, place, ts)
        if report.assigned_deadline_ms is not None:
            # A level above may set a shorter deadline, never a longer one.
            deadline = min(deadline, report.assigned_deadline_ms)
        top = next((s["category"] for s in suggestions if "category" in s), None)
        return WorkOrder(
            id=oid,
            channel=report.channel,
            category=category,
            title=title,
            text=report.text,
            priority=priority,
            created_ms=ts,
            updated_ms=ts,
            deadline_ms=deadline,
            place=place,
            source_ref=report_id,
            history=history,
            reporters=[_reporter(report, report_id, ts)],
            channel_fields=report.channel_values(),
            suggested_category=top,
            suggested_owner=owner,
            suggestions=suggestions,
            located=report.located,
            flags=[] if report.located else [TO_LOCATE],
        )

    order = _create(r, source_ref=f"report:{report_id}", build=build)
    if category != UNCATEGORISED and place.inside_city and order.status not in FINAL:
        r.geoadd(k.order_geo(category), (place.lon, place.lat, order.id))
    return order


def transition(
    r: redis.Redis, order_id: str, to: OrderStatus | str, by: str, reason: str = ""
) -> WorkOrder:
    """Move an order along the status machine; an illegal move is refused with why."""
    try:
        target = OrderStatus(to)
    except ValueError:
        raise OrderError(f"unknown status {to!r}") from None
    by = (by or "").strip()
    if not by:
        raise OrderError("a status change needs the name of who makes it")
    if target in (OrderStatus.REJECTED, OrderStatus.ACCEPTING) and not (reason or "").strip():
        raise OrderError(f"moving to {target.value} needs a reason")
    k = keys()
    result: dict[str, WorkOrder] = {}

    def txn(pipe: Any) -> None:
        raw = pipe.get(k.order(order_id))
        if not raw:
            raise OrderError(f"work order {order_id} does not exist")
        order = WorkOrder.model_validate_json(raw)
        if target not in TRANSITIONS[order.status]:
            allowed = (
                ", ".join(sorted(s.value for s in TRANSITIONS[order.status])) or "none (final)"
            )
            raise OrderError(
                f"work order {order_id} is {order.status.value}; it cannot move to "
                f"{target.value} (allowed: {allowed})"
            )
        ts = now_ms()
        order.history.append(
            _step(
                by,
                "status",
                ts,
                **{"from": order.status.value, "to": target.value, "note": reason or None},
            )
        )
        order.status = target
        order.updated_ms = ts
        pipe.multi()
        _save(pipe, order)
        result["order"] = order

    r.transaction(txn, k.order(order_id))
    order = result["order"]
    push.publish(r, "order", id=order.id, code=order.place.code, status=order.status.value)
    return order


def accept(r: redis.Redis, order_id: str, by: str, note: str = "") -> WorkOrder:
    """Accepted and verified (受理核实 done): the order goes on to triage and assignment."""
    from workorders import loop

    return loop.accept(r, order_id, by, note)


def list_orders(r: redis.Redis, *, open_only: bool = True, limit: int = 50) -> list[WorkOrder]:
    """Unscoped, newest first, for workers and tools; screens use access.reads."""
    k = keys()
    ids = cast(
        list[bytes], r.zrevrange(k.orders_open if open_only else k.orders_all, 0, max(0, limit - 1))
    )
    if not ids:
        return []
    raws = r.mget([k.order(i.decode()) for i in ids])
    return [WorkOrder.model_validate_json(x) for x in raws if x]


def order_json(order: WorkOrder) -> dict[str, Any]:
    return json.loads(order.model_dump_json())


def locate_order(
    r: redis.Redis,
    order_id: str,
    lon: float,
    lat: float,
    by: str,
    crs: str = "wgs84",
    locate: Locate | None = None,
) -> WorkOrder:
    """An operator gives a 待定位 order the point found for it: it leaves the city hold for
    its grid (or stays held, flagged outside the city, when the point is outside)."""
    from workorders.loop import LoopError, apply

    by = (by or "").strip()
    if not by:
        raise OrderError("locating an order needs the name of who locates it")
    # The same checks as a report's point: finite numbers, WGS84 ranges, a known CRS.
    point = Report.model_validate({"text": "定位", "lon": lon, "lat": lat, "crs": crs})
    place, note = place_of_report(point, locate)

    def fn(o: WorkOrder, ts: int, ops: Any) -> None:
        if o.located:
            raise LoopError(f"work order {o.id} already has its place")
        if o.status in FINAL:
            raise LoopError(f"work order {o.id} is {o.status.value}; it is no longer located")
        o.place, o.located = place, True
        if TO_LOCATE in o.flags:
            o.flags.remove(TO_LOCATE)
        detail = f"({place.lon:.6f}, {place.lat:.6f}) → {place.code or 'outside the city'}"
        o.history.append(_step(by, "located", ts, note=f"{detail}; {note}" if note else detail))

    return apply(r, order_id, fn)
