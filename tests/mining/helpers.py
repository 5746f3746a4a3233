"""Patches of a real chip for the mining tests: the Sen1Floods11 Spain chip shipped in
``data/fusion/sen1floods11`` (S2 L1C + S1, a water mask drawn by people, see data/README.md),
cut into 16×16 patches; features from the datamining service's extractor
(``candela_mine.features``), an RGB quicklook per patch, truth = ``water`` when at least half
the labelled pixels are water, else ``land``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CHIP = REPO / "data" / "fusion" / "sen1floods11"
S2_13 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


def fill_chip(
    dsn: str, quicklooks: Path, window: tuple[int, int, int, int] = (0, 0, 192, 192), size: int = 16
) -> dict[int, str]:
    """Insert the chip's patches in ``window`` (row, col, height, width); patch id → truth."""
    import psycopg
    import rasterio
    from PIL import Image

    from candela.db import mining
    from candela_mine import features as mf

    r0, c0, h, w = window
    win = rasterio.windows.Window(c0, r0, w, h)
    with rasterio.open(CHIP / "Spain_7370579_S2Hand.tif") as f:
        s2 = f.read(window=win).astype(np.float64) / 10_000.0
        transform = f.window_transform(win)
    with rasterio.open(CHIP / "Spain_7370579_S1Hand.tif") as f:
        s1 = f.read(window=win).astype(np.float64)
    with rasterio.open(CHIP / "Spain_7370579_LabelHand.tif") as f:
        label = f.read(1, window=win)
    names = list(mf.S2_BANDS)
    stack = np.stack([s2[S2_13.index(b)] for b in names])
    quicklooks.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    truth: list[str] = []
    for r in range(0, h - size + 1, size):
        for c in range(0, w - size + 1, size):
            valid = np.isfinite(stack[:, r : r + size, c : c + size]).all(axis=0)
            feats = mf.patch_features(
                stack[:, r : r + size, c : c + size],
                names,
                valid,
                s1[:, r : r + size, c : c + size],
            )
            lab = label[r : r + size, c : c + size]
            known = lab >= 0
            t = "water" if known.any() and (lab[known] == 1).mean() >= 0.5 else "land"
            rgb = stack[
                [names.index("B04"), names.index("B03"), names.index("B02")],
                r : r + size,
                c : c + size,
            ]
            img = np.clip(rgb / 0.3 * 255, 0, 255).astype(np.uint8).transpose(1, 2, 0)
            buf = io.BytesIO()
            Image.fromarray(img).resize((96, 96), Image.NEAREST).save(buf, "PNG")
            path = quicklooks / f"ql_{r0 + r}_{c0 + c}.png"
            path.write_bytes(buf.getvalue())
            west, north = transform @ (c, r)
            east, south = transform @ (c + size, r + size)
            ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
            rows.append(
                {
                    "stack_uri": (CHIP / "Spain_7370579_S2Hand.tif").as_uri(),
                    "product_id": "Spain_7370579",
                    "dataset": "sen1floods11",
                    "acquired": None,
                    "sensors": ["s2", "s1"],
                    "row_off": r0 + r,
                    "col_off": c0 + c,
                    "size": size,
                    "crs": "EPSG:4326",
                    "west": west,
                    "south": south,
                    "east": east,
                    "north": north,
                    "footprint": {"type": "Polygon", "coordinates": [ring]},
                    "valid_share": float(valid.mean()),
                    "feature_set": mf.feature_set(with_s1=True),
                    "features": [float(v) for v in feats],
                    "embedding": None,
                    "quicklook_uri": path.as_uri(),
                    "truth": [t],
                    "mined_by_run": "test",
                }
            )
            truth.append(t)
    with psycopg.connect(dsn) as conn:
        mining.insert_patches(conn, mf.feature_set(with_s1=True), mf.feature_names(True), rows)
        ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM candela.mine_patches WHERE dataset = 'sen1floods11'"
                " ORDER BY row_off, col_off"
            ).fetchall()
        ]
    return dict(zip(ids, truth, strict=True))
