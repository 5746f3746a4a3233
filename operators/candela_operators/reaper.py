"""The local runner's watchdog: cleans up after a step whose task process died without doing it.

``python -m candela_operators.reaper SCRATCH`` is started by :class:`~candela_operators.local.
LocalRunner` in a session of its own, with the read end of a pipe as stdin. The runner writes the
step's process group id (``pgid N``) once the service is started and ``done`` when it has cleaned
up itself. If the pipe closes without ``done``, the task process died (``kill -9``, OOM killer):
the watchdog kills the step's process group and removes the scratch folder, then exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    scratch = args[0]
    # a Ctrl-C or hang-up meant for the task must not stop the cleanup
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    pgid = 0
    for raw in sys.stdin.buffer:
        word, _, value = raw.decode(errors="replace").strip().partition(" ")
        if word == "done":
            return 0
        if word == "pgid" and value.isdigit():
            pgid = int(value)
    # the task process is gone: nothing of its step may stay behind
    if pgid > 1:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
