"""A small published change result in the changedetect layout (synthetic pixels, real place),
shared by the knowledge-base tests of the rdf-etl service and of the review app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform

REPO = Path(__file__).resolve().parents[1]
COMMUNES = REPO / "data" / "context" / "admin" / "communes-33-gironde.geojson"
ECAD = REPO / "data" / "weather" / "ecad-bordeaux-merignac" / "RR_STAID000034.txt"


def _tif(path: Path, data: np.ndarray, t, nodata) -> str:
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
        dtype=str(data.dtype), crs="EPSG:32630", transform=t, nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    return path.as_uri()


def _item(item_id: str, props: dict, bounds, **extra) -> dict:
    w, s, e, n = bounds
    return {
        "type": "Feature", "stac_version": "1.1.0", "id": item_id,
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": [w, s, e, n], "properties": props, "assets": {}, "links": [], **extra,
    }  # fmt: skip


def make_change_result(tmp_path: Path) -> dict:
    """A published change result in the changedetect layout over central Bordeaux (synthetic
    pixels: a 10×10 block of change, probability 0.8, and a 3×3 block, probability 0.6)."""
    xs, ys = transform("EPSG:4326", "EPSG:32630", [-0.5792], [44.8378])
    t = from_origin(round(xs[0]) - 500, round(ys[0]) + 500, 10, 10)
    mask = np.zeros((100, 100), dtype="uint8")
    prob = np.full((100, 100), 0.1, dtype="float32")
    mask[10:20, 10:20] = 1
    prob[10:20, 10:20] = 0.8
    mask[60:63, 60:63] = 1
    prob[60:63, 60:63] = 0.6
    mask[95:, 95:] = 255
    prob[95:, 95:] = -1
    out = tmp_path / "run" / "changes" / "a__b"
    out.mkdir(parents=True)
    stacks = tmp_path / "run" / "stacks"
    stacks.mkdir()
    lons, lats = transform("EPSG:32630", "EPSG:4326", [t.c, t.c + 1000], [t.f - 1000, t.f])
    bounds = (lons[0], lats[0], lons[1], lats[1])
    for name, day in (("s2-before", "2016-05-04"), ("s2-after", "2017-10-26")):
        item = _item(name, {"datetime": f"{day}T10:50:00Z", "platform": "sentinel-2",
                            "processing:level": "L1C", "eo:cloud_cover": 3.5}, bounds)  # fmt: skip
        (stacks / f"{name}.json").write_text(json.dumps(item))
    assets = {
        "change_mask": {"href": _tif(out / "change_mask.tif", mask, t, 255)},
        "change_probability": {"href": _tif(out / "change_probability.tif", prob, t, -1)},
    }
    props = {
        "start_datetime": "2016-05-04T00:00:00Z", "end_datetime": "2017-10-26T00:00:00Z",
        "datetime": None, "candela:model": "cva", "candela:threshold": 0.5,
        "candela:changed_area_ha": 1.09, "candela:changed_fraction": 0.0109,
        "candela:parameters": {"before": (stacks / "s2-before.tif").as_uri(),
                               "after": (stacks / "s2-after.tif").as_uri(), "model": "cva"},
    }  # fmt: skip
    item = _item("changedetect-cva-test", props, bounds, assets=assets)
    (out / "item.json").write_text(json.dumps(item))
    summary = {
        "workflow": "s2_change_detection", "run_id": "manual__test", "output_key": "k123",
        "results": [{"item": (out / "item.json").as_uri()}],
    }  # fmt: skip
    (tmp_path / "run" / "run.json").write_text(json.dumps(summary))
    return {"item": (out / "item.json").as_uri(), "run_json": str(tmp_path / "run" / "run.json")}
