"""工单办理 page logic: demo identities, which actions an identity may try, running them
through ``workorders.loop`` (which enforces the rules) and saying its refusals in Chinese."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from access.scope import Scope
from core.config import get_settings
from core.models import OrderStatus, PartStatus, WorkOrder
from core.timeutil import fmt_local
from i18n import t
from workorders import loop
from workorders.orderlist import filtered_orders
from workorders.service import OrderError, get_order


@dataclass(frozen=True)
class Identity:
    """A demo identity of the 当前身份 switch (accounts come later)."""

    key: str
    by: str  # recorded as "who" in the order's history
    dept: str  # the acting department; "" for a grid member
    label_key: str


IDENTITIES: dict[str, Identity] = {
    i.key: i
    for i in (
        Identity("center", "demo-center-operator", loop.CENTER, "orders.page.who.center"),
        Identity("chengguan", "demo-chengguan-staff", "城管", "orders.page.who.chengguan"),
        Identity("shuiwu", "demo-shuiwu-staff", "水务", "orders.page.who.shuiwu"),
        Identity("grid", "demo-grid-member", "", "orders.page.who.grid"),
    )
}
BY_LABEL = {i.by: i.label_key for i in IDENTITIES.values()}
# Departments the center can assign to in the demo; the order's suggested owner is added.
DEPARTMENTS = ("城管", "水务", "住建", "交通运输", "市场监管", "生态环境", "公安", "燃气公司")
ACTIONS = (
    "accept",
    "reject",
    "assign",
    "start",
    "message",
    "feedback",
    "check",
    "return",
    "arbitrate",
)
THREAD_STATES = {
    OrderStatus.ASSIGNED,
    OrderStatus.HANDLING,
    OrderStatus.FEEDBACK,
    OrderStatus.CHECKING,
}
MAX_PHOTO_BYTES = 8 * 1024 * 1024
MAX_PHOTOS = 6
# Magic bytes decide the type, never the uploaded name.
IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
EVIDENCE_NAME = re.compile(r"^ev-[0-9a-f]{32}\.(jpg|png|gif|webp)$")


def identity(key: str | None) -> Identity:
    return IDENTITIES.get(key or "", IDENTITIES["center"])


def who_label(by: str | None, lang: str) -> str:
    """A demo identity's name in the page's language; anyone else as recorded."""
    if not by:
        return "—"
    key = BY_LABEL.get(by)
    return t(key, lang) if key else by


def _part_of(order: WorkOrder, dept: str) -> Any:
    return next(
        (p for p in order.parts if p.dept == dept and p.status in loop.ACTIVE),
        None,
    )


def available_actions(order: WorkOrder | None, ident: Identity) -> list[str]:
    """Actions this identity may try on the order in its state; the loop still decides."""
    if order is None:
        return []
    st = order.status
    out: list[str] = []
    if ident.dept == loop.CENTER:
        if st == OrderStatus.ACCEPTING:
            out += ["accept", "reject"]
        if st == OrderStatus.ASSIGNED and not any(p.status in loop.ACTIVE for p in order.parts):
            out.append("assign")
        if any(p.status == PartStatus.RETURNED for p in order.parts):
            out.append("arbitrate")
    elif ident.dept:
        part = _part_of(order, ident.dept)
        if part is not None and part.status == PartStatus.ASSIGNED:
            out += ["start", "return"]
        if part is not None and part.status == PartStatus.HANDLING:
            out += ["feedback", "return"]
    parties = {p.dept for p in order.parts if p.status in loop.ACTIVE} | {loop.CENTER}
    if st in THREAD_STATES and ident.dept in parties:
        out.append("message")
    # Offered to everyone: the rule that a handler cannot check is the loop's to enforce.
    if st == OrderStatus.FEEDBACK:
        out.append("check")
    return [a for a in ACTIONS if a in out]


# --- refusals in the page's language ---------------------------------------------------

_REFUSALS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), k)
    for p, k in (
        (r"^(?P<by>.+) handled work order (?P<id>\S+) and cannot check it$", "own_check"),
        (
            r"^(?P<by>.+) cannot (?P<doing>.+) the part of (?P<dept>.+) on work order "
            r"(?P<id>\S+): only a department acts on its own part$",
            "not_own_part",
        ),
        (r"^work order (?P<id>\S+) cannot close without photo evidence$", "no_evidence"),
        (r"^work order (?P<id>\S+) is (?P<status>\w+); it cannot move to (?P<to>\w+)", "bad_move"),
        (r"^work order (?P<id>\S+) is (?P<status>\w+); (?P<doing>.+) needs it", "bad_status"),
        (r"^work order (?P<id>\S+) has no part for department '(?P<dept>.*)'$", "no_part"),
        (r"^work order (?P<id>\S+) is already assigned to (?P<dept>.+)$", "already_assigned"),
        (r"^work order (?P<id>\S+) does not exist$", "no_order"),
        (r"^'(?P<dept>.*)' is not a party to work order (?P<id>\S+)$", "not_party"),
        (r"^(?P<dept>.+) is already a party to work order (?P<id>\S+)$", "already_party"),
        (r"^the part of (?P<dept>.+) is (?P<pstatus>\w+)", "part_state"),
        (r"^the return limit .* has passed", "return_late"),
        (r"^a failed check needs a note", "need_note"),
        (r"^satisfaction .* must be 1\.\.5", "satisfaction"),
        (r"^evidence .* is not a photo reference", "bad_evidence"),
        (r"^a department appears twice", "dup_dept"),
        (r"^duplicate_of .* is not another existing work order$", "bad_duplicate"),
        (r"^a message is at most 2000 characters$", "long_message"),
        (r"^(?P<what>.+) is required$", "required"),
        (r"^a reason", "need_reason"),
    )
)


def refusal_text(exc: Exception, lang: str) -> str:
    """The loop's refusal as a sentence in the page's language (English detail kept)."""
    msg = str(exc)
    head = t("orders.page.refused", lang)
    for pat, key in _REFUSALS:
        m = pat.match(msg)
        if not m:
            continue
        g = {k: v for k, v in m.groupdict().items() if v is not None}
        if "status" in g:
            g["status"] = _status(g["status"], lang)
        if "to" in g:
            g["to"] = _status(g["to"], lang)
        if "pstatus" in g:
            g["pstatus"] = t(f"orders.page.part.{g['pstatus']}", lang)
        if "by" in g:
            g["by"] = who_label(g["by"], lang)
        if "dept" in g and g["dept"] == loop.CENTER:
            g["dept"] = t("orders.page.center", lang)
        return f"{head}：{t(f'orders.page.err.{key}', lang).format_map(_Default(g))}"
    return f"{head}：{msg}"


class _Default(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "—"


def _status(value: str, lang: str) -> str:
    try:
        return t(f"order_status.{OrderStatus(value).value}", lang)
    except ValueError:
        return value


# --- evidence photos ----------------------------------------------------------------


def evidence_dir() -> Path:
    return get_settings().var_dir / "evidence"


def save_photo(contents: str | None, lang: str) -> str:
    """Store an uploaded photo (data URL) under a generated name; returns ``photo:<name>``."""
    if not contents or "," not in contents:
        raise OrderError(t("orders.page.err.bad_upload", lang))
    try:
        raw = base64.b64decode(contents.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise OrderError(t("orders.page.err.bad_upload", lang)) from None
    if len(raw) > MAX_PHOTO_BYTES:
        raise OrderError(t("orders.page.err.big_upload", lang).format(mb=MAX_PHOTO_BYTES >> 20))
    ext = next((e for magic, e in IMAGE_MAGIC if raw.startswith(magic)), None)
    if ext is None and raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        ext = "webp"
    if ext is None:
        raise OrderError(t("orders.page.err.not_image", lang))
    name = f"ev-{uuid.uuid4().hex}.{ext}"
    folder = evidence_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(raw)
    return f"photo:{name}"


def evidence_file(name: str) -> Path | None:
    """The stored photo of a generated name; None for any other name (no path tricks)."""
    if not EVIDENCE_NAME.match(name):
        return None
    path = evidence_dir() / name
    return path if path.is_file() else None


def _drop_photos(refs: list[str]) -> None:
    for ref in refs:
        path = evidence_file(ref.removeprefix("photo:"))
        if path is not None:
            path.unlink(missing_ok=True)


# --- running an action ---------------------------------------------------------------


def _text(form: Mapping[str, Any], name: str) -> str:
    v = form.get(name)
    return str(v).strip() if v is not None else ""


def _list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, list | tuple) else [v]


def perform(
    r: redis.Redis,
    order_id: str | None,
    action: str,
    who: str | None,
    form: Mapping[str, Any],
    lang: str,
) -> tuple[bool, str]:
    """Run one action as the chosen identity; (done, message to show)."""
    ident = identity(who)
    if not order_id:
        return False, t("orders.page.err.no_selection", lang)
    if action not in ACTIONS:
        return False, t("orders.page.err.unknown_action", lang).format(action=action)
    saved: list[str] = []
    try:
        _run(r, order_id, action, ident, form, lang, saved)
    except OrderError as exc:
        _drop_photos(saved)
        return False, refusal_text(exc, lang)
    except Exception:
        _drop_photos(saved)
        raise
    return True, t(f"orders.page.done.{action}", lang).format(id=order_id)


def _run(
    r: redis.Redis,
    oid: str,
    action: str,
    ident: Identity,
    form: Mapping[str, Any],
    lang: str,
    saved: list[str],
) -> None:
    by, dept = ident.by, ident.dept
    if action == "accept":
        loop.accept(r, oid, by, _text(form, "note"))
    elif action == "reject":
        kind = _text(form, "reject_kind") or "invalid"
        loop.reject(r, oid, by, _text(form, "reason"), kind, _text(form, "duplicate_of") or None)
    elif action == "assign":
        lead = _text(form, "lead")
        co = [str(c) for c in _list(form.get("co")) if str(c) and str(c) != lead]
        loop.assign(r, oid, by, lead, co)
    elif action == "start":
        loop.start_part(r, oid, dept, by, dept)
    elif action == "message":
        loop.post_message(r, oid, by, dept, _text(form, "message"))
    elif action == "feedback":
        uploads = [c for c in _list(form.get("photos")) if c]
        if len(uploads) > MAX_PHOTOS:
            raise OrderError(t("orders.page.err.many_uploads", lang).format(n=MAX_PHOTOS))
        for c in uploads:
            saved.append(save_photo(c, lang))
        refs = [x for x in re.split(r"[\s,，]+", _text(form, "evidence_ref")) if x]
        loop.submit_feedback(r, oid, dept, by, dept, _text(form, "result"), [*saved, *refs])
    elif action == "check":
        verdict = _text(form, "verdict")
        if verdict not in ("pass", "fail"):
            raise OrderError(t("orders.page.err.need_verdict", lang))
        sat_raw = _text(form, "satisfaction")
        sat = int(sat_raw) if sat_raw.isdigit() else None
        loop.check(r, oid, verdict == "pass", by, sat, _text(form, "check_note"))
    elif action == "return":
        loop.return_order(r, oid, dept, by, dept, _text(form, "return_reason"))
    elif action == "arbitrate":
        if dept != loop.CENTER:
            raise OrderError(t("orders.page.err.center_only", lang))
        decision = _text(form, "decision")
        loop.arbitrate(
            r,
            oid,
            _text(form, "arb_part"),
            by,
            decision,
            _text(form, "arb_reason"),
            _text(form, "arb_to") or None,
        )


# --- what the page shows --------------------------------------------------------------


def list_rows(
    r: redis.Redis,
    scope: Scope,
    lang: str,
    *,
    status: list[str] | None = None,
    category: str | None = None,
    channel: str | None = None,
    overdue_only: bool = False,
    now: int | None = None,
) -> list[dict[str, Any]]:
    orders = filtered_orders(
        r,
        scope,
        status=status or None,
        category=(category or "").strip() or None,
        channel=channel or None,
        overdue_only=overdue_only,
        limit=100,
        now=now,
    )
    return [
        {
            "id": o.id,
            "created": fmt_local(o.created_ms),
            "channel": t(f"channel.{o.channel.value}", lang),
            "category": o.category,
            "title": o.title,
            "status": _status(o.status.value, lang),
            "deadline": fmt_local(o.deadline_ms),
            "signal": t(f"orders.page.signal.{o.signal}", lang) if o.signal else "",
        }
        for o in orders
    ]


def load(r: redis.Redis, scope: Scope, order_id: str | None) -> WorkOrder | None:
    """The selected order, if this screen's scope sees it."""
    if not order_id:
        return None
    o = get_order(r, order_id)
    if o is None or not scope.sees(o.place.code):
        return None
    return o


def clock_text(c: Mapping[str, Any], lang: str) -> str:
    """A part's clock: time left (or over) in its unit, paused, reminder/overdue."""
    unit = t(f"orders.page.unit.{c['unit']}", lang)
    bits: list[str] = []
    if c["left"] is None:
        bits.append(t("orders.page.clock.stopped", lang))
    elif c["left"] >= 0:
        bits.append(t("orders.page.clock.left", lang).format(n=f"{c['left']:.1f}", unit=unit))
    else:
        bits.append(t("orders.page.clock.over", lang).format(n=f"{-c['left']:.1f}", unit=unit))
    if c["paused"]:
        bits.append(t("orders.page.clock.paused", lang))
    if c["signal"]:
        bits.append(t(f"orders.page.signal.{c['signal']}", lang))
    return " · ".join(bits)


def history_what(step: Mapping[str, Any], lang: str) -> str:
    action = str(step.get("action", ""))
    key = f"orders.page.step.{action}"
    try:
        what = t(key, lang)
    except KeyError:
        what = action
    if action == "status":
        what = f"{what}：{_status(str(step.get('from', '')), lang)} → "
        what += _status(str(step.get("to", "")), lang)
    extra = [
        f"{t('orders.page.dept', lang)} {step['dept']}" if step.get("dept") else "",
        f"{t('orders.page.lead', lang)} {step['lead']}" if step.get("lead") else "",
        f"{t('orders.page.co', lang)} {'、'.join(step['co'])}" if step.get("co") else "",
        f"{t('orders.page.evidence', lang)} {step['evidence']}" if step.get("evidence") else "",
        f"{t('orders.page.satisfaction', lang)} {step['satisfaction']}"
        if step.get("satisfaction")
        else "",
    ]
    return "；".join([what, *[e for e in extra if e]])
