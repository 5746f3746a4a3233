"""Inference on arrays (one code path for ``classify`` tiles and ``evaluate``).

Which source each pixel uses (:data:`SOURCES`, the values of the source band):

* ``s2``: the optical pixels that are valid (finite and not flagged by the mask); others are
  unclassified;
* ``s1``: every pixel with finite backscatter;
* ``fused``: the fused head where the optical pixel is valid (source 3, optical + radar; 2 when
  the radar is missing there), the radar head where it is not (source 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from candela_fusion.classes import NODATA
from candela_fusion.models import Bundle

SOURCES = {1: "radar", 2: "optical", 3: "optical+radar", NODATA: "not classified"}
SOURCE_COLORS = {
    1: (230, 120, 30, 255),
    2: (60, 170, 60, 255),
    3: (150, 80, 200, 255),
    NODATA: (0, 0, 0, 0),
}


def predict(
    bundle: Bundle,
    optical: np.ndarray | None,
    radar: np.ndarray | None,
    valid: np.ndarray | None,
    batch_tiles: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (H, W, n) float32, source (H, W) uint8) for one tile.

    ``optical`` (H, W, 10) reflectance, ``radar`` (H, W, 2) dB, ``valid`` (H, W) bool optical
    validity (None: every finite optical pixel is valid).
    """
    kind = bundle.kind
    h, w = (optical if optical is not None else radar).shape[:2]  # type: ignore[union-attr]
    opt_ok = np.zeros((h, w), bool)
    rad_ok = np.zeros((h, w), bool)
    x: dict[str, Any] = {}
    if kind in ("s2", "fused"):
        assert optical is not None
        opt_ok = np.isfinite(optical).all(axis=-1)
        if valid is not None:
            opt_ok &= valid
        z = bundle.norm.optical(optical)
        x["optical"] = (z * opt_ok[..., None] if kind == "fused" else z)[None]
    if kind in ("s1", "fused"):
        assert radar is not None
        rad_ok = np.isfinite(radar).all(axis=-1)
        x["radar"] = bundle.norm.radar(radar)[None]
    if kind == "fused":
        x["valid"] = opt_ok[None, ..., None].astype("float32")
    out = bundle.net(x, training=False)
    probs = np.asarray(out["probs"])[0].astype("float32")
    source = np.full((h, w), NODATA, np.uint8)
    if kind == "s2":
        source[opt_ok] = 2
    elif kind == "s1":
        source[rad_ok] = 1
    else:
        radar_probs = np.asarray(out["radar"])[0].astype("float32")
        use_radar = ~opt_ok & rad_ok
        probs = np.where(use_radar[..., None], radar_probs, probs)
        source[opt_ok & rad_ok] = 3
        source[opt_ok & ~rad_ok] = 2
        source[use_radar] = 1
    return probs, source
