"""Load benchmark (not a test): N concurrent s2_change_detection runs through REST.

Starts an embedded platform under a private temporary CANDELA_HOME on a free port, adds the
Bordeaux sample, submits N runs at once through the REST API (distinct confs: each run has
its own threshold, so no two are identical and none is refused as a duplicate), follows them
until all have ended, accounts for every one, and samples the memory of the platform's process
tree every second (sum of RSS and of PSS). Writes docs/benchmarks/load_runs.json.

    .venv/bin/python -m tests.benchmarks.load_runs [--runs 50] [--out docs/benchmarks/...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform as host
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.platform_helpers import BORDEAUX, DAG, REPO, Platform, platform_with_bordeaux

ENDED = {"success", "failed"}


def tree_memory(settings: Any) -> tuple[int, int, int]:
    """(RSS, PSS, process count) summed over the platform's processes, in bytes."""
    import psutil

    from candela import embedded

    rss = pss = n = 0
    for proc in embedded.platform_processes(settings):
        try:
            mem = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += mem.rss
        pss += getattr(mem, "pss", mem.rss)
        n += 1
    return rss, pss, n


class Sampler(threading.Thread):
    """Samples :func:`tree_memory` every ``period`` seconds; keeps the peaks."""

    def __init__(self, settings: Any, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.settings, self.period = settings, period
        self.peak_rss = self.peak_pss = self.peak_procs = self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            t = time.monotonic()
            rss, pss, n = tree_memory(self.settings)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, n)
            self.samples += 1
            self._done.wait(max(0.0, self.period - (time.monotonic() - t)))

    def stop(self) -> None:
        self._done.set()
        self.join()


def confs(n: int) -> list[dict[str, Any]]:
    """``n`` distinct confs: thresholds 0.30, 0.31, … (cheap model)."""
    return [{**BORDEAUX, "model": "cva", "threshold": round(0.30 + 0.01 * i, 2)} for i in range(n)]


def results_rows(p: Platform, run_ids: list[str]) -> tuple[int, int]:
    """(rows, distinct runs) in candela.results for ``run_ids``."""
    import psycopg

    from candela import embedded

    with psycopg.connect(embedded.platform_dsn(p.settings())) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT run_id) FROM candela.results "
            "WHERE workflow = %s AND run_id = ANY(%s)",
            (DAG, run_ids),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def mib(b: int) -> float:
    return round(b / 2**20, 1)


def bench(n: int, timeout: float) -> dict[str, Any]:
    top = Path(tempfile.mkdtemp(prefix="candela-bench-"))
    try:
        return _bench(top / "home", n, timeout)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _bench(home: Path, n: int, timeout: float) -> dict[str, Any]:
    with platform_with_bordeaux(home, quiet=True) as p:
        settings = p.settings()
        time.sleep(20)  # let the components settle after start
        idle = []
        for _ in range(5):
            idle.append(tree_memory(settings))
            time.sleep(1)
        idle_rss = max(x[0] for x in idle)
        idle_pss = max(x[1] for x in idle)
        sampler = Sampler(settings)
        sampler.start()
        started = time.monotonic()
        with p.client() as c:
            c.unpause(DAG)
            ids = [c.trigger(DAG, conf)["dag_run_id"] for conf in confs(n)]
            submitted = time.monotonic() - started
            states: dict[str, str] = {}
            deadline = started + timeout
            while time.monotonic() < deadline:
                runs = c.request(
                    "GET", f"/api/v2/dags/{DAG}/dagRuns", params={"limit": 1000}
                ).json()["dag_runs"]
                states = {r["dag_run_id"]: r["state"] for r in runs if r["dag_run_id"] in ids}
                if len(states) == n and set(states.values()) <= ENDED:
                    break
                time.sleep(5)
            wall = time.monotonic() - started
            publish = {
                i: next(
                    (t["state"] for t in c.task_instances(DAG, i) if t["task_id"] == "publish"),
                    None,
                )
                for i in ids
            }
        sampler.stop()
        rows, row_runs = results_rows(p, ids)
        succeeded = [i for i in ids if states.get(i) == "success"]
        # a successful run whose publish was skipped found no data: it ended without results
        published = [i for i in succeeded if publish.get(i) == "success"]
        counts = {
            "success": sum(1 for i in ids if states.get(i) == "success" and i in published),
            "skipped": sum(1 for i in succeeded if i not in published),
            "failed": sum(1 for i in ids if states.get(i) == "failed"),
            "not_ended": sum(1 for i in ids if states.get(i) not in ENDED),
        }
        return {
            "runs": n,
            "distinct_run_ids": len(set(ids)),
            "model": "cva",
            "sample": "OSCD Bordeaux, 2 Sentinel-2 products",
            "states": counts,
            "all_accounted_for": sum(counts.values()) == n and counts["not_ended"] == 0,
            "results_rows": rows,
            "results_runs": row_runs,
            "results_rows_equal_successful_runs": row_runs == rows == counts["success"],
            "wall_s": round(wall, 1),
            "submit_s": round(submitted, 1),
            "idle_rss_mib": mib(idle_rss),
            "idle_pss_mib": mib(idle_pss),
            "peak_rss_mib": mib(sampler.peak_rss),
            "peak_pss_mib": mib(sampler.peak_pss),
            "peak_processes": sampler.peak_procs,
            "memory_samples": sampler.samples,
            "machine": {"cpus": os.cpu_count(), "python": host.python_version()},
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the runs")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "load_runs.json")
    args = ap.parse_args()
    result = bench(args.runs, args.timeout)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
