"""Parameters of the ``search`` service (pydantic only, no import of the service's code)."""

from __future__ import annotations

import datetime as dt
import json
import re
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from candela_sdk.aoi import bbox_values, check_bbox, load_aoi
from candela_sdk.contract import ServiceParams

_TILE = re.compile(r"^T\d{2}[A-Z]{3}$")


class Collection(StrEnum):
    SENTINEL_2_L2A = "sentinel-2-l2a"
    SENTINEL_2_L1C = "sentinel-2-l1c"
    SENTINEL_1_GRD = "sentinel-1-grd"


class Provider(StrEnum):
    """Where products are searched."""

    LOCAL = "local"  # the platform's catalogue (PostgreSQL)
    STAC = "stac"  # any STAC API (pystac-client)
    CDSE = "cdse"  # the Copernicus Data Space Ecosystem OData catalogue


class SearchParams(ServiceParams):
    """Which products to find."""

    collection: Collection = Field(description="product collection")
    bbox: list[float] | None = Field(
        None,
        description="area of interest as west south east north, in degrees (WGS 84); also W,S,E,N",
        min_length=4,
        max_length=4,
    )
    aoi: str | None = Field(
        None,
        description="area of interest: a GeoJSON file, or GeoJSON text (geometry, Feature or "
        "FeatureCollection, WGS 84); instead of --bbox",
    )
    start: dt.date | None = Field(None, description="first acquisition day (YYYY-MM-DD)")
    end: dt.date | None = Field(None, description="last acquisition day, included (YYYY-MM-DD)")
    max_cloud: float | None = Field(
        None,
        ge=0,
        le=100,
        description="highest cloud cover in percent (products of unknown cover are kept)",
    )
    tile: str | None = Field(
        None,
        description="MGRS tile, e.g. T30TXQ",
        json_schema_extra={"pattern": _TILE.pattern},
    )
    limit: int = Field(50, ge=1, le=10000, description="most products returned")
    provider: Provider = Field(
        Provider.LOCAL,
        description="where to search: local (the platform's catalogue), stac (a STAC API), "
        "cdse (the CDSE OData catalogue; products as s3://eodata/… paths)",
    )
    endpoint: str | None = Field(
        None,
        description="URL of the STAC API or OData catalogue for --provider stac|cdse "
        "(default $CANDELA_STAC_URL / $CANDELA_CDSE_ODATA_URL, else Earth Search / CDSE)",
    )
    pair_s1_days: float | None = Field(
        None,
        gt=0,
        le=60,
        description="Sentinel-2 searches: pair each product with the nearest Sentinel-1 GRD "
        "acquisition over the same AOI within this many days (10 is the usual window); the "
        "match is listed under products[].s1_match and the item's candela:s1_match",
    )
    dsn: str | None = Field(
        None,
        description="catalogue database (PostgreSQL URI); default $CANDELA_DATABASE_URL, else "
        "the embedded platform running at $CANDELA_HOME",
    )

    @field_validator("bbox", mode="before")
    @classmethod
    def _bbox_text(cls, value: Any) -> Any:
        # "W,S,E,N" (one argument, e.g. --bbox=-0.68,44.83,-0.56,44.93) as well as W S E N
        return bbox_values(value)

    @field_validator("bbox")
    @classmethod
    def _check_bbox(cls, value: list[float] | None) -> list[float] | None:
        return None if value is None else check_bbox(value)

    @field_validator("aoi", mode="before")
    @classmethod
    def _aoi_text(cls, value: Any) -> Any:
        # a GeoJSON object given as a dict (from Python or a DAG) travels as its JSON text
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"))
        return value

    @field_validator("aoi")
    @classmethod
    def _check_aoi(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("bbox") is not None:
            raise ValueError("give either --bbox or --aoi, not both")
        load_aoi(value)  # raises ValueError with the reason
        return value

    @field_validator("end")
    @classmethod
    def _check_dates(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("start")
        if value is not None and start is not None and start > value:
            raise ValueError(f"end {value} is before start {start}")
        return value

    @field_validator("tile", mode="before")
    @classmethod
    def _check_tile(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value).strip()
        if not _TILE.match(text):
            raise ValueError(f"{text!r} is not an MGRS tile like T30TXQ (T, 2 digits, 3 letters)")
        return text


__all__ = ["Collection", "Provider", "SearchParams"]
