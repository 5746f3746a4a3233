"""The OGC API – Processes app, mounted at ``/ogc`` on Airflow's API server by the plugin.

Landing page, conformance and the OpenAPI document are public (like Airflow's own
``/openapi.json``); processes and jobs need an Airflow JWT (``POST /auth/token``), checked with
Airflow's own ``get_user`` dependency, and every Airflow call is made with the caller's token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from candela import web_errors
from candela.airflow_api import (
    AirflowApiError,
    AsyncAirflowClient,
    api_server_url,
    caller_token,
)
from candela.web_errors import WebError
from candela_ogc import ogc
from candela_ogc.ogc import OgcError
from candela_ogc.settings import OgcSettings

log = logging.getLogger(__name__)

SYNC_WAIT_MAX = OgcSettings().sync_wait
TERMINAL = {"success", "failed"}

app = FastAPI(
    title="Candela – OGC API – Processes",
    description="Candela's processing services and workflows as OGC API – Processes (18-062r2)",
    openapi_url=None,  # the OpenAPI 3.0 document is served at /api (see openapi.py)
    docs_url=None,
    redoc_url=None,
)


# --- errors -------------------------------------------------------------------------------


@app.exception_handler(OgcError)
async def _ogc_error(request: Request, exc: OgcError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


@app.exception_handler(WebError)
async def _web_error(request: Request, exc: WebError) -> JSONResponse:
    # raised by shared platform code: the kind of failure, status from the one table
    title = web_errors.TITLES.get(exc.status, "Error")
    type_ = ogc.INVALID_INPUT if exc.status == 400 else ogc.UPSTREAM
    body = {"type": type_, "title": title, "status": exc.status, "detail": str(exc)}
    return JSONResponse(body, status_code=exc.status)


@app.exception_handler(AirflowApiError)
async def _airflow_error(request: Request, exc: AirflowApiError) -> JSONResponse:
    err = ogc.from_airflow(exc)
    return JSONResponse(err.body(), status_code=err.status)


@app.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    # 401/403 from Airflow's auth dependency, 404 for an unknown path, 405 …
    title = web_errors.TITLES.get(exc.status_code, "Error")
    type_ = ogc.UNAUTHORIZED if exc.status_code in (401, 403) else ogc.UPSTREAM
    body = {"type": type_, "title": title, "status": exc.status_code, "detail": str(exc.detail)}
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    err = OgcError(400, ogc.INVALID_INPUT, "Invalid request", str(exc.errors()[:3]))
    return JSONResponse(err.body(), status_code=400)


# --- auth ---------------------------------------------------------------------------------


async def _user(request: Request) -> Any:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    bearer = None
    auth = request.headers.get("authorization", "")
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=credentials)
    return await get_user(request, None, bearer)


async def airflow(request: Request, user: Annotated[Any, Depends(_user)]) -> Any:
    """The Airflow REST API as the authenticated caller."""
    async with AsyncAirflowClient(
        api_server_url(OgcSettings().airflow_url), token=caller_token(request)
    ) as client:
        yield client


Airflow = Annotated[AsyncAirflowClient, Depends(airflow)]


def _base(request: Request) -> str:
    """This app's URL as the client reached it (``…/ogc``: the mount is in ``root_path``)."""
    root = request.scope.get("root_path", "")
    return f"{request.url.scheme}://{request.url.netloc}{root}".rstrip("/")


# --- discovery ----------------------------------------------------------------------------


@app.get("/")
async def landing_page(request: Request) -> dict[str, Any]:
    base = _base(request)
    return {
        "title": "Candela – OGC API – Processes",
        "description": "Earth-observation processing services and workflows run by Airflow",
        "links": [
            {"href": f"{base}/", "rel": "self", "type": ogc.JSON, "title": "this document"},
            {
                "href": f"{base}/api",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
                "title": "the API definition",
            },
            {
                "href": f"{base}/conformance",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                "type": ogc.JSON,
                "title": "conformance classes",
            },
            {
                "href": f"{base}/processes",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/processes",
                "type": ogc.JSON,
                "title": "processes",
            },
            {
                "href": f"{base}/jobs",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/job-list",
                "type": ogc.JSON,
                "title": "jobs",
            },
        ],
    }


@app.get("/conformance")
async def conformance() -> dict[str, Any]:
    return {"conformsTo": ogc.CONFORMANCE}


@app.get("/api")
async def api_definition(request: Request) -> JSONResponse:
    from candela_ogc.openapi import openapi_document

    return JSONResponse(
        openapi_document(_base(request)),
        media_type="application/vnd.oai.openapi+json;version=3.0",
    )


# --- processes ----------------------------------------------------------------------------


def _services() -> dict[str, dict[str, Any]]:
    from candela.services import catalogue

    return {s["name"]: s for s in catalogue()}


async def _workflows(af: AsyncAirflowClient) -> list[dict[str, Any]]:
    dags = [
        d
        for d in await af.dags(limit=1000, exclude_stale=True)
        if d["dag_id"] != ogc.RUN_SERVICE_DAG
    ]
    details = await asyncio.gather(*(af.dag_details(d["dag_id"]) for d in dags))
    return [d for d in details if d is not None]


@dataclass
class Process:
    description: dict[str, Any]
    inputs_schema: dict[str, Any]  # JSON Schema the execute request's inputs must satisfy
    dag_id: str
    is_service: bool
    paused: bool = False


async def _process(af: AsyncAirflowClient, base: str, process_id: str) -> Process:
    services = _services()
    if process_id in services:
        svc = services[process_id]
        return Process(
            ogc.service_process(base, svc, full=True),
            ogc.service_inputs_schema(svc["parameters"]),
            ogc.RUN_SERVICE_DAG,
            is_service=True,
        )
    if process_id != ogc.RUN_SERVICE_DAG:
        dag = await af.dag_details(process_id)
        if dag is not None:
            return Process(
                ogc.workflow_process(base, dag, full=True),
                ogc.params_inputs_schema(dag.get("params") or {}),
                process_id,
                is_service=False,
                paused=bool(dag.get("is_paused")),
            )
    raise ogc.no_such_process(process_id)


@app.get("/processes")
async def process_list(request: Request, af: Airflow) -> dict[str, Any]:
    base = _base(request)
    processes = [ogc.service_process(base, s, full=False) for s in _services().values()]
    processes += [ogc.workflow_process(base, d, full=False) for d in await _workflows(af)]
    return {
        "processes": processes,
        "links": [{"href": f"{base}/processes", "rel": "self", "type": ogc.JSON}],
    }


@app.get("/processes/{process_id}")
async def process_description(process_id: str, request: Request, af: Airflow) -> dict[str, Any]:
    return (await _process(af, _base(request), process_id)).description


def _preferences(request: Request) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for token in header.split(","):
            key, _, value = token.strip().partition("=")
            if key:
                prefs[key.strip().lower()] = value.strip().strip('"')
    return prefs


def _unwrap(value: Any) -> Any:
    """An OGC qualified input value ``{"value": …, "mediaType": …}`` → its value."""
    if (
        isinstance(value, dict)
        and "value" in value
        and set(value)
        <= {
            "value",
            "mediaType",
            "encoding",
            "schema",
        }
    ):
        return value["value"]
    return value


@app.post("/processes/{process_id}/execution")
async def execute(process_id: str, request: Request, af: Airflow) -> JSONResponse:
    base = _base(request)
    process = await _process(af, base, process_id)
    try:
        body = await request.json()
    except ValueError:
        raise OgcError(
            400, ogc.INVALID_INPUT, "Invalid execute request", "the body is not JSON"
        ) from None
    if not isinstance(body, dict):
        raise OgcError(
            400, ogc.INVALID_INPUT, "Invalid execute request", "the body must be a JSON object"
        )
    raw_inputs = body.get("inputs", {})
    if not isinstance(raw_inputs, dict):
        raise OgcError(
            400, ogc.INVALID_INPUT, "Invalid execute request", "'inputs' must be a JSON object"
        )
    inputs = {k: _unwrap(v) for k, v in raw_inputs.items()}

    if process.is_service:
        runner = await af.get_dag(ogc.RUN_SERVICE_DAG)
        if runner is None:
            raise OgcError(
                503,
                ogc.UPSTREAM,
                "Service runner missing",
                f"the DAG {ogc.RUN_SERVICE_DAG!r} is not loaded in Airflow (see its import errors)",
            )
        process.paused = bool(runner.get("is_paused"))
    if process.paused:
        raise OgcError(
            409,
            ogc.PROCESS_PAUSED,
            "Process paused",
            f"the DAG {process.dag_id!r} is paused in Airflow; a job would never start. "
            f"Unpause it (Airflow UI, or PATCH /api/v2/dags/{process.dag_id} "
            '{"is_paused": false}) and execute again',
        )
    ogc.validate_inputs(process.inputs_schema, inputs)
    dag_id = process.dag_id
    conf = {"service": process_id, "arguments": inputs} if process.is_service else inputs
    conf = ogc.typed_conf(dag_id, conf)

    run = await af.trigger(dag_id, conf)
    job_id = ogc.encode_job_id(dag_id, run["dag_run_id"])
    location = f"{base}/jobs/{job_id}"
    prefs = _preferences(request)
    headers = {"Location": location}

    wants_sync = "respond-sync" in prefs or ("wait" in prefs and "respond-async" not in prefs)
    if wants_sync and "sync-execute" in process.description["jobControlOptions"]:
        try:
            wait = min(float(prefs.get("wait") or SYNC_WAIT_MAX), SYNC_WAIT_MAX)
        except ValueError:
            wait = SYNC_WAIT_MAX
        deadline = time.monotonic() + wait
        while run["state"] not in TERMINAL and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            run = await af.run(dag_id, run["dag_run_id"]) or run
        if run["state"] in TERMINAL:
            headers["Preference-Applied"] = "respond-sync"
            headers["Link"] = f'<{location}>; rel="monitor"'
            results = await _results(af, job_id, dag_id, run, base)
            return JSONResponse(results, status_code=200, headers=headers)
        log.info("job %s still running after %.0f s: answering asynchronously", job_id, wait)
    elif "respond-async" in prefs:
        headers["Preference-Applied"] = "respond-async"
    info = ogc.status_info(base, run, task_states=[])
    return JSONResponse(info, status_code=201, headers=headers)


# --- jobs ---------------------------------------------------------------------------------


@app.get("/jobs")
async def job_list(
    request: Request,
    af: Airflow,
    limit: int = 100,
    processID: Annotated[list[str] | None, Query()] = None,
    status: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    base = _base(request)
    limit = max(1, min(limit, 1000))
    jobs = [ogc.status_info(base, r) for r in await af.runs(limit)]
    if processID:
        jobs = [j for j in jobs if j["processID"] in processID]
    if status:
        jobs = [j for j in jobs if j["status"] in status]
    return {"jobs": jobs, "links": [{"href": f"{base}/jobs", "rel": "self", "type": ogc.JSON}]}


async def _run_of(af: AsyncAirflowClient, job_id: str) -> tuple[str, dict[str, Any]]:
    dag_id, run_id = ogc.decode_job_id(job_id)
    run = await af.run(dag_id, run_id)
    if run is None:
        raise ogc.no_such_job(job_id)
    return dag_id, run


@app.get("/jobs/{job_id}")
async def job_status(job_id: str, request: Request, af: Airflow) -> dict[str, Any]:
    dag_id, run = await _run_of(af, job_id)
    tis = await af.task_instances(dag_id, run["dag_run_id"])
    paused = False
    if run["state"] == "queued":
        dag = await af.get_dag(dag_id)
        paused = bool(dag and dag.get("is_paused"))
    info = ogc.status_info(_base(request), run, [t.get("state") for t in tis], paused=paused)
    if info["status"] == "running":
        info["progress"], info["message"] = ogc.step_progress(tis)
    if info["status"] == "successful":
        skipped = [t["task_id"] for t in tis if t.get("state") == "skipped"]
        if skipped:
            info["message"] = f"finished; skipped (no data): {', '.join(sorted(set(skipped)))}"
    if info["status"] == "failed":
        failed = sorted({t["task_id"] for t in tis if t.get("state") == "failed"})
        if failed:
            info["message"] = f"failed in {', '.join(failed)}: see the task logs in Airflow"
    return info


async def _results(
    af: AsyncAirflowClient, job_id: str, dag_id: str, run: dict[str, Any], base: str
) -> Any:
    state = run["state"]
    if state not in TERMINAL:
        raise OgcError(
            404, ogc.RESULT_NOT_READY, "Result not ready", f"job {job_id} is {state}; poll it"
        )
    tis = await af.task_instances(dag_id, run["dag_run_id"])
    if state == "failed":
        failed = sorted({t["task_id"] for t in tis if t.get("state") == "failed"})
        raise OgcError(
            500,
            ogc.JOB_FAILED,
            "Job failed",
            f"job {job_id} failed in {', '.join(failed) or 'a task'}: see the task logs in Airflow",
        )
    if dag_id == ogc.RUN_SERVICE_DAG:  # the step ran in run_step, or run_step_gpu (GPU model)
        gpu = any(
            t["task_id"] == ogc.RUN_SERVICE_GPU_TASK and t.get("state") == "success" for t in tis
        )
        task = ogc.RUN_SERVICE_GPU_TASK if gpu else ogc.RUN_SERVICE_TASK
        value = await af.xcom(dag_id, run["dag_run_id"], task, 0)
    elif any(t["task_id"] == ogc.RESULT_TASK for t in tis):
        value = await af.xcom(dag_id, run["dag_run_id"], ogc.RESULT_TASK)
    else:  # no publish step: the last task that succeeded
        done = [t for t in tis if t.get("state") == "success" and t.get("end_date")]
        done.sort(key=lambda t: t["end_date"])
        value = None
        if done:
            last = done[-1]
            value = await af.xcom(dag_id, run["dag_run_id"], last["task_id"], last["map_index"])
    downloads = None
    if dag_id != ogc.RUN_SERVICE_DAG and any(t["task_id"] == ogc.RESULT_TASK for t in tis):
        # a published run's files through the review app's downloads (HTTP, same login)
        downloads = ogc.review_downloads(base, dag_id, run["dag_run_id"])
    return ogc.results_document(value, downloads)


@app.get("/jobs/{job_id}/results")
async def job_results(job_id: str, af: Airflow, request: Request) -> Any:
    dag_id, run = await _run_of(af, job_id)
    return await _results(af, job_id, dag_id, run, _base(request))
