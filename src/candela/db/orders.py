"""``candela.orders`` and ``candela.order_runs``: orders and the runs they started."""

from __future__ import annotations

import secrets
from typing import Any

from candela.db import connect


def new_order_id() -> str:
    return f"ord-{secrets.token_hex(6)}"


def record_order(
    dsn: str, user: str, workflow: str, products: list[dict[str, Any]], conf: dict[str, Any]
) -> str:
    """Record a new order; returns its id."""
    from psycopg.types.json import Jsonb

    oid = new_order_id()
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO candela.orders (id, username, workflow, products, conf) "
            "VALUES (%s, %s, %s, %s, %s)",
            (oid, user, workflow, Jsonb(products), Jsonb(conf)),
        )
    return oid


def record_run(dsn: str, oid: str, run_id: str, ids: list[str], conf: dict[str, Any]) -> None:
    """A run the order started (the order is then running)."""
    from psycopg.types.json import Jsonb

    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO candela.order_runs (order_id, run_id, product_ids, conf) "
            "VALUES (%s, %s, %s, %s)",
            (oid, run_id, Jsonb(ids), Jsonb(conf)),
        )
        conn.execute(
            "UPDATE candela.orders SET status = 'running', updated_at = now() WHERE id = %s",
            (oid,),
        )


def set_status(dsn: str, oid: str, status: str, message: str | None = None) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "UPDATE candela.orders SET status = %s, message = %s, updated_at = now() WHERE id = %s",
            (status, message, oid),
        )


def set_run_states(dsn: str, oid: str, states: dict[str, str], status: str | None) -> None:
    """Store the Airflow state of some of the order's runs (run id → state) and, if given, the
    order's overall status."""
    with connect(dsn) as conn:
        for run_id, state in states.items():
            conn.execute(
                "UPDATE candela.order_runs SET state = %s, updated_at = now() "
                "WHERE order_id = %s AND run_id = %s",
                (state, oid, run_id),
            )
        if status is not None:
            conn.execute(
                "UPDATE candela.orders SET status = %s, updated_at = now() WHERE id = %s",
                (status, oid),
            )


def get_order(dsn: str, oid: str) -> dict[str, Any] | None:
    """The order with its runs, or ``None``."""
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT id, username, workflow, products, conf, status, message, created_at "
            "FROM candela.orders WHERE id = %s",
            (oid,),
        ).fetchone()
        if row is None:
            return None
        runs = conn.execute(
            "SELECT run_id, product_ids, state FROM candela.order_runs WHERE order_id = %s "
            "ORDER BY run_id",
            (oid,),
        ).fetchall()
    return {
        "id": row[0],
        "user": row[1],
        "workflow": row[2],
        "products": row[3],
        "conf": row[4],
        "status": row[5],
        "message": row[6],
        "created_at": row[7].isoformat(),
        "runs": [{"run_id": r[0], "products": r[1], "state": r[2]} for r in runs],
    }
