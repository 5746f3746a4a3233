"""``candela.results``: the results the pipeline published (STAC items), and the queries of the
review app's STAC API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from candela.db import connect

# the review app answers a browser: a database that does not answer is an error, not a wait
READ_TIMEOUT_S = 5


def record_results(dsn: str, dag_id: str, run_id: str, items: list[dict[str, Any]]) -> None:
    """Insert or replace the published items of a run."""
    from psycopg.types.json import Jsonb

    with connect(dsn) as conn:
        for item in items:
            bbox = item.get("bbox") or [None] * 4
            when = item["properties"].get("datetime") or item["properties"].get("end_datetime")
            conn.execute(
                """INSERT INTO candela.results
                   (id, workflow, run_id, datetime, min_lon, min_lat, max_lon, max_lat, item)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (id) DO UPDATE SET workflow = EXCLUDED.workflow,
                     run_id = EXCLUDED.run_id, datetime = EXCLUDED.datetime, item = EXCLUDED.item,
                     created_at = now()""",
                (item["id"], dag_id, run_id, when, *bbox, Jsonb(item)),
            )


def collections(dsn: str) -> list[dict[str, Any]]:
    """One entry per workflow: count, bbox of its results, first and last datetime."""
    with connect(dsn, connect_timeout=READ_TIMEOUT_S) as conn:
        rows = conn.execute(
            """SELECT workflow, count(*), min(min_lon), min(min_lat), max(max_lon),
                      max(max_lat), min(datetime), max(datetime)
               FROM candela.results GROUP BY workflow ORDER BY workflow"""
        ).fetchall()
    return [
        {
            "id": r[0],
            "count": r[1],
            "bbox": [r[2], r[3], r[4], r[5]] if r[2] is not None else None,
            "start": r[6],
            "end": r[7],
        }
        for r in rows
    ]


def search(
    dsn: str,
    *,
    workflows: list[str] | None = None,
    ids: list[str] | None = None,
    bbox: list[float] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: int = 10,
    offset: int = 0,
) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
    """(workflow, run id, item) of one page of matching results, newest first; and the total."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    if workflows:
        where.append("workflow = ANY(%s)")
        args.append(workflows)
    if ids:
        where.append("id = ANY(%s)")
        args.append(ids)
    if bbox:
        w, s, e, n = bbox
        where.append("min_lon <= %s AND max_lon >= %s AND min_lat <= %s AND max_lat >= %s")
        args += [e, w, n, s]
    # items carry start/end_datetime: overlap with the query interval
    t0 = "coalesce((item->'properties'->>'start_datetime')::timestamptz, datetime)"
    t1 = "coalesce((item->'properties'->>'end_datetime')::timestamptz, datetime)"
    if start:
        where.append(f"{t1} >= %s")
        args.append(start)
    if end:
        where.append(f"{t0} <= %s")
        args.append(end)
    sql_where = " AND ".join(where)
    with connect(dsn, connect_timeout=READ_TIMEOUT_S) as conn:
        total = conn.execute(
            f"SELECT count(*) FROM candela.results WHERE {sql_where}", args
        ).fetchone()[0]
        rows = conn.execute(
            f"""SELECT workflow, run_id, item FROM candela.results WHERE {sql_where}
                ORDER BY datetime DESC NULLS LAST, id LIMIT %s OFFSET %s""",
            [*args, limit, offset],
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows], int(total)


def run_ids(dsn: str) -> list[tuple[str, str, Any]]:
    """(workflow, run id, when last published) of every run with results, newest first."""
    with connect(dsn, connect_timeout=READ_TIMEOUT_S) as conn:
        rows = conn.execute(
            """SELECT workflow, run_id, max(created_at) FROM candela.results
               GROUP BY workflow, run_id ORDER BY max(created_at) DESC"""
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def first_item(dsn: str, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """One published item of the run, or ``None``."""
    with connect(dsn, connect_timeout=READ_TIMEOUT_S) as conn:
        row = conn.execute(
            "SELECT item FROM candela.results WHERE workflow = %s AND run_id = %s LIMIT 1",
            (dag_id, run_id),
        ).fetchone()
    return dict(row[0]) if row else None
