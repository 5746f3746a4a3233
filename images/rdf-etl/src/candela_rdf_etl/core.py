"""The rdf-etl run: extract one source into a graph, check it, replace its named graph."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import PurePosixPath
from typing import Any

from candela_rdf_etl import context, landcover, products, results, weather
from candela_rdf_etl.model import CDL, Extract, new_graph
from candela_rdf_etl.params import RdfEtlParams
from candela_rdf_etl.shacl import check
from candela_sdk import storage
from candela_sdk.errors import InputError
from candela_sdk.kb import graph_iri, open_kb

log = logging.getLogger(__name__)
REPORTED_ROWS = 20


def _day(text: str | None) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"not a YYYY-MM-DD date: {text}") from None


def default_key(params: RdfEtlParams) -> str:
    if params.key:
        return params.key
    if params.source in ("results", "landcover-run"):
        return f"{params.workflow}/{params.output_key}"
    return PurePosixPath(params.inputs[0].rstrip("/")).name.rsplit(".", 1)[0]


def extract(params: RdfEtlParams, kb: Any) -> Extract:
    """The source's graph (with spatial relations to the context already in ``kb``)."""
    ex = Extract(new_graph())
    window = weather.Window(_day(params.start), _day(params.end))
    source = params.source
    if source == "products":
        products.extract(ex, params.inputs)
    elif source == "communes":
        context.extract_units(ex, params.inputs)
    elif source == "weather-ecad":
        weather.extract_ecad(ex, params.inputs, params.stations, window)
    elif source == "weather-ghcn":
        weather.extract_ghcn(ex, params.inputs, params.stations, window)
    elif source == "weather-meteofrance":
        weather.extract_meteofrance(ex, params.inputs, window)
    elif source == "landcover-run":
        assert params.workflow and params.run_id and params.output_key  # checked by the params
        landcover.extract_run(
            ex, params.inputs, params.workflow, params.run_id, params.output_key, params.min_pixels
        )
    elif source == "corine":
        landcover.extract_corine(ex, params.inputs)
    elif source == "rpg":
        landcover.extract_rpg(ex, params.inputs)
    elif source == "bigearthnet":
        landcover.extract_bigearthnet(ex, params.inputs)
    if ex.failures:
        return ex
    ctx = context.read_context(kb)
    if source == "results":
        assert params.workflow and params.run_id and params.output_key  # checked by the params
        areas = results.extract(
            ex, params.inputs, params.workflow, params.run_id, params.output_key, params.min_pixels
        )
        ex.extra["relations"] = context.add_unit_relations(ex, areas, ctx)
        for result, geom in ex.extra.get("results", []):
            context.add_nearest_station(ex, result, geom, ctx.stations)
        ex.extra["change_areas"] = len(areas)
        by_result: dict = {}
        for a, geom in areas:
            by_result.setdefault(next(ex.graph.objects(a, CDL.changeResult)), []).append(geom)
        ex.extra["zone_changes"] = landcover.add_zone_changes(
            ex, landcover.read_parcels(kb), by_result
        )
    elif source == "communes":
        for unit, geom in ex.extra.get("units", []):
            context.add_nearest_station(ex, unit, geom, ctx.stations)
    elif source.startswith("weather"):
        stations = ex.extra.get("stations", [])
        for unit, geom in ctx.units + landcover.read_parcels(kb):
            context.add_nearest_station(ex, unit, geom, stations)
    elif source in landcover.SOURCES:
        zones = ex.extra.get("zones", [])
        ex.extra["relations"] = context.add_unit_relations(ex, zones, ctx)
        ex.extra["zone_changes"] = landcover.add_zone_changes(
            ex, zones, landcover.read_change_areas(kb)
        )
        if source == "rpg":  # the nearest station of each parcel (for its weather)
            for zone, geom in zones:
                context.add_nearest_station(ex, zone, geom, ctx.stations)
    return ex


def report(params: RdfEtlParams, ex: Extract) -> str:
    lines = [f"row {row}: {why}" for row, why in ex.failures[:REPORTED_ROWS]]
    more = len(ex.failures) - len(lines)
    return (
        f"{params.source}: {len(ex.failures)} of {ex.rows} row(s) failed; the load is refused "
        f"and the knowledge base is unchanged: "
        + "; ".join(lines)
        + (f"; … and {more} more" if more > 0 else "")
    )


def run(params: RdfEtlParams) -> dict[str, Any]:
    started = time.monotonic()
    kb = open_kb()
    key = default_key(params)
    source_kind = "run" if params.source == "results" else params.source
    graph = graph_iri(source_kind, key)
    ex = extract(params, kb)
    if ex.failures:
        raise InputError(report(params, ex))
    triples = len(ex.graph)
    if triples == 0:
        raise InputError(f"{params.source}: nothing to load from {params.inputs}")
    check(ex.graph, f"{params.source} {key}")
    ntriples = ex.graph.serialize(format="nt")
    outputs: dict[str, str] = {}
    if params.output:
        outputs["graph"] = storage.write_text(params.output, ntriples)
    if params.load:
        kb.replace_graph(graph, ntriples)
        log.info("replaced %s in %s: %d triples", graph, kb.describe(), triples)
    seconds = time.monotonic() - started
    return {
        "graph": graph,
        "source": params.source,
        "loaded": params.load,
        "knowledge_base": kb.describe(),
        "triples": triples,
        "rows": ex.rows,
        "skipped": ex.skipped,
        "repaired_geometries": ex.repaired,
        "rejected_geometries": ex.rejected,
        "change_areas": ex.extra.get("change_areas"),
        "spatial_relations": ex.extra.get("relations"),
        "land_cover_zones": len(ex.extra["zones"]) if "zones" in ex.extra else None,
        "zone_changes": ex.extra.get("zone_changes"),
        "triples_per_second": round(triples / seconds, 1) if seconds > 0 else None,
        "outputs": outputs,
    }
