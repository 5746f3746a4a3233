"""run_service: one processing service, run once with the given arguments.

The generic DAG behind the OGC API – Processes endpoint of each single service
(``/ogc/processes/{service}/execution``): ``check_arguments`` validates the run configuration
(``candela.workflows.RunServiceConf``: the service and its arguments, through the service's
parameter model), then one ``Step`` runs the service. Wiring only.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from candela.workflows import RunServiceConf, dag_params
from candela_operators import step_operator_class

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
    def check_arguments() -> list[dict]:
        from airflow.sdk.exceptions import AirflowFailException

        from candela.workflows import BadRunConf, validate_conf

        params = get_current_context()["params"]
        try:  # the typed run configuration: a known service, arguments its parameter model takes
            validate_conf("run_service", dict(params))
        except BadRunConf as exc:
            raise AirflowFailException(str(exc)) from None
        return [{"service": params["service"], "service_args": dict(params["arguments"])}]

    Step.partial(
        task_id="run_step",
        retries=2,
        retry_delay=timedelta(seconds=20),
        retry_exponential_backoff=True,
    ).expand_kwargs(check_arguments())


run_service()
