"""Extractor: administrative units (GeoJSON/GeoPackage with INSEE ``code`` and ``nom``), and the
spatial relations between a new graph's features and the context already in the knowledge base."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rdflib import Literal, URIRef
from shapely import wkt as shapely_wkt
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree
from shapely.validation import make_valid

from candela_rdf_etl.model import (
    CDL,
    GEO,
    RDF,
    RDFS,
    Extract,
    add_geometry,
    double,
    haversine_km,
    iri,
)
from candela_sdk.kb import KnowledgeBase
from candela_sdk.zones import read_zones

CODE = re.compile(r"^([0-9]{2}|2[AB])([0-9]{3})?$")
KINDS = {5: CDL.Commune, 2: CDL.Department}


def unit_iri(code: str) -> URIRef:
    return iri("insee", code)


def extract_units(ex: Extract, inputs: list[str]) -> None:
    for uri in inputs:
        features, crs = read_zones(uri)
        if crs.upper() not in ("EPSG:4326", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "CRS84"):
            ex.fail(uri, f"CRS {crs}: administrative units must be in WGS 84 lon/lat")
            continue
        for i, feat in enumerate(features):
            ex.rows += 1
            row = f"{uri.rsplit('/', 1)[-1]} feature {i}"
            props = feat.get("properties") or {}
            code, name = props.get("code"), props.get("nom")
            if not isinstance(code, str) or not CODE.match(code):
                ex.fail(row, f"'code' is not an INSEE code: {code!r}")
                continue
            if not isinstance(name, str) or not name.strip():
                ex.fail(row, f"'nom' is missing or empty: {name!r}")
                continue
            try:
                geom = shape(feat.get("geometry"))
            except (AttributeError, ValueError, TypeError, KeyError) as exc:
                ex.fail(row, f"no readable geometry: {exc}")
                continue
            if not geom.is_valid:
                geom = make_valid(geom)
                ex.repaired += 1
            if geom.is_empty or geom.geom_type not in (
                "Polygon",
                "MultiPolygon",
                "GeometryCollection",
            ):
                ex.rejected += 1
                continue
            unit = unit_iri(code)
            ex.graph.add((unit, RDF.type, KINDS.get(len(code), CDL.AdministrativeUnit)))
            ex.graph.add((unit, RDF.type, CDL.AdministrativeUnit))
            ex.graph.add((unit, CDL.inseeCode, Literal(code)))
            ex.graph.add((unit, RDFS.label, Literal(name)))
            add_geometry(ex.graph, unit, shapely_wkt.dumps(geom, rounding_precision=6))
            ex.extra.setdefault("units", []).append((unit, geom))


# --- context already in the knowledge base ------------------------------------------------


@dataclass
class Context:
    units: list[tuple[URIRef, BaseGeometry]]
    stations: list[tuple[URIRef, float, float]]

    def unit_tree(self) -> STRtree:
        return STRtree([g for _, g in self.units])


def _strip_crs(text: str) -> str:
    return re.sub(r"^\s*<[^>]*>\s*", "", text)


def read_context(kb: KnowledgeBase | None) -> Context:
    if kb is None:
        return Context([], [])
    rows = kb.select(
        """PREFIX cdl: <https://w3id.org/candela/ontology#>
PREFIX geo: <http://www.opengis.net/ont/geosparql#>
SELECT DISTINCT ?f ?wkt ?station WHERE {
  { ?f a cdl:Commune } UNION { ?f a cdl:WeatherStation BIND(true AS ?station) }
  ?f geo:hasGeometry/geo:asWKT ?wkt }"""
    )
    units, stations = [], []
    for r in rows:
        geom = shapely_wkt.loads(_strip_crs(r["wkt"]))
        if r.get("station"):
            c = geom.centroid
            stations.append((URIRef(r["f"]), c.x, c.y))
        else:
            units.append((URIRef(r["f"]), geom))
    return Context(units, stations)


def add_nearest_station(
    ex: Extract, feature: URIRef, geom: BaseGeometry, stations: list[tuple[URIRef, float, float]]
) -> None:
    if not stations:
        return
    c = geom.centroid if geom.geom_type != "Point" else geom
    best = min(stations, key=lambda s: haversine_km(c.x, c.y, s[1], s[2]))
    ex.graph.add((feature, CDL.nearestStation, best[0]))
    ex.graph.add(
        (feature, CDL.stationDistanceKm, double(round(haversine_km(c.x, c.y, best[1], best[2]), 3)))
    )


def add_unit_relations(
    ex: Extract, features: list[tuple[URIRef, BaseGeometry]], ctx: Context
) -> int:
    """``geo:sfIntersects`` / ``geo:sfWithin`` between ``features`` and the communes; returns
    how many relations were added."""
    if not ctx.units or not features:
        return 0
    tree = ctx.unit_tree()
    added = 0
    for feature, geom in features:
        for idx in tree.query(geom, predicate="intersects"):
            unit, ugeom = ctx.units[int(idx)]
            ex.graph.add((feature, GEO.sfIntersects, unit))
            if ugeom.contains(geom):
                ex.graph.add((feature, GEO.sfWithin, unit))
            added += 1
    return added
