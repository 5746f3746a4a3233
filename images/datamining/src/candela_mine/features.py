"""Features of one patch: band statistics, spectral indices, texture, valid share.

Pure NumPy, one function per group, used by the datamining service and by whoever needs the
same numbers outside it (the active-learning benchmark). Inputs are reflectances (0–1, floats)
of the Sentinel-2 bands named in :data:`S2_BANDS`, a validity mask, and optionally the
Sentinel-1 backscatter (VV, VH in dB) on the same grid. Only valid pixels count; a feature that
cannot be computed (e.g. no valid pixel pair for the texture) is NaN.

Feature sets (the names, in order, recorded in ``candela.mine_feature_sets``):

* ``s2-v1``: per band of :data:`S2_BANDS` mean and standard deviation; NDVI, NDWI, NDBI, MNDWI
  and NBR mean and standard deviation; shares of water (MNDWI > 0), vegetation (NDVI > 0.4),
  built-up (NDBI > 0 and NDVI < 0.3); texture of the NIR band: GLCM contrast, homogeneity,
  energy, entropy and correlation (16 grey levels over 0–0.5 reflectance, offsets right and down,
  symmetric), mean and standard deviation of the gradient magnitude (forward differences), edge density (gradient
  > 0.05);
* ``s2s1-v1``: the same, then VV and VH mean and standard deviation (dB) and the mean VV−VH
  difference (dB), over pixels valid in both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from candela_sdk.errors import InputError
from candela_sdk.sentinel2 import normalise_band

S2_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "B11", "B12")
INDICES: dict[str, tuple[str, str]] = {
    # name: (a, b) for (a - b) / (a + b)
    "ndvi": ("B08", "B04"),
    "ndwi": ("B03", "B08"),  # McFeeters: open water
    "ndbi": ("B11", "B08"),  # built-up
    "mndwi": ("B03", "B11"),  # Xu: water, less confused with built-up
    "nbr": ("B08", "B12"),  # burn ratio
}
GLCM_LEVELS = 16
GLCM_MAX = 0.5
EDGE_THRESHOLD = 0.05
TEXTURE = (
    "glcm_contrast", "glcm_homogeneity", "glcm_energy", "glcm_entropy", "glcm_correlation",
    "grad_mean", "grad_std", "edge_density",
)  # fmt: skip
S1_FEATURES = ("vv_mean", "vv_std", "vh_mean", "vh_std", "vv_minus_vh")
FEATURE_SET_S2 = "s2-v1"
FEATURE_SET_S2S1 = "s2s1-v1"


def feature_names(with_s1: bool = False) -> list[str]:
    names = [f"{b.lower()}_{s}" for b in S2_BANDS for s in ("mean", "std")]
    names += [f"{i}_{s}" for i in INDICES for s in ("mean", "std")]
    names += ["water_share", "vegetation_share", "builtup_share"]
    names += list(TEXTURE)
    if with_s1:
        names += list(S1_FEATURES)
    return names


def feature_set(with_s1: bool = False) -> str:
    return FEATURE_SET_S2S1 if with_s1 else FEATURE_SET_S2


def band_index(band_names: Sequence[str]) -> dict[str, int]:
    """Position of each of :data:`S2_BANDS` in ``band_names``; InputError if one is missing."""
    upper = []
    for b in band_names:
        try:
            upper.append(normalise_band(str(b or "")))
        except ValueError:
            upper.append(str(b or "").upper())
    missing = [b for b in S2_BANDS if b not in upper]
    if missing:
        raise InputError(
            f"the stack lacks the bands {', '.join(missing)} (has {', '.join(upper) or 'none'})"
        )
    return {b: upper.index(b) for b in S2_BANDS}


def valid_share(valid: np.ndarray) -> float:
    return float(valid.mean()) if valid.size else 0.0


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std())


def normalised_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.abs(total) > 1e-6, (a - b) / total, 0.0)
    return np.clip(out, -1.0, 1.0)


def glcm(image: np.ndarray, valid: np.ndarray) -> list[float]:
    """Contrast, homogeneity, energy, entropy, correlation of the symmetric grey-level
    co-occurrence matrix (offsets (0, 1) and (1, 0)) over pixel pairs valid at both ends."""
    q = np.clip((image / GLCM_MAX * GLCM_LEVELS).astype(np.int64), 0, GLCM_LEVELS - 1)
    pairs = []
    for a, b, va, vb in (
        (q[:, :-1], q[:, 1:], valid[:, :-1], valid[:, 1:]),
        (q[:-1, :], q[1:, :], valid[:-1, :], valid[1:, :]),
    ):
        both = va & vb
        pairs.append((a[both], b[both]))
    i = np.concatenate([p[0] for p in pairs] + [p[1] for p in pairs])
    j = np.concatenate([p[1] for p in pairs] + [p[0] for p in pairs])
    if i.size == 0:
        return [float("nan")] * 5
    m = np.bincount(i * GLCM_LEVELS + j, minlength=GLCM_LEVELS**2).astype(np.float64)
    p = m.reshape(GLCM_LEVELS, GLCM_LEVELS) / m.sum()
    li, lj = np.indices(p.shape)
    contrast = float((p * (li - lj) ** 2).sum())
    homogeneity = float((p / (1.0 + np.abs(li - lj))).sum())
    energy = float((p**2).sum())
    nz = p[p > 0]
    entropy = float(-(nz * np.log2(nz)).sum())
    mu = float((p * li).sum())
    var = float((p * (li - mu) ** 2).sum())
    correlation = float((p * (li - mu) * (lj - mu)).sum() / var) if var > 1e-12 else 1.0
    return [contrast, homogeneity, energy, entropy, correlation]


def gradient(image: np.ndarray, valid: np.ndarray) -> list[float]:
    """Mean and standard deviation of the gradient magnitude (forward differences, pixels whose
    right and lower neighbours are valid), and the share of those above :data:`EDGE_THRESHOLD`."""
    if image.shape[0] < 2 or image.shape[1] < 2:
        return [float("nan")] * 3
    gx = image[:-1, 1:] - image[:-1, :-1]
    gy = image[1:, :-1] - image[:-1, :-1]
    ok = valid[:-1, :-1] & valid[:-1, 1:] & valid[1:, :-1]
    mag = np.hypot(gx, gy)[ok]
    if mag.size == 0:
        return [float("nan")] * 3
    return [float(mag.mean()), float(mag.std()), float((mag > EDGE_THRESHOLD).mean())]


def patch_features(
    s2: np.ndarray,
    band_names: Sequence[str],
    valid: np.ndarray,
    s1: np.ndarray | None = None,
    s1_valid: np.ndarray | None = None,
) -> np.ndarray:
    """The feature vector (float32, in the order of :func:`feature_names`) of one patch.

    ``s2``: (bands, H, W) reflectances; ``valid``: (H, W) booleans; ``s1``: (2, H, W) VV, VH in
    dB on the same grid, ``s1_valid`` its mask (default: finite values).
    """
    if s2.ndim != 3 or s2.shape[1:] != valid.shape:
        raise InputError(f"patch shapes differ: bands {s2.shape}, mask {valid.shape}")
    idx = band_index(band_names)
    valid = valid.astype(bool) & np.isfinite(s2).all(axis=0)
    band = {b: s2[i].astype(np.float64) for b, i in idx.items()}
    out: list[float] = []
    for b in S2_BANDS:
        out += _mean_std(band[b][valid])
    nd = {k: normalised_difference(band[a], band[b]) for k, (a, b) in INDICES.items()}
    for k in INDICES:
        out += _mean_std(nd[k][valid])
    n = int(valid.sum())
    if n:
        out.append(float((nd["mndwi"][valid] > 0).mean()))
        out.append(float((nd["ndvi"][valid] > 0.4).mean()))
        out.append(float(((nd["ndbi"][valid] > 0) & (nd["ndvi"][valid] < 0.3)).mean()))
    else:
        out += [float("nan")] * 3
    nir = np.where(valid, band["B08"], 0.0)
    out += glcm(nir, valid)
    out += gradient(nir, valid)
    if s1 is not None:
        if s1.ndim != 3 or s1.shape[0] < 2 or s1.shape[1:] != valid.shape:
            raise InputError(f"the radar patch must be (VV, VH) on the optical grid: {s1.shape}")
        ok = np.isfinite(s1[:2]).all(axis=0) & valid
        if s1_valid is not None:
            ok &= s1_valid.astype(bool)
        vv, vh = s1[0][ok].astype(np.float64), s1[1][ok].astype(np.float64)
        out += _mean_std(vv)
        out += _mean_std(vh)
        out.append(float((vv - vh).mean()) if vv.size else float("nan"))
    return np.asarray(out, dtype=np.float32)
