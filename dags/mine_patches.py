"""mine_patches: preprocessed stacks cut into patches (features, encoder embeddings, quicklooks)
stored in PostgreSQL for data mining. Scheduled on the change-detection pipeline's results asset
(the stacks of the run that published) and run on demand (params: stack URIs or a source run
id). plan_mining → mine ×N (one task per stack, service datamining). Wiring only."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task

from candela.workflows import MinePatchesConf, dag_params
from candela_operators import step_operator_class

Step = step_operator_class()

RESULTS = Asset("candela://results/s2_change_detection")


@dag(
    dag_id="mine_patches",
    schedule=[RESULTS],
    catchup=False,
    tags=["candela", "data-mining", "event"],
    doc_md=__doc__,
    default_args={"owner": "candela", "retries": 0},
    params=dag_params(MinePatchesConf, Param),
)
def mine_patches() -> None:
    @task
    def plan_mining() -> list[dict]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from candela.callbacks import _dsn
        from candela.mine_jobs import plan
        from candela.settings import get_settings
        from candela.workflows import BadRunConf

        ctx = get_current_context()
        events = ctx["triggering_asset_events"].get(RESULTS) or []
        sources = [(e.source_dag_id, e.source_run_id) for e in events]
        try:
            jobs, reason = plan(get_settings(), _dsn(), dict(ctx["params"]), sources, ctx["run_id"])
        except BadRunConf as exc:
            raise AirflowFailException(str(exc)) from None
        if not jobs:
            raise AirflowSkipException(reason)
        print(f"{len(jobs)} stack(s) to mine: " + ", ".join(j["stack"] for j in jobs))
        return jobs

    Step.partial(
        task_id="mine",
        service="datamining",
        retries=1,
        retry_delay=timedelta(seconds=20),
        execution_timeout=timedelta(hours=2),
    ).expand(service_args=plan_mining())


mine_patches()
