"""The active learner: a probabilistic classifier and uncertainty + diversity batch selection.

Plain numpy, no scikit-learn (the platform image does not carry it, and modAL 0.4.2.1, the last
release of ``modal-python``, breaks on scikit-learn ≥ 1.8: ``ActiveLearner.teach`` passes
``force_all_finite`` to ``check_X_y``, removed there; README "EO image mining" says more).

* :class:`Logistic`: L2-regularised logistic regression fitted by Newton's method (IRLS) on
  standardised features, with balanced class weights (a target category is usually rare).
* :func:`select_batch`: uncertainty-weighted k-center. Each pick maximises
  ``uncertainty ** beta * distance to the nearest labelled or already picked patch``: uncertain
  patches first, but never ten near-copies of one uncertain patch. ``beta`` sets the trade-off
  (0: pure diversity, large: pure uncertainty); before both answers have been given, the learner
  looks near the positive examples and spreads the rest (k-center).
* :func:`estimate`: precision / recall / F1 for the user from k-fold cross-validated
  predictions on the labels so far (an estimate: actively chosen labels are not a random
  sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BATCH = 10
DEFAULT_C = 1.0  # inverse L2 strength; the setting the benchmark picks on all its categories
DEFAULT_BETA = 0.5  # uncertainty exponent of the batch score, ditto


@dataclass
class Scaler:
    """Standardisation fitted on the whole pool (labelled or not): features differ in scale by
    orders of magnitude (reflectances, indices, texture, embeddings)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        x = np.asarray(x, dtype=np.float64)
        mean = np.nanmean(x, axis=0)
        scale = np.nanstd(x, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
        return cls(mean, scale)

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class Logistic:
    """Binary L2 logistic regression (intercept not penalised), Newton/IRLS."""

    c: float = DEFAULT_C
    max_iter: int = 50
    w: np.ndarray = field(default_factory=lambda: np.zeros(0))
    b: float = 0.0

    def fit(self, x: np.ndarray, y: np.ndarray) -> Logistic:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(f"features {x.shape} and labels {y.shape} do not match")
        pos, neg = float(y.sum()), float(len(y) - y.sum())
        if pos == 0 or neg == 0:
            raise ValueError("a classifier needs at least one 'yes' and one 'no'")
        sw = np.where(y > 0.5, len(y) / (2 * pos), len(y) / (2 * neg))  # balanced weights
        n, d = x.shape
        xa = np.hstack([x, np.ones((n, 1))])
        theta = np.zeros(d + 1)
        reg = np.full(d + 1, 1.0 / self.c)
        reg[-1] = 0.0
        for _ in range(self.max_iter):
            p = _sigmoid(xa @ theta)
            grad = xa.T @ (sw * (p - y)) + reg * theta
            h = (xa * (sw * p * (1 - p))[:, None]).T @ xa + np.diag(reg + 1e-9)
            step = np.linalg.solve(h, grad)
            theta -= step
            if np.max(np.abs(step)) < 1e-6:
                break
        self.w, self.b = theta[:-1], float(theta[-1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(yes) of each row."""
        return _sigmoid(np.asarray(x, dtype=np.float64) @ self.w + self.b)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _min_dist(z: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row of ``z`` to its nearest centre (inf without centres)."""
    if len(centres) == 0:
        return np.full(len(z), np.inf)
    d2 = (z * z).sum(1)[:, None] - 2 * z @ centres.T + (centres * centres).sum(1)[None, :]
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def select_batch(
    z: np.ndarray,
    labelled: np.ndarray,
    proba: np.ndarray | None,
    k: int = BATCH,
    beta: float = DEFAULT_BETA,
    positives: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices (into ``z``, standardised pool) of the next ``k`` patches to ask about.

    ``labelled``: boolean mask of patches already answered (never asked again). ``proba``:
    the model's P(yes) over the pool, ``None`` while it cannot be fitted (one answer only);
    then half the batch are the unlabelled patches nearest the ``positives`` (indices) and the
    rest k-center picks."""
    z = np.asarray(z, dtype=np.float64)
    labelled = np.asarray(labelled, dtype=bool)
    free = np.flatnonzero(~labelled)
    k = min(k, len(free))
    if k <= 0:
        return np.zeros(0, dtype=int)
    rng = rng or np.random.default_rng(0)
    picked: list[int] = []
    centres = z[labelled]
    if proba is None:
        if positives is not None and len(positives):
            near = _min_dist(z[free], z[np.asarray(positives, dtype=int)])
            picked += [int(i) for i in free[np.argsort(near, kind="stable")[: (k + 1) // 2]]]
        weight = np.ones(len(z))
    else:
        weight = (1.0 - np.abs(2.0 * np.asarray(proba, dtype=np.float64) - 1.0)) ** beta
        weight = np.maximum(weight, 1e-12)  # a certain patch is the last resort, not never
    dist = _min_dist(z, np.vstack([centres, z[picked]]) if picked else centres)
    if not np.isfinite(dist).any():  # nothing labelled: the most uncertain patch, or any
        first = int(free[np.argmax(weight[free])]) if proba is not None else int(rng.choice(free))
        picked.append(first)
        dist = _min_dist(z, z[[first]])
    while len(picked) < k:
        score = weight * dist
        score[labelled] = -1.0
        score[picked] = -1.0
        i = int(np.argmax(score))
        picked.append(i)
        dist = np.minimum(dist, _min_dist(z, z[[i]]))
    return np.asarray(picked[:k], dtype=int)


@dataclass(frozen=True)
class Estimate:
    """Cross-validated figures on the labels so far (``None`` until they can be computed)."""

    precision: float | None
    recall: float | None
    f1: float | None
    folds: int


def estimate(z: np.ndarray, y: np.ndarray, c: float = DEFAULT_C, folds: int = 5) -> Estimate:
    """Precision, recall and F1 of the category from k-fold cross-validated predictions on the
    labelled patches (stratified folds, at most one fold per example of the rarer answer)."""
    y = np.asarray(y, dtype=int)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    k = min(folds, len(pos), len(neg))
    if k < 2:
        return Estimate(None, None, None, 0)
    fold = np.empty(len(y), dtype=int)
    fold[pos] = np.arange(len(pos)) % k
    fold[neg] = np.arange(len(neg)) % k
    pred = np.zeros(len(y), dtype=int)
    for f in range(k):
        test = fold == f
        model = Logistic(c=c).fit(z[~test], y[~test])
        pred[test] = (model.predict_proba(z[test]) >= 0.5).astype(int)
    return Estimate(*scores(y, pred), folds=k)


def scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 of ``pred`` against ``y`` (0 where undefined)."""
    y, pred = np.asarray(y, dtype=bool), np.asarray(pred, dtype=bool)
    tp = float((y & pred).sum())
    p = tp / pred.sum() if pred.sum() else 0.0
    r = tp / y.sum() if y.sum() else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1


@dataclass
class Round:
    """One pass of the loop over a pool: the fitted model (if any), P(yes) of every patch, the
    next batch to ask about."""

    proba: np.ndarray | None
    batch: np.ndarray
    model: Logistic | None


def learn_round(
    z: np.ndarray,
    answers: dict[int, bool],
    skipped: set[int] | frozenset[int] = frozenset(),
    k: int = BATCH,
    c: float = DEFAULT_C,
    beta: float = DEFAULT_BETA,
    rng: np.random.Generator | None = None,
) -> Round:
    """Fit on ``answers`` (pool index → yes/no) and pick the next batch; ``skipped`` patches
    (the user could not say) are not used for fitting and not asked again."""
    labelled = np.zeros(len(z), dtype=bool)
    labelled[list(skipped)] = True
    idx = np.fromiter(answers.keys(), dtype=int, count=len(answers))
    labelled[idx] = True
    y = np.fromiter((int(v) for v in answers.values()), dtype=int, count=len(answers))
    model: Logistic | None = None
    proba = None
    if 0 < y.sum() < len(y):
        model = Logistic(c=c).fit(z[idx], y)
        proba = model.predict_proba(z)
    batch = select_batch(z, labelled, proba, k, beta, positives=idx[y == 1], rng=rng)
    return Round(proba, batch, model)
