"""Processes: is one alive, stop a process group (SIGTERM, then SIGKILL after a grace period).

Candela starts its long-running children (Airflow components, SeaweedFS, a local step) each in a
process group of its own (``start_new_session=True``), so that stopping one stops what it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(Exception):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` runs (zombies do not count)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is a child of ours that ended (no zombie left)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_group(
    pgid: int,
    timeout: float = 10.0,
    *,
    alive: Callable[[], bool] | None = None,
    poll: float = 0.1,
) -> bool:
    """SIGTERM the process group ``pgid``; SIGKILL it if it still runs after ``timeout`` s.

    ``alive`` tells whether to keep waiting (default: any process of the group runs, reaping the
    leader if it is our child; a caller holding a ``Popen`` passes ``lambda: proc.poll() is
    None`` so that the ``Popen`` keeps the exit status). Returns whether it stopped on SIGTERM.
    """

    def group_runs() -> bool:
        reap(pgid)
        return group_alive(pgid)

    check = alive or group_runs
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not check():
            return True
        time.sleep(poll)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if alive is None:  # wait for the kill to land (a few ms) so the caller sees it gone
        end = time.monotonic() + 5.0
        while group_runs() and time.monotonic() < end:
            time.sleep(0.02)
    return False
