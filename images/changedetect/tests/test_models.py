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


def _numpy_irmad(x: np.ndarray, y: np.ndarray, ridge: float, iterations: int) -> dict[str, Any]:
    """IR-MAD written out step by step (Nielsen 2007) with plain numpy on (n, p) pixels: the
    generalised eigenproblems of CCA solved directly (not the Cholesky/SVD route of the model)."""
    n, p = x.shape
    w = np.ones(n)
    for _ in range(iterations):
        sw = w.sum()
        mx, my = w @ x / sw, w @ y / sw
        xc, yc = x - mx, y - my
        sxx = (xc * w[:, None]).T @ xc / sw
        syy = (yc * w[:, None]).T @ yc / sw
        sxy = (xc * w[:, None]).T @ yc / sw
        sxx = sxx + ridge * np.diag(np.diag(sxx))
        syy = syy + ridge * np.diag(np.diag(syy))
        # Σxx⁻¹ Σxy Σyy⁻¹ Σyx a = ρ² a, then b ∝ Σyy⁻¹ Σyx a
        ev, a = np.linalg.eig(np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T))
        order = np.argsort(-ev.real)
        rho = np.sqrt(np.clip(ev.real[order], 0, 1))
        a = a.real[:, order]
        a = a / np.sqrt(np.einsum("ij,ik,kj->j", a, sxx, a))  # aᵀ Σxx a = 1
        b = np.linalg.solve(syy, sxy.T) @ a
        b = b / np.sqrt(np.einsum("ij,ik,kj->j", b, syy, b))  # bᵀ Σyy b = 1, aᵀ Σxy b > 0
        mad = xc @ a - yc @ b
        z = np.sum(mad**2 / (2 * (1 - rho)), axis=1)
        w = chi2_sf(z, p)  # no-change probability
    return {"rho": rho, "z": z, "a": a, "b": b, "mad": mad}


def test_irmad_matches_a_direct_numpy_computation() -> None:
    """Each step of the model (weighted CCA, MAD variates, their variance, Z, the reweighting)
    against the direct computation above, on a small synthetic pair with a changed patch."""
    from candela_changedetect.models.irmad import cca, weighted_moments

    rng = np.random.default_rng(11)
    p, side = 4, 40
    mixing = rng.normal(size=(p, p))
    x = np.einsum("ij,jrc->irc", mixing, rng.normal(size=(p, side, side))) + 50
    y = 0.9 * x + 0.4 * rng.normal(size=(p, side, side)) + 5
    y[:, 5:12, 5:12] += rng.normal(3, 1, size=(p, 1, 1))  # a changed patch
    x, y = (np.round(v, 2).astype(np.float32) for v in (x, y))  # what the blocks carry
    xs, ys = (v.reshape(p, -1).T.astype(np.float64) for v in (x, y))
    ridge = 0.03
    # step 1-3 on uniform weights: one CCA
    t1 = cca(*weighted_moments(xs, ys, np.ones(len(xs))), ridge)
    ref1 = _numpy_irmad(xs, ys, ridge, 1)
    np.testing.assert_allclose(t1.rho, ref1["rho"], rtol=1e-8)
    np.testing.assert_allclose(t1.mad_var, 2 * (1 - ref1["rho"]), rtol=1e-8)
    # MAD variates equal up to the sign of each canonical pair
    signs = np.sign(np.sum(t1.mad(xs, ys) * ref1["mad"], axis=0))
    np.testing.assert_allclose(t1.mad(xs, ys) * signs, ref1["mad"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(t1.chi2(xs, ys), ref1["z"], rtol=1e-8)
    # the whole model: a fixed number of reweighting passes (tolerance 0 never stops early)
    src = ArrayPair(x, y, nodata=None, block_rows=7)
    model = create_model("irmad", {"ridge": ridge, "max_iterations": 6, "tolerance": 1e-300})
    model.fit(src)
    ref = _numpy_irmad(xs, ys, ridge, 6)
    assert model.iterations == 6
    np.testing.assert_allclose(model.transform.rho, ref["rho"], rtol=1e-7)
    z = np.concatenate([model.score(blk) for blk in src.blocks()]).ravel()
    np.testing.assert_allclose(z, ref["z"], rtol=1e-5)
    # converged run: the correlations settle and the changed patch has the highest Z
    conv = create_model("irmad", {"ridge": ridge})
    conv.fit(src)
    assert conv.converged and conv.history[-1] < 1e-4
    zc = np.concatenate([conv.score(blk) for blk in src.blocks()])
    assert np.median(zc[5:12, 5:12]) > np.quantile(zc, 0.97)
    # chi2 rule: the cut is the 1 - alpha quantile of chi-square with p degrees of freedom
    chi = create_model("irmad", {"ridge": ridge, "threshold_rule": "chi2", "alpha": 1e-3})
    chi.fit(src)
    assert chi.score_at(0.5) == pytest.approx(chi2_ppf(1 - 1e-3, p), rel=1e-9)


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
