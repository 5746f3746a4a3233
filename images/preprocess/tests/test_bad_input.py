"""Bad input: one clear sentence, the documented exit code, nothing left at --output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from preprocess_helpers import band_file, leftovers


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _check_failed(res: dict, rc: int, code: int, outcome: str, words: str, out_dir: Path) -> None:
    assert rc == code, res
    assert res["outcome"] == outcome
    assert words in res["error"], res["error"]
    assert "\n" not in res["error"]
    assert leftovers(out_dir) == []


def test_missing_band_file(run_service, tmp_path: Path, oscd_copy: Path) -> None:
    band_file(oscd_copy, "B05").unlink()
    out = tmp_path / "out"
    rc, res = run_service("--product", oscd_copy, "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "band B05 missing from product", out)


def test_missing_band_in_safe(run_service, tmp_path: Path, safe_l1c: Path) -> None:
    safe = shutil.copytree(safe_l1c, tmp_path / safe_l1c.name)
    next(safe.rglob("*_B8A.jp2")).unlink()
    out = tmp_path / "out"
    rc, res = run_service("--product", safe, "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "band B8A missing from product", out)


def test_truncated_tif(run_service, tmp_path: Path, oscd_copy: Path) -> None:
    _truncate(band_file(oscd_copy, "B11"))
    out = tmp_path / "out"
    rc, res = run_service("--product", oscd_copy, "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "band B11 of product", out)


def test_truncated_jp2(run_service, tmp_path: Path, safe_l1c: Path) -> None:
    safe = shutil.copytree(safe_l1c, tmp_path / safe_l1c.name)
    _truncate(next(safe.rglob("*_B03.jp2")), 0.6)
    out = tmp_path / "out"
    rc, res = run_service("--product", safe, "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "band B03 of product", out)


def test_garbage_tif(run_service, tmp_path: Path, oscd_copy: Path) -> None:
    band_file(oscd_copy, "B02").write_bytes(b"this is not a GeoTIFF")
    out = tmp_path / "out"
    rc, res = run_service("--product", oscd_copy, "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "band B02 of product", out)


@pytest.mark.parametrize("band", ["B13", "B8B", "red"])
def test_unknown_band(run_service, tmp_path: Path, oscd_copy: Path, band: str) -> None:
    out = tmp_path / "out"
    rc, res = run_service("--product", oscd_copy, "--output", out / "x.tif", "--bands", "B02", band)
    _check_failed(res, rc, 2, "bad_input", "unknown Sentinel-2 band", out)


def test_product_does_not_exist(run_service, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, res = run_service("--product", tmp_path / "nope.SAFE", "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "product not found", out)


def test_unknown_layout(run_service, tmp_path: Path) -> None:
    prod = tmp_path / "prod"
    prod.mkdir()
    (prod / "readme.txt").write_text("hello")
    out = tmp_path / "out"
    rc, res = run_service("--product", prod, "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "unknown product layout", out)


def test_not_a_zip(run_service, tmp_path: Path) -> None:
    fake = tmp_path / "S2A_MSIL1C_fake.zip"
    fake.write_bytes(b"PK no zip")
    out = tmp_path / "out"
    rc, res = run_service("--product", fake, "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "not a valid zip", out)


def test_oscd_without_dates(run_service, tmp_path: Path, oscd_copy: Path) -> None:
    (oscd_copy.parent / "dates.txt").unlink()
    out = tmp_path / "out"
    rc, res = run_service("--product", oscd_copy, "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "acquisition date unknown", out)


def test_l2a_without_scl(run_service, tmp_path: Path, safe_l2a: Path) -> None:
    safe = shutil.copytree(safe_l2a, tmp_path / safe_l2a.name)
    next(safe.rglob("*_SCL_20m.jp2")).unlink()
    out = tmp_path / "out"
    rc, res = run_service("--product", safe, "--output", out / "x.tif")
    _check_failed(res, rc, 2, "bad_input", "scene classification (SCL) missing", out)


def test_aoi_outside_footprint_is_no_data(run_service, tmp_path: Path, oscd_copy: Path) -> None:
    """An AOI that misses the product is the documented "no data" outcome (exit 3)."""
    paris = {
        "type": "Polygon",
        "coordinates": [[[2.3, 48.8], [2.4, 48.8], [2.4, 48.9], [2.3, 48.8]]],
    }
    out = tmp_path / "out"
    rc, res = run_service(
        "--product", oscd_copy, "--output", out / "x.tif", "--aoi", json.dumps(paris)
    )
    _check_failed(res, rc, 3, "no_data", "does not intersect", out)


def test_read_only_output(run_service, unprivileged, oscd_copy: Path) -> None:
    """An output folder the service may not write to: exit 4, nothing written. Root ignores
    permission bits, so the service runs as an unprivileged user (CI runs as root)."""
    import uuid

    from candela_preprocess.service import SERVICE
    from candela_sdk.contract import main

    base = unprivileged.folder  # world-readable: the unprivileged service reads the product
    product = shutil.copytree(oscd_copy.parent, base / "bordeaux") / oscd_copy.name
    results = base / "results"
    results.mkdir()
    results.chmod(0o777)
    rc, res = run_service("--product", product, "--output", base / "warm-up" / "x.tif")
    assert rc == 0, res  # the same run, writable: it works (and every module is imported)
    out = base / "ro"
    out.mkdir()
    out.chmod(0o555)

    def run_unprivileged() -> tuple[int, dict]:
        result = results / f"result-{uuid.uuid4().hex[:6]}.json"
        os.environ["CANDELA_RESULT_PATH"] = str(result)
        rc = main(SERVICE, ["--product", str(product), "--output", str(out / "x.tif"),
                            "--no-quality-gate"])  # fmt: skip
        return rc, json.loads(result.read_text())

    outcome = unprivileged(run_unprivileged)
    assert outcome[0] == "ok", outcome
    rc, res = outcome[1]
    _check_failed(res, rc, 4, "output_error", "not writable", out)


def test_output_not_a_tif(run_service, tmp_path: Path, oscd_copy: Path) -> None:
    out = tmp_path / "out"
    rc, res = run_service("--product", oscd_copy, "--output", out / "x.png")
    _check_failed(res, rc, 2, "bad_input", "--output must name a .tif", out)


def test_all_nodata_is_no_data(run_service, tmp_path: Path, oscd_copy: Path) -> None:
    """A product whose reference band is all 0 (Sentinel-2 NODATA) has nothing to offer."""
    import rasterio

    path = band_file(oscd_copy, "B02")
    with rasterio.open(path, "r+") as ds:
        ds.write(np.zeros((ds.height, ds.width), dtype="uint16"), 1)
    out = tmp_path / "out"
    rc, res = run_service("--product", oscd_copy, "--output", out / "x.tif")
    _check_failed(res, rc, 3, "no_data", "no valid pixel", out)
