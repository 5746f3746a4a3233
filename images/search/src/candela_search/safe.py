"""Sentinel-2 SAFE product metadata (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``).

Read with the standard library's ElementTree, namespace-agnostic (the PSD-13/14/15 schema
versions only differ in their namespace URI for the fields used here):

* ``Product_Info/PRODUCT_START_TIME`` – sensing start, the item's datetime;
* ``PRODUCT_URI`` / ``PRODUCT_TYPE`` (``S2MSI1C``, ``S2MSI2A``) – name and level;
* ``PROCESSING_BASELINE`` (``02.06``) and ``GENERATION_TIME``;
* ``Datatake@datatakeIdentifier`` (``GS2A_20171026T110131_012226_N02.06``) with
  ``SPACECRAFT_NAME``, ``SENSING_ORBIT_NUMBER`` and ``SENSING_ORBIT_DIRECTION``;
* ``Granule/IMAGE_FILE`` – the band files (without their ``.jp2`` extension);
* ``QUANTIFICATION_VALUE`` (L1C) or ``BOA_QUANTIFICATION_VALUE`` (L2A), and from baseline 04.00 on
  the per-band ``RADIO_ADD_OFFSET`` (L1C) or ``BOA_ADD_OFFSET`` (L2A), keyed by ``band_id`` which
  ``Spectral_Information@bandId/@physicalBand`` maps to a band name;
* ``Global_Footprint/EXT_POS_LIST`` – the footprint as "lat lon lat lon …" (closed ring);
* ``Quality_Indicators_Info/Cloud_Coverage_Assessment`` – cloud cover in percent.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from candela_search.records import S2_BANDS, baseline_from_name, utc

MTD_NAMES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")


class MetadataError(ValueError):
    """The metadata file is not the Sentinel-2 product metadata it claims to be."""


@dataclass
class SafeMetadata:
    level: str  # "L1C" or "L2A"
    product_uri: str
    start_time: dt.datetime
    footprint: list[tuple[float, float]]  # (lon, lat) ring, closed
    processing_baseline: str | None = None
    generation_time: dt.datetime | None = None
    product_type: str | None = None
    datatake_id: str | None = None
    datatake_type: str | None = None
    spacecraft: str | None = None  # "Sentinel-2A"
    relative_orbit: int | None = None
    orbit_direction: str | None = None
    cloud_cover: float | None = None
    quantification_value: float | None = None
    add_offsets: dict[str, float] = field(default_factory=dict)
    image_files: list[str] = field(default_factory=list)

    @property
    def collection(self) -> str:
        return "sentinel-2-l1c" if self.level == "L1C" else "sentinel-2-l2a"

    @property
    def platform(self) -> str:
        if self.spacecraft:
            m = re.match(r"sentinel-?(\d)([a-d])", self.spacecraft.strip().lower())
            if m:
                return f"sentinel-{m.group(1)}{m.group(2)}"
        return "unknown"

    @property
    def absolute_orbit(self) -> int | None:
        # GS2A_20171026T110131_012226_N02.06: the third field is the absolute orbit
        if self.datatake_id:
            m = re.match(r"^G?S2[A-D]_\d{8}T\d{6}_(\d{6})", self.datatake_id)
            if m:
                return int(m.group(1))
        return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _first(root: ET.Element, name: str) -> ET.Element | None:
    for el in root.iter():
        if _local(el.tag) == name:
            return el
    return None


def _text(root: ET.Element, name: str) -> str | None:
    el = _first(root, name)
    if el is None or el.text is None or not el.text.strip():
        return None
    return el.text.strip()


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    value = text.strip().replace("Z", "+00:00")
    # GENERATION_TIME has microseconds with six digits, START_TIME milliseconds: both parse.
    try:
        return utc(dt.datetime.fromisoformat(value))
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _band_names(root: ET.Element) -> dict[str, str]:
    """band_id → B01…B12 from Spectral_Information (``physicalBand="B1"`` means ``B01``)."""
    names = {str(i): b for i, b in enumerate(S2_BANDS)}
    for el in root.iter():
        if _local(el.tag) == "Spectral_Information":
            band_id, physical = el.get("bandId"), el.get("physicalBand")
            if band_id is None or not physical:
                continue
            m = re.match(r"^B(\d+)(A?)$", physical.strip().upper())
            if m:
                names[band_id] = "B8A" if m.group(2) else f"B{int(m.group(1)):02d}"
    return names


def parse_footprint(text: str) -> list[tuple[float, float]]:
    """EXT_POS_LIST "lat lon lat lon …" (2D; also 3D "lat lon h" lists) → closed (lon, lat) ring."""
    values = [float(v) for v in text.split()]
    dims = 2
    if len(values) % 2 != 0 or len(values) < 8:
        if len(values) % 3 == 0 and len(values) >= 12:
            dims = 3
        else:
            raise MetadataError(f"EXT_POS_LIST has {len(values)} numbers, not lat/lon pairs")
    ring = [(values[i + 1], values[i]) for i in range(0, len(values), dims)]
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    if len(ring) < 4:
        raise MetadataError("EXT_POS_LIST has fewer than three distinct points")
    for lon, lat in ring:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise MetadataError(f"EXT_POS_LIST point ({lat} {lon}) is not a latitude/longitude")
    return ring


def parse_mtd(xml: bytes, product_name: str | None = None) -> SafeMetadata:
    """The fields of an ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` the catalogue needs."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise MetadataError(f"the product metadata is not well-formed XML ({exc})") from None
    root_name = _local(root.tag)
    product_type = _text(root, "PRODUCT_TYPE")
    level_text = " ".join(filter(None, [root_name, product_type, _text(root, "PROCESSING_LEVEL")]))
    if "2A" in level_text:
        level = "L2A"
    elif "1C" in level_text:
        level = "L1C"
    else:
        raise MetadataError(f"not Sentinel-2 L1C/L2A product metadata (root element {root_name!r})")

    start = _time(_text(root, "PRODUCT_START_TIME"))
    if start is None:
        raise MetadataError("PRODUCT_START_TIME is missing or not a date")
    ext = _text(root, "EXT_POS_LIST")
    if ext is None:
        raise MetadataError("the footprint (Global_Footprint/EXT_POS_LIST) is missing")
    uri = _text(root, "PRODUCT_URI") or product_name or ""
    uri = uri.removesuffix(".SAFE")

    datatake = None
    datatake_type = None
    for el in root.iter():
        if _local(el.tag).upper().startswith("DATATAKE") and el.get("datatakeIdentifier"):
            datatake = el.get("datatakeIdentifier")
            datatake_type = _text(el, "DATATAKE_TYPE")
            break

    orbit = _text(root, "SENSING_ORBIT_NUMBER")
    names = _band_names(root)
    if level == "L2A":
        quant = _float(_text(root, "BOA_QUANTIFICATION_VALUE"))
        offset_tag = "BOA_ADD_OFFSET"
    else:
        quant = _float(_text(root, "QUANTIFICATION_VALUE"))
        offset_tag = "RADIO_ADD_OFFSET"
    offsets: dict[str, float] = {}
    for el in root.iter():
        if _local(el.tag) == offset_tag and el.get("band_id") is not None:
            value = _float(el.text.strip() if el.text else None)
            if value is not None:
                offsets[names.get(el.get("band_id", ""), f"band{el.get('band_id')}")] = value

    images = []
    for el in root.iter():
        if _local(el.tag) == "IMAGE_FILE" and el.text and el.text.strip():
            images.append(el.text.strip())

    return SafeMetadata(
        level=level,
        product_uri=uri,
        start_time=start,
        footprint=parse_footprint(ext),
        processing_baseline=_text(root, "PROCESSING_BASELINE") or baseline_from_name(uri),
        generation_time=_time(_text(root, "GENERATION_TIME")),
        product_type=product_type,
        datatake_id=datatake,
        datatake_type=datatake_type,
        spacecraft=_text(root, "SPACECRAFT_NAME"),
        relative_orbit=int(orbit) if orbit and orbit.isdigit() else None,
        orbit_direction=(_text(root, "SENSING_ORBIT_DIRECTION") or "").lower() or None,
        cloud_cover=_float(_text(root, "Cloud_Coverage_Assessment")),
        quantification_value=quant,
        add_offsets=offsets,
        image_files=images,
    )


def band_assets(
    md: SafeMetadata, base_href: str | None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Assets for the band files of a SAFE folder (finest resolution per band) + band names.

    ``base_href`` is the folder's ``file://`` URI; ``None`` (a zip) gives no band assets.
    """
    best: dict[str, tuple[int, str]] = {}
    for path in md.image_files:
        name = path.rsplit("/", 1)[-1]
        m = re.search(r"_([A-Z0-9]{3})(?:_(\d+)m)?$", name)
        if not m:
            continue
        band, res = m.group(1), int(m.group(2) or 0)
        if band not in best or (res and res < best[band][0]):
            best[band] = (res, path)
    bands = sorted(best)
    if base_href is None:
        return {}, bands
    assets: dict[str, dict[str, Any]] = {}
    q = md.quantification_value
    for band in bands:
        res, path = best[band]
        spec: dict[str, Any] = {
            "href": f"{base_href.rstrip('/')}/{path}.jp2",
            "type": "image/jp2",
            "title": f"{band}" + (f" ({res} m)" if res else ""),
            "roles": ["data"] if band not in ("TCI",) else ["visual"],
        }
        if res:
            spec["gsd"] = float(res)
        if q and band in S2_BANDS:
            spec["raster:scale"] = 1.0 / q
            spec["raster:offset"] = md.add_offsets.get(band, 0.0) / q
        assets[band] = spec
    return assets, bands
