"""``candela.workspaces``: each user's private storage area."""

from __future__ import annotations

from candela.db import connect


def register(dsn: str, user: str, root: str) -> None:
    """Record ``user``'s workspace root (the first one recorded stays)."""
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO candela.workspaces (username, root) VALUES (%s, %s) "
            "ON CONFLICT (username) DO NOTHING",
            (user, root),
        )


def roots(dsn: str) -> dict[str, str]:
    """Every recorded workspace root, by user."""
    with connect(dsn) as conn:
        rows = conn.execute("SELECT username, root FROM candela.workspaces").fetchall()
    return {r[0]: r[1] for r in rows}
