"""STAC item helpers: items for raster outputs with projection info and provenance."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from typing import Any

from candela_sdk import storage

PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
PROCESSING_EXT = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"


def raster_footprint(uri: str | os.PathLike[str]) -> dict[str, Any]:
    """bbox/geometry in WGS 84 plus proj:* fields of a raster."""
    import rasterio
    from rasterio.warp import transform_bounds

    with storage.rasterio_env(), rasterio.open(storage.gdal_path(uri)) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
        code = ds.crs.to_epsg() if ds.crs else None
        return {
            "bbox": [west, south, east, north],
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[west, south], [east, south], [east, north], [west, north], [west, south]]
                ],
            },
            "proj": {
                "proj:code": f"EPSG:{code}" if code else None,
                "proj:shape": [ds.height, ds.width],
                "proj:transform": list(ds.transform)[:6],
                "proj:bbox": list(ds.bounds),
            },
        }


def make_item(
    *,
    item_id: str,
    footprint_of: str,
    datetime: dt.datetime | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    assets: Mapping[str, Mapping[str, Any]],
    properties: Mapping[str, Any] | None = None,
    derived_from: Iterable[str] = (),
    collection: str | None = None,
    software: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A STAC 1.1 item (as a dict) for outputs sharing the grid of ``footprint_of``."""
    import pystac

    fp = raster_footprint(footprint_of)
    props: dict[str, Any] = {k: v for k, v in fp["proj"].items() if v is not None}
    props.update(properties or {})
    if software:
        props["processing:software"] = dict(software)
    props["created"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    item = pystac.Item(
        id=item_id,
        geometry=fp["geometry"],
        bbox=fp["bbox"],
        datetime=datetime if start is None else None,
        start_datetime=start,
        end_datetime=end,
        properties=props,
        collection=collection,
        stac_extensions=[PROJ_EXT, PROCESSING_EXT],
    )
    for key, asset in assets.items():
        a = dict(asset)
        item.add_asset(
            key,
            pystac.Asset(
                href=a.pop("href"),
                media_type=a.pop("type", None),
                title=a.pop("title", None),
                roles=a.pop("roles", None),
                extra_fields=a,
            ),
        )
    for href in derived_from:
        item.add_link(pystac.Link(rel="derived_from", target=href, media_type="application/json"))
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    return d


COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
