"""OGC API – Processes Part 1: Core (OGC 18-062r2) documents, built from Candela's services and
Airflow's DAGs. Pure functions: no Airflow, no HTTP; the app (``app.py``) feeds them.

* a *process* is a processing service (run by the ``run_service`` DAG) or a workflow (a DAG);
* a *job* is a DAG run; its id is the DAG id and the run id in a reversible URL-safe form.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import mimetypes
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from candela.web_errors import WebError

SPEC = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
CONFORMANCE = [
    f"{SPEC}/core",
    f"{SPEC}/ogc-process-description",
    f"{SPEC}/json",
    f"{SPEC}/oas30",
    f"{SPEC}/job-list",
]
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
NO_SUCH_PROCESS = f"{EXCEPTIONS}/no-such-process"
NO_SUCH_JOB = f"{EXCEPTIONS}/no-such-job"
RESULT_NOT_READY = f"{EXCEPTIONS}/result-not-ready"
# not in the standard's table: our own types for the other outcomes, under one base
CANDELA_EXCEPTIONS = "https://candela-eo.github.io/exceptions"
INVALID_INPUT = f"{CANDELA_EXCEPTIONS}/invalid-input"
PROCESS_PAUSED = f"{CANDELA_EXCEPTIONS}/process-paused"
JOB_FAILED = f"{CANDELA_EXCEPTIONS}/job-failed"
UNAUTHORIZED = f"{CANDELA_EXCEPTIONS}/unauthorized"
UPSTREAM = f"{CANDELA_EXCEPTIONS}/airflow-error"

RUN_SERVICE_DAG = "run_service"
RUN_SERVICE_TASK = "run_step"
RUN_SERVICE_GPU_TASK = "run_step_gpu"  # the same step when its model runs on a GPU
RESULT_TASK = "publish"

#: Airflow DAG run state -> OGC statusCode
RUN_STATUS = {
    "queued": "accepted",
    "running": "running",
    "success": "successful",
    "failed": "failed",
}
FINISHED_TASK_STATES = {"success", "skipped", "failed", "upstream_failed", "removed"}

JSON = "application/json"


class OgcError(WebError):
    """An OGC exception (RFC 7807 problem details); the app turns it into the response."""

    def __init__(self, status: int, type_: str, title: str, detail: str) -> None:
        super().__init__(detail, status)
        self.type = type_
        self.title = title
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


def from_airflow(exc: Any) -> OgcError:
    """The OGC exception for an :class:`candela.airflow_api.AirflowApiError`."""
    status, detail = exc.status, exc.detail or str(exc)
    if status is None:
        return OgcError(502, UPSTREAM, "Airflow unreachable", str(exc))
    if status in (401, 403):
        return OgcError(status, UPSTREAM, "Not allowed by Airflow", detail or "forbidden")
    if status >= 500:
        return OgcError(502, UPSTREAM, "Airflow error", detail)
    if exc.refused_run:
        return OgcError(400, UPSTREAM, "Airflow refused the run", detail)
    if status == 404:
        return OgcError(404, UPSTREAM, "No such workflow", detail)
    return OgcError(502, UPSTREAM, "Airflow refused the request", detail)


def no_such_process(process_id: str) -> OgcError:
    return OgcError(404, NO_SUCH_PROCESS, "No such process", f"no process {process_id!r}")


def no_such_job(job_id: str) -> OgcError:
    return OgcError(404, NO_SUCH_JOB, "No such job", f"no job {job_id!r}")


# --- job ids ------------------------------------------------------------------------------


def encode_job_id(dag_id: str, run_id: str) -> str:
    """``dag_id`` + ``run_id`` as one URL-safe token (base64url without padding)."""
    raw = f"{dag_id}/{run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_job_id(job_id: str) -> tuple[str, str]:
    """The inverse of :func:`encode_job_id`; a malformed id is an unknown job (404)."""
    try:
        raw = base64.urlsafe_b64decode(job_id + "=" * (-len(job_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise no_such_job(job_id) from None
    dag_id, sep, run_id = raw.partition("/")
    if not sep or not dag_id or not run_id or encode_job_id(dag_id, run_id) != job_id:
        raise no_such_job(job_id)
    return dag_id, run_id


# --- schemas and input validation ---------------------------------------------------------


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with local ``#/$defs/…`` references replaced by their target (pydantic's
    ``$defs`` are not visible once a property schema is taken out of its model)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = walk(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]))
                rest = {k: walk(v) for k, v in node.items() if k != "$ref"}
                return {**target, **rest}
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result = walk(schema)
    assert isinstance(result, dict)
    return result


def to_oas30(schema: Any) -> Any:
    """A JSON Schema (2020-12, as pydantic and Airflow Params write it) in the OpenAPI 3.0
    flavour that OGC 18-062r2 process descriptions use: ``nullable`` instead of ``null``
    types, ``enum`` instead of ``const``, boolean ``exclusiveMinimum``/``exclusiveMaximum``."""
    if isinstance(schema, list):
        return [to_oas30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: to_oas30(v) for k, v in schema.items()}
    types = out.get("type")
    if isinstance(types, list):
        non_null = [t for t in types if t != "null"]
        if len(non_null) < len(types):
            out["nullable"] = True
        if len(non_null) == 1:
            out["type"] = non_null[0]
        else:
            out.pop("type")
            if non_null:
                out["anyOf"] = [{"type": t} for t in non_null]
    for key in ("anyOf", "oneOf"):
        if key in out:
            options = [o for o in out[key] if o != {"type": "null"}]
            if len(options) < len(out[key]):
                out["nullable"] = True
            if len(options) == 1:
                out.pop(key)
                out = {**options[0], **out}
            else:
                out[key] = options
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # 2020-12: a number; OpenAPI 3.0 (draft 4): the bound plus a boolean
        if isinstance(out.get(key), int | float) and not isinstance(out[key], bool):
            out[bound] = out[key]
            out[key] = True
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    return out


def service_inputs_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a service's inputs (its params model), references inlined."""
    return inline_refs(parameters)


def params_inputs_schema(params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a DAG's inputs from its Airflow Params (as the REST API dumps them:
    ``{name: {"value", "description", "schema"}}``)."""
    properties: dict[str, Any] = {}
    for name, param in params.items():
        if not isinstance(param, Mapping):
            param = {"value": param, "schema": {}}
        prop = dict(param.get("schema") or {})
        if param.get("description") and "description" not in prop:
            prop["description"] = param["description"]
        if "value" in param and "default" not in prop:
            prop["default"] = param["value"]
        properties[name] = prop
    return {"type": "object", "properties": properties, "additionalProperties": False}


def validate_inputs(schema: dict[str, Any], inputs: Any) -> dict[str, Any]:
    """The inputs if they satisfy ``schema``; otherwise a 400 naming the field and the reason."""
    import jsonschema

    if not isinstance(inputs, dict):
        raise OgcError(
            400, INVALID_INPUT, "Invalid execute request", "'inputs' must be a JSON object"
        )
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(inputs), key=lambda e: (list(e.path), e.message))
    if errors:
        parts = []
        for err in errors[:5]:
            field = ".".join(str(p) for p in err.absolute_path)
            if not field and err.validator == "additionalProperties":
                extra = sorted(set(inputs) - set(schema.get("properties", {})))
                parts.append(f"unknown input(s) {', '.join(map(repr, extra))}")
            elif not field and err.validator == "required":
                parts.append(err.message.replace("is a required property", "is required"))
            else:
                parts.append(f"input {field or '(root)'!r}: {err.message}")
        raise OgcError(400, INVALID_INPUT, "Invalid inputs", "; ".join(parts))
    return inputs


def typed_conf(dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """The run's conf built through its workflow's typed run configuration
    (:mod:`candela.workflows`: cross-field rules, known model, the service's own parameter
    model), so that ``/ogc`` accepts exactly what the CLI and the DAG accept; a 400 naming the
    field otherwise."""
    from candela.workflows import BadRunConf, validate_conf

    try:
        typed = validate_conf(dag_id, conf)
    except BadRunConf as exc:
        raise OgcError(400, INVALID_INPUT, "Invalid inputs", str(exc)) from None
    return conf if typed is None else typed.conf()


# --- process descriptions -----------------------------------------------------------------


def _inputs(schema: dict[str, Any]) -> dict[str, Any]:
    required = set(schema.get("required", []))
    inputs = {}
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        title = prop.pop("title", None) or name.replace("_", " ")
        description = prop.get("description", "")
        inputs[name] = {
            "title": title,
            "description": description,
            "schema": to_oas30(prop),
            "minOccurs": 1 if name in required else 0,
            "maxOccurs": 1,
        }
    return inputs


def _process_links(base: str, process_id: str) -> list[dict[str, Any]]:
    return [
        {
            "href": f"{base}/processes/{process_id}",
            "rel": "self",
            "type": JSON,
            "title": "process description",
        },
        {
            "href": f"{base}/processes/{process_id}/execution",
            "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
            "type": JSON,
            "title": "execute endpoint",
        },
    ]


def service_process(base: str, service: dict[str, Any], full: bool) -> dict[str, Any]:
    """A processing service (an entry of ``candela.services.catalogue()``) as a process."""
    summary: dict[str, Any] = {
        "id": service["name"],
        "title": service["summary"],
        "description": service.get("description") or service["summary"],
        "version": "1.0.0",
        "keywords": ["candela", "service"],
        "jobControlOptions": ["async-execute", "sync-execute"],
        "outputTransmission": ["value", "reference"],
        "links": _process_links(base, service["name"]),
    }
    if full:
        schema = service_inputs_schema(service["parameters"])
        summary["inputs"] = _inputs(schema)
        summary["outputs"] = {
            "result": {
                "title": "result",
                "description": "the service's JSON result (URIs of its outputs and metadata)",
                "schema": {"type": "object", "contentMediaType": JSON},
            }
        }
    return summary


def _dag_version(dag: Mapping[str, Any]) -> str:
    latest = dag.get("latest_dag_version") or {}
    number = latest.get("version_number") if isinstance(latest, Mapping) else None
    return f"{number}.0.0" if number else "1.0.0"


def workflow_process(base: str, dag: dict[str, Any], full: bool) -> dict[str, Any]:
    """A workflow (a DAG, as ``GET /api/v2/dags/{id}/details`` returns it) as a process."""
    doc = (dag.get("description") or dag.get("doc_md") or "").strip()
    title = doc.splitlines()[0] if doc else dag["dag_id"]
    summary: dict[str, Any] = {
        "id": dag["dag_id"],
        "title": title.split(": ", 1)[-1] if title.startswith(dag["dag_id"]) else title,
        "description": doc or f"Airflow DAG {dag['dag_id']}",
        "version": _dag_version(dag),
        "keywords": ["candela", "workflow", *[t["name"] for t in dag.get("tags", [])]],
        # a workflow runs for minutes: asynchronous only
        "jobControlOptions": ["async-execute"],
        "outputTransmission": ["value", "reference"],
        "links": _process_links(base, dag["dag_id"]),
    }
    if dag.get("is_paused"):
        summary["description"] += (
            "\n\nPaused in Airflow: execution is refused until it is unpaused."
        )
    if full:
        summary["inputs"] = _inputs(params_inputs_schema(dag.get("params") or {}))
        summary["outputs"] = {
            "result": {
                "title": "result",
                "description": "the run's summary (outputs, statistics)",
                "schema": {"type": "object", "contentMediaType": JSON},
            }
        }
    return summary


# --- jobs ---------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def process_id_of(dag_id: str, conf: Mapping[str, Any] | None) -> str:
    if dag_id == RUN_SERVICE_DAG and conf and conf.get("service"):
        return str(conf["service"])
    return dag_id


def progress(task_states: Iterable[str | None]) -> int:
    states = list(task_states)
    if not states:
        return 0
    done = sum(1 for s in states if s in FINISHED_TASK_STATES)
    return int(100 * done / len(states))


def step_progress(tis: Iterable[Mapping[str, Any]]) -> tuple[int, str]:
    """Progress (0-100) and a one-line message of a running job from its task instances, by
    step (the instances of a mapped step count as one step, in proportion of theirs done), so
    that the progress does not fall back when a mapped step expands."""
    steps: dict[str, list[str | None]] = {}
    for ti in tis:
        steps.setdefault(str(ti.get("task_id")), []).append(ti.get("state"))
    if not steps:
        return 0, "running"
    credit = sum(
        sum(1 for s in states if s in FINISHED_TASK_STATES) / len(states)
        for states in steps.values()
    )
    pct = int(100 * credit / len(steps))
    running = []
    for task, states in steps.items():
        active = sum(1 for s in states if s in ("running", "queued", "up_for_retry", "deferred"))
        if active:
            done = sum(1 for s in states if s in FINISHED_TASK_STATES)
            running.append(task if len(states) == 1 else f"{task} ({done} of {len(states)} done)")
    done_steps = sum(
        1 for states in steps.values() if all(s in FINISHED_TASK_STATES for s in states)
    )
    message = (
        f"running: {', '.join(running) or 'between steps'}; {done_steps} of {len(steps)} steps done"
    )
    return pct, message


def status_info(
    base: str,
    run: Mapping[str, Any],
    task_states: Iterable[str | None] | None = None,
    paused: bool = False,
) -> dict[str, Any]:
    """statusInfo of a DAG run (``GET /api/v2/dags/{dag}/dagRuns/{run}``)."""
    dag_id, run_id = run["dag_id"], run["dag_run_id"]
    job_id = encode_job_id(dag_id, run_id)
    state = run.get("state") or "queued"
    status = RUN_STATUS.get(state, "running")
    info: dict[str, Any] = {
        "processID": process_id_of(dag_id, run.get("conf")),
        "type": "process",
        "jobID": job_id,
        "status": status,
        "message": {
            "accepted": "queued in Airflow",
            "running": "running",
            "successful": "finished",
            "failed": "failed: see the task logs in Airflow",
        }[status],
        "created": _iso(run.get("queued_at") or run.get("run_after")),
        "started": _iso(run.get("start_date")),
        "finished": _iso(run.get("end_date")) if status in ("successful", "failed") else None,
        "updated": _iso(
            run.get("end_date") or run.get("last_scheduling_decision") or run.get("start_date")
        )
        or _iso(run.get("queued_at")),
        "links": [
            {"href": f"{base}/jobs/{job_id}", "rel": "self", "type": JSON, "title": "status"},
            {
                "href": f"{base}/processes/{process_id_of(dag_id, run.get('conf'))}",
                "rel": "up",
                "type": JSON,
                "title": "process",
            },
        ],
    }
    if paused and status == "accepted":
        info["message"] = "waiting: the workflow is paused in Airflow"
    if task_states is not None:
        info["progress"] = 100 if status == "successful" else progress(task_states)
    if status in ("successful", "failed"):
        info["links"].append(
            {
                "href": f"{base}/jobs/{job_id}/results",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                "type": JSON,
                "title": "results",
            }
        )
    return {k: v for k, v in info.items() if v is not None}


# --- results ------------------------------------------------------------------------------

URI_SCHEMES = ("file://", "s3://", "http://", "https://", "gs://", "/vsis3/")
MEDIA_TYPES = {
    ".tif": "image/tiff; application=geotiff",
    ".tiff": "image/tiff; application=geotiff",
    ".json": JSON,
    ".geojson": "application/geo+json",
    ".gpkg": "application/geopackage+sqlite3",
    ".kml": "application/vnd.google-earth.kml+xml",
    ".png": "image/png",
    ".csv": "text/csv",
}


def _media_type(uri: str) -> str | None:
    for ext, media in MEDIA_TYPES.items():
        if uri.lower().endswith(ext):
            return media
    guessed, _ = mimetypes.guess_type(uri)
    return guessed


# inline documents whose URIs are metadata, not outputs of the job
NOT_OUTPUTS = {"items", "assets", "links", "stac_extensions", "params"}


def _links(value: Any, path: str = "") -> Iterable[tuple[str, str]]:
    if path.rsplit(".", 1)[-1] in NOT_OUTPUTS:
        return
    if isinstance(value, str) and value.startswith(URI_SCHEMES):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _links(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _links(v, f"{path}.{i}" if path else str(i))


def review_downloads(ogc_base: str, dag_id: str, run_id: str) -> Callable[[str, Any], str | None]:
    """The HTTP address of a published run's file at a JSON path of its summary, served by the
    review app (``/candela/runs/<dag>/<run>/…``, behind the same Airflow login as ``/ogc``);
    ``None`` for a path it does not serve."""
    from urllib.parse import quote

    root = ogc_base.rstrip("/").removesuffix("/ogc")
    run_base = f"{root}/candela/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"

    def href(path: str, summary: Any) -> str | None:
        parts = path.split(".")
        if parts == ["summary"]:
            return f"{run_base}/run.json"
        if len(parts) == 2 and parts[0] == "stacks":
            return f"{run_base}/stacks/{parts[1]}"
        if parts[0] == "results" and len(parts) >= 3 and isinstance(summary, Mapping):
            try:
                entry = summary["results"][int(parts[1])]
            except (KeyError, IndexError, ValueError, TypeError):
                return None
            item_id = entry.get("item_id") if isinstance(entry, Mapping) else None
            if not item_id:
                return None  # published before the summary named its items
            if parts[2] == "item" and len(parts) == 3:
                key = "item"
            elif parts[2] == "outputs" and len(parts) == 4:
                key = parts[3]
            else:
                return None
            return f"{run_base}/download/{quote(str(item_id), safe='')}/{quote(key, safe='')}"
        return None

    return href


def results_document(
    value: Any, downloads: Callable[[str, Any], str | None] | None = None
) -> dict[str, Any]:
    """The results of a job: ``result`` (the whole JSON value, qualified) plus one link per
    output URI found in it, keyed by its JSON path (``results.0.outputs.change_mask``). With
    ``downloads`` (:func:`review_downloads`) a link's ``href`` is the file's HTTP address a
    remote client can fetch, and the storage URI stays in ``candela:href``."""
    doc: dict[str, Any] = {}
    if value is None:
        return doc
    doc["result"] = {"value": value, "mediaType": JSON}
    for key, uri in _links(value):
        link: dict[str, Any] = {"href": uri, "rel": "related", "title": key}
        http = downloads(key, value) if downloads is not None else None
        if http:
            link["href"] = http
            link["candela:href"] = uri
        media = _media_type(uri)
        if media:
            link["type"] = media
        doc[key] = link
    return doc
