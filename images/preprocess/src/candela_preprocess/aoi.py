"""Area of interest: GeoJSON (a file path/URI or inline text) in WGS 84, reprojected on demand."""

from __future__ import annotations

import json
import logging
from typing import Any

from candela_sdk import storage
from candela_sdk.errors import InputError

log = logging.getLogger(__name__)


def load_aoi(text: str) -> Any:
    """A shapely geometry (WGS 84 lon/lat, RFC 7946) from inline GeoJSON or a GeoJSON file/URI.

    Accepts a geometry, a Feature or a FeatureCollection (the union of its geometries).
    """
    import shapely
    from shapely.geometry import shape

    stripped = text.strip()
    if stripped.startswith("{"):
        source = "inline --aoi"
        raw = stripped
    else:
        source = text
        if not storage.exists(text):
            raise InputError(f"AOI file not found: {text}")
        raw = storage.read_text(text)
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"AOI {source} is not valid JSON: {exc.msg}") from None
    geoms = _geometries(doc, source)
    if not geoms:
        raise InputError(f"AOI {source} holds no geometry")
    try:
        shapes = [shape(g) for g in geoms]
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InputError(f"AOI {source} holds an invalid geometry: {exc}") from None
    geom = shapely.union_all([shapely.make_valid(s) for s in shapes])
    if geom.is_empty:
        raise InputError(f"AOI {source} is empty")
    return geom


def _geometries(doc: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or "type" not in doc:
        raise InputError(f"AOI {source} is not a GeoJSON object")
    kind = doc["type"]
    if kind == "FeatureCollection":
        return [f["geometry"] for f in doc.get("features", []) if f.get("geometry")]
    if kind == "Feature":
        return [doc["geometry"]] if doc.get("geometry") else []
    if kind in (
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    ):
        return [doc]
    raise InputError(f"AOI {source} has unknown GeoJSON type {kind!r}")


def to_crs(geom: Any, crs: Any) -> Any:
    """``geom`` (WGS 84) reprojected to ``crs``."""
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    return shape(transform_geom("EPSG:4326", crs, mapping(geom)))
