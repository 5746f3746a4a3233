"""Extractor: product metadata from STAC items (the catalogue's items, a run's stack items)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rdflib import Literal, URIRef
from shapely.geometry import box, shape
from shapely.validation import make_valid

from candela_rdf_etl.model import (
    CDL,
    DCTERMS,
    RDF,
    RDFS,
    TIME,
    XSD,
    Extract,
    add_geometry,
    date,
    double,
    iri,
)
from candela_sdk import storage


def product_iri(item_id: str) -> URIRef:
    return iri("product", item_id)


def item_datetime(props: dict[str, Any]) -> dt.datetime:
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        raise ValueError("no datetime nor start_datetime")
    return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def footprint_wkt(item: dict[str, Any], ex: Extract) -> str:
    geom = item.get("geometry")
    if geom:
        shp = shape(geom)
    elif item.get("bbox") and len(item["bbox"]) >= 4:
        w, s, e, n = item["bbox"][:4]
        shp = box(w, s, e, n)
    else:
        raise ValueError("no geometry nor bbox")
    if not shp.is_valid:
        shp = make_valid(shp)
        ex.repaired += 1
    if shp.is_empty:
        raise ValueError("empty geometry")
    return shp.wkt


def add_item(ex: Extract, item: dict[str, Any], uri: str) -> URIRef:
    """Map one STAC item; raises ``ValueError`` on a missing field (the caller reports the row)."""
    g = ex.graph
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise ValueError("no id")
    props = item.get("properties") or {}
    when = item_datetime(props)
    wkt = footprint_wkt(item, ex)
    p = product_iri(item_id)
    platform = str(props.get("platform") or "")
    g.add((p, RDF.type, CDL.Product))  # asserted too: SHACL runs without inference
    if platform.lower().startswith("sentinel"):
        g.add((p, RDF.type, CDL.SentinelProduct))
    g.add((p, DCTERMS.identifier, Literal(item_id)))
    g.add((p, RDFS.label, Literal(item_id)))
    g.add((p, CDL.acquisitionDate, date(when.date())))
    instant = URIRef(str(p) + "/time")
    g.add((p, TIME.hasTime, instant))
    g.add((instant, RDF.type, TIME.Instant))
    stamp = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    g.add(
        (instant, TIME.inXSDDateTimeStamp, Literal(stamp.isoformat(), datatype=XSD.dateTimeStamp))
    )
    if platform:
        g.add((p, CDL.platform, Literal(platform)))
    if props.get("processing:level"):
        g.add((p, CDL.processingLevel, Literal(str(props["processing:level"]))))
    tile = props.get("s2:mgrs_tile") or props.get("grid:code") or props.get("candela:tile")
    if tile:
        g.add((p, CDL.tile, Literal(str(tile).removeprefix("MGRS-"))))
    cloud = props.get("eo:cloud_cover")
    if isinstance(cloud, int | float) and 0 <= cloud <= 100:
        g.add((p, CDL.cloudCover, double(cloud)))
    if uri:
        g.add((p, CDL.stacItem, URIRef(storage.to_uri(uri))))
    add_geometry(g, p, wkt)
    return p


def extract(ex: Extract, inputs: list[str]) -> None:
    for uri in inputs:
        try:
            doc = json.loads(storage.read_text(uri))
        except (OSError, json.JSONDecodeError) as exc:
            ex.fail(uri, f"not a readable JSON file: {exc}")
            continue
        items = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
        for i, item in enumerate(items or []):
            ex.rows += 1
            try:
                add_item(ex, item, uri if len(items) == 1 else "")
            except (ValueError, TypeError, KeyError) as exc:
                ex.fail(f"{uri}#{i}", str(exc))
