"""``candela.mine_sessions``, ``mine_labels``, ``mine_iterations`` (migration 0020): the
active-learning sessions of EO image mining. The patches themselves are
:mod:`candela.db.mining`'s (``mine_patches``).

A session is one user's search for one category (unique per user and category: two users
learning "water" have two sessions and never see each other's answers). Labels are appended,
never updated: each row says who answered what and when, in which iteration; the latest answer
of a patch counts (view ``candela.mine_v_labels``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from candela.db import connect

LABELS = ("yes", "no", "skip")


class MiningLabelError(Exception):
    """Base of this module's errors."""


class NoSession(MiningLabelError, LookupError):
    """No such session, or it is another user's."""


class UnknownPatches(MiningLabelError, LookupError):
    """Labels name patches that do not exist (any more)."""

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = sorted(set(ids))
        shown = ", ".join(map(str, self.ids[:10])) + (" …" if len(self.ids) > 10 else "")
        super().__init__(
            f"no patch {shown}: {len(self.ids)} labelled patch(es) no longer exist "
            "(deleted or re-mined); nothing was recorded"
        )


class BadLabel(MiningLabelError, ValueError):
    """A label value other than yes / no / skip."""


_SESSION_COLS = "id, username, category, search, example_patch_id, c, beta, iteration, created_at"


def _session(row: Any) -> dict[str, Any]:
    keys = [k.strip() for k in _SESSION_COLS.split(",")]
    return dict(zip(keys, row, strict=True))


def open_session(
    dsn: str,
    user: str,
    category: str,
    *,
    c: float,
    beta: float,
    search: dict[str, Any] | None = None,
    example_patch_id: int | None = None,
) -> dict[str, Any]:
    """The session of ``user`` for ``category``, created on first use (later calls keep the
    settings; a non-empty ``search`` or a new ``example_patch_id`` replaces the stored one)."""
    with connect(dsn) as conn:
        if example_patch_id is not None:
            found = conn.execute(
                "SELECT 1 FROM candela.mine_patches WHERE id = %s", (example_patch_id,)
            ).fetchone()
            if not found:
                raise UnknownPatches([example_patch_id])
        row = conn.execute(
            "INSERT INTO candela.mine_sessions (username, category, search, example_patch_id, c, beta)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (username, category) DO UPDATE SET example_patch_id ="
            " COALESCE(EXCLUDED.example_patch_id, candela.mine_sessions.example_patch_id),"
            " search = CASE WHEN EXCLUDED.search = '{}'::jsonb"
            " THEN candela.mine_sessions.search ELSE EXCLUDED.search END"
            f" RETURNING {_SESSION_COLS}",
            (user, category, json.dumps(search or {}), example_patch_id, c, beta),
        ).fetchone()
    return _session(row)


def get_session(dsn: str, session_id: int, user: str | None = None) -> dict[str, Any]:
    """The session; :class:`NoSession` if it does not exist or (with ``user``) is not theirs."""
    with connect(dsn) as conn:
        row = conn.execute(
            f"SELECT {_SESSION_COLS} FROM candela.mine_sessions WHERE id = %s", (session_id,)
        ).fetchone()
    if row is None or (user is not None and row[1] != user):
        raise NoSession(f"no mining session {session_id}" + (f" of {user}" if user else ""))
    return _session(row)


def sessions(dsn: str, user: str) -> list[dict[str, Any]]:
    """The sessions of ``user``, newest first."""
    with connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT {_SESSION_COLS} FROM candela.mine_sessions WHERE username = %s"
            " ORDER BY created_at DESC, id DESC",
            (user,),
        ).fetchall()
    return [_session(r) for r in rows]


def add_labels(dsn: str, session_id: int, user: str, labels: Iterable[tuple[int, str]]) -> int:
    """Record ``(patch_id, label)`` answers of ``user`` in the session's current iteration, all
    or nothing: a bad value (:class:`BadLabel`) or a patch that no longer exists
    (:class:`UnknownPatches`) records none. Returns how many were recorded."""
    pairs = [(int(p), str(v)) for p, v in labels]
    bad = sorted({v for _, v in pairs if v not in LABELS})
    if bad:
        raise BadLabel(f"unknown label(s) {bad}: a label is one of {', '.join(LABELS)}")
    if not pairs:
        return 0
    with connect(dsn) as conn, conn.transaction():
        session = conn.execute(
            "SELECT username, iteration FROM candela.mine_sessions WHERE id = %s FOR UPDATE",
            (session_id,),
        ).fetchone()
        if session is None or session[0] != user:
            raise NoSession(f"no mining session {session_id} of {user}")
        ids = sorted({p for p, _ in pairs})
        have = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM candela.mine_patches WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        }
        missing = [p for p in ids if p not in have]
        if missing:
            raise UnknownPatches(missing)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO candela.mine_labels"
                " (session_id, patch_id, label, labelled_by, iteration)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(session_id, p, v, user, session[1]) for p, v in pairs],
            )
    return len(pairs)


def current_labels(dsn: str, session_id: int) -> dict[int, str]:
    """patch id → latest answer, for the session."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT patch_id, label FROM candela.mine_v_labels WHERE session_id = %s",
            (session_id,),
        ).fetchall()
    return {int(r[0]): r[1] for r in rows}


def label_history(dsn: str, session_id: int) -> list[dict[str, Any]]:
    """Every answer of the session (who, when, iteration), oldest first."""
    with connect(dsn) as conn:
        cur = conn.execute(
            "SELECT patch_id, label, labelled_by, labelled_at, iteration FROM candela.mine_labels"
            " WHERE session_id = %s ORDER BY id",
            (session_id,),
        )
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def record_iteration(dsn: str, session_id: int, figures: dict[str, Any]) -> int:
    """Start the session's next iteration: the figures of the model fitted on the answers so
    far (``n_yes``, ``n_no``, ``n_skip``, ``est_precision``, ``est_recall``, ``est_f1``,
    ``retrieved``, ``pool``) and the ``batch`` it asks about; answers given from now on carry
    this iteration's number. Returns it (1 for the first batch)."""
    cols = (
        "n_yes",
        "n_no",
        "n_skip",
        "est_precision",
        "est_recall",
        "est_f1",
        "retrieved",
        "pool",
        "batch",
    )
    with connect(dsn) as conn, conn.transaction():
        row = conn.execute(
            "UPDATE candela.mine_sessions SET iteration = iteration + 1 WHERE id = %s"
            " RETURNING iteration",
            (session_id,),
        ).fetchone()
        if row is None:
            raise NoSession(f"no mining session {session_id}")
        conn.execute(
            f"INSERT INTO candela.mine_iterations (session_id, iteration, {', '.join(cols)})"
            f" VALUES (%s, %s, {', '.join(['%s'] * len(cols))})",
            (session_id, row[0], *[figures.get(c) for c in cols]),
        )
    return int(row[0])


def iterations(dsn: str, session_id: int) -> list[dict[str, Any]]:
    """The session's iterations and their figures, in order."""
    with connect(dsn) as conn:
        cur = conn.execute(
            "SELECT iteration, n_yes, n_no, n_skip, est_precision, est_recall, est_f1,"
            " retrieved, pool, batch, created_at FROM candela.mine_iterations"
            " WHERE session_id = %s ORDER BY iteration",
            (session_id,),
        )
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def patch_cards(dsn: str, ids: Sequence[int]) -> list[dict[str, Any]]:
    """What the labelling page shows of each patch (read from ``mine_patches``, owned by
    :mod:`candela.db.mining`), in the order of ``ids``; ids that no longer exist are left out."""
    if not ids:
        return []
    with connect(dsn) as conn:
        cur = conn.execute(
            "SELECT id, dataset, product_id, acquired, size, west, south, east, north,"
            " footprint, quicklook_uri, feature_set, truth FROM candela.mine_patches"
            " WHERE id = ANY(%s)",
            ([int(i) for i in ids],),
        )
        names = [d.name for d in cur.description]
        rows = {int(r[0]): dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    return [rows[int(i)] for i in ids if int(i) in rows]
