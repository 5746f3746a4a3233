"""Areas of interest: the one parser of a bbox or GeoJSON area, in WGS 84 longitude/latitude.

An area of interest is given as

* a bbox ``[west, south, east, north]`` in degrees (longitudes -180..180, latitudes -90..90,
  west < east, south < north; boxes across the antimeridian are not supported), as a list or as
  the text ``"W,S,E,N"`` / ``"W S E N"``;
* GeoJSON (RFC 7946, WGS 84): a geometry, a Feature or a FeatureCollection (the union of its
  geometries), as a dict, as text, or as a file path / storage URI holding it.

Every form becomes one shapely geometry (:func:`parse_geojson`, :func:`load_aoi`) or one GeoJSON
geometry dict (:func:`aoi_geometry`). What is wrong is said in one line by :class:`AoiError`, a
``ValueError`` (pydantic validators turn it into a parameter error) that is also an
:class:`~candela_sdk.errors.InputError` (a service exits with code 2). :func:`split_aoi` cuts an
area into pieces processed in parallel.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from candela_sdk.errors import InputError

GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)


class AoiError(InputError, ValueError):
    """An area of interest that cannot be used; the message is one line saying why."""


@dataclass(frozen=True)
class Aoi:
    geometry: Any  # shapely geometry, WGS 84
    label: str  # how messages name it

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        w, s, e, n = self.geometry.bounds
        return (float(w), float(s), float(e), float(n))

    def to_geojson(self) -> dict[str, Any]:
        return geometry_dict(self.geometry)


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


# --- bbox ----------------------------------------------------------------------------------


def bbox_values(value: Any) -> Any:
    """The values of a bbox given as ``"W,S,E,N"`` / ``"W S E N"`` text, or as a list whose
    items may be such text (``--bbox=-0.68,44.83,-0.56,44.93``); anything else unchanged."""
    if isinstance(value, str):
        return _split(value)
    if isinstance(value, list | tuple):
        return [p for v in value for p in (_split(v) if isinstance(v, str) else [v])]
    return value


def _split(text: str) -> list[str]:
    return [p for p in re.split(r"[,\s]+", text.strip()) if p]


def parse_bbox(value: Any) -> list[float]:
    """``[west, south, east, north]`` from 4 numbers (or numeric strings) or ``"W,S,E,N"`` text,
    checked by :func:`check_bbox`."""
    parts = bbox_values(value)
    if not isinstance(parts, list) or len(parts) != 4:
        raise AoiError(f"a bbox is 4 numbers west,south,east,north, not {value!r}")
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise AoiError(f"a bbox is 4 numbers west,south,east,north, not {value!r}") from None
    return check_bbox(numbers)


def check_bbox(bbox: Sequence[float]) -> list[float]:
    """``bbox`` as a list if its four values are a valid west, south, east, north box."""
    west, south, east, north = bbox
    for name, v, limit in (
        ("west", west, 180),
        ("east", east, 180),
        ("south", south, 90),
        ("north", north, 90),
    ):
        if not -limit <= v <= limit:
            raise AoiError(f"{name} {v} is outside -{limit}..{limit}")
    if west >= east:
        raise AoiError(
            f"west {west} must be less than east {east} (order: west south east north; "
            "boxes across the antimeridian are not supported)"
        )
    if south >= north:
        raise AoiError(
            f"south {south} must be less than north {north} (order: west south east north)"
        )
    return [west, south, east, north]


def from_bbox(bbox: Sequence[float]) -> Aoi:
    from shapely.geometry import box

    west, south, east, north = check_bbox(bbox)
    return Aoi(box(west, south, east, north), f"bbox {_fmt(list(bbox))}")


# --- GeoJSON -------------------------------------------------------------------------------


def _geometries(doc: Any) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or "type" not in doc:
        raise AoiError("is not a GeoJSON object")
    kind = doc["type"]
    if kind == "FeatureCollection":
        out: list[dict[str, Any]] = []
        for f in doc.get("features") or []:
            out += _geometries(f)
        return out
    if kind == "Feature":
        geom = doc.get("geometry")
        return [geom] if geom else []
    if kind not in GEOMETRY_TYPES:
        raise AoiError(f"has unknown GeoJSON type {kind!r}")
    return [doc]


def parse_geojson(doc: Any) -> Any:
    """One shapely geometry (the union) for a GeoJSON geometry, Feature or FeatureCollection.

    Invalid polygons are repaired (``make_valid``); a legacy ``crs`` other than WGS 84, and
    coordinates outside longitude/latitude ranges, are refused. Messages start with a verb
    ("has no geometry") so that callers can name the area before them.
    """
    from shapely import union_all
    from shapely.geometry import shape
    from shapely.validation import make_valid

    crs = doc.get("crs") if isinstance(doc, dict) else None
    if isinstance(crs, dict):
        name = str((crs.get("properties") or {}).get("name", ""))
        if name and not any(x in name.upper() for x in ("CRS84", "4326")):
            raise AoiError(f"is in {name}; GeoJSON areas must be in WGS 84 longitude/latitude")
    geoms = _geometries(doc)
    if not geoms:
        raise AoiError("has no geometry")
    try:
        shapes = [shape(g) for g in geoms]
    except Exception as exc:
        raise AoiError(f"has an invalid geometry ({exc})") from None
    shapes = [s if s.is_valid else make_valid(s) for s in shapes]
    geom = union_all(shapes)
    if geom.is_empty:
        raise AoiError("has an empty geometry")
    w, s, e, n = geom.bounds
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise AoiError(
            f"has coordinates outside longitude/latitude ranges (bounds {_fmt(geom.bounds)}): "
            "is it in WGS 84?"
        )
    return geom


def load_aoi(value: str | dict[str, Any]) -> Aoi:
    """An AOI from GeoJSON text, a GeoJSON dict, or a path / storage URI of a GeoJSON file."""
    if isinstance(value, dict):
        label = "the given area"
        doc: Any = value
    else:
        text = value.strip()
        if text.startswith("{"):
            label = "the given area"
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise AoiError(f"the AOI is not valid JSON ({exc.msg})") from None
        else:
            from candela_sdk import storage

            try:
                found = storage.exists(text)
            except Exception:
                found = False
            if not found:
                raise AoiError(
                    f"AOI file not found: {text} (neither an existing file nor GeoJSON text)"
                )
            label = text.rstrip("/").rsplit("/", 1)[-1]
            try:
                raw = storage.read_text(text)
            except InputError as exc:  # a folder, not UTF-8 text, …: said by storage
                raise AoiError(f"the AOI file: {exc}") from None
            try:
                doc = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise AoiError(f"the AOI file {text} is not valid JSON ({exc.msg})") from None
    try:
        geom = parse_geojson(doc)
    except AoiError as exc:
        raise AoiError(f"the AOI {label} {exc}") from None
    return Aoi(geom, f"{label} (bounds {_fmt(geom.bounds)})")


def geometry_dict(geom: Any) -> dict[str, Any]:
    """A plain-JSON GeoJSON geometry (lists, not tuples) of a shapely geometry."""
    from shapely.geometry import mapping

    return dict(json.loads(json.dumps(mapping(geom))))


def aoi_geometry(
    aoi: str | dict[str, Any] | None = None, bbox: Sequence[float] | str | None = None
) -> dict[str, Any] | None:
    """The area as one GeoJSON geometry (``aoi`` first, else ``bbox``), or None without either.

    A plain geometry is returned as given; a Feature or FeatureCollection becomes the union of
    its geometries.
    """
    if aoi:
        doc = json.loads(aoi) if isinstance(aoi, str) and aoi.strip().startswith("{") else aoi
        if isinstance(doc, dict) and doc.get("type") in GEOMETRY_TYPES:
            parse_geojson(doc)  # checked, returned as given
            return dict(doc)
        return load_aoi(doc).to_geojson()
    if bbox is not None:
        w, s, e, n = parse_bbox(bbox)
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    return None


def split_aoi(aoi: dict[str, Any] | None, tile_size_km: float) -> list[dict[str, Any] | None]:
    """Cut a large AOI into pieces of at most ``tile_size_km`` a side (processed in parallel).

    ``aoi`` is a GeoJSON geometry, Feature or FeatureCollection (the union of its geometries).
    Pieces are the cells of a regular lon/lat grid over the AOI's bounds, clipped to the AOI; a
    cell that misses the AOI is dropped. A small AOI stays one piece (a geometry as given, the
    union otherwise); no AOI is one piece ``None``.
    """
    from shapely.geometry import box

    if aoi is None:
        return [None]
    geom = parse_geojson(aoi)
    w, s, e, n = geom.bounds
    lat = math.radians((s + n) / 2)
    km_lon = max(111.32 * math.cos(lat), 1e-6)
    nx = max(1, math.ceil((e - w) * km_lon / tile_size_km))
    ny = max(1, math.ceil((n - s) * 110.57 / tile_size_km))
    if nx == ny == 1:
        return [aoi if aoi.get("type") in GEOMETRY_TYPES else geometry_dict(geom)]
    pieces: list[dict[str, Any] | None] = []
    dx, dy = (e - w) / nx, (n - s) / ny
    for j in range(ny):
        for i in range(nx):
            cell = box(w + i * dx, s + j * dy, w + (i + 1) * dx, s + (j + 1) * dy)
            part = geom.intersection(cell)
            if not part.is_empty and part.area > 0:
                pieces.append(geometry_dict(part))
    return pieces


def to_crs(geom: Any, crs: Any) -> Any:
    """``geom`` (a shapely geometry in WGS 84) reprojected to ``crs``."""
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    return shape(transform_geom("EPSG:4326", crs, mapping(geom)))
