"""``candela.scaling_decisions`` and ``candela.scaling_state``: the autoscaler's record and
memory (migration 0017)."""

from __future__ import annotations

import json
from typing import Any

from candela.db import connect


def record(dsn: str, rows: list[dict[str, Any]]) -> None:
    """Insert decisions: dicts with mode, policy, group, action, count, nodes, why, inputs,
    outcome, detail."""
    with connect(dsn) as conn:
        for r in rows:
            conn.execute(
                "INSERT INTO candela.scaling_decisions (mode, policy, node_group, action, count,"
                " nodes, why, inputs, outcome, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    r["mode"],
                    r["policy"],
                    r["group"],
                    r["action"],
                    r["count"],
                    list(r.get("nodes", [])),
                    r["why"],
                    json.dumps(r.get("inputs", {})),
                    r["outcome"],
                    json.dumps(r.get("detail", [])),
                ),
            )


def recent(dsn: str, limit: int = 50, changes_only: bool = False) -> list[dict[str, Any]]:
    """The latest decisions, newest first."""
    where = "WHERE action <> 'none'" if changes_only else ""
    with connect(dsn) as conn:
        cur = conn.execute(
            "SELECT id, decided_at, mode, policy, node_group, action, count, nodes, why, inputs,"
            f" outcome, detail FROM candela.scaling_decisions {where}"
            " ORDER BY decided_at DESC, id DESC LIMIT %s",
            (limit,),
        )
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def load_state(dsn: str, name: str = "memory") -> dict[str, Any]:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT state FROM candela.scaling_state WHERE name = %s", (name,)
        ).fetchone()
    return dict(row[0]) if row else {}


def save_state(dsn: str, state: dict[str, Any], name: str = "memory") -> None:
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO candela.scaling_state (name, state) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
            (name, json.dumps(state)),
        )
