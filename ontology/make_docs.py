"""Generate the ontology's HTML documentation with pyLODE: the four modules merged into one
document (the module headers folded into the top ontology), written to docs/ontology/index.html.

    .venv/bin/python ontology/make_docs.py [--out docs/ontology/index.html]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rdflib import OWL, RDF, Graph, URIRef

HERE = Path(__file__).resolve().parent
TOP = URIRef("https://w3id.org/candela/ontology")


def merged() -> Graph:
    g = Graph()
    for path in sorted(HERE.glob("*.ttl")):
        g.parse(path, format="turtle")
    for module in set(g.subjects(RDF.type, OWL.Ontology)) - {TOP}:
        for p, o in list(g.predicate_objects(module)):
            if p == OWL.imports and not str(o).startswith(str(TOP)):
                g.add((TOP, p, o))  # the standards each module imports
            g.remove((module, p, o))
    for o in list(g.objects(TOP, OWL.imports)):
        if str(o).startswith(str(TOP)):
            g.remove((TOP, OWL.imports, o))
    g.bind("cdl", "https://w3id.org/candela/ontology#")
    return g


def main() -> None:
    from pylode import OntPub

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=HERE.parent / "docs" / "ontology" / "index.html")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "candela.ttl"
        merged().serialize(src, format="turtle")
        html = OntPub(ontology=str(src)).make_html()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(html, encoding="utf-8")
    print(f"wrote {args.out} ({len(html)} characters)")


if __name__ == "__main__":
    main()
