"""Airflow callbacks of the pipelines (kept light: imports happen when they run).

The DAG-level callbacks run in the dag-processor (Airflow 3), with a context that may hold no
more than the DAG, the run id and the reason (no ``dag_run``, no ``params`` when the run has no
last task instance): they work from the run id alone, never from recomputed parameters.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

ENDED_STATES = ("success", "failed")


def _dsn() -> str | None:
    """The platform tables' DSN, ``None`` when there is no database to record in."""
    from candela_sdk.settings import platform_dsn

    return platform_dsn()


def _run_of(context: Any) -> tuple[str, str] | None:
    """(dag_id, run_id) of a callback's context."""
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None)
    dag_id = getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None)
    return (str(dag_id), str(run_id)) if dag_id and run_id else None


def release_claim(context: Any) -> None:
    """DAG success callback: free the run's output keys for the next identical run."""
    from candela.db.runs import release_run

    dsn, run = _dsn(), _run_of(context)
    if dsn is None or run is None:
        log.warning("cannot release the claims of %s: no database or no run id", run)
        return
    for key in release_run(dsn, *run):
        log.info("released output key %s of %s", key, run[1])


def discard_failed_run(context: Any) -> None:
    """DAG failure callback: remove what the run wrote under its output prefix (unless a run
    published there), then free its output keys."""
    from candela.db.runs import claimed_keys
    from candela.pipeline import discard_outputs
    from candela.settings import get_settings

    dsn, run = _dsn(), _run_of(context)
    if dsn is not None and run is not None:
        # only the keys this run holds: a run refused as a duplicate holds none, and must not
        # touch the outputs of the run that refused it
        for key in claimed_keys(dsn, *run):
            try:
                discard_outputs(get_settings(), run[0], run[1], key)
            except Exception as exc:  # the claim is released all the same
                log.warning("could not remove the outputs of %s (%s): %s", run[1], key, exc)
    release_claim(context)


def run_has_ended(ti: Any, dag_id: str, run_id: str) -> bool:
    """Whether Airflow says the run ``run_id`` has ended (from a running task: ``ti``)."""
    try:
        state = ti.get_dagrun_state(dag_id, run_id)
    except Exception as exc:  # unknown: the claim stands (until it is stale)
        log.warning("could not read the state of %s: %s", run_id, exc)
        return False
    return str(getattr(state, "value", state)) in ENDED_STATES


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
