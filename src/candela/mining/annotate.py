"""A learned category into the knowledge base: the category becomes a class
(``cdl:LearnedCategory``, an ``owl:Class`` learned in a ``cdl:MiningSession``) and the patches
the model retrieved its instances (``cdl:MinedPatch`` with their footprints as GeoSPARQL WKT, the
model's probability, whether the user confirmed them). One named graph per session
(``https://w3id.org/candela/graph/mining/<user>-<category>-<session>``), replaced on each export.

The triples are written as N-Triples here (the platform carries no rdflib); the test checks them
against the SHACL shapes of ``ontology/shapes`` with the ETL's validator."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from candela.db import mining_labels as db
from candela.mining import sessions

CDL = "https://w3id.org/candela/ontology#"
DATA = "https://w3id.org/candela/data/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
XSD = "http://www.w3.org/2001/XMLSchema#"
GEO = "http://www.opengis.net/ont/geosparql#"
PROV = "http://www.w3.org/ns/prov#"
DCT = "http://purl.org/dc/terms/"


def _lit(value: Any, datatype: str | None = None) -> str:
    text = json.dumps(str(value), ensure_ascii=False)  # a valid N-Triples string literal
    return f"{text}^^<{XSD}{datatype}>" if datatype else text


def _wkt(footprint: dict[str, Any]) -> str:
    rings = footprint["coordinates"]
    body = ", ".join("(" + ", ".join(f"{x:.7f} {y:.7f}" for x, y in ring) + ")" for ring in rings)
    return f"<http://www.opengis.net/def/crs/OGC/1.3/CRS84> POLYGON ({body})"


def graph_of(session: dict[str, Any]) -> str:
    from candela_sdk.kb import graph_iri

    return graph_iri("mining", f"{session['username']}-{session['category']}-{session['id']}")


def ntriples(dsn: str, session: dict[str, Any], limit: int = 10_000) -> tuple[str, int]:
    """The session's graph as N-Triples and the number of member patches."""
    found = sessions.retrieved(dsn, session["id"], session["username"], limit=limit)
    answers = db.current_labels(dsn, session["id"])
    its = db.iterations(dsn, session["id"])
    cards = {int(c["id"]): c for c in db.patch_cards(dsn, [p for p, _ in found])}
    key = quote(f"{session['username']}/{session['category']}/{session['id']}", safe="")
    act = f"<{DATA}mining-session/{key}>"
    cls = f"<{DATA}learned-category/{key}>"
    t = [
        f"{act} <{RDF}type> <{CDL}MiningSession> .",
        f"{act} <{CDL}user> {_lit(session['username'], 'string')} .",
        f"{act} <{CDL}iterations> {_lit(len(its), 'integer')} .",
        f"{act} <{PROV}startedAtTime> {_lit(session['created_at'].isoformat(), 'dateTime')} .",
        f"{cls} <{RDF}type> <{OWL}Class> .",
        f"{cls} <{RDF}type> <{CDL}LearnedCategory> .",
        f"{cls} <{RDFS}subClassOf> <{CDL}MinedPatch> .",
        f"{cls} <{RDFS}label> {_lit(session['category'])} .",
        f"{cls} <{CDL}learnedIn> {act} .",
    ]
    if its:
        for prop, col in (
            ("estimatedPrecision", "est_precision"),
            ("estimatedRecall", "est_recall"),
        ):
            if its[-1][col] is not None:
                t.append(f"{act} <{CDL}{prop}> {_lit(float(its[-1][col]), 'double')} .")
    n = 0
    for pid, p in found:
        card = cards.get(pid)
        if card is None:
            continue
        n += 1
        patch = f"<{DATA}mined-patch/{pid}>"
        geom = f"<{DATA}mined-patch/{pid}/geometry>"
        t += [
            f"{patch} <{RDF}type> <{CDL}MinedPatch> .",
            f"{patch} <{RDF}type> {cls} .",
            f"{patch} <{CDL}patchId> {_lit(pid, 'long')} .",
            f"{patch} <{CDL}membershipProbability> {_lit(round(float(p), 6), 'double')} .",
            f"{patch} <{CDL}confirmedByUser> {_lit(str(answers.get(pid) == 'yes').lower(), 'boolean')} .",
            f"{patch} <{DCT}source> {_lit(card['dataset'])} .",
            f"{patch} <{GEO}hasGeometry> {geom} .",
            f"{geom} <{RDF}type> <{GEO}Geometry> .",
            f"{geom} <{GEO}asWKT> {_lit(_wkt(card['footprint']), None)}^^<{GEO}wktLiteral> .",
        ]
    return "\n".join(t) + "\n", n


def export(settings: Any, dsn: str, session: dict[str, Any]) -> dict[str, Any]:
    """Replace the session's named graph in the knowledge base the settings name."""
    from candela_sdk.kb import open_kb

    text, members = ntriples(dsn, session)
    graph = graph_of(session)
    open_kb(settings).replace_graph(graph, text)
    return {"graph": graph, "members": members, "triples": text.count("\n")}
