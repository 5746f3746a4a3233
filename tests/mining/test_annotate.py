"""The learned category in the knowledge base: a class, its member patches, SHACL-valid, one
named graph per session (replaced on re-export)."""

from __future__ import annotations

from pathlib import Path

from candela.db import mining_labels as db
from candela.mining import annotate, sessions
from tests.mining.helpers import fill_chip


def test_export_is_shacl_valid_and_queryable(catalog_dsn: str, tmp_path: Path) -> None:
    from rdflib import Graph

    from candela.settings import Settings
    from candela_rdf_etl import shacl
    from candela_sdk.kb import open_kb

    truth = fill_chip(catalog_dsn, tmp_path / "ql", window=(0, 0, 128, 128))
    example = next(p for p, t in truth.items() if t == "water")
    s = sessions.start(catalog_dsn, "alice", "water", example_patch_id=example)
    for _ in range(3):
        batch = sessions.next_batch(catalog_dsn, s["id"], "alice")["batch"]
        db.add_labels(
            catalog_dsn,
            s["id"],
            "alice",
            [(p, "yes" if truth[p] == "water" else "no") for p in batch],
        )
    session = db.get_session(catalog_dsn, s["id"])
    text, members = annotate.ntriples(catalog_dsn, session)
    retrieved = sessions.retrieved(catalog_dsn, s["id"], "alice", limit=10_000)
    assert members == len(retrieved) > 0
    g = Graph().parse(data=text, format="nt")
    shacl.check(g, "mining export")  # raises on a violation
    broken = Graph().parse(
        data=text.replace(
            "<https://w3id.org/candela/ontology#patchId>",
            "<https://w3id.org/candela/ontology#other>",
        ),
        format="nt",
    )
    try:
        shacl.check(broken, "broken")
        raise AssertionError("a patch without its id passed the shapes")
    except Exception as exc:
        assert "patchId" in str(exc)

    settings = Settings(home=tmp_path / "home")
    out = annotate.export(settings, catalog_dsn, session)
    assert out["members"] == members and out["graph"].endswith(f"alice-water-{s['id']}")
    annotate.export(settings, catalog_dsn, session)  # replaced, not doubled
    rows = open_kb(settings).select(
        "PREFIX cdl: <https://w3id.org/candela/ontology#>\n"
        "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>\n"
        f"SELECT (COUNT(?p) AS ?n) WHERE {{ GRAPH <{out['graph']}> {{"
        ' ?c a cdl:LearnedCategory ; rdfs:label "water" . ?p a ?c ; a cdl:MinedPatch } }'
    )
    assert rows[0]["n"] == members
