"""``candela-fusion classify``: outputs, source band, tiling, STAC item, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from candela_fusion.cli import dispatch
from candela_sdk.errors import ExitCode

BEN = Path(__file__).resolve().parents[3] / "data" / "bigearthnet"


def _run(capsys, *args: str) -> tuple[int, dict | None, str]:
    code = dispatch(["classify", *map(str, args)])
    out, err = capsys.readouterr()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return code, (json.loads(lines[-1]) if lines else None), err


@pytest.fixture(scope="module")
def cloud_mask(chip, tmp_path_factory) -> Path:
    """A cloud mask over the left half of the crop (1 = cloud)."""
    path = tmp_path_factory.mktemp("mask") / "cloud.tif"
    with rasterio.open(chip["optical"]) as ds:
        prof = ds.profile | {"count": 1, "dtype": "uint8", "nodata": None}
    mask = np.zeros((128, 128), np.uint8)
    mask[:, :64] = 1
    with rasterio.open(path, "w", **prof) as out:
        out.write(mask[None])
    return path


def test_fused_uses_radar_under_clouds(chip, cloud_mask, tmp_path, capsys) -> None:
    out = tmp_path / "lc"
    code, result, err = _run(
        capsys,
        "--optical", chip["optical"], "--radar", chip["radar"], "--model", "fused",
        "--optical-mask", cloud_mask, "--optical-mask-kind", "cloud", "--output", out,
    )  # fmt: skip
    assert code == 0, err
    res = result
    assert res["outputs"]["landcover"].endswith("/landcover.tif")
    assert res["days_apart"] == pytest.approx(2.2917, abs=1e-3)
    assert res["source_pixels"]["radar"] == 128 * 64
    assert res["source_pixels"]["optical+radar"] == 128 * 64
    with rasterio.open(out / "source.tif") as ds:
        src = ds.read(1)
        assert ds.colormap(1)[1][:3] == (230, 120, 30)
    assert (src[:, :64] == 1).all() and (src[:, 64:] == 3).all()
    with rasterio.open(out / "landcover.tif") as ds:
        lc = ds.read(1)
        assert ds.colormap(1)[1][:3] == (31, 100, 200)  # Water's colour from the class table
    with rasterio.open(out / "confidence.tif") as ds:
        conf = ds.read()
        assert ds.descriptions == ("p_Land", "p_Water")
    assert set(np.unique(lc)) <= {0, 1}
    # the class is the most probable one, and the percentages add up to ~100
    assert (np.argmax(conf, axis=0) == lc).mean() > 0.99
    assert np.abs(conf.astype(int).sum(axis=0) - 100).max() <= 1
    # agrees with the people's labels on this crop (the built-in model saw this chip: an
    # in-sample check that the pipeline is wired right, not an accuracy figure)
    with rasterio.open(chip["labels"]) as ds:
        truth = ds.read(1)
    ok = truth >= 0
    assert (lc[ok] == truth[ok]).mean() > 0.85
    item = json.loads((out / "item.json").read_text())
    assert any("classification" in e for e in item["stac_extensions"])
    assert any("/mlm/" in e for e in item["stac_extensions"])
    assert item["assets"]["landcover"]["classification:classes"][1]["name"] == "water"
    assert item["properties"]["mlm:tasks"] == ["semantic-segmentation"]
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["zones"] >= 1 and (out / "zones.csv").read_text().startswith("zone_id")
    assert sum(c["pixels"] for c in stats["classes"]) == 128 * 128
    assert json.loads((out / "classes.json").read_text())["classes"][1]["corine"] == ["5"]


def test_tiles_give_the_same_map_as_one_pass(chip, tmp_path, capsys) -> None:
    maps = []
    for tile in (512, 64):
        out = tmp_path / f"t{tile}"
        code, _, err = _run(
            capsys, "--optical", chip["optical"], "--radar", chip["radar"], "--model", "s2",
            "--tile", tile, "--output", out,
        )  # fmt: skip
        assert code == 0, err
        with rasterio.open(out / "confidence.tif") as ds:
            maps.append(ds.read())
    assert np.abs(maps[0].astype(int) - maps[1].astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--radar-datetime", "2019-03-01"],
            "acquired 2019-03-01 and Sentinel-2 acquired 2019-02-01",
        ),
        (["--classes", "ben19"], "does not match model 'fused'"),
        (["--model", "nosuchmodel"], "unknown fusion model 'nosuchmodel'"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(chip, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "never"
    args = ["--optical", chip["optical"], "--radar", chip["radar"], "--output", out]
    code, _, err = _run(capsys, *args, *extra)
    assert code == ExitCode.BAD_INPUT
    assert message in err
    assert not out.exists()


def test_radar_elsewhere_or_missing_polarisation(chip, tmp_path, capsys) -> None:
    s1 = next(BEN.glob("S1*"))
    code, _, err = _run(
        capsys, "--optical", chip["optical"], "--radar", s1, "--window-days", "60",
        "--radar-datetime", "2019-02-02", "--output", tmp_path / "a",
    )  # fmt: skip
    assert code == ExitCode.BAD_INPUT and "does not overlap" in err
    vv_only = tmp_path / "vv_S1Hand.tif"
    with rasterio.open(chip["radar"]) as ds:
        prof = ds.profile | {"count": 1}
        with rasterio.open(vv_only, "w", **prof) as out:
            out.write(ds.read([1]))
            out.descriptions = ("VV",)
    code, _, err = _run(
        capsys, "--optical", chip["optical"], "--radar", vv_only, "--output", tmp_path / "b"
    )
    assert code == ExitCode.BAD_INPUT and "polarisation VH missing" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
