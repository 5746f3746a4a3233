"""The Copernicus Data Space Ecosystem OData catalogue (successor of CREODIAS' EO Finder).

``GET {endpoint}/Products?$filter=…&$orderby=ContentDate/Start asc&$top=N&$expand=Attributes``
answers ``{"value": [product, …], "@odata.nextLink": url}``; each product has ``Id``, ``Name``
(``….SAFE``), ``S3Path`` (``/eodata/Sentinel-2/MSI/L2A/…``), ``ContentDate.Start``,
``GeoFootprint`` (GeoJSON) and, expanded, ``Attributes`` (``cloudCover``, ``productType``,
``tileId``, ``processingBaseline``, ``datatakeSensingStart`` …). Pages are followed through
``@odata.nextLink``. Each product becomes a STAC item whose ``product`` asset is
``s3://eodata/…`` (read in place on CREODIAS / CDSE with the platform's S3 settings).

Endpoint: ``--endpoint``, else ``$CANDELA_CDSE_ODATA_URL``, else the public catalogue.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from candela_sdk import stac
from candela_search.providers.remote import endpoint, get_json
from candela_search.records import (
    ProductRecord,
    baseline_from_name,
    bbox_of,
    normalise_tile,
    platform_from_name,
    tile_from_name,
    utc,
)

if TYPE_CHECKING:
    from candela_search.core import Query

log = logging.getLogger(__name__)
SOFTWARE = stac.package_software("candela-search")

DEFAULT_URL = "https://catalogue.dataspace.copernicus.eu/odata/v1"
PAGE = 100
_S2_NAME = re.compile(
    r"^(?P<sat>S2[A-D])_MSIL(?:1C|2A)_(?P<sensing>\d{8}T\d{6})_N\d{4}_(?P<orbit>R\d{3})_"
)
MAX_PAGES = 100

# collection -> (OData collection name, product type filter)
COLLECTIONS = {
    "sentinel-2-l1c": ("SENTINEL-2", "S2MSI1C"),
    "sentinel-2-l2a": ("SENTINEL-2", "S2MSI2A"),
    "sentinel-1-grd": ("SENTINEL-1", None),  # IW_GRDH_1S, EW_GRDM_1S …: name contains _GRD
}


def _odate(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def build_filter(query: Query) -> str:
    """The OData ``$filter`` of a query (coarse: the exact tests run after)."""
    name, ptype = COLLECTIONS[query.collection]
    parts = [f"Collection/Name eq '{name}'"]
    if ptype:
        parts.append(
            "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
            f"att/OData.CSC.StringAttribute/Value eq '{ptype}')"
        )
    else:
        parts.append("contains(Name,'_GRD')")
    if query.start is not None:
        parts.append(f"ContentDate/Start ge {_odate(query.start)}")
    if query.end is not None:
        parts.append(f"ContentDate/Start lt {_odate(query.end)}")
    if query.max_cloud is not None and query.collection.startswith("sentinel-2"):
        parts.append(
            "Attributes/OData.CSC.DoubleAttribute/any(att:att/Name eq 'cloudCover' and "
            f"att/OData.CSC.DoubleAttribute/Value le {query.max_cloud:.2f})"
        )
    if query.tile is not None:
        parts.append(f"contains(Name,'_{query.tile}_')")
    if query.aoi is not None:
        w, s, e, n = query.aoi.bounds
        ring = f"{w} {s},{e} {s},{e} {n},{w} {n},{w} {s}"
        parts.append(f"OData.CSC.Intersects(area=geography'SRID=4326;POLYGON(({ring}))')")
    return " and ".join(parts)


def _attributes(product: dict[str, Any]) -> dict[str, Any]:
    return {a.get("Name"): a.get("Value") for a in product.get("Attributes") or [] if "Name" in a}


def record_from_product(product: dict[str, Any], collection: str) -> ProductRecord:
    """A record (with its STAC item) for one OData product."""
    name = str(product["Name"])
    item_id = name.removesuffix(".SAFE").removesuffix(".zip")
    attrs = _attributes(product)
    start = utc(dt.datetime.fromisoformat(product["ContentDate"]["Start"].replace("Z", "+00:00")))
    geometry = product.get("GeoFootprint")
    if not isinstance(geometry, dict):
        raise ValueError(f"product {name} has no GeoFootprint")
    bbox = bbox_of(geometry)
    s3path = str(product.get("S3Path") or "")
    href = "s3:/" + s3path if s3path.startswith("/") else f"s3://eodata/{s3path}"
    tile = normalise_tile(attrs.get("tileId")) or tile_from_name(name)
    baseline = attrs.get("processingBaseline") or baseline_from_name(name)
    if isinstance(baseline, int | float):
        baseline = f"{float(baseline):05.2f}"
    cloud = attrs.get("cloudCover")
    # one acquisition processed with several baselines: same platform, sensing start and
    # relative orbit (S2A_MSIL2A_<sensing>_N0509_R094_T30TXQ_<discriminator>.SAFE)
    m = _S2_NAME.match(name)
    datatake = f"{m['sat']}_{m['sensing']}_{m['orbit']}" if m else None
    platform = platform_from_name(name)
    props = {
        "platform": platform if platform != "unknown" else None,
        "constellation": collection.rsplit("-", 1)[0],
        "eo:cloud_cover": float(cloud) if isinstance(cloud, int | float) else None,
        "s2:mgrs_tile": tile[1:] if tile and collection.startswith("sentinel-2") else None,
        "grid:code": f"MGRS-{tile[1:]}" if tile else None,
        "processing:version": baseline,
        "cdse:id": product.get("Id"),
        "cdse:online": product.get("Online"),
    }
    item = stac.build_item(
        software=SOFTWARE,
        item_id=item_id,
        collection=collection,
        datetime=start,
        geometry=geometry,
        bbox=bbox,
        properties=props,
        assets={
            "product": {
                "href": href,
                "type": "application/x-directory" if name.endswith(".SAFE") else None,
                "title": name,
                "roles": ["data"],
                "file:size": product.get("ContentLength"),
            }
        },
    )
    return ProductRecord(
        id=item_id,
        collection=collection,
        datetime=start,
        geometry=geometry,
        bbox=bbox,
        href=href,
        item=item,
        platform=platform,
        tile=tile,
        cloud_cover=float(cloud) if isinstance(cloud, int | float) else None,
        processing_baseline=baseline,
        datatake=datatake,
        source="cdse",
    )


class CdseOData:
    name = "cdse"

    def __init__(self, dsn: str | None = None, endpoint_url: str | None = None) -> None:
        self.endpoint_url = endpoint_url

    def candidates(self, query: Query) -> Iterator[ProductRecord]:
        import httpx

        from candela_search.settings import get_settings

        base = endpoint(
            query.endpoint or self.endpoint_url, get_settings().cdse_odata_url, DEFAULT_URL
        )
        params: dict[str, Any] | None = {
            "$filter": build_filter(query),
            "$orderby": "ContentDate/Start asc",
            "$top": str(min(PAGE, max(1, query.limit * 2))),
            "$expand": "Attributes",
        }
        url: str | None = f"{base}/Products"
        seen = 0
        with httpx.Client(headers={"Accept": "application/json"}) as client:
            for page in range(MAX_PAGES):
                assert url is not None
                body = get_json(client, url, f"CDSE catalogue search (page {page + 1})", params)
                for product in body.get("value") or []:
                    try:
                        yield record_from_product(product, query.collection)
                    except (KeyError, ValueError, TypeError) as exc:
                        log.warning("CDSE product left out: %s", exc)
                    seen += 1
                url = body.get("@odata.nextLink")
                params = None  # the next link carries the query
                # enough candidates for the limit (twice: duplicates and the exact test drop some)
                if not url or seen >= query.limit * 2:
                    break
        log.info("CDSE catalogue: %d product(s) from %d page(s)", seen, page + 1)
