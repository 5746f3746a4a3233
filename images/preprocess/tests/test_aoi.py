"""--aoi: inline GeoJSON or a file, cropped on whole pixels of the B02 grid."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import rasterio
from preprocess_helpers import BORDEAUX, band_file, read_band


def _expected_window(west: float, south: float, east: float, north: float) -> tuple[int, ...]:
    with rasterio.open(band_file(BORDEAUX / "imgs_1", "B02")) as ds:
        inv = ~ds.transform
        c0, r0 = inv @ (west, north)
        c1, r1 = inv @ (east, south)
        c0, r0 = max(math.floor(c0), 0), max(math.floor(r0), 0)
        c1, r1 = min(math.ceil(c1), ds.width), min(math.ceil(r1), ds.height)
    return c0, r0, c1 - c0, r1 - r0


def test_inline_aoi_crops_on_whole_pixels(run_service, tmp_path: Path) -> None:
    west, south, east, north = -0.5901, 44.8201, -0.5702, 44.8403
    aoi = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
    }
    out = tmp_path / "aoi.tif"
    rc, res = run_service(
        "--product",
        BORDEAUX / "imgs_1",
        "--output",
        out,
        "--aoi",
        json.dumps(aoi),
        "--bands",
        "B02",
        "B05",
    )
    assert rc == 0, res
    col, row, width, height = _expected_window(west, south, east, north)
    assert (res["width"], res["height"]) == (width, height)
    b02 = read_band(band_file(BORDEAUX / "imgs_1", "B02"))
    with rasterio.open(out) as ds, rasterio.open(band_file(BORDEAUX / "imgs_1", "B02")) as ref:
        np.testing.assert_array_equal(ds.read(1), b02[row : row + height, col : col + width])
        assert ds.transform.almost_equals(ref.transform @ ref.transform.translation(col, row))
        # the AOI lies inside the output and the output is at most one pixel larger per side
        w, s, e, n = ds.bounds
        assert w <= west < w + ref.res[0] and e - ref.res[0] < east <= e
        assert s <= south < s + ref.res[1] and n - ref.res[1] < north <= n


def test_aoi_file_partly_outside(run_service, tmp_path: Path) -> None:
    """An AOI reaching beyond the footprint is clipped to it."""
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [
                                    [-0.7, 44.85],
                                    [-0.58, 44.85],
                                    [-0.58, 45.0],
                                    [-0.7, 45.0],
                                    [-0.7, 44.85],
                                ]
                            ],
                        },
                    }
                ],
            }
        )
    )
    out = tmp_path / "aoi.tif"
    rc, res = run_service(
        "--product", BORDEAUX / "imgs_2", "--output", out, "--aoi", aoi, "--bands", "B02"
    )
    assert rc == 0, res
    col, row, width, height = _expected_window(-0.7, 44.85, -0.58, 45.0)
    assert (col, row) == (0, 0)
    assert (res["width"], res["height"]) == (width, height)
    assert res["valid_fraction"] == 1.0


def test_shipped_city_outline_gives_the_whole_image(run_service, tmp_path: Path) -> None:
    out = tmp_path / "city.tif"
    rc, res = run_service(
        "--product",
        BORDEAUX / "imgs_1",
        "--output",
        out,
        "--aoi",
        BORDEAUX / "bordeaux.geojson",
        "--bands",
        "B02",
    )
    assert rc == 0, res
    assert (res["width"], res["height"]) == (461, 517)


def test_bad_aoi(run_service, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, res = run_service(
        "--product", BORDEAUX / "imgs_1", "--output", out / "x.tif", "--aoi", "{not json"
    )
    assert rc == 2 and "not valid JSON" in res["error"]
    rc, res = run_service(
        "--product",
        BORDEAUX / "imgs_1",
        "--output",
        out / "x.tif",
        "--aoi",
        tmp_path / "missing.geojson",
    )
    assert rc == 2 and "AOI file not found" in res["error"]
    (tmp_path / "junk.txt").write_bytes(b"\xff\xfe\x00junk")
    for aoi, why in ((tmp_path / "junk.txt", "not a UTF-8 text file"), (tmp_path, "cannot read")):
        rc, res = run_service(
            "--product", BORDEAUX / "imgs_1", "--output", out / "x.tif", "--aoi", aoi
        )
        assert rc == 2 and why in res["error"], res
    assert not out.exists()


def test_point_aoi_takes_its_pixel(run_service, tmp_path: Path) -> None:
    x, y = -0.5801, 44.8302
    out = tmp_path / "pt.tif"
    rc, res = run_service(
        "--product",
        BORDEAUX / "imgs_1",
        "--output",
        out,
        "--bands",
        "B02",
        "--aoi",
        json.dumps({"type": "Point", "coordinates": [x, y]}),
    )
    assert rc == 0, res
    assert (res["width"], res["height"]) == (1, 1)
    with rasterio.open(band_file(BORDEAUX / "imgs_1", "B02")) as ref:
        row, col = ref.index(x, y)
        expected = ref.read(1)[row, col]
    with rasterio.open(out) as ds:
        assert ds.read(1)[0, 0] == expected


def test_polygon_aoi_leaves_no_valid_pixel_outside_it(run_service, tmp_path: Path) -> None:
    """A polygon AOI is read over its bounding box, but the pixels whose centre lies outside the
    polygon are nodata (0) in every band, so that no later step (change, statistics, polygons)
    counts them; inside, the pixels are the product's."""
    import shapely

    triangle = [[-0.5901, 44.8201], [-0.5702, 44.8201], [-0.5901, 44.8403], [-0.5901, 44.8201]]
    out = tmp_path / "triangle.tif"
    rc, res = run_service(
        "--product",
        BORDEAUX / "imgs_1",
        "--output",
        out,
        "--aoi",
        json.dumps({"type": "Polygon", "coordinates": [triangle]}),
        "--bands",
        "B02",
        "B05",
    )
    assert rc == 0, res
    col, row, width, height = _expected_window(-0.5901, 44.8201, -0.5702, 44.8403)
    assert (res["width"], res["height"]) == (width, height)  # the bounding box, on whole pixels
    b02 = read_band(band_file(BORDEAUX / "imgs_1", "B02"))[row : row + height, col : col + width]
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 4326  # (the OSCD grid: the polygon is drawn in it as given)
        data = ds.read()
        rows, cols = np.mgrid[0:height, 0:width]
        xs, ys = ds.transform @ (cols + 0.5, rows + 0.5)
    inside = shapely.contains_xy(shapely.Polygon(triangle), xs, ys)
    assert 0.3 < inside.mean() < 0.7  # a triangle: about half its bounding box
    assert (data[:, ~inside] == 0).all()  # nothing valid outside the polygon
    np.testing.assert_array_equal(data[0][inside], b02[inside])
    assert (data[:, inside] != 0).all()
    assert res["valid_fraction"] == 1.0  # of the polygon's pixels
