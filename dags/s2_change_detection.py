"""s2_change_detection: Sentinel-2 change detection over an area and a period.

search_products → preprocess (one task per product) → detect_changes (one task per
consecutive pair) → publish. Wiring only: the work happens in the processing services.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from candela_operators import step_operator_class

Step = step_operator_class()

IO_RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True}


@dag(
    dag_id="s2_change_detection",
    schedule=None,
    catchup=False,
    tags=["candela", "sentinel-2", "change-detection"],
    doc_md=__doc__,
    default_args={"owner": "candela", "retries": 0},
    params={
        "collection": Param(
            "sentinel-2-l1c",
            enum=["sentinel-2-l1c", "sentinel-2-l2a"],
            description="Sentinel-2 collection to search",
        ),
        "bbox": Param(
            [-0.68, 44.83, -0.56, 44.93],
            type=["array", "null"],
            items={"type": "number"},
            minItems=4,
            maxItems=4,
            description="area of interest as [west, south, east, north] in degrees (WGS 84)",
        ),
        "aoi": Param(
            None,
            type=["object", "null"],
            description="area of interest as a GeoJSON geometry (overrides bbox)",
        ),
        "start": Param("2016-01-01", type="string", format="date", description="first day"),
        "end": Param("2017-12-31", type="string", format="date", description="last day"),
        "max_cloud": Param(
            100, type="number", minimum=0, maximum=100, description="maximum cloud cover, %"
        ),
        "tile": Param(
            None,
            type=["string", "null"],
            pattern="^T[0-9]{2}[A-Z]{3}$",
            description="MGRS tile, e.g. T30TXQ",
        ),
        "model": Param("cva", enum=["cva", "irmad"], description="change detection model"),
        "threshold": Param(
            "auto",
            type=["string", "number"],
            description="'auto' or a change-probability threshold in [0, 1]",
        ),
    },
)
def s2_change_detection() -> None:
    @task(multiple_outputs=True)
    def plan_run() -> dict:
        from candela.pipeline import run_prefix, search_arguments
        from candela.settings import get_settings

        ctx = get_current_context()
        params = dict(ctx["params"])
        prefix = run_prefix(get_settings(), ctx["dag"].dag_id, ctx["run_id"])
        return {"search": search_arguments(params), "prefix": prefix}

    @task
    def plan_preprocess(search_result: dict, prefix: str) -> list[dict]:
        from candela.pipeline import preprocess_arguments

        return preprocess_arguments(search_result, prefix)

    @task
    def plan_changes(stacks: list[dict], prefix: str) -> list[dict]:
        from airflow.sdk.exceptions import AirflowSkipException

        from candela.pipeline import change_arguments

        params = get_current_context()["params"]
        jobs = change_arguments(list(stacks), prefix, params["model"], params["threshold"])
        if not jobs:
            raise AirflowSkipException("fewer than two products: nothing to compare")
        return jobs

    @task
    def publish(stacks: list[dict], changes: list[dict]) -> dict:
        from candela.embedded import PlatformError, platform_dsn
        from candela.pipeline import publish as publish_outputs
        from candela.settings import get_settings

        ctx = get_current_context()
        settings = get_settings()
        try:
            dsn: str | None = platform_dsn(settings)
        except PlatformError:
            dsn = None
        return publish_outputs(
            settings,
            ctx["dag"].dag_id,
            ctx["run_id"],
            dict(ctx["params"]),
            list(stacks),
            list(changes),
            dsn,
        )

    plan = plan_run()
    found = Step(
        task_id="search_products", service="search", service_args=plan["search"], **IO_RETRIES
    )
    jobs = plan_preprocess(found.output, plan["prefix"])
    stacks = Step.partial(task_id="preprocess", service="preprocess", **IO_RETRIES).expand(
        service_args=jobs
    )
    pairs = plan_changes(stacks.output, plan["prefix"])
    changes = Step.partial(task_id="detect_changes", service="changedetect", retries=1).expand(
        service_args=pairs
    )
    publish(stacks.output, changes.output)


s2_change_detection()
