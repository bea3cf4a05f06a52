"""What the electronic grid map shows for one unit: map layer, breadcrumbs, side panel, table.

Everything is read through ``access.grids`` with the screen's scope; a failed read shows
"—", never a zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis
from dash import html

from access import grids as agrids
from access.scope import Scope
from dashboard import data
from grids.codes import Level
from grids.dataset import Unit
from i18n import t

NONE = "—"
# Choropleth of open orders: no orders, then four equal steps up to the level's maximum.
PALETTE = ("#0b3d5c", "#fde68a", "#fbbf24", "#f97316", "#dc2626")
CLASSES = len(PALETTE) - 1
TABLE_LIMIT = 200


@dataclass
class View:
    """Everything the page draws for one unit."""

    unit: Unit
    crumbs: list[Unit]
    layer: dict[str, Any]
    counts: agrids.LevelCounts | None
    markers: list[dict[str, Any]] | None
    elements: dict[str, Any] | None
    staff: list[dict[str, Any]] | None
    all_grids: bool
    breaks: list[int]

    @property
    def down(self) -> bool:
        return self.counts is None

    @property
    def bounds(self) -> list[list[float]]:
        minx, miny, maxx, maxy = self.unit.geometry.bounds
        return [[miny, minx], [maxy, maxx]]


def breaks_for(max_orders: int) -> list[int]:
    """Upper bounds of the classes above zero (ascending, distinct, the last is the max)."""
    if max_orders <= 0:
        return []
    out: list[int] = []
    for i in range(1, CLASSES + 1):
        b = math.ceil(max_orders * i / CLASSES)
        if not out or b > out[-1]:
            out.append(b)
    return out


def class_of(n: int | None, breaks: list[int]) -> int:
    """0 for no orders, else 1..CLASSES, the top class always the darkest."""
    if not n:
        return 0
    for i, b in enumerate(breaks, start=1):
        if n <= b:
            return min(i + CLASSES - len(breaks), CLASSES)
    return CLASSES


def _fig(v: Any) -> str:
    return NONE if v is None else str(v)


def hideout(lang: str) -> dict[str, Any]:
    """What the browser's style and tooltip functions need besides each feature."""
    return {
        "palette": list(PALETTE),
        "fields": list(agrids.COUNT_FIELDS),
        "labels": [t(f"grids.{k}", lang) for k in agrids.COUNT_FIELDS],
        "generated": t("grids.generated", lang),
        "none": NONE,
    }


def build(
    scope: Scope,
    code: str,
    lang: str,
    all_grids: bool = False,
    r: redis.Redis | None = None,
) -> View:
    """Read and shape everything for ``code`` (raises OutOfScope / UnitNotFound / CodeError)."""
    unit = agrids.unit_in_scope(scope, code)
    crumbs = agrids.breadcrumbs(scope, code)
    layer = agrids.boundaries(scope, code, all_grids)
    # Devices are read once and shared: with 10,000 of them the reads dominate the page.
    markers = data.guarded(lambda: agrids.device_markers(_r(r), scope, code))
    counts = elements = None
    staff: list[dict[str, Any]] | None = None
    if markers is not None:
        counts = data.guarded(
            lambda: agrids.child_counts(_r(r), scope, code, all_grids, markers=markers)
        )
    if counts is not None:
        elements = data.guarded(lambda: agrids.unit_elements(_r(r), scope, code, markers=markers))
        if unit.level is Level.GRID:
            staff = data.guarded(lambda: agrids.grid_staff(_r(r), scope, code))
    per = counts.children if counts else {}
    breaks = breaks_for(max((c["orders_open"] for c in per.values()), default=0))
    for f in layer["features"]:
        p = f["properties"]
        c = per.get(p["code"]) if counts else None
        # The map needs no parent; every byte here is sent for each of up to 2,223 units.
        p.pop("parent", None)
        p.update(c or dict.fromkeys(agrids.COUNT_FIELDS, None))
        p["c"] = class_of(p.get("orders_open"), breaks)
    return View(unit, crumbs, layer, counts, markers, elements, staff, all_grids, breaks)


def _r(r: redis.Redis | None) -> redis.Redis:
    from core.store import get_redis

    return r if r is not None else get_redis()


def aria(**attrs: str) -> dict[str, Any]:
    """``aria-*`` attributes for a Dash component (their names are not Python names)."""
    return {f"aria-{k}": v for k, v in attrs.items()}


def level_name(level: str, lang: str) -> str:
    return t(f"grids.level.{level}", lang)


def crumbs(view: View, lang: str) -> list[Any]:
    """Every unit above the current one is a button back to it; the current one is text."""
    out: list[Any] = []
    for i, u in enumerate(view.crumbs):
        if i:
            out.append(html.Span("›", className="gc-grids-sep", **aria(hidden="true")))
        if i == len(view.crumbs) - 1:
            out.append(
                html.Span(u.name, className="gc-grids-crumb current", **aria(current="page"))
            )
        else:
            out.append(
                html.Button(
                    u.name,
                    id={"type": "grids-crumb", "code": u.code},
                    className="gc-grids-crumb",
                    n_clicks=0,
                )
            )
    return out


def legend(view: View, lang: str) -> list[Any]:
    rows: list[Any] = [html.Div(t("grids.legend", lang), className="gc-grids-legend-title")]
    lo = 1
    rows.append(
        html.Div(
            [html.Span(className="gc-grids-swatch", style={"background": PALETTE[0]}), "0"],
            className="gc-legend-row",
        )
    )
    for b in view.breaks:
        colour = PALETTE[class_of(b, view.breaks)]
        rows.append(
            html.Div(
                [
                    html.Span(className="gc-grids-swatch", style={"background": colour}),
                    f"{lo}–{b}" if b > lo else str(b),
                ],
                className="gc-legend-row",
            )
        )
        lo = b + 1
    rows.append(html.Div(t("grids.generated_note", lang), className="gc-note"))
    return rows


def _kv(label: str, value: Any, cls: str = "") -> html.Div:
    return html.Div(
        [html.Span(label, className="gc-grids-k"), html.Span(_fig(value), className="gc-grids-v")],
        className=f"gc-grids-kv {cls}".strip(),
    )


def _tile(key: str, lang: str, rows: list[Any], generated: bool) -> html.Div:
    head: list[Any] = [html.Span(t(f"grids.el.{key}", lang), className="gc-grids-el-name")]
    if generated:
        head.append(html.Span(t("grids.generated", lang), className="gc-grids-gen"))
    return html.Div(
        [html.Div(head, className="gc-grids-el-head"), *rows],
        className="gc-grids-el",
        id=f"grids-el-{key}",
    )


def elements_panel(el: dict[str, Any] | None, lang: str) -> list[Any]:
    """The six elements (人、地、事、物、情、组织); generated figures are marked “生成”."""
    el = el or {}
    people = el.get("people") or {}
    places = el.get("places") or {}
    events = el.get("events") or {}
    things = el.get("things") or {}
    fac = things.get("facilities") or {}
    senti = el.get("sentiment") or {}
    orgs = el.get("organisations") or {}
    groups = people.get("key_groups")
    gen = set(el.get("generated") or [])
    facilities = (
        "/".join(str(fac.get(k, NONE)) for k in ("hydrants", "manholes", "street_lights"))
        if fac
        else None
    )
    topics = senti.get("hot_topics") or []
    hot = "、".join(f"{x['category']}({x['count']})" for x in topics[:3]) or (
        t("grids.none", lang) if senti.get("reports") is not None else None
    )
    tiles = [
        _tile(
            "people",
            lang,
            [
                _kv(t("grids.el.residents", lang), people.get("residents")),
                _kv(t("grids.el.households", lang), people.get("households")),
                _kv(t("grids.el.floating", lang), people.get("floating")),
                _kv(t("grids.el.key_groups", lang), sum(groups.values()) if groups else None),
            ],
            "people" in gen,
        ),
        _tile(
            "places",
            lang,
            [
                _kv(t("grids.el.buildings", lang), places.get("buildings")),
                _kv(t("grids.el.addresses", lang), places.get("addresses")),
                _kv(t("grids.el.shops", lang), places.get("shops")),
                _kv(t("grids.el.key_places", lang), places.get("key_places")),
            ],
            "places" in gen,
        ),
        _tile(
            "events", lang, [_kv(t("grids.el.open_orders", lang), events.get("open_orders"))], False
        ),
        _tile(
            "things",
            lang,
            [
                _kv(t("grids.el.devices", lang), things.get("devices")),
                _kv(t("grids.el.devices_offline", lang), things.get("devices_offline")),
                _kv(
                    t("grids.el.facilities", lang),
                    facilities,
                    "generated" if "things.facilities" in gen else "",
                ),
            ],
            False,
        ),
        _tile(
            "sentiment",
            lang,
            [
                _kv(t("grids.el.reports", lang), senti.get("reports")),
                _kv(t("grids.el.hot_topics", lang), hot),
            ],
            False,
        ),
        _tile(
            "organisations",
            lang,
            [
                _kv(t(f"grids.el.{k}", lang), orgs.get(k))
                for k in (
                    "enterprises",
                    "individual_businesses",
                    "social_organisations",
                    "party_organisations",
                )
            ],
            "organisations" in gen,
        ),
    ]
    return [html.H2(t("grids.elements", lang)), html.Div(tiles, className="gc-grids-elements")]


def unit_card(view: View, lang: str) -> list[Any]:
    u = view.unit
    total = view.counts.total if view.counts else None
    badge = (
        html.Span(t("grids.generated", lang), className="gc-grids-gen", id="grids-unit-generated")
        if u.generated
        else html.Span(t("grids.official", lang), className="gc-grids-official")
    )
    return [
        html.H2([html.Span(u.name, id="grids-unit-name"), " ", badge]),
        _kv(t("grids.code", lang), u.code),
        _kv(t("grids.level", lang), level_name(u.level.value, lang)),
        html.Div(
            [
                html.Div(
                    [
                        html.Div(t(f"grids.{k}", lang), className="gc-kpi-label"),
                        html.Div(
                            _fig(total[k] if total else None),
                            className="gc-grids-fig",
                            id=f"grids-total-{k}",
                        ),
                    ],
                    className="gc-grids-figbox",
                )
                for k in agrids.COUNT_FIELDS
            ],
            className="gc-grids-figs",
        ),
    ]


def staff_panel(view: View, lang: str) -> list[Any]:
    if view.unit.level is not Level.GRID:
        return []
    head = html.Tr(
        [html.Th(t(f"grids.staff.{k}", lang)) for k in ("role", "name", "phone", "duty")]
    )
    rows = [
        html.Tr(
            [
                html.Td(p.get("role_name") or ""),
                html.Td(p.get("name") or "", className="gc-grids-masked"),
                html.Td(p.get("phone") or "", className="gc-grids-masked"),
                html.Td(t("grids.staff.on" if p.get("on_duty") else "grids.staff.off", lang)),
            ]
        )
        for p in view.staff or []
    ]
    return [
        html.H2(t("grids.staff", lang)),
        html.Div(t("grids.staff.masked", lang), className="gc-note"),
        html.Table(
            [html.Thead(head), html.Tbody(rows)], className="gc-grids-table", id="grids-staff"
        ),
    ]


def children_table(view: View, lang: str) -> list[Any]:
    """The drawn units with their figures: what the map colours, as text (and on paper)."""
    feats = view.layer["features"]
    lv = feats[0]["properties"]["level"] if feats else view.unit.level.value
    head = html.Tr(
        [html.Th(t("grids.name", lang)), html.Th(t("grids.code", lang))]
        + [html.Th(t(f"grids.{k}", lang), className="num") for k in agrids.COUNT_FIELDS]
    )
    shown = feats
    if len(feats) > TABLE_LIMIT:
        # A table of every grid in the city helps nobody: the busiest ones are what to act on.
        shown = sorted(
            feats,
            key=lambda f: (-(f["properties"].get("orders_open") or 0), f["properties"]["code"]),
        )[:TABLE_LIMIT]
    rows = []
    for f in shown:
        p = f["properties"]
        name = p["name"]
        if p.get("generated") and not str(name).endswith("（生成）"):
            name = f"{name}（{t('grids.generated', lang)}）"
        rows.append(
            html.Tr(
                [html.Td(name), html.Td(p["code"])]
                + [html.Td(_fig(p.get(k)), className="num") for k in agrids.COUNT_FIELDS]
            )
        )
    return [
        html.H2(
            t("grids.shown", lang).format(level=level_name(lv, lang), n=len(feats)),
            id="grids-table-title",
        ),
        html.Div(
            t("grids.table_top", lang).format(n=len(shown), total=len(feats)),
            className="gc-note",
            id="grids-table-note",
        )
        if len(shown) < len(feats)
        else None,
        html.Table(
            [html.Thead(head), html.Tbody(rows)], className="gc-grids-table", id="grids-table"
        ),
    ]
