"""Merging aligned tiles: union of the footprints on the shared grid, block by block."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from candela_mosaic import __version__
from candela_mosaic.params import MosaicParams
from candela_sdk import storage
from candela_sdk.errors import InputError

log = logging.getLogger(__name__)

ALIGN_TOLERANCE = 1e-6  # in pixels


@dataclass
class Tile:
    uri: str
    ds: Any
    col: int  # offset in the mosaic, pixels
    row: int


def _item_uri(tif_uri: str) -> str:
    return tif_uri.rsplit(".", 1)[0] + ".json"


def run(params: MosaicParams) -> dict[str, Any]:
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    from candela_sdk.cog import CogSpec, cog_writer
    from candela_sdk.stac import COG_MEDIA_TYPE, make_item

    inputs = list(dict.fromkeys(params.inputs))
    for uri in inputs:
        if not storage.exists(uri):
            raise InputError(f"tile not found: {uri}")
    with storage.rasterio_env(), contextlib.ExitStack() as stack:
        dss = []
        for uri in inputs:
            try:
                dss.append(stack.enter_context(rasterio.open(storage.gdal_path(uri))))
            except rasterio.errors.RasterioIOError as exc:
                raise InputError(f"cannot read tile {uri}: {exc}") from None
        first = dss[0]
        for uri, ds in zip(inputs[1:], dss[1:], strict=True):
            if ds.crs != first.crs:
                raise InputError(f"tiles are in different CRS: {inputs[0]} vs {uri}")
            if ds.descriptions != first.descriptions or ds.count != first.count:
                raise InputError(f"tiles have different bands: {inputs[0]} vs {uri}")
            if not all(
                math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
                for a, b in zip(ds.res, first.res, strict=True)
            ):
                raise InputError(f"tiles have different pixel sizes: {inputs[0]} vs {uri}")
            if ds.dtypes != first.dtypes:
                raise InputError(f"tiles have different data types: {inputs[0]} vs {uri}")
        xres, yres = first.res
        west = min(ds.bounds.left for ds in dss)
        north = max(ds.bounds.top for ds in dss)
        tiles = []
        for uri, ds in zip(inputs, dss, strict=True):
            col_f = (ds.bounds.left - west) / xres
            row_f = (north - ds.bounds.top) / yres
            if abs(col_f - round(col_f)) > 1e-3 or abs(row_f - round(row_f)) > 1e-3:
                raise InputError(
                    f"tile {uri} is not aligned on the grid of {inputs[0]} "
                    f"(offset {col_f:.3f}, {row_f:.3f} pixels)"
                )
            tiles.append(Tile(uri, ds, round(col_f), round(row_f)))
        width = max(t.col + t.ds.width for t in tiles)
        height = max(t.row + t.ds.height for t in tiles)
        transform = Affine(xres, 0.0, west, 0.0, -yres, north)
        tags = first.tags()
        crs_text, bands = str(first.crs), list(first.descriptions)
        acquired = tags.get("ACQUISITION_DATETIME")
        if len(inputs) == 1 and storage.to_uri(inputs[0]) == storage.to_uri(params.output):
            log.info("a single tile: %s is already the mosaic", params.output)
        else:
            nodata = first.nodata if first.nodata is not None else 0
            spec = CogSpec(
                width=width,
                height=height,
                count=first.count,
                dtype=first.dtypes[0],
                crs=first.crs,
                transform=transform,
                nodata=nodata,
                band_names=[d or f"band{i + 1}" for i, d in enumerate(first.descriptions)],
                scales=first.scales,
                offsets=first.offsets,
                tags={**tags, "candela_mosaic_tiles": str(len(tiles))},
            )
            bs = params.block_size
            import numpy as np

            total = math.ceil(height / bs) * math.ceil(width / bs)
            done = 0
            with cog_writer(params.output, spec) as w:
                for r0 in range(0, height, bs):
                    for c0 in range(0, width, bs):
                        h, wd = min(bs, height - r0), min(bs, width - c0)
                        block = np.full((first.count, h, wd), nodata, dtype=first.dtypes[0])
                        for t in tiles:
                            # overlap of the block with the tile, in mosaic pixels
                            r_a, r_b = max(r0, t.row), min(r0 + h, t.row + t.ds.height)
                            c_a, c_b = max(c0, t.col), min(c0 + wd, t.col + t.ds.width)
                            if r_a >= r_b or c_a >= c_b:
                                continue
                            data = t.ds.read(
                                window=Window(c_a - t.col, r_a - t.row, c_b - c_a, r_b - r_a)
                            )
                            dst = block[:, r_a - r0 : r_b - r0, c_a - c0 : c_b - c0]
                            empty = np.all(dst == nodata, axis=0)
                            dst[:, empty] = data[:, empty]
                        w.write(block, window=Window(c0, r0, wd, h))
                        done += 1
                    log.info("mosaic: %d/%d blocks", done, total)
    # the STAC item: the first tile's properties, the mosaic's footprint, the tiles as sources
    first_item: dict[str, Any] = {}
    with contextlib.suppress(InputError, ValueError):
        first_item = json.loads(storage.read_text(_item_uri(inputs[0])))
    props = dict(first_item.get("properties", {}))
    for k in [k for k in props if k.startswith("proj:") or k == "created"]:
        props.pop(k)
    when = acquired or props.pop("datetime", None) or props.get("start_datetime")
    props.pop("datetime", None)
    import datetime as dt

    item = make_item(
        item_id=(first_item.get("id") or storage.parse(params.output).name) + "-mosaic"
        if len(inputs) > 1
        else first_item.get("id") or storage.parse(params.output).name,
        footprint_of=params.output,
        datetime=dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        if when
        else dt.datetime.now(dt.UTC),
        assets={"data": {"href": storage.to_uri(params.output), "type": COG_MEDIA_TYPE,
                         "roles": ["data"], "title": "merged stack"}},
        properties={k: v for k, v in props.items() if k not in ("start_datetime", "end_datetime")},
        derived_from=[_item_uri(u) for u in inputs] if len(inputs) > 1 else [],
        software={"candela-mosaic": __version__},
    )  # fmt: skip
    item_uri = _item_uri(params.output)
    if len(inputs) > 1:
        storage.write_text(item_uri, json.dumps(item, indent=2))
    return {
        "output": storage.to_uri(params.output),
        "item": storage.to_uri(item_uri),
        "tiles": len(inputs),
        "datetime": when,
        "width": width,
        "height": height,
        "crs": crs_text,
        "bands": bands,
    }
