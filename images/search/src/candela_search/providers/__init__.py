"""Search providers: where candidate products come from.

A provider turns a :class:`~candela_search.core.Query` into candidate
:class:`~candela_search.records.ProductRecord`\\ s. It may filter coarsely (a bbox overlap, the
dates, the cloud cover, the tile); the common part of :func:`candela_search.core.search` then does
the exact geometry test, the de-duplication of processing baselines, the sorting and the limit for
every provider alike. To add one (STAC API, CDSE OData…): add a member to
:class:`candela_search.service.Provider`, write a class with ``candidates(query)``, and register a
factory in :data:`FACTORIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from candela_search.core import Query
    from candela_search.records import ProductRecord


class SearchProvider(Protocol):
    name: str

    def candidates(self, query: Query) -> Iterable[ProductRecord]: ...


def _local(dsn: str | None) -> SearchProvider:
    from candela_search.providers.local import LocalCatalogue

    return LocalCatalogue(dsn)


def _stac(dsn: str | None) -> SearchProvider:
    from candela_search.providers.stac import StacApi

    return StacApi(dsn)


def _cdse(dsn: str | None) -> SearchProvider:
    from candela_search.providers.cdse import CdseOData

    return CdseOData(dsn)


# provider name -> factory(dsn)
FACTORIES: dict[str, Callable[[str | None], SearchProvider]] = {
    "local": _local,
    "stac": _stac,
    "cdse": _cdse,
}


def get_provider(name: str, *, dsn: str | None = None) -> SearchProvider:
    try:
        factory = FACTORIES[name]
    except KeyError:
        from candela_sdk.errors import InputError

        raise InputError(
            f"unknown search provider {name!r} (known: {', '.join(sorted(FACTORIES))})"
        ) from None
    return factory(dsn)
