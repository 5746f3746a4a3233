"""The active learner (numpy): classifier, batch selection, estimates."""

from __future__ import annotations

import numpy as np
import pytest

from candela.mining import learner


def _blobs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    x = rng.normal(size=(n, 5))
    x[y, :2] += 3.0
    return x, y.astype(int)


def test_logistic_separates_and_refuses_one_class() -> None:
    x, y = _blobs()
    model = learner.Logistic(c=1.0).fit(x, y)
    p = model.predict_proba(x)
    assert learner.scores(y, p >= 0.5)[2] > 0.9
    with pytest.raises(ValueError, match="one 'yes' and one 'no'"):
        learner.Logistic().fit(x[y == 1], y[y == 1])


def test_batch_never_repeats_labelled_and_spreads_out() -> None:
    x, y = _blobs()
    z = learner.Scaler.fit(x).transform(x)
    labelled = np.zeros(len(z), dtype=bool)
    labelled[:20] = True
    proba = np.full(len(z), 0.5)  # everything equally uncertain: diversity decides
    batch = learner.select_batch(z, labelled, proba, k=10)
    assert len(set(batch.tolist())) == 10 and not labelled[batch].any()

    # k-center: the picks are further apart than ten random patches
    def spread(idx: np.ndarray) -> float:
        d = np.linalg.norm(z[idx][:, None] - z[idx][None], axis=-1)
        return float(d[np.triu_indices(len(idx), 1)].min())

    rnd = np.random.default_rng(1).choice(np.arange(20, len(z)), 10, replace=False)
    assert spread(batch) > spread(rnd)


def test_batch_prefers_uncertain_patches() -> None:
    x, _ = _blobs()
    z = learner.Scaler.fit(x).transform(x)
    proba = np.where(np.arange(len(z)) < 30, 0.5, 0.999)
    batch = learner.select_batch(z, np.zeros(len(z), dtype=bool), proba, k=10, beta=2.0)
    assert (batch < 30).all()


def test_first_batch_looks_near_the_example() -> None:
    x, y = _blobs()
    z = learner.Scaler.fit(x).transform(x)
    example = int(np.flatnonzero(y)[0])
    labelled = np.zeros(len(z), dtype=bool)
    labelled[example] = True
    batch = learner.select_batch(z, labelled, None, k=10, positives=np.array([example]))
    assert y[batch[:5]].mean() >= 0.8  # the nearest half is mostly of the category


def test_estimate_needs_both_answers_and_is_close_on_separable_data() -> None:
    x, y = _blobs()
    assert learner.estimate(x[:3], np.array([1, 0, 0])).precision is None
    est = learner.estimate(x, y)
    assert est.folds == 5 and est.f1 is not None and est.f1 > 0.85


def test_active_learning_beats_random_on_a_rare_category() -> None:
    """On a rare, separable category the loop finds it with fewer answers than random picks."""
    rng = np.random.default_rng(3)
    n = 1500
    y = (rng.random(n) < 0.03).astype(int)
    x = rng.normal(size=(n, 8))
    x[y == 1, 0] += 4.0
    z = learner.Scaler.fit(x).transform(x)
    start = int(np.flatnonzero(y)[0])

    def found(strategy: str) -> int:
        answers = {start: True}
        r = np.random.default_rng(0)
        for _ in range(5):
            if strategy == "al":
                batch = learner.learn_round(z, answers, rng=r).batch
            else:
                free = np.setdiff1d(np.arange(n), list(answers))
                batch = r.choice(free, 10, replace=False)
            answers.update({int(i): bool(y[i]) for i in batch})
        return sum(answers.values())

    assert found("al") > found("random") + 5
