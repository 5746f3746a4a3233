"""The feature extractor on patches whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from candela_mine import features as F
from candela_sdk.errors import InputError

BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]


def _patch(values: dict[str, float], size: int = 16) -> np.ndarray:
    return np.stack([np.full((size, size), values[b], np.float32) for b in BANDS])


WATER = {"B02": 0.08, "B03": 0.07, "B04": 0.04, "B08": 0.02, "B11": 0.01, "B12": 0.005}
FOREST = {"B02": 0.03, "B03": 0.05, "B04": 0.03, "B08": 0.35, "B11": 0.15, "B12": 0.07}


def _named(vec: np.ndarray, with_s1: bool = False) -> dict[str, float]:
    names = F.feature_names(with_s1)
    assert len(vec) == len(names)
    return dict(zip(names, vec.tolist(), strict=True))


def test_indices_and_shares_tell_water_from_forest() -> None:
    valid = np.ones((16, 16), bool)
    water = _named(F.patch_features(_patch(WATER), BANDS, valid))
    forest = _named(F.patch_features(_patch(FOREST), BANDS, valid))
    assert water["ndwi_mean"] == pytest.approx((0.07 - 0.02) / 0.09, rel=1e-5)
    assert forest["ndvi_mean"] == pytest.approx((0.35 - 0.03) / 0.38, rel=1e-5)
    assert water["water_share"] == 1.0 and water["vegetation_share"] == 0.0
    assert forest["vegetation_share"] == 1.0 and forest["water_share"] == 0.0
    assert water["b08_mean"] == pytest.approx(0.02) and water["b08_std"] == 0.0
    # a uniform patch has no texture
    assert forest["glcm_contrast"] == 0.0 and forest["grad_mean"] == 0.0
    assert forest["glcm_energy"] == 1.0


def test_only_valid_pixels_count_and_texture_sees_stripes() -> None:
    half = np.concatenate([_patch(WATER)[:, :, :8], _patch(FOREST)[:, :, 8:]], axis=2)
    valid = np.zeros((16, 16), bool)
    valid[:, :8] = True
    only_water = _named(F.patch_features(half, BANDS, valid))
    assert only_water["water_share"] == 1.0 and only_water["glcm_contrast"] == 0.0
    stripes = _patch(FOREST)
    stripes[3, :, ::2] = 0.02  # NIR alternating: strong horizontal texture
    v = _named(F.patch_features(stripes, BANDS, np.ones((16, 16), bool)))
    assert v["glcm_contrast"] > 10 and v["edge_density"] > 0.0
    assert F.valid_share(valid) == 0.5


def test_radar_features_and_missing_bands() -> None:
    valid = np.ones((8, 8), bool)
    s1 = np.stack([np.full((8, 8), -8.0), np.full((8, 8), -14.0)]).astype(np.float32)
    v = _named(F.patch_features(_patch(FOREST, 8), BANDS, valid, s1), with_s1=True)
    assert (v["vv_mean"], v["vh_mean"], v["vv_minus_vh"]) == (-8.0, -14.0, 6.0)
    assert F.feature_set(True) == "s2s1-v1" and F.feature_set(False) == "s2-v1"
    with pytest.raises(InputError, match="lacks the bands B11, B12"):
        F.patch_features(_patch(FOREST, 8)[:4], BANDS[:4], valid)
    empty = F.patch_features(_patch(FOREST, 8), BANDS, np.zeros((8, 8), bool))
    assert np.isnan(empty).all()
