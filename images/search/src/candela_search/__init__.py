"""Candela product search: the platform's catalogue of Sentinel products as STAC items.

* :func:`search` – products matching a :class:`SearchParams` (library entry, notebooks);
* :mod:`candela_search.ingest` – ``recognise(path)`` turns folders and files into records;
* :mod:`candela_search.catalog` – ``add(dsn, records)`` upserts them into ``candela.products``;
* :data:`candela_search.service.SERVICE` – the ``search`` service for the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from candela_search.params import Collection, Provider, SearchParams
from candela_search.service import SERVICE

if TYPE_CHECKING:
    from candela_search.core import SearchResult

__all__ = [
    "SERVICE",
    "Collection",
    "Provider",
    "SearchParams",
    "SearchResult",
    "as_feature_collection",
    "search",
]


def search(params: SearchParams | dict[str, Any], dsn: str | None = None) -> SearchResult:
    """Products matching ``params``; see :func:`candela_search.core.search`."""
    from candela_search.core import search as _search

    return _search(params, dsn)


def as_feature_collection(result: Any) -> dict[str, Any]:
    """The items of a search result as a GeoJSON FeatureCollection."""
    from candela_search.core import as_feature_collection as _fc

    return _fc(result)


def __getattr__(name: str) -> Any:
    if name == "SearchResult":
        from candela_search.core import SearchResult

        return SearchResult
    raise AttributeError(name)
