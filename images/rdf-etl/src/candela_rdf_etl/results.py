"""Extractor: a run's published change-detection results (STAC items of ``changedetect``), the
stacks they compare (their STAC items, beside the ``.tif``), change areas vectorised from the
mask (area, mean probability) and the zone statistics."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
from rdflib import Literal, URIRef
from shapely import wkt as shapely_wkt
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.validation import make_valid

from candela_rdf_etl import products
from candela_rdf_etl.model import (
    CDL,
    DCTERMS,
    PROV,
    RDF,
    RDFS,
    XSD,
    Extract,
    add_geometry,
    date,
    double,
    iri,
)
from candela_sdk import storage

EQUAL_AREA = "EPSG:3035"  # LAEA Europe


def run_iri(workflow: str, output_key: str) -> URIRef:
    return iri("run", workflow, output_key)


def _date(props: dict[str, Any], key: str) -> dt.date:
    return dt.datetime.fromisoformat(str(props[key]).replace("Z", "+00:00")).date()


def _stack_item(tif_uri: str) -> tuple[dict[str, Any], str]:
    uri = tif_uri.rsplit(".", 1)[0] + ".json"
    return json.loads(storage.read_text(uri)), uri


def change_areas(mask_uri: str, prob_uri: str | None, min_pixels: int) -> list[dict[str, Any]]:
    """Connected groups (8-neighbours) of changed pixels as WGS 84 polygons with their area (ha,
    in EPSG:3035), pixel count and mean change probability."""
    import rasterio
    from rasterio import features
    from rasterio.warp import transform_geom
    from scipy import ndimage

    with storage.rasterio_env(), rasterio.open(storage.gdal_path(mask_uri)) as src:
        mask = src.read(1)
        transform, crs = src.transform, src.crs
    changed = mask == 1
    labels, count = ndimage.label(changed, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    pixels = ndimage.sum_labels(changed, labels, index).astype(int)
    means: np.ndarray | None = None
    if prob_uri:
        with storage.rasterio_env(), rasterio.open(storage.gdal_path(prob_uri)) as src:
            prob = src.read(1).astype("float64")
        prob = np.where(prob < 0, np.nan, prob)
        means = ndimage.mean(np.nan_to_num(prob), labels, index)
    parts: dict[int, list[BaseGeometry]] = {}
    for geom, value in features.shapes(
        labels.astype("int32"), mask=changed, transform=transform, connectivity=8
    ):
        parts.setdefault(int(value), []).append(shape(geom))
    out = []
    for label, geoms in parts.items():
        if pixels[label - 1] < min_pixels:
            continue
        native = unary_union(geoms)
        wgs84 = shape(transform_geom(crs, "EPSG:4326", native.__geo_interface__))
        metric = shape(transform_geom(crs, EQUAL_AREA, native.__geo_interface__))
        if not wgs84.is_valid:
            wgs84 = make_valid(wgs84)
        out.append(
            {
                "label": label,
                "geometry": wgs84,
                "area_ha": metric.area / 1e4,
                "pixels": int(pixels[label - 1]),
                "mean_probability": None
                if means is None
                else float(np.clip(means[label - 1], 0, 1)),
            }
        )
    return out


def extract(
    ex: Extract, inputs: list[str], workflow: str, run_id: str, output_key: str, min_pixels: int
) -> list[tuple[URIRef, BaseGeometry]]:
    """Map the run and each change result; returns the change areas (for spatial relations)."""
    g = ex.graph
    run = run_iri(workflow, output_key)
    g.add((run, RDF.type, CDL.WorkflowRun))
    g.add((run, RDF.type, PROV.Activity))
    g.add((run, CDL.workflow, Literal(workflow)))
    g.add((run, CDL.runId, Literal(run_id)))
    g.add((run, CDL.outputKey, Literal(output_key)))
    g.add((run, RDFS.label, Literal(f"{workflow} {run_id}")))
    areas: list[tuple[URIRef, BaseGeometry]] = []
    seen_products: set[str] = set()
    for uri in inputs:
        ex.rows += 1
        try:
            item = json.loads(storage.read_text(uri))
            props = item["properties"]
            params = props.get("candela:parameters") or {}
            before_item, before_uri = _stack_item(params["before"])
            after_item, after_uri = _stack_item(params["after"])
            before_date, after_date = _date(props, "start_datetime"), _date(props, "end_datetime")
            assets = {k: v["href"] for k, v in (item.get("assets") or {}).items()}
            mask_uri = assets["change_mask"]
        except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
            ex.fail(uri, f"not a change-detection result item: {type(exc).__name__}: {exc}")
            continue
        ids = []
        for stack, stack_uri in ((before_item, before_uri), (after_item, after_uri)):
            if stack["id"] not in seen_products:
                products.add_item(ex, stack, stack_uri)
                seen_products.add(stack["id"])
            ids.append(products.product_iri(stack["id"]))
            for link in stack.get("links") or []:
                if link.get("rel") == "derived_from":
                    g.add((ids[-1], PROV.wasDerivedFrom, URIRef(link["href"])))
        result = iri("result", output_key, item["id"])
        g.add((result, RDF.type, CDL.ChangeDetectionResult))
        g.add((result, RDF.type, PROV.Entity))
        g.add((result, DCTERMS.identifier, Literal(item["id"])))
        g.add((result, RDFS.label, Literal(f"{item['id']} ({before_date} → {after_date})")))
        g.add((result, PROV.wasGeneratedBy, run))
        g.add((result, CDL.model, Literal(str(props.get("candela:model") or params.get("model")))))
        g.add((result, CDL.beforeProduct, ids[0]))
        g.add((result, CDL.afterProduct, ids[1]))
        g.add((result, PROV.used, ids[0]))
        g.add((result, PROV.used, ids[1]))
        g.add((result, CDL.beforeDate, date(before_date)))
        g.add((result, CDL.afterDate, date(after_date)))
        g.add((result, CDL.stacItem, URIRef(storage.to_uri(uri))))
        for name in ("candela:threshold", "candela:changed_area_ha", "candela:changed_fraction"):
            value = props.get(name)
            if isinstance(value, int | float):
                prop = {
                    "candela:threshold": CDL.threshold,
                    "candela:changed_area_ha": CDL.changedAreaHa,
                    "candela:changed_fraction": CDL.changedFraction,
                }[name]
                g.add((result, prop, double(value)))
        for href in assets.values():
            g.add((result, CDL.asset, URIRef(href)))
        add_geometry(g, result, products.footprint_wkt(item, ex))
        ex.extra.setdefault("results", []).append((result, shape(item["geometry"])))
        for area in change_areas(mask_uri, assets.get("change_probability"), min_pixels):
            a = URIRef(f"{result}/area/{area['label']}")
            g.add((a, RDF.type, CDL.ChangeArea))
            g.add((a, CDL.changeResult, result))
            g.add((a, PROV.wasDerivedFrom, result))
            g.add((a, CDL.areaHa, double(round(area["area_ha"], 6))))
            g.add((a, CDL.pixelCount, Literal(area["pixels"], datatype=XSD.integer)))
            if area["mean_probability"] is not None:
                g.add((a, CDL.meanProbability, double(round(area["mean_probability"], 6))))
            add_geometry(g, a, shapely_wkt.dumps(area["geometry"], rounding_precision=7))
            areas.append((a, area["geometry"]))
        if "zones_geojson" in assets:
            _zones(ex, result, assets["zones_geojson"])
    return areas


def _zones(ex: Extract, result: URIRef, uri: str) -> None:
    from rasterio.warp import transform_geom

    from candela_sdk.zones import read_zones

    features, crs = read_zones(uri)
    for i, feat in enumerate(features):
        p = feat.get("properties") or {}
        zid = str(p.get("zone_id", i))
        z = URIRef(f"{result}/zone/{i}")
        ex.graph.add((z, RDF.type, CDL.Zone))
        ex.graph.add((z, CDL.zoneOf, result))
        ex.graph.add((z, CDL.zoneId, Literal(zid)))
        ex.graph.add((z, RDFS.label, Literal(str(p.get("name") or zid))))
        if isinstance(p.get("change_changed_area_ha"), int | float):
            ex.graph.add((z, CDL.changedAreaHa, double(p["change_changed_area_ha"])))
        if isinstance(p.get("change_changed_fraction"), int | float):
            ex.graph.add((z, CDL.changedFraction, double(p["change_changed_fraction"])))
        geom = (
            shape(transform_geom(crs, "EPSG:4326", feat["geometry"]))
            if feat.get("geometry")
            else None
        )
        if geom is None or geom.is_empty:
            ex.rejected += 1
            continue
        if not geom.is_valid:
            geom = make_valid(geom)
            ex.repaired += 1
        add_geometry(ex.graph, z, shapely_wkt.dumps(geom, rounding_precision=7))
