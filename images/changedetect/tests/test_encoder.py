"""The TensorFlow encoder model: detection, determinism, seamless tiling, bad input, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from candela_changedetect.blocks import ArrayPair
from candela_changedetect.cli import dispatch
from candela_changedetect.models import create_model
from candela_changedetect.models.encoder import EncoderModel, MemoryExhausted
from candela_changedetect.service import SERVICE
from candela_sdk import contract
from candela_sdk.errors import InputError, ServiceFailure

BANDS = ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")
#: tiny network and training so the tests stay fast on 2 CPU cores
FAST: dict[str, Any] = {"epochs": 4, "patches": 256, "patch_size": 16, "depth": 2}
#: stated CPU tolerance of the encoder's probabilities (tiling, repeated runs)
TOL = 1e-4


def _probabilities(model: Any, src: ArrayPair) -> np.ndarray:
    out = np.full((src.height, src.width), np.nan)
    for blk in src.blocks():
        out[blk.window.rows] = model.probability(model.score(blk))
    return out


@pytest.fixture(scope="module")
def fitted() -> tuple[EncoderModel, ArrayPair, np.ndarray]:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "cd_conftest", Path(__file__).with_name("conftest.py")
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    before, after, truth = mod.synthetic_pair()
    src = ArrayPair(before, after, band_names=BANDS, block_rows=512)
    model = create_model("encoder", FAST)
    model.fit(src)
    assert isinstance(model, EncoderModel)
    return model, src, truth


def test_encoder_detects_the_changed_square(fitted: Any) -> None:
    model, src, truth = fitted
    p = _probabilities(model, src)
    assert np.all((p >= 0) & (p <= 1))
    change = p >= model.auto_threshold()
    tp = int((change & truth).sum())
    f1 = 2 * tp / (change.sum() + truth.sum())
    # the default cut (share_cva: the larger of CVA's share and the encoder's own nochange_z 5
    # share) over-flags this tiny, under-trained net's skewed scores (about 12 % where 6.25 %
    # changed; robust_z 4 flagged 5 %, F1 0.90): the square is found, the cut is loose
    assert f1 > 0.6, f1
    assert truth.mean() < change.mean() < 2.5 * truth.mean()
    from candela_changedetect.evaluate import best_f1

    assert best_f1(p, np.where(truth, 2, 1).astype(np.uint8))[0] > 0.85
    d = model.describe()
    assert d["device"] == "cpu" and d["precision"] == "float32" and d["halo"] == 2
    assert len(d["train_loss"]) == FAST["epochs"] + 2  # + 2 refinement epochs (pair mode)


def test_tiled_equals_untiled(fitted: Any) -> None:
    """Row blocks of 7 rows and 16-px column tiles == one 120x120 tile (halo, no seams)."""
    model, src, _ = fitted
    whole = _probabilities(model, src)
    model.drop_cache()  # recompute: the fit's pass cached the 512-row blocks
    src.block_rows = 7
    model.options = model.options.model_copy(update={"tile_size": 16})
    try:
        tiled = _probabilities(model, src)
    finally:
        src.block_rows = 512
        model.options = model.options.model_copy(update={"tile_size": 512})
    assert np.nanmax(np.abs(whole - tiled)) < TOL


def test_deterministic_on_cpu(fitted: Any) -> None:
    model, src, _ = fitted
    again = create_model("encoder", FAST)
    again.fit(ArrayPair(*[np.asarray(a) for a in (src._before, src._after)], band_names=BANDS))
    assert np.nanmax(np.abs(_probabilities(model, src) - _probabilities(again, src))) < TOL


def test_mixed_precision_inference_close_to_float32(fitted: Any) -> None:
    """What a GPU runs (float16 compute, float32 training) vs float32, on the CPU."""
    model, src, _ = fitted
    mixed = create_model("encoder", {**FAST, "mixed_precision": "on"})
    mixed.fit(src)
    assert mixed.describe()["precision"] == "mixed_float16"
    assert mixed.train_loss == model.train_loss  # training is float32 and deterministic
    diff = np.abs(_probabilities(mixed, src) - _probabilities(model, src))
    assert np.nanmax(diff) < 0.05 and np.nanmean(diff) < 0.005


def test_out_of_memory_batches_shrink_then_fail(
    fitted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake OOM (no GPU here): batches > 1 tile "do not fit" -> retried one tile at a time."""
    model, src, _ = fitted
    reference = _probabilities(model, src)
    model.drop_cache()
    real = EncoderModel._predict

    def small_only(self: EncoderModel, b: np.ndarray, a: np.ndarray) -> Any:
        if len(b) > 1:
            raise MemoryExhausted("fake: batch too large")
        return real(self, b, a)

    monkeypatch.setattr(EncoderModel, "_predict", small_only)
    model.options = model.options.model_copy(update={"tile_size": 32})
    model.batch_size = 8
    try:
        assert np.nanmax(np.abs(_probabilities(model, src) - reference)) < TOL
        assert model.batch_size == 1

        def never(self: EncoderModel, b: np.ndarray, a: np.ndarray) -> Any:
            raise MemoryExhausted("fake: nothing fits")

        monkeypatch.setattr(EncoderModel, "_predict", never)
        with pytest.raises(ServiceFailure, match="out of memory with batch size 1"):
            _probabilities(model, src)
    finally:
        model.options = model.options.model_copy(update={"tile_size": 512})
        model.batch_size = None


def test_bad_options() -> None:
    with pytest.raises(InputError, match="invalid --model-options for encoder"):
        create_model("encoder", {"features": 0})
    with pytest.raises(InputError, match="mode=pretrained needs weights"):
        create_model("encoder", {"mode": "pretrained"})


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = dispatch(argv)
    lines = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(lines[-1])


def test_encoder_cli_with_nans(tmp_path: Path, capsys: Any, make_pair: Any, write_tif: Any) -> None:
    """float32 stacks with NaNs: those pixels are nodata in every output; contract.main too."""
    before, after, truth = make_pair(size=96, square=(30, 60, 30, 60))
    # the former robust_z cut: the default share_cva over-flags a tiny net's skewed scores
    # (test_encoder_detects_the_changed_square); NaN handling is what is tested here
    opts = json.dumps({**FAST, "threshold_rule": "robust_z", "z": 4.0})
    b = before.astype(np.float32)
    b[:, 5:9, 10:20] = np.nan
    fb = write_tif(tmp_path / "b.tif", b, nodata=None)
    fa = write_tif(tmp_path / "a.tif", after.astype(np.float32), nodata=None)
    out = tmp_path / "out"
    code, res = _run(
        ["detect", "--before", str(fb), "--after", str(fa), "--model", "encoder",
         "--output", str(out), "--model-options", opts],
        capsys,
    )  # fmt: skip
    assert code == 0, res
    assert res["model"] == "encoder" and res["valid_pixels"] == 96 * 96 - 40
    with rasterio.open(out / "change_mask.tif") as ds:
        mask = ds.read(1)
    assert np.all(mask[5:9, 10:20] == 255) and set(np.unique(mask)) <= {0, 1, 255}
    # a tiny net on a 96-px image (detection quality: test_encoder_detects_the_changed_square
    # and the OSCD evaluation); here: the square stands out, few false alarms outside it
    assert (mask[30:60, 30:60] == 1).mean() > 0.6
    assert (mask[~truth & (mask != 255)] == 1).mean() < 0.02
    item = json.loads((out / "item.json").read_text())
    assert item["properties"]["candela:model"] == "encoder"
    assert item["properties"]["candela:model_fit"]["halo"] == 2

    out2 = tmp_path / "out2"
    code = contract.main(
        SERVICE,
        ["--before", str(fb), "--after", str(fa), "--model", "encoder", "--output", str(out2),
         "--model-options", opts, "--block-rows", "40"],
    )  # fmt: skip
    assert code == 0
    with (
        rasterio.open(out / "change_probability.tif") as p1,
        rasterio.open(out2 / "change_probability.tif") as p2,
    ):
        assert np.max(np.abs(p1.read(1) - p2.read(1))) < TOL


def test_unknown_model_is_bad_input(tmp_path: Path, capsys: Any) -> None:
    code = dispatch(
        ["detect", "--before", "a.tif", "--after", "b.tif", "--model", "no-such-model",
         "--output", str(tmp_path / "o")]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert "no-such-model" in captured.out + captured.err
    assert not (tmp_path / "o").exists()


def test_smooth_log_score_is_a_normalised_gaussian_of_the_log() -> None:
    """Direct 2-D weighted mean of ln(score) over the finite neighbours, NaN at invalid centres."""
    from candela_changedetect.models.encoder import _gaussian_kernel, smooth_log_score

    rng = np.random.default_rng(1)
    score = rng.lognormal(0.0, 1.0, (20, 24)).astype(np.float32)
    score[5, 7] = np.nan
    score[10:12, 3:5] = np.nan
    k = _gaussian_kernel(1.0, 3)
    out = smooth_log_score(score, k)
    assert out.shape == (14, 18)
    k2 = np.outer(k, k)
    for r, c in [(0, 0), (2, 5), (6, 1), (13, 17), (4, 6)]:
        win = score[r : r + 7, c : c + 7].astype(np.float64)
        ok = np.isfinite(win)
        want = np.exp((k2 * np.where(ok, np.log(np.where(ok, win, 1)), 0)).sum() / k2[ok].sum())
        assert out[r, c] == pytest.approx(want, rel=1e-5)
    assert np.isnan(out[5 - 3, 7 - 3]) and np.isnan(out[10 - 3, 3 - 3])
    assert np.isfinite(out).sum() == 14 * 18 - 5  # (5, 7) and the 2x2 block in the core
    const = np.full((10, 10), 2.5, np.float32)
    assert np.allclose(smooth_log_score(const, k), 2.5)


def test_without_smoothing_or_refinement_score_is_the_raw_residual(fitted: Any) -> None:
    """smooth_sigma 0: the score is the raw residual magnitude; smoothing changes the map."""
    model, src, truth = fitted
    raw = create_model("encoder", {**FAST, "smooth_sigma": 0})
    raw.fit(src)
    assert isinstance(raw, EncoderModel) and isinstance(model, EncoderModel)
    assert raw.extra == 0 and model.extra == 3
    raw.drop_cache()
    blk = next(iter(src.blocks()))
    s0 = raw.score(blk)
    rb, ra, valid = raw._residuals(blk)
    assert np.allclose(s0, raw._raw_score(rb, ra, valid), equal_nan=True)
    # smoothing makes the map less noisy outside the changed square
    model.drop_cache()
    s1 = model.score(blk)
    outside = ~truth & np.isfinite(s0)
    assert np.std(np.log(s1[outside])) < np.std(np.log(s0[outside]))


def test_cut_is_the_shared_calibration_of_the_smoothed_log_score(fitted: Any) -> None:
    """The cut is the shared calibration of ln(score) over the valid pixels, equal to the one
    recomputed from the score map (what ``evaluate --protocol loo`` does): by default
    ``share_cva`` (the share set with CVA's cut on the same pair); with robust_z it is
    median + z x 1.4826 MAD (computed here directly from the scores)."""
    from candela_changedetect.calibration import (
        EDGES,
        fit_cut,
        fit_share_cut,
        log_histogram,
        share_above,
    )
    from candela_changedetect.models.encoder import cva_log_histogram

    model, src, truth = fitted
    model.drop_cache()
    score = np.concatenate([model.score(b) for b in src.blocks()])
    o = model.options
    assert o.threshold_rule == "share_cva" and o.share_combine == "max"
    cva_hist = cva_log_histogram(src)
    again = fit_share_cut(
        log_histogram(score),
        cva_hist,
        cva_rule=o.cva_rule,
        cva_z=o.cva_z,
        share_combine=o.share_combine,
        share_floor=o.share_floor,
        own_rule=o.own_rule,
        z=o.z,
    )
    assert model.cut.t == again.t and model.cut.mu0 == again.mu0
    # the share it flags: the larger of CVA's share and its own nochange_z share
    h = log_histogram(score)
    s_cva = share_above(cva_hist, fit_cut(cva_hist, o.cva_rule, z=o.cva_z).t)
    s_own = share_above(h, fit_cut(h, o.own_rule, z=o.z).t)
    flagged = float((score[np.isfinite(score)] >= model.threshold_score * (1 - 1e-6)).mean())
    assert flagged == pytest.approx(max(s_cva, s_own), abs=2e-3)
    ls = np.log(score[np.isfinite(score)].astype(np.float64))
    med = float(np.median(ls))
    mad = 1.4826 * float(np.median(np.abs(ls - med)))
    binw = float(EDGES[1] - EDGES[0])
    robust = fit_cut(log_histogram(score), "robust_z", z=4.0)
    assert robust.t == pytest.approx(med + 4.0 * mad, abs=10 * binw)
    assert math.log(model.nochange_mean) == pytest.approx(med, abs=2 * binw)
    # p = 0.5 at the cut, 0.01 at the median
    assert model.probability(np.array([model.threshold_score]))[0] == pytest.approx(0.5)
    assert model.probability(np.array([model.nochange_mean]))[0] == pytest.approx(0.01, rel=1e-3)


def test_min_combination_needs_both_directions_to_fail(fitted: Any) -> None:
    """combine=min: the score is the smaller of the two directions' residual magnitudes, so a
    pixel that only one translation misses does not score high; mean: RMS of both."""
    model, src, _ = fitted
    assert model.options.combine == "min"
    blk = next(iter(src.blocks()))
    rb, ra, valid = model._residuals(blk)
    assert model.residual_std is not None
    ma = np.mean((ra / model.residual_std[0][:, None, None]) ** 2, axis=0)
    mb = np.mean((rb / model.residual_std[1][:, None, None]) ** 2, axis=0)
    s = model._raw_score(rb, ra, valid)
    assert np.allclose(s[valid], np.sqrt(np.minimum(ma, mb))[valid], rtol=1e-5)
    mean_model = create_model("encoder", {**FAST, "combine": "mean"})
    assert isinstance(mean_model, EncoderModel)
    mean_model.residual_std = model.residual_std
    s_mean = mean_model._raw_score(rb, ra, valid)
    assert np.allclose(s_mean[valid], np.sqrt(0.5 * (ma + mb))[valid], rtol=1e-5)
    assert np.all(s[valid] <= s_mean[valid] * (1 + 1e-6))


def test_refinement_leaves_the_changed_pixels_out_of_training(fitted: Any) -> None:
    """The reweighted epochs drop the pixels above the first fit's cut: few, mostly changed."""
    model, _, _ = fitted
    assert model.options.refine_epochs is None  # default: 2 in pair mode
    assert len(model.train_loss) == FAST["epochs"] + 2
    # the changed square is 900 of 14 400 px (6 %); patches cover part of the raster
    assert 0.0 < model.refine_excluded < 0.2
