"""The data layer: every SQL statement on the platform's tables, and their migrations.

One module per table owner; callers call functions, never write SQL:

* :mod:`candela.db.runs` – output-key claims and saved watches (``run_claims``, ``watches``)
* :mod:`candela.db.orders` – orders and their runs (``orders``, ``order_runs``)
* :mod:`candela.db.models` – the model registry's records (``models``)
* :mod:`candela.db.results` – published results (``results``), written by the pipeline and read by
  the review app's STAC API
* :mod:`candela.db.workspaces` – user workspaces (``workspaces``)
* :mod:`candela.db.scaling` – the autoscaler's decisions and memory (``scaling_decisions``,
  ``scaling_state``)
* :mod:`candela.db.products` – what the platform reads of the search service's catalogue
  (``products``; the table and its writes belong to ``candela_search``)

Migrations are versioned SQL files ``NNNN_name.sql``, applied in order, each in its own
transaction, and recorded per component in ``candela.schema_migrations``. The platform's own are in
``candela/db/migrations``; a service that owns a table ships its SQL files in a package of its own
and declares it under the entry point group ``candela.migrations`` (e.g. ``search =
"candela_search.migrations"``): :func:`migrate` applies the platform's first, then each service's,
by entry-point name. Applying is idempotent.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

PLATFORM = "candela"
ENTRY_POINT_GROUP = "candela.migrations"

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK = 727001


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    component: str = PLATFORM


def read_migrations(package: str, component: str) -> list[Migration]:
    """The ``NNNN_name.sql`` files of ``package`` (a Python package), in version order."""
    found = []
    for entry in resources.files(package).iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(), component))
    found.sort(key=lambda x: x.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {package}: {versions}")
    return found


def components() -> list[tuple[str, str]]:
    """(component, package) of every migration set: the platform's, then the entry points'."""
    found = [(PLATFORM, "candela.db.migrations")]
    seen = {PLATFORM}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in seen:
            raise RuntimeError(f"two migration sets named {ep.name!r} ({ENTRY_POINT_GROUP})")
        seen.add(ep.name)
        found.append((ep.name, ep.value))
    return found


def all_migrations() -> list[Migration]:
    """Every migration, in the order :func:`migrate` applies them."""
    out: list[Migration] = []
    for component, package in components():
        out += read_migrations(package, component)
    return out


def connect(dsn: str, **kwargs: Any) -> Any:
    import psycopg

    return psycopg.connect(dsn, **kwargs)


def ensure_database(base_dsn: str, name: str) -> None:
    """Create the database ``name`` on the server of ``base_dsn`` unless it exists."""
    with connect(base_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _bookkeeping(conn: Any) -> None:
    """``candela.schema_migrations`` keyed by (component, version); upgrades the older form
    (keyed by version alone, platform migrations only)."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS candela")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS candela.schema_migrations ("
        " component text NOT NULL DEFAULT 'candela', version integer NOT NULL,"
        " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (component, version))"
    )
    conn.execute(
        "ALTER TABLE candela.schema_migrations"
        " ADD COLUMN IF NOT EXISTS component text NOT NULL DEFAULT 'candela'"
    )
    keyed = conn.execute(
        "SELECT count(*) FROM information_schema.key_column_usage WHERE table_schema = 'candela'"
        " AND table_name = 'schema_migrations' AND constraint_name = 'schema_migrations_pkey'"
    ).fetchone()
    if keyed and keyed[0] == 1:
        with conn.transaction():
            conn.execute(
                "ALTER TABLE candela.schema_migrations DROP CONSTRAINT schema_migrations_pkey"
            )
            conn.execute(
                "ALTER TABLE candela.schema_migrations ADD PRIMARY KEY (component, version)"
            )


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; returns the names applied now (``component:NNNN_name``, the
    platform's without the component)."""
    applied_now = []
    with connect(dsn, autocommit=True) as conn:
        # one migrator at a time
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        try:
            _bookkeeping(conn)
            done = set(conn.execute("SELECT component, version FROM candela.schema_migrations"))
            for m in all_migrations():
                if (m.component, m.version) in done:
                    continue
                with conn.transaction():
                    conn.execute(m.sql)  # type: ignore[arg-type]
                    conn.execute(
                        "INSERT INTO candela.schema_migrations (component, version, name)"
                        " VALUES (%s, %s, %s)",
                        (m.component, m.version, m.name),
                    )
                label = f"{m.version:04d}_{m.name}"
                if m.component != PLATFORM:
                    label = f"{m.component}:{label}"
                log.info("applied migration %s", label)
                applied_now.append(label)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    return applied_now


def current_version(dsn: str, component: str = PLATFORM) -> int:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT coalesce(max(version), 0) FROM candela.schema_migrations WHERE component = %s",
            (component,),
        ).fetchone()
        return int(row[0]) if row else 0
