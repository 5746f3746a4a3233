"""Change models on synthetic stacks: detection, blockwise = whole, calibration, maths."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from candela_changedetect.blocks import ArrayPair
from candela_changedetect.mathutil import (
    chi2_cdf,
    chi2_ppf,
    chi2_sf,
    histogram_median_mad,
    kittler_illingworth_threshold,
    otsu_threshold,
)
from candela_changedetect.models import available_models, create_model
from candela_sdk.errors import InputError, NoDataError

BANDS = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")


def _probabilities(model_name: str, src: ArrayPair, **options: object) -> tuple[np.ndarray, Any]:
    model = create_model(model_name, dict(options))
    model.fit(src)
    out = np.full((src.height, src.width), np.nan)
    for blk in src.blocks():
        out[blk.window.rows] = model.probability(model.score(blk))
    return out, model


def test_registry_lists_builtin_models() -> None:
    assert {"cva", "irmad"} <= set(available_models())
    with pytest.raises(InputError, match="unknown change model 'nope'"):
        create_model("nope")
    with pytest.raises(InputError, match="invalid --model-options for cva"):
        create_model("cva", {"standardise": "sideways"})


@pytest.mark.parametrize("name", ["cva", "irmad"])
def test_detects_changed_square(name: str, make_pair: Any) -> None:
    before, after, truth = make_pair()
    src = ArrayPair(before, after, band_names=BANDS, block_rows=32)
    prob, model = _probabilities(name, src)
    mask = prob >= model.auto_threshold()
    tp = (mask & truth).sum()
    precision, recall = tp / mask.sum(), tp / truth.sum()
    assert recall > 0.95, recall
    assert precision > 0.9, precision
    assert np.all((prob >= 0) & (prob <= 1))


@pytest.mark.parametrize("name", ["cva", "irmad"])
def test_blockwise_equals_whole(name: str, make_pair: Any) -> None:
    before, after, _ = make_pair(seed=3)
    valid = np.ones(before.shape[1:], bool)
    valid[:5, :] = False
    whole, m1 = _probabilities(name, ArrayPair(before, after, valid, block_rows=before.shape[1]))
    blocks, m2 = _probabilities(name, ArrayPair(before, after, valid, block_rows=7))
    np.testing.assert_allclose(blocks, whole, rtol=1e-6, atol=1e-7, equal_nan=True)
    thr = m1.auto_threshold()
    assert np.array_equal(np.nan_to_num(whole) >= thr, np.nan_to_num(blocks) >= thr)
    assert np.isnan(whole[:5]).all()


def test_no_valid_pixels_is_nodata() -> None:
    zeros = np.zeros((10, 20, 20), np.uint16)
    for name in ("cva", "irmad"):
        model = create_model(name)
        with pytest.raises(NoDataError):
            model.fit(ArrayPair(zeros, zeros))


def test_cva_probability_is_logistic_around_threshold(make_pair: Any) -> None:
    before, after, _ = make_pair(seed=1)
    _, model = _probabilities("cva", ArrayPair(before, after))
    t = model.threshold_magnitude
    assert model.probability(np.array([t]))[0] == pytest.approx(0.5)
    assert model.probability(np.array([model.nochange_mean]))[0] == pytest.approx(0.01, rel=1e-6)
    assert model.score_at(0.5) == pytest.approx(t)


def test_irmad_is_calibrated_on_gaussian_no_change() -> None:
    """With no change at all, P(χ² CDF >= 0.99) must be about 1 %: the consistency correction
    keeps the statistic chi-square at the IRMAD fixed point (Nielsen's raw update inflates it)."""
    rng = np.random.default_rng(7)
    p, n = 6, 150
    mixing = rng.normal(size=(p, p))
    x = np.einsum("ij,jrc->irc", mixing, rng.normal(size=(p, n, n))) + 1000
    y = 0.8 * x + 0.6 * np.einsum("ij,jrc->irc", mixing, rng.normal(size=(p, n, n))) + 200
    src = ArrayPair(x, y, nodata=None)
    prob, model = _probabilities("irmad", src)
    assert model.converged
    assert 0.005 < (prob >= 0.99).mean() < 0.02
    raw, _ = _probabilities("irmad", src, consistency_correction=False)
    assert (raw >= 0.99).mean() > 0.04  # the uncorrected update flags several times more


def test_chi2_against_closed_forms() -> None:
    x = np.array([0.0, 0.1, 1.0, 3.0, 10.0, 50.0, 200.0])
    np.testing.assert_allclose(chi2_cdf(x, 2), 1 - np.exp(-x / 2), atol=1e-12)
    np.testing.assert_allclose(chi2_cdf(x, 1), [math.erf(math.sqrt(v / 2)) for v in x], atol=1e-12)
    # dof 4: survival = exp(-x/2) (1 + x/2), checked far into the tail (relative)
    np.testing.assert_allclose(chi2_sf(x, 4), np.exp(-x / 2) * (1 + x / 2), rtol=1e-10)
    assert chi2_ppf(0.5, 10) == pytest.approx(9.341818, abs=1e-5)
    assert chi2_ppf(0.99, 10) == pytest.approx(23.209251, abs=1e-5)


def test_thresholds_split_a_bimodal_histogram() -> None:
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(2, 0.5, 95_000), rng.normal(8, 2.0, 5_000)]
    hist, edges = np.histogram(values, bins=1000, range=(0, 16))
    ki = kittler_illingworth_threshold(hist, edges)
    otsu = otsu_threshold(hist, edges)
    assert 3.0 < ki < 5.5
    assert 3.0 < otsu < 6.5


def test_histogram_median_mad_matches_the_data() -> None:
    """Median and normalised MAD read off a histogram agree with numpy on the raw values,
    and a 4 % tail of outliers barely moves them (what makes the robust_z cut stable)."""
    rng = np.random.default_rng(3)
    core = rng.normal(1.3, 0.7, 200_000)
    values = np.r_[core, rng.normal(6.0, 1.0, 8_000)]
    edges = np.linspace(-4, 10, 4097)
    med, mad = histogram_median_mad(np.histogram(values, edges)[0], edges)
    want_med = float(np.median(values))
    want_mad = 1.4826 * float(np.median(np.abs(values - want_med)))
    assert med == pytest.approx(want_med, abs=2 * (edges[1] - edges[0]))
    assert mad == pytest.approx(want_mad, abs=2 * (edges[1] - edges[0]))
    assert mad == pytest.approx(0.7, rel=0.06) and med == pytest.approx(1.3, abs=0.06)
    with pytest.raises(ValueError):
        histogram_median_mad(np.zeros(10), np.linspace(0, 1, 11))
