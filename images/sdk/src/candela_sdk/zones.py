"""Zones: reading a zones file (GeoJSON or GeoPackage) and change statistics per zone.

A zones file holds polygons (parcels, communes, a grid) as a GeoJSON FeatureCollection, Feature
or geometry (RFC 7946 WGS 84, or a legacy ``crs`` member), or as a GeoPackage (its first feature
table, any CRS). :func:`load_zones` gives its features (GeoJSON dicts) and their CRS;
:func:`zone_statistics` counts, per zone, the changed and valid pixels and hectares of a change
mask (1 change, 0 no change, 255 nodata); :func:`zones_geojson` / :func:`zones_csv` write the
result; :func:`grid_zones` makes the default zones (1 km cells) when a run is given none.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from candela_sdk.errors import InputError

log = logging.getLogger(__name__)

#: Radius of the authalic sphere of WGS 84 (equal area), metres.
EARTH_RADIUS_M = 6_371_007.181


def row_pixel_areas_m2(transform: Any, crs: Any, row_off: int, height: int) -> np.ndarray | None:
    """Area in m² of one pixel on each of ``height`` rows from ``row_off`` (None without CRS).

    Projected CRS: ``|det(transform)|`` in the CRS's linear unit, converted to metres.
    Geographic CRS: exact cell area on the authalic sphere,
    ``R² · |Δλ| · |sin φ_top − sin φ_bottom|`` (north-up grids; rotated grids use the cell
    centre's latitude).
    """
    if crs is None:
        return None
    rows = np.arange(row_off, row_off + height, dtype=np.float64)
    if crs.is_geographic:
        a, b, c, d, e, f = list(transform)[:6]
        if b == 0 and d == 0:
            lat_top = np.radians(f + e * rows)
            lat_bot = np.radians(f + e * (rows + 1))
            return np.asarray(
                EARTH_RADIUS_M**2 * abs(math.radians(a)) * np.abs(np.sin(lat_top) - np.sin(lat_bot))
            )
        lat = np.radians(f + e * (rows + 0.5))
        det = abs(a * e - b * d)
        return np.asarray(det * (math.pi / 180 * EARTH_RADIUS_M) ** 2 * np.cos(lat))
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    det = abs(transform.a * transform.e - transform.b * transform.d) * factor**2
    return np.full(height, det)


# --- reading ------------------------------------------------------------------------------

GEOPACKAGE_MAGIC = b"SQLite format 3\x00"


def read_zones(uri: str) -> tuple[list[dict[str, Any]], str]:
    """Features and CRS of the zones file at ``uri`` (any storage URI)."""
    from candela_sdk import storage

    return load_zones(storage.read_bytes(uri), uri)


def load_zones(data: str | bytes, uri: str) -> tuple[list[dict[str, Any]], str]:
    """Features of a zones file's content (GeoJSON text or GeoPackage bytes) and their CRS."""
    if isinstance(data, bytes):
        if data.startswith(GEOPACKAGE_MAGIC):
            return _geopackage(data, uri)
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(
                f"zones file is not a UTF-8 text file (GeoJSON) nor a GeoPackage: {uri}"
            ) from None
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InputError(f"zones file is not valid JSON ({exc.msg}): {uri}") from None
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind == "FeatureCollection":
        features = list(doc.get("features") or [])
    elif kind == "Feature":
        features = [doc]
    elif kind in ("Polygon", "MultiPolygon", "GeometryCollection"):
        features = [{"type": "Feature", "properties": {}, "geometry": doc}]
    else:
        raise InputError(
            f"zones file is not a GeoJSON FeatureCollection, Feature or polygon: {uri}"
        )
    crs = "EPSG:4326"
    legacy = doc.get("crs") if isinstance(doc, dict) else None
    if isinstance(legacy, dict) and isinstance(legacy.get("properties"), dict):
        name = legacy["properties"].get("name")
        if name:
            crs = str(name)
    if not features:
        raise InputError(f"zones file has no feature: {uri}")
    return features, crs


_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _gpkg_geometry(blob: bytes | None) -> dict[str, Any] | None:
    """GeoJSON geometry of a GeoPackage geometry blob (``GP`` header, envelope, WKB)."""
    from shapely import from_wkb
    from shapely.geometry import mapping

    if not blob or blob[:2] != b"GP":
        return None
    flags = blob[3]
    envelope = _ENVELOPE_BYTES.get((flags >> 1) & 0x07, 0)
    if flags & 0x10:  # empty geometry
        return None
    geom = from_wkb(bytes(blob[8 + envelope :]))
    return dict(json.loads(json.dumps(mapping(geom))))


def _geopackage(data: bytes, uri: str) -> tuple[list[dict[str, Any]], str]:
    fd, path = tempfile.mkstemp(suffix=".gpkg")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            try:
                row = conn.execute(
                    "SELECT c.table_name, g.column_name, s.organization, "
                    "s.organization_coordsys_id FROM gpkg_contents c "
                    "JOIN gpkg_geometry_columns g ON g.table_name = c.table_name "
                    "LEFT JOIN gpkg_spatial_ref_sys s ON s.srs_id = g.srs_id "
                    "WHERE c.data_type = 'features' ORDER BY c.table_name LIMIT 1"
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                raise InputError(f"zones GeoPackage cannot be read ({exc}): {uri}") from None
            if row is None:
                raise InputError(f"zones GeoPackage has no feature table: {uri}")
            table, column, org, code = row
            crs = f"{org.upper()}:{code}" if org and code and int(code) > 0 else "EPSG:4326"
            cur = conn.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cur.description]
            features = []
            for values in cur:
                rec = dict(zip(names, values, strict=True))
                geometry = _gpkg_geometry(rec.pop(column))
                fid = rec.pop("fid", None)
                props = {k: v for k, v in rec.items() if not isinstance(v, bytes)}
                feature: dict[str, Any] = {
                    "type": "Feature",
                    "properties": props,
                    "geometry": geometry,
                }
                if fid is not None:
                    feature["id"] = fid
                features.append(feature)
    finally:
        os.unlink(path)
    if not features:
        raise InputError(f"zones file has no feature: {uri}")
    return features, crs


# --- statistics ---------------------------------------------------------------------------


def _coords(obj: Any) -> Iterator[tuple[float, float]]:
    if isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], (int, float)):
        yield float(obj[0]), float(obj[1])
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _coords(item)


def _bounds(geom: dict[str, Any]) -> tuple[float, float, float, float] | None:
    if geom.get("type") == "GeometryCollection":
        pts = [p for g in geom.get("geometries", []) for p in _coords(g.get("coordinates"))]
    else:
        pts = list(_coords(geom.get("coordinates")))
    if not pts:
        return None
    xs, ys = zip(*pts, strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def zone_id(feature: dict[str, Any], index: int) -> str:
    props = feature.get("properties") or {}
    for v in (feature.get("id"), props.get("id"), props.get("code")):
        if v is not None:
            return str(v)
    return str(index)


def _zone_blocks(
    ds: Any, geom: dict[str, Any] | None, zid: str, zones_crs: str, block_rows: int
) -> Iterator[tuple[int, int, Any, Any]]:
    """The row chunks of one zone on a raster: ``(row, rows, window, inside)`` where ``inside``
    marks the pixels whose centre lies in the zone (reprojected to the raster CRS), over the
    zone's own bounding window only; nothing for an empty zone or one outside the raster."""
    from rasterio import windows
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    if not geom:
        return
    try:
        g = transform_geom(zones_crs, ds.crs, geom) if ds.crs else geom
    except Exception as exc:
        raise InputError(f"cannot reproject zone {zid} from {zones_crs}: {exc}") from None
    bounds = _bounds(g)
    if bounds is None:
        return
    full = windows.Window(0, 0, ds.width, ds.height)  # type: ignore[no-untyped-call]
    try:
        fw = windows.from_bounds(*bounds, transform=ds.transform)
        c_lo, r_lo = math.floor(fw.col_off), math.floor(fw.row_off)
        c_hi = math.ceil(fw.col_off + fw.width) + 1
        r_hi = math.ceil(fw.row_off + fw.height) + 1
        win = windows.Window(c_lo, r_lo, c_hi - c_lo, r_hi - r_lo).intersection(full)  # type: ignore[no-untyped-call]
    except windows.WindowError:
        return
    c0, r0, w, h = int(win.col_off), int(win.row_off), int(win.width), int(win.height)
    if w <= 0 or h <= 0:
        return
    for r in range(r0, r0 + h, max(1, block_rows)):
        hh = min(block_rows, r0 + h - r)
        sub = windows.Window(c0, r, w, hh)  # type: ignore[no-untyped-call]
        inside = rasterize(
            [(g, 1)],
            out_shape=(hh, w),
            transform=windows.transform(sub, ds.transform),
            fill=0,
            dtype="uint8",
        ).astype(bool)
        yield r, hh, sub, inside


def zone_statistics(
    features: list[dict[str, Any]],
    zones_crs: str,
    mask_ds: Any,
    block_rows: int = 512,
) -> list[dict[str, Any]]:
    """Changed share per zone, counted on a change mask (1 change, 0 no change, 255 nodata).

    Each zone is reprojected to the raster CRS, rasterised (pixel centres inside the polygon)
    over its own bounding window only, in row chunks, so overlapping zones are counted
    independently and memory stays bounded.
    """
    out: list[dict[str, Any]] = []
    for i, feat in enumerate(features):
        stats: dict[str, Any] = {
            "zone_id": zone_id(feat, i),
            "valid_pixels": 0,
            "changed_pixels": 0,
            "nodata_pixels": 0,
            "valid_area_ha": 0.0 if mask_ds.crs is not None else None,
            "changed_area_ha": 0.0 if mask_ds.crs is not None else None,
            "changed_fraction": None,
        }
        out.append(stats)
        blocks = _zone_blocks(
            mask_ds, feat.get("geometry"), stats["zone_id"], zones_crs, block_rows
        )
        for r, hh, sub, inside in blocks:
            mask = mask_ds.read(1, window=sub)
            valid = inside & (mask != 255)
            changed = inside & (mask == 1)
            stats["valid_pixels"] += int(valid.sum())
            stats["changed_pixels"] += int(changed.sum())
            stats["nodata_pixels"] += int((inside & (mask == 255)).sum())
            areas = row_pixel_areas_m2(mask_ds.transform, mask_ds.crs, r, hh)
            if areas is not None:
                stats["valid_area_ha"] += float(valid.sum(axis=1) @ areas) / 1e4
                stats["changed_area_ha"] += float(changed.sum(axis=1) @ areas) / 1e4
        if stats["valid_pixels"]:
            stats["changed_fraction"] = stats["changed_pixels"] / stats["valid_pixels"]
            if stats["valid_area_ha"]:
                stats["changed_fraction"] = stats["changed_area_ha"] / stats["valid_area_ha"]
    return out


def zones_geojson(features: list[dict[str, Any]], stats: list[dict[str, Any]], crs: str) -> str:
    """The input features with their statistics added to the properties."""
    feats = []
    for f, s in zip(features, stats, strict=True):
        props = dict(f.get("properties") or {})
        props.update({f"change_{k}" if k != "zone_id" else k: v for k, v in s.items()})
        feats.append(
            {
                "type": "Feature",
                "id": s["zone_id"],
                "properties": props,
                "geometry": f.get("geometry"),
            }
        )
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": feats}
    if crs != "EPSG:4326":
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(doc)


def zones_csv(features: list[dict[str, Any]], stats: list[dict[str, Any]]) -> str:
    """One row per zone: statistics, then the zone's scalar properties."""
    stat_cols = list(stats[0].keys()) if stats else ["zone_id"]
    prop_cols: list[str] = []
    for f in features:
        for k, v in (f.get("properties") or {}).items():
            if k not in prop_cols and k not in stat_cols and not isinstance(v, (dict, list)):
                prop_cols.append(k)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(stat_cols + prop_cols)
    for f, s in zip(features, stats, strict=True):
        props = f.get("properties") or {}
        writer.writerow([_cell(s[c]) for c in stat_cols] + [_cell(props.get(c)) for c in prop_cols])
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


# --- the default zones: a grid ------------------------------------------------------------

GRID_M = 1000.0


def metric_crs(crs: Any, bounds: tuple[float, float, float, float]) -> str:
    """The raster's CRS when projected, else the UTM zone of its centre."""
    from rasterio.warp import transform_bounds

    if crs.is_projected:
        return str(crs.to_string())
    w, s, e, n = transform_bounds(crs, "EPSG:4326", *bounds)
    lon, lat = (w + e) / 2, (s + n) / 2
    zone = int((lon + 180) // 6) + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def grid_zones(
    crs: Any, bounds: tuple[float, float, float, float], cell_m: float = GRID_M
) -> tuple[list[dict[str, Any]], str]:
    """Square cells of ``cell_m`` covering ``bounds`` (in ``crs``), aligned on multiples of
    ``cell_m`` in a metric CRS, as zones: the features and their CRS. Cell ids name the lower
    left corner in kilometres (``E<x> N<y>``)."""
    from rasterio.warp import transform_bounds

    grid_crs = metric_crs(crs, bounds)
    left, bottom, right, top = transform_bounds(crs, grid_crs, *bounds)
    km = cell_m / 1000
    features = []
    y = cell_m * (bottom // cell_m)
    while y < top:
        x = cell_m * (left // cell_m)
        while x < right:
            ring = [[x, y], [x + cell_m, y], [x + cell_m, y + cell_m], [x, y + cell_m], [x, y]]
            name = f"E{int(x // cell_m)} N{int(y // cell_m)}"
            features.append(
                {
                    "type": "Feature",
                    "id": name,
                    "properties": {"name": f"{km:g} km cell {name}"},
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
            x += cell_m
        y += cell_m
    return features, grid_crs


def zone_class_areas(
    features: list[dict[str, Any]],
    zones_crs: str,
    class_ds: Any,
    classes: Sequence[int],
    nodata: int,
    block_rows: int = 512,
) -> list[dict[str, Any]]:
    """Area (ha) and pixel count of each class value per zone, on a class raster (band 1,
    ``nodata`` excluded); the class-map counterpart of :func:`zone_statistics`, with the same
    rasterisation (pixel centres inside the zone, per bounding window, in row chunks)."""
    out: list[dict[str, Any]] = []
    for i, feat in enumerate(features):
        pixels = dict.fromkeys(classes, 0)
        areas = dict.fromkeys(classes, 0.0)
        stats: dict[str, Any] = {"zone_id": zone_id(feat, i), "valid_pixels": 0}
        out.append(stats)
        blocks = _zone_blocks(
            class_ds, feat.get("geometry"), stats["zone_id"], zones_crs, block_rows
        )
        for r, hh, sub, inside in blocks:
            values = class_ds.read(1, window=sub)
            row_areas = row_pixel_areas_m2(class_ds.transform, class_ds.crs, r, hh)
            stats["valid_pixels"] += int((inside & (values != nodata)).sum())
            for c in classes:
                hit = inside & (values == c)
                pixels[c] += int(hit.sum())
                if row_areas is not None:
                    areas[c] += float(hit.sum(axis=1) @ row_areas) / 1e4
        stats["class_pixels"] = {str(c): pixels[c] for c in classes}
        stats["class_area_ha"] = (
            {str(c): round(areas[c], 4) for c in classes} if class_ds.crs is not None else None
        )
        out[-1] = stats
    return out
