"""What ``candela run`` shows while a run goes on: one row per step (the instances of a mapped
step together), its state, elapsed time and an ETA from the median duration of the same step in
earlier runs; a table that fits a 100-column terminal, or short lines when the output is not a
terminal (a log, a CI job)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

WIDTH = 100
_MAPPED = re.compile(r"^(?P<task>.+)\[(?P<index>\d+)\]$")
_ORDER = ("failed", "upstream_failed", "up_for_retry", "running", "queued", "scheduled")


@dataclass
class Row:
    task: str
    state: str
    instances: int
    elapsed_s: float | None
    eta_s: float | None  # seconds left (running) or expected duration (not started); None: unknown


def _when(text: Any) -> dt.datetime | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _task_of(key: str) -> str:
    m = _MAPPED.match(key)
    return m["task"] if m else key


def _state_of(states: list[str]) -> str:
    """One word for the states of a step's instances: the same state, or counts."""
    if len(set(states)) == 1:
        return states[0] if len(states) == 1 else f"{len(states)}× {states[0]}"
    counts: dict[str, int] = {}
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    order = sorted(counts, key=lambda s: (_ORDER.index(s) if s in _ORDER else 9, s))
    return ", ".join(f"{counts[s]} {s}" for s in order)


def rows(
    tasks: dict[str, str],
    times: dict[str, dict[str, Any]],
    durations: dict[str, float],
    now: dt.datetime | None = None,
    order: list[str] | None = None,
) -> list[Row]:
    """One row per step: in ``order`` (the DAG's, :func:`candela.airflow_api.dag_order`) when
    given, else in the order Airflow listed them; steps not in ``order`` come last."""
    now = now or dt.datetime.now(dt.UTC)
    groups: dict[str, list[str]] = {}
    for key in tasks:
        groups.setdefault(_task_of(key), []).append(key)
    out = []
    for task, keys in groups.items():
        states = [tasks[k] for k in keys]
        starts = [t for k in keys if (t := _when(times.get(k, {}).get("start")))]
        ends = [t for k in keys if (t := _when(times.get(k, {}).get("end")))]
        running = any(s in ("running", "queued", "up_for_retry") for s in states)
        elapsed = None
        if starts:
            last = now if running or len(ends) < len(starts) else max(ends)
            elapsed = max(0.0, (last - min(starts)).total_seconds())
        eta = None
        typical = durations.get(task)
        if typical is not None:
            if "running" in states and elapsed is not None:
                eta = max(0.0, typical - elapsed)
            elif all(s in ("none", "scheduled", "queued") for s in states):
                eta = typical
        out.append(Row(task, _state_of(states), len(keys), elapsed, eta))
    if order:
        rank = {t: n for n, t in enumerate(order)}
        out.sort(key=lambda r: rank.get(r.task, len(rank)))  # stable: the others keep theirs
    return out


def seconds(v: float | None) -> str:
    if v is None:
        return "–"
    v = round(v)
    if v < 60:
        return f"{v}s"
    if v < 3600:
        return f"{v // 60}m{v % 60:02d}s"
    return f"{v // 3600}h{(v % 3600) // 60:02d}m"


_COLOURS = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "red",
    "running": "yellow",
    "up_for_retry": "yellow",
    "skipped": "magenta",
}


def table(state: str, run_rows: list[Row], started: float | None = None) -> Any:
    """A rich table of the rows (at most :data:`WIDTH` columns wide)."""
    from rich.table import Table

    t = Table(
        title=f"run {state}" + (f" · {seconds(started)}" if started is not None else ""),
        title_justify="left",
        width=WIDTH,
        expand=False,
        show_edge=False,
        pad_edge=False,
    )
    t.add_column("task", max_width=30, overflow="ellipsis", no_wrap=True)
    t.add_column("state", max_width=40, overflow="ellipsis", no_wrap=True)
    t.add_column("elapsed", justify="right", width=8, no_wrap=True)
    t.add_column("ETA", justify="right", width=9, no_wrap=True)
    for r in run_rows:
        word = r.state.split()[-1] if r.state else ""
        colour = _COLOURS.get(word, "white")
        name = r.task if r.instances == 1 else f"{r.task} ({r.instances})"
        eta = ("~" + seconds(r.eta_s)) if r.eta_s is not None else "–"
        t.add_row(name, f"[{colour}]{r.state}[/{colour}]", seconds(r.elapsed_s), eta)
    return t


def changed_lines(
    before: dict[str, str] | None, tasks: dict[str, str], run_rows: list[Row], clock: str
) -> list[str]:
    """Short lines (< :data:`WIDTH` characters) for the steps whose state changed: what a log
    gets instead of a live table."""
    changed = {_task_of(k) for k, s in tasks.items() if (before or {}).get(k) != s}
    out = []
    for r in run_rows:
        if r.task in changed:
            eta = f" ETA ~{seconds(r.eta_s)}" if r.eta_s is not None else ""
            name = r.task if r.instances == 1 else f"{r.task} ({r.instances})"
            line = f"{clock} {name[:30]:<30} {r.state[:36]:<36} {seconds(r.elapsed_s):>7}{eta}"
            out.append(line[:WIDTH].rstrip())
    return out
