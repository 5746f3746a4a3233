"""The pipeline's glue: arguments of each step from the previous step's result."""

from __future__ import annotations

from pathlib import Path

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


# A FeatureCollection AOI over Bordeaux: two separate squares, about 3 km apart.
_SQUARES = [(-0.595, 44.815, -0.585, 44.825), (-0.565, 44.850, -0.556, 44.860)]
FEATURE_COLLECTION = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "id": f"zone-{i}",
            "properties": {"name": f"square {i}"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
            },
        }
        for i, (w, s, e, n) in enumerate(_SQUARES)
    ],
}


def test_feature_collection_aoi_end_to_end(tmp_path, monkeypatch) -> None:
    """search arguments → split into pieces → preprocess --aoi → zone statistics, with the
    same FeatureCollection (split_aoi used to fail on it with GeometryTypeError)."""
    import json
    from pathlib import Path

    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import shape
    from shapely.ops import unary_union

    from candela_preprocess.service import SERVICE as PREPROCESS
    from candela_sdk.aoi import parse_geojson
    from candela_sdk.contract import main
    from candela_sdk.zones import load_zones, zone_statistics
    from candela_search import SearchParams
    from candela_search.core import Query, footprint_intersects
    from candela_search.ingest import recognise

    bordeaux = Path(__file__).resolve().parents[1] / "data" / "oscd" / "bordeaux"
    params = {"collection": "sentinel-2-l1c", "aoi": FEATURE_COLLECTION, "tile_size_km": 2}
    union = unary_union([shape(f["geometry"]) for f in FEATURE_COLLECTION["features"]])

    # search: the service accepts it and tests footprints against the union of the features
    query = Query.from_params(SearchParams.model_validate(search_arguments(params)))
    assert query.aoi is not None and query.aoi.geometry.equals(union)
    records = recognise(bordeaux)
    assert len(records) == 2 and all(footprint_intersects(r, query.aoi) for r in records)

    # pieces: the FeatureCollection itself and the run's AOI geometry give the same pieces
    aoi = aoi_geometry(params)
    assert aoi is not None and shape(aoi).equals(union)
    pieces = split_aoi(FEATURE_COLLECTION, 2)
    same = split_aoi(aoi, 2)
    assert len(pieces) == len(same) >= 2
    assert all(shape(a).equals(shape(b)) for a, b in zip(pieces, same, strict=True))
    assert abs(unary_union([shape(p) for p in pieces if p]).area - union.area) < 1e-12

    # preprocess: every piece, and the whole FeatureCollection, as --aoi
    found = {
        "products": [{"id": "b1", "href": str(bordeaux / "imgs_1"), "datetime": "2016-05-04"}],
        "items": [{"id": "b1", "bbox": list(records[0].bbox)}],
    }
    jobs = preprocess_arguments(found, tmp_path.as_uri(), pieces)
    assert len(jobs) == len(pieces)
    monkeypatch.setenv("CANDELA_RESULT_PATH", str(tmp_path / "result.json"))
    for job in [*jobs, {**jobs[0], "aoi": json.dumps(FEATURE_COLLECTION)}]:
        out = tmp_path / f"{len(list(tmp_path.glob('*.tif')))}.tif"
        argv = ["--product", job["product"], "--output", str(out), "--aoi", job["aoi"]]
        assert main(PREPROCESS, [*argv, "--bands", "B02", "--no-quality-gate"]) == 0
        with rasterio.open(out) as ds:
            w, s, e, n = ds.bounds
        pw, ps, pe, pn = parse_geojson(json.loads(job["aoi"])).bounds
        assert w <= pw and s <= ps and e >= pe and n >= pn  # the output covers the piece

    # zones: the FeatureCollection as a zones file, counted on a mask (change west of -0.575)
    mask = tmp_path / "mask.tif"
    transform = from_origin(-0.60, 44.87, 0.001, 0.001)
    data = np.zeros((60, 50), dtype="uint8")
    data[:, :25] = 1
    profile = {"driver": "GTiff", "width": 50, "height": 60, "count": 1, "dtype": "uint8"}
    with rasterio.open(mask, "w", crs="EPSG:4326", transform=transform, **profile) as ds:
        ds.write(data, 1)
    features, crs = load_zones(json.dumps(FEATURE_COLLECTION).encode(), "zones.geojson")
    with rasterio.open(mask) as ds:
        stats = zone_statistics(features, crs, ds)
    assert [s["zone_id"] for s in stats] == ["zone-0", "zone-1"]
    assert stats[0]["changed_fraction"] == 1.0 and stats[1]["changed_fraction"] == 0.0
    assert all(s["valid_pixels"] > 50 for s in stats)


def test_fusion_arguments_pair_dates_with_s1_and_skip_the_others(tmp_path) -> None:
    from candela.pipeline import fusion_arguments

    prefix = f"file://{tmp_path}"
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "S2A_A_valid.tif").write_bytes(b"x")  # the SCL validity mask of A
    search_result = {
        "products": [
            {
                "id": "S2A_A",
                "s1_match": {"href": "file:///s1/a", "datetime": "2017-06-13T16:50:43Z"},
            },
            {"id": "S2A_B", "s1_match": None},
        ]
    }
    stacks = [
        {"output": f"{prefix}/stacks/S2A_B.tif", "datetime": "2017-07-20T10:00:00Z"},
        {"output": f"{prefix}/stacks/S2A_A.tif", "datetime": "2017-06-13T10:10:31Z"},
        None,
    ]
    jobs, skipped = fusion_arguments(search_result, stacks, prefix, zones="z.geojson")
    (job,) = jobs
    assert job["optical"].endswith("/stacks/S2A_A.tif") and job["radar"] == "file:///s1/a"
    assert job["output"] == f"{prefix}/landcover/S2A_A" and job["model"] == "fused"
    assert job["optical_mask"].endswith("S2A_A_valid.tif") and job["zones"] == "z.geojson"
    assert job["radar_datetime"].startswith("2017-06-13") and job["window_days"] == 10
    (skip,) = skipped
    assert skip["reason"] == "no Sentinel-1 acquisition within 10 days of 2017-07-20"
    # the search asks for the pairing of Sentinel-2 products only
    assert search_arguments({"collection": "sentinel-2-l2a"})["pair_s1_days"] == 10


def test_each_run_has_its_own_prefix_and_names_earlier_identical_runs(tmp_path: Path) -> None:
    """Two runs with the same parameters publish under two prefixes of one key; the second
    names the first, and the first's run.json is not touched."""
    import json as _json

    from candela import pipeline
    from candela.settings import Settings

    settings = Settings(home=tmp_path, storage_root=(tmp_path / "storage").as_uri())
    a, b = "manual__2026-01-01T00:00:00+00:00", "manual__2026-01-01T00_00_00_00_00"
    pa = pipeline.output_prefix(settings, "dag", "k", a)
    pb = pipeline.output_prefix(settings, "dag", "k", b)
    assert pa != pb and pa.rsplit("/", 1)[0] == pb.rsplit("/", 1)[0]  # same key, two runs
    first = pipeline.publish(settings, "dag", a, "k", {"x": 1}, [], [], None)
    assert first["same_parameters_as"] == [] and first["prefix"] == pa
    before = Path(first["summary"].removeprefix("file://")).read_text()
    second = pipeline.publish(settings, "dag", b, "k", {"x": 1}, [], [], None)
    assert second["same_parameters_as"] == [a] and second["prefix"] == pb
    assert Path(first["summary"].removeprefix("file://")).read_text() == before
    assert _json.loads(before)["run_id"] == a
    # a failed third run removes only its own folder
    pc = Path(pipeline.output_prefix(settings, "dag", "k", "c").removeprefix("file://"))
    assert pipeline.discard_outputs(settings, "dag", "c", "k") is False  # nothing written
    (pc / "stacks").mkdir(parents=True)
    (pc / "stacks" / "x.tif").write_bytes(b"x")
    assert pipeline.discard_outputs(settings, "dag", "c", "k") is True
    assert not pc.exists()
    assert not pipeline.discard_outputs(settings, "dag", a, "k")  # published: left as it is
    assert Path(first["summary"].removeprefix("file://")).exists()


def test_polygon_aoi_limits_the_change_to_the_polygon(tmp_path, monkeypatch) -> None:
    """preprocess --aoi (a triangle) of both dates → changedetect: the probability is nodata at
    every pixel whose centre lies outside the triangle, and the change polygons lie within it
    (the stacks are read over the triangle's bounding box)."""
    import json

    import numpy as np
    import rasterio
    import shapely
    from shapely.geometry import shape

    from candela_changedetect.service import SERVICE as DETECT
    from candela_preprocess.service import SERVICE as PREPROCESS
    from candela_sdk.contract import main

    bordeaux = Path(__file__).resolve().parents[1] / "data" / "oscd" / "bordeaux"
    triangle = shapely.Polygon([(-0.600, 44.815), (-0.555, 44.815), (-0.600, 44.862)])
    aoi = json.dumps(shapely.geometry.mapping(triangle))
    monkeypatch.setenv("CANDELA_RESULT_PATH", str(tmp_path / "result.json"))
    stacks = []
    for date in ("imgs_1", "imgs_2"):
        out = tmp_path / f"{date}.tif"
        argv = ["--product", str(bordeaux / date), "--output", str(out), "--aoi", aoi]
        assert main(PREPROCESS, [*argv, "--no-quality-gate"]) == 0
        stacks.append(out)
    argv = ["--before", str(stacks[0]), "--after", str(stacks[1]), "--model", "cva"]
    assert main(DETECT, [*argv, "--output", str(tmp_path / "change")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    outputs = {k: v.removeprefix("file://") for k, v in result["outputs"].items()}
    with rasterio.open(outputs["change_probability"]) as ds:
        prob = ds.read(1)
        rows, cols = np.mgrid[0 : ds.height, 0 : ds.width]
        xs, ys = ds.transform @ (cols + 0.5, rows + 0.5)
        assert ds.crs.to_epsg() == 4326  # (the OSCD grid)
    inside = shapely.contains_xy(triangle, xs, ys)
    assert 0.3 < inside.mean() < 0.7
    assert (prob[~inside] < 0).all()  # nodata (-1) outside the triangle
    assert (prob[inside] >= 0).mean() > 0.99
    features = json.loads(Path(outputs["change_polygons_geojson"]).read_text())["features"]
    assert features
    assert all(triangle.buffer(2e-4).contains(shape(f["geometry"])) for f in features)
