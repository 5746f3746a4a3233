"""The shared automatic threshold (candela_changedetect.calibration): each rule on known
distributions, the cut a model computes equals the cut recomputed from its score map (what the
leave-one-city-out protocol relies on), and a pair without change gives a small mask."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from candela_changedetect.blocks import ArrayPair
from candela_changedetect.calibration import EDGES, fit_cut, log_histogram
from candela_changedetect.mathutil import chi2_ppf
from candela_changedetect.models import create_model

BIN = float(EDGES[1] - EDGES[0])


def _lognormal(rng: np.random.Generator, share: float, n: int = 200_000) -> np.ndarray:
    """Scores whose log is N(0, 0.5) for no change and N(3, 0.6) for a ``share`` of changes."""
    k = int(share * n)
    return np.exp(np.r_[rng.normal(0.0, 0.5, n - k), rng.normal(3.0, 0.6, k)])


def test_log_histogram_and_robust_z() -> None:
    rng = np.random.default_rng(0)
    s = np.r_[_lognormal(rng, 0.02), np.nan, -1.0, 0.0]  # NaN left out, <= 0 clipped low
    h = log_histogram(s)
    assert h.sum() == s.size - 1 and h[0] == 2
    u = np.log(s[np.isfinite(s) & (s > 0)])
    med = float(np.median(u))
    mad = 1.4826 * float(np.median(np.abs(u - med)))
    cut = fit_cut(h, "robust_z", z=3.0)
    assert cut.t == pytest.approx(med + 3.0 * mad, abs=0.02)
    assert cut.mu0 == pytest.approx(med, abs=2 * BIN)
    # probability: 0.5 at the cut, 0.01 at the median, monotonic
    assert cut.probability(np.array([math.exp(cut.t)]))[0] == pytest.approx(0.5)
    assert cut.probability(np.array([math.exp(cut.mu0)]))[0] == pytest.approx(0.01)
    assert cut.score_at(0.5) == pytest.approx(math.exp(cut.t))


@pytest.mark.parametrize("rule", ["robust_z", "nochange_z", "kittler", "mixture"])
def test_rules_separate_two_modes_and_follow_the_change_share(rule: str) -> None:
    rng = np.random.default_rng(1)
    flagged = []
    for share in (0.01, 0.05, 0.15):
        s = _lognormal(rng, share)
        cut = fit_cut(log_histogram(s), rule, z=3.0, z_floor=2.0)
        assert 0.8 < cut.t < 2.6, (rule, share, cut)
        flagged.append(float((np.log(s) >= cut.t).mean()))
    # the flagged share follows the true share (within a factor 2 here)
    for f, share in zip(flagged, (0.01, 0.05, 0.15), strict=True):
        assert share / 2 < f < 2 * share, (rule, flagged)


def test_nochange_z_ignores_the_change_side_and_mixture_has_a_floor() -> None:
    rng = np.random.default_rng(2)
    # no change at all: one Gaussian in u; the mixture cannot go below median + z_floor MAD
    s = np.exp(rng.normal(0.0, 0.5, 200_000))
    cut = fit_cut(log_histogram(s), "mixture", z_floor=2.0)
    assert cut.t >= 2.0 * 0.5 - 0.02
    assert (np.log(s) >= cut.t).mean() < 0.03
    # the no-change spread from the lower side is unaffected by a 30 % change mode
    big = _lognormal(rng, 0.30)
    a = fit_cut(log_histogram(big), "nochange_z", z=3.0)
    assert a.t == pytest.approx(3 * 0.5, abs=0.1)
    assert fit_cut(log_histogram(big), "robust_z", z=3.0).t > a.t + 0.3  # MAD inflated


def test_chi2_rule_and_bad_rule() -> None:
    h = log_histogram(np.exp(np.random.default_rng(3).normal(2, 1, 1000)))
    cut = fit_cut(h, "chi2", alpha=1e-4, dof=10)
    assert math.exp(cut.t) == pytest.approx(chi2_ppf(1 - 1e-4, 10), rel=1e-9)
    with pytest.raises(ValueError):
        fit_cut(h, "chi2")
    with pytest.raises(ValueError):
        fit_cut(h, "sideways")
    with pytest.raises(ValueError):
        fit_cut(np.zeros_like(h), "robust_z")


@pytest.mark.parametrize("name", ["cva", "irmad"])
def test_model_cut_equals_the_cut_of_its_score_map(name: str, make_pair: Any) -> None:
    """``evaluate --protocol loo`` recomputes cuts from cached score maps: same number."""
    before, after, _ = make_pair(seed=5)
    src = ArrayPair(before, after, block_rows=13)
    for rule in ({"threshold_rule": "robust_z", "z": 2.5}, {"threshold_rule": "mixture"}):
        model = create_model(name, rule)
        model.fit(src)
        score = np.concatenate([model.score(blk) for blk in src.blocks()])
        opts = {k: v for k, v in rule.items() if k != "threshold_rule"}
        again = fit_cut(log_histogram(score), str(rule["threshold_rule"]), **opts)  # type: ignore[arg-type]
        assert model.cut.t == again.t
        p = model.probability(score)
        assert np.array_equal(p[np.isfinite(p)] >= 0.5, np.log(score[np.isfinite(p)]) >= again.t)


@pytest.mark.parametrize("name", ["cva", "irmad"])
def test_a_pair_without_change_gives_a_small_mask(name: str, make_pair: Any) -> None:
    """Only noise between the dates: the automatic mask stays small (no mask full of noise)."""
    before, _, _ = make_pair(seed=6)
    rng = np.random.default_rng(6)
    after = np.clip(1.05 * before + 30 + rng.normal(0, 20, before.shape), 1, None)
    src = ArrayPair(before, after.astype(np.uint16))
    model = create_model(name)
    model.fit(src)
    p = np.concatenate([model.probability(model.score(blk)) for blk in src.blocks()])
    assert (p >= model.auto_threshold()).mean() < 0.05


def test_detect_warns_when_auto_flags_too_much(
    tmp_path: Any, make_pair: Any, write_tif: Any, capsys: Any
) -> None:
    """Above calibration.FLAGGED_WARNING_SHARE the flagged share comes with a warning in
    statistics.json; at the default cut the same pair has none."""
    import json

    from candela_changedetect.calibration import FLAGGED_WARNING_SHARE
    from candela_changedetect.cli import dispatch

    before, after, _ = make_pair(seed=8)
    b = write_tif(tmp_path / "b.tif", before)
    a = write_tif(tmp_path / "a.tif", after)
    shares = {}
    for name, opts in (("loose", {"threshold_rule": "robust_z", "z": 0.3}), ("default", {})):
        out = tmp_path / name
        code = dispatch(
            ["detect", "--before", str(b), "--after", str(a), "--model", "cva", "--output",
             str(out), "--model-options", json.dumps(opts)]
        )  # fmt: skip
        capsys.readouterr()
        assert code == 0
        stats = json.loads((out / "statistics.json").read_text())
        shares[name] = (stats["changed_pixel_fraction"], stats["warnings"])
    assert shares["loose"][0] > FLAGGED_WARNING_SHARE
    assert len(shares["loose"][1]) == 1 and "flags" in shares["loose"][1][0]
    assert shares["default"][0] < FLAGGED_WARNING_SHARE and shares["default"][1] == []


def test_cut_at_share_flags_that_share() -> None:
    from candela_changedetect.calibration import cut_at_share, share_above

    rng = np.random.default_rng(9)
    s = _lognormal(rng, 0.03)
    h = log_histogram(s)
    for share in (0.001, 0.01, 0.03, 0.2):
        t = cut_at_share(h, share)
        flagged = float((np.log(s) >= t).mean())
        assert flagged <= share + 1e-9 and flagged == pytest.approx(share, abs=0.002)
        assert share_above(h, t) == pytest.approx(flagged, abs=1e-4)


def test_share_cva_flags_what_cva_flags_even_where_the_own_cut_collapses() -> None:
    """``share_cva``: the model's score is cut at the share CVA's automatic cut flags on the
    same pair. Where the model's changed scores shrank toward its bulk (what run-time training
    on a pair with much change does), its own robust_z cut flags almost nothing while its score
    still ranks the changes first; ``max`` then flags CVA's share, ``geomean`` at least
    ``share_floor`` of it, and both find the changes the own cut misses."""
    from candela_changedetect.calibration import fit_share_cut, share_above

    rng = np.random.default_rng(10)
    n, k = 200_000, 10_000  # 5 % changed
    # CVA: changes well apart from the bulk; its nochange_z 2.5 cut flags about the true share
    cva = np.exp(np.r_[rng.normal(3.0, 0.6, k), rng.normal(0.0, 0.5, n - k)])
    cva_hist = log_histogram(cva)
    cva_cut = fit_cut(cva_hist, "nochange_z", z=2.5)
    s_cva = float((np.log(cva) >= cva_cut.t).mean())
    assert 0.035 < s_cva < 0.08
    # the model: changes shrunk to ~3 spreads above its bulk, under median + 4 MAD, but
    # still ranked first
    model = np.exp(np.r_[rng.normal(1.6, 0.1, k), rng.normal(0.0, 0.5, n - k)])
    truth = np.r_[np.ones(k, bool), np.zeros(n - k, bool)]
    hist = log_histogram(model)
    own = fit_cut(hist, "robust_z", z=4.0)
    own_share = float((np.log(model) >= own.t).mean())
    assert own_share < 0.001  # the collapse

    def flagged_and_f1(cut_t: float) -> tuple[float, float]:
        pred = np.log(model) >= cut_t
        return float(pred.mean()), 2 * float((pred & truth).sum()) / (pred.sum() + k)

    same = fit_share_cut(hist, cva_hist, share_combine="cva")
    hybrid = fit_share_cut(hist, cva_hist, share_combine="max", z=4.0)
    geo = fit_share_cut(hist, cva_hist, share_combine="geomean", share_floor=0.25, z=4.0)
    geo0 = fit_share_cut(hist, cva_hist, share_combine="geomean", share_floor=0.0, z=4.0)
    for cut in (same, hybrid):
        f, _ = flagged_and_f1(cut.t)
        assert f == pytest.approx(s_cva, abs=0.002), cut.rule
    f_geo, f1_geo = flagged_and_f1(geo.t)
    assert f_geo == pytest.approx(0.25 * s_cva, abs=0.002)  # the floor binds
    assert flagged_and_f1(geo0.t)[0] == pytest.approx(math.sqrt(s_cva * own_share), abs=0.002)
    f1_own = flagged_and_f1(own.t)[1]
    assert f1_geo > f1_own + 0.2 and flagged_and_f1(hybrid.t)[1] > 0.8 > f1_own
    # where the model's own share agrees with CVA's, geomean and max leave it about as it is
    model2 = np.exp(np.r_[rng.normal(3.0, 0.5, k), rng.normal(0.0, 0.5, n - k)])
    h2 = log_histogram(model2)
    s_own2 = share_above(h2, fit_cut(h2, "robust_z", z=4.0).t)
    g2 = fit_share_cut(h2, cva_hist, share_combine="geomean", share_floor=0.25, z=4.0)
    assert share_above(h2, g2.t) == pytest.approx(math.sqrt(s_cva * s_own2), abs=0.002)
    with pytest.raises(ValueError, match="share_combine"):
        fit_share_cut(hist, cva_hist, share_combine="median")
    with pytest.raises(ValueError, match="fit_share_cut"):
        fit_cut(hist, "share_cva")
