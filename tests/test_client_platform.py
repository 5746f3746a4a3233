"""The SDK (candela_client) and the example notebooks against the real embedded platform.

The test session's shared platform (``shared_platform`` in the root conftest: the Bordeaux
sample in its catalogue; other modules' runs may be there too). Order matters: the demo run of the progress-bar test publishes the result that the search, read and
knowledge-base tests and the search-and-read notebook use.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from candela_client import CandelaError, Client, S3Config
from tests.platform_helpers import BORDEAUX, REPO, Platform

pytestmark = [pytest.mark.integration]

NOTEBOOKS = REPO / "notebooks"


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform


@pytest.fixture(scope="module")
def env(platform: Platform) -> dict[str, str]:
    """What `candela notebook` hands the notebooks."""
    from candela.cli_notebook import notebook_env

    return notebook_env(platform.settings())


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[Client]:
    with Client.from_env(env) as c:
        yield c


@pytest.fixture(scope="module")
def demo_run(env: dict[str, str]) -> dict[str, Any]:
    """Filled by the progress-bar test: the demo run and what its bar showed."""
    return {}


def test_notebook_env_reaches_the_platform(platform: Platform, env: dict[str, str]) -> None:
    assert env["CANDELA_URL"] == platform.base and env["CANDELA_USERNAME"] == "admin"
    r = platform.candela("notebook", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "-m jupyterlab" in r.stdout and f"CANDELA_URL={platform.base}" in r.stdout
    assert env["CANDELA_PASSWORD"] not in r.stdout and "CANDELA_PASSWORD=***" in r.stdout


def test_bad_parameters_are_refused_with_the_reason(client: Client) -> None:
    with pytest.raises(CandelaError) as err:
        client.trigger({**BORDEAUX, "model": "magic"})
    assert err.value.status == 400 and "unknown change model 'magic'" in str(err.value)
    with pytest.raises(CandelaError) as err:
        client.run("no-such-run")
    assert err.value.status == 404


def test_progress_bar_follows_the_demo_run(client: Client, demo_run: dict[str, Any]) -> None:
    """`candela demo`'s run through the SDK: the tqdm bar counts the steps as they finish
    (mapped steps join the total as they expand) and ends full."""
    from tqdm import tqdm

    from candela.cli import DEMO_CONF

    seen: list[tuple[float, float | None, str]] = []

    class Bar(tqdm):  # type: ignore[type-arg]
        def refresh(self, *a: Any, **k: Any) -> Any:
            seen.append((self.n, self.total, str(self.postfix or "")))
            return super().refresh(*a, **k)

    out = io.StringIO()
    bar = Bar(total=0, file=out, desc="demo", unit="step")
    started = time.monotonic()
    run = client.follow(client.trigger(DEMO_CONF), progress=bar, poll=0.5)
    demo_run.update(run=run, seconds=time.monotonic() - started)
    assert run.state == "success", run.tasks
    done = [n for n, total, _ in seen if total]
    totals = [total for _, total, _ in seen if total]
    assert done == sorted(done) and totals == sorted(totals)  # never goes back
    assert seen[-1][0] == seen[-1][1] == len(run.tasks) >= 10
    assert any(0 < n < (total or 0) for n, total, _ in seen)  # seen part-way, not only at the end
    assert any("detect_changes" in postfix for _, _, postfix in seen)  # the running step named
    assert f"{len(run.tasks)}/{len(run.tasks)}" in out.getvalue()


def test_search_and_read_in_place(client: Client, demo_run: dict[str, Any]) -> None:
    run = demo_run["run"]
    (item,) = client.results(run)
    assert item["properties"]["candela:run_id"] == run.run_id
    found = client.search(bbox=[-0.62, 44.86, -0.6, 44.88], collections=["s2_change_detection"])
    assert item["id"] in {i["id"] for i in found}
    assert client.search(bbox=[10, 50, 10.1, 50.1]) == []
    uri = item["assets"]["change_probability"]["candela:href"]
    with rasterio.open(uri.removeprefix("file://")) as ds:
        whole, transform, crs = ds.read(1, masked=True), ds.transform, ds.crs
    part = client.read(item, "change_probability", bbox=[-0.62, 44.86, -0.6, 44.88])
    assert 0 < part.shape[1] < whole.shape[0] and 0 < part.shape[2] < whole.shape[1]
    row0 = round((part.transform.f - transform.f) / transform.e)
    col0 = round((part.transform.c - transform.c) / transform.a)
    expected = whole[row0 : row0 + part.shape[1], col0 : col0 + part.shape[2]]
    assert np.array_equal(part.data[0].filled(-9), expected.filled(-9))
    da = client.open_result(item, "change_mask")  # xarray: rioxarray is in the dev group
    assert str(da.rio.crs) == str(crs) and da.shape[1:] == whole.shape
    summary = client.summary(run)
    (res,) = summary["results"]
    m = np.asarray(da).squeeze()
    assert abs(float((m[m != 255] == 1).mean()) - res["changed_fraction"]) < 1e-6
    with pytest.raises(Exception, match="no asset 'nope'"):
        client.read(item, "nope")


def test_read_in_place_from_s3(client: Client, demo_run: dict[str, Any], s3_session: Any) -> None:
    """The same window from an S3 object (SeaweedFS) as from the file: GDAL /vsis3/ with the
    endpoint and keys of the configuration; wrong keys are a clear error."""
    (item,) = client.results(demo_run["run"])
    path = Path(item["assets"]["change_probability"]["candela:href"].removeprefix("file://"))
    s3_session.client().upload_file(str(path), "candela", "sdk-test/prob.tif")
    s3 = S3Config.from_env(s3_session.env())
    assert s3 is not None
    box = [-0.62, 44.86, -0.6, 44.88]
    local = client.read(str(path), bbox=box)
    remote = Client(client.url, token=client.token, s3=s3).read(
        "s3://candela/sdk-test/prob.tif", bbox=box
    )
    assert remote.shape == local.shape and remote.transform == local.transform
    assert np.array_equal(remote.data.filled(-9), local.data.filled(-9))
    # (another object: GDAL caches what it read, keys included)
    s3_session.client().upload_file(str(path), "candela", "sdk-test/locked.tif")
    wrong = S3Config(s3.endpoint_url, s3.access_key_id, "wrong-secret")
    with pytest.raises(Exception, match="cannot open s3://candela/sdk-test/locked.tif"):
        Client(client.url, token=client.token, s3=wrong).read("s3://candela/sdk-test/locked.tif")


def test_run_a_service_as_an_ogc_process(client: Client) -> None:
    ids = {p["id"] for p in client.processes()}
    assert {"search", "changedetect", "s2_change_detection"} <= ids
    products = client.search_products(
        collection="sentinel-2-l1c", bbox=BORDEAUX["bbox"], start="2016-01-01", end="2017-12-31"
    )
    assert sorted(p["properties"]["datetime"][:10] for p in products) == [
        "2016-05-04",
        "2017-10-26",
    ]


def test_knowledge_base(client: Client, demo_run: dict[str, Any]) -> None:
    assert client.has_knowledge_base()
    rows = client.sparql(
        "PREFIX cdl: <https://w3id.org/candela/ontology#>\n"
        "SELECT ?run WHERE { ?run a cdl:WorkflowRun ; cdl:runId "
        + json.dumps(demo_run["run"].run_id)
        + " }"
    )
    assert len(rows) == 1
    with pytest.raises(CandelaError) as err:
        client.sparql("INSERT DATA { <a:b> <a:c> <a:d> }")
    assert err.value.status == 400


def _execute(path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    import nbformat
    from nbclient import NotebookClient

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "committed outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    return nb


def _text(nb: Any) -> str:
    return "\n".join(
        o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )


def test_notebook_search_and_read(
    env: dict[str, str], demo_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = _execute(NOTEBOOKS / "search-and-read.ipynb", env, monkeypatch)
    text = _text(nb)
    assert "result(s) over Bordeaux" in text and "window (1, " in text and "CRS EPSG:" in text


@pytest.mark.slow
def test_notebook_bordeaux_frost(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _execute(NOTEBOOKS / "bordeaux-frost.ipynb", env, monkeypatch)
    text = _text(nb)
    assert "changed share read back" in text, text
    # the communes went into the knowledge base before the run: its change areas lie in some
    communes = re.search(r"(\d+) commune\(s\) with more than 1 ha changed", text)
    assert communes and int(communes.group(1)) >= 1, text
    assert "vineyard parcel(s) more than 30 % changed" in text, text
    assert "image/png" in json.dumps([o for c in nb.cells for o in c.get("outputs", [])])


@pytest.mark.slow
def test_notebook_compare_models(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    nb = _execute(NOTEBOOKS / "compare-models.ipynb", env, monkeypatch)
    text = _text(nb)
    assert "intersection over union" in text
    for model in ("cva", "irmad", "encoder"):
        assert f"{model:8} changed" in text
