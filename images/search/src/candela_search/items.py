"""STAC items of catalogue products (pystac), with the extensions their fields use."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from candela_search.records import isoformat

EXTENSIONS = {
    "eo": "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.1.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.2.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "s2": "https://stac-extensions.github.io/sentinel-2/v1.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v2.0.0/schema.json",
}

GEOTIFF = "image/tiff; application=geotiff"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
JP2 = "image/jp2"
GEOJSON = "application/geo+json"
XML = "application/xml"
ZIP = "application/zip"


def software() -> dict[str, str]:
    try:
        version = metadata.version("candela-search")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "0+unknown"
    return {"candela-search": version}


def _prefixes(mapping: Mapping[str, Any]) -> set[str]:
    return {k.split(":", 1)[0] for k in mapping if ":" in k}


def build_item(
    *,
    item_id: str,
    collection: str,
    datetime: dt.datetime,
    geometry: dict[str, Any],
    bbox: tuple[float, float, float, float] | list[float],
    properties: Mapping[str, Any],
    assets: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """A STAC 1.1 item dict; ``None`` properties are left out."""
    import pystac

    props = {k: v for k, v in properties.items() if v is not None}
    props.setdefault("processing:software", software())
    props["created"] = isoformat(dt.datetime.now(dt.UTC))
    used = _prefixes(props)
    for asset in assets.values():
        used |= _prefixes(asset)
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=list(bbox),
        datetime=datetime,
        properties=props,
        collection=collection,
        stac_extensions=[EXTENSIONS[p] for p in sorted(used) if p in EXTENSIONS],
    )
    for key, spec in assets.items():
        a = {k: v for k, v in spec.items() if v is not None}
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
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def raster_footprint(path: str | os.PathLike[str], densify: int = 21) -> dict[str, Any]:
    """Exact WGS 84 footprint of a georeferenced raster plus its ``proj:*`` fields.

    The four edges of the raster are densified before reprojection, so a UTM raster gives the
    slightly rotated quadrilateral it really covers, not the lon/lat box around it.
    """
    import rasterio
    import rasterio.errors
    from rasterio.warp import transform
    from shapely.geometry import Polygon
    from shapely.geometry.polygon import orient

    with warnings.catch_warnings():
        # a raster without georeferencing is refused just below, with a clear reason
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        ds = rasterio.open(os.fspath(path))
    with ds:
        if ds.crs is None:
            raise ValueError("the raster has no coordinate reference system")
        left, bottom, right, top = ds.bounds
        ring = Polygon([(left, bottom), (right, bottom), (right, top), (left, top)])
        if ds.crs.to_epsg() == 4326:
            poly = orient(ring, 1.0)
        else:
            step = max(right - left, top - bottom) / max(densify - 1, 1)
            xs, ys = zip(*ring.segmentize(step).exterior.coords, strict=True)
            lons, lats = transform(ds.crs, "EPSG:4326", list(xs), list(ys))
            # edges stay (almost) straight in lon/lat: drop the points that add < 1 cm
            poly = Polygon(zip(lons, lats, strict=True)).simplify(1e-7)
            poly = orient(poly, 1.0)  # RFC 7946: exterior ring counter-clockwise
        if not poly.is_valid:
            raise ValueError("the raster's footprint is not a valid polygon in WGS 84")
        code = ds.crs.to_epsg()
        proj = {
            "proj:code": f"EPSG:{code}" if code else None,
            "proj:wkt2": None if code else ds.crs.to_wkt(),
            "proj:shape": [ds.height, ds.width],
            "proj:transform": list(ds.transform)[:6],
            "proj:bbox": list(ds.bounds),
        }
        tags = ds.tags()
        info = {
            "dtype": ds.dtypes[0],
            "count": ds.count,
            "res": list(ds.res),
            "nodata": ds.nodata,
            "tags": tags,
        }
    w, s, e, n = poly.bounds
    return {
        "geometry": geometry_dict(poly),
        "bbox": (float(w), float(s), float(e), float(n)),
        "proj": {k: v for k, v in proj.items() if v is not None},
        "info": info,
    }


def geometry_dict(geom: Any) -> dict[str, Any]:
    """A plain-JSON GeoJSON geometry (lists, not tuples) of a shapely geometry."""
    import json

    from shapely.geometry import mapping

    return dict(json.loads(json.dumps(mapping(geom))))
