"""CSV import through a column-mapping profile: the real NYC 311 sample as an external
dataset (its per-agency on-time rates checked independently with plain pandas), a dry run
that names every bad row, and a hotline export put through the intake path."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
import redis

from alarms.worker import ensure_groups, step
from core.keys import keys
from grids.codes import Level
from grids.coords import wgs84_to_gcj02
from grids.dataset import load_city
from workorders.assessment import assess
from workorders.importer import ProfileError, import_file, load_profile, read_dataset
from workorders.service import list_orders

NYC = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "source"
    / "requests"
    / ("nyc311_sample_2011_tuplex.csv")
)


def test_nyc_sample_dry_run_is_clean_and_stores_nothing(gridcc_env: dict[str, str]) -> None:
    res = import_file(NYC, "nyc311_2011")
    assert (res.rows, res.good, res.bad) == (999, 999, [])
    # Rows without Latitude/Longitude are kept, unlocated, and counted.
    raw = pd.read_csv(NYC, dtype=str)
    assert res.unlocated == int(raw["Latitude"].isna().sum()) == 294
    assert res.stored == 0 and read_dataset("nyc311_2011").empty


def test_nyc_on_time_rates_match_plain_pandas(gridcc_env: dict[str, str]) -> None:
    res = import_file(NYC, "nyc311_2011", dry_run=False)
    assert res.stored == 999
    data = read_dataset("nyc311_2011")
    assert len(data) == 999 and int(data["located"].sum()) == 705
    assert set(data["township"]) == {""}  # not placed on the city's grids
    table = assess(data, "dept")

    # Independently: straight from the CSV, naive local times, no product code.
    d = pd.read_csv(NYC, dtype=str)
    fmt = "%m/%d/%Y %I:%M:%S %p"
    due = pd.to_datetime(d["Due Date"], format=fmt)
    closed = pd.to_datetime(d["Closed Date"], format=fmt)
    both = due.notna() & closed.notna()
    expect = (
        pd.DataFrame({"agency": d["Agency"], "on_time": (closed <= due) & both, "both": both})
        .groupby("agency")
        .sum()
    )
    assert sorted(table.index) == sorted(expect.index)
    for agency, row in expect.iterrows():
        got = table.loc[agency]
        assert int(got["received"]) == int((d["Agency"] == agency).sum())
        assert int(got["on_time"]) == int(row["on_time"])
        assert int(got["closed_dl"]) == int(row["both"])
        if row["both"]:
            assert got["on_time_rate"] == pytest.approx(row["on_time"] / row["both"], abs=1e-4)
    assert table.loc["NYPD", "on_time_rate"] > table.loc["DCA", "on_time_rate"]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_every_bad_row_is_reported_and_nothing_is_stored(
    gridcc_env: dict[str, str], tmp_path: Path
) -> None:
    rows = pd.read_csv(NYC, dtype=str, keep_default_na=False).head(12).to_dict("records")
    rows[1]["Created Date"] = "2011-03-01 14:00"  # wrong format
    rows[3]["Agency"] = ""  # required
    rows[4]["Latitude"] = ""  # half a point
    rows[4]["Longitude"] = "-73.99"
    rows[5]["Closed Date"] = "01/01/2011 10:00:00 AM"  # before created
    rows[6]["Unique Key"] = rows[0]["Unique Key"]  # repeated id
    rows[7]["Latitude"], rows[7]["Longitude"] = "34.75", "113.66"  # not New York
    rows[8]["Latitude"], rows[8]["Longitude"] = "40.7", "west"
    f = _write(tmp_path / "bad.csv", rows)
    res = import_file(f, "nyc311_2011")
    got = [(b.row, b.column, b.reason) for b in res.bad]
    assert got == [
        (3, "Created Date", "not a date in %m/%d/%Y %I:%M:%S %p"),
        (5, "Agency", "dept is required"),
        (6, "Latitude", "latitude and longitude must come together"),
        (7, "Closed Date", "closed is before created"),
        (8, "Unique Key", "id repeats an earlier row"),
        (9, "Latitude", "point outside the profile's bounds [-74.3, 40.45, -73.65, 40.95]"),
        (10, "Longitude", "longitude is not a number"),
    ]
    assert res.good == 5
    stored = import_file(f, "nyc311_2011", dry_run=False)
    assert stored.stored == 0 and "nothing stored: 7 bad rows" in stored.note
    assert read_dataset("nyc311_2011").empty
    good_only = import_file(f, "nyc311_2011", dry_run=False, store_good=True)
    assert good_only.stored == 5 and len(read_dataset("nyc311_2011")) == 5


def test_missing_columns_and_bad_profiles_are_clear_errors(tmp_path: Path) -> None:
    f = _write(tmp_path / "x.csv", [{"Unique Key": "1", "Created Date": "x"}])
    with pytest.raises(ProfileError, match="'Due Date'.*are not in the file"):
        import_file(f, "nyc311_2011")
    p = tmp_path / "p.yaml"
    p.write_text(
        "name: x\ntarget: reports\nid_column: id\ndate_formats: ['%Y']\ncolumns: {a: nonsense}\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError, match="unknown fields nonsense"):
        load_profile(p)


def test_hotline_export_goes_through_the_intake_path(r: redis.Redis, tmp_path: Path) -> None:
    city = load_city()
    town = next(u for u in city.units_at(Level.TOWNSHIP) if u.code.startswith("410102"))
    lon, lat = wgs84_to_gcj02(*city.units_at(Level.GRID, within=town.code)[0].center)
    prof = tmp_path / "hotline.yaml"
    prof.write_text(
        "name: hotline12345\ntarget: reports\nchannel: hotline\nid_column: 工单编号\n"
        "date_formats: ['%Y/%m/%d %H:%M:%S']\n"
        "columns: {来电时间: occurred, 诉求内容: text, 分类: category, 来电号码: reporter_phone,"
        " 话单号: call_id}\n"
        "required: [text]\ncoordinates: {lat: 纬度, lon: 经度, crs: gcj02, missing: bad}\n"
        "category_map: {城建: 城乡建设, 环保: 环境保护}\n",
        encoding="utf-8",
    )
    rows = [
        {
            "工单编号": "H1",
            "来电时间": "2026/12/01 09:30:00",
            "诉求内容": "小区路灯不亮",
            "分类": "城建",
            "来电号码": "13800000000",
            "话单号": "C1",
            "纬度": str(lat),
            "经度": str(lon),
        },
        {
            "工单编号": "H2",
            "来电时间": "2026/12/01 10:00:00",
            "诉求内容": "工地夜间施工噪音",
            "分类": "环保",
            "来电号码": "13800000001",
            "话单号": "C2",
            "纬度": "",
            "经度": "",
        },
        {
            "工单编号": "H3",
            "来电时间": "2026/12/01 10:30:00",
            "诉求内容": "x",
            "分类": "环保",
            "来电号码": "13800000002",
            "话单号": "C3",
            "纬度": str(lat),
            "经度": str(lon),
        },
    ]
    f = _write(tmp_path / "hotline.csv", rows)
    res = import_file(f, load_profile(prof), dry_run=False, r=r)
    assert [(b.row, b.column) for b in res.bad] == [(3, "纬度"), (4, "诉求内容")]
    assert res.stored == 0 and r.exists(keys().reports) == 0
    res = import_file(f, load_profile(prof), dry_run=False, store_good=True, r=r)
    assert res.stored == 1
    ensure_groups(r)
    assert step(r, "w1", block_ms=100) == 1
    (o,) = list_orders(r)
    assert o.category == "城乡建设" and o.channel_fields == {"call_id": "C1"}
    assert o.place.township == town.code and o.source_ref == "IM-hotline12345-H1"
