"""``candela.run_claims`` and ``candela.watches``: output-key claims and saved watches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from candela.db import connect

if TYPE_CHECKING:
    from candela.runs import Watch

# a claim older than this is left over from a run that died without releasing it
STALE_CLAIM = dt.timedelta(hours=12)


def claim(
    dsn: str,
    key: str,
    dag_id: str,
    run_id: str,
    ended: Callable[[str, str], bool] | None = None,
) -> None:
    """Claim ``key`` for this run; :class:`~candela.runs.RunConflict` if another live run holds
    it.

    A claim is free when its run released it, when it is older than :data:`STALE_CLAIM`, or
    when ``ended(dag_id, run_id)`` says its run has ended (a run whose release never came: its
    callback was lost with a killed component).
    """
    from candela.runs import RunConflict

    with connect(dsn) as conn:
        row = conn.execute(
            """INSERT INTO candela.run_claims (output_key, dag_id, run_id)
               VALUES (%s, %s, %s)
               ON CONFLICT (output_key) DO UPDATE SET run_id = EXCLUDED.run_id,
                   dag_id = EXCLUDED.dag_id, claimed_at = now()
               WHERE candela.run_claims.run_id = EXCLUDED.run_id
                  OR candela.run_claims.claimed_at < now() - %s
               RETURNING run_id""",
            (key, dag_id, run_id, STALE_CLAIM),
        ).fetchone()
        if row is not None:
            return
        holder = conn.execute(
            "SELECT dag_id, run_id FROM candela.run_claims WHERE output_key = %s", (key,)
        ).fetchone()
        if holder is None:  # released in between: try once more
            conn.execute(
                "INSERT INTO candela.run_claims (output_key, dag_id, run_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (output_key) DO NOTHING",
                (key, dag_id, run_id),
            )
        elif ended is not None and ended(holder[0], holder[1]):
            # take it over from the ended run, unless another run was quicker
            conn.execute(
                "UPDATE candela.run_claims SET run_id = %s, dag_id = %s, claimed_at = now()"
                " WHERE output_key = %s AND run_id = %s",
                (run_id, dag_id, key, holder[1]),
            )
        got = conn.execute(
            "SELECT run_id FROM candela.run_claims WHERE output_key = %s", (key,)
        ).fetchone()
        if got is None or got[0] != run_id:
            raise RunConflict(
                f"an identical run ({got[0] if got else '?'}) is writing these outputs; wait for "
                "it to end or change the parameters"
            )


def holder(dsn: str, key: str) -> str | None:
    """The run that holds ``key`` (``None``: free)."""
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT run_id FROM candela.run_claims WHERE output_key = %s", (key,)
        ).fetchone()
    return None if row is None else str(row[0])


def release(dsn: str, key: str, run_id: str) -> bool:
    """Release ``key`` if ``run_id`` holds it (the run guard: a stale claim, a refused call)."""
    with connect(dsn) as conn:
        cur = conn.execute(
            "DELETE FROM candela.run_claims WHERE output_key = %s AND run_id = %s", (key, run_id)
        )
        return bool(cur.rowcount > 0)


def claimed_keys(dsn: str, dag_id: str, run_id: str) -> list[str]:
    """The output keys the run holds."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT output_key FROM candela.run_claims WHERE dag_id = %s AND run_id = %s"
            " ORDER BY output_key",
            (dag_id, run_id),
        ).fetchall()
    return [r[0] for r in rows]


def release_run(dsn: str, dag_id: str, run_id: str) -> list[str]:
    """Release every claim the run holds; the keys released."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "DELETE FROM candela.run_claims WHERE dag_id = %s AND run_id = %s RETURNING output_key",
            (dag_id, run_id),
        ).fetchall()
    return sorted(r[0] for r in rows)


_WATCH_COLS = (
    "name, collection, bbox, tile, model, max_cloud, every_days, since, last_run_at, last_run_id"
)


def save_watch(dsn: str, w: Watch) -> None:
    with connect(dsn) as conn:
        conn.execute(
            f"""INSERT INTO candela.watches ({_WATCH_COLS}) VALUES
                (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (name) DO UPDATE SET collection = EXCLUDED.collection,
                  bbox = EXCLUDED.bbox, tile = EXCLUDED.tile, model = EXCLUDED.model,
                  max_cloud = EXCLUDED.max_cloud, every_days = EXCLUDED.every_days,
                  since = EXCLUDED.since""",
            (
                w.name,
                w.collection,
                w.bbox,
                w.tile,
                w.model,
                w.max_cloud,
                w.every_days,
                w.since,
                w.last_run_at,
                w.last_run_id,
            ),
        )


def list_watches(dsn: str) -> list[Watch]:
    from candela.runs import Watch

    with connect(dsn) as conn:
        rows = conn.execute(f"SELECT {_WATCH_COLS} FROM candela.watches ORDER BY name").fetchall()
    return [Watch(*r) for r in rows]


def remove_watch(dsn: str, name: str) -> bool:
    with connect(dsn) as conn:
        cur = conn.execute("DELETE FROM candela.watches WHERE name = %s", (name,))
        return bool(cur.rowcount > 0)


def mark_watch_run(dsn: str, name: str, run_id: str, when: dt.datetime) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "UPDATE candela.watches SET last_run_at = %s, last_run_id = %s WHERE name = %s",
            (when, run_id, name),
        )
