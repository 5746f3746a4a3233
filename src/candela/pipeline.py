"""The glue of the change-detection pipeline: pure functions the DAG's small tasks call.

They turn one step's JSON result into the next step's arguments and publish the outputs. No
pixels go through here; only URIs and metadata.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

from candela.settings import Settings
from candela_sdk import aoi as sdk_aoi
from candela_sdk.aoi import split_aoi as split_aoi  # the DAG imports it from here
from candela_sdk.sentinel1 import DEFAULT_WINDOW_DAYS as FUSION_WINDOW_DAYS

log = logging.getLogger(__name__)

WORKFLOW_COLLECTION = "candela-results"


def safe_key(text: str) -> str:
    """A storage-safe version of a run id or product id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def params_prefix(settings: Settings, dag_id: str, key: str) -> str:
    """The folder of every run of ``dag_id`` with one parameter set (output key ``key``)."""
    return f"{settings.storage.rstrip('/')}/results/{safe_key(dag_id)}/{key}"


def output_prefix(settings: Settings, dag_id: str, key: str, run_id: str) -> str:
    """Where a run's outputs go: ``results/<workflow>/<key>/<run>``, its own prefix. A run
    never writes where another run wrote, so nothing an earlier run published ever changes;
    runs with the same parameters sit side by side under their key."""
    return f"{params_prefix(settings, dag_id, key)}/{run_folder(run_id)}"


def run_folder(run_id: str) -> str:
    """A run id as one folder name, distinct for distinct run ids (``manual__…+00:00`` has
    characters a key cannot hold: a short hash of the id keeps two ids apart)."""
    import hashlib

    safe = safe_key(run_id)
    if safe == run_id:
        return safe
    return f"{safe}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def earlier_runs(settings: Settings, dag_id: str, key: str, run_id: str) -> list[dict[str, Any]]:
    """The runs with the same parameters that published before ``run_id`` (oldest first):
    ``{"run_id", "published_at", "summary"}`` read from their ``run.json``."""
    from candela_sdk import storage

    base = params_prefix(settings, dag_id, key)
    try:
        names = storage.list_names(base)
    except storage.InputError:
        return []
    found = []
    for name in names:
        if name == run_folder(run_id) or name == "run.json":
            continue
        uri = f"{base}/{name}/run.json"
        try:
            summary = json.loads(storage.read_text(uri))
        except (storage.InputError, ValueError):
            continue  # not (yet) published, or not a run's folder
        if isinstance(summary, dict) and summary.get("run_id") not in (None, run_id):
            found.append(
                {
                    "run_id": summary["run_id"],
                    "published_at": summary.get("published_at"),
                    "summary": uri,
                }
            )
    return sorted(found, key=lambda r: str(r.get("published_at") or ""))


def discard_outputs(settings: Settings, dag_id: str, run_id: str, key: str) -> bool:
    """Remove what a failed run wrote under its own prefix; whether anything was removed.

    Only the run's own prefix is touched (other runs, identical or not, have theirs), and not
    even that once the run published there (its ``run.json`` is there).
    """
    from candela_sdk import storage

    prefix = output_prefix(settings, dag_id, key, run_id)
    summary = f"{prefix}/run.json"
    if storage.exists(summary):
        log.info("%s: run %s published there; left as it is", prefix, run_id)
        return False
    try:
        if not storage.list_names(prefix):
            return False
    except storage.InputError:  # nothing was written there
        return False
    storage.delete(prefix, recursive=True)
    log.info("removed the outputs of failed run %s under %s", run_id, prefix)
    _drop_run_graph(settings, dag_id, kb_run_key(key, run_id))
    return True


def kb_run_key(key: str, run_id: str) -> str:
    """A run's key in the knowledge base (its named graph and IRIs): the output key and the run's
    own folder, so that a run with the same parameters as an earlier one never replaces (or, when
    it fails, drops) what the earlier run loaded."""
    return f"{key}-{run_folder(run_id)}"


def _drop_run_graph(settings: Settings, dag_id: str, run_key: str) -> None:
    """Remove the failed run's named graph from the knowledge base (load_rdf ran before the
    failure), as its files are removed: the same graph name the rdf-etl service gives a run."""
    from candela_sdk.kb import graph_iri, open_kb

    try:
        kb = open_kb(settings)
        for source in ("run", "landcover-run"):  # the graphs of the run's load_rdf jobs
            kb.drop_graph(graph_iri(source, f"{dag_id}/{run_key}"))
    except Exception as exc:  # the files are gone all the same
        log.warning("could not drop the knowledge-base graph of %s/%s: %s", dag_id, run_key, exc)


def search_arguments(params: dict[str, Any]) -> dict[str, Any]:
    """The search service's arguments from the pipeline's params."""
    args: dict[str, Any] = {
        "collection": params["collection"],
        "start": params.get("start"),
        "end": params.get("end"),
        "max_cloud": params.get("max_cloud"),
        "tile": params.get("tile") or None,
        "limit": params.get("limit") or 50,
    }
    if str(params["collection"]).startswith("sentinel-2"):
        # fuse_landcover: each product's nearest Sentinel-1 acquisition (candela_sdk.sentinel1)
        args["pair_s1_days"] = FUSION_WINDOW_DAYS
    if params.get("aoi"):
        args["aoi"] = json.dumps(params["aoi"])
    elif params.get("bbox"):
        args["bbox"] = list(params["bbox"])
    return {k: v for k, v in args.items() if v is not None}


def aoi_geometry(params: dict[str, Any]) -> dict[str, Any] | None:
    """The run's area of interest as one GeoJSON geometry (from ``aoi`` or ``bbox``); a Feature
    or FeatureCollection becomes the union of its geometries (:func:`candela_sdk.aoi.aoi_geometry`)."""
    return sdk_aoi.aoi_geometry(params.get("aoi") or None, params.get("bbox") or None)


def preprocess_arguments(
    search_result: dict[str, Any], prefix: str, pieces: list[dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """One preprocessing job per product and AOI piece that meet."""
    from shapely.geometry import box, shape

    bboxes = {it["id"]: it.get("bbox") for it in search_result.get("items", [])}
    jobs = []
    for p in sorted(search_result.get("products", []), key=lambda p: p["datetime"]):
        pid = safe_key(p["id"])
        for i, piece in enumerate(pieces):
            job: dict[str, Any] = {"product": p["href"]}
            if piece is not None:
                bb = bboxes.get(p["id"])
                if bb and not box(*bb).intersects(shape(piece)):
                    continue
                job["aoi"] = json.dumps(piece)
            job["output"] = (
                f"{prefix}/stacks/{pid}.tif"
                if len(pieces) == 1
                else f"{prefix}/tiles/{pid}/{i:03d}.tif"
            )
            jobs.append(job)
    return jobs


def mosaic_arguments(stacks: list[dict[str, Any] | None], prefix: str) -> list[dict[str, Any]]:
    """Group the preprocessed pieces by product: one mosaic job each (a single piece is kept)."""
    groups: dict[str, list[str]] = {}
    for st in stacks:
        if not st:
            continue  # a piece without data (skipped)
        out = st["output"]
        if "/tiles/" in out:
            pid = out.rsplit("/", 2)[-2]
            groups.setdefault(pid, []).append(out)
        else:
            groups[_stem(out)] = [out]
    jobs = []
    for pid, outs in sorted(groups.items()):
        outs = sorted(outs)
        target = (
            outs[0]
            if len(outs) == 1 and "/tiles/" not in outs[0]
            else (f"{prefix}/stacks/{pid}.tif")
        )
        jobs.append({"inputs": outs, "output": target})
    return jobs


def change_arguments(
    stacks: list[dict[str, Any]],
    prefix: str,
    model: str,
    threshold: Any,
    zones: str | None = None,
) -> list[dict[str, Any]]:
    """Consecutive pairs of stacks (by acquisition date) → one change-detection job each."""
    ordered = sorted((s for s in stacks if s), key=lambda s: s["datetime"])
    jobs = []
    for before, after in zip(ordered, ordered[1:], strict=False):
        name = f"{_stem(before['output'])}__{_stem(after['output'])}"
        job: dict[str, Any] = {
            "before": before["output"],
            "after": after["output"],
            "model": model,
            "output": f"{prefix}/changes/{name}",
        }
        if threshold not in (None, "", "auto"):
            job["threshold"] = str(threshold)
        if zones:
            job["zones"] = zones
        jobs.append(job)
    return jobs


def on_device(
    service: str, jobs: list[dict[str, Any]], device: str
) -> tuple[list[dict[str, Any]], str]:
    """The jobs of ``service`` whose model runs on ``device`` (``cpu``/``gpu``: the service's
    declaration, :meth:`candela_sdk.contract.Service.device_for`), and why there is none."""
    from candela.services import get_service

    svc = get_service(service)
    mine = [j for j in jobs if svc.device_for(j) == device]
    models = sorted({str(j.get(svc.model_param or "", "")) for j in jobs} - {""})
    other = "gpu" if device == "cpu" else "cpu"
    reason = f"model {', '.join(models) or '?'} runs on a {other.upper()}: not this task's"
    return mine, reason


def rdf_arguments(
    changes: list[dict[str, Any] | None], dag_id: str, run_id: str, key: str
) -> dict[str, Any] | None:
    """The ``rdf-etl`` job that loads a run's change results (and the stacks they compare) into
    the knowledge base as the run's named graph; ``None`` when the run has no result."""
    items = [
        ch["outputs"]["item"] for ch in changes if ch and (ch.get("outputs") or {}).get("item")
    ]
    if not items:
        return None
    return {
        "source": "results",
        "inputs": items,
        "workflow": dag_id,
        "run_id": run_id,
        "output_key": kb_run_key(key, run_id),
    }


def rdf_jobs(
    changes: list[dict[str, Any] | None],
    landcover: list[dict[str, Any] | None],
    dag_id: str,
    run_id: str,
    key: str,
) -> list[dict[str, Any]]:
    """The ``load_rdf`` jobs of a run: its change results (graph ``run``) and its land-cover maps
    (graph ``landcover-run``, class areas related to the parcels and zones loaded), each only
    when the run produced some."""
    jobs = []
    results = rdf_arguments(changes, dag_id, run_id, key)
    if results:
        jobs.append(results)
    items = [
        lc["outputs"]["item"] for lc in landcover if lc and (lc.get("outputs") or {}).get("item")
    ]
    if items:
        jobs.append(
            {
                "source": "landcover-run",
                "inputs": items,
                "workflow": dag_id,
                "run_id": run_id,
                "output_key": kb_run_key(key, run_id),
            }
        )
    return jobs


def kb_unreachable(settings: Settings) -> str | None:
    """Why a step could not load into the knowledge base, or ``None``: a pod (kubernetes runner)
    cannot reach the embedded store under ``$CANDELA_HOME``, only an external endpoint."""
    if settings.runner == "kubernetes" and not settings.kb_endpoint:
        return "the kubernetes runner needs an external knowledge base (CANDELA_KB_ENDPOINT)"
    return None


def fusion_arguments(
    search_result: dict[str, Any] | None,
    stacks: list[dict[str, Any] | None],
    prefix: str,
    zones: str | None = None,
    window_days: float = FUSION_WINDOW_DAYS,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One land-cover job per stack whose product has a Sentinel-1 match (the search's
    ``s1_match``), and the dates without one with the reason: (jobs, skipped)."""
    from candela_sdk import storage

    matches = {
        safe_key(p["id"]): p.get("s1_match") for p in (search_result or {}).get("products", [])
    }
    jobs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for st in sorted((s for s in stacks if s), key=lambda s: s.get("datetime") or ""):
        stem = _stem(st["output"])
        date = str(st.get("datetime") or "")[:10] or "unknown date"
        match = matches.get(stem)
        if not match:
            skipped.append(
                {
                    "stack": st["output"],
                    "date": date,
                    "reason": f"no Sentinel-1 acquisition within {window_days:g} days of {date}",
                }
            )
            continue
        job: dict[str, Any] = {
            "optical": st["output"],
            "radar": match["href"],
            "model": "fused",
            "output": f"{prefix}/landcover/{stem}",
            "window_days": window_days,
        }
        if st.get("datetime"):
            job["optical_datetime"] = st["datetime"]
        if match.get("datetime"):
            job["radar_datetime"] = match["datetime"]
        valid = st["output"].removesuffix(".tif") + "_valid.tif"
        if storage.exists(valid):  # the preprocess SCL validity mask of a one-piece stack
            job["optical_mask"] = valid
        if zones:
            job["zones"] = zones
        jobs.append(job)
    return jobs, skipped


def landcover_items(prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """The STAC items the ``fuse_landcover`` steps wrote under ``<prefix>/landcover/``, each
    with absolute asset hrefs (the results catalogue and the review page read them)."""
    from candela_sdk import storage
    from candela_sdk.errors import InputError

    base = storage.parse(f"{prefix}/landcover")
    try:
        names = storage.list_names(base.uri)
    except InputError:
        return []
    out = []
    for name in sorted(names):
        uri = base.join(name, "item.json").uri
        if not storage.exists(uri):
            continue
        item = json.loads(storage.read_text(uri))
        for asset in item.get("assets", {}).values():
            href = str(asset.get("href", ""))
            if href.startswith("./"):
                asset["href"] = base.join(name, href[2:]).uri
        out.append((uri, item))
    return out


def _stem(uri: str) -> str:
    return safe_key(uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".tif"))


def publish(
    settings: Settings,
    dag_id: str,
    run_id: str,
    key: str,
    params: dict[str, Any],
    stacks: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    dsn: str | None,
) -> dict[str, Any]:
    """Record the run's results: a STAC item per change result in the results catalogue, plus
    a run summary (``run.json``) next to the outputs, under the run's own prefix. The runs that
    published the same parameters before are named (``same_parameters_as``); nothing of theirs
    is touched."""
    from candela_sdk import storage

    prefix = output_prefix(settings, dag_id, key, run_id)
    earlier = earlier_runs(settings, dag_id, key, run_id)
    same_as = [e["run_id"] for e in earlier]
    stamp = {  # on every item the run publishes (change results and land-cover maps)
        "candela:workflow": dag_id,
        "candela:run_id": run_id,
        "candela:params": params,
        "candela:output_key": key,
        "candela:same_parameters_as": same_as,
    }
    published = []
    for ch in changes:
        if not ch:
            continue
        item_uri = ch["outputs"]["item"]
        item = json.loads(storage.read_text(item_uri))
        item.update(collection=WORKFLOW_COLLECTION)
        item.setdefault("properties", {}).update(stamp)
        published.append({"item_uri": item_uri, "item": item, "result": ch})
    landcover = landcover_items(prefix)
    for _uri, item in landcover:
        item.update(collection=WORKFLOW_COLLECTION)
        item.setdefault("properties", {}).update(stamp)
    summary = {
        "workflow": dag_id,
        "run_id": run_id,
        "output_key": key,
        "prefix": prefix,
        "params": params,
        # identical parameters: computed again (not reused), each run keeps its own outputs
        "same_parameters_as": same_as,
        "published_at": dt.datetime.now(dt.UTC).isoformat(),
        "stacks": [s["output"] for s in stacks if s],
        "results": [
            {
                "item": p["item_uri"],
                "item_id": p["item"]["id"],
                "outputs": p["result"]["outputs"],
                "changed_area_ha": p["result"].get("changed_area_ha"),
                "changed_fraction": p["result"].get("changed_fraction"),
                "threshold": p["result"].get("threshold"),
                "model": p["result"].get("model"),
            }
            for p in published
        ],
        "landcover": [
            {
                "item": uri,
                "model": item["properties"].get("candela:model"),
                "datetime": item["properties"].get("datetime")
                or item["properties"].get("start_datetime"),
            }
            for uri, item in landcover
        ],
    }
    if dsn:  # first: a refusal (an item of another run) leaves no run.json behind
        from candela.db.results import record_results

        record_results(
            dsn, dag_id, run_id, [p["item"] for p in published] + [it for _, it in landcover]
        )
    summary_uri = storage.write_text(f"{prefix}/run.json", json.dumps(summary, indent=2))
    summary["summary"] = summary_uri
    log.info(
        "published %d change result(s) and %d land-cover map(s); summary at %s",
        len(published),
        len(landcover),
        summary_uri,
    )
    return summary
