"""The pipeline's glue: arguments of each step from the previous step's result."""

from __future__ import annotations

from candela.pipeline import (
    aoi_geometry,
    change_arguments,
    mosaic_arguments,
    preprocess_arguments,
    safe_key,
    search_arguments,
    split_aoi,
)


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
    jobs = preprocess_arguments(found, "file:///out/run", [None])
    assert [j["product"] for j in jobs] == ["file:///a", "file:///b"]
    assert jobs[0]["output"] == "file:///out/run/stacks/a_1.tif"
    assert "aoi" not in jobs[0]


def test_large_aoi_is_cut_into_pieces_covering_it() -> None:
    from shapely.geometry import shape
    from shapely.ops import unary_union

    bbox = {"bbox": [-0.68, 44.83, -0.56, 44.93]}  # about 9.5 x 11 km
    aoi = aoi_geometry(bbox)
    assert split_aoi(aoi, 50) == [aoi]
    pieces = split_aoi(aoi, 4)
    assert len(pieces) == 3 * 3
    union = unary_union([shape(p) for p in pieces])
    assert abs(union.area - shape(aoi).area) < 1e-12
    assert split_aoi(None, 1) == [None]
    # a triangle: cells outside it are dropped
    tri = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 1], [0, 0]]]}
    assert len(split_aoi(tri, 20)) < 36


def test_pieces_then_mosaics() -> None:
    found = {
        "products": [
            {"id": "a", "href": "file:///a", "datetime": "2016-05-04"},
            {"id": "b", "href": "file:///b", "datetime": "2017-10-26"},
        ],
        "items": [{"id": "a", "bbox": [0, 0, 1, 1]}, {"id": "b", "bbox": [0, 0, 0.4, 1]}],
    }
    pieces = split_aoi(
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}, 60
    )
    jobs = preprocess_arguments(found, "file:///o", pieces)
    per_product = {p: [j for j in jobs if j["product"] == f"file:///{p}"] for p in "ab"}
    assert len(per_product["a"]) == len(pieces) == 4
    assert len(per_product["b"]) == 2  # only the pieces its footprint meets
    assert all('"Polygon"' in j["aoi"] for j in jobs)
    results = [{"output": j["output"]} for j in jobs] + [None]  # a skipped piece
    merges = mosaic_arguments(results, "file:///o")
    assert [m["output"] for m in merges] == ["file:///o/stacks/a.tif", "file:///o/stacks/b.tif"]
    assert len(merges[0]["inputs"]) == 4
    single = mosaic_arguments([{"output": "file:///o/stacks/a.tif"}], "file:///o")
    assert single == [{"inputs": ["file:///o/stacks/a.tif"], "output": "file:///o/stacks/a.tif"}]


def test_consecutive_pairs() -> None:
    stacks = [{"output": f"s{i}.tif", "datetime": f"2017-0{i}-01"} for i in (3, 1, 2)]
    jobs = change_arguments(stacks, "file:///o", "cva", "auto")
    assert [(j["before"], j["after"]) for j in jobs] == [("s1.tif", "s2.tif"), ("s2.tif", "s3.tif")]
    assert "threshold" not in jobs[0]
    assert change_arguments(stacks[:1], "file:///o", "cva", 0.4) == []
    assert change_arguments(stacks[:2], "file:///o", "irmad", 0.4)[0]["threshold"] == "0.4"


def test_safe_key() -> None:
    assert safe_key("manual__2026-11-25T09:00:00+00:00") == "manual__2026-11-25T09_00_00_00_00"
