"""Pipeline glue of the ``mine_patches`` DAG: which stacks to mine, as the datamining service's
arguments (one job per stack). The stacks come from the conf (``stacks``), from a run of the
change-detection pipeline (``source_run_id``: its ``run.json``), or from the asset events that
started the run (each names its source run). A stack whose date had a Sentinel-1 match (its
land-cover map was fused with one) is mined with that radar. Nothing of the service is
imported."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from candela.pipeline import output_prefix, params_prefix, run_folder
from candela.settings import Settings
from candela.workflows import MinePatchesConf

log = logging.getLogger(__name__)


class RunNotFound(LookupError):
    """No published summary (``run.json``) for the run."""


def run_summary(settings: Settings, dsn: str | None, dag_id: str, run_id: str) -> dict[str, Any]:
    """The ``run.json`` of a published run: found through its output key in the results table,
    else by looking under every key of the workflow."""
    from candela_sdk import storage

    candidates = []
    if dsn:
        from candela.db.results import first_item

        item = first_item(dsn, dag_id, run_id)
        key = (item or {}).get("properties", {}).get("candela:output_key")
        if key:
            candidates.append(f"{output_prefix(settings, dag_id, key, run_id)}/run.json")
    base = params_prefix(settings, dag_id, "").rstrip("/")
    try:
        keys = storage.list_names(base)
    except storage.InputError:
        keys = []
    candidates += [f"{base}/{k}/{run_folder(run_id)}/run.json" for k in keys]
    for uri in candidates:
        try:
            summary = json.loads(storage.read_text(uri))
        except (storage.InputError, ValueError):
            continue
        if isinstance(summary, dict) and summary.get("run_id") == run_id:
            return summary
    raise RunNotFound(f"no published run {run_id} of {dag_id} (no run.json)")


def radar_of_stacks(summary: dict[str, Any]) -> dict[str, str]:
    """Stack URI → the Sentinel-1 backscatter its land-cover map was fused with (the map's STAC
    item is ``derived_from`` the optical stack, then the radar)."""
    from candela_sdk import storage

    out: dict[str, str] = {}
    for lc in summary.get("landcover", []):
        try:
            item = json.loads(storage.read_text(lc["item"]))
        except (storage.InputError, ValueError, KeyError, TypeError):
            continue
        hrefs = [ln.get("href") for ln in item.get("links", []) if ln.get("rel") == "derived_from"]
        if len(hrefs) >= 2 and hrefs[0] and hrefs[1]:
            out[str(hrefs[0])] = str(hrefs[1])
    return out


def plan(
    settings: Settings,
    dsn: str | None,
    params: dict[str, Any],
    sources: Iterable[tuple[str | None, str | None]],
    mining_run_id: str,
) -> tuple[list[dict[str, Any]], str]:
    """(the datamining service's arguments, one per stack; why there is none when empty).
    ``sources``: (dag id, run id) of the asset events that started the run."""
    conf = MinePatchesConf.checked(
        {k: v for k, v in params.items() if k in MinePatchesConf.model_fields}
    )
    stacks: list[str] = list(conf.stacks)
    radar: dict[str, str] = {}
    runs = [(d or conf.source_dag_id, r) for d, r in sources if r]
    if conf.source_run_id:
        runs.append((conf.source_dag_id, conf.source_run_id))
    for dag_id, run_id in runs:
        try:
            summary = run_summary(settings, dsn, dag_id, run_id)
        except RunNotFound as exc:
            log.warning("%s", exc)
            continue
        stacks += [s for s in summary.get("stacks", []) if s]
        radar.update(radar_of_stacks(summary))
    unique = list(dict.fromkeys(stacks))
    if not unique:
        reason = (
            "nothing to mine: the source runs published no stack"
            if runs
            else "nothing to mine: give stacks or source_run_id"
        )
        return [], reason
    jobs = []
    for uri in unique:
        args: dict[str, Any] = {
            "stack": uri,
            "size": conf.size,
            "min_valid": conf.min_valid,
            "dataset": conf.dataset,
            "run_id": mining_run_id,
        }
        if conf.stride:
            args["stride"] = conf.stride
        if conf.encoder:
            args["encoder"] = conf.encoder
        if uri in radar:  # S2 + S1: the radar features too
            args["radar"] = radar[uri]
        jobs.append(args)
    return jobs, ""
