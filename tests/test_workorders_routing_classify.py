"""Triage: the category suggestion measured on a held-out split, and the versioned
responsibility list that names the owner."""

from __future__ import annotations

import json

import pytest
import redis

from core.models import Place
from workorders import classify, routing


def test_stored_accuracy_is_what_the_held_out_split_gives() -> None:
    stored = json.loads(classify.METRICS_FILE.read_text(encoding="utf-8"))
    measured = classify.evaluate()
    assert stored == measured
    assert measured["test"] == 100 and measured["train"] == 395
    assert measured["top1"] >= 0.65 and measured["top3"] >= 0.9


def test_split_is_stratified_and_disjoint() -> None:
    df = classify.load_messages()
    labels = df["一级分类"].tolist()
    tr, te = classify.stratified_split(labels)
    assert not set(tr) & set(te) and len(tr) + len(te) == len(labels)
    for lab in set(labels):
        n = labels.count(lab)
        held = sum(1 for i in te if labels[i] == lab)
        assert held == max(1, round(n * 0.2))


def test_suggest_gives_top_three_with_scores() -> None:
    top = classify.suggest("小区楼下餐馆油烟很大，排放的废气污染严重，晚上还有噪音")
    assert len(top) == 3 and top[0][0] == "环境保护"
    assert top[0][1] >= top[1][1] >= top[2][1] and sum(s for _, s in top) <= 1.0001
    assert classify.suggest("孩子上学的学校收取补课费")[0][0] == "教育文体"
    with pytest.raises(ValueError, match="no text"):
        classify.suggest("  ")


def test_responsibility_versions_pick_the_owner_by_time_and_level(r: redis.Redis) -> None:
    v1 = routing.versions(r)
    assert [v.version for v in v1] == [1]
    assert routing.owner_for(r, "城乡建设/城市建设和市政管理/园林绿化环卫", "township") == (
        "街道城市管理办公室"
    )
    assert routing.owner_for(r, "城乡建设", "district") == "区城市管理局"
    assert routing.owner_for(r, "城乡建设/安全生产/安全隐患", "township") == "应急管理局"
    assert routing.owner_for(r, "民政", "city") == "民政局"
    assert routing.owner_for(r, "未分类", "city") == "市民服务热线中心"

    t = 1_900_000_000_000
    v2 = routing.add_version(
        r,
        [
            {"category": "城乡建设", "level": "township", "owner": "街道综合执法中队"},
            {"category": "*", "level": "*", "owner": "12345热线"},
        ],
        valid_from=t,
        by="admin-liu",
        note="综合执法改革",
    )
    assert v2.version == 2
    assert routing.owner_for(r, "城乡建设", "township", at_ms=t - 1) == "街道城市管理办公室"
    assert routing.owner_for(r, "城乡建设", "township", at_ms=t) == "街道综合执法中队"
    assert routing.owner_for(r, "民政", "township", at_ms=t) == "12345热线"
    hist = routing.history(r)
    assert [h["version"] for h in hist] == [1, 2] and hist[1]["by"] == "admin-liu"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([], "at least one rule"),
        ([{"category": "不存在", "level": "*", "owner": "x"}], "not a first-level category"),
        ([{"category": "民政", "level": "street", "owner": "x"}], "level 'street'"),
        ([{"category": "民政", "level": "*", "owner": ""}], "owner"),
        (
            [
                {"category": "民政", "level": "*", "owner": "a"},
                {"category": "民政", "level": "*", "owner": "b"},
            ],
            "given twice",
        ),
    ],
)
def test_bad_versions_are_refused(
    r: redis.Redis, rules: list[dict[str, str]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        routing.add_version(r, rules, valid_from="2027-01-01T00:00:00+08:00", by="admin")
    with pytest.raises(ValueError, match="offset"):
        routing.add_version(
            r, [{"category": "民政", "owner": "a"}], valid_from="2027-01-01", by="admin"
        )
    assert [v.version for v in routing.versions(r)] == [1]


def test_suggest_route_for_an_order(r: redis.Redis) -> None:
    place = Place(lon=113.6, lat=34.7, county="410102", township="410102001")
    sugg, owner = routing.suggest_route(r, "道路施工占道，路面坑洼，车辆通行困难", place)
    assert len(sugg) == 3 and owner == routing.owner_for(r, sugg[0]["category"], "township")
    out = routing.suggest(r, "医院看病排队太久", level="city")
    assert out["suggestions"][0][0] == "卫生计生" and out["owner"] == "卫生健康委员会"
