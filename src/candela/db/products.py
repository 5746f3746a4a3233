"""What the platform reads of ``candela.products``, the search service's catalogue.

The table, its migration and every write belong to ``candela_search`` (``catalog.add`` /
``remove``); the platform only looks products up (orders, ``candela catalog``, triggers).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from candela.db import connect


def known_ids(dsn: str, ids: list[str]) -> set[str]:
    """Those of ``ids`` that are in the catalogue."""
    with connect(dsn) as conn:
        return {
            row[0]
            for row in conn.execute("SELECT id FROM candela.products WHERE id = ANY(%s)", (ids,))
        }


def summary_rows(dsn: str, ids: list[str]) -> list[tuple[Any, ...]]:
    """(id, collection, datetime, tile, min_lon, min_lat, max_lon, max_lat, href) of ``ids``."""
    with connect(dsn) as conn:
        return list(
            conn.execute(
                "SELECT id, collection, datetime, tile, min_lon, min_lat, max_lon, max_lat, href "
                "FROM candela.products WHERE id = ANY(%s)",
                (ids,),
            ).fetchall()
        )


def listing(dsn: str) -> list[tuple[Any, ...]]:
    """(id, collection, datetime, tile, cloud_cover, href) of every product, oldest first."""
    with connect(dsn) as conn:
        return list(
            conn.execute(
                "SELECT id, collection, datetime, tile, cloud_cover, href FROM candela.products "
                "ORDER BY datetime"
            ).fetchall()
        )


def product_and_predecessors(
    dsn: str, product_ids: Iterable[str]
) -> list[tuple[str, tuple[Any, ...] | None, tuple[Any, ...] | None]]:
    """For each id: (id, (collection, tile, datetime, min_lon, min_lat, max_lon, max_lat) or
    ``None`` if not catalogued, (id, datetime) of the previous product of the same collection and
    tile overlapping it, or ``None``)."""
    out: list[tuple[str, tuple[Any, ...] | None, tuple[Any, ...] | None]] = []
    with connect(dsn) as conn:
        for pid in product_ids:
            row = conn.execute(
                "SELECT collection, tile, datetime, min_lon, min_lat, max_lon, max_lat "
                "FROM candela.products WHERE id = %s",
                (pid,),
            ).fetchone()
            prev = None
            if row is not None:
                collection, tile, when, *bbox = row
                prev = conn.execute(
                    "SELECT id, datetime FROM candela.products WHERE collection = %s "
                    "AND tile IS NOT DISTINCT FROM %s AND datetime < %s "
                    "AND max_lon > %s AND min_lon < %s AND max_lat > %s AND min_lat < %s "
                    "ORDER BY datetime DESC LIMIT 1",
                    (collection, tile, when, bbox[0], bbox[2], bbox[1], bbox[3]),
                ).fetchone()
            out.append((pid, tuple(row) if row else None, tuple(prev) if prev else None))
    return out


def latest_before(
    dsn: str, collection: str, before: dt.datetime, bbox: list[float]
) -> dt.datetime | None:
    """Acquisition time of the newest product of ``collection`` at or before ``before`` that
    overlaps ``bbox`` (west, south, east, north)."""
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT max(datetime) FROM candela.products WHERE collection = %s "
            "AND datetime <= %s AND max_lon > %s AND min_lon < %s "
            "AND max_lat > %s AND min_lat < %s",
            (collection, before, bbox[0], bbox[2], bbox[1], bbox[3]),
        ).fetchone()
    return row[0] if row and row[0] is not None else None


def over_area(
    dsn: str, bbox: list[float], collection: str | None = None, limit: int = 1000
) -> list[tuple[Any, ...]]:
    """(id, collection, datetime, tile, cloud_cover, min_lon, min_lat, max_lon, max_lat) of the
    products overlapping ``bbox`` (west, south, east, north), of ``collection`` if given, oldest
    first."""
    with connect(dsn) as conn:
        return list(
            conn.execute(
                "SELECT id, collection, datetime, tile, cloud_cover, min_lon, min_lat, max_lon, "
                "max_lat FROM candela.products "
                "WHERE max_lon > %s AND min_lon < %s AND max_lat > %s AND min_lat < %s "
                "AND (%s::text IS NULL OR collection = %s) ORDER BY datetime LIMIT %s",
                (bbox[0], bbox[2], bbox[1], bbox[3], collection, collection, limit),
            ).fetchall()
        )
