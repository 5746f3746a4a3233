"""Throughput of each change model (pixels/s) and a full-tile estimate.

    taskset -c 0,1 .venv/bin/python images/changedetect/bench/bench_throughput.py \
        --size 1024 --output docs/benchmarks/changedetect_throughput.json

Writes a synthetic 10-band uint16 pair (``size``² pixels, tiled GeoTIFF), runs
``candela-changedetect detect`` for every model (whole service: reading, fitting, all passes,
COG + quicklook writing) and reports pixels/s. The full Sentinel-2 tile pair (10 980² pixels)
is extrapolated linearly from the per-pixel time; for the encoder, whose run-time training has
a fixed cost (``patches`` × ``epochs``, independent of the raster size), the training time is
counted once and only the rest is scaled.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from candela_changedetect.cli import dispatch

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("cd_conftest", HERE.parent / "tests" / "conftest.py")
assert spec and spec.loader
conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conftest)

TILE_PX = 10980 * 10980


def _tiled(src: np.ndarray, size: int) -> np.ndarray:
    reps = -(-size // src.shape[1])
    return np.tile(src, (1, reps, reps))[:, :size, :size]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--models", default="cva,irmad,encoder")
    ap.add_argument("--output", default="docs/benchmarks/changedetect_throughput.json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    before, after, _ = conftest.synthetic_pair(size=256, square=(100, 140, 100, 140))
    b = _tiled(before, args.size)
    a = _tiled(after, args.size).astype(np.int32)
    a = np.clip(a + rng.normal(0, 20, a.shape), 1, 65535).astype(np.uint16)
    px = args.size * args.size
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        fb = conftest.write_stack(t / "before.tif", b)
        fa = conftest.write_stack(t / "after.tif", a)
        for model in args.models.split(","):
            out = t / model
            buf = io.StringIO()
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
                code = dispatch(
                    ["detect", "--before", str(fb), "--after", str(fa), "--model", model,
                     "--output", str(out)]
                )  # fmt: skip
            seconds = time.perf_counter() - t0
            if code:
                rows.append({"model": model, "error": buf.getvalue()[-500:]})
                continue
            fit = json.loads((out / "statistics.json").read_text())["model_fit"]
            fixed = float(fit.get("train_seconds") or 0.0)
            per_px = (seconds - fixed) / px
            row = {
                "model": model,
                "pixels": px,
                "seconds": round(seconds, 2),
                "fixed_training_seconds": round(fixed, 2),
                "pixels_per_second": round(px / seconds),
                "pixels_per_second_excluding_training": round(1 / per_px),
                "full_tile_pair_estimate_minutes": round((fixed + per_px * TILE_PX) / 60, 1),
            }
            if model == "encoder":
                row.update(
                    device=fit["device"], precision=fit["precision"], batch=fit["batch_size"]
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    doc = {
        "benchmark": "changedetect throughput, whole detect service per model",
        "date": dt.date.today().isoformat(),
        "cpu_cores": len(os.sched_getaffinity(0)),
        "machine": f"{platform.machine()}, CPU only: no GPU was available in this session",
        "raster": f"{args.size}x{args.size} px, 10 bands uint16, synthetic",
        "full_tile_pixels": TILE_PX,
        "rows": rows,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
