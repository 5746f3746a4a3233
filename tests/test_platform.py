"""The embedded platform for real: `candela up`, the REST API, pipeline runs.

These tests use the test session's shared platform (``shared_platform`` in the root conftest:
started on first use under a temporary CANDELA_HOME on a free loopback port, the Bordeaux sample
catalogued, stopped at session end), so other modules' runs may be there too. The tests that kill
its components or stop it (`up` repairing a dead scheduler, `down` leaving nothing running) are
in tests/test_faults.py, on a platform of their own.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.platform_helpers import BORDEAUX, REPO, Platform

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform


def test_up_says_where_and_how_to_log_in(platform: Platform) -> None:
    assert f"http://localhost:{platform.port}" in platform.up_output
    assert "login: admin / " in platform.up_output


def test_status_reports_every_component_healthy(platform: Platform) -> None:
    for _ in range(10):  # heartbeats can lag on a loaded machine
        r = platform.candela("status")
        if "healthy at" in r.stdout and r.returncode == 0:
            break
        time.sleep(3)
    assert r.returncode == 0, r.stdout
    for name in ("postgresql", "api-server", "scheduler", "dag-processor", "triggerer"):
        assert name in r.stdout
    assert "healthy at" in r.stdout


def test_up_twice_reports_what_runs(platform: Platform) -> None:
    r = platform.candela("up")
    assert r.returncode == 0
    assert "already running" in r.stdout
    assert f"localhost:{platform.port}" in r.stdout


def test_busy_port_is_refused(platform: Platform, tmp_path: Path) -> None:
    other = Platform(tmp_path / "other", platform.port)
    r = other.candela("up", "--port", str(platform.port))
    assert r.returncode == 1
    assert f"port {platform.port} is already in use" in r.stderr
    assert not (tmp_path / "other" / "pg" / "postmaster.pid").exists()


def test_login_and_api(platform: Platform) -> None:
    with platform.client() as c:
        assert "s2_change_detection" in c.list_dags()
        r = c.request("GET", "/api/v2/importErrors")
        assert r.json()["total_entries"] == 0
    import httpx

    bad = httpx.post(
        f"http://localhost:{platform.port}/auth/token",
        json={"username": "admin", "password": "wrong"},
    )
    assert bad.status_code in (401, 403)


def test_unknown_dag(platform: Platform) -> None:
    r = platform.candela("run", "no_such_dag")
    assert r.returncode == 1
    assert "unknown DAG id 'no_such_dag'" in r.stderr


def test_invalid_params_are_refused_before_any_task(platform: Platform) -> None:
    r = platform.candela("run", "s2_change_detection", "--conf", '{"max_cloud": 150}')
    assert r.returncode == 1
    assert "max_cloud" in r.stderr and "150" in r.stderr
    assert "triggered" not in r.stdout  # refused by the schema: no run was created


def test_unknown_model_is_refused_before_any_run(platform: Platform) -> None:
    r = platform.candela("run", "s2_change_detection", "--conf", '{"model": "magic"}')
    assert r.returncode == 1
    assert "model: unknown change model 'magic'" in r.stderr
    assert "triggered" not in r.stdout  # refused by the run configuration: no run was created


def test_bad_conf_through_rest_is_refused_at_the_call(platform: Platform) -> None:
    # straight through the REST API (no CLI check): the API server's run guard validates the
    # conf through the workflow's model (cross-field rules, unknown keys) before a run exists
    from candela.airflow_api import AirflowApiError

    with platform.client() as c:
        c.unpause("s2_change_detection")
        refused = [
            ({"start": "2018-01-01", "end": "2017-01-01"}, "start"),
            ({"bbox": [1, 0, 0, 1]}, "west"),
            ({"colour": "red"}, "colour: unknown parameter"),
            ({"threshold": 7}, "threshold"),
        ]
        confs = [conf for conf, _ in refused]

        def with_refused_conf() -> list:  # (the shared platform's other runs may start meanwhile)
            runs = c.runs(1000, "s2_change_detection")
            return [r["dag_run_id"] for r in runs if (r.get("conf") or {}) in confs]

        before = with_refused_conf()
        for conf, named in refused:
            with pytest.raises(AirflowApiError) as err:
                c.trigger("s2_change_detection", conf)
            assert err.value.status == 400 and named in str(err.value), str(err.value)
        assert with_refused_conf() == before


def _wait_for_run(c, dag_id: str, pred, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = c.request("GET", f"/api/v2/dags/{dag_id}/dagRuns").json()["dag_runs"]
        hits = [r for r in runs if pred(r)]
        if hits:
            return hits[0]
        time.sleep(2)
    raise AssertionError(f"no {dag_id} run appeared in {timeout} s")


def test_catalogue_event_starts_change_detection(platform: Platform) -> None:
    """Entry point "catalogue event": adding products emits an asset event; s2_new_products
    compares the new 2017 product with the 2016 one through s2_change_detection. (The shared
    platform's fixture added the sample to its fresh catalogue: that add is the event.)"""
    added = platform.catalog_added
    assert "2 added" in added and "announced 2 new product(s)" in added, added
    with platform.client() as c:
        _wait_for_run(c, "s2_new_products", lambda r: True)
        event_run = min(  # the first: the Bordeaux sample's (other samples may be added later)
            c.request("GET", "/api/v2/dags/s2_new_products/dagRuns").json()["dag_runs"],
            key=lambda r: str(r.get("queued_at") or r.get("run_after") or ""),
        )
        st = c.follow("s2_new_products", event_run["dag_run_id"], lambda s: None, timeout=300)
        assert st.state == "success", st.tasks
        triggered = _wait_for_run(
            c,
            "s2_change_detection",
            lambda r: (
                r["run_type"] == "operator_triggered"
                and r["conf"].get("start") == "2016-05-04"
                and r["conf"].get("end") == "2017-10-26"
            ),
        )
        st = c.follow("s2_change_detection", triggered["dag_run_id"], lambda s: None, timeout=600)
        assert st.state == "success", st.tasks
        assert st.tasks["publish"] == "success"
    # no model in the event's conf: the DAG's default, the TensorFlow encoder, ran in the pipeline
    (result,) = _summary_of(platform, triggered["dag_run_id"])["results"]
    assert result["model"] == "encoder"
    again = platform.candela("catalog", "add", str(REPO / "data" / "oscd" / "bordeaux"))
    assert "0 added, 2 updated" in again.stdout and "announced" not in again.stdout


def test_watch_starts_runs_on_schedule(platform: Platform) -> None:
    """Entry point "schedule": a saved watch; the daily s2_watches DAG starts its run."""
    r = platform.candela(
        "watch",
        "add",
        "bordeaux-north",
        "--bbox",
        "-0.66",
        "44.84",
        "-0.57",
        "44.92",
        "--every-days",
        "5",
        "--since",
        "2016-01-01",
        "--collection",
        "sentinel-2-l1c",
        "--tile",
        "T30TXQ",
    )
    assert r.returncode == 0, r.stderr
    assert "bordeaux-north" in platform.candela("watch", "list").stdout
    with platform.client() as c:
        tick = c.trigger("s2_watches", {})  # what the daily schedule does
        st = c.follow("s2_watches", tick["dag_run_id"], lambda s: None, timeout=300)
        assert st.state == "success", st.tasks
        started = _wait_for_run(
            c,
            "s2_change_detection",
            lambda r: r["conf"].get("bbox") == [-0.66, 44.84, -0.57, 44.92],
        )
        st = c.follow("s2_change_detection", started["dag_run_id"], lambda s: None, timeout=600)
        assert st.state == "success", st.tasks
        # not due again before 5 days: the next tick starts nothing
        tick = c.trigger("s2_watches", {})
        st = c.follow("s2_watches", tick["dag_run_id"], lambda s: None, timeout=300)
        assert st.tasks["due_watches"] == "skipped"
    assert "manual__" in platform.candela("watch", "list").stdout
    bad = platform.candela("watch", "add", "x", "--bbox", "1", "1", "0", "0")
    assert bad.returncode != 0 and "bbox: west 1.0 must be less than east 0.0" in bad.stderr
    bad = platform.candela("watch", "add", "x", "--bbox", "0", "0", "1", "1", "--model", "magic")
    assert bad.returncode != 0 and "model: unknown change model 'magic'" in bad.stderr


def _summary_of(platform: Platform, run_id: str) -> dict:
    root = Path(platform.home) / "storage" / "results" / "s2_change_detection"
    for f in root.glob("*/*/run.json"):  # results/<dag>/<key>/<run>/run.json
        summary = json.loads(f.read_text())
        if summary["run_id"] == run_id:
            return summary
    raise AssertionError(f"no run.json for {run_id}")


def _run_id(stdout: str) -> str:
    return stdout.split("triggered s2_change_detection run ", 1)[1].split()[0]


def test_bordeaux_pipeline_end_to_end(
    platform: Platform, shared_bordeaux_run: tuple[str, subprocess.CompletedProcess[str]]
) -> None:
    """The session's Bordeaux run (``candela run`` with ``BORDEAUX``), shared with the modules
    that only read it."""
    import numpy as np
    import rasterio

    from candela_sdk.cog import is_cog

    _, r = shared_bordeaux_run
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "change map:" in r.stdout and "STAC item:" in r.stdout

    summary = _summary_of(platform, _run_id(r.stdout))
    (result,) = summary["results"]
    outputs = {k: Path(v.removeprefix("file://")) for k, v in result["outputs"].items()}

    prob, mask = outputs["change_probability"], outputs["change_mask"]
    assert is_cog(prob)[0] and is_cog(mask)[0]
    with rasterio.open(prob) as p, rasterio.open(mask) as m:
        pa = p.read(1, masked=True)
        ma = m.read(1)
        assert p.dtypes[0] == "float32" and m.dtypes[0] == "uint8"
        assert 0.0 <= float(pa.min()) and float(pa.max()) <= 1.0
        assert set(np.unique(ma)) <= {0, 1, 255}
        # OSCD Bordeaux: about 1 % of the area changed; a sane detector flags a small share
        assert 0.001 < float((ma == 1).mean()) < 0.3
    assert outputs["quicklook"].stat().st_size > 1000

    item = json.loads(Path(summary["results"][0]["item"].removeprefix("file://")).read_text())
    derived = [link["href"] for link in item["links"] if link["rel"] == "derived_from"]
    assert len(derived) == 2
    assert item["properties"]["processing:software"]
    assert item["properties"]["candela:model"] == "cva"

    # the run is visible through the REST API (and so in the UI), and recorded as a result
    with platform.client() as c:
        runs_api = c.request("GET", "/api/v2/dags/s2_change_detection/dagRuns").json()
        assert any(x["state"] == "success" for x in runs_api["dag_runs"])
    import psycopg

    from candela import embedded
    from candela.settings import Settings

    dsn = embedded.platform_dsn(Settings(home=platform.home, port=platform.port))
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT run_id FROM candela.results WHERE id = %s", (item["id"],)
        ).fetchone()
    assert row == (summary["run_id"],)


def test_large_area_in_pieces_is_mosaicked(
    platform: Platform, shared_bordeaux_run: tuple[str, subprocess.CompletedProcess[str]]
) -> None:
    """The same area cut into ~6 km pieces: preprocessed in parallel, mosaicked, and the merged
    stacks equal the stacks of the run in one piece."""
    import numpy as np
    import rasterio

    r = platform.candela(
        "run",
        "s2_change_detection",
        "--conf",
        json.dumps({**BORDEAUX, "tile_size_km": 3}),
        timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # `candela run` (not a terminal here): one short line per step whose state changed
    assert re.search(r"preprocess \((\d+)\) +\1× success", r.stdout), r.stdout
    assert int(re.search(r"preprocess \((\d+)\)", r.stdout)[1]) >= 4
    assert re.search(r"mosaic \(2\) +2× success", r.stdout), r.stdout
    steps = [x for x in r.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d ", x)]
    assert steps and max(len(x) for x in steps) <= 100
    tiled = _summary_of(platform, _run_id(r.stdout))
    whole = _summary_of(platform, shared_bordeaux_run[0])  # the same area in one piece
    assert whole["params"].get("tile_size_km") == 50
    assert len(tiled["stacks"]) == len(whole["stacks"]) == 2
    for a, b in zip(sorted(tiled["stacks"]), sorted(whole["stacks"]), strict=True):
        with (
            rasterio.open(a.removeprefix("file://")) as x,
            rasterio.open(b.removeprefix("file://")) as y,
        ):
            assert x.transform == y.transform and x.shape == y.shape
            assert np.array_equal(x.read(), y.read())


def test_rest_api_with_the_official_client(platform: Platform) -> None:
    """Entry point "REST": the README's apache-airflow-client example runs the pipeline."""
    from candela import embedded
    from candela.settings import Settings

    password = embedded.admin_password(Settings(home=platform.home, port=platform.port))
    r = subprocess.run(
        [sys.executable, str(REPO / "examples/trigger_with_client.py"),
         f"http://localhost:{platform.port}", "admin", password],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert ": success" in r.stdout


def test_rerun_keeps_both_runs(
    platform: Platform, shared_bordeaux_run: tuple[str, subprocess.CompletedProcess[str]]
) -> None:
    """The same parameters again: a new prefix under the same key, a new result row, and the
    earlier run's outputs, run.json and result stay as they were; the new run names it. (The
    first run is the session's Bordeaux run.)"""
    root = Path(platform.home) / "storage" / "results" / "s2_change_detection"
    assert platform.candela("catalog", "add", str(REPO / "data/oscd/bordeaux")).returncode == 0
    first_id = shared_bordeaux_run[0]
    first = _summary_of(platform, first_id)
    first_json = Path(first["prefix"].removeprefix("file://"), "run.json").read_text()
    first_files = {
        p: p.stat().st_mtime_ns for p in Path(first["prefix"].removeprefix("file://")).rglob("*")
    }
    first_rows = _results_of(platform, first_id)
    r = platform.candela("run", "s2_change_detection", "--conf", json.dumps(BORDEAUX), timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    second = _summary_of(platform, _run_id(r.stdout))
    assert second["run_id"] != first_id and second["output_key"] == first["output_key"]
    assert second["prefix"] != first["prefix"]
    assert first_id in second["same_parameters_as"]
    assert len(list((root / first["output_key"]).glob("*/run.json"))) >= 2
    assert Path(first["prefix"].removeprefix("file://"), "run.json").read_text() == first_json
    assert {
        p: p.stat().st_mtime_ns for p in Path(first["prefix"].removeprefix("file://")).rglob("*")
    } == first_files
    # (a catalogue event may start other runs meanwhile: count the rows of these two)
    assert _results_of(platform, first_id) == first_rows and len(first_rows) == 1
    assert len(_results_of(platform, second["run_id"])) == 1
    with platform.client() as c:  # both runs in the results STAC API, each with its own item
        found = c.request("GET", "/candela/stac/search", params={"limit": 1000}).json()
    by_run = {f["properties"]["candela:run_id"] for f in found["features"]}
    assert {first_id, second["run_id"]} <= by_run


def test_identical_runs_at_once_are_refused(platform: Platform) -> None:
    """Three runs with the same parameters at once: the first starts, the others are refused at
    the call (409, naming the running one); no run is created for them."""
    from candela.airflow_api import AirflowApiError

    assert platform.candela("catalog", "add", str(REPO / "data/oscd/bordeaux")).returncode == 0
    conf = {**BORDEAUX, "threshold": 0.6}
    with platform.client() as c:

        def count() -> int:  # runs with these parameters (other runs may start meanwhile)
            return sum(r.get("conf") == conf for r in c.runs(1000, "s2_change_detection"))

        before = count()
        first = c.trigger("s2_change_detection", conf)["dag_run_id"]
        for _ in range(2):
            with pytest.raises(AirflowApiError) as err:
                c.trigger("s2_change_detection", conf)
            assert err.value.status == 409 and first in str(err.value), str(err.value)
        assert count() == before + 1
        final = c.follow("s2_change_detection", first, lambda st: None, timeout=600)
        assert final.state == "success", final.tasks
        # ended: the same parameters may run again (the claim was released)
        again = c.trigger("s2_change_detection", conf)["dag_run_id"]
        final = c.follow("s2_change_detection", again, lambda st: None, timeout=600)
        assert final.state == "success", final.tasks


def test_area_without_products_ends_as_no_data(platform: Platform) -> None:
    conf = {**BORDEAUX, "bbox": [10.0, 50.0, 10.1, 50.1], "tile": None}
    r = platform.candela("run", "s2_change_detection", "--conf", json.dumps(conf), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no data" in r.stdout


def _results_of(platform: Platform, run_id: str) -> list[tuple]:
    """(id, created_at, item) of the run's rows in candela.results."""
    import psycopg

    from candela import embedded
    from candela.settings import Settings

    dsn = embedded.platform_dsn(Settings(home=platform.home, port=platform.port))
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT id, created_at, item FROM candela.results WHERE run_id = %s ORDER BY id",
            (run_id,),
        ).fetchall()


def test_fusion_demo_sample_draws_a_land_cover_map(platform: Platform, tmp_path: Path) -> None:
    """`candela demo --fusion`'s run: one S2 date with its S1 match, so no change pair but a
    land-cover map from both sensors, published and on the review page."""
    from candela.cli import DEMO_FUSION_CONF, DEMO_FUSION_SAMPLE

    r = platform.candela("catalog", "add", str(DEMO_FUSION_SAMPLE))
    assert r.returncode == 0, r.stdout + r.stderr
    r = platform.candela(
        "run", "s2_change_detection", "--conf", json.dumps(DEMO_FUSION_CONF), timeout=900
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "land cover (S1+S2):" in r.stdout and "review page:" in r.stdout
    summary = _summary_of(platform, _run_id(r.stdout))
    (lc,) = summary["landcover"]
    item = json.loads(Path(lc["item"].removeprefix("file://")).read_text())
    assert item["properties"]["candela:days_apart"] < 1
    assert set(item["assets"]) >= {"landcover", "source", "confidence", "quicklook"}
    # load_rdf put the run's land-cover zones into the knowledge base (graph landcover-run)
    rq = tmp_path / "landcover-zones.rq"
    rq.write_text(
        "PREFIX cdl: <https://w3id.org/candela/ontology#>\n"
        "PREFIX prov: <http://www.w3.org/ns/prov#>\n"
        "SELECT (COUNT(?z) AS ?zones) WHERE { ?z a cdl:LandCoverZone ; prov:wasGeneratedBy ?run ."
        f' ?run cdl:runId "{_run_id(r.stdout)}" }}'
    )
    q = platform.candela("kb", "query", str(rq), "--format", "json")
    assert q.returncode == 0, q.stdout + q.stderr
    (row,) = json.loads(q.stdout)["results"]["bindings"]
    assert int(row["zones"]["value"]) > 0


def test_mine_patches_fills_the_tables_after_the_runs(platform: Platform) -> None:
    """Each published run's results asset starts mine_patches: after the runs above (and the
    wait `candela demo` ends with), every published stack is in candela.mine_patches with its
    quicklooks, `candela mine sql` answers the documented query, and mining a run again on
    demand rewrites nothing (its mine steps are skipped)."""
    import psycopg

    from candela import embedded
    from candela.cli_mine import EXAMPLE_QUERY, demo_mining

    assert demo_mining(platform.settings(), "s2_change_detection", timeout_s=600) == 0
    with platform.client() as c:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:  # the asset events of every earlier run
            runs = c.request("GET", "/api/v2/dags/mine_patches/dagRuns").json()["dag_runs"]
            if all(r["state"] in ("success", "failed") for r in runs):
                break
            time.sleep(3)
        assert runs and all(r["state"] == "success" for r in runs), runs
    root = Path(platform.home) / "storage" / "results" / "s2_change_detection"
    summaries = [json.loads(f.read_text()) for f in root.glob("*/*/run.json")]
    stacks = {s for summary in summaries for s in summary["stacks"]}
    dsn = embedded.platform_dsn(platform.settings())
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT stack_uri, count(*), min(quicklook_uri) FROM candela.mine_patches"
            " GROUP BY stack_uri"
        ).fetchall()
    mined = {r[0]: r[1] for r in rows}
    assert stacks and stacks <= set(mined), stacks - set(mined)
    assert all(Path(r[2].removeprefix("file://")).is_file() for r in rows)
    total = sum(mined.values())

    q = platform.candela("mine", "sql", EXAMPLE_QUERY, "--format", "json")
    assert q.returncode == 0, q.stdout + q.stderr
    answer = json.loads(q.stdout)
    assert answer["columns"] == ["dataset", "patches", "mean_ndvi"]
    assert sum(row[1] for row in answer["rows"]) == total
    q = platform.candela("mine", "sql", "DELETE FROM candela.mine_patches")
    assert q.returncode == 2 and "refused: DELETE is not a read-only query" in q.stdout + q.stderr

    again = summaries[0]["run_id"]
    with platform.client() as c:
        run = c.trigger("mine_patches", {"source_run_id": again})
        final = _wait_for_run(
            c, "mine_patches",
            lambda r: r["dag_run_id"] == run["dag_run_id"] and r["state"] in ("success", "failed"),
        )  # fmt: skip
        assert final["state"] == "success"
        states = {ti["state"] for ti in c.task_instances("mine_patches", run["dag_run_id"])
                  if ti["task_id"] == "mine"}  # fmt: skip
        assert states == {"skipped"}  # already mined: nothing rewritten
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM candela.mine_patches").fetchone() == (total,)


def test_home_is_private(platform: Platform) -> None:
    """Modes, not access (the tests may run as root): nothing under the home is for others."""
    import stat

    from candela import embedded

    assert stat.S_IMODE(platform.home.stat().st_mode) == embedded.home_mode()
    loose = []
    for path in platform.home.rglob("*"):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or stat.S_ISSOCK(mode):
            continue
        if stat.S_IMODE(mode) & 0o077:
            loose.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(platform.home)}")
    assert loose == []


def test_internal_servers_listen_on_loopback_only(platform: Platform) -> None:
    import psutil

    from candela import embedded

    settings = platform.settings()
    pids = {p.pid for p in embedded.platform_processes(settings)}
    listening = [
        c
        for c in psutil.net_connections(kind="inet")
        if c.pid in pids and c.status == psutil.CONN_LISTEN
    ]
    assert {c.laddr.port for c in listening} >= {platform.port}
    assert [c for c in listening if c.laddr.ip not in ("127.0.0.1", "::1")] == []
    ports = embedded.recorded_ports(settings)
    assert set(ports) == set(embedded.INTERNAL_PORTS)
    assert not {8793, 8794, 8974} & {c.laddr.port for c in listening}
