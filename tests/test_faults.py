"""Fault injection on a real embedded platform: a failed run, a step, the scheduler and
PostgreSQL killed with SIGKILL mid-run.

Every run must end cleanly within a bounded wait (success after a retry, or a clean failure),
leave no process of the platform's home but its components, no partial output under its
results prefix (no temporaries; nothing at all after a failure unless a run published there),
and no claim on its output key. One platform (cheap model, Bordeaux sample) serves the module.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.platform_helpers import BORDEAUX, DAG, Platform, platform_with_bordeaux

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = ("candela-preprocess", "candela-mosaic", "candela-changedetect")
NO_DATA = {**BORDEAUX, "bbox": [10.0, 50.0, 10.1, 50.1], "tile": None}


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    # a home of its own, not under pytest's numbered temporary folders: another pytest session
    # of the same user prunes those, and would pull the data folder from under PostgreSQL
    top = Path(tempfile.mkdtemp(prefix="candela-faults-"))
    try:
        with platform_with_bordeaux(top / "home", quiet=True) as p:
            yield p
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _client(p: Platform) -> Any:
    from candela import embedded
    from candela.airflow_api import AirflowClient

    s = p.settings()  # a patient client: the API server may be slow on a loaded machine
    return AirflowClient(s.api_url, "admin", embedded.admin_password(s), timeout=120)


@pytest.fixture
def client(platform: Platform) -> Iterator[Any]:
    with _client(platform) as c:
        yield c


def _dsn(p: Platform) -> str:
    from candela import embedded

    return embedded.platform_dsn(p.settings())


def _claims_of(p: Platform, run_id: str) -> list[str]:
    from candela.db.runs import claimed_keys

    return claimed_keys(_dsn(p), DAG, run_id)


def _xcom(c: Any, run_id: str, key: str) -> Any:
    r = c.request(
        "GET",
        f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/plan_run/xcomEntries/{key}",
        params={"deserialize": True},
    )
    assert r.status_code == 200, r.text
    return r.json()["value"]


def _step_processes(p: Platform, run_id: str | None = None) -> list[Any]:
    """Live processes of this home's pipeline steps (the services' CLIs), of one run."""
    import psutil

    from candela.embedded import PLATFORM_MARK

    home = str(p.settings().home_abs)
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if not any(a.endswith(STEPS) for a in cmd[:2]):
            continue
        try:
            env = proc.environ()
            if env.get(PLATFORM_MARK) != home or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if run_id is None or env.get("AIRFLOW_CTX_DAG_RUN_ID") == run_id:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _wait_for_step(p: Platform, run_id: str, names: tuple[str, ...], timeout: float = 300) -> Any:
    """The first step process of ``names`` once it has run a moment (it is writing)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in _step_processes(p, run_id):
            try:
                if any(a.endswith(names) for a in proc.cmdline()[:2]):
                    if time.time() - proc.create_time() > 1.0:
                        return proc
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no {names} process within {timeout} s")


def _assert_ended_cleanly(p: Platform, c: Any, run_id: str, prefix: str) -> Any:
    """The run ends (bounded), and leaves no process, no partial output and no claim."""
    from candela import embedded

    final = c.follow(DAG, run_id, lambda st: None, timeout=600)
    assert final.state in ("success", "failed"), final
    # the DAG callback (run later by the dag-processor) cleans up, then frees the claim: wait
    # for it before looking at the files
    deadline = time.monotonic() + 120
    while _claims_of(p, run_id) and time.monotonic() < deadline:
        time.sleep(2)
    assert _claims_of(p, run_id) == []
    root = Path(prefix.removeprefix("file://"))
    if final.tasks.get("publish") == "success":
        assert (root / "run.json").exists(), final.tasks
    else:  # a failed run removed what it wrote
        assert not root.exists() or list(root.iterdir()) == [], list(root.rglob("*"))
    partial = [x for x in root.rglob("*") if ".tmp" in x.name or x.name.endswith(".uploading")]
    assert partial == []
    deadline = time.monotonic() + 30
    while (_step_processes(p, run_id) or embedded.orphans(p.settings())) and (
        time.monotonic() < deadline
    ):
        time.sleep(1)
    assert _step_processes(p, run_id) == []
    assert embedded.orphans(p.settings()) == []
    return final


def test_a_failed_run_leaves_nothing_and_frees_its_key(
    platform: Platform, client: Any, tmp_path: Path
) -> None:
    """Zones that are not GeoJSON: the stacks are written, change detection fails at once (bad
    input: no retry); the run's prefix is removed and its key is free again. (Zones that do not
    exist stop the run earlier, in plan_run: candela.run_inputs.)"""
    started = time.monotonic()
    zones = tmp_path / "zones.geojson"
    zones.write_text("this is not GeoJSON")
    conf = {**BORDEAUX, "threshold": 0.43, "zones": str(zones)}
    run_id = client.trigger(DAG, conf)["dag_run_id"]
    final = client.follow(DAG, run_id, lambda st: None, timeout=600)
    assert final.state == "failed", final.tasks
    assert final.tasks["mosaic[0]"] == "success"  # it wrote outputs before it failed
    assert any(k.startswith("detect_changes") and v == "failed" for k, v in final.tasks.items())
    prefix = _xcom(client, run_id, "prefix")
    _assert_ended_cleanly(platform, client, run_id, prefix)
    assert not Path(prefix.removeprefix("file://")).exists()
    print(f"failed run: {time.monotonic() - started:.0f} s")


def test_a_claim_held_by_an_ended_run_is_free(platform: Platform, client: Any) -> None:
    """A claim whose release was lost (its run has ended) does not refuse the next run."""
    from candela.runs import workflow_key

    ended = client.trigger(DAG, NO_DATA)["dag_run_id"]
    assert client.follow(DAG, ended, lambda st: None, timeout=300).state == "success"
    conf = {**NO_DATA, "threshold": 0.44}
    key = workflow_key(DAG, conf)  # the one rule: the typed conf, defaults filled in
    import psycopg

    with psycopg.connect(_dsn(platform)) as conn:  # the lost release
        conn.execute(
            "INSERT INTO candela.run_claims (output_key, dag_id, run_id) VALUES (%s, %s, %s)",
            (key, DAG, ended),
        )
    run_id = client.trigger(DAG, conf)["dag_run_id"]
    final = client.follow(DAG, run_id, lambda st: None, timeout=300)
    assert _xcom(client, run_id, "key") == key  # the claim it met was this run's key
    assert final.state == "success", client.task_log(DAG, run_id, "plan_run")
    _assert_ended_cleanly(platform, client, run_id, _xcom(client, run_id, "prefix"))


def test_a_step_killed_mid_write_is_retried(platform: Platform, client: Any) -> None:
    started = time.monotonic()
    run_id = client.trigger(DAG, {**BORDEAUX, "threshold": 0.41})["dag_run_id"]
    step = _wait_for_step(platform, run_id, ("candela-preprocess", "candela-changedetect"))
    name = next(a for a in step.cmdline()[:2] if a.endswith(STEPS)).rsplit("/", 1)[-1]
    os.kill(step.pid, signal.SIGKILL)
    final = _assert_ended_cleanly(platform, client, run_id, _xcom(client, run_id, "prefix"))
    assert final.state == "success", final.tasks  # the killed step was retried
    task = "preprocess" if name == "candela-preprocess" else "detect_changes"
    tries = [
        ti["try_number"]
        for ti in client.task_instances(DAG, run_id)
        if ti["task_id"] == task and ti["state"] == "success"
    ]
    assert max(tries) >= 2, tries
    print(f"{name} killed: {time.monotonic() - started:.0f} s")


def _kill_component_mid_run(platform: Platform, client: Any, pid: int | None, threshold: float):
    run_id = client.trigger(DAG, {**BORDEAUX, "threshold": threshold})["dag_run_id"]
    prefix = None
    deadline = time.monotonic() + 120
    while prefix is None and time.monotonic() < deadline:  # plan_run has run
        r = client.request(
            "GET",
            f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/plan_run/xcomEntries/prefix",
            params={"deserialize": True},
        )
        prefix = r.json()["value"] if r.status_code == 200 else None
        time.sleep(1)
    assert prefix, "plan_run did not run"
    _wait_for_step(platform, run_id, STEPS)
    assert pid
    os.kill(pid, signal.SIGKILL)
    time.sleep(2)
    r = platform.candela("up")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Candela is up" in r.stdout
    return run_id, prefix


def test_the_scheduler_killed_mid_run(platform: Platform) -> None:
    from candela import embedded

    started = time.monotonic()
    with _client(platform) as c:
        scheduler = embedded.component_pid(platform.settings(), "scheduler")
        run_id, prefix = _kill_component_mid_run(platform, c, scheduler, 0.42)
    with _client(platform) as c:  # a new login: the API server may have restarted
        final = _assert_ended_cleanly(platform, c, run_id, prefix)
    print(f"scheduler killed: run {final.state} in {time.monotonic() - started:.0f} s")


def test_postgresql_killed_mid_run(platform: Platform) -> None:
    from candela import embedded

    started = time.monotonic()
    with _client(platform) as c:
        postmaster = embedded._pg_pid(platform.settings())
        run_id, prefix = _kill_component_mid_run(platform, c, postmaster, 0.45)
    with _client(platform) as c:
        final = _assert_ended_cleanly(platform, c, run_id, prefix)
    print(f"postgresql killed: run {final.state} in {time.monotonic() - started:.0f} s")
    r = platform.candela("status")
    assert r.returncode == 0 and "healthy at" in r.stdout, r.stdout


# --- `up` and `down` after kill -9 and at the end (moved from test_platform.py, which runs on the
# session's shared platform: these stop its components, so they run here, last, on this one)


def test_dead_scheduler_and_database_are_repaired_by_up(platform: Platform) -> None:
    """kill -9 of the scheduler and of PostgreSQL: `status` says so (exit 1, the API server is
    not called healthy), `up` restarts both, stops the orphans and says up only when healthy."""
    import os
    import signal

    from candela import embedded

    settings = platform.settings()
    scheduler = embedded.component_pid(settings, "scheduler")
    postmaster = embedded._pg_pid(settings)
    assert scheduler and postmaster
    os.kill(scheduler, signal.SIGKILL)
    os.kill(postmaster, signal.SIGKILL)
    time.sleep(2)
    r = platform.candela("status")
    assert r.returncode == 1, r.stdout
    assert "healthy at" not in r.stdout
    r = platform.candela("up")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Candela is up" in r.stdout
    r = platform.candela("status")
    assert r.returncode == 0, r.stdout
    assert "healthy at" in r.stdout and "orphan" not in r.stdout
    assert embedded.orphans(settings) == []


def test_down_leaves_nothing_running(platform: Platform) -> None:
    r = platform.candela("down")
    assert r.returncode == 0
    assert "postgresql" in r.stdout
    time.sleep(1)
    leftovers = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            env = (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(platform.home) in cmd or str(platform.home).encode() in env:
            leftovers.append(cmd)
    assert leftovers == []
    r = platform.candela("status")
    assert r.returncode == 1
