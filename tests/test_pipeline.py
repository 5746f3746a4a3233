"""The pipeline's glue: arguments of each step from the previous step's result."""

from __future__ import annotations

from candela.pipeline import change_arguments, preprocess_arguments, safe_key, search_arguments


def test_search_arguments_prefer_the_aoi() -> None:
    params = {
        "collection": "sentinel-2-l2a",
        "bbox": [0, 0, 1, 1],
        "aoi": {"type": "Point", "coordinates": [0.5, 0.5]},
        "start": "2017-04-19",
        "end": "2017-04-29",
        "max_cloud": 30,
        "tile": None,
    }
    args = search_arguments(params)
    assert "bbox" not in args and '"Point"' in args["aoi"]
    assert "tile" not in args
    del params["aoi"]
    assert search_arguments(params)["bbox"] == [0, 0, 1, 1]


def test_preprocess_jobs_sorted_by_date_with_stable_keys() -> None:
    found = {
        "products": [
            {"id": "b:2", "href": "file:///b", "datetime": "2017-10-26T11:01:31Z"},
            {"id": "a 1", "href": "file:///a", "datetime": "2016-05-04T10:50:00Z"},
        ]
    }
    jobs = preprocess_arguments(found, "file:///out/run")
    assert [j["product"] for j in jobs] == ["file:///a", "file:///b"]
    assert jobs[0]["output"] == "file:///out/run/stacks/a_1.tif"


def test_consecutive_pairs() -> None:
    stacks = [
        {"output": f"s{i}.tif", "product_id": f"p{i}", "datetime": f"2017-0{i}-01"}
        for i in (3, 1, 2)
    ]
    jobs = change_arguments(stacks, "file:///o", "cva", "auto")
    assert [(j["before"], j["after"]) for j in jobs] == [("s1.tif", "s2.tif"), ("s2.tif", "s3.tif")]
    assert "threshold" not in jobs[0]
    assert change_arguments(stacks[:1], "file:///o", "cva", 0.4) == []
    assert change_arguments(stacks[:2], "file:///o", "irmad", 0.4)[0]["threshold"] == "0.4"


def test_safe_key() -> None:
    assert safe_key("manual__2026-11-25T09:00:00+00:00") == "manual__2026-11-25T09_00_00_00_00"
