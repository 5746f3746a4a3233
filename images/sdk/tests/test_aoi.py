"""Areas of interest: one parser for bbox and GeoJSON, one-line errors, pieces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shapely.geometry import shape

from candela_sdk.aoi import (
    AoiError,
    aoi_geometry,
    from_bbox,
    load_aoi,
    parse_bbox,
    parse_geojson,
    split_aoi,
)
from candela_sdk.errors import InputError

SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
FAR = {"type": "Polygon", "coordinates": [[[3, 0], [4, 0], [4, 1], [3, 1], [3, 0]]]}
FC = {
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "properties": {}, "geometry": SQUARE},
        {"type": "Feature", "properties": {}, "geometry": FAR},
        {"type": "Feature", "properties": {}, "geometry": None},
    ],
}


def test_every_form_gives_one_geometry(tmp_path: Path) -> None:
    union = parse_geojson(FC)
    assert union.geom_type == "MultiPolygon" and union.area == 2.0
    assert parse_geojson({"type": "Feature", "geometry": SQUARE}).equals(shape(SQUARE))
    path = tmp_path / "fc.geojson"
    path.write_text(json.dumps(FC))
    for value in (FC, json.dumps(FC), str(path), path.as_uri()):
        assert load_aoi(value).geometry.equals(union)
    assert aoi_geometry(SQUARE) == SQUARE  # a geometry stays as given
    assert shape(aoi_geometry(FC)).equals(union)
    assert aoi_geometry(bbox="0,0,1,1") == SQUARE
    assert aoi_geometry() is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{not json", "not valid JSON"),
        ("/no/such/file.geojson", "AOI file not found"),
        ('{"type": "Point", "coordinates": [500000, 4960000]}', "is it in WGS 84?"),
        ('{"type": "FeatureCollection", "features": []}', "has no geometry"),
        ('{"type": "Circle", "coordinates": [0, 0]}', "unknown GeoJSON type 'Circle'"),
        (
            '{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]], '
            '"crs": {"type": "name", "properties": {"name": "EPSG:2154"}}}',
            "is in EPSG:2154",
        ),
    ],
)
def test_bad_areas_are_one_line(value: str, words: str) -> None:
    with pytest.raises(AoiError) as exc:
        load_aoi(value)
    assert words in str(exc.value) and "\n" not in str(exc.value)
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, InputError)


def test_bbox_forms_and_ranges() -> None:
    expected = [-0.68, 44.83, -0.56, 44.93]
    for value in (
        expected,
        "-0.68,44.83,-0.56,44.93",
        "-0.68 44.83 -0.56 44.93",
        ["-0.68,44.83", "-0.56,44.93"],
    ):
        assert parse_bbox(value) == expected
    assert from_bbox(expected).bounds == tuple(expected)
    for bad, words in (
        ([1, 0, 0, 1], "west 1.0 must be less than east 0.0"),
        ([0, 1, 1, 0], "south 1.0 must be less than north 0.0"),
        ([0, 0, 200, 1], "east 200.0 is outside -180..180"),
        ([0, -91, 1, 0], "south -91.0 is outside -90..90"),
        ("0,0,1", "4 numbers"),
        ("a,b,c,d", "4 numbers"),
    ):
        with pytest.raises(AoiError, match=words):
            parse_bbox(bad)


def test_a_feature_collection_is_split_into_pieces() -> None:
    pieces = split_aoi(FC, 50)  # 1 degree ~ 111 km: each square in cells, the gap dropped
    union = parse_geojson(FC)
    assert len(pieces) > 2
    assert all(p is not None and shape(p).within(union.buffer(1e-9)) for p in pieces)
    assert abs(sum(shape(p).area for p in pieces if p) - union.area) < 1e-9
    # small: one piece, the union of the features
    small = split_aoi(FC, 1000)
    assert len(small) == 1 and small[0] is not None and shape(small[0]).equals(union)
    assert split_aoi(None, 1) == [None]
