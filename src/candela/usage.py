"""Per-user consumption and quotas.

Every run started over HTTP is attributed to its caller by the run guard
(``candela.run_users``); a step's record also carries Airflow's triggering user (runs started by
schedules, triggers and watches). Consumption is summed from the steps' records
(:mod:`candela.db.metrics`): CPU-hours, GPU-hours, memory GiB-hours (peak × duration), runs,
per user, day and workflow.

Quotas (``candela.quotas``: a row per user, ``'*'`` for everyone else) bound runs, CPU-hours and
GPU-hours over the last 24 hours; the run guard checks them before a run exists and refuses with
429 naming the quota.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DAY = dt.timedelta(days=1)


class QuotaExceeded(Exception):
    """A user's quota forbids a new run; the message names the quota."""


def check_quota(dsn: str, user: str, now: dt.datetime | None = None) -> None:
    """:class:`QuotaExceeded` when ``user`` has used up a quota over the last 24 hours."""
    from candela.db.metrics import quota_of, used_today

    quota = quota_of(dsn, user)
    if quota is None:
        return
    used = used_today(dsn, user, (now or dt.datetime.now(dt.UTC)) - DAY)
    limits = [
        ("runs_per_day", "runs", "runs"),
        ("cpu_hours_per_day", "cpu_hours", "CPU-hours"),
        ("gpu_hours_per_day", "gpu_hours", "GPU-hours"),
    ]
    for field, key, unit in limits:
        limit = quota.get(field)
        if limit is not None and used[key] >= float(limit):
            whose = "everyone's" if quota["username"] == "*" else f"{user}'s"
            raise QuotaExceeded(
                f"quota {field} exceeded: {user} used {used[key]:g} {unit} in the last 24 h, "
                f"{whose} limit is {float(limit):g}"
            )


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Totals per user of :func:`candela.db.metrics.usage` rows."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        t = out.setdefault(
            r["who"],
            {"runs": 0, "steps": 0, "cpu_hours": 0.0, "gpu_hours": 0.0, "memory_gib_hours": 0.0},
        )
        for k in t:
            t[k] += float(r[k])
    return out


def workspace_bytes(root: str) -> int | None:
    """Bytes under a workspace root on a file system (``None``: not a local folder)."""
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    u = urlparse(root)
    if u.scheme not in ("", "file"):
        return None
    base = Path(unquote(u.path))
    if not base.exists():
        return 0
    return sum(f.stat().st_size for f in base.rglob("*") if f.is_file())
