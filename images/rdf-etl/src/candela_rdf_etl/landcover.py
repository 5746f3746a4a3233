"""Extractors: land cover, as ``cdl:LandCoverZone``s.

* ``landcover-run``: the land-cover maps a run's ``fuse_landcover`` steps published (STAC items
  with a ``landcover`` class raster and its ``classification:classes``), vectorised by
  :func:`candela_sdk.vector.class_polygons` (one polygon per connected area of one class, with
  its code, name and area), linked to the run (``prov:wasGeneratedBy``);
* ``corine``: CORINE Land Cover, as the Copernicus Land Monitoring Service publishes it: vector
  (GeoPackage/GeoJSON with a ``code_18`` column) or raster (GeoTIFF of CLC codes, or of the
  1–44 grid codes of the CLC raster product);
* ``rpg``: parcels of the French Registre Parcellaire Graphique (``ID_PARCEL``, ``CODE_CULTU``,
  ``CODE_GROUP``, ``SURF_PARC`` in ha), as ``cdl:Parcel``s;
* ``bigearthnet``: BigEarthNet patch footprints with their CORINE labels
  (``*_labels_metadata.json`` of each patch folder), as ``cdl:LabelledPatch``es.

The changed share of each zone in each change result already in the knowledge base (or, for a
results load, of each parcel already there) is computed here (EPSG:3035 areas) and stored as a
``cdl:LandCoverChange``, so questions need no GeoSPARQL function.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import PurePosixPath
from typing import Any

from rdflib import Literal, URIRef
from shapely import wkt as shapely_wkt
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.strtree import STRtree
from shapely.validation import make_valid

from candela_rdf_etl.model import (
    CDL,
    DCTERMS,
    PROV,
    RDF,
    RDFS,
    XSD,
    Extract,
    add_geometry,
    double,
    iri,
)
from candela_rdf_etl.results import EQUAL_AREA, run_iri
from candela_sdk import storage
from candela_sdk.errors import InputError
from candela_sdk.kb import KnowledgeBase
from candela_sdk.zones import read_zones

#: CORINE Land Cover level-3 nomenclature (the names BigEarthNet uses for its labels)
CLC: dict[str, str] = {
    "111": "Continuous urban fabric",
    "112": "Discontinuous urban fabric",
    "121": "Industrial or commercial units",
    "122": "Road and rail networks and associated land",
    "123": "Port areas",
    "124": "Airports",
    "131": "Mineral extraction sites",
    "132": "Dump sites",
    "133": "Construction sites",
    "141": "Green urban areas",
    "142": "Sport and leisure facilities",
    "211": "Non-irrigated arable land",
    "212": "Permanently irrigated land",
    "213": "Rice fields",
    "221": "Vineyards",
    "222": "Fruit trees and berry plantations",
    "223": "Olive groves",
    "231": "Pastures",
    "241": "Annual crops associated with permanent crops",
    "242": "Complex cultivation patterns",
    "243": "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "244": "Agro-forestry areas",
    "311": "Broad-leaved forest",
    "312": "Coniferous forest",
    "313": "Mixed forest",
    "321": "Natural grassland",
    "322": "Moors and heathland",
    "323": "Sclerophyllous vegetation",
    "324": "Transitional woodland/shrub",
    "331": "Beaches, dunes, sands",
    "332": "Bare rock",
    "333": "Sparsely vegetated areas",
    "334": "Burnt areas",
    "335": "Glaciers and perpetual snow",
    "411": "Inland marshes",
    "412": "Peatbogs",
    "421": "Salt marshes",
    "422": "Salines",
    "423": "Intertidal flats",
    "511": "Water courses",
    "512": "Water bodies",
    "521": "Coastal lagoons",
    "522": "Estuaries",
    "523": "Sea and ocean",
}
CLC_GRID = dict(enumerate(CLC, start=1))  # CLC raster product: grid code 1..44 -> CLC code
CLC_BY_NAME = {name.lower(): code for code, name in CLC.items()}
#: RPG crop codes of the vineyard group (CODE_GROUP 21); other codes keep their code as name
RPG_CROPS = {
    "VRC": "Vigne : raisins de cuve",
    "VRN": "Vigne : raisins de cuve non en production",
    "VRT": "Vigne : raisins de table",
    "VRG": "Vigne : raisins de cuve et de table",
}
RPG_COLUMNS = ("ID_PARCEL", "CODE_CULTU", "CODE_GROUP", "SURF_PARC")
WGS84 = ("EPSG:4326", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "CRS84")


def _metric(geom: BaseGeometry) -> BaseGeometry:
    from rasterio.warp import transform_geom

    return shape(transform_geom("EPSG:4326", EQUAL_AREA, mapping(geom)))


def _wgs84(ex: Extract, raw: Any, crs: str) -> BaseGeometry | None:
    """A polygon in WGS 84 (repaired when invalid, counted), or None (rejected, counted)."""
    from rasterio.warp import transform_geom

    geom = shape(raw)
    if crs.upper() not in WGS84:
        geom = shape(transform_geom(crs, "EPSG:4326", mapping(geom)))
    if not geom.is_valid:
        geom = make_valid(geom)
        ex.repaired += 1
    if geom.geom_type == "GeometryCollection":
        geom = unary_union([g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")])
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        ex.rejected += 1
        return None
    return geom


def _zone(
    ex: Extract,
    z: URIRef,
    scheme: str,
    code: str | None,
    names: list[str],
    geom: BaseGeometry,
    area_ha: float | None,
) -> None:
    g = ex.graph
    g.add((z, RDF.type, CDL.LandCoverZone))
    g.add((z, CDL.landCoverScheme, Literal(scheme)))
    if code is not None:
        g.add((z, CDL.landCoverClass, Literal(code)))
    for name in names:
        g.add((z, CDL.landCoverClassName, Literal(name)))
    g.add((z, RDFS.label, Literal(f"{scheme} {code or ''} {', '.join(names)}".replace("  ", " "))))
    if area_ha is not None and area_ha > 0:
        g.add((z, CDL.areaHa, double(round(area_ha, 6))))
    add_geometry(g, z, shapely_wkt.dumps(geom, rounding_precision=7))
    ex.extra.setdefault("zones", []).append((z, geom))


def _features(ex: Extract, uri: str) -> tuple[list[dict[str, Any]], str] | None:
    try:
        return read_zones(uri)
    except InputError as exc:
        ex.fail(uri, str(exc))
        return None


# --- a run's land-cover maps ----------------------------------------------------------------


def extract_run(
    ex: Extract, inputs: list[str], workflow: str, run_id: str, output_key: str, min_pixels: int
) -> None:
    from candela_sdk.vector import class_polygons

    g = ex.graph
    run = run_iri(workflow, output_key)
    g.add((run, RDF.type, CDL.WorkflowRun))
    g.add((run, RDF.type, PROV.Activity))
    g.add((run, CDL.workflow, Literal(workflow)))
    g.add((run, CDL.runId, Literal(run_id)))
    g.add((run, CDL.outputKey, Literal(output_key)))
    for uri in inputs:
        ex.rows += 1
        try:
            item = json.loads(storage.read_text(uri))
            asset = item["assets"]["landcover"]
            href = str(asset["href"])
            if href.startswith("./"):
                href = uri.rsplit("/", 1)[0] + "/" + href[2:]
            classes = {int(c["value"]): c for c in asset["classification:classes"]}
            scheme = str(item.get("properties", {}).get("candela:class_table") or "fusion")
        except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
            ex.fail(uri, f"not a land-cover item: {type(exc).__name__}: {exc}")
            continue
        with storage.rasterio_env():
            features = class_polygons(
                storage.gdal_path(href), nodata=asset.get("nodata"), min_pixels=min_pixels
            )
        unknown = sorted({f["properties"]["value"] for f in features} - set(classes))
        if unknown:
            ex.fail(uri, f"class values {unknown} are not in the item's classification:classes")
            continue
        for f in features:
            p = f["properties"]
            geom = _wgs84(ex, f["geometry"], "EPSG:4326")
            if geom is None:
                continue
            c = classes[p["value"]]
            z = iri("landcover", output_key, item["id"], str(p["id"]))
            _zone(ex, z, scheme, str(p["value"]), [str(c.get("description") or c["name"])],
                  geom, p["area_ha"])  # fmt: skip
            g.add((z, PROV.wasGeneratedBy, run))
            g.add((z, CDL.landCoverMap, URIRef(storage.to_uri(uri))))
            g.add((z, CDL.pixelCount, Literal(p["pixels"], datatype=XSD.integer)))


# --- CORINE Land Cover ------------------------------------------------------------------------


def _clc_code(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    if text.endswith(".0"):
        text = text[:-2]
    return text if text in CLC else None


def extract_corine(ex: Extract, inputs: list[str]) -> None:
    for uri in inputs:
        name = PurePosixPath(uri).name
        if name.lower().endswith((".tif", ".tiff")):
            _corine_raster(ex, uri, name)
            continue
        read = _features(ex, uri)
        if read is None:
            continue
        features, crs = read
        for i, feat in enumerate(features):
            ex.rows += 1
            row = f"{name} feature {i}"
            props = feat.get("properties") or {}
            if "code_18" not in props:
                ex.fail(row, f"no 'code_18' column (columns: {sorted(props)})")
                continue
            code = _clc_code(props["code_18"])
            if code is None:
                ex.fail(row, f"'code_18' is not a CORINE Land Cover code: {props['code_18']!r}")
                continue
            try:
                geom = _wgs84(ex, feat.get("geometry"), crs)
            except (AttributeError, ValueError, TypeError, KeyError) as exc:
                ex.fail(row, f"no readable geometry: {exc}")
                continue
            if geom is None:
                continue
            ident = str(props.get("ID") or props.get("id") or feat.get("id") or i)
            z = iri("corine", PurePosixPath(name).stem, ident)
            _zone(ex, z, "CORINE Land Cover 2018", code, [CLC[code]], geom,
                  _metric(geom).area / 1e4)  # fmt: skip


def _corine_raster(ex: Extract, uri: str, name: str) -> None:
    from candela_sdk.vector import class_polygons

    try:
        with storage.rasterio_env():
            features = class_polygons(storage.gdal_path(uri))
    except (InputError, OSError) as exc:
        ex.fail(name, f"not a CORINE class raster: {exc}")
        return
    for f in features:
        ex.rows += 1
        p = f["properties"]
        value = p["value"]
        code = CLC_GRID.get(value) if value <= 44 else _clc_code(value)
        if code is None:
            ex.fail(f"{name} value {value}", "neither a CLC code nor a CLC raster grid code (1-44)")
            continue
        geom = _wgs84(ex, f["geometry"], "EPSG:4326")
        if geom is None:
            continue
        z = iri("corine", PurePosixPath(name).stem, str(p["id"]))
        _zone(ex, z, "CORINE Land Cover 2018", code, [CLC[code]], geom, p["area_ha"])


# --- RPG parcels ----------------------------------------------------------------------------


def extract_rpg(ex: Extract, inputs: list[str]) -> None:
    for uri in inputs:
        name = PurePosixPath(uri).name
        read = _features(ex, uri)
        if read is None:
            continue
        features, crs = read
        for i, feat in enumerate(features):
            ex.rows += 1
            row = f"{name} feature {i}"
            props = feat.get("properties") or {}
            missing = [c for c in RPG_COLUMNS if props.get(c) in (None, "")]
            if missing:
                ex.fail(row, f"missing RPG column(s) {missing}")
                continue
            crop, group = str(props["CODE_CULTU"]).strip(), str(props["CODE_GROUP"]).strip()
            try:
                surface = float(props["SURF_PARC"])
            except (TypeError, ValueError):
                ex.fail(row, f"SURF_PARC is not a number: {props['SURF_PARC']!r}")
                continue
            if len(crop) != 3 or not crop.isalnum() or surface <= 0:
                ex.fail(row, f"bad CODE_CULTU {crop!r} or SURF_PARC {surface}")
                continue
            try:
                geom = _wgs84(ex, feat.get("geometry"), crs)
            except (AttributeError, ValueError, TypeError, KeyError) as exc:
                ex.fail(row, f"no readable geometry: {exc}")
                continue
            if geom is None:
                continue
            parcel_id = str(props["ID_PARCEL"]).strip()
            z = iri("rpg", parcel_id)
            _zone(ex, z, "RPG", crop, [RPG_CROPS.get(crop, f"RPG crop {crop}")], geom, surface)
            ex.graph.add((z, RDF.type, CDL.Parcel))
            ex.graph.add((z, CDL.parcelId, Literal(parcel_id)))
            ex.graph.add((z, CDL.cropCode, Literal(crop)))
            ex.graph.add((z, CDL.cropGroup, Literal(group)))


# --- BigEarthNet labels -----------------------------------------------------------------------


def _metadata_files(uri: str) -> list[str]:
    if uri.endswith("_labels_metadata.json"):
        return [uri]
    base = uri.rstrip("/")
    names = [n for n in storage.list_names(base) if n.endswith("_labels_metadata.json")]
    if not names:
        raise InputError(f"{uri}: no *_labels_metadata.json (a BigEarthNet S2 patch folder)")
    return [f"{base}/{n}" for n in sorted(names)]


def extract_bigearthnet(ex: Extract, inputs: list[str]) -> None:
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom

    files: list[str] = []
    for uri in inputs:
        try:
            files += _metadata_files(uri)
        except InputError as exc:
            ex.fail(uri, str(exc))
    for uri in files:
        ex.rows += 1
        patch = PurePosixPath(uri).name.removesuffix("_labels_metadata.json")
        try:
            meta = json.loads(storage.read_text(uri))
            labels = meta["labels"]
            c = meta["coordinates"]
            footprint = box(c["ulx"], c["lry"], c["lrx"], c["uly"])
            crs = CRS.from_wkt(meta["projection"])
            acquired = dt.datetime.fromisoformat(str(meta["acquisition_date"])).date()
        except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
            ex.fail(uri, f"not a BigEarthNet labels file: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(labels, list) or not labels:
            ex.fail(uri, "'labels' is not a non-empty list")
            continue
        unknown = [x for x in labels if str(x).lower() not in CLC_BY_NAME]
        if unknown:
            ex.fail(uri, f"labels that are not CORINE level-3 names: {unknown}")
            continue
        geom = shape(transform_geom(crs, "EPSG:4326", mapping(footprint)))
        z = iri("bigearthnet", patch)
        _zone(ex, z, "BigEarthNet (CORINE Land Cover 2018)", None, [str(x) for x in labels],
              geom, footprint.area / 1e4)  # fmt: skip
        for label in labels:
            ex.graph.add((z, CDL.landCoverClass, Literal(CLC_BY_NAME[str(label).lower()])))
        ex.graph.add((z, RDF.type, CDL.LabelledPatch))
        ex.graph.add((z, DCTERMS.identifier, Literal(patch)))
        ex.graph.add((z, DCTERMS.date, Literal(acquired.isoformat(), datatype=XSD.date)))
        if meta.get("tile_source"):
            ex.graph.add((z, DCTERMS.source, Literal(str(meta["tile_source"]))))


# --- changed share of zones -------------------------------------------------------------------

_PREFIXES = """PREFIX cdl: <https://w3id.org/candela/ontology#>
PREFIX geo: <http://www.opengis.net/ont/geosparql#>
"""


def _strip_crs(text: str) -> str:
    return text.split("> ", 1)[1] if text.startswith("<") else text


def read_change_areas(kb: KnowledgeBase | None) -> dict[URIRef, list[BaseGeometry]]:
    """The change areas already in the knowledge base, per change result."""
    if kb is None:
        return {}
    rows = kb.select(
        _PREFIXES + "SELECT ?r ?wkt WHERE { ?a a cdl:ChangeArea ; cdl:changeResult ?r ; "
        "geo:hasGeometry/geo:asWKT ?wkt }"
    )
    out: dict[URIRef, list[BaseGeometry]] = {}
    for r in rows:
        out.setdefault(URIRef(r["r"]), []).append(shapely_wkt.loads(_strip_crs(r["wkt"])))
    return out


def read_parcels(kb: KnowledgeBase | None) -> list[tuple[URIRef, BaseGeometry]]:
    if kb is None:
        return []
    rows = kb.select(
        _PREFIXES
        + "SELECT DISTINCT ?p ?wkt WHERE { ?p a cdl:Parcel ; geo:hasGeometry/geo:asWKT ?wkt }"
    )
    return [(URIRef(r["p"]), shapely_wkt.loads(_strip_crs(r["wkt"]))) for r in rows]


def add_zone_changes(
    ex: Extract,
    zones: list[tuple[URIRef, BaseGeometry]],
    areas: dict[URIRef, list[BaseGeometry]],
) -> int:
    """A ``cdl:LandCoverChange`` (changed area and share, EPSG:3035) for each zone that change
    areas of a result cover; returns how many were added."""
    if not zones or not areas:
        return 0
    added = 0
    for result, geoms in areas.items():
        tree = STRtree(geoms)
        for zone, zgeom in zones:
            hits = [geoms[int(i)] for i in tree.query(zgeom, predicate="intersects")]
            if not hits:
                continue
            inter = unary_union(hits).intersection(zgeom)
            if inter.is_empty:
                continue
            zone_m2 = _metric(zgeom).area
            changed_m2 = _metric(inter).area if inter.area > 0 else 0.0
            if zone_m2 <= 0 or changed_m2 <= 0:
                continue
            digest = hashlib.sha1(str(result).encode()).hexdigest()[:12]
            node = URIRef(f"{zone}/change/{digest}")
            ex.graph.add((node, RDF.type, CDL.LandCoverChange))
            ex.graph.add((node, CDL.changedZone, zone))
            ex.graph.add((node, CDL.inResult, result))
            ex.graph.add((node, CDL.changedAreaHa, double(round(changed_m2 / 1e4, 6))))
            ex.graph.add(
                (node, CDL.changedFraction, double(round(min(1.0, changed_m2 / zone_m2), 6)))
            )
            added += 1
    return added


#: the ``rdf-etl`` sources of this module
SOURCES = ("landcover-run", "corine", "rpg", "bigearthnet")
