"""What a local step consumed: CPU-seconds, peak memory and duration of its process tree.

CPU-seconds come from the kernel's accounting of reaped children (``getrusage(RUSAGE_CHILDREN)``
before and after the step's process ends: the step is the only child reaped in that window, and
it includes its own reaped descendants); the peak memory is the largest summed RSS of the tree
sampled every :data:`INTERVAL_S` by a thread (psutil). The record is spooled as one JSON file
under ``CANDELA_HOME/run/usage/`` (written atomically); the platform's collector
(:mod:`candela.metrics`) moves it into its table, so this package needs no database.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
import uuid
from pathlib import Path
from typing import Any

INTERVAL_S = 0.5


class TreeMeter:
    """Measures the process tree of ``pid`` from :meth:`start` to :meth:`stop`."""

    def __init__(self) -> None:
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._ru0: resource.struct_rusage | None = None
        self.started_at = 0.0

    def start(self, pid: int) -> None:
        self.started_at = time.time()
        self._t0 = time.monotonic()
        self._ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._thread = threading.Thread(target=self._sample, args=(pid,), daemon=True)
        self._thread.start()

    def _sample(self, pid: int) -> None:
        import psutil

        try:
            root = psutil.Process(pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                return
            self.peak_rss = max(self.peak_rss, total)
            self._stop.wait(INTERVAL_S)

    def stop(self) -> dict[str, float]:
        """Call after the step's process was waited for."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = 0.0
        if self._ru0 is not None:
            cpu = (ru.ru_utime - self._ru0.ru_utime) + (ru.ru_stime - self._ru0.ru_stime)
        return {
            "started_at": self.started_at,
            "duration_s": round(time.monotonic() - self._t0, 3),
            "cpu_s": round(cpu, 3),
            "peak_rss_mib": round(self.peak_rss / 2**20, 1),
        }


def spool_dir(home: Path | str) -> Path:
    return Path(home).expanduser().absolute() / "run" / "usage"


def spool(home: Path | str, record: dict[str, Any]) -> Path:
    """Write ``record`` as a new JSON file of the spool (atomically: a reader never sees half)."""
    folder = spool_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.json"
    tmp = folder / f".{name}.part"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, folder / name)
    return folder / name
