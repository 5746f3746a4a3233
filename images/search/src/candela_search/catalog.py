"""The local catalogue: rows of ``candela.products`` (this package's table: ``migrations/``).

:func:`add` is an idempotent upsert: a product whose id is already there is updated in place.
The database is named by a DSN: an argument, else ``$CANDELA_DATABASE_URL``, else the embedded
platform's database when that platform runs at ``$CANDELA_HOME`` (default ``.candela``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from candela_sdk.errors import InputError, ServiceFailure
from candela_search.records import ProductRecord, Skipped

log = logging.getLogger(__name__)

DSN_ENV = "CANDELA_DATABASE_URL"
HOME_ENV = "CANDELA_HOME"

_UPSERT = """
INSERT INTO candela.products AS p (
    id, collection, datetime, platform, tile, cloud_cover, processing_baseline, datatake,
    min_lon, min_lat, max_lon, max_lat, href, item
) VALUES (
    %(id)s, %(collection)s, %(datetime)s, %(platform)s, %(tile)s, %(cloud_cover)s,
    %(processing_baseline)s, %(datatake)s,
    %(min_lon)s, %(min_lat)s, %(max_lon)s, %(max_lat)s, %(href)s, %(item)s
)
ON CONFLICT (id) DO UPDATE SET
    collection = EXCLUDED.collection,
    datetime = EXCLUDED.datetime,
    platform = EXCLUDED.platform,
    tile = EXCLUDED.tile,
    cloud_cover = EXCLUDED.cloud_cover,
    processing_baseline = EXCLUDED.processing_baseline,
    datatake = EXCLUDED.datatake,
    min_lon = EXCLUDED.min_lon,
    min_lat = EXCLUDED.min_lat,
    max_lon = EXCLUDED.max_lon,
    max_lat = EXCLUDED.max_lat,
    href = EXCLUDED.href,
    item = EXCLUDED.item
RETURNING (xmax = 0) AS inserted
"""


def resolve_dsn(dsn: str | None = None) -> str:
    """``dsn`` if given, else ``$CANDELA_DATABASE_URL``, else the database of the embedded
    platform running at ``$CANDELA_HOME``; an :class:`InputError` if none."""
    from candela_sdk.settings import platform_dsn
    from candela_search.settings import get_settings

    settings = get_settings()
    value = dsn or platform_dsn(settings)
    if not value:
        raise InputError(
            f"no catalogue database: pass --dsn or set {DSN_ENV}, or start the platform "
            f"(`candela up`) at {HOME_ENV}={settings.home}"
        )
    return value


@contextmanager
def connect(dsn: str | None = None, **kwargs: Any) -> Iterator[Any]:
    """A psycopg connection to the catalogue, with connection errors as one clear sentence."""
    import psycopg

    target = resolve_dsn(dsn)
    try:
        conn = psycopg.connect(target, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceFailure(f"cannot connect to the catalogue database ({first})") from None
    try:
        with conn:
            yield conn
    except psycopg.errors.UndefinedTable:
        raise ServiceFailure(
            "the catalogue database has no candela.products table: apply the platform's "
            "migrations first"
        ) from None


def _row(rec: ProductRecord) -> dict[str, Any]:
    from psycopg.types.json import Jsonb

    w, s, e, n = rec.bbox
    return {
        "id": rec.id,
        "collection": rec.collection,
        "datetime": rec.datetime,
        "platform": rec.platform,
        "tile": rec.tile,
        "cloud_cover": rec.cloud_cover,
        "processing_baseline": rec.processing_baseline,
        "datatake": rec.datatake,
        "min_lon": w,
        "min_lat": s,
        "max_lon": e,
        "max_lat": n,
        "href": rec.href,
        "item": Jsonb(rec.item),
    }


def add(dsn: str | None, records: Iterable[ProductRecord | Skipped]) -> tuple[int, int]:
    """Insert or update ``records`` in one transaction; returns (added, updated).

    :class:`Skipped` entries are ignored (so the output of a recogniser can be passed as is).
    """
    added = updated = 0
    with connect(dsn) as conn, conn.cursor() as cur:
        for rec in records:
            if isinstance(rec, Skipped):
                continue
            cur.execute(_UPSERT, _row(rec))
            row = cur.fetchone()
            if row and row[0]:
                added += 1
            else:
                updated += 1
            log.debug("catalogued %s (%s)", rec.id, "added" if row and row[0] else "updated")
    log.info("catalogue: %d added, %d updated", added, updated)
    return added, updated


def remove(dsn: str | None, ids: Iterable[str]) -> int:
    """Delete products by id; returns how many were there."""
    with connect(dsn) as conn:
        cur = conn.execute("DELETE FROM candela.products WHERE id = ANY(%s)", (list(ids),))
        return int(cur.rowcount or 0)


def count(dsn: str | None = None, collection: str | None = None) -> int:
    with connect(dsn) as conn:
        if collection:
            row = conn.execute(
                "SELECT count(*) FROM candela.products WHERE collection = %s", (collection,)
            ).fetchone()
        else:
            row = conn.execute("SELECT count(*) FROM candela.products").fetchone()
        return int(row[0]) if row else 0
