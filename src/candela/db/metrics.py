"""``candela.node_metrics``, ``step_metrics``, ``service_health``/``service_events``,
``run_users`` and ``quotas``: monitoring and per-user consumption (migration 0018)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from candela.db import connect


def add_node_sample(dsn: str, s: dict[str, Any]) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO candela.node_metrics (resolution, node, at, cpu_pct, mem_pct,"
            " disk_free_gib, uptime_s, load1) VALUES ('raw', %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (s["node"], s["at"], s["cpu_pct"], s["mem_pct"], s["disk_free_gib"], s["uptime_s"],
             s.get("load1")),
        )  # fmt: skip


def latest_nodes(dsn: str) -> list[dict[str, Any]]:
    """The newest sample of each node, at any resolution."""
    with connect(dsn) as conn:
        cur = conn.execute(
            "SELECT DISTINCT ON (node) node, at, cpu_pct, mem_pct, disk_free_gib, uptime_s, load1"
            " FROM candela.node_metrics ORDER BY node, at DESC"
        )
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def node_series(dsn: str, resolution: str, node: str | None = None) -> list[tuple[Any, ...]]:
    with connect(dsn) as conn:
        return conn.execute(
            "SELECT node, at, cpu_pct, mem_pct FROM candela.node_metrics WHERE resolution = %s"
            " AND (%s::text IS NULL OR node = %s) ORDER BY node, at",
            (resolution, node, node),
        ).fetchall()


_BUCKET = {"5m": 300, "1h": 3600}


def downsample(dsn: str, source: str, target: str, older_than: dt.datetime) -> int:
    """Average ``source`` samples older than ``older_than`` into ``target`` buckets, then drop
    them; the number of source rows folded."""
    step = _BUCKET[target]
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO candela.node_metrics (resolution, node, at, cpu_pct, mem_pct,"
            " disk_free_gib, uptime_s, load1)"
            " SELECT %s, node, to_timestamp(floor(extract(epoch FROM at) / %s) * %s) AS bucket,"
            " avg(cpu_pct), avg(mem_pct), min(disk_free_gib), max(uptime_s), avg(load1)"
            " FROM candela.node_metrics WHERE resolution = %s AND at < %s"
            " GROUP BY node, bucket"
            " ON CONFLICT (resolution, node, at) DO UPDATE SET"
            " cpu_pct = (candela.node_metrics.cpu_pct + EXCLUDED.cpu_pct) / 2,"
            " mem_pct = (candela.node_metrics.mem_pct + EXCLUDED.mem_pct) / 2",
            (target, step, step, source, older_than),
        )
        cur = conn.execute(
            "DELETE FROM candela.node_metrics WHERE resolution = %s AND at < %s",
            (source, older_than),
        )
        return int(cur.rowcount or 0)


def drop_older(dsn: str, resolution: str, older_than: dt.datetime) -> int:
    with connect(dsn) as conn:
        cur = conn.execute(
            "DELETE FROM candela.node_metrics WHERE resolution = %s AND at < %s",
            (resolution, older_than),
        )
        return int(cur.rowcount or 0)


def add_step(dsn: str, r: dict[str, Any]) -> bool:
    """Record one step's consumption (once: a replayed record is ignored)."""
    with connect(dsn) as conn:
        cur = conn.execute(
            "INSERT INTO candela.step_metrics (dag_id, run_id, task_id, map_index, try_number,"
            " service, username, started_at, duration_s, cpu_s, peak_rss_mib, gpu_s, exit_code)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, to_timestamp(%s), %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (r["dag_id"], r["run_id"], r["task_id"], r.get("map_index", -1),
             r.get("try_number") or 1, r["service"], r.get("user"), r["started_at"],
             r["duration_s"], r["cpu_s"], r["peak_rss_mib"], r.get("gpu_s", 0.0),
             r["exit_code"]),
        )  # fmt: skip
        return bool(cur.rowcount)


def step_totals(dsn: str) -> list[dict[str, Any]]:
    """Per service: steps, CPU-seconds, GPU-seconds, seconds, largest peak memory."""
    with connect(dsn) as conn:
        cur = conn.execute(
            "SELECT service, count(*) AS steps, sum(cpu_s) AS cpu_s, sum(gpu_s) AS gpu_s,"
            " sum(duration_s) AS duration_s, max(peak_rss_mib) AS peak_rss_mib"
            " FROM candela.step_metrics GROUP BY service ORDER BY service"
        )
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def set_health(dsn: str, service: str, up: bool, detail: str) -> bool:
    """Record a check; ``True`` (and an event) when the state changed or is new."""
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT up FROM candela.service_health WHERE service = %s", (service,)
        ).fetchone()
        changed = row is None or bool(row[0]) != up
        conn.execute(
            "INSERT INTO candela.service_health (service, up, detail, checked_at, changed_at)"
            " VALUES (%s, %s, %s, now(), now()) ON CONFLICT (service) DO UPDATE SET"
            " up = EXCLUDED.up, detail = EXCLUDED.detail, checked_at = now(),"
            " changed_at = CASE WHEN candela.service_health.up = EXCLUDED.up"
            " THEN candela.service_health.changed_at ELSE now() END",
            (service, up, detail),
        )
        if changed:
            conn.execute(
                "INSERT INTO candela.service_events (service, up, detail) VALUES (%s, %s, %s)",
                (service, up, detail),
            )
        return changed


def health(dsn: str) -> list[dict[str, Any]]:
    with connect(dsn) as conn:
        cur = conn.execute(
            "SELECT service, up, detail, checked_at, changed_at FROM candela.service_health"
            " ORDER BY service"
        )
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def service_events(dsn: str, limit: int = 50) -> list[tuple[Any, ...]]:
    with connect(dsn) as conn:
        return conn.execute(
            "SELECT at, service, up, detail FROM candela.service_events ORDER BY at DESC, id DESC"
            " LIMIT %s",
            (limit,),
        ).fetchall()


# -- per-user consumption -------------------------------------------------------------------


def attribute_run(dsn: str, dag_id: str, run_id: str, user: str) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO candela.run_users (dag_id, run_id, username) VALUES (%s, %s, %s)"
            " ON CONFLICT (dag_id, run_id) DO NOTHING",
            (dag_id, run_id, user),
        )


def forget_run(dsn: str, dag_id: str, run_id: str) -> None:
    """Undo :func:`attribute_run` (Airflow refused to create the run)."""
    with connect(dsn) as conn:
        conn.execute(
            "DELETE FROM candela.run_users WHERE dag_id = %s AND run_id = %s", (dag_id, run_id)
        )


_USAGE = """
WITH steps AS (
    SELECT s.*, coalesce(u.username, s.username, 'unknown') AS who
    FROM candela.step_metrics s
    LEFT JOIN candela.run_users u ON u.dag_id = s.dag_id AND u.run_id = s.run_id
    WHERE s.started_at >= %(since)s
), runs AS (
    SELECT username AS who, dag_id, run_id, started_at FROM candela.run_users
    WHERE started_at >= %(since)s
    UNION
    SELECT who, dag_id, run_id, min(started_at) FROM steps GROUP BY who, dag_id, run_id
)
SELECT r.who, date_trunc('day', r.started_at)::date AS day, r.dag_id,
       count(DISTINCT r.run_id) AS runs,
       coalesce(sum(st.cpu_s), 0) / 3600 AS cpu_hours,
       coalesce(sum(st.gpu_s), 0) / 3600 AS gpu_hours,
       coalesce(sum(st.peak_rss_mib / 1024 * st.duration_s), 0) / 3600 AS memory_gib_hours,
       count(st.id) AS steps
FROM (SELECT DISTINCT ON (dag_id, run_id) * FROM runs ORDER BY dag_id, run_id, started_at) r
LEFT JOIN steps st ON st.dag_id = r.dag_id AND st.run_id = r.run_id
WHERE %(user)s::text IS NULL OR r.who = %(user)s
GROUP BY r.who, day, r.dag_id
ORDER BY r.who, day, r.dag_id
"""


def usage(dsn: str, since: dt.datetime, user: str | None = None) -> list[dict[str, Any]]:
    """Per user, day (of the run's start) and workflow: runs, steps, CPU-hours, GPU-hours,
    memory GiB-hours (peak memory × duration)."""
    with connect(dsn) as conn:
        cur = conn.execute(_USAGE, {"since": since, "user": user})  # type: ignore[arg-type]
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def set_quota(
    dsn: str,
    user: str,
    runs_per_day: int | None,
    cpu_hours_per_day: float | None,
    gpu_hours_per_day: float | None,
) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO candela.quotas (username, runs_per_day, cpu_hours_per_day,"
            " gpu_hours_per_day) VALUES (%s, %s, %s, %s) ON CONFLICT (username) DO UPDATE SET"
            " runs_per_day = EXCLUDED.runs_per_day,"
            " cpu_hours_per_day = EXCLUDED.cpu_hours_per_day,"
            " gpu_hours_per_day = EXCLUDED.gpu_hours_per_day",
            (user, runs_per_day, cpu_hours_per_day, gpu_hours_per_day),
        )


def quota_of(dsn: str, user: str) -> dict[str, Any] | None:
    """The user's quota row, else the ``'*'`` row, else ``None``."""
    with connect(dsn) as conn:
        cur = conn.execute(
            "SELECT username, runs_per_day, cpu_hours_per_day, gpu_hours_per_day"
            " FROM candela.quotas WHERE username IN (%s, '*')"
            " ORDER BY (username = '*') LIMIT 1",
            (user,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        cols = [d.name for d in cur.description or []]
        return dict(zip(cols, row, strict=True))


def used_today(dsn: str, user: str, since: dt.datetime) -> dict[str, float]:
    """Runs started and CPU/GPU-hours consumed by ``user`` since ``since``."""
    rows = usage(dsn, since, user)
    return {
        "runs": float(sum(r["runs"] for r in rows)),
        "cpu_hours": float(sum(r["cpu_hours"] for r in rows)),
        "gpu_hours": float(sum(r["gpu_hours"] for r in rows)),
    }
