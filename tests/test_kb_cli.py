"""``candela kb`` on the embedded knowledge base: load real context files, ask, refuse bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMUNES = REPO / "data" / "context" / "admin" / "communes-33-gironde.geojson"
ECAD = REPO / "data" / "weather" / "ecad-bordeaux-merignac" / "RR_STAID000034.txt"


def candela(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"CANDELA_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home.parent)}
    return subprocess.run(
        [sys.executable, "-m", "candela.cli", "kb", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def test_kb_load_and_query(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = candela(
        "load", "weather-ecad", str(ECAD), "--start", "2017-10-01", "--end", "2017-10-31", home=home
    )
    assert r.returncode == 0, r.stderr
    assert "loaded" in r.stdout and "graph/weather-ecad/RR_STAID000034" in r.stdout
    r = candela("query", "--question", "rainfall", "--param", "from=2017-10-20", "--param", "to=2017-10-22",
                "--format", "json", home=home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # SPARQL 1.1 Query Results JSON
    assert doc["head"]["vars"][:3] == ["station_name", "day", "precipitation_mm"]
    values = [float(b["precipitation_mm"]["value"]) for b in doc["results"]["bindings"]]
    assert values == [0.0, 1.6, 1.6]
    r = candela(
        "query",
        "-q",
        "rainfall",
        "-p",
        "from=2017-10-21",
        "-p",
        "to=2017-10-21",
        "-f",
        "csv",
        home=home,
    )
    assert r.stdout.splitlines()[0].startswith("station_name,day,precipitation_mm")
    assert r.stdout.splitlines()[1].startswith("BORDEAUX-MERIGNAC,2017-10-21,1.6")


def test_kb_refusals(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = tmp_path / "bad.rq"
    bad.write_text("SELECT * WHERE {\n  ?s ?p\n}")
    r = candela("query", str(bad), home=home)
    assert (
        r.returncode == 2 and "SPARQL syntax error" in r.stderr and "line 3, column 2" in r.stderr
    )
    upd = tmp_path / "upd.rq"
    upd.write_text("DELETE WHERE { ?s ?p ?o }")
    r = candela("query", str(upd), home=home)
    assert r.returncode == 2 and "updates are refused" in r.stderr
    r = candela("query", "-q", "changed-communes", "-p", "min_ha=lots", home=home)
    assert r.returncode == 2 and "min_ha must be a decimal" in r.stderr
    r = candela("load", "cadastre", str(COMMUNES), home=home)
    assert r.returncode == 2 and "unknown source" in r.stderr
    r = candela("load", "weather-meteofrance", str(COMMUNES), home=home)
    assert r.returncode == 2 and "not a Météo-France daily CSV" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_rdf_arguments_and_context_jobs(tmp_path: Path) -> None:
    import pytest

    from candela.kb import BadParameter, context_jobs
    from candela.pipeline import rdf_arguments

    assert rdf_arguments([None, {"outputs": {}}], "d", "r", "k") is None
    args = rdf_arguments([{"outputs": {"item": "file:///x/item.json"}}, None], "d", "r", "k")
    assert args == {"source": "results", "inputs": ["file:///x/item.json"], "workflow": "d",
                    "run_id": "r", "output_key": "k-r"}  # fmt: skip
    # two runs with the same parameters (output key) own two graphs
    other = rdf_arguments([{"outputs": {"item": "file:///x/item.json"}}], "d", "r2", "k")
    assert other is not None and other["output_key"] != args["output_key"]
    jobs = context_jobs()
    assert [j["source"] for j in jobs] == ["communes", "weather-ecad"]
    assert all(j["inputs"][0].startswith("file://") for j in jobs)
    with pytest.raises(BadParameter, match="known 'source'"):
        context_jobs([{"source": "cadastre", "inputs": ["x"]}])


def test_kubernetes_runner_needs_an_external_knowledge_base(monkeypatch) -> None:
    from candela.pipeline import kb_unreachable
    from candela.settings import Settings

    monkeypatch.delenv("CANDELA_KB_ENDPOINT", raising=False)
    assert kb_unreachable(Settings(runner="local")) is None
    assert "CANDELA_KB_ENDPOINT" in (kb_unreachable(Settings(runner="kubernetes")) or "")
    assert kb_unreachable(Settings(runner="kubernetes", kb_endpoint="http://kb/sparql")) is None


def test_kb_load_rpg_parcels_and_refuse_a_wrong_schema(tmp_path: Path) -> None:
    fixtures = REPO / "images" / "rdf-etl" / "tests" / "fixtures"
    home = tmp_path / "home"
    r = candela(
        "load", "rpg", str(fixtures / "FIXTURE-rpg-parcelles-bordeaux-demo-not-real-data.geojson"),
        home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "from 4 row(s)" in r.stdout and "graph/rpg/" in r.stdout
    r = candela("load", "rpg", str(fixtures / "FIXTURE-rpg-wrong-schema-not-real-data.geojson"),
                home=home)  # fmt: skip
    assert r.returncode == 2 and "missing RPG column(s) ['CODE_CULTU']" in r.stderr


def test_rdf_jobs_load_change_results_and_land_cover_of_the_run() -> None:
    from candela.pipeline import kb_run_key, rdf_jobs

    change = {"outputs": {"item": "file:///r/changes/a/item.json"}}
    cover = {"outputs": {"item": "file:///r/landcover/s2a/item.json"}}
    assert rdf_jobs([None], [None], "d", "r", "k") == []  # nothing produced: nothing to load
    jobs = rdf_jobs([change], [cover, None], "d", "r", "k")
    assert [j["source"] for j in jobs] == ["results", "landcover-run"]
    assert jobs[1]["inputs"] == ["file:///r/landcover/s2a/item.json"]
    assert {j["output_key"] for j in jobs} == {kb_run_key("k", "r")}
    only_cover = rdf_jobs([], [cover], "d", "r", "k")
    assert [j["source"] for j in only_cover] == ["landcover-run"]
