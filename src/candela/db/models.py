"""``candela.models``: the records of the model registry (the files live in the registry)."""

from __future__ import annotations

from typing import Any

from candela.db import connect

COLUMNS = (
    "name, architecture, description, uri, sha256, size_bytes, bands, normalisation, training, "
    "metrics, options, metadata, registered_at"
)


def record_model(dsn: str, record: dict[str, Any]) -> None:
    """Insert or replace the record of a registered model in ``candela.models``."""
    from psycopg.types.json import Jsonb

    with connect(dsn) as conn:
        conn.execute(
            f"INSERT INTO candela.models ({COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now()) "
            "ON CONFLICT (name) DO UPDATE SET architecture = EXCLUDED.architecture, "
            "description = EXCLUDED.description, uri = EXCLUDED.uri, sha256 = EXCLUDED.sha256, "
            "size_bytes = EXCLUDED.size_bytes, bands = EXCLUDED.bands, "
            "normalisation = EXCLUDED.normalisation, training = EXCLUDED.training, "
            "metrics = EXCLUDED.metrics, options = EXCLUDED.options, "
            "metadata = EXCLUDED.metadata, registered_at = now()",
            (
                record["name"],
                record["architecture"],
                record.get("description", ""),
                record["uri"],
                record["sha256"],
                record["size_bytes"],
                Jsonb(record["bands"]),
                record["normalisation"],
                Jsonb(record.get("training", {})),
                Jsonb(record.get("metrics", {})),
                Jsonb(record.get("options", {})),
                Jsonb(record),
            ),
        )


def list_models(dsn: str) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    with connect(dsn, row_factory=dict_row) as conn:
        return list(conn.execute(f"SELECT {COLUMNS} FROM candela.models ORDER BY name"))


def get_model(dsn: str, name: str) -> dict[str, Any] | None:
    from psycopg.rows import dict_row

    with connect(dsn, row_factory=dict_row) as conn:
        row = conn.execute(
            f"SELECT {COLUMNS} FROM candela.models WHERE name = %s", (name,)
        ).fetchone()
    return dict(row) if row else None


def is_registered(dsn: str, name: str) -> bool:
    """Whether ``name`` is a registered model (``False`` before the table's migration)."""
    with connect(dsn) as conn:
        table = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = 'candela' "
            "AND table_name = 'models'"
        ).fetchone()
        return bool(
            table
            and conn.execute("SELECT 1 FROM candela.models WHERE name = %s", (name,)).fetchone()
        )
