"""The relevance-feedback loop over the database: a session per (user, category), the user's
answers, the model refitted at each iteration on them, the next batch and the retrieved patches.

Nothing of the model is stored: it is refitted from the answers (a few hundred at most) on each
call, in milliseconds; what is stored is what a user did (every answer, who and when) and what
the model said at each iteration (its estimated precision/recall, the batch it asked about)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from candela.db import connect
from candela.db import mining_labels as db
from candela.mining import learner

POOL_MAX = 20_000


class EmptyPool(db.MiningLabelError, LookupError):
    """The session's search selects no patch: nothing to ask about."""


@dataclass
class Fitted:
    """The pool of a session and the model fitted on its answers."""

    ids: np.ndarray  # patch ids of the pool
    z: np.ndarray  # standardised features
    answers: dict[int, str]  # patch id → latest answer
    proba: np.ndarray | None  # P(yes) over the pool (None until yes and no both given)
    estimate: learner.Estimate


def _search_args(search: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if search.get("bbox"):
        out["bbox"] = tuple(float(v) for v in search["bbox"])
    for key in ("start", "end"):
        if search.get(key):
            out[key] = dt.datetime.fromisoformat(str(search[key]))
    if search.get("dataset"):
        out["dataset"] = str(search["dataset"])
    return out


def pool(
    dsn: str, search: dict[str, Any], extra: list[int] | None = None, example: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Patch ids and feature matrix of the patches a session's search selects (plus ``extra``:
    answered patches outside it still teach the model). Features of different feature sets
    cannot be compared: the pool keeps the example's set (else the most common one)."""
    from candela.db import mining

    with connect(dsn) as conn:
        rows = mining.search_patches(conn, limit=POOL_MAX, **_search_args(search))
        ids = {int(r["id"]) for r in rows} | set(extra or [])
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
        sets = dict(
            conn.execute(
                "SELECT id, feature_set FROM candela.mine_patches WHERE id = ANY(%s)",
                (sorted(ids),),
            ).fetchall()
        )
        if not sets:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
        counts: dict[str, int] = {}
        for fs in sets.values():
            counts[fs] = counts.get(fs, 0) + 1
        keep = sets.get(example) if example is not None else None
        keep = keep or max(sorted(counts), key=lambda k: counts[k])
        got, x = mining.feature_matrix(conn, sorted(i for i, fs in sets.items() if fs == keep))
    return np.asarray(got, dtype=np.int64), np.asarray(x, dtype=np.float64)


def fit(dsn: str, session: dict[str, Any]) -> Fitted:
    answers = db.current_labels(dsn, session["id"])
    ids, x = pool(dsn, session["search"], list(answers), session["example_patch_id"])
    if len(ids) == 0:
        return Fitted(ids, x, answers, None, learner.Estimate(None, None, None, 0))
    z = learner.Scaler.fit(x).transform(x)
    where = {int(p): i for i, p in enumerate(ids)}
    told = [(where[p], v == "yes") for p, v in answers.items() if v != "skip" and p in where]
    proba = None
    est = learner.Estimate(None, None, None, 0)
    if told:
        idx = np.array([i for i, _ in told])
        y = np.array([int(v) for _, v in told])
        if 0 < y.sum() < len(y):
            model = learner.Logistic(c=session["c"]).fit(z[idx], y)
            proba = model.predict_proba(z)
            est = learner.estimate(z[idx], y, c=session["c"])
    return Fitted(ids, z, answers, proba, est)


def start(
    dsn: str,
    user: str,
    category: str,
    *,
    search: dict[str, Any] | None = None,
    example_patch_id: int | None = None,
    c: float = learner.DEFAULT_C,
    beta: float = learner.DEFAULT_BETA,
) -> dict[str, Any]:
    """Open (or reopen) ``user``'s session for ``category`` over the patches ``search`` selects
    (a new search replaces the stored one; :class:`EmptyPool` when it selects none, nothing
    recorded); an example patch ("similar to this one") is recorded as the user's first 'yes'."""
    from candela.db import mining

    with connect(dsn) as conn:
        if not mining.search_patches(conn, limit=1, **_search_args(search or {})):
            raise EmptyPool(
                f"no mined patch matches the search {search or {}}: widen the area or the"
                " dates, or mine the stacks first"
            )
    session = db.open_session(
        dsn, user, category, c=c, beta=beta, search=search, example_patch_id=example_patch_id
    )
    if example_patch_id is not None:
        if db.current_labels(dsn, session["id"]).get(example_patch_id) != "yes":
            db.add_labels(dsn, session["id"], user, [(example_patch_id, "yes")])
    return session


def next_batch(dsn: str, session_id: int, user: str, k: int = learner.BATCH) -> dict[str, Any]:
    """Refit on the answers so far, record the iteration's figures and ask about the next ``k``
    patches (uncertainty + diversity; see :mod:`candela.mining.learner`)."""
    session = db.get_session(dsn, session_id, user)
    f = fit(dsn, session)
    if len(f.ids) == 0:
        raise EmptyPool(
            f"no mined patch matches the search of session {session_id} ({session['search']}):"
            " widen the area or the dates, or mine the stacks first"
        )
    where = {int(p): i for i, p in enumerate(f.ids)}
    labelled = np.zeros(len(f.ids), dtype=bool)
    for p in f.answers:
        if p in where:
            labelled[where[p]] = True
    positives = np.array([where[p] for p, v in f.answers.items() if v == "yes" and p in where])
    rng = np.random.default_rng(session_id * 1000 + session["iteration"])
    picks = learner.select_batch(
        f.z, labelled, f.proba, k, session["beta"], positives=positives, rng=rng
    )
    batch = [int(f.ids[i]) for i in picks]
    counts = {v: sum(1 for a in f.answers.values() if a == v) for v in db.LABELS}
    figures = {
        "n_yes": counts["yes"],
        "n_no": counts["no"],
        "n_skip": counts["skip"],
        "est_precision": f.estimate.precision,
        "est_recall": f.estimate.recall,
        "est_f1": f.estimate.f1,
        "retrieved": None if f.proba is None else int((f.proba >= 0.5).sum()),
        "pool": len(f.ids),
        "batch": batch,
    }
    iteration = db.record_iteration(dsn, session_id, figures)
    return {"iteration": iteration, **figures}


def retrieved(dsn: str, session_id: int, user: str, limit: int = 500) -> list[tuple[int, float]]:
    """The pool's patches the model puts in the category (P(yes) ≥ 0.5), most certain first,
    with the user's own 'yes' answers always in."""
    session = db.get_session(dsn, session_id, user)
    f = fit(dsn, session)
    out: dict[int, float] = {}
    if f.proba is not None:
        order = np.argsort(-f.proba, kind="stable")
        out = {int(f.ids[i]): float(f.proba[i]) for i in order if f.proba[i] >= 0.5}
    for p, v in f.answers.items():
        if v == "yes":
            out[p] = 1.0
        elif v == "no":
            out.pop(p, None)
    return sorted(out.items(), key=lambda kv: -kv[1])[:limit]
