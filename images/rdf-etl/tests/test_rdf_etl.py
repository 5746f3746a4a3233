"""The RDF ETL: each extractor on real data or format fixtures, SHACL, idempotent graphs, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import Literal, URIRef

from candela_rdf_etl.core import extract, run
from candela_rdf_etl.model import Extract, new_graph
from candela_rdf_etl.params import RdfEtlParams
from candela_rdf_etl.service import SERVICE
from candela_rdf_etl.shacl import check
from candela_sdk.contract import main
from candela_sdk.errors import InputError
from candela_sdk.kb import (
    EmbeddedKnowledgeBase,
    KnowledgeBaseError,
    QuerySyntaxError,
    RemoteKnowledgeBase,
    UpdateRefused,
    is_update,
    open_kb,
)

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
COMMUNES = REPO / "data" / "context" / "admin" / "communes-33-gironde.geojson"
ECAD = REPO / "data" / "weather" / "ecad-bordeaux-merignac" / "RR_STAID000034.txt"
CDL = "PREFIX cdl: <https://w3id.org/candela/ontology#>\n"
SOSA = "PREFIX sosa: <http://www.w3.org/ns/sosa/>\n"


def _count(kb, where: str) -> int:
    rows = kb.select(CDL + SOSA + f"SELECT (COUNT(*) AS ?n) WHERE {{ {where} }}")
    return int(rows[0]["n"])


def _triples(kb) -> int:
    return _count(kb, "?s ?p ?o")


def test_communes_real_file_loads_and_passes_shacl(home):
    result = run(RdfEtlParams(source="communes", inputs=[str(COMMUNES)]))
    kb = open_kb()
    assert _count(kb, "?c a cdl:Commune") == 538
    assert result["rows"] == 538 and result["triples"] == _triples(kb)
    rows = kb.select(
        CDL
        + 'SELECT ?n WHERE { ?c cdl:inseeCode "33281" ; <http://www.w3.org/2000/01/rdf-schema#label> ?n }'
    )
    assert rows == [{"n": "Mérignac"}]


def test_ecad_real_series_and_rerun_replaces_the_graph(home):
    args = {
        "source": "weather-ecad",
        "inputs": [str(ECAD)],
        "start": "2017-10-01",
        "end": "2017-10-31",
    }
    first = run(RdfEtlParams(**args))
    kb = open_kb()
    assert _count(kb, "?o a cdl:WeatherObservation") == 31
    total = _triples(kb)
    again = run(RdfEtlParams(**args))
    assert again["graph"] == first["graph"] and _triples(kb) == total  # replaced, not added
    rain = kb.select(
        CDL
        + SOSA
        + 'SELECT ?v WHERE { ?o cdl:observationDate "2017-10-21"^^<http://www.w3.org/2001/XMLSchema#date> ; sosa:hasSimpleResult ?v }'
    )
    assert rain == [{"v": 1.6}]  # 16 tenths of mm in the ECA&D file
    run(RdfEtlParams(**{**args, "end": "2017-10-10"}))
    assert _count(kb, "?o a cdl:WeatherObservation") == 10


def test_ghcn_fixture_skips_missing_and_flagged_values(home):
    result = run(RdfEtlParams(
        source="weather-ghcn", inputs=[str(FIXTURES / "FIXTURE-ghcnd-FR000007510-not-real-data.csv")],
        stations=str(FIXTURES / "FIXTURE-ghcnd-stations-not-real-data.txt"),
    ))  # fmt: skip
    assert result["skipped"] == {
        "missing": 1,
        "failed NOAA quality check (Q-FLAG)": 1,
        "element SNWD not mapped": 1,
    }
    kb = open_kb()
    rows = kb.select(CDL + SOSA + "SELECT ?v WHERE { ?o sosa:observedProperty cdl:DailyMinimumTemperature ; "
                     'cdl:observationDate "2017-04-27"^^<http://www.w3.org/2001/XMLSchema#date> ; sosa:hasSimpleResult ?v }')  # fmt: skip
    assert rows == [{"v": -2.5}]


def test_meteofrance_fixture_reads_values_and_skips_doubtful(home):
    result = run(RdfEtlParams(
        source="weather-meteofrance", inputs=[str(FIXTURES / "FIXTURE-Q_33_meteofrance-RR-T-Vent-not-real-data.csv")]
    ))  # fmt: skip
    assert result["skipped"] == {"doubtful (quality code 2)": 1, "missing": 1}
    kb = open_kb()
    assert _count(kb, "?s a cdl:WeatherStation") == 2
    assert _count(kb, "?o sosa:observedProperty cdl:DailyMinimumTemperature") == 2


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        (
            "weather-meteofrance",
            "FIXTURE-Q_33_meteofrance-bad-rows-not-real-data.csv",
            r"2 of 3 row\(s\) failed",
        ),
        ("weather-meteofrance", "FIXTURE-wrong-schema-not-real-data.csv", "missing columns"),
        ("weather-ecad", "FIXTURE-wrong-schema-not-real-data.csv", "not an ECA&D daily series"),
    ],
)
def test_bad_source_is_refused_whole_and_kb_unchanged(home, source, name, expected):
    run(RdfEtlParams(source="communes", inputs=[str(COMMUNES)]))
    kb = open_kb()
    before = _triples(kb)
    with pytest.raises(InputError, match=expected) as err:
        run(RdfEtlParams(source=source, inputs=[str(FIXTURES / name)], key="RR_STAID000034"))
    if "row(s) failed" in expected:
        assert "line 4" in str(err.value) and "line 5" in str(err.value)  # which rows, and why
    assert _triples(kb) == before


def test_bad_commune_rows_are_reported(home, tmp_path):
    doc = json.loads(COMMUNES.read_text())
    doc["features"] = doc["features"][:3]
    doc["features"][1]["properties"]["code"] = "Bordeaux"
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[-0.5, 44.8], [-0.4, 44.9], [-0.4, 44.8], [-0.5, 44.9], [-0.5, 44.8]]],
    }
    doc["features"][2]["geometry"] = bowtie
    bad = tmp_path / "communes.geojson"
    bad.write_text(json.dumps(doc))
    with pytest.raises(
        InputError, match=r"1 of 3 row\(s\) failed.*feature 1: 'code' is not an INSEE code"
    ):
        run(RdfEtlParams(source="communes", inputs=[str(bad)]))
    del doc["features"][1]
    bad.write_text(json.dumps(doc))
    assert run(RdfEtlParams(source="communes", inputs=[str(bad)]))["repaired_geometries"] == 1


def test_results_vectorise_the_mask_and_relate_to_context(home, change_result):
    run(RdfEtlParams(source="communes", inputs=[str(COMMUNES)]))
    run(
        RdfEtlParams(
            source="weather-ecad", inputs=[str(ECAD)], start="2017-10-01", end="2017-10-31"
        )
    )
    result = run(RdfEtlParams(
        source="results", inputs=[change_result["item"]], workflow="s2_change_detection",
        run_id="manual__test", output_key="k123",
    ))  # fmt: skip
    assert result["change_areas"] == 2
    kb = open_kb()
    rows = kb.select(
        CDL + "PREFIX geo: <http://www.opengis.net/ont/geosparql#>\n"
        "SELECT ?ha ?p ?n ?code WHERE { ?a a cdl:ChangeArea ; cdl:areaHa ?ha ; cdl:meanProbability ?p ; "
        "cdl:pixelCount ?n ; geo:sfWithin/cdl:inseeCode ?code } ORDER BY DESC(?ha)"
    )  # fmt: skip
    assert [r["n"] for r in rows] == [100, 9]
    assert rows[0]["ha"] == pytest.approx(1.0, rel=0.01) and rows[1]["ha"] == pytest.approx(
        0.09, rel=0.01
    )
    assert rows[0]["p"] == pytest.approx(0.8) and rows[1]["p"] == pytest.approx(0.6)
    assert {r["code"] for r in rows} == {"33063"}  # Bordeaux
    near = kb.select(
        CDL + "SELECT ?km WHERE { ?r a cdl:ChangeDetectionResult ; cdl:stationDistanceKm ?km }"
    )
    assert 5 < near[0]["km"] < 12  # central Bordeaux to Mérignac airport


def test_shacl_rejects_a_change_area_without_area():
    g = new_graph()
    ex = Extract(g)
    a = URIRef("https://w3id.org/candela/id/result/x/area/1")
    from candela_rdf_etl.model import CDL, RDF, add_geometry

    g.add((a, RDF.type, CDL.ChangeArea))
    g.add((a, CDL.pixelCount, Literal(3)))
    add_geometry(g, a, "POLYGON ((0 0, 1 0, 1 1, 0 0))")
    assert len(ex.graph) > 0
    with pytest.raises(InputError, match="SHACL"):
        check(g, "test")


def test_service_cli_contract(home, capsys):
    assert "rdf-etl" == SERVICE.name
    code = main(SERVICE, ["--source", "results", "--inputs", "x.json"])
    assert code == 2
    assert "needs --workflow" in capsys.readouterr().err


def test_query_guards(home):
    kb = open_kb()
    assert isinstance(kb, EmbeddedKnowledgeBase)
    assert is_update("PREFIX a: <urn:x>\n# c\nDELETE WHERE { ?s ?p ?o }")
    assert not is_update('SELECT * WHERE { ?s ?p "DELETE" }')
    with pytest.raises(UpdateRefused):
        kb.query("INSERT DATA { <urn:a> <urn:b> <urn:c> }")
    with pytest.raises(QuerySyntaxError, match=r"line 1, column \d+"):
        kb.query("SELECT * WHERE { ?s ?p }")


def test_unreachable_endpoint_gives_one_line_after_bounded_retries():
    kb = RemoteKnowledgeBase("http://127.0.0.1:9/sparql", None, retries=2)
    with pytest.raises(KnowledgeBaseError, match="unreachable after 2 attempt") as err:
        kb.query("ASK {}")
    assert "\n" not in str(err.value)


def test_extract_without_kb_has_no_relations(change_result):
    params = RdfEtlParams(
        source="results", inputs=[change_result["item"]], workflow="w", run_id="r", output_key="k"
    )
    ex = extract(params, None)
    assert ex.extra["relations"] == 0 and ex.extra["change_areas"] == 2


def test_changed_communes_question_on_a_loaded_run(home, change_result):
    """The ready-made question (platform side) over the three sources the ETL loaded."""
    from candela import kb as questions

    run(RdfEtlParams(source="communes", inputs=[str(COMMUNES)]))
    run(RdfEtlParams(source="weather-ecad", inputs=[str(ECAD)], start="2017-10-01"))
    run(RdfEtlParams(**questions.load_arguments("results", [change_result["run_json"]])))
    q = questions.question("changed-communes")
    names, rows = questions.rows(questions.ask(questions.bind(q, {"min_ha": "0.5"})))
    assert [(r["name"], r["code"]) for r in rows] == [("Bordeaux", "33063")]
    assert float(rows[0]["changed_ha"]) == pytest.approx(1.09, rel=0.02)
    # ECA&D 2017-10-19 … 2017-10-25: 0.2 + 0 + 1.6 + 1.6 + 0 + 0.2 + 0 mm
    assert float(rows[0]["rain_mm"]) == pytest.approx(3.6) and rows[0]["rain_days"] == "7"
    assert rows[0]["run"].endswith("/run/s2_change_detection/k123")
    _, none = questions.rows(questions.ask(questions.bind(q, {"min_ha": "2"})))
    assert none == []
    with pytest.raises(questions.BadParameter, match="must be a date"):
        questions.bind(q, {"to": "yesterday"})
    with pytest.raises(questions.BadParameter, match="no parameter"):
        questions.bind(q, {"nope": "1"})


def test_a_failed_run_leaves_no_graph(home, change_result):
    """discard_outputs (failure callback) drops the run's graph with its files."""
    from candela.pipeline import discard_outputs, kb_run_key, output_prefix
    from candela.settings import Settings

    # an earlier run with the same parameters (output key) loaded its own graph
    for run_id in ("manual__earlier", "manual__test"):
        run(RdfEtlParams(source="results", inputs=[change_result["item"]],
                         workflow="s2_change_detection", run_id=run_id,
                         output_key=kb_run_key("k123", run_id)))  # fmt: skip
    kb = open_kb()
    assert _count(kb, "?r a cdl:ChangeDetectionResult") == 2
    settings = Settings()
    prefix = output_prefix(settings, "s2_change_detection", "k123", "manual__test")
    from candela_sdk import storage

    storage.write_text(f"{prefix}/stacks/partial.json", "{}")
    assert discard_outputs(settings, "s2_change_detection", "manual__test", "k123")
    # the failed run's graph is gone; the earlier run's is untouched
    assert _count(kb, "?r a cdl:ChangeDetectionResult") == 1


def test_products_from_stac_items(home, change_result, tmp_path):
    stacks = Path(change_result["run_json"]).parent / "stacks"
    result = run(
        RdfEtlParams(
            source="products",
            inputs=[str(stacks / "s2-before.json"), str(stacks / "s2-after.json")],
        )
    )
    kb = open_kb()
    rows = kb.select(
        CDL
        + "SELECT ?d ?c WHERE { ?p a cdl:SentinelProduct ; cdl:acquisitionDate ?d ; cdl:cloudCover ?c } ORDER BY ?d"
    )
    assert rows == [{"d": "2016-05-04", "c": 3.5}, {"d": "2017-10-26", "c": 3.5}]
    assert result["graph"].endswith("/graph/products/s2-before")
    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps({"type": "Feature", "id": "x", "properties": {}, "geometry": None})
    )
    with pytest.raises(InputError, match="no datetime"):
        run(RdfEtlParams(source="products", inputs=[str(broken)]))
