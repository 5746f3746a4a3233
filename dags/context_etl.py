"""context_etl: (re)load the knowledge base's context sources (administrative units, weather
observations) every week and on demand. Each source is one `rdf-etl` step that replaces the
source's named graph; the sources are the `sources` parameter, else the JSON list in
`CANDELA_KB_CONTEXT`, else the samples shipped in `data/`. Wiring only.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from candela_operators import step_operator_class

Step = step_operator_class()


@dag(
    dag_id="context_etl",
    schedule=timedelta(days=7),
    catchup=False,
    tags=["candela", "knowledge-base", "context"],
    doc_md=__doc__,
    default_args={"owner": "candela", "retries": 0},
    params={
        "sources": Param(
            [],
            type="array",
            description="rdf-etl arguments per source, e.g. "
            '[{"source": "communes", "inputs": ["s3://…/communes.geojson"]}]; empty: the configured list',
        )
    },
)
def context_etl() -> None:
    @task(retries=2)
    def plan_context() -> list[dict]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from candela.kb import BadParameter, context_jobs

        try:
            jobs = context_jobs(list(get_current_context()["params"].get("sources") or []))
        except BadParameter as exc:
            raise AirflowFailException(str(exc)) from None
        if not jobs:
            raise AirflowSkipException("no context source is configured (CANDELA_KB_CONTEXT)")
        return jobs

    Step.partial(
        task_id="load_context", service="rdf-etl", retries=2, retry_delay=timedelta(seconds=30)
    ).expand(service_args=plan_context())


context_etl()
