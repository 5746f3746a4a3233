"""s2_change_detection: Sentinel-2 change detection over an area and a period.

search_products → preprocess (one task per product and AOI piece: a large AOI is cut into
pieces of at most `tile_size_km`) → mosaic (the pieces of each product merged) → detect_changes
(one task per consecutive pair; `detect_changes_gpu` in the GPU pool instead when the run's model
runs on a GPU); fuse_landcover (one task per date with a Sentinel-1
acquisition within 10 days, skipped with the reason otherwise) → load_rdf → publish. Wiring
only: the work happens in the processing services. Every run writes under its own prefix
(results/<dag>/<key>/<run>), so a rerun never changes what an earlier run published; two
identical runs at once are refused.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task

from candela.workflows import ChangeDetectionConf, dag_params
from candela_operators import GPU_POOL, step_operator_class

Step = step_operator_class()

RESULTS = Asset("candela://results/s2_change_detection")


def _release_claim(context):
    from candela.callbacks import release_claim

    release_claim(context)


def _discard_failed_run(context):
    from candela.callbacks import discard_failed_run

    discard_failed_run(context)


def _remove_partial_outputs(context):
    from candela.callbacks import remove_partial_outputs

    remove_partial_outputs(context)


IO_STEP = {
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": _remove_partial_outputs,
}


@dag(
    dag_id="s2_change_detection",
    schedule=None,
    catchup=False,
    tags=["candela", "sentinel-2", "change-detection"],
    doc_md=__doc__,
    default_args={"owner": "candela", "retries": 0},
    on_success_callback=_release_claim,
    on_failure_callback=_discard_failed_run,
    # the typed run configuration (candela.workflows) is the one home of these parameters
    params=dag_params(ChangeDetectionConf, Param),
)
def s2_change_detection() -> None:
    @task(multiple_outputs=True)
    def plan_run() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from candela.callbacks import _dsn, run_has_ended
        from candela.db.runs import claim
        from candela.pipeline import aoi_geometry, output_prefix, search_arguments, split_aoi
        from candela.run_inputs import stage_zones
        from candela.runs import RunConflict, workflow_key
        from candela.settings import get_settings
        from candela.workflows import BadRunConf, validate_conf
        from candela_sdk.errors import InputError

        ctx = get_current_context()
        params = dict(ctx["params"])
        dag_id = ctx["dag"].dag_id
        try:  # what the Params' JSON Schema cannot check: cross-field rules, the model name
            validate_conf(dag_id, params)
        except BadRunConf as exc:
            raise AirflowFailException(str(exc)) from None
        key = workflow_key(dag_id, params)  # the same key the API server's run guard claimed
        dsn = _dsn()
        if dsn:
            try:
                ti = ctx["ti"]
                claim(dsn, key, dag_id, ctx["run_id"], lambda d, r: run_has_ended(ti, d, r))
            except RunConflict as exc:
                raise AirflowFailException(str(exc)) from None
        settings = get_settings()
        prefix = output_prefix(settings, dag_id, key, ctx["run_id"])
        print(f"outputs of this run go to {prefix}")
        try:  # a zones file named by a local path: into storage, where every step can read it
            zones = stage_zones(settings, params.get("zones"))
        except InputError as exc:
            raise AirflowFailException(str(exc)) from None
        pieces = split_aoi(aoi_geometry(params), float(params.get("tile_size_km") or 50))
        print(f"the area is processed in {len(pieces)} piece(s)")
        return {
            "search": search_arguments(params),
            "prefix": prefix,
            "key": key,
            "pieces": pieces,
            "zones": zones,
        }

    @task
    def plan_preprocess(search_result: dict, prefix: str, pieces: list) -> list[dict]:
        from candela.pipeline import preprocess_arguments

        return preprocess_arguments(search_result, prefix, list(pieces))

    @task(trigger_rule="none_failed")
    def plan_mosaics(stacks: list[dict], prefix: str) -> list[dict]:
        from airflow.sdk.exceptions import AirflowSkipException

        from candela.pipeline import mosaic_arguments

        jobs = mosaic_arguments(list(stacks or []), prefix)
        if not jobs:
            raise AirflowSkipException("no product has data over the area")
        return jobs

    @task
    def plan_changes(stacks: list[dict], prefix: str, zones: Any, device: str) -> list[dict]:
        from airflow.sdk.exceptions import AirflowSkipException

        from candela.pipeline import change_arguments, on_device

        params = get_current_context()["params"]
        jobs = change_arguments(list(stacks), prefix, params["model"], params["threshold"], zones)
        if not jobs:
            raise AirflowSkipException("fewer than two products: nothing to compare")
        mine, reason = on_device("changedetect", jobs, device)
        if not mine:
            raise AirflowSkipException(reason)
        return mine

    @task(trigger_rule="none_failed")
    def changes_done(on_cpu: Any, on_gpu: Any) -> list:
        # the results of whichever of detect_changes / detect_changes_gpu ran
        return [r for r in [*(on_cpu or []), *(on_gpu or [])] if r]

    @task(trigger_rule="none_failed")
    def plan_fusion(search_result: dict, stacks: list[dict], prefix: str, zones: Any) -> list[dict]:
        from airflow.sdk.exceptions import AirflowSkipException

        from candela.pipeline import fusion_arguments

        jobs, skipped = fusion_arguments(search_result, list(stacks or []), prefix, zones)
        for s in skipped:
            print(f"fuse_landcover: {s['date']} skipped: {s['reason']}")
        if not jobs:
            raise AirflowSkipException(
                "no Sentinel-2 date has a Sentinel-1 match: "
                + ("; ".join(s["reason"] for s in skipped) or "no product")
            )
        return jobs

    @task(trigger_rule="none_failed")
    def landcover_done(results: Any) -> dict:
        # None when fuse_landcover was skipped: the run goes on (load_rdf, publish)
        done = [r for r in (results or []) if r]
        if not done:
            return {"done": False, "reason": "no date had a Sentinel-1 match (see plan_fusion)"}
        return {"done": True, "maps": [r["outputs"]["landcover"] for r in done]}

    @task(trigger_rule="none_failed")
    def plan_rdf(changes: list[dict], landcover: list[dict], key: str) -> list[dict]:
        from airflow.sdk.exceptions import AirflowSkipException

        from candela.pipeline import kb_unreachable, rdf_jobs
        from candela.settings import get_settings

        ctx = get_current_context()
        jobs = rdf_jobs(
            list(changes or []), list(landcover or []), ctx["dag"].dag_id, ctx["run_id"], key
        )
        if not jobs:
            raise AirflowSkipException(
                "no change result and no land-cover map to load into the knowledge base"
            )
        reason = kb_unreachable(get_settings())
        if reason:
            raise AirflowSkipException(reason)
        return jobs

    @task(outlets=[RESULTS], trigger_rule="none_failed")
    def publish(stacks: list[dict], changes: list[dict], key: str, loaded: Any) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from candela.callbacks import _dsn
        from candela.pipeline import publish as publish_outputs
        from candela.settings import get_settings

        if not [s for s in (stacks or []) if s]:  # no data (search or preprocess skipped)
            raise AirflowSkipException("no product had data over the area: nothing to publish")
        ctx = get_current_context()
        return publish_outputs(
            get_settings(),
            ctx["dag"].dag_id,
            ctx["run_id"],
            key,
            dict(ctx["params"]),
            list(stacks or []),
            list(changes or []),
            _dsn(),
        )

    # XComArgs stand for the tasks' results until they run: typed loosely in the wiring
    plan: Any = plan_run()
    found = Step(
        task_id="search_products", service="search", service_args=plan["search"], **IO_STEP
    )
    jobs = plan_preprocess(found.output, plan["prefix"], plan["pieces"])
    pieces = Step.partial(task_id="preprocess", service="preprocess", **IO_STEP).expand(
        service_args=jobs
    )
    merges = plan_mosaics(pieces.output, plan["prefix"])
    stacks = Step.partial(task_id="mosaic", service="mosaic", **IO_STEP).expand(service_args=merges)
    # the run's model runs on a CPU (detect_changes) or on a GPU (detect_changes_gpu, GPU pool):
    # the other task is skipped with the reason
    detect = {
        "service": "changedetect",
        "retries": 1,
        "execution_timeout": timedelta(hours=2),
        "on_failure_callback": _remove_partial_outputs,
    }
    pairs = plan_changes(stacks.output, plan["prefix"], plan["zones"], "cpu")
    on_cpu = Step.partial(task_id="detect_changes", **detect).expand(service_args=pairs)
    gpu_pairs = plan_changes.override(task_id="plan_changes_gpu")(
        stacks.output, plan["prefix"], plan["zones"], "gpu"
    )
    on_gpu = Step.partial(task_id="detect_changes_gpu", pool=GPU_POOL, **detect).expand(
        service_args=gpu_pairs
    )
    changes: Any = changes_done(on_cpu.output, on_gpu.output)
    fusion_jobs = plan_fusion(found.output, stacks.output, plan["prefix"], plan["zones"])
    landcover = Step.partial(
        task_id="fuse_landcover", service="fusion", trigger_rule="none_failed", **IO_STEP
    ).expand(service_args=fusion_jobs)
    fused: Any = landcover_done(landcover.output)
    # the run's results and lineage → its named graph in the knowledge base [service rdf-etl]
    rdf = plan_rdf(changes, landcover.output, plan["key"])
    fused >> rdf  # the land cover is done (or skipped) before the load is planned
    loaded = Step.partial(task_id="load_rdf", service="rdf-etl", **IO_STEP).expand(service_args=rdf)
    published = publish(stacks.output, changes, plan["key"], loaded.output)
    fused >> published  # publish waits for the land cover even when load_rdf was skipped


s2_change_detection()
