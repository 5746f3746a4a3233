"""``candela mine sql`` answers the documented query (README, Data mining) over patches mined by
the service from a real Sentinel-2 crop; refuses a writing statement and cancels a long one with
one clear line. ``mine_patches`` plans one job per stack of a published run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from candela.cli_mine import EXAMPLE_QUERY, app
from candela.mine_jobs import plan
from candela.settings import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def mined(catalog_dsn: str, tmp_path: Path) -> str:
    """The OSCD Bordeaux bands of 2016-05-04 (data/oscd) as a 10-band stack, mined at 32 px."""
    import rasterio

    from candela_mine.service import SERVICE
    from candela_sdk.cog import CogSpec, write_cog
    from candela_sdk.contract import main

    bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    folder = REPO / "data" / "oscd" / "bordeaux" / "imgs_1"
    files = {b: next(folder.glob(f"*_{b}.tif")) for b in bands}
    with rasterio.open(files["B02"]) as ref:
        h, w, crs, transform = ref.height, ref.width, ref.crs, ref.transform
    layers = []
    for b in bands:  # 20 m bands onto the 10 m grid (nearest)
        with rasterio.open(files[b]) as src:
            layers.append(src.read(1, out_shape=(h, w)))
    data = np.stack(layers)
    spec = CogSpec(width=w, height=h, count=10, dtype="uint16", crs=crs, transform=transform,
                   nodata=0, band_names=bands, scales=[1e-4] * 10, offsets=[0.0] * 10)  # fmt: skip
    stack = write_cog(tmp_path / "bordeaux.tif", data.astype(np.uint16), spec)
    code = main(SERVICE, ["--stack", stack, "--size", "32", "--dataset", "oscd",
                          "--dsn", catalog_dsn, "--quicklooks", str(tmp_path / "ql")])  # fmt: skip
    assert code == 0
    return catalog_dsn


def test_mine_sql_answers_the_documented_query_and_refuses_writes(
    mined: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDELA_DATABASE_URL", mined)
    runner = CliRunner()
    res = runner.invoke(app, ["sql", EXAMPLE_QUERY, "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.splitlines()[0])
    assert out["columns"] == ["dataset", "patches", "mean_ndvi"]
    [(dataset, patches, mean_ndvi)] = out["rows"]
    with psycopg.connect(mined) as conn:
        n = conn.execute("SELECT count(*) FROM candela.mine_patches").fetchone()
    assert dataset == "oscd" and patches == n[0] > 10
    # Bordeaux in May: a city with parks and fields, NDVI between bare and dense vegetation
    assert 0.05 < float(mean_ndvi) < 0.7

    res = runner.invoke(app, ["sql", "UPDATE candela.mine_patches SET dataset = 'x'"])
    assert res.exit_code == 2 and "refused: UPDATE is not a read-only query" in res.output
    res = runner.invoke(app, ["sql", "SELECT pg_sleep(3)", "--timeout", "0.3"])
    assert res.exit_code == 1 and "cancelled: the statement ran longer than the 0.3 s" in res.output
    res = runner.invoke(app, ["sql", "SELECT id FROM candela.mine_v_patches", "--max-rows", "2"])
    assert res.exit_code == 0 and "cut at --max-rows 2" in res.output


def test_plan_one_job_per_stack_of_a_published_run(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "home", storage_root=(tmp_path / "st").as_uri())
    run_dir = tmp_path / "st" / "results" / "s2_change_detection" / "k1" / "run-a"
    run_dir.mkdir(parents=True)
    stacks = ["file:///x/a.tif", "file:///x/b.tif"]
    item = run_dir / "landcover" / "item.json"
    item.parent.mkdir()
    item.write_text(json.dumps({"links": [{"rel": "derived_from", "href": stacks[1]},
                                          {"rel": "derived_from", "href": "file:///x/s1.tif"}]}))  # fmt: skip
    summary = {"run_id": "run-a", "stacks": stacks, "landcover": [{"item": item.as_uri()}]}
    (run_dir / "run.json").write_text(json.dumps(summary))
    jobs, reason = plan(s, None, {"size": 48}, [("s2_change_detection", "run-a")], "m1")
    assert [j["stack"] for j in jobs] == stacks and reason == ""
    assert "radar" not in jobs[0] and jobs[1]["radar"] == "file:///x/s1.tif"  # fused date
    assert jobs[0] == {"stack": stacks[0], "size": 48, "min_valid": 0.5,
                       "dataset": "sentinel-2", "run_id": "m1"}  # fmt: skip
    jobs, _ = plan(s, None, {"source_run_id": "run-a", "stacks": [stacks[1], "file:///c.tif"]},
                   [], "m2")  # fmt: skip
    assert [j["stack"] for j in jobs] == [stacks[1], "file:///c.tif", stacks[0]]
    jobs, reason = plan(s, None, {}, [], "m3")
    assert jobs == [] and reason == "nothing to mine: give stacks or source_run_id"
    jobs, reason = plan(s, None, {}, [("s2_change_detection", "unknown")], "m4")
    assert jobs == [] and "published no stack" in reason
