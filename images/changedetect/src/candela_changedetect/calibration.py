"""The automatic threshold of every change model: one calibration of ``u = ln(score)``.

Every model (cva, irmad, encoder) scores pixels with a positive number that grows with change.
Its automatic cut is chosen on the histogram of ``u = ln(score)`` over the valid pixels, on
**fixed** bin edges (:data:`EDGES`: ln score from −20 to 20 in 2¹⁵ bins, 0.0012 wide), so the
cut computed inside ``detect`` (streamed, block by block) and the cut recomputed from a cached
score map by ``evaluate --protocol loo`` are the same number.

Rules (``threshold_rule``; ``z`` / ``alpha`` their parameters):

``robust_z``   median + z × MAD (normalised) of u: a significance test against the bulk.
``nochange_z`` the no-change mode alone: its centre is the mode of u (the histogram smoothed
               by a Gaussian of 0.05 in u), its spread the normalised median deviation of the
               pixels *below* the mode (the side changes do not reach); cut = mode + z × spread.
``kittler``    Kittler–Illingworth minimum error on u.
``otsu``       Otsu on u.
``mixture``    two Gaussians fitted to u by EM (initialised on the bulk and the upper tail);
               cut where the upper component's posterior reaches 1/2 above the lower mean.
               It follows how much changed: a large change mode pulls the cut down. Floor:
               never below median + ``z_floor`` × MAD (a pair where nothing changed has no
               second mode; EM then models the tail of the noise), and it falls back to
               ``robust_z`` when the fit is degenerate.
``chi2``       (IR-MAD only) the chi-square quantile ``1 − alpha`` with as many degrees of
               freedom as bands: Nielsen's (2007) no-change test.
``share_cva``  (encoder only) a cut by *share*, not by spread: CVA's automatic cut (its rule
               ``cva_rule`` at ``cva_z``) is fitted on the same pair and the model's score is
               cut at the quantile that flags the share ``s`` given by ``share_combine``:
               ``cva`` (s = CVA's share), ``max`` (the larger of CVA's share and the model's
               own ``robust_z`` share at ``z``) or ``geomean`` (their geometric mean); never
               below ``share_floor`` × CVA's share (so where the model's own cut collapses, a
               geometric mean still flags that fraction of what CVA flags). CVA has
               no parameter fitted to the pair beyond band moments, so the share it flags
               cannot be absorbed by the run-time training that shrinks a trained model's
               changed scores toward the bulk where much changed (:func:`fit_share_cut`).

Probability (every model): a logistic on u centred on the cut ``t``,
``p = 1 / (1 + exp(−(u − t)/k))``, ``k = (t − median u) / ln 99``: p = 0.5 at the cut (the
``--threshold auto`` value), 0.01 at the median pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from candela_changedetect.mathutil import (
    chi2_ppf,
    histogram_median_mad,
    kittler_illingworth_threshold,
    otsu_threshold,
)

Rule = Literal["robust_z", "nochange_z", "kittler", "otsu", "mixture", "chi2", "share_cva"]
RULES: tuple[str, ...] = (
    "robust_z",
    "nochange_z",
    "kittler",
    "otsu",
    "mixture",
    "chi2",
    "share_cva",
)

LOG_MIN, LOG_MAX, BINS = -20.0, 20.0, 1 << 15
EDGES = np.linspace(LOG_MIN, LOG_MAX, BINS + 1)
LN99 = math.log(99.0)

#: a warning is logged (and written to statistics.json) when ``auto`` flags more than this share
#: of the valid pixels: urban change between two dates a year or two apart is 0.3-5 % of a scene
FLAGGED_WARNING_SHARE = 0.15


def log_histogram(score: np.ndarray) -> np.ndarray:
    """Counts of ``ln(score)`` on :data:`EDGES` over the finite pixels (clipped into range)."""
    s = np.asarray(score)
    v = s[np.isfinite(s)].astype(np.float64)
    u = np.log(np.maximum(v, 1e-300))
    u = np.clip(u, LOG_MIN, LOG_MAX - 1e-9)
    idx = ((u - LOG_MIN) * (BINS / (LOG_MAX - LOG_MIN))).astype(np.int64)
    return np.bincount(np.clip(idx, 0, BINS - 1), minlength=BINS)


@dataclass(frozen=True)
class Cut:
    """The cut ``t`` and the centre ``mu0`` (median) of ``u = ln(score)``; ``rule`` as applied
    (a fallback names itself)."""

    t: float
    mu0: float
    rule: str

    @property
    def scale(self) -> float:
        return max((self.t - self.mu0) / LN99, 1e-6)

    def probability(self, score: np.ndarray) -> np.ndarray:
        u = np.log(np.maximum(np.asarray(score, dtype=np.float64), 1e-300))
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(1.0 / (1.0 + np.exp(-(u - self.t) / self.scale)))

    def score_at(self, probability: float) -> float | None:
        if not 0 < probability < 1:
            return None
        return math.exp(self.t + self.scale * math.log(probability / (1 - probability)))


def _trim(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The occupied part of the histogram (with its edges), so rules work on its range."""
    nz = np.flatnonzero(hist)
    lo, hi = int(nz[0]), int(nz[-1]) + 1
    return hist[lo:hi], EDGES[lo : hi + 1]


def _mode_and_lower_spread(h: np.ndarray, e: np.ndarray) -> tuple[float, float]:
    centers = 0.5 * (e[:-1] + e[1:])
    width = float(e[1] - e[0])
    sigma_bins = max(1.0, 0.05 / width)
    r = int(math.ceil(3 * sigma_bins))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_bins) ** 2)
    sm = np.convolve(h.astype(np.float64), k / k.sum(), mode="same")
    i = int(np.argmax(sm))
    mode = float(centers[i])
    lower = h[: i + 1].astype(np.float64)
    if lower.sum() <= 0:
        return mode, 0.0
    # median of (mode - u) over the pixels below the mode
    d = mode - centers[: i + 1]
    order = np.argsort(d)
    cum = np.cumsum(lower[order])
    j = int(np.searchsorted(cum, cum[-1] / 2))
    return mode, 1.4826 * float(d[order][min(j, len(d) - 1)])


def _mixture(h: np.ndarray, e: np.ndarray, med: float, mad: float) -> float | None:
    """Cut of a two-Gaussian EM fit on binned u (None when degenerate)."""
    x = 0.5 * (e[:-1] + e[1:])
    w = h.astype(np.float64)
    n = w.sum()
    up = x > med + 2 * mad
    if w[up].sum() < 1e-4 * n or w[~up].sum() <= 0:
        return None
    pi = np.array([w[~up].sum(), w[up].sum()]) / n
    mu = np.array([med, float((w[up] * x[up]).sum() / w[up].sum())])
    sd = np.array(
        [
            max(mad, 1e-3),
            max(float(np.sqrt((w[up] * (x[up] - mu[1]) ** 2).sum() / w[up].sum())), 1e-3),
        ]
    )
    for _ in range(300):
        logp = -0.5 * ((x[:, None] - mu) / sd) ** 2 - np.log(sd) + np.log(np.maximum(pi, 1e-300))
        m = logp.max(axis=1, keepdims=True)
        r = np.exp(logp - m)
        r /= r.sum(axis=1, keepdims=True)
        rw = r * w[:, None]
        nk = rw.sum(axis=0)
        if np.any(nk < 1e-6 * n):
            return None
        new_mu = (rw * x[:, None]).sum(axis=0) / nk
        sd = np.sqrt(np.maximum((rw * (x[:, None] - new_mu) ** 2).sum(axis=0) / nk, 1e-6))
        pi = nk / n
        done = np.max(np.abs(new_mu - mu)) < 1e-6
        mu = new_mu
        if done:
            break
    lo, hi = (0, 1) if mu[0] <= mu[1] else (1, 0)
    if mu[hi] - mu[lo] < 1e-3:
        return None
    grid = np.linspace(mu[lo], max(mu[hi] + 4 * sd[hi], mu[lo] + 8 * sd[lo]), 4001)
    lp = [
        -0.5 * ((grid - mu[c]) / sd[c]) ** 2 - math.log(sd[c]) + math.log(max(pi[c], 1e-300))
        for c in (lo, hi)
    ]
    above = np.flatnonzero(lp[1] >= lp[0])
    if above.size == 0:
        return None
    return float(grid[above[0]])


def fit_cut(
    hist: np.ndarray,
    rule: str,
    *,
    z: float = 4.0,
    z_floor: float = 2.0,
    alpha: float = 1e-4,
    dof: int | None = None,
) -> Cut:
    """The automatic cut of a :func:`log_histogram` under ``rule``."""
    if hist.sum() <= 0:
        raise ValueError("empty score histogram")
    h, e = _trim(hist)
    if len(h) < 2:  # every score in one bin: nothing to separate
        return Cut(float(e[-1]), float(e[0]), rule)
    med, mad = histogram_median_mad(h, e)
    mad = max(mad, 1e-6)
    if rule == "robust_z":
        return Cut(med + z * mad, med, rule)
    if rule == "nochange_z":
        mode, spread = _mode_and_lower_spread(h, e)
        return Cut(mode + z * max(spread, 1e-6), med, rule)
    if rule == "kittler":
        return Cut(kittler_illingworth_threshold(h, e), med, rule)
    if rule == "otsu":
        return Cut(otsu_threshold(h, e), med, rule)
    if rule == "mixture":
        t = _mixture(h, e, med, mad)
        floor = med + z_floor * mad
        if t is None:
            return Cut(med + z * mad, med, "mixture->robust_z")
        return Cut(max(t, floor), med, rule)
    if rule == "chi2":
        if dof is None:
            raise ValueError("the chi2 rule needs the degrees of freedom")
        return Cut(math.log(chi2_ppf(1.0 - alpha, dof)), med, rule)
    if rule == "share_cva":
        raise ValueError("the share_cva rule needs CVA's histogram: use fit_share_cut")
    raise ValueError(f"unknown threshold rule {rule!r}")


def share_above(hist: np.ndarray, t: float) -> float:
    """Share of the histogram's pixels with ``u >= t`` (bins whose lower edge is >= t)."""
    n = float(hist.sum())
    if n <= 0:
        return 0.0
    i = int(np.searchsorted(EDGES[:-1], t, side="left"))
    return float(hist[i:].sum()) / n


def cut_at_share(hist: np.ndarray, share: float) -> float:
    """The lowest bin edge ``t`` with :func:`share_above` ``(hist, t) <= share``: the cut that
    flags (at most, to one bin) ``share`` of the pixels."""
    n = float(hist.sum())
    if n <= 0:
        raise ValueError("empty score histogram")
    above = np.cumsum(hist[::-1])[::-1] / n  # above[i]: share with bin index >= i
    i = int(np.searchsorted(-above, -share, side="left"))  # first i with above[i] <= share
    return float(EDGES[min(i, BINS)])


def fit_share_cut(
    hist: np.ndarray,
    cva_hist: np.ndarray,
    *,
    cva_rule: str = "nochange_z",
    cva_z: float = 2.5,
    share_combine: str = "cva",
    share_floor: float = 0.0,
    own_rule: str = "robust_z",
    z: float = 4.0,
    z_floor: float = 2.0,
) -> Cut:
    """``share_cva``: cut ``hist`` (a model's log histogram) at the share CVA's automatic cut
    flags on ``cva_hist`` (the same pair), combined with the model's own share (its cut
    ``own_rule`` at ``z``: ``robust_z`` or ``nochange_z``) as
    ``share_combine`` says (``cva``, ``max``, ``geomean``), never below ``share_floor`` × CVA's
    share. ``rule`` names the shares."""
    cva = fit_cut(cva_hist, cva_rule, z=cva_z, z_floor=z_floor)
    s_cva = share_above(cva_hist, cva.t)
    own = fit_cut(hist, own_rule, z=z)
    s_own = share_above(hist, own.t)
    if share_combine == "cva":
        share = s_cva
    elif share_combine == "max":
        share = max(s_cva, s_own)
    elif share_combine == "geomean":
        share = math.sqrt(s_cva * s_own)
    else:
        raise ValueError(f"unknown share_combine {share_combine!r}")
    share = max(share, share_floor * s_cva)
    t = cut_at_share(hist, share)
    # the logistic needs a cut above the median: a share >= 1/2 is not a change map
    t = max(t, own.mu0 + 1e-3)
    rule = f"share_cva({share_combine}, own {own_rule}: cva {100 * s_cva:.2f} %, own {100 * s_own:.2f} %)"
    return Cut(t, own.mu0, rule)


#: candidate rules compared by ``evaluate --protocol loo`` (cheap: on cached score maps)
ZS = (2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
CANDIDATES: tuple[dict[str, Any], ...] = (
    *({"threshold_rule": "robust_z", "z": z} for z in ZS),
    *({"threshold_rule": "nochange_z", "z": z} for z in ZS),
    {"threshold_rule": "kittler"},
    {"threshold_rule": "otsu"},
    *({"threshold_rule": "mixture", "z_floor": zf} for zf in (1.0, 2.0, 3.0)),
)
#: share rules compared for models that offer ``share_cva`` (the encoder): CVA's rule x how the
#: shares combine (the model's own robust_z share at z for ``max`` / ``geomean``)
CVA_REFERENCES: tuple[dict[str, Any], ...] = (
    {"cva_rule": "nochange_z", "cva_z": 2.0},
    {"cva_rule": "nochange_z", "cva_z": 2.5},
    {"cva_rule": "nochange_z", "cva_z": 3.0},
    {"cva_rule": "robust_z", "cva_z": 2.5},
    {"cva_rule": "robust_z", "cva_z": 3.0},
    {"cva_rule": "kittler", "cva_z": 2.5},
)
SHARE_CANDIDATES: tuple[dict[str, Any], ...] = (
    tuple(
        {"threshold_rule": "share_cva", **ref, "share_combine": comb, "z": z}
        for ref in CVA_REFERENCES
        for comb, zs in (("cva", (4.0,)), ("max", (3.5, 4.0)))
        for z in zs
    )
    + tuple(
        {
            "threshold_rule": "share_cva",
            **ref,
            "share_combine": comb,
            "own_rule": "nochange_z",
            "z": z,
        }
        for ref in CVA_REFERENCES
        for comb in ("max", "geomean")
        for z in (4.0, 5.0)
    )
    + tuple(
        {"threshold_rule": "share_cva", **ref, "share_combine": "geomean", "share_floor": f, "z": z}
        for ref in CVA_REFERENCES
        for f in (0.25, 0.0)
        for z in (3.5, 4.0)
    )
)
CHI2_CANDIDATES: tuple[dict[str, Any], ...] = tuple(
    {"threshold_rule": "chi2", "alpha": a} for a in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10)
)
