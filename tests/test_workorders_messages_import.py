"""The shared Chinese messages import as hotline reports without points: held at city level,
待定位, routed by the category suggestion; the dry run names the bad rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import redis
from flask import Flask

from access.reads import list_orders as scoped_orders
from access.scope import Scope
from alarms.worker import ensure_groups, step
from core.keys import keys
from core.models import Channel, Report
from workorders.importer import ProfileError, import_file, load_profile
from workorders.intake_api import intake_bp
from workorders.service import TO_LOCATE, create_from_report, list_orders

MESSAGES = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "source"
    / "messages"
    / "labelled_messages.csv"
)


def test_dry_run_names_the_one_repeated_id(gridcc_env: dict[str, str]) -> None:
    raw = pd.read_csv(MESSAGES, dtype=str, keep_default_na=False)
    assert len(raw) == 495
    # Independently: the ids that appear more than once after their first row.
    repeated = raw.index[raw["留言编号"].duplicated(keep="first")]
    res = import_file(MESSAGES, "messages_labelled")
    assert res.rows == 495 and res.stored == 0
    assert [(b.row, b.column, b.reason, b.value) for b in res.bad] == [
        (int(i) + 2, "留言编号", "id repeats an earlier row", raw.at[i, "留言编号"])
        for i in repeated
    ]
    assert res.good == res.unlocated == 495 - len(repeated)
    stored = import_file(MESSAGES, "messages_labelled", dry_run=False)
    assert stored.stored == 0 and "nothing stored" in stored.note


def test_all_messages_become_unlocated_routed_orders(r: redis.Redis) -> None:
    raw = pd.read_csv(MESSAGES, dtype=str, keep_default_na=False)
    first = raw.drop_duplicates("留言编号", keep="first").set_index("留言编号")
    res = import_file(MESSAGES, "messages_labelled", dry_run=False, store_good=True, r=r)
    assert res.stored == len(first) == 494
    ensure_groups(r)
    while step(r, "w1", block_ms=50):
        pass
    assert r.xlen(keys().dead) == 0
    orders = list_orders(r, limit=1000)
    assert len(orders) == len(first)
    # Held at city level: only the city sees them; no point was made up.
    assert len(scoped_orders(r, Scope(user="city"), limit=1000)) == len(first)
    assert scoped_orders(r, Scope(user="d", jurisdiction="410102"), limit=1000) == []
    agree = 0
    for o in orders:
        ext = o.source_ref.removeprefix("IM-messages_labelled-") if o.source_ref else ""
        row = first.loc[ext]
        assert not o.located and TO_LOCATE in o.flags and o.place.code == ""
        assert not o.place.inside_city and (o.place.lon, o.place.lat) == (0.0, 0.0)
        assert o.channel == Channel.HOTLINE and o.category == row["一级分类"]
        assert o.title == row["留言主题"] and o.text == row["留言详情"]
        assert any(h["action"] == TO_LOCATE and "待定位" in h["note"] for h in o.history)
        assert o.suggested_category and len(o.suggestions) == 3 and o.suggested_owner
        assert r.zscore(keys().order_geo(o.category), o.id) is None  # never merged by place
        agree += o.suggested_category == row["一级分类"]
    share = agree / len(orders)
    print(f"suggestion agrees with 一级分类 on {agree}/{len(orders)} = {share:.1%}")
    # Seven classes: chance is about 1/7 (the largest class alone is 21 %).
    assert share > 0.5


def test_unlocated_only_through_an_import(r: redis.Redis, tmp_path: Path) -> None:
    app = Flask(__name__)
    app.register_blueprint(intake_bp)
    client = app.test_client()
    resp = client.post("/api/v1/reports", json={"text": "没有位置的投诉", "located": False})
    assert resp.status_code == 400
    assert [f["field"] for f in resp.get_json()["fields"]] == ["located"]
    assert r.xlen(keys().reports) == 0
    with pytest.raises(ValueError, match="carries no point"):
        Report.model_validate({"text": "有点", "located": False, "lon": 113.6, "lat": 34.7})
    # Directly (the import's worker path), an unlocated report is held, never refused.
    o = create_from_report(
        r, Report.model_validate({"text": "路灯不亮", "located": False}), report_id="U1"
    )
    assert not o.located and o.place.code == "" and o.suggested_owner
    p = tmp_path / "p.yaml"
    p.write_text(
        "name: x\ntarget: reports\nid_column: id\ndate_formats: ['%Y']\ncolumns: {t: text}\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError, match="located: false"):
        load_profile(p)
    p.write_text(
        "name: x\ntarget: reports\nid_column: id\ndate_formats: ['%Y']\ncolumns: {t: text}\n"
        "located: false\ncoordinates: {lat: a, lon: b}\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError, match="takes no coordinate columns"):
        load_profile(p)


def test_an_operator_locates_a_held_order(r: redis.Redis) -> None:
    from grids.codes import Level
    from grids.dataset import load_city
    from workorders.loop import LoopError
    from workorders.service import locate_order

    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410102"))
    lon, lat = city.units_at(Level.GRID, within=town.code)[0].center
    o = create_from_report(
        r, Report.model_validate({"text": "井盖缺失", "located": False}), report_id="U2"
    )
    with pytest.raises(ValueError, match="lon"):
        locate_order(r, o.id, float("nan"), lat, by="op")
    o = locate_order(r, o.id, lon, lat, by="op-王")
    assert o.located and TO_LOCATE not in o.flags and o.place.township == town.code
    h = o.history[-1]
    assert h["action"] == "located" and h["by"] == "op-王" and town.code in h["note"]
    assert [x.id for x in scoped_orders(r, Scope(user="t", jurisdiction=town.code))] == [o.id]
    with pytest.raises(LoopError, match="already has its place"):
        locate_order(r, o.id, lon, lat, by="op")
