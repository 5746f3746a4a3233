"""Change areas as polygons: one vectoriser for every consumer (the change-detection service's
outputs, the knowledge-base ETL), and the writers of the formats analysts open.

:func:`change_polygons` turns a change mask (1 change, 0 no change, other values no data) into
one polygon per connected changed area (4-connected pixels, as GDAL polygonises), with its area
(ha: the sum of its pixel areas, as the change statistics count them) and, given the probability raster on the same
grid, its mean change probability. :func:`class_polygons` does the same for a class raster
(land cover): one polygon per connected area of one class, with its class code and area.
Geometries are in WGS 84 (lon/lat).

Writers: :func:`geojson_text` (RFC 7946), :func:`kml_text` (KML 2.2) and :func:`write_geopackage`
(OGC GeoPackage 1.3 through SQLite: no GDAL/OGR Python binding is needed, and the file opens in
QGIS, GDAL/OGR, GeoPandas).
"""

from __future__ import annotations

import json
import sqlite3
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from candela_sdk.errors import InputError

CHANGE = 1
FIELDS = ("id", "area_ha", "mean_probability", "pixels")


def change_polygons(
    mask_path: str | Path,
    probability_path: str | Path | None = None,
    *,
    min_pixels: int = 1,
    max_polygons: int = 100_000,
) -> list[dict[str, Any]]:
    """GeoJSON features (WGS 84) of the changed areas of ``mask_path``, largest first, with
    ``area_ha`` (sum of the pixel areas, as the change statistics count them),
    ``mean_probability`` (``None`` without ``probability_path``) and ``pixels``; areas of fewer
    than ``min_pixels`` pixels are left out. :class:`InputError` when the rasters do not share a
    grid, or when there are more than ``max_polygons`` areas (a noisy mask: raise the threshold
    or ``min_pixels``)."""
    import rasterio
    from rasterio.features import rasterize, shapes
    from rasterio.warp import transform_geom

    from candela_sdk.zones import row_pixel_areas_m2

    with rasterio.open(mask_path) as mds:
        mask = mds.read(1)
        transform, crs = mds.transform, mds.crs
    prob = None
    if probability_path is not None:
        with rasterio.open(probability_path) as pds:
            if pds.shape != mask.shape or pds.transform != transform:
                raise InputError(
                    f"{probability_path} and {mask_path} are not on the same grid: "
                    f"{pds.shape} vs {mask.shape}"
                )
            prob = pds.read(1, masked=True).filled(np.nan).astype("float64")
    changed = mask == CHANGE
    if not changed.any():
        return []
    # one polygon per 4-connected changed area (holes included), in the raster's CRS
    geoms = [g for g, _ in shapes(changed.astype("uint8"), mask=changed, transform=transform)]
    if len(geoms) > max_polygons * 4:  # before the costlier steps: clearly noise
        raise InputError(
            f"{len(geoms)} separate change areas (more than {max_polygons}): the mask is "
            "noise at this threshold; raise the threshold or the least area"
        )
    # label each pixel with its area (pixel centres inside the polygon: exactly its pixels)
    labels = rasterize(
        ((g, i) for i, g in enumerate(geoms, start=1)),
        out_shape=mask.shape,
        transform=transform,
        fill=0,
        dtype="int32",
    )
    n = len(geoms)
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)
    areas = row_pixel_areas_m2(transform, crs, 0, mask.shape[0])
    if areas is not None:
        per_pixel = np.broadcast_to(areas[:, None], mask.shape).ravel()
        area_m2 = np.bincount(flat, weights=per_pixel, minlength=n + 1)
    else:
        area_m2 = None
    means = None
    if prob is not None:
        ok = (labels > 0) & np.isfinite(prob)
        sums = np.bincount(labels[ok], weights=prob[ok], minlength=n + 1)
        valid = np.bincount(labels[ok], minlength=n + 1)
        means = np.where(valid > 0, sums / np.maximum(valid, 1), np.nan)
    kept = [i for i in range(1, n + 1) if counts[i] >= max(1, min_pixels)]
    if len(kept) > max_polygons:
        raise InputError(
            f"{len(kept)} separate change areas (more than {max_polygons}): the mask is "
            "noise at this threshold; raise the threshold or the least area"
        )
    src_crs = crs.to_string() if crs else None
    features = []
    for i in kept:
        geom = geoms[i - 1]
        g84 = transform_geom(src_crs, "EPSG:4326", geom) if src_crs else dict(geom)
        g84 = json.loads(json.dumps(g84))  # tuples -> lists
        mean = None if means is None or not np.isfinite(means[i]) else float(means[i])
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "area_ha": None if area_m2 is None else round(float(area_m2[i]) / 1e4, 4),
                    "mean_probability": None if mean is None else round(mean, 4),
                    "pixels": int(counts[i]),
                },
                "geometry": g84,
            }
        )
    features.sort(key=lambda f: (-(f["properties"]["area_ha"] or 0), -f["properties"]["pixels"]))
    for k, f in enumerate(features, start=1):
        f["id"] = k
        f["properties"] = {"id": k, **f["properties"]}
    return features


def geojson_text(features: list[dict[str, Any]], name: str = "change_polygons") -> str:
    return json.dumps({"type": "FeatureCollection", "name": name, "features": features})


def _kml_rings(geometry: dict[str, Any]) -> Iterable[list[list[list[float]]]]:
    if geometry["type"] == "Polygon":
        yield geometry["coordinates"]
    elif geometry["type"] == "MultiPolygon":
        yield from geometry["coordinates"]


def _coords(ring: list[list[float]]) -> str:
    return " ".join(f"{x:.7f},{y:.7f}" for x, y, *_ in ring)


def kml_text(features: list[dict[str, Any]], name: str = "Change polygons") -> str:
    """KML 2.2: one Placemark per area, outlined in red, its properties as ExtendedData."""
    marks = []
    for f in features:
        p = f["properties"]
        polys = "".join(
            "<Polygon><outerBoundaryIs><LinearRing><coordinates>"
            + _coords(rings[0])
            + "</coordinates></LinearRing></outerBoundaryIs>"
            + "".join(
                "<innerBoundaryIs><LinearRing><coordinates>"
                + _coords(r)
                + "</coordinates></LinearRing></innerBoundaryIs>"
                for r in rings[1:]
            )
            + "</Polygon>"
            for rings in _kml_rings(f["geometry"])
        )
        geom = polys if polys.count("<Polygon>") == 1 else f"<MultiGeometry>{polys}</MultiGeometry>"
        data = "".join(
            f'<Data name="{escape(str(k))}"><value>{escape(str(v))}</value></Data>'
            for k, v in p.items()
        )
        marks.append(
            f"<Placemark><name>change {p.get('id')}</name><styleUrl>#change</styleUrl>"
            f"<ExtendedData>{data}</ExtendedData>{geom}</Placemark>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        f"<name>{escape(name)}</name>"
        '<Style id="change"><LineStyle><color>ff0000ff</color><width>2</width></LineStyle>'
        "<PolyStyle><color>400000ff</color></PolyStyle></Style>"
        + "".join(marks)
        + "</Document></kml>\n"
    )


def _gpkg_blob(geometry: dict[str, Any]) -> bytes:
    """A GeoPackage geometry blob: ``GP`` header (version 0, little endian, envelope
    minx/maxx/miny/maxy), SRS id 4326, then the WKB."""
    from shapely.geometry import shape

    g = shape(geometry)
    minx, miny, maxx, maxy = g.bounds
    header = b"GP" + bytes([0, 0b0000_0011]) + struct.pack("<i", 4326)
    return header + struct.pack("<4d", minx, maxx, miny, maxy) + g.wkb


_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]'
)


def write_geopackage(
    path: str | Path, features: list[dict[str, Any]], table: str = "changes"
) -> None:
    """Write ``features`` (WGS 84 polygons/multipolygons with :data:`FIELDS`) as a GeoPackage
    layer ``table``; the file is built beside ``path`` and renamed into place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    bounds = [180.0, 90.0, -180.0, -90.0]
    for f in features:
        from shapely.geometry import shape

        b = shape(f["geometry"]).bounds
        bounds = [min(bounds[0], b[0]), min(bounds[1], b[1]), max(bounds[2], b[2]),
                  max(bounds[3], b[3])]  # fmt: skip
    conn = sqlite3.connect(tmp)
    try:
        c = conn.cursor()
        c.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
        c.execute("PRAGMA user_version = 10300")
        c.executescript(
            """
            CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY,
              organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
              definition TEXT NOT NULL, description TEXT);
            CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY,
              data_type TEXT NOT NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '',
              last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
              min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE,
              srs_id INTEGER REFERENCES gpkg_spatial_ref_sys(srs_id));
            CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL,
              column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
              srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
              CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name));
            """
        )
        c.executemany(
            "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
                ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84_WKT, "longitude/latitude"),
            ],
        )
        c.execute(
            f'CREATE TABLE "{table}" (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom MULTIPOLYGON, '
            "id INTEGER, area_ha DOUBLE, mean_probability DOUBLE, pixels INTEGER)"
        )
        c.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, min_x, min_y, max_x, "
            "max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, 4326)",
            (table, table, *bounds),
        )
        c.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'MULTIPOLYGON', 4326, 0, 0)",
            (table,),
        )
        from shapely.geometry import MultiPolygon, mapping, shape

        rows = []
        for f in features:
            g = shape(f["geometry"])
            multi = g if g.geom_type == "MultiPolygon" else MultiPolygon([g])
            p = f["properties"]
            rows.append(
                (_gpkg_blob(mapping(multi)), p.get("id"), p.get("area_ha"),
                 p.get("mean_probability"), p.get("pixels"))
            )  # fmt: skip
        c.executemany(
            f'INSERT INTO "{table}" (geom, id, area_ha, mean_probability, pixels) '
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.commit()
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    tmp.replace(path)


def class_polygons(
    raster_path: str | Path,
    *,
    nodata: int | None = None,
    min_pixels: int = 1,
    max_polygons: int = 100_000,
) -> list[dict[str, Any]]:
    """GeoJSON features (WGS 84) of a class raster (land cover: one integer class code per
    pixel): one polygon per 4-connected area of one class (as GDAL polygonises), with ``value``
    (the class code), ``area_ha`` (sum of its pixel areas, as :func:`change_polygons` counts
    them) and ``pixels``; pixels equal to ``nodata`` (default: the raster's) are left out.
    ``min_pixels`` is a minimum mapping unit: smaller areas are first merged into their
    largest neighbour (GDAL's sieve), so the class areas still cover the map. :class:`InputError`
    when the raster is not of integers or gives more than ``max_polygons`` areas."""
    import rasterio
    from rasterio.features import rasterize, shapes
    from rasterio.warp import transform_geom

    from candela_sdk.zones import row_pixel_areas_m2

    with rasterio.open(raster_path) as ds:
        data = ds.read(1)
        transform, crs = ds.transform, ds.crs
        nodata = ds.nodata if nodata is None else nodata
    if not np.issubdtype(data.dtype, np.integer):
        raise InputError(f"{raster_path}: a class raster holds integer codes, not {data.dtype}")
    valid = np.ones(data.shape, dtype=bool) if nodata is None else data != nodata
    if not valid.any():
        return []
    source = data.astype("int32") if data.dtype not in (np.uint8, np.int16, np.int32) else data
    if min_pixels > 1:
        from rasterio.features import sieve

        source = sieve(source, size=min_pixels, mask=valid)
    found = [(g, int(v)) for g, v in shapes(source, mask=valid, transform=transform)]
    if len(found) > max_polygons * 4:
        raise InputError(
            f"{raster_path}: {len(found)} separate class areas (more than {max_polygons})"
        )
    labels = rasterize(
        ((g, i) for i, (g, _) in enumerate(found, start=1)),
        out_shape=data.shape,
        transform=transform,
        fill=0,
        dtype="int32",
    )
    n = len(found)
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)
    areas = row_pixel_areas_m2(transform, crs, 0, data.shape[0])
    area_m2 = None
    if areas is not None:
        per_pixel = np.broadcast_to(areas[:, None], data.shape).ravel()
        area_m2 = np.bincount(flat, weights=per_pixel, minlength=n + 1)
    kept = [i for i in range(1, n + 1) if counts[i] >= max(1, min_pixels)]
    if len(kept) > max_polygons:
        raise InputError(
            f"{raster_path}: {len(kept)} separate class areas (more than {max_polygons})"
        )
    src_crs = crs.to_string() if crs else None
    features = []
    for i in kept:
        geom, value = found[i - 1]
        g84 = transform_geom(src_crs, "EPSG:4326", geom) if src_crs else dict(geom)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "value": value,
                    "area_ha": None if area_m2 is None else round(float(area_m2[i]) / 1e4, 4),
                    "pixels": int(counts[i]),
                },
                "geometry": json.loads(json.dumps(g84)),
            }
        )
    features.sort(key=lambda f: (f["properties"]["value"], -f["properties"]["pixels"]))
    for k, f in enumerate(features, start=1):
        f["id"] = k
        f["properties"] = {"id": k, **f["properties"]}
    return features
