"""The 工单办理 page's action logic on the real Redis: each identity's actions run through the
loop, its refusals come back in Chinese, evidence photos are stored under safe names."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from access.scope import Scope
from core.models import Channel, OrderStatus, Report, WorkOrder
from dashboard.pages import orders as page
from dashboard.pages import orders_logic as logic
from i18n import t
from workorders.service import create_from_report, get_order

ZH = "zh-CN"
JINSHUI = (113.6835, 34.7740)
CITY = Scope(user="test")


def png_data_url(color: int = 200) -> str:
    img = np.full((24, 32, 3), color, dtype=np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


def new_order(
    r: redis.Redis, rid: str = "rpt-page-1", text: str = "人行道井盖破损，行人易绊倒"
) -> str:
    rep = Report(
        channel=Channel.HOTLINE,
        text=text,
        category="城乡建设",
        lon=JINSHUI[0],
        lat=JINSHUI[1],
        reporter_name="王女士",
        call_id="C-1001",
    )
    return create_from_report(r, rep, report_id=rid).id


def order(r: redis.Redis, oid: str) -> WorkOrder:
    o = get_order(r, oid)
    assert o is not None, oid
    return o


def act(r: redis.Redis, oid: str, action: str, who: str, **form: Any) -> tuple[bool, str]:
    return logic.perform(r, oid, action, who, form, ZH)


def to_feedback(r: redis.Redis, oid: str, **feedback: Any) -> None:
    assert act(r, oid, "accept", "center")[0]
    assert act(r, oid, "assign", "center", lead="城管", co=[])[0]
    assert act(r, oid, "start", "chengguan")[0]
    ok, msg = act(r, oid, "feedback", "chengguan", result="已更换井盖", **feedback)
    assert ok, msg


def test_whole_loop_by_three_identities(r: redis.Redis, gridcc_env: dict[str, str]) -> None:
    oid = new_order(r)
    center, cg, grid = (logic.IDENTITIES[k] for k in ("center", "chengguan", "grid"))
    o = order(r, oid)
    assert logic.available_actions(o, center) == ["accept", "reject"]
    assert logic.available_actions(o, cg) == []

    ok, msg = act(r, oid, "accept", "center", note="电话核实属实")
    assert ok and msg == t("orders.page.done.accept", ZH).format(id=oid)
    assert logic.available_actions(order(r, oid), center) == ["assign", "message"]
    assert act(r, oid, "assign", "center", lead="城管", co=["水务"])[0]
    o = order(r, oid)
    assert [(p.dept, p.role) for p in o.parts] == [("城管", "lead"), ("水务", "co")]
    assert logic.available_actions(o, cg) == ["start", "message", "return"]

    assert act(r, oid, "start", "chengguan")[0]
    assert act(r, oid, "message", "chengguan", message="需要水务确认管线")[0]
    assert act(r, oid, "start", "shuiwu")[0]
    ok, msg = act(
        r,
        oid,
        "feedback",
        "chengguan",
        result="已更换井盖",
        photos=[png_data_url()],
        evidence_ref="",
    )
    assert ok, msg
    assert act(r, oid, "feedback", "shuiwu", result="管线无渗漏", evidence_ref="photo:SW-01")[0]
    o = order(r, oid)
    assert o.status == OrderStatus.FEEDBACK
    lead = o.parts[0]
    assert len(lead.evidence) == 1 and lead.evidence[0].startswith("photo:ev-")
    stored = logic.evidence_file(lead.evidence[0].removeprefix("photo:"))
    assert stored is not None and stored.parent == Path(gridcc_env["VAR_DIR"]) / "evidence"
    assert stored.read_bytes().startswith(b"\x89PNG")
    assert o.thread[0]["dept"] == "城管" and o.thread[0]["by"] == cg.by

    # The handler may try to check; the loop refuses, and the page says why in Chinese.
    ok, msg = act(r, oid, "check", "chengguan", verdict="pass", satisfaction="5")
    assert not ok
    assert msg == "操作未执行：城管局工作人员 是本工单的处置人，不能核查自己的工作"
    assert order(r, oid).status == OrderStatus.FEEDBACK

    assert "check" in logic.available_actions(order(r, oid), grid)
    ok, msg = act(r, oid, "check", "grid", verdict="pass", satisfaction="5")
    assert ok, msg
    o = order(r, oid)
    assert o.status == OrderStatus.CLOSED and o.satisfaction == 5 and o.checked_by == grid.by
    assert logic.available_actions(o, grid) == []


def test_refusals_are_explained(r: redis.Redis) -> None:
    oid = new_order(r)
    # A department cannot act before the center assigns it, nor on another's part.
    ok, msg = act(r, oid, "start", "chengguan")
    assert not ok and "受理核实" in msg
    assert act(r, oid, "accept", "center")[0]
    ok, msg = act(r, oid, "accept", "center")
    assert not ok and msg.startswith("操作未执行：工单当前为“分流交办”")
    ok, msg = act(r, oid, "assign", "center", lead="", co=[])
    assert not ok and msg == "操作未执行：必填项未填写"
    assert act(r, oid, "assign", "center", lead="城管", co=[])[0]
    ok, msg = act(r, oid, "start", "shuiwu")
    assert not ok and msg == "操作未执行：水务 不是本工单的承办部门"
    ok, msg = act(r, oid, "message", "shuiwu", message="我们来看看")
    assert not ok and msg == "操作未执行：水务 不是本工单的会商方"
    assert act(r, oid, "start", "chengguan")[0]
    ok, msg = act(r, oid, "feedback", "chengguan", result="", evidence_ref="")
    assert not ok and msg == "操作未执行：必填项未填写"
    ok, msg = act(r, oid, "feedback", "chengguan", result="已处理", evidence_ref="见附件")
    assert not ok and "佐证编号须为" in msg
    # Closing needs the lead's photo evidence: feedback without it, then a passing check.
    assert act(r, oid, "feedback", "chengguan", result="已处理")[0]
    ok, msg = act(r, oid, "check", "grid", verdict="", satisfaction="5")
    assert not ok and msg == "操作未执行：" + t("orders.page.err.need_verdict", ZH)
    ok, msg = act(r, oid, "check", "grid", verdict="pass", satisfaction="5")
    assert not ok and msg == "操作未执行：主办部门没有照片佐证，不能办结"
    ok, msg = act(r, oid, "check", "grid", verdict="fail", satisfaction="2", check_note="")
    assert not ok and msg == "操作未执行：核查不通过时须填写核查意见"
    ok, msg = act(r, oid, "check", "grid", verdict="fail", satisfaction="2", check_note="无照片")
    assert ok, msg
    o = order(r, oid)
    assert o.status == OrderStatus.HANDLING and o.rework_count == 1


def test_upload_that_is_not_an_image_is_refused_and_nothing_kept(
    r: redis.Redis, gridcc_env: dict[str, str]
) -> None:
    oid = new_order(r)
    assert act(r, oid, "accept", "center")[0]
    assert act(r, oid, "assign", "center", lead="城管")[0]
    assert act(r, oid, "start", "chengguan")[0]
    fake = "data:image/png;base64," + base64.b64encode(b"<svg onload=alert(1)>").decode()
    ok, msg = act(r, oid, "feedback", "chengguan", result="已处理", photos=[fake])
    assert not ok and msg == "操作未执行：" + t("orders.page.err.not_image", ZH)
    ok, msg = act(r, oid, "feedback", "chengguan", result="已处理", photos=["data:x,@@@"])
    assert not ok and msg == "操作未执行：" + t("orders.page.err.bad_upload", ZH)
    # A good photo with a refused step (bad reference) leaves no orphan file either.
    ok, _ = act(
        r, oid, "feedback", "chengguan", result="已处理", photos=[png_data_url()], evidence_ref="x"
    )
    assert not ok
    folder = Path(gridcc_env["VAR_DIR"]) / "evidence"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert order(r, oid).parts[0].evidence == []
    assert logic.evidence_file("../secrets.png") is None
    assert logic.evidence_file("ev-" + "0" * 32 + ".png") is None


def test_return_and_arbitration(r: redis.Redis) -> None:
    oid = new_order(r)
    assert act(r, oid, "accept", "center")[0]
    assert act(r, oid, "assign", "center", lead="城管")[0]
    ok, msg = act(r, oid, "return", "chengguan", return_reason="")
    assert not ok and msg == "操作未执行：必填项未填写"
    assert act(r, oid, "return", "chengguan", return_reason="属供水管线，非城管职责")[0]
    o = order(r, oid)
    assert "arbitrate" in logic.available_actions(o, logic.IDENTITIES["center"])
    ok, msg = act(
        r, oid, "arbitrate", "chengguan", arb_part="城管", decision="insist", arb_reason="x"
    )
    assert not ok and msg == "操作未执行：" + t("orders.page.err.center_only", ZH)
    ok, msg = act(
        r,
        oid,
        "arbitrate",
        "center",
        arb_part="城管",
        decision="reassign",
        arb_to="水务",
        arb_reason="确属供水",
    )
    assert ok, msg
    o = order(r, oid)
    assert [(p.dept, p.status.value) for p in o.parts] == [
        ("城管", "withdrawn"),
        ("水务", "assigned"),
    ]
    assert logic.available_actions(o, logic.IDENTITIES["shuiwu"]) == ["start", "message", "return"]


def test_detail_shows_text_as_text_and_clocks(r: redis.Redis) -> None:
    text = '<img src=x onerror="alert(1)"> 路灯不亮'
    oid = new_order(r, "rpt-page-x", text)
    assert act(r, oid, "accept", "center")[0]
    assert act(r, oid, "assign", "center", lead="城管")[0]
    o = order(r, oid)
    assert o is not None
    view = page.detail_view(o, ZH)
    report = next(c for c in view if getattr(c, "id", None) == "orders-text")
    assert report.children == text  # a plain string child: React renders it as text
    flat = repr(view)
    assert "dangerouslySetInnerHTML" not in flat
    assert "剩余" in flat and "工作日" in flat and "+08:00" in flat
    assert "指挥中心值班员" in flat and "分流交办" in flat and "王女士" in flat
    assert "金水区" in flat
    assert "Command center" not in flat  # zh-CN screen
    assert "Center operator" in repr(page.detail_view(o, "en"))
    clock = logic.clock_text(
        {"left": -1.5, "unit": "work_hours", "paused": True, "signal": "red"}, ZH
    )
    assert clock == "已超 1.5 工作小时 · 已暂停 · 红色超期"


def test_list_filters(r: redis.Redis) -> None:
    a = new_order(r, "rpt-list-a")
    b = new_order(r, "rpt-list-b", "夜间施工噪音扰民")
    assert act(r, a, "accept", "center")[0]
    rows = logic.list_rows(r, CITY, ZH)
    assert [x["id"] for x in rows] == [b, a]
    assert rows[0]["channel"] == "热线" and "+08:00" in rows[0]["created"]
    assert [x["id"] for x in logic.list_rows(r, CITY, ZH, status=["assigned"])] == [a]
    assert logic.list_rows(r, CITY, ZH, channel="patrol") == []
    assert len(logic.list_rows(r, CITY, ZH, category="城乡建设")) == 2
    assert logic.list_rows(r, CITY, ZH, overdue_only=True) == []
    later = order(r, a).deadline_ms + 1
    assert {x["id"] for x in logic.list_rows(r, CITY, ZH, overdue_only=True, now=later)} >= {a}
    # Another district's scope does not see these Jinshui orders.
    assert logic.list_rows(r, Scope(user="x", jurisdiction="410122"), ZH) == []


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_layout_has_every_label(lang: str) -> None:
    layout = page.layout(lang)
    assert "orders-who" in repr(layout)
