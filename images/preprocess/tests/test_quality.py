"""The Great Expectations quality gate: passes on Bordeaux, fails with a report on bad stacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from preprocess_helpers import BORDEAUX, band_file
from rio_cogeo.cogeo import cog_validate

from candela_preprocess.quality import PixelSample, sample_step

pytestmark = pytest.mark.slow  # Great Expectations: a few seconds per run


def _spoil(folder: Path, band: str, fn) -> None:
    path = band_file(folder, band)
    with rasterio.open(path, "r+") as ds:
        data = ds.read(1)
        ds.write(fn(data), 1)


def test_gate_passes_on_bordeaux(run_service, tmp_path: Path) -> None:
    out = tmp_path / "out" / "bordeaux.tif"
    rc, res = run_service("--product", BORDEAUX / "imgs_1", "--output", out, "--quality-gate")
    assert rc == 0, res
    gate = res["quality_gate"]
    assert gate["passed"] and gate["unmet"] == 0
    # band count + order, 10 value ranges, valid share
    assert gate["expectations"] == 13
    kinds = {c["expectation"] for c in gate["checks"]}
    assert "expect_table_columns_to_match_ordered_list" in kinds
    assert gate["sample_pixels"] == res["width"] * res["height"]  # small: every pixel
    report = Path(gate["report"].removeprefix("file://"))
    assert report == out.parent / "bordeaux_quality" / "index.html"
    assert report.is_file() and "stack" in report.read_text()
    item = json.loads(out.with_suffix(".json").read_text())
    assert item["properties"]["candela:quality_gate"]["passed"] is True
    assert item["assets"]["quality_report"]["href"] == gate["report"]
    valid, errors, _warnings = cog_validate(str(out))
    assert valid, errors


def test_gate_checks_the_grids_of_a_pair(run_service, tmp_path: Path) -> None:
    first = tmp_path / "d1.tif"
    rc, res = run_service("--product", BORDEAUX / "imgs_1", "--output", first)
    assert rc == 0, res
    rc, res = run_service(
        "--product",
        BORDEAUX / "imgs_2",
        "--output",
        tmp_path / "d2.tif",
        "--grid-like",
        first,
        "--quality-gate",
    )
    assert rc == 0, res
    grid_checks = [c for c in res["quality_gate"]["checks"] if c["suite"] == "grid"]
    # crs, the six transform terms, width, height: one distinct value each
    assert len(grid_checks) == 9
    assert all(c["success"] and c["observed"] == 1 for c in grid_checks)


def test_gate_fails_on_a_mostly_empty_stack(run_service, oscd_copy: Path, tmp_path: Path) -> None:
    def blank(a: np.ndarray) -> np.ndarray:
        a[: int(a.shape[0] * 0.95)] = 0  # 95 % of the rows without data
        return a

    _spoil(oscd_copy, "B02", blank)
    out = tmp_path / "out" / "empty.tif"
    rc, res = run_service("--product", oscd_copy, "--output", out, "--quality-gate")
    assert rc == 2, res
    assert res["outcome"] == "quality_gate_failed"
    assert "valid pixels" in res["error"] and "at least 10% required" in res["error"]
    assert "\n" not in res["error"]
    report = out.parent / "empty_quality" / "index.html"
    assert report.is_file()
    assert str(report.parent) in res["error"]
    # nothing but the report: no COG, no item
    assert sorted(p.name for p in out.parent.iterdir()) == ["empty_quality"]

    # the threshold is a parameter
    rc, res = run_service(
        "--product",
        oscd_copy,
        "--output",
        out,
        "--quality-gate",
        "--gate-min-valid-fraction",
        "0.02",
    )
    assert rc == 0, res
    assert res["quality_gate"]["passed"]
    assert 0.04 < res["valid_fraction"] < 0.06


def test_gate_fails_on_out_of_range_values(run_service, oscd_copy: Path, tmp_path: Path) -> None:
    _spoil(oscd_copy, "B11", lambda a: np.full_like(a, 40000))
    out = tmp_path / "bad.tif"
    rc, res = run_service("--product", oscd_copy, "--output", out, "--quality-gate")
    assert rc == 2, res
    assert res["outcome"] == "quality_gate_failed"
    assert res["error"].startswith("1 of 13 expectations unmet: B11: 0.0% of valid pixels")
    assert not out.exists()
    rc, res = run_service(
        "--product", oscd_copy, "--output", out, "--quality-gate", "--gate-max-value", "50000"
    )
    assert rc == 0, res
    assert out.exists()


@pytest.mark.parametrize("block", [7, 64, 100])
def test_pixel_sample_does_not_depend_on_blocks(block: int) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 100, size=(3, 230, 170), dtype="uint16")
    valid = data[0] > 10
    step = sample_step(170, 230, 2000)
    sample = PixelSample(step)
    for row in range(0, 230, block):
        for col in range(0, 170, block):
            win = data[:, row : row + block, col : col + block]
            sample.add(win, valid[row : row + block, col : col + block], col, row)
    df = sample.frame(["a", "b", "c"], nodata=0)
    expected = data[:, ::step, ::step].reshape(3, -1)
    # same pixels (the order follows the blocks)
    got = df[["a", "b", "c"]].fillna(0).to_numpy().T
    assert sorted(map(tuple, got.T)) == sorted(map(tuple, expected.T.astype("float32")))
    assert df["valid"].sum() == valid[::step, ::step].sum()


def _frames(kind: str) -> tuple[object, object]:
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 5000
    df = pd.DataFrame({b: rng.integers(1, 9000, n).astype("float32") for b in ("B02", "B03")})
    df["valid"] = (rng.random(n) > 0.3).astype("uint8")
    grids = pd.DataFrame(
        [{"dataset": "a", "crs": "EPSG:32630", "width": 10}, {"dataset": "b", "crs": "EPSG:32630",
         "width": 10}]
    )  # fmt: skip
    if kind == "range":
        df.loc[: n // 50, "B03"] = 40000.0  # 2 % out of range: mostly 0.99 unmet
    elif kind == "nodata":
        df.loc[: n // 2, "B02"] = np.nan
        df["valid"] = 0
    elif kind == "order":
        df = df[["B03", "B02", "valid"]]
    elif kind == "grid":
        grids.loc[1, "width"] = 11
    return df, grids


@pytest.mark.parametrize("kind", ["ok", "range", "nodata", "order", "grid"])
def test_the_fast_evaluation_agrees_with_great_expectations(kind: str, tmp_path: Path) -> None:
    """The gate's own evaluation (no GX import) gives GX's verdict and metrics, check by check,
    on passing and failing samples: the fast path cannot drift from Great Expectations."""
    from candela_preprocess.quality import (
        GateThresholds,
        _validate_with_gx,
        evaluate,
        expectations,
    )

    df, grids = _frames(kind)
    t = GateThresholds(0.1, 1, 20000, 0.99, 10000)
    exps = expectations(["B02", "B03"], ["B02", "B03"], t, list(grids.columns))
    tables = {
        "stack": {c: df[c].to_numpy() for c in df.columns},
        "grid": {c: grids[c].tolist() for c in grids.columns},
    }
    fast = [evaluate(e, tables[e.suite]) for e in exps]
    gx = _validate_with_gx(exps, tables, tmp_path / "docs")
    assert len(fast) == len(gx) == len(exps)
    key = lambda c: (c["suite"], c["expectation"], c.get("column", ""))  # noqa: E731
    for a, b in zip(sorted(fast, key=key), sorted(gx, key=key), strict=True):
        assert key(a) == key(b)
        assert a["success"] == b["success"], (a, b)
        for metric in ("observed", "unexpected_percent"):
            if metric in b and b[metric] is not None:
                assert a.get(metric) == pytest.approx(b[metric], abs=1e-3), (metric, a, b)
    assert (kind == "ok") == all(c["success"] for c in fast)
    assert (tmp_path / "docs" / "index.html").is_file()


def test_a_passing_gate_skips_gx_unless_the_report_is_asked(run_service, tmp_path: Path) -> None:
    out = tmp_path / "quick.tif"
    rc, res = run_service("--product", BORDEAUX / "imgs_1", "--output", out, "--quality-gate")
    assert rc == 0, res
    gate = res["quality_gate"]
    assert gate["passed"] and gate["validated_by"] == "candela"
    report = Path(gate["report"].removeprefix("file://"))
    assert "13 of 13 expectations met" in report.read_text()
    assert json.loads((report.parent / "checks.json").read_text())["passed"] is True
    item = json.loads(out.with_suffix(".json").read_text())
    assert item["assets"]["quality_report"]["href"] == gate["report"]
    rc, res = run_service(
        "--product", BORDEAUX / "imgs_1", "--output", tmp_path / "full.tif", "--quality-gate",
        "--quality-report",
    )  # fmt: skip
    assert rc == 0, res
    assert res["quality_gate"]["validated_by"] == "great_expectations"
    docs = Path(res["quality_gate"]["report"].removeprefix("file://")).read_text()
    assert "Great Expectations" in docs or "expectation" in docs.lower()
