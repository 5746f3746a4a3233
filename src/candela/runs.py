"""Run bookkeeping in the platform database: output keys, claims, watches.

Output keys make reruns idempotent: the same workflow with the same parameters writes to the same
prefix (``results/<workflow>/<key>``), replacing its outputs instead of duplicating them. A claim
on the key keeps two identical runs from writing there at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# a claim older than this is left over from a run that died without releasing it
STALE_CLAIM = dt.timedelta(hours=12)


class RunConflict(Exception):
    """An identical run holds the output key."""


def output_key(dag_id: str, params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{dag_id}\n{canonical}".encode()).hexdigest()[:16]


def claim(dsn: str, key: str, dag_id: str, run_id: str) -> None:
    """Claim ``key`` for this run; refuse if another live run holds it."""
    import psycopg

    with psycopg.connect(dsn) as conn:
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
        if row is None:
            holder = conn.execute(
                "SELECT run_id, claimed_at FROM candela.run_claims WHERE output_key = %s", (key,)
            ).fetchone()
            holder_id = holder[0] if holder else "?"
            raise RunConflict(
                f"an identical run ({holder_id}) is writing these outputs; wait for it to end "
                "or change the parameters"
            )


def release(dsn: str, key: str, run_id: str) -> bool:
    import psycopg

    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "DELETE FROM candela.run_claims WHERE output_key = %s AND run_id = %s", (key, run_id)
        )
        return cur.rowcount > 0


@dataclass
class Watch:
    name: str
    collection: str
    bbox: list[float]
    tile: str | None
    model: str
    max_cloud: float
    every_days: int
    since: dt.date
    last_run_at: dt.datetime | None = None
    last_run_id: str | None = None

    def due(self, now: dt.datetime) -> bool:
        if self.since > now.date():
            return False  # a watch that starts in the future has nothing to compare yet
        return self.last_run_at is None or now - self.last_run_at >= dt.timedelta(
            days=self.every_days
        )

    def conf(self, today: dt.date, start: dt.date | None = None) -> dict[str, Any]:
        """Pipeline parameters: every product since ``start`` (default: since the watch began),
        compared pairwise; :class:`candela.workflows.BadRunConf` if the watch is not valid."""
        from candela.workflows import ChangeDetectionConf

        fields: dict[str, Any] = {
            "collection": self.collection,
            "bbox": list(self.bbox),
            "start": start or self.since,
            "end": today,
            "max_cloud": self.max_cloud,
            "model": self.model,
        }
        if self.tile:
            fields["tile"] = self.tile
        return ChangeDetectionConf.checked(fields).conf()


_WATCH_COLS = (
    "name, collection, bbox, tile, model, max_cloud, every_days, since, last_run_at, last_run_id"
)


def save_watch(dsn: str, w: Watch) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
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
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT {_WATCH_COLS} FROM candela.watches ORDER BY name").fetchall()
    return [Watch(*r) for r in rows]


def remove_watch(dsn: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute("DELETE FROM candela.watches WHERE name = %s", (name,)).rowcount > 0


def mark_watch_run(dsn: str, name: str, run_id: str, when: dt.datetime) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE candela.watches SET last_run_at = %s, last_run_id = %s WHERE name = %s",
            (when, run_id, name),
        )
