"""Finding a running embedded Candela platform from its home folder (``CANDELA_HOME``).

The embedded platform (``candela up``) runs PostgreSQL with its data in ``<home>/pg`` and listens
only on a unix socket, whose folder PostgreSQL writes on line 5 of ``<home>/pg/postmaster.pid``.
The platform tables are in the database ``candela``. A service that needs them (the search
service's catalogue) finds them here without importing the platform.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: Where the platform keeps its state when ``CANDELA_HOME`` is not set (relative to the cwd).
DEFAULT_HOME = Path(".candela")


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


def _postmaster_lines(pgdata: Path) -> list[str]:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return []


def postgres_pid(pgdata: Path) -> int | None:
    """The process id of the PostgreSQL server of ``pgdata`` if it runs, else None."""
    lines = _postmaster_lines(pgdata)
    try:
        pid = int(lines[0])
    except (ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def postgres_socket_dir(pgdata: Path) -> Path | None:
    """The folder of the unix socket of the PostgreSQL server of ``pgdata`` (None if unknown)."""
    lines = _postmaster_lines(pgdata)
    return Path(lines[4]) if len(lines) > 4 and lines[4] else None


def embedded_dsn(
    home: str | os.PathLike[str] | None = None, database: str = "candela"
) -> str | None:
    """DSN of ``database`` on the embedded platform at ``home`` (default ``.candela``), or None
    when that platform's PostgreSQL is not running."""
    pgdata = Path(home or DEFAULT_HOME).expanduser().absolute() / "pg"
    sock = postgres_socket_dir(pgdata)
    if sock is None or postgres_pid(pgdata) is None:
        return None
    return f"postgresql://postgres@/{database}?host={sock}"
