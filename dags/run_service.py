"""run_service: one processing service, run once with the given arguments.

The generic DAG behind the OGC API – Processes endpoint of each single service
(``/ogc/processes/{service}/execution``): ``check_arguments`` validates the run configuration
(``candela.workflows.RunServiceConf``: the service and its arguments, through the service's
parameter model), then one ``Step`` runs the service: ``run_step``, or ``run_step_gpu`` in the
GPU pool when the step's model runs on a GPU (the other is skipped with the reason). Wiring only.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from candela.workflows import RunServiceConf, dag_params
from candela_operators import GPU_POOL, step_operator_class

Step = step_operator_class()


@dag(
    dag_id="run_service",
    schedule=None,
    catchup=False,
    tags=["candela", "service"],
    doc_md=__doc__,
    default_args={"owner": "candela", "retries": 0},
    max_active_runs=16,
    params=dag_params(RunServiceConf, Param),
)
def run_service() -> None:
    @task
    def check_arguments(device: str) -> list[dict]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from candela.services import get_service
        from candela.workflows import BadRunConf, validate_conf
        from candela_sdk.errors import InputError

        params = get_current_context()["params"]
        try:  # the typed run configuration: a known service, arguments its parameter model takes
            validate_conf("run_service", dict(params))
            on = get_service(params["service"]).device_for(dict(params["arguments"]))
        except (BadRunConf, InputError) as exc:
            raise AirflowFailException(str(exc)) from None
        if on != device:  # the step is the other task's (a GPU model: run_step_gpu, GPU pool)
            raise AirflowSkipException(f"the step runs on a {on.upper()}: not this task's")
        return [{"service": params["service"], "service_args": dict(params["arguments"])}]

    step = {"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True}
    Step.partial(task_id="run_step", **step).expand_kwargs(check_arguments("cpu"))
    Step.partial(task_id="run_step_gpu", pool=GPU_POOL, **step).expand_kwargs(
        check_arguments.override(task_id="check_arguments_gpu")("gpu")
    )


run_service()
