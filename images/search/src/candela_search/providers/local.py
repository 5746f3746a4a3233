"""The platform's own catalogue (``candela.products``): SQL on the bbox columns, no PostGIS.

The bbox overlap is a ``box && box`` test that a GiST expression index answers (core
PostgreSQL geometric types; the exact footprint test runs in Python afterwards).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from candela_search import catalog
from candela_search.records import ProductRecord, utc

if TYPE_CHECKING:
    from candela_search.core import Query

log = logging.getLogger(__name__)

_COLUMNS = (
    "id, collection, datetime, platform, tile, cloud_cover, processing_baseline, datatake, "
    "min_lon, min_lat, max_lon, max_lat, href, item"
)

# the product bbox as a PostgreSQL box (indexed by products_box_gist, migrations/0001_products)
BOX = "box(point(min_lon, min_lat), point(max_lon, max_lat))"


def build_sql(query: Query) -> tuple[str, list[Any]]:
    """The coarse filter: collection, dates, cloud, tile and bbox overlap (exact test later)."""
    where = ["collection = %s"]
    args: list[Any] = [query.collection]
    if query.start is not None:
        where.append("datetime >= %s")
        args.append(query.start)
    if query.end is not None:
        where.append("datetime < %s")
        args.append(query.end)
    if query.max_cloud is not None:
        # unknown cover (OSCD, BigEarthNet, Sentinel-1) is kept: the filter cannot judge it
        where.append("(cloud_cover IS NULL OR cloud_cover <= %s)")
        args.append(query.max_cloud)
    if query.tile is not None:
        where.append("tile = %s")
        args.append(query.tile)
    if query.aoi is not None:
        west, south, east, north = query.aoi.bounds
        # the same test as max_lon >= west AND min_lon <= east AND …, written as a box overlap
        # so that the GiST index of this package's migration (core PostgreSQL, no PostGIS) answers
        where.append(f"{BOX} && box(point(%s, %s), point(%s, %s))")
        args += [west, south, east, north]
    sql = (
        f"SELECT {_COLUMNS} FROM candela.products WHERE "
        + " AND ".join(where)
        + " ORDER BY datetime, id"
    )
    return sql, args


class LocalCatalogue:
    name = "local"

    def __init__(self, dsn: str | None = None) -> None:
        self.dsn = dsn  # resolved (argument or environment) when searching

    def candidates(self, query: Query) -> Iterator[ProductRecord]:
        sql, args = build_sql(query)
        with catalog.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        log.info("local catalogue: %d candidate(s) from the coarse filter", len(rows))
        for row in rows:
            (pid, collection, when, platform, tile, cloud, baseline, datatake) = row[:8]
            w, s, e, n, href, item = row[8:]
            if isinstance(when, dt.datetime):
                when = utc(when)
            yield ProductRecord(
                id=pid,
                collection=collection,
                datetime=when,
                geometry=item.get("geometry") or {},
                bbox=(w, s, e, n),
                href=href,
                item=item,
                platform=platform or "unknown",
                tile=tile,
                cloud_cover=cloud,
                processing_baseline=baseline,
                datatake=datatake,
                source="catalogue",
            )
