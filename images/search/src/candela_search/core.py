"""Product search: one query, any provider, the same exact filtering and de-duplication.

``search(params, dsn)`` is the library entry point (usable from a notebook). Steps:

1. the provider gives candidates (the local catalogue filters on collection, dates, cloud cover,
   tile and bbox overlap in SQL);
2. de-duplication: candidates of the same collection, datatake and tile are one acquisition
   processed with several processing baselines; the newest baseline is kept;
3. exact geometry test: the product footprint must share area with the AOI (shapely), so a
   product whose bbox overlaps a non-rectangular AOI but whose footprint does not is dropped;
4. sorted by datetime (then id) and cut to ``limit``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from candela_sdk.aoi import Aoi, from_bbox, load_aoi
from candela_sdk.errors import NoDataError
from candela_search.params import SearchParams
from candela_search.providers import get_provider
from candela_search.records import ProductRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Query:
    """A validated search, in the form providers use."""

    collection: str
    aoi: Aoi | None = None
    start: dt.datetime | None = None  # included
    end: dt.datetime | None = None  # excluded (the day after the last day)
    max_cloud: float | None = None
    tile: str | None = None
    limit: int = 50
    provider: str = "local"
    endpoint: str | None = None  # remote providers: the API's URL

    @classmethod
    def from_params(cls, params: SearchParams) -> Query:
        aoi = None
        if params.bbox is not None:
            aoi = from_bbox(params.bbox)
        elif params.aoi is not None:
            aoi = load_aoi(params.aoi)
        start = (
            dt.datetime.combine(params.start, dt.time(), tzinfo=dt.UTC) if params.start else None
        )
        end = (
            dt.datetime.combine(params.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
            if params.end
            else None
        )
        return cls(
            collection=params.collection.value,
            aoi=aoi,
            start=start,
            end=end,
            max_cloud=params.max_cloud,
            tile=params.tile,
            limit=params.limit,
            provider=params.provider.value,
            endpoint=params.endpoint,
        )

    def describe(self) -> str:
        """'sentinel-2-l2a over bbox [...] between 2016-05-01 and 2016-05-31 …' for messages."""
        parts = [self.collection, f"over {self.aoi.label}" if self.aoi else "anywhere"]
        first = self.start.date().isoformat() if self.start else None
        last = (self.end - dt.timedelta(days=1)).date().isoformat() if self.end else None
        if first and last:
            parts.append(f"between {first} and {last}")
        elif first:
            parts.append(f"from {first} on")
        elif last:
            parts.append(f"until {last}")
        else:
            parts.append("at any date")
        if self.max_cloud is not None:
            parts.append(f"with at most {self.max_cloud:g} % cloud cover")
        if self.tile:
            parts.append(f"on tile {self.tile}")
        return " ".join(parts)


@dataclass
class SearchResult:
    query: Query
    records: list[ProductRecord] = field(default_factory=list)
    candidates: int = 0
    duplicates: list[str] = field(default_factory=list)  # ids dropped for a newer baseline
    outside: list[str] = field(default_factory=list)  # ids dropped by the exact geometry test
    truncated: int = 0  # how many more matched than ``limit``
    # --pair-s1-days: S2 id -> its nearest S1 acquisition (None: none within the window)
    s1_matches: dict[str, dict[str, Any] | None] | None = None

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def items(self) -> list[dict[str, Any]]:
        if self.s1_matches is None:
            return [r.item for r in self.records]
        return [
            {**r.item, "properties": {**r.item["properties"], "candela:s1_match": m}}
            for r in self.records
            for m in [self.s1_matches.get(r.id)]
        ]

    @property
    def products(self) -> list[dict[str, Any]]:
        if self.s1_matches is None:
            return [r.summary() for r in self.records]
        return [{**r.summary(), "s1_match": self.s1_matches.get(r.id)} for r in self.records]

    def to_dict(self) -> dict[str, Any]:
        """The service result: ``{"count", "items", "products"}``."""
        return {"count": self.count, "items": self.items, "products": self.products}

    def feature_collection(self) -> dict[str, Any]:
        return as_feature_collection(self)


def deduplicate(records: Iterable[ProductRecord]) -> tuple[list[ProductRecord], list[str]]:
    """Keep the newest processing baseline of each (collection, datatake, tile).

    Records without a datatake are never merged. Ties on the baseline keep the later id.
    """
    best: dict[tuple[str, str, str | None], ProductRecord] = {}
    kept: list[ProductRecord] = []
    dropped: list[str] = []
    for rec in records:
        if not rec.datatake:
            kept.append(rec)
            continue
        key = (rec.collection, rec.datatake, rec.tile)
        other = best.get(key)
        if other is None:
            best[key] = rec
            continue
        newer, older = (
            (rec, other)
            if (rec.baseline_key, rec.id) > (other.baseline_key, other.id)
            else (other, rec)
        )
        best[key] = newer
        dropped.append(older.id)
        log.info(
            "%s: keeping baseline %s (%s) over %s (%s)",
            key[1],
            newer.processing_baseline,
            newer.id,
            older.processing_baseline,
            older.id,
        )
    return kept + list(best.values()), dropped


def footprint_intersects(record: ProductRecord, aoi: Aoi) -> bool:
    """Whether the product's footprint shares area (not just an edge) with the AOI."""
    from shapely.geometry import shape

    try:
        fp = shape(record.geometry)
    except Exception:
        log.warning("product %s has an unreadable footprint; left out", record.id)
        return False
    if not fp.is_valid:
        fp = fp.buffer(0)
    geom = aoi.geometry
    if not geom.intersects(fp):
        return False
    # an AOI that is a point or a line has no area: intersecting is enough
    if geom.area == 0 or fp.area == 0:
        return True
    return not geom.touches(fp)


def search(params: SearchParams | Mapping[str, Any], dsn: str | None = None) -> SearchResult:
    """Products matching ``params`` (a :class:`SearchParams` or a dict of its fields).

    ``dsn`` overrides ``params.dsn``; both default to ``$CANDELA_DATABASE_URL``. An empty result
    is returned as such (the service turns it into a "no data" outcome).
    """
    p = params if isinstance(params, SearchParams) else SearchParams.model_validate(params)
    query = Query.from_params(p)
    provider = get_provider(query.provider, dsn=dsn or p.dsn)
    result = SearchResult(query=query)
    found = list(provider.candidates(query))
    result.candidates = len(found)
    unique, result.duplicates = deduplicate(found)
    if query.aoi is not None:
        inside = []
        for rec in unique:
            if footprint_intersects(rec, query.aoi):
                inside.append(rec)
            else:
                result.outside.append(rec.id)
        unique = inside
    unique.sort(key=lambda r: (r.datetime, r.id))
    result.truncated = max(0, len(unique) - query.limit)
    result.records = unique[: query.limit]
    if p.pair_s1_days and query.collection.startswith("sentinel-2") and result.records:
        result.s1_matches = pair_s1(result.records, query, provider, p.pair_s1_days)
    log.info(
        "search %s: %d candidate(s), %d older baseline(s) dropped, %d outside the AOI, "
        "%d returned%s",
        query.describe(),
        result.candidates,
        len(result.duplicates),
        len(result.outside),
        result.count,
        f" ({result.truncated} more beyond --limit)" if result.truncated else "",
    )
    return result


def pair_s1(
    records: list[ProductRecord], query: Query, provider: Any, window_days: float
) -> dict[str, dict[str, Any] | None]:
    """Each S2 record's nearest Sentinel-1 GRD acquisition over the same AOI within
    ``window_days`` (the rule of :func:`candela_sdk.sentinel1.nearest`), or None."""
    from dataclasses import replace

    from candela_sdk.sentinel1 import nearest

    pad = dt.timedelta(days=window_days)
    s1_query = replace(
        query,
        collection="sentinel-1-grd",
        start=records[0].datetime - pad,
        end=records[-1].datetime + pad + dt.timedelta(seconds=1),
        max_cloud=None,
        tile=None,
        limit=10000,
    )
    s1 = [r for r in provider.candidates(s1_query)]
    if query.aoi is not None:
        s1 = [r for r in s1 if footprint_intersects(r, query.aoi)]
    by_id = {r.id: r for r in s1}
    out: dict[str, dict[str, Any] | None] = {}
    for rec in records:
        found = nearest(rec.datetime, [(r.id, r.datetime) for r in s1], window_days)
        if found is None:
            out[rec.id] = None
            continue
        match = by_id[found[0]]
        out[rec.id] = {**match.summary(), "days_apart": found[2]}
    paired = sum(m is not None for m in out.values())
    log.info(
        "Sentinel-1 pairing: %d of %d product(s) have an S1 acquisition within %g days "
        "(%d S1 candidate(s))",
        paired,
        len(records),
        window_days,
        len(s1),
    )
    return out


def run(params: SearchParams) -> dict[str, Any]:
    """The service's run function: the result dict, or :class:`NoDataError` when empty."""
    result = search(params)
    if result.count == 0:
        raise NoDataError(f"no product of {result.query.describe()}")
    return result.to_dict()


def as_feature_collection(result: SearchResult | Mapping[str, Any]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (a STAC ItemCollection) of a search result's items.

    Accepts a :class:`SearchResult` or the service's result dict (as printed by the CLI).
    """
    items = result.items if isinstance(result, SearchResult) else list(result.get("items") or [])
    return {"type": "FeatureCollection", "features": items}
