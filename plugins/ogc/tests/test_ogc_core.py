"""The OGC API – Processes documents (``candela_ogc.ogc``) without a platform: job
ids, schemas, input validation, status and results, checked against the models generated from
the standard's published OpenAPI document (``ogc-api-processes-client``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ogc_api_processes_client.models import Process, StatusInfo

from candela_ogc import ogc
from candela_ogc.openapi import openapi_document

BASE = "http://localhost:8080/ogc"
DAG_ID = st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True)


@given(DAG_ID, st.text(min_size=1, max_size=80).filter(lambda s: s.strip()))
def test_job_id_is_url_safe_and_reversible(dag_id: str, run_id: str) -> None:
    job_id = ogc.encode_job_id(dag_id, run_id)
    assert all(c.isalnum() or c in "-_" for c in job_id)
    assert ogc.decode_job_id(job_id) == (dag_id, run_id)


@pytest.mark.parametrize("bad", ["", "!!", "bm90aGluZw", "czJfY2hhbmdlX2RldGVjdGlvbi8"])
def test_malformed_job_id_is_no_such_job(bad: str) -> None:
    with pytest.raises(ogc.OgcError) as exc:
        ogc.decode_job_id(bad)
    assert exc.value.status == 404 and exc.value.type == ogc.NO_SUCH_JOB


def test_service_schema_refs_are_inlined_and_oas30() -> None:
    from candela.services import catalogue

    search = next(s for s in catalogue() if s["name"] == "search")
    desc = ogc.service_process(BASE, search, full=True)
    Process.from_dict(desc)  # the standard's model accepts it
    collection = desc["inputs"]["collection"]
    assert collection["minOccurs"] == 1
    assert "sentinel-2-l1c" in collection["schema"]["enum"]
    bbox = desc["inputs"]["bbox"]["schema"]
    assert bbox["type"] == "array" and bbox["nullable"] is True and "anyOf" not in bbox
    assert "$ref" not in str(desc)


def test_validation_names_the_field_and_the_reason() -> None:
    schema = ogc.params_inputs_schema(
        {
            "model": {"value": "cva", "schema": {"enum": ["cva", "irmad"]}},
            "start": {"value": "2016-01-01", "schema": {"type": "string", "format": "date"}},
        }
    )
    assert ogc.validate_inputs(schema, {"model": "irmad"}) == {"model": "irmad"}
    for inputs, words in [
        ({"model": "magic"}, ["'model'", "magic"]),
        ({"start": "2016-13-45"}, ["'start'", "date"]),
        ({"colour": "red"}, ["unknown input", "'colour'"]),
    ]:
        with pytest.raises(ogc.OgcError) as exc:
            ogc.validate_inputs(schema, inputs)
        assert exc.value.status == 400
        assert all(w in exc.value.detail for w in words), exc.value.detail
        assert set(exc.value.body()) == {"type", "title", "status", "detail"}


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("queued", "accepted"),
        ("running", "running"),
        ("success", "successful"),
        ("failed", "failed"),
    ],
)
def test_status_follows_the_dag_run(state: str, status: str) -> None:
    run = {
        "dag_id": "run_service",
        "dag_run_id": "manual__2026-01-01T00:00:00+00:00",
        "state": state,
        "conf": {"service": "search", "arguments": {}},
        "queued_at": "2026-01-01T00:00:00Z",
        "start_date": None if state == "queued" else "2026-01-01T00:00:01Z",
        "end_date": "2026-01-01T00:00:09Z" if status in ("successful", "failed") else None,
    }
    info = ogc.status_info(BASE, run, ["success", "running", None, "skipped"])
    StatusInfo.from_dict(info)
    assert info["status"] == status
    assert info["processID"] == "search"
    assert info["progress"] == (100 if status == "successful" else 50)
    rels = {link["rel"] for link in info["links"]}
    assert ("http://www.opengis.net/def/rel/ogc/1.0/results" in rels) == (
        status in ("successful", "failed")
    )
    assert ("finished" in info) == (status in ("successful", "failed"))


def test_results_link_every_output_uri_but_not_metadata() -> None:
    summary = {
        "summary": "file:///s/run.json",
        "stacks": ["s3://b/a.tif"],
        "params": {"aoi": "https://example.org/aoi.geojson"},
        "results": [{"outputs": {"change_mask": "file:///s/m.tif"}, "changed_area_ha": 3.5}],
    }
    doc = ogc.results_document(summary)
    assert doc["result"] == {"value": summary, "mediaType": "application/json"}
    assert doc["results.0.outputs.change_mask"]["href"] == "file:///s/m.tif"
    assert doc["results.0.outputs.change_mask"]["type"].startswith("image/tiff")
    assert doc["stacks.0"]["href"] == "s3://b/a.tif"
    assert not any(k.startswith("params") for k in doc)
    assert ogc.results_document(None) == {}


def test_results_of_a_published_run_link_http_downloads() -> None:
    """A remote client cannot fetch file:// or s3://: the links of a published run's files are
    the review app's downloads (same login), the storage URI kept beside."""
    summary = {
        "summary": "file:///s/run.json",
        "stacks": ["file:///s/a.tif"],
        "results": [
            {
                "item": "file:///s/item.json",
                "item_id": "changedetect-cva-1",
                "outputs": {
                    "change_mask": "file:///s/m.tif",
                    "change_polygons_gpkg": "file:///s/p.gpkg",
                },
            },
            {"item": "file:///s/old.json", "outputs": {"change_mask": "file:///s/o.tif"}},
        ],
    }
    dl = ogc.review_downloads("https://h/ogc", "s2_change_detection", "manual__1+00:00")
    doc = ogc.results_document(summary, dl)
    run = "https://h/candela/runs/s2_change_detection/manual__1%2B00%3A00"
    assert doc["summary"]["href"] == f"{run}/run.json"
    assert doc["stacks.0"]["href"] == f"{run}/stacks/0"
    mask = doc["results.0.outputs.change_mask"]
    assert mask["href"] == f"{run}/download/changedetect-cva-1/change_mask"
    assert mask["candela:href"] == "file:///s/m.tif"
    gpkg = doc["results.0.outputs.change_polygons_gpkg"]
    assert gpkg["type"] == "application/geopackage+sqlite3"
    assert doc["results.0.item"]["href"] == f"{run}/download/changedetect-cva-1/item"
    # an older summary without item ids: the storage URI, as before
    assert doc["results.1.outputs.change_mask"]["href"] == "file:///s/o.tif"


def test_openapi_document_is_oas30_with_the_core_paths() -> None:
    doc = openapi_document(BASE)
    assert doc["openapi"].startswith("3.0.")
    for path in (
        "/",
        "/conformance",
        "/processes",
        "/processes/{processId}",
        "/processes/{processId}/execution",
        "/jobs",
        "/jobs/{jobId}",
        "/jobs/{jobId}/results",
    ):
        assert path in doc["paths"], path
    assert doc["servers"] == [{"url": BASE}]


def test_running_job_progress_by_step_never_falls_back() -> None:
    """A mapped step that expands (one instance, then four) does not pull the progress back;
    the message names what runs."""
    early = [
        {"task_id": "plan_run", "state": "success"},
        {"task_id": "search_products", "state": "success"},
        {"task_id": "preprocess", "state": "running"},
        {"task_id": "publish", "state": None},
    ]
    later = (
        early[:2]
        + [
            {"task_id": "preprocess", "state": s}
            for s in ("success", "success", "running", "queued")
        ]
        + [{"task_id": "publish", "state": None}]
    )
    p1, _ = ogc.step_progress(early)
    p2, message = ogc.step_progress(later)
    assert p1 == 50 and p2 == 62 and p2 >= p1
    assert message == "running: preprocess (2 of 4 done); 2 of 4 steps done"
    assert ogc.step_progress([]) == (0, "running")


def test_openapi_document_is_self_contained_and_lists_the_errors() -> None:
    """/ogc/api resolves offline (no remote $ref) and documents each error status with its
    content type (OGC exceptions, ``application/json``)."""
    from tests.openapi_checks import assert_self_contained, documented, operations

    doc = openapi_document(BASE)
    assert_self_contained(doc)
    for path, method, status in [
        ("/jobs", "get", 400),  # e.g. limit=null
        ("/jobs/{jobId}", "get", 404),
        ("/jobs/{jobId}/results", "get", 404),
        ("/processes/{processId}", "get", 404),
        ("/processes/{processId}/execution", "post", 400),
        ("/processes/{processId}/execution", "post", 409),
        ("/processes/{processId}/execution", "post", 503),
        ("/processes", "get", 401),
    ]:
        assert documented(doc, path, method, status) == {"application/json"}, (path, status)
    for path, _method, op in operations(doc):
        for status, response in op["responses"].items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/exception"}, (path, status)


def test_jobs_limit_null_is_a_documented_400() -> None:
    """The answer the fuzzer met undocumented: ``/jobs?limit=null`` (no Airflow needed: the
    query is refused before the handler runs)."""
    from fastapi.testclient import TestClient

    from candela_ogc.app import airflow, app

    app.dependency_overrides[airflow] = lambda: None
    try:
        r = TestClient(app).get("/jobs", params={"limit": "null"})
    finally:
        app.dependency_overrides.pop(airflow, None)
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert "400" in openapi_document(BASE)["paths"]["/jobs"]["get"]["responses"]
