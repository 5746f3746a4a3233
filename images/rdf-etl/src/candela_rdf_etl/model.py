"""Vocabulary and small builders shared by the extractors (rdflib graphs)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from rdflib import RDF, RDFS, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, PROV, SOSA, TIME

from candela_sdk.kb import IDS, ONTOLOGY, safe_part

CDL = Namespace(ONTOLOGY)
GEO = Namespace("http://www.opengis.net/ont/geosparql#")
QUDT = Namespace("http://qudt.org/schema/qudt/")
UNIT = Namespace("http://qudt.org/vocab/unit/")
ID = Namespace(IDS)
CRS84 = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84> "

__all__ = [
    "CDL",
    "DCAT",
    "DCTERMS",
    "GEO",
    "ID",
    "PROV",
    "QUDT",
    "RDF",
    "RDFS",
    "SOSA",
    "TIME",
    "UNIT",
    "XSD",
]


def new_graph() -> Graph:
    g = Graph()
    for prefix, ns in (
        ("cdl", CDL),
        ("geo", GEO),
        ("qudt", QUDT),
        ("unit", UNIT),
        ("id", ID),
        ("sosa", SOSA),
        ("prov", PROV),
        ("dcat", DCAT),
        ("dcterms", DCTERMS),
        ("time", TIME),
    ):
        g.bind(prefix, ns)
    return g


def iri(kind: str, *parts: str) -> URIRef:
    return ID[f"{kind}/" + "/".join(safe_part(p) for p in parts)]


def add_geometry(g: Graph, feature: URIRef, wkt: str) -> URIRef:
    """``feature geo:hasGeometry [geo:asWKT wkt]`` (WGS 84 lon/lat, the GeoSPARQL default CRS)."""
    geom = URIRef(str(feature) + "/geometry")
    g.add((feature, RDF.type, GEO.Feature))
    g.add((feature, GEO.hasGeometry, geom))
    g.add((geom, RDF.type, GEO.Geometry))
    g.add((geom, GEO.asWKT, Literal(wkt, datatype=GEO.wktLiteral)))
    return geom


def double(value: float) -> Literal:
    return Literal(float(value), datatype=XSD.double)


def date(value: dt.date) -> Literal:
    return Literal(value.isoformat(), datatype=XSD.date)


def haversine_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    r = 6371.0088
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


@dataclass
class Extract:
    """What an extractor made: the graph, plus counts and per-row failures for the report."""

    graph: Graph
    rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    repaired: int = 0
    rejected: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (row, reason)
    extra: dict[str, Any] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def fail(self, row: str, reason: str) -> None:
        self.failures.append((row, reason))
