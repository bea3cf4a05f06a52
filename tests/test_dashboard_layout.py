"""Labels and layout: every label the screens use exists in zh-CN and English; the page
is built from data read through access; people's text stays text; nothing is external."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.models import AlarmState, Channel, Mode, OrderStatus, Severity
from i18n import LANGUAGES, LabelError, labels, load_labels, normalize_lang, t

ROOT = Path(__file__).resolve().parent.parent
UI_SOURCES = sorted((ROOT / "dashboard").glob("*.py"))


def _literal_keys() -> set[str]:
    keys: set[str] = set()
    for path in UI_SOURCES:
        keys |= set(
            re.findall(
                r"""\bt\(\s*["']([a-z_]+\.[a-z_0-9]+)["']""", path.read_text(encoding="utf-8")
            )
        )
    return keys


def test_every_literal_label_key_exists_in_both_languages() -> None:
    used = _literal_keys()
    assert len(used) > 40  # the scan really finds the screens' labels
    cat = labels()
    missing = sorted(k for k in used if k not in cat)
    assert missing == []
    for key in used:
        for lang in LANGUAGES:
            assert t(key, lang).strip()
    # zh-CN first: the Chinese text of a label is Chinese, not a copy of the English one.
    han = re.compile(r"[\u4e00-\u9fff]")
    not_chinese = [k for k in used if k != "app.lang_toggle" and not han.search(t(k, "zh-CN"))]
    assert not_chinese == []


@pytest.mark.parametrize(
    ("prefix", "values"),
    [
        ("severity", [s.value for s in Severity]),
        ("mode", [m.value for m in Mode]),
        ("order_status", [s.value for s in OrderStatus]),
        ("alarm_state", [s.value for s in AlarmState]),
        ("channel", [c.value for c in Channel]),
    ],
)
def test_labels_built_from_enum_values_exist(prefix: str, values: list[str]) -> None:
    for v in values:
        for lang in LANGUAGES:
            assert t(f"{prefix}.{v}", lang)


def test_mode_labels_match_the_modes_plan() -> None:
    from modes.config import modes_config

    for mode, cfg in modes_config().modes.items():
        assert t(f"mode.{mode.value}", "zh-CN") == cfg.label.zh
        assert t(f"mode.{mode.value}", "en") == cfg.label.en


def test_unknown_key_and_language() -> None:
    with pytest.raises(LabelError, match="no label 'nope.nope'"):
        t("nope.nope")
    assert normalize_lang("en-US") == "en"
    assert normalize_lang("zh") == "zh-CN"
    assert normalize_lang("fr") == "zh-CN"
    assert normalize_lang(None) == "zh-CN"


def test_catalogue_missing_a_language_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "labels.yaml"
    bad.write_text("a.b: {zh-CN: 甲}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="label 'a.b' has no en text"):
        load_labels(bad)
    bad.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mapping"):
        load_labels(bad)


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, list | tuple):
        for n in node:
            yield from _walk(n)
        return
    if node is None or isinstance(node, str | int | float):
        return
    yield node
    yield from _walk(getattr(node, "children", None))


def _by_id(tree: Any, cid: str) -> Any:
    for n in _walk(tree):
        if getattr(n, "id", None) == cid:
            return n
    raise AssertionError(f"no component {cid}")


def _text(node: Any) -> str:
    if node is None:
        return ""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list | tuple):
        return "".join(_text(n) for n in node)
    return _text(getattr(node, "children", None))


@pytest.fixture
def seeded(r: redis.Redis) -> redis.Redis:
    """A red alarm and a citizen's report, written through the real services."""
    from core.models import Report
    from devices.registry import Device, register_device
    from workorders.service import create_from_report

    register_device(
        r,
        Device(
            id="gas-1", name="燃气井1", type="gas", profile="gas_tasmota", lon=113.686, lat=34.776
        ),
    )
    from alarms.service import process_reading
    from core.models import Reading
    from core.timeutil import now_ms

    ts = now_ms()
    process_reading(
        r,
        Reading(
            device_id="gas-1",
            ts_ms=ts,
            received_ms=ts,
            metrics={"ch4_lel": 60.0},
            msg_id="m1",
            topic="x",
        ),
    )
    create_from_report(
        r,
        Report(
            text="井盖缺失<script>alert(1)</script>",
            title="<b>井盖</b>缺失",
            lon=113.686,
            lat=34.776,
        ),
        report_id="rep-1",
    )
    return r


def test_page_first_paint_holds_data_read_through_access(seeded: redis.Redis) -> None:
    from dashboard.layout import page

    tree = page("zh-CN")
    assert _text(_by_id(tree, "title")) == t("app.title", "zh-CN")
    assert _text(_by_id(tree, "mode-badge")) == t("mode.daily", "zh-CN")
    assert _text(_by_id(tree, "kpi-alarm-red")) == "1"
    alarms = _text(_by_id(tree, "alarm-list"))
    assert t("severity.red", "zh-CN") in alarms and "+08:00" in alarms
    orders = _by_id(tree, "order-list")
    # The report's title is a plain string child: React renders it as text.
    assert "<b>井盖</b>缺失" in [n for n in _walk_strings(orders)]
    devices = _by_id(tree, "layer-devices").data["features"]
    assert [f["properties"]["severity"] for f in devices] == ["red"]
    for n in _walk(tree):
        assert not getattr(n, "dangerously_allow_html", False)

    en = page("en")
    assert _text(_by_id(en, "title")) == t("app.title", "en")
    assert _text(_by_id(en, "mode-badge")) == "Daily"


def _walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list | tuple):
        for n in node:
            yield from _walk_strings(n)
    elif node is not None and not isinstance(node, int | float):
        yield from _walk_strings(getattr(node, "children", None))


def test_map_layers_counties_townships_and_generated_marking(gridcc_env: dict[str, str]) -> None:
    from dashboard import mapdata

    counties = mapdata.boundaries("county", "zh-CN")["features"]
    towns = mapdata.boundaries("township", "zh-CN")["features"]
    assert len(counties) == 15 and len(towns) == 208
    gen = [f for f in towns if f["properties"]["generated"]]
    assert gen and all("（生成）" in f["properties"]["tooltip"] for f in gen)
    assert all(" · " in f["properties"]["tooltip"] for f in towns)  # township · district
    assert (
        "（generated）"
        in mapdata.boundaries("township", "en")["features"][0]["properties"]["tooltip"]
    )


def test_markers_skip_bad_points_and_escape_names() -> None:
    from dashboard.mapdata import markers_geojson

    fc = markers_geojson(
        [
            {"id": "a", "name": "<i>x</i>", "lon": 113.6, "lat": 34.7, "severity": "orange"},
            {"id": "b", "lon": "nan?", "lat": 34.7},
            {"id": "c", "lon": 500, "lat": 34.7},
            {"id": "d", "lat": 34.7},
        ]
    )
    assert [f["properties"]["id"] for f in fc["features"]] == ["a"]
    assert fc["features"][0]["properties"]["tooltip"] == "&lt;i&gt;x&lt;/i&gt;"


def test_app_routes_and_no_external_assets(gridcc_env: dict[str, str]) -> None:
    from dashboard.server import create_app

    app = create_app()
    rules = {rule.rule for rule in app.server.url_map.iter_rules()}
    for route in ("/api/push", "/healthz", "/api/v1/reports", "/media/cameras"):
        assert route in rules
    client = app.server.test_client()
    assert client.get("/healthz").get_json() == {"ok": True}
    html = client.get("/").get_data(as_text=True)
    assert t("app.title", "zh-CN") in html
    # Every script and stylesheet is served by this process.
    srcs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert srcs and all(s.startswith("/") for s in srcs), srcs
    assert not re.search(r"https?://", html.split("<footer>")[1].split("_dash-config")[0])
    layout = client.get(
        "/_dash-layout", headers={"Referer": "http://127.0.0.1/?lang=en"}
    ).get_json()
    assert "Zhengzhou Grid Governance Command Center" in str(layout)


def test_alarm_list_puts_worst_first_and_orders_show_overdue() -> None:
    from dashboard.views import alarm_list, order_list

    alarms = [
        {
            "id": "b",
            "severity": "blue",
            "title": "蓝",
            "raised_ms": 2_000_000_000_000,
            "state": "raised",
        },
        {
            "id": "r",
            "severity": "red",
            "title": "红",
            "raised_ms": 1_900_000_000_000,
            "state": "raised",
        },
        {
            "id": "o",
            "severity": "orange",
            "title": "橙",
            "raised_ms": 1_950_000_000_000,
            "state": "acknowledged",
        },
    ]
    rows = alarm_list(alarms, "zh-CN").children
    assert [row.id["id"] for row in rows] == ["r", "o", "b"]
    # 2e12 ms is 2033-05-18 03:33:20 UTC, shown in Asia/Shanghai
    assert "2033-05-18 11:33:20+08:00" in _text(rows[2])
    assert t("alarm_state.acknowledged", "zh-CN") in _text(rows[1])

    now = 1_800_000_000_000
    orders = [
        {
            "id": "GD1",
            "status": "handling",
            "title": "超期的",
            "created_ms": now - 10,
            "deadline_ms": now - 1,
            "channel": "app",
        },
        {
            "id": "GD2",
            "status": "assigned",
            "title": "未超期",
            "created_ms": now - 10,
            "deadline_ms": now + 1,
            "channel": "patrol",
        },
    ]
    o_rows = order_list(orders, "zh-CN", now=now).children
    assert t("orders.overdue", "zh-CN") in _text(o_rows[0])
    assert t("order_status.assigned", "zh-CN") in _text(o_rows[1])
    assert t("channel.patrol", "zh-CN") in _text(o_rows[1])


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_redis_down_shows_outage_not_all_clear(gridcc_env: dict[str, str]) -> None:
    from dashboard import callbacks
    from dashboard.layout import OUTAGE_HIDDEN, OUTAGE_SHOWN, page

    # A real refused connection: nothing listens on this port.
    # No retries, so the check takes milliseconds; the refusal is the same as a dead server's.
    dead = redis.Redis(port=_closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    for lang in LANGUAGES:
        tree = page(lang, r=dead)
        banner = _by_id(tree, "outage-banner")
        assert banner.style == OUTAGE_SHOWN
        assert _text(banner) == t("data.down_banner", lang)
        assert _by_id(tree, "data-down").data is True
        assert "down" in _by_id(tree, "push-status").className.split()
        figures = [_text(_by_id(tree, f"kpi-alarm-{s.value}")) for s in Severity]
        figures += [_text(_by_id(tree, k)) for k in ("kpi-orders", "kpi-overdue", "kpi-devices")]
        assert figures == ["—"] * 7
        for cid in ("alarm-list", "order-list"):
            shown = _text(_by_id(tree, cid))
            assert shown == t("data.down", lang)
        assert t("alarms.empty", lang) not in _text(tree)
        assert _text(_by_id(tree, "mode-badge")) == "—"
        assert t("mode.unknown", lang) not in _text(tree)

    # The callbacks' re-reads show the same outage state, and the health check says so.
    assert callbacks.health_view(dead) == (OUTAGE_SHOWN, True)
    assert all(_text(c.children[1]) == "—" for c in callbacks.kpis_view("zh-CN", dead))
    assert _text(callbacks.alarms_view("zh-CN", dead)) == t("data.down", "zh-CN")
    assert _text(callbacks.orders_view("zh-CN", dead)) == t("data.down", "zh-CN")
    assert callbacks.mode_view("zh-CN", dead)[0] == "—"

    # Redis reachable again: the same calls show real figures and the banner goes.
    live = redis.Redis.from_url(gridcc_env["REDIS_URL"])
    assert callbacks.health_view(live) == (OUTAGE_HIDDEN, False)
    assert _text(callbacks.kpis_view("zh-CN", live)[0].children[1]) == "0"
    assert _text(callbacks.alarms_view("zh-CN", live)) == t("alarms.empty", "zh-CN")
    ok = page("zh-CN", r=live)
    assert _by_id(ok, "outage-banner").style == OUTAGE_HIDDEN
    assert _by_id(ok, "data-down").data is False


def test_kpi_labels_space_severity_and_label_in_each_language() -> None:
    from dashboard.views import kpis

    labels_en = [_text(c.children[0]) for c in kpis({}, "en")][:4]
    assert labels_en == [
        "Red open alarms",
        "Orange open alarms",
        "Yellow open alarms",
        "Blue open alarms",
    ]
    labels_zh = [_text(c.children[0]) for c in kpis({}, "zh-CN")][:4]
    assert labels_zh == ["红色未处置告警", "橙色未处置告警", "黄色未处置告警", "蓝色未处置告警"]


def test_mode_reason_input_is_limited_to_200() -> None:
    from dashboard.layout import mode_panel

    assert _by_id(mode_panel("zh-CN"), "mode-reason").maxLength == 200
