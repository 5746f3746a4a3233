"""The mining table's rows and their one writer: ``candela.mine_patches`` (migration 0019 of the
platform, ``candela/db/migrations/0019_mining.sql``).

The datamining service writes the rows and the platform (``candela.db.mining``: search, feature
matrix, similarity, the SQL mode) reads them and re-exports this writer. It lives in the SDK
because a service imports only the SDK (import-linter) and the platform must not import a
service, the same reason the knowledge-base store lives in :mod:`candela_sdk.kb`. psycopg is
imported by the caller's connection only (the SDK does not depend on it).

Bulk insert is one ``COPY … FROM STDIN`` per call, in the caller's transaction: a failure rolls
every row of the call back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from candela_sdk.errors import InputError

# the columns a writer fills (id and created_at come from the table)
COLUMNS: tuple[str, ...] = (
    "stack_uri", "product_id", "dataset", "acquired", "sensors", "row_off", "col_off", "size",
    "crs", "west", "south", "east", "north", "footprint", "valid_share", "feature_set",
    "features", "embedding", "quicklook_uri", "truth", "mined_by_run",
)  # fmt: skip
REQUIRED: frozenset[str] = frozenset(COLUMNS) - {
    "product_id", "acquired", "embedding", "truth", "mined_by_run",
}  # fmt: skip


def ensure_feature_set(conn: Any, feature_set: str, names: Sequence[str]) -> None:
    """Record ``feature_set`` with its feature ``names``; refuse a set of that name with other
    names (a feature set never changes meaning)."""
    conn.execute(
        "INSERT INTO candela.mine_feature_sets (feature_set, names) VALUES (%s, %s)"
        " ON CONFLICT (feature_set) DO NOTHING",
        (feature_set, list(names)),
    )
    row = conn.execute(
        "SELECT names FROM candela.mine_feature_sets WHERE feature_set = %s", (feature_set,)
    ).fetchone()
    if row is None or list(row[0]) != list(names):
        raise InputError(
            f"feature set {feature_set!r} is recorded with other feature names: "
            f"{row[0] if row else None} != {list(names)}"
        )


def lock_stack(conn: Any, stack_uri: str) -> None:
    """Serialise the writers of one stack until the end of the caller's transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(727019, hashtext(%s))", (stack_uri,))


def mined(conn: Any, stack_uri: str, size: int) -> tuple[int, str | None]:
    """(patches already stored for ``stack_uri`` at patch ``size``, the run that mined them)."""
    row = conn.execute(
        "SELECT count(*), max(mined_by_run) FROM candela.mine_patches"
        " WHERE stack_uri = %s AND size = %s",
        (stack_uri, size),
    ).fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


def _array(values: Any) -> list[float] | None:
    if values is None:
        return None
    return [float(v) for v in values]


def copy_patches(conn: Any, rows: Iterable[Mapping[str, Any]]) -> int:
    """Append ``rows`` (mappings with :data:`COLUMNS`) to ``candela.mine_patches`` with one COPY;
    the number of rows written. Runs in the caller's transaction."""
    from psycopg.types.json import Jsonb

    count = 0
    with conn.cursor() as cur:
        cols = ", ".join(COLUMNS)
        with cur.copy(f"COPY candela.mine_patches ({cols}) FROM STDIN") as copy:
            for row in rows:
                missing = [c for c in REQUIRED if row.get(c) is None]
                if missing:
                    raise InputError(f"patch row without {', '.join(sorted(missing))}")
                values = []
                for c in COLUMNS:
                    v = row.get(c)
                    if c == "footprint":
                        v = Jsonb(v)
                    elif c in ("features", "embedding"):
                        v = _array(v)
                    elif c in ("sensors", "truth") and v is not None:
                        v = [str(x) for x in v]
                    values.append(v)
                copy.write_row(values)
                count += 1
    return count
