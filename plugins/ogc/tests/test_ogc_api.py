"""OGC API – Processes on a real embedded platform, through a client written from the standard
(OGC 18-062r2): discovery, auth, processes, execution (async workflow, sync service), jobs,
results, and the exceptions. Responses are checked against the models generated from the
standard's published OpenAPI document (``ogc-api-processes-client``) plus the requirements that
the models do not encode (status codes, headers, link relations, exception types)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ogc_api_processes_client.models import (
    ConfClasses,
    JobList,
    LandingPage,
    Process,
    ProcessList,
    StatusInfo,
)
from ogc_api_processes_client.models import Exception as OgcException

from tests.platform_helpers import BORDEAUX, Platform

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
REL = "http://www.opengis.net/def/rel/ogc/1.0"


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    """The test session's shared platform (root conftest): the Bordeaux sample catalogued; other
    modules' runs and jobs may be there too."""
    return shared_platform


@pytest.fixture(scope="module")
def api(platform: Platform) -> Iterator[httpx.Client]:
    """An authenticated client of ``/ogc``: a JWT from ``POST /auth/token``, as for /api/v2."""
    from candela import embedded
    from candela.settings import Settings

    root = f"http://localhost:{platform.port}"
    password = embedded.admin_password(Settings(home=platform.home, port=platform.port))
    token = httpx.post(f"{root}/auth/token", json={"username": "admin", "password": password})
    assert token.status_code in (200, 201), token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    with httpx.Client(base_url=f"{root}/ogc", headers=headers, timeout=90) as client:
        # the dag-processor may still be parsing the DAG folder right after `up`
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            ids = {p["id"] for p in client.get("/processes").json().get("processes", [])}
            if "s2_change_detection" in ids:
                break
            time.sleep(2)
        yield client


def exception(r: httpx.Response, status: int, type_: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    OgcException.from_dict(body)
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    if type_:
        assert body["type"] == type_
    return body


def rels(doc: dict) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in doc["links"]}


def test_landing_page_conformance_and_api_definition(api: httpx.Client) -> None:
    landing = api.get("/").json()
    LandingPage.from_dict(landing)
    links = rels(landing)
    for rel in ("service-desc", f"{REL}/conformance", f"{REL}/processes", f"{REL}/job-list"):
        assert rel in links
    conf = api.get(links[f"{REL}/conformance"]).json()
    ConfClasses.from_dict(conf)
    for cls in ("core", "json", "oas30", "job-list", "ogc-process-description"):
        assert f"{CONF}/{cls}" in conf["conformsTo"]
    definition = api.get(links["service-desc"])
    assert definition.status_code == 200
    assert definition.json()["openapi"].startswith("3.0.")
    assert "/processes/{processId}/execution" in definition.json()["paths"]


def test_no_token_is_401_bad_token_is_refused(platform: Platform, api: httpx.Client) -> None:
    bare = httpx.Client(base_url=str(api.base_url))
    for path in ("/processes", "/processes/search", "/jobs"):
        r = bare.get(path)
        exception(r, 401)
        assert r.headers["www-authenticate"].lower().startswith("bearer")
    exception(bare.post("/processes/search/execution", json={"inputs": {}}), 401)
    r = bare.get("/processes", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code in (401, 403)
    exception(r, r.status_code)


def test_one_process_per_service_and_per_workflow(api: httpx.Client) -> None:
    from candela.services import catalogue

    listing = api.get("/processes").json()
    ProcessList.from_dict(listing)
    ids = {p["id"] for p in listing["processes"]}
    assert {s["name"] for s in catalogue()} <= ids
    assert "s2_change_detection" in ids
    assert "run_service" not in ids  # the runner of services, not a process of its own

    wf = api.get("/processes/s2_change_detection").json()
    Process.from_dict(wf)
    assert wf["jobControlOptions"] == ["async-execute"]
    assert set(BORDEAUX) <= set(wf["inputs"])
    assert wf["inputs"]["collection"]["schema"]["enum"] == ["sentinel-2-l1c", "sentinel-2-l2a"]
    assert "encoder" in json.dumps(wf["inputs"]["model"])  # named in its description
    assert rels(wf)[f"{REL}/execute"].endswith("/processes/s2_change_detection/execution")

    search = api.get("/processes/search").json()
    Process.from_dict(search)
    assert "sync-execute" in search["jobControlOptions"]
    assert search["inputs"]["collection"]["minOccurs"] == 1


def test_unknown_process_and_job_are_404(api: httpx.Client) -> None:
    exception(api.get("/processes/no_such_thing"), 404, f"{EXC}/no-such-process")
    exception(
        api.post("/processes/no_such_thing/execution", json={"inputs": {}}),
        404,
        f"{EXC}/no-such-process",
    )
    exception(api.get("/processes/run_service"), 404, f"{EXC}/no-such-process")
    exception(api.get("/jobs/not-a-job"), 404, f"{EXC}/no-such-job")
    # well formed (s2_change_detection/manual__never), but no such DAG run
    exception(
        api.get("/jobs/czJfY2hhbmdlX2RldGVjdGlvbi9tYW51YWxfX25ldmVy"), 404, f"{EXC}/no-such-job"
    )
    exception(
        api.get("/jobs/czJfY2hhbmdlX2RldGVjdGlvbi9tYW51YWxfX25ldmVy/results"),
        404,
        f"{EXC}/no-such-job",
    )


def test_bad_inputs_are_400_naming_the_field_and_start_nothing(api: httpx.Client) -> None:
    def started() -> int:  # jobs these requests could have started (other DAGs run on their own)
        jobs = api.get("/jobs").json()["jobs"]
        return sum(j["processID"] in ("s2_change_detection", "search") for j in jobs)

    before = started()
    body = exception(
        api.post(
            "/processes/s2_change_detection/execution",
            json={"inputs": {**BORDEAUX, "tile": "T30TX"}},
        ),
        400,
    )
    assert "'tile'" in body["detail"] and "T30TX" in body["detail"]
    body = exception(
        api.post("/processes/s2_change_detection/execution", json={"inputs": {"colour": 1}}),
        400,
    )
    assert "colour" in body["detail"]
    body = exception(
        api.post("/processes/search/execution", json={"inputs": {"collection": "landsat"}}),
        400,
    )
    assert "'collection'" in body["detail"]
    exception(api.post("/processes/search/execution", content=b"{not json"), 400)
    assert started() == before


def test_paused_workflow_is_refused_with_a_clear_error(
    platform: Platform, api: httpx.Client
) -> None:
    with platform.client() as c:
        c.request("PATCH", "/api/v2/dags/s2_change_detection", json={"is_paused": True})
        try:
            body = exception(
                api.post("/processes/s2_change_detection/execution", json={"inputs": BORDEAUX}),
                409,
            )
            assert "paused" in body["detail"] and "is_paused" in body["detail"]
        finally:
            c.unpause("s2_change_detection")


def test_bordeaux_workflow_async_job_to_results(api: httpx.Client) -> None:
    r = api.post("/processes/s2_change_detection/execution", json={"inputs": BORDEAUX})
    assert r.status_code == 201, r.text
    info = r.json()
    StatusInfo.from_dict(info)
    assert info["status"] == "accepted" and info["processID"] == "s2_change_detection"
    location = r.headers["location"]
    assert location.endswith(f"/jobs/{info['jobID']}")

    early = api.get(f"/jobs/{info['jobID']}/results")
    exception(early, 404, f"{EXC}/result-not-ready")

    seen = set()
    deadline = time.monotonic() + 300
    while True:
        info = api.get(location).json()
        StatusInfo.from_dict(info)
        seen.add(info["status"])
        if info["status"] in ("successful", "failed") or time.monotonic() > deadline:
            break
        assert 0 <= info["progress"] <= 100
        time.sleep(2)
    assert info["status"] == "successful", info
    assert info["progress"] == 100
    assert info["created"] <= info["started"] <= info["finished"]
    assert seen & {"accepted", "running"}

    results = api.get(rels(info)[f"{REL}/results"])
    assert results.status_code == 200, results.text
    doc = results.json()
    summary = doc["result"]["value"]
    (change,) = summary["results"]
    links = {k: v for k, v in doc.items() if k != "result"}
    for name in ("change_probability", "change_mask", "quicklook", "statistics"):
        link = links["results.0.outputs." + name]
        # an HTTP download a remote client can fetch (same login); the storage URI beside it
        assert link["candela:href"] == change["outputs"][name]
        local = Path(link["candela:href"].removeprefix("file://"))
        assert link["href"].startswith("http://")
        got = api.get(link["href"])
        assert got.status_code == 200, (link, got.text[:200])
        assert len(got.content) == local.stat().st_size > 0
    summary_link = links["summary"]
    summary_uri = summary_link.get("candela:href", summary_link["href"])
    assert json.loads(Path(summary_uri.removeprefix("file://")).read_text())["results"]

    jobs = api.get("/jobs", params={"processID": "s2_change_detection"}).json()
    JobList.from_dict(jobs)
    assert info["jobID"] in {j["jobID"] for j in jobs["jobs"]}


def test_single_service_sync_via_run_service(api: httpx.Client) -> None:
    def search_jobs() -> set[str]:  # (other tests on the shared platform may have run some)
        jobs = api.get("/jobs", params={"processID": "search"}).json()["jobs"]
        return {j["jobID"] for j in jobs}

    before = search_jobs()
    inputs = {k: BORDEAUX[k] for k in ("collection", "bbox", "start", "end", "tile")}
    r = api.post(
        "/processes/search/execution",
        json={"inputs": inputs},
        headers={"Prefer": "respond-sync, wait=60"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["preference-applied"] == "respond-sync"
    result = r.json()["result"]["value"]
    assert result["service"] == "search"
    assert sorted(p["id"] for p in result["products"]) == [
        "oscd-bordeaux-20160504",
        "oscd-bordeaux-20171026",
    ]
    job = api.get(r.headers["location"]).json()
    StatusInfo.from_dict(job)
    assert job["status"] == "successful" and job["processID"] == "search"
    assert api.get(r.headers["location"] + "/results").json()["result"]["value"] == result

    # the same service asynchronously: 201 + Location, as for workflows
    r = api.post(
        "/processes/search/execution",
        json={"inputs": inputs},
        headers={"Prefer": "respond-async"},
    )
    assert r.status_code == 201 and r.headers["preference-applied"] == "respond-async"
    assert len(search_jobs() - before) == 2
