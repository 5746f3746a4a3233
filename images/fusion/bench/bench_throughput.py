"""Throughput of the fusion models on CPU: inference Mpx/s on a 2048² pair, training patches/s.

    .venv/bin/python images/fusion/bench/bench_throughput.py \
        --size 2048 --output docs/benchmarks/fusion_throughput.json

The 2048² pair is the real Sen1Floods11 chip (S2 13 bands, S1 VV/VH) mirror-tiled to the size
(real values; the scene repeats). For each built-in model it runs the whole ``classify``
service (reading, resampling the radar onto the optical grid, tiled inference, COGs, zones,
quicklook, STAC item) and, separately, the network alone on the same pixels, and reports Mpx/s.
Training throughput is patches/s of ``train`` (64×64 patches, batch 8) for each network. No GPU
is available where this file's figures were produced: GPU rows are absent, not estimated.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from candela_fusion import data as fdata
from candela_fusion.cli import dispatch
from candela_fusion.models import load
from candela_fusion.predict import predict
from candela_fusion.train import train

REPO = Path(__file__).resolve().parents[3]
CHIP = REPO / "data" / "fusion" / "sen1floods11"


def _mirror(a: np.ndarray, size: int) -> np.ndarray:
    """(bands, h, w) mirror-tiled to (bands, size, size)."""
    reps = -(-size // a.shape[1])
    row = np.concatenate([a[:, :, ::-1] if j % 2 else a for j in range(reps)], axis=2)
    full = np.concatenate([row[:, ::-1] if i % 2 else row for i in range(reps)], axis=1)
    return full[:, :size, :size]


def _write(src: Path, dst: Path, size: int) -> Path:
    with rasterio.open(src) as ds:
        data = _mirror(ds.read(), size)
        prof = ds.profile | {"width": size, "height": size, "tiled": True}
        prof |= {"blockxsize": 512, "blockysize": 512}
        with rasterio.open(dst, "w", **prof) as out:
            out.write(data)
            out.descriptions = ds.descriptions
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--output", default="docs/benchmarks/fusion_throughput.json")
    ap.add_argument("--train-epochs", type=int, default=2)
    args = ap.parse_args()
    px = args.size * args.size
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        optical = _write(CHIP / "Spain_7370579_S2Hand.tif", t / "big_S2Hand.tif", args.size)
        radar = _write(CHIP / "Spain_7370579_S1Hand.tif", t / "big_S1Hand.tif", args.size)
        with rasterio.open(optical) as ds:
            refl = fdata.reflectance(ds)
        with rasterio.open(radar) as ds:
            rad = np.moveaxis(ds.read().astype("float32"), 0, -1)
        for model in ("s2", "s1", "fused"):
            out = t / f"out_{model}"
            argv = ["classify", "--optical", str(optical), "--radar", str(radar)]
            argv += ["--model", model, "--output", str(out)]
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = dispatch(argv)
            service_s = time.perf_counter() - t0
            assert code == 0, f"classify {model} failed"
            bundle = load(model)
            t0 = time.perf_counter()
            for y in range(0, args.size, 512):
                for x in range(0, args.size, 512):
                    predict(
                        bundle, refl[y : y + 516, x : x + 516], rad[y : y + 516, x : x + 516], None
                    )
            net_s = time.perf_counter() - t0
            rows.append(
                {
                    "model": model,
                    "pixels": px,
                    "service_seconds": round(service_s, 3),
                    "service_mpx_per_s": round(px / service_s / 1e6, 3),
                    "network_seconds": round(net_s, 3),
                    "network_mpx_per_s": round(px / net_s / 1e6, 3),
                    "parameters": int(bundle.net.count_params()),
                }
            )
            print(rows[-1])
        scene = fdata.floods_scene(CHIP)
        store = fdata.scene_patches(scene, 64)
        field = fdata.cloud_field(
            REPO / "data/fusion/sen12mscr", (512, 512), "ROIs1970_fall_139_p839"
        )
        training = []
        for kind in ("s2", "s1", "fused"):
            _, _, rec = train(
                store, kind, 2, epochs=args.train_epochs, cloud=field if kind == "fused" else None
            )
            training.append(
                {
                    k: rec[k]
                    for k in ("kind", "patches", "epochs", "batch", "seconds", "patches_per_second")
                }
            )
            print(training[-1])
    report = {
        "benchmark": "fusion throughput (CPU)",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pair": f"{args.size}x{args.size} px: Sen1Floods11 chip mirror-tiled (S2 13 bands int16, S1 VV/VH float32)",
        "machine": {
            "platform": platform.platform(),
            "cpus_visible": os.cpu_count(),
            "note": "shared machine (several agents' jobs running at once): figures are lower bounds",
        },
        "gpu": "none available where these figures were produced; no GPU figure is given",
        "inference": rows,
        "training": training,
        "patch": "64x64 px, batch 8, tf.data from in-memory arrays (generator, one patch at a time)",
    }
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
