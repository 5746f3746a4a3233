"""run_service: one processing service, run once with the given arguments.

The generic DAG behind the OGC API – Processes endpoint of each single service
(``/ogc/processes/{service}/execution``): ``check_arguments`` validates the arguments against
the service's parameter model, then one ``Step`` runs the service. Wiring only.
"""

from __future__ import annotations

from datetime import timedelta
from importlib.metadata import entry_points

from airflow.sdk import Param, dag, get_current_context, task

from candela_operators import step_operator_class

Step = step_operator_class()

# entry-point names only (= service names): nothing of the services is imported here
SERVICES = sorted({ep.name for ep in entry_points(group="candela.services")})


@dag(
    dag_id="run_service",
    schedule=None,
    catchup=False,
    tags=["candela", "service"],
    doc_md=__doc__,
    default_args={"owner": "candela", "retries": 0},
    max_active_runs=16,
    params={
        "service": Param(
            SERVICES[0] if SERVICES else "search",
            type="string",
            enum=SERVICES or ["search"],
            description="processing service (see `candela services`)",
        ),
        "arguments": Param(
            {}, type="object", description="the service's parameters (its JSON Schema)"
        ),
    },
)
def run_service() -> None:
    @task
    def check_arguments() -> list[dict]:
        from candela_operators.command import build_command

        params = get_current_context()["params"]
        build_command(params["service"], dict(params["arguments"]))  # raises on bad arguments
        return [{"service": params["service"], "service_args": dict(params["arguments"])}]

    Step.partial(
        task_id="run_step",
        retries=2,
        retry_delay=timedelta(seconds=20),
        retry_exponential_backoff=True,
    ).expand_kwargs(check_arguments())


run_service()
