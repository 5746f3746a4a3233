"""What the catalogue holds: one :class:`ProductRecord` per product, plus small naming helpers.

A record is one row of ``candela.products`` and its STAC item. ``datatake`` is the
*de-duplication key*: products of the same collection with the same ``datatake`` and ``tile`` are
the same acquisition processed several times (several processing baselines); a search keeps the
newest baseline. It is the datatake identifier without its ``_Nxx.yy`` baseline suffix, or ``None``
when the source does not say (then the product is never merged with another).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from candela_sdk.sentinel2 import baseline_from_name as baseline_from_name
from candela_sdk.stac import isoformat as isoformat

COLLECTIONS = ("sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-grd")

# tile in a product or file name: "_T30TXQ_" (S2 names) or "T30TXQ_" at the start (compact
# band names); never the "T163055" of a time stamp (digits after the first two).
_TILE_IN_NAME = re.compile(r"(?:^|_)T(\d{2}[A-Z]{3})(?=_|\.|$)")
_TILE = re.compile(r"^T\d{2}[A-Z]{3}$")
_BASELINE_SUFFIX = re.compile(r"_N\d{2}\.\d{2}$")


@dataclass
class ProductRecord:
    """One product of the catalogue (a row of ``candela.products``)."""

    id: str
    collection: str
    datetime: dt.datetime  # timezone-aware, UTC
    geometry: dict[str, Any]  # GeoJSON geometry, WGS 84
    bbox: tuple[float, float, float, float]  # west, south, east, north
    href: str  # where the product lives: file://… or s3://…
    item: dict[str, Any]  # the full STAC item
    platform: str = "unknown"
    tile: str | None = None  # MGRS tile with its "T", e.g. T30TXQ
    cloud_cover: float | None = None
    processing_baseline: str | None = None  # "02.06"
    datatake: str | None = None  # de-duplication key, see the module docstring
    source: str = ""  # which recogniser made it (oscd, safe, bigearthnet, stac, cog, catalogue)

    @property
    def baseline_key(self) -> tuple[int, ...]:
        return baseline_key(self.processing_baseline)

    def summary(self) -> dict[str, Any]:
        """The short form the search result lists under ``products``."""
        return {
            "id": self.id,
            "href": self.href,
            "datetime": isoformat(self.datetime),
            "collection": self.collection,
            "tile": self.tile,
        }


@dataclass(frozen=True)
class Skipped:
    """Something given to :func:`candela_search.ingest.recognise` that is not a product."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Scan:
    """What a walk over several paths found."""

    records: list[ProductRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


# --- helpers -------------------------------------------------------------------------------


def utc(value: dt.datetime) -> dt.datetime:
    """A naive datetime is UTC; an aware one is converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def tile_from_name(name: str) -> str | None:
    """``T30TXQ`` from ``S2A_MSIL1C_…_T30TXQ_…`` or ``T30TXQ_20171026T110131_B02.tif``."""
    m = _TILE_IN_NAME.search(name)
    return f"T{m.group(1)}" if m else None


def normalise_tile(value: str | None) -> str | None:
    """``30TXQ``, ``MGRS-30TXQ``, ``t30txq`` → ``T30TXQ``; ``None`` when not an MGRS tile."""
    if not value:
        return None
    text = value.strip().upper()
    if text.startswith("MGRS-"):
        text = text[5:]
    if not text.startswith("T"):
        text = "T" + text
    return text if _TILE.match(text) else None


def baseline_key(baseline: str | None) -> tuple[int, ...]:
    """Sortable form of a processing baseline; unknown sorts first."""
    if not baseline:
        return (-1,)
    parts = re.findall(r"\d+", baseline)
    return tuple(int(p) for p in parts) if parts else (-1,)


def datatake_key(identifier: str | None) -> str | None:
    """``GS2A_20171026T110131_012226_N02.06`` → ``GS2A_20171026T110131_012226``."""
    if not identifier:
        return None
    return _BASELINE_SUFFIX.sub("", identifier.strip()) or None


def platform_from_name(name: str) -> str:
    """``sentinel-2a`` from ``S2A_…``, ``sentinel-1b`` from ``S1B_…``; else ``unknown``."""
    m = re.match(r"^S([12])([ABCD])_", name)
    if not m:
        return "unknown"
    return f"sentinel-{m.group(1)}{m.group(2).lower()}"


def bbox_of(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    from shapely.geometry import shape

    w, s, e, n = shape(geometry).bounds
    return (float(w), float(s), float(e), float(n))
