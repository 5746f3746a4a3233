"""cluster_autoscaler: a deferrable sensor watches the cluster (pending pods and their requests,
node load, the work waiting) and fires when the scaling policy has something to do (or every
10 minutes, to record a pass); one pass then decides per node group and acts, or, the default,
plans only (`CANDELA_SCALING_MODE=plan`: decisions recorded in candela.scaling_decisions,
nothing created). One run at a time, a new one every 5 minutes (a run lasts as long as its sensor
waits, so the watch is nearly continuous; "@continuous" was not used: after a failed run Airflow
3.3 kept retrying the same logical date). Wiring only: candela.scaling."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from candela_operators.poll import PollSensor


@dag(
    dag_id="cluster_autoscaler",
    schedule=timedelta(minutes=5),
    max_active_runs=1,
    catchup=False,
    is_paused_upon_creation=False,
    tags=["candela", "platform", "scaling"],
    doc_md=__doc__,
    # retried: the first run may start before the API server answers
    default_args={"owner": "candela", "retries": 3, "retry_delay": timedelta(seconds=30)},
)
def cluster_autoscaler() -> None:
    watch = PollSensor(
        task_id="watch_cluster",
        target="candela.scaling.autoscaler:watch",
        target_kwargs={"heartbeat_s": 600},
        poll_s=30,
        timeout=timedelta(hours=1).total_seconds(),
    )

    @task(execution_timeout=timedelta(minutes=45))
    def scale(event: dict | None = None) -> list[dict]:
        from candela.scaling.autoscaler import run_once

        print(f"woken: {event}")
        rows = run_once()
        for r in rows:
            print(f"{r['group']}: {r['action']} {r['count']} [{r['outcome']}] {r['why']}")
        return [{k: r[k] for k in ("group", "action", "count", "outcome")} for r in rows]

    scale(watch.output)  # type: ignore[arg-type]


cluster_autoscaler()
