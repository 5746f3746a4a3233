"""The knowledge base on the web: the read-only SPARQL 1.1 endpoint (rdflib's SPARQLStore and plain
HTTP as external clients) and the question page (HTML, then headless Chromium)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kb_helpers import COMMUNES, ECAD, make_change_result

CHROMIUM = "/usr/bin/chromium"
RUN_PAGE = "/candela/runs/s2_change_detection/manual__test"


def _free_port() -> int:
    from candela.embedded import free_port

    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A knowledge base with the real communes and rainfall and one (synthetic) run, served by
    the review app on a free port (every request allowed, as in the other review-app tests)."""
    import uvicorn
    from fastapi import FastAPI

    from candela import kb
    from candela.settings import Settings
    from candela_review.app import create_app

    tmp = tmp_path_factory.mktemp("kb-web")
    mp = pytest.MonkeyPatch()
    mp.setenv("CANDELA_HOME", str(tmp / "home"))
    mp.delenv("CANDELA_KB_ENDPOINT", raising=False)
    result = make_change_result(tmp)
    kb.load(kb.load_arguments("communes", [str(COMMUNES)]))
    kb.load(kb.load_arguments("weather-ecad", [str(ECAD)], start="2017-09-01", end="2017-11-30"))
    kb.load(kb.load_arguments("results", [result["run_json"]]))
    root = FastAPI()
    root.mount("/candela", create_app(Settings(), None, auth=lambda: "test-user"))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        th.join(10)
        mp.undo()


def test_rdflib_sparqlstore_queries_the_endpoint(server: str) -> None:
    from rdflib import Graph
    from rdflib.plugins.stores.sparqlstore import SPARQLStore

    g = Graph(SPARQLStore(f"{server}/candela/sparql", returnFormat="json"))
    rows = list(g.query(
        "PREFIX cdl: <https://w3id.org/candela/ontology#>\n"
        "SELECT ?code WHERE { ?c a cdl:Commune ; cdl:inseeCode ?code } ORDER BY ?code LIMIT 3"
    ))  # fmt: skip
    assert [str(r[0]) for r in rows] == ["33001", "33002", "33003"]
    count = list(
        g.query(
            "SELECT (COUNT(*) AS ?n) WHERE { ?c a <https://w3id.org/candela/ontology#Commune> }"
        )
    )
    assert int(count[0][0]) == 538
    built = g.query(
        'CONSTRUCT { ?c ?p ?o } WHERE { ?c <https://w3id.org/candela/ontology#inseeCode> "33063" ; ?p ?o }'
    )
    assert len(built.graph) >= 4


def test_candela_sdk_remote_store_reads_the_endpoint(server: str) -> None:
    from candela_sdk.kb import RemoteKnowledgeBase

    remote = RemoteKnowledgeBase(f"{server}/candela/sparql", None, retries=1)
    rows = remote.select(
        'SELECT ?n WHERE { ?c <https://w3id.org/candela/ontology#inseeCode> "33281" ; <http://www.w3.org/2000/01/rdf-schema#label> ?n }'
    )
    assert rows == [{"n": "Mérignac"}]


def test_plain_http_protocol(server: str) -> None:
    import httpx

    url = f"{server}/candela/sparql"
    q = "ASK { ?s a <https://w3id.org/candela/ontology#ChangeArea> }"
    r = httpx.get(url, params={"query": q})
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/sparql-results+json"
    )
    assert r.json() == {"head": {}, "boolean": True}
    r = httpx.post(
        url, content=q, headers={"Content-Type": "application/sparql-query", "Accept": "text/csv"}
    )
    assert r.status_code == 200 and r.text.strip().splitlines()[-1] == "true"
    r = httpx.get(url, params={"query": "SELECT * WHERE {\n  ?s ?p\n}"})
    assert r.status_code == 400 and "line 3, column" in r.json()["description"]
    for kwargs in (
        {"data": {"update": "DROP ALL"}},
        {"content": "DROP ALL", "headers": {"Content-Type": "application/sparql-update"}},
        {"data": {"query": "DROP ALL"}},
    ):
        r = httpx.post(url, **kwargs)
        assert r.status_code == 400 and "read-only" in r.json()["description"]
    assert httpx.get(url, params={"query": q}).json()["boolean"] is True  # nothing was dropped


def test_question_page_html(server: str) -> None:
    import httpx

    r = httpx.get(f"{server}/candela/questions/changed-communes", params={"min_ha": "0.5"})
    assert r.status_code == 200
    assert "Bordeaux" in r.text and "33063" in r.text and f'href="{server}{RUN_PAGE}"' in r.text
    r = httpx.get(f"{server}/candela/questions/changed-communes", params={"min_ha": "lots"})
    assert r.status_code == 400 and "must be a decimal" in r.json()["description"]
    assert httpx.get(f"{server}/candela/questions/nope").status_code == 404


def test_question_page_in_headless_chromium(server: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian packages chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("CANDELA_TEST_ARTIFACTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server}/candela/questions/changed-communes?min_ha=0.5")
            page.wait_for_function(
                "window.candelaAnswerMap && window.candelaYasgui", timeout=30_000
            )
            assert page.evaluate("window.candelaAnswerMap.count") == 1  # Bordeaux on the map
            assert page.locator("#answer-table tr.zone").count() == 1
            assert page.locator(".leaflet-overlay-pane path").count() == 1
            assert page.locator("#yasgui .CodeMirror").count() >= 1
            # the free editor queries the endpoint of the page
            page.evaluate(
                "window.candelaYasgui.getTab().setQuery('SELECT (COUNT(*) AS ?n) WHERE { ?c a <https://w3id.org/candela/ontology#Commune> }')"
            )
            page.evaluate("window.candelaYasgui.getTab().query()")
            page.wait_for_selector("#yasgui .yasr td:has-text('538')", timeout=30_000)
            page.screenshot(path=str(shots / "kb-questions.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
