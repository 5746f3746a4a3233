"""s2_watches: every day, each saved watch whose period has elapsed starts a change-detection run
over the products since the last one it compared (`candela watch add`). Wiring only."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="s2_watches",
    schedule=timedelta(days=1),
    catchup=False,
    tags=["candela", "sentinel-2", "schedule"],
    doc_md=__doc__,
    default_args={"owner": "candela", "retries": 0},
)
def s2_watches() -> None:
    @task(retries=2)
    def due_watches() -> list[dict]:
        import datetime as dt

        from airflow.sdk.exceptions import AirflowSkipException

        from candela.callbacks import _dsn
        from candela.db.runs import mark_watch_run
        from candela.triggers import due_watch_runs

        dsn = _dsn()
        if dsn is None:
            raise AirflowSkipException("the platform database is not reachable")
        now = dt.datetime.now(dt.UTC)
        due = due_watch_runs(dsn, now)
        if not due:
            raise AirflowSkipException("no watch is due")
        run_id = get_current_context()["run_id"]
        for name, conf in due:
            print(f"watch {name}: {conf}")
            mark_watch_run(dsn, name, run_id, now)
        return [conf for _, conf in due]

    TriggerDagRunOperator.partial(
        task_id="start_change_detection", trigger_dag_id="s2_change_detection"
    ).expand(conf=due_watches())


s2_watches()
