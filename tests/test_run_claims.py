"""Output-key claims (candela.db.runs) and what a failed run leaves (candela.callbacks)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from candela.db import runs
from candela.runs import RunConflict

DAG = "s2_change_detection"


def _holder(dsn: str, key: str) -> str | None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT run_id FROM candela.run_claims WHERE output_key = %s", (key,)
        ).fetchone()
    return row[0] if row else None


def test_a_live_holder_refuses_an_identical_run(catalog_dsn: str) -> None:
    runs.claim(catalog_dsn, "k", DAG, "a")
    runs.claim(catalog_dsn, "k", DAG, "a")  # a retry of the same run keeps its claim
    with pytest.raises(RunConflict, match=r"an identical run \(a\)"):
        runs.claim(catalog_dsn, "k", DAG, "b", ended=lambda d, r: False)
    assert _holder(catalog_dsn, "k") == "a"


def test_a_claim_of_an_ended_run_is_free(catalog_dsn: str) -> None:
    asked = []

    def ended(dag_id: str, run_id: str) -> bool:
        asked.append((dag_id, run_id))
        return True

    runs.claim(catalog_dsn, "k", DAG, "a")
    runs.claim(catalog_dsn, "k", DAG, "b", ended=ended)
    assert asked == [(DAG, "a")]
    assert _holder(catalog_dsn, "k") == "b"


def test_release_by_run_id(catalog_dsn: str) -> None:
    runs.claim(catalog_dsn, "k1", DAG, "a")
    runs.claim(catalog_dsn, "k2", DAG, "b")
    assert runs.claimed_keys(catalog_dsn, DAG, "a") == ["k1"]
    assert runs.release_run(catalog_dsn, DAG, "a") == ["k1"]
    assert runs.release_run(catalog_dsn, DAG, "a") == []
    assert _holder(catalog_dsn, "k1") is None and _holder(catalog_dsn, "k2") == "b"
    runs.claim(catalog_dsn, "k1", DAG, "c", ended=lambda d, r: False)  # free again
    assert _holder(catalog_dsn, "k1") == "c"


@pytest.fixture
def platform_env(tmp_path: Path, catalog_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CANDELA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CANDELA_DATABASE_URL", catalog_dsn)
    monkeypatch.delenv("CANDELA_STORAGE_ROOT", raising=False)
    return tmp_path / "home" / "storage" / "results" / DAG


def _dag_context(run_id: str) -> dict:
    # what the dag-processor may hand a DAG callback: no dag_run, no params
    return {"dag": SimpleNamespace(dag_id=DAG), "run_id": run_id, "reason": "task_failure"}


def test_a_failed_run_leaves_nothing_and_frees_its_key(
    platform_env: Path, catalog_dsn: str
) -> None:
    from candela.callbacks import discard_failed_run

    runs.claim(catalog_dsn, "k1", DAG, "a")
    stacks = platform_env / "k1" / "a" / "stacks"
    stacks.mkdir(parents=True)
    (stacks / "half.tif").write_bytes(b"x")
    other = platform_env / "k1" / "b" / "stacks"  # another run with the same parameters
    other.mkdir(parents=True)
    (other / "its.tif").write_bytes(b"y")
    discard_failed_run(_dag_context("a"))
    assert not (platform_env / "k1" / "a").exists()
    assert (other / "its.tif").read_bytes() == b"y"
    assert runs.claimed_keys(catalog_dsn, DAG, "a") == []


def test_a_failed_rerun_never_touches_what_an_earlier_run_published(
    platform_env: Path, catalog_dsn: str
) -> None:
    from candela.callbacks import discard_failed_run

    prefix = platform_env / "k1" / "earlier"
    (prefix / "stacks").mkdir(parents=True)
    (prefix / "stacks" / "a.tif").write_bytes(b"published")
    (prefix / "run.json").write_text(json.dumps({"run_id": "earlier"}))
    (platform_env / "k1" / "rerun").mkdir()
    (platform_env / "k1" / "rerun" / "half.tif").write_bytes(b"x")
    runs.claim(catalog_dsn, "k1", DAG, "rerun")
    discard_failed_run(_dag_context("rerun"))
    assert (prefix / "stacks" / "a.tif").read_bytes() == b"published"
    assert (prefix / "run.json").exists()
    assert not (platform_env / "k1" / "rerun").exists()
    assert runs.claimed_keys(catalog_dsn, DAG, "rerun") == []


def test_a_refused_duplicate_leaves_the_winners_outputs(
    platform_env: Path, catalog_dsn: str
) -> None:
    from candela.callbacks import discard_failed_run

    runs.claim(catalog_dsn, "k1", DAG, "winner")
    (platform_env / "k1" / "winner").mkdir(parents=True)
    (platform_env / "k1" / "winner" / "x.tif").write_bytes(b"x")
    with pytest.raises(RunConflict):
        runs.claim(catalog_dsn, "k1", DAG, "loser", ended=lambda d, r: False)
    discard_failed_run(_dag_context("loser"))
    assert (platform_env / "k1" / "winner" / "x.tif").exists()
    assert _holder(catalog_dsn, "k1") == "winner"


def test_success_releases_from_a_context_without_params(catalog_dsn: str, monkeypatch) -> None:
    from candela.callbacks import release_claim

    monkeypatch.setenv("CANDELA_DATABASE_URL", catalog_dsn)
    runs.claim(catalog_dsn, "k1", DAG, "a")
    release_claim(_dag_context("a"))
    assert _holder(catalog_dsn, "k1") is None


def test_run_has_ended_asks_airflow() -> None:
    from candela.callbacks import run_has_ended

    def ti(state: object) -> SimpleNamespace:
        def get(dag_id: str, run_id: str) -> object:
            if isinstance(state, Exception):
                raise state
            return state

        return SimpleNamespace(get_dagrun_state=get)

    assert run_has_ended(ti("failed"), DAG, "a")
    assert run_has_ended(ti(SimpleNamespace(value="success")), DAG, "a")
    assert not run_has_ended(ti("running"), DAG, "a")
    assert not run_has_ended(ti(RuntimeError("no answer")), DAG, "a")
