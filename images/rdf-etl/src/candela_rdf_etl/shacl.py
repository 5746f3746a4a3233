"""SHACL validation of every graph before it is loaded (pyshacl, shapes in ontology/shapes/)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from rdflib import Graph

from candela_sdk.errors import InputError

ONTOLOGY_DIR = Path(__file__).resolve().parent / "ontology"


@lru_cache(maxsize=1)
def shapes() -> Graph:
    g = Graph()
    for path in sorted((ONTOLOGY_DIR / "shapes").glob("*.ttl")):
        g.parse(path, format="turtle")
    return g


def check(graph: Graph, what: str) -> None:
    """Raise :class:`InputError` with the first violations when ``graph`` fails the shapes."""
    from pyshacl import validate

    conforms, _report, text = validate(
        graph, shacl_graph=shapes(), inference="none", advanced=False, allow_warnings=True
    )
    if not conforms:
        lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
        messages = [ln for ln in lines if ln.startswith(("Focus Node", "Message", "Result Path"))]
        raise InputError(
            f"{what}: the graph does not pass the SHACL shapes; nothing loaded: "
            + "; ".join(messages[:9])
        )
