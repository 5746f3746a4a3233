"""Every DAG file imports cleanly, is wiring only, and follows the house rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
IO_TASKS = {"search_products", "preprocess", "mosaic"}
HEAVY = ("rasterio", "numpy", "tensorflow", "keras", "boto3", "psycopg", "great_expectations")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found"


def test_one_dag_per_file_named_like_the_file(dagbag) -> None:
    files = sorted(p.stem for p in DAGS.glob("*.py") if not p.name.startswith("_"))
    assert sorted(dagbag.dag_ids) == files
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id


def test_tags_and_retries(dagbag) -> None:
    for dag in dagbag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"
        for task in dag.tasks:
            if task.task_id in IO_TASKS:
                assert task.retries >= 2, f"{dag.dag_id}.{task.task_id} needs retries >= 2"


def test_pipeline_shape(dagbag) -> None:
    dag = dagbag.dags["s2_change_detection"]
    order = ["search_products", "preprocess", "mosaic", "detect_changes", "publish"]
    ids = {t.task_id for t in dag.tasks}
    assert set(order) <= ids
    for up, down in zip(order, order[1:], strict=False):
        assert down in _descendants(dag, up), f"{down} does not follow {up}"


def test_fuse_landcover_is_a_fusion_step_that_never_stops_the_run(dagbag) -> None:
    dag = dagbag.dags["s2_change_detection"]
    step = dag.get_task("fuse_landcover")
    assert step.partial_kwargs["service"] == "fusion"
    assert "fuse_landcover" in _descendants(dag, "mosaic")
    assert "publish" in _descendants(dag, "fuse_landcover")
    # publish waits for the land cover directly (load_rdf may be skipped before it is done)
    assert "publish" in dag.get_task("landcover_done").downstream_task_ids
    # a date without a Sentinel-1 match skips the step, not the rest of the run
    for task_id in ("plan_fusion", "fuse_landcover", "landcover_done", "publish"):
        assert dag.get_task(task_id).trigger_rule == "none_failed", task_id


def _descendants(dag, task_id: str) -> set[str]:
    seen: set[str] = set()
    todo = [task_id]
    while todo:
        for d in dag.get_task(todo.pop()).downstream_task_ids:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


@pytest.mark.parametrize("dag_file", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_import_nothing_heavy(dag_file: Path) -> None:
    code = (
        "import runpy, sys\n"
        f"runpy.run_path({str(dag_file)!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), f"heavy imports: {out.stdout}"


def test_load_rdf_is_the_rdf_etl_step(dagbag) -> None:
    dag = dagbag.dags["s2_change_detection"]
    load = dag.get_task("load_rdf")  # one job per kind: change results, land-cover maps
    assert load.partial_kwargs["service"] == "rdf-etl"
    assert "plan_rdf" in _descendants(dag, "fuse_landcover")
    assert "load_rdf" in _descendants(dag, "detect_changes")
    assert "publish" in _descendants(dag, "load_rdf")
    # a skipped fuse_landcover must not skip the load; no result → skipped with its reason
    assert dag.get_task("plan_rdf").trigger_rule == "none_failed"
    context = dagbag.dags["context_etl"]
    mapped = context.get_task("load_context")
    assert mapped.partial_kwargs.get("service") == "rdf-etl"


def test_mine_patches_runs_on_the_results_asset_one_mine_step_per_stack(dagbag) -> None:
    dag = dagbag.dags["mine_patches"]
    assets = dag.timetable.asset_condition.objects
    assert [a.uri for a in assets] == ["candela://results/s2_change_detection"]
    step = dag.get_task("mine")
    assert step.partial_kwargs["service"] == "datamining"
    assert "mine" in dag.get_task("plan_mining").downstream_task_ids
    assert {"stacks", "source_run_id", "size", "encoder"} <= set(dag.params)
