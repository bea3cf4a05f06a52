"""Assessment per department, township and district over live and archived orders; the
archive moves old closed orders from Redis to monthly Parquet files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import redis

from core.config import get_settings
from core.keys import keys
from core.models import Channel, OrderPart, OrderStatus, PartStatus, Place, Report, WorkOrder
from grids.codes import Level
from grids.dataset import load_city
from workorders import loop
from workorders.archive import archive_closed, archived_order, month_of, read_archive
from workorders.assessment import UNASSIGNED, assessment, export, live_frame
from workorders.service import _save, create_from_report

H = 3_600_000
T0 = 1_764_000_000_000  # 2025-11-24, Asia/Shanghai


def _st(ts: int, to: str) -> dict[str, object]:
    return {"ts_ms": ts, "by": "op", "action": "status", "to": to}


def _order(
    oid: str,
    dept: str | None,
    town: str,
    *,
    deadline_h: float,
    steps: list[tuple[float, str]],
    closed_h: float | None = None,
    satisfaction: int | None = None,
    rework: int = 0,
    flags: tuple[str, ...] = (),
) -> WorkOrder:
    status = OrderStatus(steps[-1][1]) if steps else OrderStatus.ACCEPTING
    parts = (
        [
            OrderPart(
                dept=dept,
                assigned_ms=T0,
                deadline_ms=T0 + int(deadline_h * H),
                evidence=["photo:done"] if closed_h is not None else [],
                status=PartStatus.DONE if closed_h is not None else PartStatus.ASSIGNED,
            )
        ]
        if dept
        else []
    )
    return WorkOrder(
        id=oid,
        channel=Channel.HOTLINE,
        category="城乡建设",
        title=oid,
        created_ms=T0,
        updated_ms=T0,
        deadline_ms=T0 + int(deadline_h * H),
        place=Place(lon=113.6, lat=34.7, county=town[:6], township=town),
        status=status,
        history=[_st(T0 + int(h * H), to) for h, to in steps],
        parts=parts,
        closed_ms=T0 + int(closed_h * H) if closed_h is not None else None,
        satisfaction=satisfaction,
        rework_count=rework,
        flags=list(flags),
    )


def _seed(r: redis.Redis) -> None:
    loopd = [(1, "assigned"), (2, "handling"), (5, "feedback"), (5.5, "checking"), (6, "closed")]
    orders = [
        _order(
            "GD-1", "城管局", "410102001", deadline_h=10, steps=loopd, closed_h=6, satisfaction=5
        ),
        _order(
            "GD-2",
            "城管局",
            "410102002",
            deadline_h=2,
            steps=loopd,
            closed_h=6,
            satisfaction=2,
            rework=1,
            flags=("check_failed",),
        ),
        _order("GD-3", "水务局", "410103001", deadline_h=1, steps=[(3, "assigned")]),
        _order("GD-4", None, "410103001", deadline_h=500, steps=[]),
    ]
    pipe = r.pipeline(transaction=True)
    for o in orders:
        _save(pipe, o)
    pipe.execute()


def test_figures_per_department(r: redis.Redis) -> None:
    _seed(r)
    t = assessment(r, "dept", as_of_ms=T0 + 100 * H)
    a = t.loc["城管局"]
    assert (a["received"], a["closed"], a["on_time"], a["overdue"]) == (2, 2, 1, 1)
    assert a["on_time_rate"] == 0.5 and a["rework"] == 1 and a["rework_rate"] == 0.5
    assert a["satisfaction"] == 3.5 and a["dissatisfied"] == 1 and a["false_closure"] == 1
    assert (a["accept_avg_h"], a["handling_avg_h"], a["check_avg_h"], a["total_avg_h"]) == (
        1.0,
        4.0,
        1.0,
        6.0,
    )
    assert a["total_p90_h"] == 6.0
    b = t.loc["水务局"]
    assert (b["received"], b["closed"], b["overdue"], b["open_overdue"]) == (1, 0, 1, 1)
    assert pd.isna(b["on_time_rate"]) and b["accept_avg_h"] == 3.0
    assert t.loc[UNASSIGNED, "overdue"] == 0  # its deadline is still ahead


def test_figures_per_township_and_district_and_period(r: redis.Redis) -> None:
    _seed(r)
    by_town = assessment(r, "township", as_of_ms=T0 + 100 * H)
    assert by_town["received"].to_dict() == {"410102001": 1, "410102002": 1, "410103001": 2}
    by_dist = assessment(r, "district", as_of_ms=T0 + 100 * H)
    assert by_dist.loc["410102", "on_time"] == 1 and by_dist.loc["410103", "overdue"] == 1
    assert assessment(r, "dept", start_ms=T0 + 1).empty
    assert assessment(r, "dept", start_ms=T0, end_ms=T0 + 1)["received"].sum() == 4
    with pytest.raises(ValueError, match="assessment by 'street'"):
        assessment(r, "street")


def test_archive_moves_old_closed_orders_and_statistics_read_both(r: redis.Redis) -> None:
    _seed(r)
    before = assessment(r, "dept", as_of_ms=T0 + 100 * H)
    assert archive_closed(r, older_than_days=30, now=T0 + 10 * 86_400_000) == 0  # too recent
    moved = archive_closed(r, older_than_days=30, now=T0 + 40 * 86_400_000)
    assert moved == 2
    k = keys()
    assert r.get(k.order("GD-1")) is None and r.zscore(k.orders_all, "GD-2") is None
    assert set(live_frame(r)["id"]) == {"GD-3", "GD-4"}
    base = Path(get_settings().var_dir) / "archive"
    files = list(base.glob(f"month={month_of(T0)}/part-*.parquet"))
    assert len(files) == 1
    assert sorted(read_archive()["id"]) == ["GD-1", "GD-2"]
    after = assessment(r, "dept", as_of_ms=T0 + 100 * H)
    pd.testing.assert_frame_equal(before, after)
    whole = archived_order("GD-2")
    assert whole is not None and whole.flags == ["check_failed"] and whole.satisfaction == 2
    # Months outside the period are not read.
    assert read_archive(T0 + 60 * 86_400_000).empty


def test_an_order_through_the_real_loop_counts(r: redis.Redis) -> None:
    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410104"))
    lon, lat = city.units_at(Level.GRID, within=town.code)[0].center
    o = create_from_report(
        r, Report(text="路灯不亮", lon=lon, lat=lat, category="城乡建设"), report_id="L1"
    )
    loop.accept(r, o.id, by="op")
    loop.assign(r, o.id, by="op", lead="城管局")
    loop.start_part(r, o.id, "城管局", by="li", by_dept="城管局")
    loop.submit_feedback(
        r, o.id, "城管局", by="li", by_dept="城管局", result="修复", evidence=["photo:1"]
    )
    loop.check(r, o.id, passed=True, by="grid-chen", satisfaction=4)
    row = assessment(r, "township").loc[town.code]
    assert (row["received"], row["closed"], row["on_time"], row["satisfaction"]) == (1, 1, 1, 4)


def test_export_is_an_excel_sheet(r: redis.Redis, tmp_path: Path) -> None:
    _seed(r)
    table = assessment(r, "dept", as_of_ms=T0 + 100 * H)
    out = export(table, tmp_path / "考核")
    assert out.suffix == ".xlsx"
    back = pd.read_excel(out, index_col=0)
    assert list(back.index) == list(table.index) and back.loc["城管局", "received"] == 2


def test_filtered_order_list_by_scope_and_filters(r: redis.Redis) -> None:
    from access.scope import Scope
    from workorders.orderlist import filtered_orders, rebuild_area_indexes

    _seed(r)
    town = Scope(user="t", jurisdiction="410103001")
    ids = [o.id for o in filtered_orders(r, town, now=T0 + 100 * H)]
    assert sorted(ids) == ["GD-3", "GD-4"]
    late = filtered_orders(r, town, overdue_only=True, now=T0 + 100 * H)
    assert [o.id for o in late] == ["GD-3"]
    assert [o.id for o in filtered_orders(r, town, status=["accepting"])] == ["GD-4"]
    # Closed orders are not listed; another district sees nothing of this one.
    assert filtered_orders(r, Scope(user="x", jurisdiction="410102")) == []
    assert filtered_orders(r, Scope(user="c"), category="环境保护") == []
    assert len(filtered_orders(r, Scope(user="c"), limit=1, offset=1)) == 1
    r.delete(keys().orders_open_in("410103001"))
    assert filtered_orders(r, town) == []
    assert rebuild_area_indexes(r) == 2 and len(filtered_orders(r, town)) == 2
    with pytest.raises(ValueError, match="limit"):
        filtered_orders(r, town, limit=0)
