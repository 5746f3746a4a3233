"""The platform's own tables: versioned SQL migrations in schema ``candela``.

Migrations are the files ``migrations/NNNN_name.sql`` of this package, applied in order, each in
its own transaction, and recorded in ``candela.schema_migrations``. Applying is idempotent.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("candela").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda x: x.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def connect(dsn: str, **kwargs: Any) -> Any:
    import psycopg

    return psycopg.connect(dsn, **kwargs)


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now = []
    with connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS candela")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS candela.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # one migrator at a time
        conn.execute("SELECT pg_advisory_lock(727001)")
        try:
            done = {r[0] for r in conn.execute("SELECT version FROM candela.schema_migrations")}
            for m in migrations():
                if m.version in done:
                    continue
                with conn.transaction():
                    conn.execute(m.sql)  # type: ignore[arg-type]
                    conn.execute(
                        "INSERT INTO candela.schema_migrations (version, name) VALUES (%s, %s)",
                        (m.version, m.name),
                    )
                log.info("applied migration %04d_%s", m.version, m.name)
                applied_now.append(f"{m.version:04d}_{m.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(727001)")
    return applied_now


def current_version(dsn: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT coalesce(max(version), 0) FROM candela.schema_migrations"
        ).fetchone()
        return int(row[0]) if row else 0
