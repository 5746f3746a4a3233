"""Areas of interest: a bbox, or GeoJSON (file or text) in WGS 84, as one shapely geometry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Aoi:
    geometry: Any  # shapely geometry, WGS 84
    label: str  # how messages name it

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        w, s, e, n = self.geometry.bounds
        return (float(w), float(s), float(e), float(n))


def _fmt(values: tuple[float, ...] | list[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def from_bbox(bbox: list[float] | tuple[float, ...]) -> Aoi:
    from shapely.geometry import box

    west, south, east, north = bbox
    return Aoi(box(west, south, east, north), f"bbox {_fmt(list(bbox))}")


def _geometries(doc: Any) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or "type" not in doc:
        raise ValueError("is not a GeoJSON object")
    kind = doc["type"]
    if kind == "FeatureCollection":
        out: list[dict[str, Any]] = []
        for f in doc.get("features") or []:
            out += _geometries(f)
        return out
    if kind == "Feature":
        geom = doc.get("geometry")
        return [geom] if geom else []
    return [doc]


def parse_geojson(doc: Any) -> Any:
    """One shapely geometry (the union) for a GeoJSON geometry, Feature or FeatureCollection."""
    from shapely import union_all
    from shapely.geometry import shape
    from shapely.validation import make_valid

    crs = doc.get("crs") if isinstance(doc, dict) else None
    if isinstance(crs, dict):
        name = str((crs.get("properties") or {}).get("name", ""))
        if name and not any(x in name.upper() for x in ("CRS84", "4326")):
            raise ValueError(f"is in {name}; GeoJSON areas must be in WGS 84 longitude/latitude")
    geoms = _geometries(doc)
    if not geoms:
        raise ValueError("has no geometry")
    try:
        shapes = [shape(g) for g in geoms]
    except Exception as exc:
        raise ValueError(f"has an invalid geometry ({exc})") from None
    shapes = [s if s.is_valid else make_valid(s) for s in shapes]
    geom = union_all(shapes)
    if geom.is_empty:
        raise ValueError("has an empty geometry")
    w, s, e, n = geom.bounds
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise ValueError(
            f"has coordinates outside longitude/latitude ranges (bounds {_fmt(geom.bounds)}): "
            "is it in WGS 84?"
        )
    return geom


def load_aoi(value: str) -> Aoi:
    """``value`` is a path to a GeoJSON file or GeoJSON text; ValueError says what is wrong."""
    text = value.strip()
    if text.startswith("{"):
        label = "the given area"
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the AOI is not valid GeoJSON text ({exc.msg})") from None
    else:
        path = Path(text.removeprefix("file://")).expanduser()
        if not path.is_file():
            raise ValueError(f"the AOI {text!r} is neither an existing file nor GeoJSON text")
        label = path.name
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the AOI file {path} is not GeoJSON ({exc})") from None
    try:
        geom = parse_geojson(doc)
    except ValueError as exc:
        raise ValueError(f"the AOI {label} {exc}") from None
    return Aoi(geom, f"{label} (bounds {_fmt(geom.bounds)})")
