"""STAC items: the one item builder and the one raster footprint.

* :func:`raster_footprint` – where a raster lies on Earth: the **exact WGS 84 outline of the
  raster's grid** (its four edges densified before reprojection, so a UTM raster gives the slightly
  rotated quadrilateral it really covers, not the lon/lat box around it), with ``bbox`` = the
  bounds of that outline and the raster's ``proj:*`` fields. It is the extent of the grid,
  nodata pixels included – not an outline of the valid data.
* :func:`build_item` – a STAC 1.1 item (as a dict) from a geometry, properties and assets;
  ``None`` values are left out, ``created`` and ``processing:software`` are set, and the
  extensions are those whose prefixes the item uses (or the ones given).
* :func:`make_item` – :func:`build_item` for outputs on the grid of one raster (the services'
  COGs): footprint and ``proj:*`` from that raster.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from candela_sdk import storage
from candela_sdk.aoi import geometry_dict

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
PROJ_EXT = EXTENSIONS["proj"]
PROCESSING_EXT = EXTENSIONS["processing"]

GEOTIFF = "image/tiff; application=geotiff"
COG = COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
JP2 = "image/jp2"
GEOJSON = "application/geo+json"
XML = "application/xml"
ZIP = "application/zip"


def isoformat(value: dt.datetime) -> str:
    """``2017-10-26T11:01:31Z``: UTC with a ``Z``."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def package_software(*distributions: str) -> dict[str, str]:
    """``processing:software`` for installed distributions: ``{name: version}``."""
    out = {}
    for name in distributions:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
            out[name] = "0+unknown"
    return out


def raster_footprint(uri: str | os.PathLike[str], densify: int = 21) -> dict[str, Any]:
    """The exact WGS 84 footprint of a georeferenced raster (see the module docstring).

    Returns ``{"geometry", "bbox", "proj", "info"}``: a GeoJSON polygon (exterior ring
    counter-clockwise, RFC 7946), its bounds, the ``proj:*`` fields and, in ``info``, the
    raster's dtype, band count, resolution, nodata and tags. ValueError for a raster without a
    CRS.
    """
    import rasterio
    import rasterio.errors
    from rasterio.warp import transform
    from shapely.geometry import Polygon
    from shapely.geometry.polygon import orient

    with storage.rasterio_env(), warnings.catch_warnings():
        # a raster without georeferencing is refused just below, with a clear reason
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        ds = rasterio.open(storage.gdal_path(uri))
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
        info = {
            "dtype": ds.dtypes[0],
            "count": ds.count,
            "res": list(ds.res),
            "nodata": ds.nodata,
            "tags": ds.tags(),
        }
    w, s, e, n = poly.bounds
    return {
        "geometry": geometry_dict(poly),
        "bbox": (float(w), float(s), float(e), float(n)),
        "proj": {k: v for k, v in proj.items() if v is not None},
        "info": info,
    }


def _prefixes(mapping: Mapping[str, Any]) -> set[str]:
    return {k.split(":", 1)[0] for k in mapping if ":" in k}


def build_item(
    *,
    item_id: str,
    geometry: dict[str, Any],
    bbox: Iterable[float],
    properties: Mapping[str, Any],
    assets: Mapping[str, Mapping[str, Any]],
    collection: str | None = None,
    datetime: dt.datetime | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    derived_from: Iterable[str] = (),
    software: Mapping[str, str] | None = None,
    extensions: Iterable[str] | None = None,
) -> dict[str, Any]:
    """A STAC 1.1 item dict; ``None`` properties and asset fields are left out.

    ``start``/``end`` make it a period item (``datetime`` null); ``extensions`` default to the
    known ones (:data:`EXTENSIONS`) whose prefixes the properties and assets use.
    """
    import pystac

    props = {k: v for k, v in properties.items() if v is not None}
    if software and "processing:software" not in props:
        props["processing:software"] = dict(software)
    props["created"] = isoformat(dt.datetime.now(dt.UTC))
    clean_assets = {k: {f: v for f, v in a.items() if v is not None} for k, a in assets.items()}
    if extensions is None:
        used = _prefixes(props)
        for asset in clean_assets.values():
            used |= _prefixes(asset)
        extensions = [EXTENSIONS[p] for p in sorted(used) if p in EXTENSIONS]
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=list(bbox),
        datetime=datetime if start is None else None,
        start_datetime=start,
        end_datetime=end,
        properties=props,
        collection=collection,
        stac_extensions=list(extensions),
    )
    for key, spec in clean_assets.items():
        a = dict(spec)
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
    return item.to_dict(include_self_link=False, transform_hrefs=False)


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
    """A STAC item for outputs sharing the grid of ``footprint_of`` (footprint and ``proj:*``
    from that raster)."""
    fp = raster_footprint(footprint_of)
    return build_item(
        item_id=item_id,
        geometry=fp["geometry"],
        bbox=fp["bbox"],
        properties={**fp["proj"], **(properties or {})},
        assets=assets,
        collection=collection,
        datetime=datetime,
        start=start,
        end=end,
        derived_from=derived_from,
        software=software,
        extensions=[PROJ_EXT, PROCESSING_EXT],
    )
