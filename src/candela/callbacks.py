"""Airflow callbacks of the pipelines (kept light: imports happen when they run)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def _dsn() -> str | None:
    """The platform tables' DSN, ``None`` when there is no database to record in."""
    from candela_sdk.settings import platform_dsn

    return platform_dsn()


def release_claim(context: Any) -> None:
    """DAG success/failure callback: free the run's output key for the next identical run."""
    from candela.db.runs import release
    from candela.runs import workflow_key
    from candela.workflows import BadRunConf

    dsn = _dsn()
    dag_run = context.get("dag_run")
    if dsn is None or dag_run is None:
        return
    dag_id = dag_run.dag_id
    try:
        key = workflow_key(dag_id, dict(context.get("params") or {}))
    except BadRunConf:  # refused in plan_run: it never claimed anything
        return
    if release(dsn, key, dag_run.run_id):
        log.info("released output key %s of %s", key, dag_run.run_id)


def remove_partial_outputs(context: Any) -> None:
    """Task failure callback: remove temporaries an interrupted step left beside its output."""
    from candela_sdk.storage import remove_temporaries

    task = context.get("task")
    args = getattr(task, "service_args", None)
    if not isinstance(args, dict) or not args.get("output"):
        return
    try:
        removed = remove_temporaries(str(args["output"]))
    except Exception as exc:  # a callback must not hide the task's own error
        log.warning("could not clean up beside %s: %s", args["output"], exc)
        return
    for r in removed:
        log.info("removed partial output %s", r)
