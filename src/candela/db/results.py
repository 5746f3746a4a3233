"""``candela.results``: the results the pipeline published (STAC items), and the queries of the
review app's STAC API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from candela.db import connect

# the review app answers a browser: a database that does not answer is an error, not a wait
READ_TIMEOUT_S = 5


class ResultTaken(Exception):
    """An item id already published by another run (a run never replaces another's results)."""


def record_results(dsn: str, dag_id: str, run_id: str, items: list[dict[str, Any]]) -> None:
    """Insert the published items of a run (a retry of the same run replaces its own rows);
    :class:`ResultTaken`, and nothing recorded, when an item id belongs to another run."""
    from psycopg.types.json import Jsonb

    with connect(dsn) as conn, conn.transaction():
        for item in items:
            bbox = item.get("bbox") or [None] * 4
            when = item["properties"].get("datetime") or item["properties"].get("end_datetime")
            row = conn.execute(
                """INSERT INTO candela.results
                   (id, workflow, run_id, datetime, min_lon, min_lat, max_lon, max_lat, item)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (id) DO UPDATE SET datetime = EXCLUDED.datetime,
                     min_lon = EXCLUDED.min_lon, min_lat = EXCLUDED.min_lat,
                     max_lon = EXCLUDED.max_lon, max_lat = EXCLUDED.max_lat,
                     item = EXCLUDED.item, created_at = now()
                   WHERE candela.results.workflow = EXCLUDED.workflow
                     AND candela.results.run_id = EXCLUDED.run_id
                   RETURNING id""",
                (item["id"], dag_id, run_id, when, *bbox, Jsonb(item)),
            ).fetchone()
            if row is None:
                raise ResultTaken(
                    f"result {item['id']} was published by another run; a run never replaces "
                    "another run's results"
                )


def runs(dsn: str) -> list[dict[str, Any]]:
    """Every run with results, newest first: workflow, run id, when published, number of
    results, changed area (ha, summed), its parameters, output key and the runs with the
    same parameters that published before it."""
    with connect(dsn, connect_timeout=READ_TIMEOUT_S) as conn:
        rows = conn.execute(
            """SELECT workflow, run_id, max(created_at), count(*),
                      sum((item->'properties'->>'candela:changed_area_ha')::float8),
                      (array_agg(item->'properties'->'candela:params'))[1],
                      (array_agg(item->'properties'->>'candela:output_key'))[1],
                      (array_agg(item->'properties'->>'candela:model'))[1],
                      min(coalesce((item->'properties'->>'start_datetime')::timestamptz,
                                   datetime)),
                      max(coalesce((item->'properties'->>'end_datetime')::timestamptz,
                                   datetime))
               FROM candela.results GROUP BY workflow, run_id ORDER BY max(created_at) DESC"""
        ).fetchall()
    out = [
        {
            "workflow": r[0],
            "run_id": r[1],
            "published_at": r[2],
            "results": int(r[3]),
            "changed_area_ha": r[4],
            "params": dict(r[5] or {}),
            "output_key": r[6],
            "model": r[7],
            "start": r[8],
            "end": r[9],
        }
        for r in rows
    ]
    for run in out:  # oldest first among the earlier runs with the same parameters
        run["same_parameters_as"] = [
            o["run_id"]
            for o in reversed(out)
            if run["output_key"]
            and o["output_key"] == run["output_key"]
            and o["workflow"] == run["workflow"]
            and o["published_at"] < run["published_at"]
        ]
    return out


def collections(dsn: str) -> list[dict[str, Any]]:
    """One entry per workflow: count, bbox of its results, first and last datetime."""
    with connect(dsn, connect_timeout=READ_TIMEOUT_S) as conn:
        rows = conn.execute(
            """SELECT workflow, count(*), min(min_lon), min(min_lat), max(max_lon),
                      max(max_lat),
                      min(coalesce((item->'properties'->>'start_datetime')::timestamptz,
                                   datetime)),
                      max(coalesce((item->'properties'->>'end_datetime')::timestamptz,
                                   datetime))
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
    intersects: dict[str, Any] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: int = 10,
    offset: int = 0,
) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
    """(workflow, run id, item) of one page of matching results, newest first; and the total.
    ``intersects`` (a GeoJSON geometry): the items' bboxes are matched here, their geometries
    then tested exactly (shapely), so paging counts only items whose geometry intersects."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    if workflows:
        where.append("workflow = ANY(%s)")
        args.append(workflows)
    if ids:
        where.append("id = ANY(%s)")
        args.append(ids)
    shape_filter = None
    if intersects is not None:
        from shapely.geometry import shape

        shape_filter = shape(intersects)
        bbox = list(shape_filter.bounds)
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
    if shape_filter is not None:
        return _search_intersecting(dsn, sql_where, args, shape_filter, limit, offset)
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


def _search_intersecting(
    dsn: str, sql_where: str, args: list[Any], geom: Any, limit: int, offset: int
) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
    from shapely.geometry import shape

    with connect(dsn, connect_timeout=READ_TIMEOUT_S) as conn:
        rows = conn.execute(
            f"""SELECT workflow, run_id, item FROM candela.results WHERE {sql_where}
                ORDER BY datetime DESC NULLS LAST, id""",
            args,
        ).fetchall()
    hits = []
    for r in rows:
        g = (r[2] or {}).get("geometry")
        try:
            if g and shape(g).intersects(geom):
                hits.append((r[0], r[1], r[2]))
        except Exception:  # an item without a usable geometry cannot intersect anything
            continue
    return hits[offset : offset + limit], len(hits)


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
