"""Benchmark: candela-preprocess against ``gdalbuildvrt -separate`` + ``gdal_translate -of COG``.

Both produce the same thing: the 10 bands of one product on the B02 10 m grid (20 m bands
bilinear-resampled), as one DEFLATE COG with 512² tiles and overviews. The script measures
the wall time and the peak resident memory (RSS) of each (each command runs under a fresh
wrapper process whose ``RUSAGE_CHILDREN`` high-water mark is read), checks that the outputs
agree, and writes a JSON report.

The input is a band folder in the OSCD layout (one GeoTIFF per band) of ``--size``² pixels at
10 m (``--size``/2 at 20 m, EPSG:32630), made by tiling the real OSCD Bordeaux bands
(``data/oscd/bordeaux/imgs_1``) — ``--size 10980`` is a full Sentinel-2 tile. The GDAL tools
come from Debian's ``gdal-bin`` (``apt-get install gdal-bin``).

    .venv/bin/python images/preprocess/bench.py --size 10980 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BANDS = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
RES = {"B02": 10, "B03": 10, "B04": 10, "B08": 10}


def make_input(folder: Path, size: int) -> Path:
    """An OSCD-layout band folder of ``size``² 10 m pixels tiled from the real Bordeaux bands."""
    import rasterio
    from rasterio.transform import from_origin

    src = REPO / "data" / "oscd" / "bordeaux" / "imgs_1"
    imgs = folder / "bench" / "imgs_1"
    imgs.mkdir(parents=True, exist_ok=True)
    if len(list(imgs.glob("BENCH_*.tif"))) == len(BANDS):  # a kept --workdir: reuse the input
        return imgs
    (folder / "bench" / "dates.txt").write_text("date_1: 20160504\ndate_2: 20171026\n")
    for band in BANDS:
        res = RES.get(band, 20)
        n = size * 10 // res
        (path,) = src.glob(f"*_{band}.tif")
        with rasterio.open(path) as ds:
            tile = ds.read(1)
        profile = {
            "driver": "GTiff",
            "dtype": "uint16",
            "count": 1,
            "width": n,
            "height": n,
            "crs": "EPSG:32630",
            "transform": from_origin(600000, 5000040, res, res),
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "compress": "deflate",
            "predictor": 2,
        }
        with rasterio.open(imgs / f"BENCH_{band}.tif", "w", **profile) as out:
            step = 1024
            for row in range(0, n, step):
                h = min(step, n - row)
                rows = np.arange(row, row + h) % tile.shape[0]
                strip = tile[rows][:, np.arange(n) % tile.shape[1]]
                out.write(strip, 1, window=((row, row + h), (0, n)))
    return imgs


def measured(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd`` in a fresh wrapper; its wall time and peak RSS (MiB)."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.monotonic()\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': rc, 'wall_s': time.monotonic() - t, "
        "'peak_rss_mib': ru.ru_maxrss / 1024, 'cpu_s': ru.ru_utime + ru.ru_stime}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"command failed ({result['rc']}): {' '.join(cmd)}\n{out.stderr}")
    return result


def run_candela(imgs: Path, out: Path, block: int) -> dict[str, float]:
    exe = Path(sys.executable).with_name("candela-preprocess")
    return measured(
        [
            str(exe),
            "--product",
            str(imgs),
            "--output",
            str(out),
            "--block-size",
            str(block),
            "--log-level",
            "WARNING",
        ]
    )


def run_gdal(imgs: Path, out: Path) -> dict[str, float]:
    files = [str(next(imgs.glob(f"*_{b}.tif"))) for b in BANDS]
    vrt = out.with_suffix(".vrt")
    a = measured(
        [
            "gdalbuildvrt",
            "-q",
            "-separate",
            "-resolution",
            "highest",
            "-r",
            "bilinear",
            str(vrt),
            *files,
        ]
    )
    b = measured(
        [
            "gdal_translate",
            "-q",
            "-of",
            "COG",
            "-co",
            "COMPRESS=DEFLATE",
            "-co",
            "BLOCKSIZE=512",
            "-co",
            "OVERVIEWS=AUTO",
            "-co",
            "RESAMPLING=AVERAGE",
            "-co",
            "NUM_THREADS=ALL_CPUS",
            "-co",
            "BIGTIFF=IF_SAFER",
            "--config",
            "GDAL_CACHEMAX",
            "256",
            str(vrt),
            str(out),
        ]
    )
    return {
        "wall_s": a["wall_s"] + b["wall_s"],
        "cpu_s": a["cpu_s"] + b["cpu_s"],
        "peak_rss_mib": max(a["peak_rss_mib"], b["peak_rss_mib"]),
    }


def compare(a: Path, b: Path, sample: int = 2048) -> dict[str, object]:
    """Band by band on a central window: B02 identical? mean |difference| of resampled bands."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(a) as da, rasterio.open(b) as db:
        assert (da.width, da.height, da.count) == (db.width, db.height, db.count)
        n = min(sample, da.width)
        w = Window((da.width - n) // 2, (da.height - n) // 2, n, n)
        diffs = {}
        for i, band in enumerate(BANDS, start=1):
            x = da.read(i, window=w).astype(float)
            y = db.read(i, window=w).astype(float)
            diffs[band] = round(float(np.abs(x - y).mean() / max(y.mean(), 1)), 6)
    return {"same_grid": True, "mean_abs_rel_diff_central_window": diffs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2745, help="10 m pixels per side (10980: a tile)")
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--json", default="bench.json", help="where to write the report")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temp folder)")
    args = ap.parse_args()
    if not shutil.which("gdalbuildvrt") or not shutil.which("gdal_translate"):
        raise SystemExit("gdalbuildvrt/gdal_translate not found: apt-get install gdal-bin")

    work = Path(args.workdir or tempfile.mkdtemp(prefix="candela-bench-"))
    try:
        t = time.monotonic()
        imgs = make_input(work, args.size)
        print(f"input {args.size}² ready in {time.monotonic() - t:.1f} s", file=sys.stderr)
        cand = run_candela(imgs, work / "candela.tif", args.block_size)
        print(f"candela-preprocess: {cand}", file=sys.stderr)
        gdal = run_gdal(imgs, work / "gdal.tif")
        print(f"gdalbuildvrt + gdal_translate: {gdal}", file=sys.stderr)
        report = {
            "size_px": args.size,
            "block_size": args.block_size,
            "cpus": os.cpu_count(),
            "candela_preprocess": {k: round(v, 2) for k, v in cand.items() if k != "rc"},
            "gdal_vrt_translate": {k: round(v, 2) for k, v in gdal.items()},
            "ratio_wall_time": round(cand["wall_s"] / gdal["wall_s"], 3),
            "ratio_peak_rss": round(cand["peak_rss_mib"] / gdal["peak_rss_mib"], 3),
            "ratio_cpu_time": round(cand["cpu_s"] / gdal["cpu_s"], 3),
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "candela_includes": "SCL-style validity count, Great Expectations quality gate "
            "(default thresholds, Data Docs report), STAC item",
            "outputs": compare(work / "candela.tif", work / "gdal.tif"),
            "output_bytes": {
                "candela_preprocess": (work / "candela.tif").stat().st_size,
                "gdal_vrt_translate": (work / "gdal.tif").stat().st_size,
            },
            "self_peak_rss_mib": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            ),
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
