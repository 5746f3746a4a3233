"""Iteratively reweighted multivariate alteration detection (IRMAD; Nielsen 2007).

Canonical correlation analysis of the before (X) and after (Y) stacks gives projections
``U = aᵢᵀX`` and ``V = bᵢᵀY`` with unit variance and maximal correlations ρᵢ; the MAD variates
``Mᵢ = Uᵢ − Vᵢ`` (variance ``2(1 − ρᵢ)``) are uncorrelated and ordered by how much change they
carry. For a no-change pixel, ``Z = Σ Mᵢ² / σ²(Mᵢ)`` is approximately chi-square with ``p``
degrees of freedom (p = number of bands). IRMAD re-estimates the CCA with each pixel weighted by
its no-change probability ``P(χ²ₚ > Z)`` until the canonical correlations move less than
``tolerance`` (or ``max_iterations`` passes are done), so the statistics describe the no-change
background and changes stand out.

Consistency correction (default on, ``consistency_correction=false`` gives Nielsen's original
update): weighting by ``P(χ²ₚ > Z)`` shrinks the weighted variance of a Gaussian no-change
population by a known factor ``c(p)`` (0.75 for 10 bands), so the original update inflates ``Z``
by ``1/c`` at each pass. On Gaussian data it still converges (to an inflated fixed point), but on
real, heavy-tailed scenes (the OSCD L1C pairs) the weights implode onto a few percent of the
pixels and the correlations never converge. Dividing the weighted MAD variances by ``c(p)``
(as robust M-estimators use consistency factors) makes ``Z`` exactly chi-square for Gaussian
no-change pixels and converges on all OSCD pairs we tried.

Score: the statistic ``Z``. Change probability: the chi-square CDF ``P(χ²ₚ ≤ Z)`` (the
no-change probability is its survival function). ``--threshold auto`` uses ``auto_threshold``
(default 0.9999, i.e. a p-value of 1e-4 for "this pixel is unchanged"); 0.5 would flag half of
the truly unchanged pixels, since the CDF is uniform on them. Real scenes have heavier tails than
the Gaussian model, so even this flags far more than the labelled urban changes on OSCD (seasonal
vegetation change is change to IRMAD); see the README's accuracy table.

Each iteration is one pass over the blocks accumulating weighted first and second moments; the
final scoring is per pixel, so blockwise results equal whole-array ones.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from candela_changedetect.blocks import Block, BlockSource
from candela_changedetect.mathutil import (
    chi2_cdf,
    chi2_ppf,
    chi2_sf,
    chi2_weighted_variance_factor,
)
from candela_changedetect.models.base import ModelOptions, parse_options

log = logging.getLogger(__name__)


class IRMADOptions(ModelOptions):
    max_iterations: int = Field(30, ge=1, le=500, description="maximum reweighting passes")
    tolerance: float = Field(
        1e-4, gt=0, description="stop when no canonical correlation moves more than this"
    )
    auto_threshold: float = Field(
        0.9999, gt=0, lt=1, description="change-probability threshold used by --threshold auto"
    )
    ridge: float = Field(1e-9, ge=0, description="relative ridge added to the covariances")
    consistency_correction: bool = Field(
        True,
        description="divide the weighted MAD variances by c(p) (see module docs); false = Nielsen 2007",
    )


@dataclass
class MADTransform:
    mean_x: np.ndarray
    mean_y: np.ndarray
    a: np.ndarray  # (p, p) columns = canonical vectors of X
    b: np.ndarray
    rho: np.ndarray  # canonical correlations, descending
    mad_var: np.ndarray  # 2 (1 - rho)

    def chi2(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Statistic Z for pixels ``x``, ``y`` of shape (n, p)."""
        mad = (x - self.mean_x) @ self.a - (y - self.mean_y) @ self.b
        return np.asarray(np.sum(mad * mad / self.mad_var, axis=1))


def _cca(
    w: float,
    sx: np.ndarray,
    sy: np.ndarray,
    sxx: np.ndarray,
    syy: np.ndarray,
    sxy: np.ndarray,
    ridge: float,
) -> MADTransform:
    mx, my = sx / w, sy / w
    cxx = sxx / w - np.outer(mx, mx)
    cyy = syy / w - np.outer(my, my)
    cxy = sxy / w - np.outer(mx, my)
    p = len(mx)
    cxx = cxx + ridge * max(np.trace(cxx) / p, 1e-12) * np.eye(p)
    cyy = cyy + ridge * max(np.trace(cyy) / p, 1e-12) * np.eye(p)
    lx = np.linalg.cholesky(cxx)
    ly = np.linalg.cholesky(cyy)
    k = np.linalg.solve(lx, np.linalg.solve(ly, cxy.T).T)  # Lx⁻¹ Cxy Ly⁻ᵀ
    u, rho, vt = np.linalg.svd(k)
    a = np.linalg.solve(lx.T, u)  # aᵀ Cxx a = I
    b = np.linalg.solve(ly.T, vt.T)  # bᵀ Cyy b = I, aᵀ Cxy b = diag(rho)
    rho = np.clip(rho, 0.0, 1.0)
    mad_var = np.maximum(2.0 * (1.0 - rho), 1e-9)
    return MADTransform(mx, my, a, b, rho, mad_var)


class IRMADModel:
    name: ClassVar[str] = "irmad"

    def __init__(self, options: IRMADOptions | None = None) -> None:
        self.options = options or IRMADOptions()
        self.transform: MADTransform | None = None
        self.dof = 0
        self.iterations = 0
        self.converged = False
        self.valid_pixels = 0
        self.history: list[float] = []
        self._factor = 1.0

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> IRMADModel:
        return cls(parse_options(cls.name, IRMADOptions, options))

    def _accumulate(self, source: BlockSource, prev: MADTransform | None) -> tuple[Any, ...]:
        p = len(source.band_names)
        w = 0.0
        n = 0
        sx, sy = np.zeros(p), np.zeros(p)
        sxx, syy, sxy = np.zeros((p, p)), np.zeros((p, p)), np.zeros((p, p))
        for blk in source.blocks():
            x = blk.before[:, blk.valid].T.astype(np.float64)
            y = blk.after[:, blk.valid].T.astype(np.float64)
            if x.shape[0] == 0:
                continue
            n += x.shape[0]
            if prev is None:
                wt = np.ones(x.shape[0])
            else:
                wt = chi2_sf(prev.chi2(x, y), p)
            w += float(wt.sum())
            sx += wt @ x
            sy += wt @ y
            xw = x * wt[:, None]
            sxx += xw.T @ x
            syy += (y * wt[:, None]).T @ y
            sxy += xw.T @ y
        return n, w, sx, sy, sxx, syy, sxy

    def fit(self, source: BlockSource) -> None:
        from candela_sdk.errors import NoDataError

        p = len(source.band_names)
        self.dof = p
        self._factor = chi2_weighted_variance_factor(p)
        prev: MADTransform | None = None
        for it in range(1, self.options.max_iterations + 1):
            n, w, sx, sy, sxx, syy, sxy = self._accumulate(source, prev)
            if it == 1:
                if n == 0:
                    raise NoDataError(
                        "no valid pixel is common to both dates (after nodata and masks)"
                    )
                if n <= 2 * p:
                    raise NoDataError(f"only {n} valid pixels, too few for IRMAD on {p} bands")
                self.valid_pixels = n
            if w <= 1e-9 * n:
                log.warning("irmad: all weights vanished at iteration %d; keeping the last fit", it)
                break
            try:
                cur = _cca(w, sx, sy, sxx, syy, sxy, self.options.ridge)
            except np.linalg.LinAlgError:
                if prev is None:
                    raise
                log.warning("irmad: singular covariance at iteration %d; keeping the last fit", it)
                break
            if prev is not None and self.options.consistency_correction:
                cur.mad_var = cur.mad_var / self._factor
            delta = math.inf if prev is None else float(np.max(np.abs(cur.rho - prev.rho)))
            prev = cur
            self.iterations = it
            self.history.append(delta)
            log.debug("irmad: iteration %d, rho %s, delta %.2e", it, np.round(cur.rho, 5), delta)
            if delta < self.options.tolerance:
                self.converged = True
                break
        self.transform = prev
        assert prev is not None
        log.info(
            "irmad: %d valid pixels, %d iteration(s), converged=%s, canonical correlations %s",
            self.valid_pixels,
            self.iterations,
            self.converged,
            np.round(prev.rho, 4).tolist(),
        )

    def score(self, block: Block) -> np.ndarray:
        assert self.transform is not None
        out = np.full(block.valid.shape, np.nan, dtype=np.float32)
        x = block.before[:, block.valid].T.astype(np.float64)
        y = block.after[:, block.valid].T.astype(np.float64)
        out[block.valid] = self.transform.chi2(x, y)
        return out

    def probability(self, score: np.ndarray) -> np.ndarray:
        return chi2_cdf(score, self.dof)

    def auto_threshold(self) -> float:
        return self.options.auto_threshold

    def score_at(self, probability: float) -> float | None:
        if not 0 < probability < 1:
            return None
        return chi2_ppf(probability, self.dof)

    def describe(self) -> dict[str, Any]:
        t = self.transform
        return {
            "options": self.options.model_dump(),
            "valid_pixels": self.valid_pixels,
            "degrees_of_freedom": self.dof,
            "iterations": self.iterations,
            "converged": self.converged,
            "variance_consistency_factor": self._factor,
            "canonical_correlations": None if t is None else [float(r) for r in t.rho],
            "last_change_in_correlations": self.history[-1] if self.history else None,
        }
