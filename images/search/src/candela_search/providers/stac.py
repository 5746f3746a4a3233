"""Any STAC API (CDSE STAC, Earth Search, Planetary Computer) through pystac-client.

The API filters by collection, bbox and dates; cloud cover and tile are tested here on the item
properties (``eo:cloud_cover``; ``s2:mgrs_tile``, ``grid:code`` or ``mgrs:*``), so every API
works, whatever query extensions it implements. Pages are followed through ``next`` links.
Throttling (429) and server errors (5xx) are retried with exponential backoff, at most
:data:`~candela_search.providers.remote.ATTEMPTS` times; then one clear line.

Endpoint: ``--endpoint``, else ``$CANDELA_STAC_URL``, else Earth Search.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from candela_sdk.errors import ServiceFailure
from candela_search.providers import remote
from candela_search.records import ProductRecord, isoformat

if TYPE_CHECKING:
    from candela_search.core import Query

log = logging.getLogger(__name__)

DEFAULT_URL = "https://earth-search.aws.element84.com/v1"
MAX_ITEMS = 5000


def _io(url: str) -> Any:
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    retry = Retry(
        total=remote.ATTEMPTS - 1,
        connect=0,
        backoff_factor=remote.BACKOFF_S,
        backoff_max=remote.MAX_WAIT_S,
        status_forcelist=remote.RETRY_STATUS,
        allowed_methods=None,  # POST searches too
        respect_retry_after_header=True,
        raise_on_status=True,
    )
    return StacApiIO(timeout=remote.TIMEOUT_S, max_retries=retry)


def _one_line(what: str, url: str, exc: BaseException) -> ServiceFailure:
    import requests
    from pystac_client.exceptions import APIError

    text = str(exc)
    # pystac-client wraps the requests errors in APIError: recognise them by their text too
    if "too many 429" in text:
        return ServiceFailure(
            f"{what}: throttled (HTTP 429) after {remote.ATTEMPTS} attempts at {url}; "
            "try again later"
        )
    if "too many 5" in text:
        return ServiceFailure(
            f"{what}: server errors after {remote.ATTEMPTS} attempts at {url}; try again later"
        )
    if "timed out" in text.lower():
        return ServiceFailure(f"{what}: no answer from {url} within {remote.TIMEOUT_S:g} s")
    if "NewConnectionError" in text or "Connection refused" in text:
        return ServiceFailure(f"{what}: cannot reach {url}")
    if isinstance(exc, requests.exceptions.RetryError):
        reason = "throttled (HTTP 429)" if "429" in text else "server errors"
        return ServiceFailure(
            f"{what}: {reason} after {remote.ATTEMPTS} attempts at {url}; try again later"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return ServiceFailure(f"{what}: no answer from {url} within {remote.TIMEOUT_S:g} s")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ServiceFailure(f"{what}: cannot reach {url}")
    if isinstance(exc, APIError):
        status = getattr(exc, "status_code", None)
        first = text.strip().splitlines()[0][:300] if text.strip() else "no message"
        return ServiceFailure(f"{what}: HTTP {status} from {url}: {first}")
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return ServiceFailure(f"{what}: {first}")


def _tile_of(props: dict[str, Any]) -> str | None:
    from candela_search.records import normalise_tile

    return (
        normalise_tile(props.get("s2:mgrs_tile"))
        or normalise_tile(props.get("grid:code"))
        or normalise_tile(
            f"{props.get('mgrs:utm_zone', '')}{props.get('mgrs:latitude_band', '')}"
            f"{props.get('mgrs:grid_square', '')}"
        )
    )


class StacApi:
    name = "stac"

    def __init__(self, dsn: str | None = None, endpoint_url: str | None = None) -> None:
        self.endpoint_url = endpoint_url

    def candidates(self, query: Query) -> Iterator[ProductRecord]:
        from pystac_client import Client

        from candela_search.ingest import Refused, record_from_item
        from candela_search.settings import get_settings

        url = remote.endpoint(
            query.endpoint or self.endpoint_url, get_settings().stac_url, DEFAULT_URL
        )
        what = "STAC API search"
        kwargs: dict[str, Any] = {"collections": [query.collection], "limit": 100}
        if query.aoi is not None:
            kwargs["bbox"] = list(query.aoi.bounds)
        if query.start or query.end:
            first = isoformat(query.start) if query.start else ".."
            last = isoformat(query.end) if query.end else ".."
            kwargs["datetime"] = f"{first}/{last}"
        kwargs["max_items"] = MAX_ITEMS
        try:
            client = Client.open(url, stac_io=_io(url), timeout=remote.TIMEOUT_S)
            client.add_conforms_to("ITEM_SEARCH")
            search = client.search(**kwargs)
            found = 0
            for item in search.items_as_dicts():
                props = item.get("properties") or {}
                cloud = props.get("eo:cloud_cover")
                if query.max_cloud is not None and isinstance(cloud, int | float):
                    if cloud > query.max_cloud:
                        continue
                if query.tile is not None and _tile_of(props) != query.tile:
                    continue
                try:
                    rec = record_from_item(item)
                except Refused as exc:
                    log.warning("STAC item left out: %s", exc)
                    continue
                rec.source = "stac"
                found += 1
                yield rec
        except ServiceFailure:
            raise
        except Exception as exc:
            raise _one_line(what, url, exc) from None
        log.info("STAC API %s: %d candidate(s)", url, found)
