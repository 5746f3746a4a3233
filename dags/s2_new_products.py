"""s2_new_products: new Sentinel-2 products in the catalogue → change detection against the
previous product of the same tile. Scheduled on the catalogue asset that `candela catalog add`
updates. Wiring only."""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, dag, get_current_context, task

CATALOG = Asset("candela://catalog/products")


@dag(
    dag_id="s2_new_products",
    schedule=[CATALOG],
    catchup=False,
    tags=["candela", "sentinel-2", "event"],
    doc_md=__doc__,
    default_args={"owner": "candela", "retries": 0},
)
def s2_new_products() -> None:
    @task(retries=2)
    def plan_runs() -> list[dict]:
        from airflow.sdk.exceptions import AirflowSkipException

        from candela.callbacks import _dsn
        from candela.triggers import pair_runs_for_new_products

        events = get_current_context()["triggering_asset_events"][CATALOG]
        ids = sorted({p for e in events for p in (e.extra or {}).get("products", [])})
        print(f"{len(ids)} new product(s): {', '.join(ids)}")
        dsn = _dsn()
        confs = pair_runs_for_new_products(dsn, ids) if dsn else []
        if not confs:
            raise AirflowSkipException("no new product has an earlier product to compare with")
        return confs

    TriggerDagRunOperator.partial(
        task_id="start_change_detection", trigger_dag_id="s2_change_detection"
    ).expand(conf=plan_runs())


s2_new_products()
