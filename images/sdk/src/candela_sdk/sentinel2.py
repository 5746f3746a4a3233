"""Sentinel-2 MSI: the one band table and the readers of the product layouts Candela knows.

* :data:`BANDS` – name, MTD ``band_id``, native resolution, wavelengths and STAC common name of
  every band; :data:`DEFAULT_BANDS` (the 10 m and 20 m bands, the order of a preprocessed stack)
  and :data:`REFERENCE_BAND` (B02, the grid of every stack).
* **SAFE** (L1C/L2A folder or zip): :func:`parse_mtd` reads ``MTD_MSIL1C.xml`` /
  ``MTD_MSIL2A.xml`` into :class:`SafeMetadata`; :func:`finest_images` picks each band's file at
  its finest resolution among the MTD's ``IMAGE_FILE`` entries.
* **OSCD** city folders (``<city>/imgs_1``, ``imgs_2``, ``dates.txt``): :func:`band_files` finds
  the per-band GeoTIFFs, :func:`parse_oscd_dates` reads ``dates.txt`` (the file names carry
  *processing* dates, not acquisition dates).
* **BigEarthNet** patches (``<patch>/<patch>_labels_metadata.json`` plus one GeoTIFF per band):
  :data:`BIGEARTHNET_S2` / :data:`BIGEARTHNET_S1` name patterns and :func:`bigearthnet_time`.

The readers take text/bytes/names, not paths: the search service reads local folders, the
preprocessing service reads storage URIs (``file://``, ``s3://``), both through these functions.
Bad input raises :class:`MetadataError` (a ``ValueError`` and an
:class:`~candela_sdk.errors.InputError`) with one line saying why.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from candela_sdk.errors import InputError

# --- bands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BandInfo:
    name: str
    band_id: int  # index used by the MTD (RADIO_ADD_OFFSET band_id=…)
    resolution: int  # native ground sampling distance, metres
    center_wavelength: float  # micrometres (Sentinel-2A)
    fwhm: float  # micrometres
    common_name: str | None


BANDS: dict[str, BandInfo] = {
    b.name: b
    for b in (
        BandInfo("B01", 0, 60, 0.443, 0.027, "coastal"),
        BandInfo("B02", 1, 10, 0.490, 0.098, "blue"),
        BandInfo("B03", 2, 10, 0.560, 0.045, "green"),
        BandInfo("B04", 3, 10, 0.665, 0.038, "red"),
        BandInfo("B05", 4, 20, 0.705, 0.019, "rededge"),
        BandInfo("B06", 5, 20, 0.740, 0.018, "rededge"),
        BandInfo("B07", 6, 20, 0.783, 0.028, "rededge"),
        BandInfo("B08", 7, 10, 0.842, 0.145, "nir"),
        BandInfo("B8A", 8, 20, 0.865, 0.033, "nir08"),
        BandInfo("B09", 9, 60, 0.945, 0.026, "nir09"),
        BandInfo("B10", 10, 60, 1.375, 0.075, "cirrus"),
        BandInfo("B11", 11, 20, 1.610, 0.143, "swir16"),
        BandInfo("B12", 12, 20, 2.190, 0.242, "swir22"),
    )
}

#: Band names in the order of the MTD's ``band_id`` / ``bandId`` (0..12).
BAND_NAMES: tuple[str, ...] = tuple(sorted(BANDS, key=lambda b: BANDS[b].band_id))

#: The 10 m and 20 m bands, in the order of the output stack (10 m first, then 20 m).
DEFAULT_BANDS: tuple[str, ...] = (
    "B02",
    "B03",
    "B04",
    "B08",
    "B05",
    "B06",
    "B07",
    "B8A",
    "B11",
    "B12",
)

#: The reference grid of every output: the blue band, 10 m.
REFERENCE_BAND = "B02"


def normalise_band(name: str) -> str:
    """``b2``/``B2``/``b02`` → ``B02``; ``b8a`` → ``B8A``; raises ValueError for unknown names."""
    text = name.strip().upper()
    if text.startswith("B") and text[1:].isdigit() and len(text) == 2:
        text = "B0" + text[1:]
    if text not in BANDS:
        raise ValueError(f"unknown Sentinel-2 band {name!r} (known: {', '.join(sorted(BANDS))})")
    return text


def resolution(band: str) -> int | None:
    """Native resolution in metres of a band name, None for anything else (SCL, TCI …)."""
    info = BANDS.get(band)
    return info.resolution if info else None


class MetadataError(InputError, ValueError):
    """Product metadata that is not what it claims to be; the message says why in one line."""


# --- per-band GeoTIFF folders (OSCD, BigEarthNet) -----------------------------------------

#: A per-band GeoTIFF: ``…_B02.tif`` (OSCD ``S2A_OPER_…_B02.tif``, ``T30TXQ_…_B02.tif``,
#: BigEarthNet ``<patch>_B02.tif``).
BAND_FILE = re.compile(r"^(?P<prefix>.*?)_?(?P<band>B0[1-9]|B1[0-2]|B8A)\.tiff?$", re.IGNORECASE)


def band_files(names: Iterable[str]) -> dict[str, str]:
    """Band name → file name of the per-band GeoTIFFs among ``names`` (sorted, first wins)."""
    found: dict[str, str] = {}
    for name in sorted(names):
        m = BAND_FILE.match(name)
        if m:
            found.setdefault(m.group("band").upper(), name)
    return found


def band_file_prefix(files: dict[str, str], fallback: str) -> str:
    """The name the band files share before ``_B02.tif`` …, else ``fallback``."""
    prefixes = set()
    for name in files.values():
        m = BAND_FILE.match(name)
        if m:
            prefixes.add(m.group("prefix").rstrip("_"))
    return prefixes.pop() if len(prefixes) == 1 and "" not in prefixes else fallback


def parse_oscd_dates(text: str) -> dict[str, dt.date]:
    """``{"date_1": date, "date_2": date}`` from an OSCD ``dates.txt`` (``date_1: 20160504``)."""
    dates: dict[str, dt.date] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, value = (p.strip() for p in line.split(":", 1))
        if not re.fullmatch(r"date_\d", key):
            continue
        try:
            dates[key] = dt.datetime.strptime(value, "%Y%m%d").date()
        except ValueError:
            raise MetadataError(f"dates.txt has an impossible date {value!r} for {key}") from None
    return dates


#: BigEarthNet Sentinel-2 patch: ``S2A_MSIL2A_<time>_<row>_<col>``.
BIGEARTHNET_S2 = re.compile(r"^(S2[A-D])_MSIL2A_(\d{8}T\d{5,6})_(\d+)_(\d+)$")
#: BigEarthNet Sentinel-1 patch: ``S1A_IW_GRDH_1SDV_<time>_<tile>_<row>_<col>``.
BIGEARTHNET_S1 = re.compile(r"^(S1[A-D])_IW_GRDH_1SDV_(\d{8}T\d{6})_(\d{2}[A-Z]{3})_(\d+)_(\d+)$")
BIGEARTHNET_METADATA_SUFFIX = "_labels_metadata.json"


def bigearthnet_time(meta: dict[str, Any], *keys: str) -> dt.datetime:
    """The acquisition time (UTC) of a BigEarthNet patch from the first of ``keys`` present."""
    keys = keys or ("acquisition_date",)
    for key in keys:
        if meta.get(key):
            try:
                return _utc(dt.datetime.fromisoformat(str(meta[key]).replace(" ", "T")))
            except ValueError:
                raise MetadataError(f"BigEarthNet {key} {meta[key]!r} is not a date") from None
    raise MetadataError(f"BigEarthNet metadata has no {' or '.join(keys)}")


# --- SAFE ----------------------------------------------------------------------------------

MTD_NAMES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")

#: A SAFE image file name (with or without ``.jp2``): ``…_B02.jp2`` (L1C), ``…_B05_20m.jp2`` (L2A).
SAFE_IMAGE = re.compile(r"_(?P<band>[A-Z0-9]{3})(?:_(?P<res>\d+)m)?(?:\.jp2)?$", re.IGNORECASE)


@dataclass
class SafeMetadata:
    """What Candela reads from ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``."""

    level: str  # "L1C" or "L2A"
    product_uri: str  # product name without ".SAFE"
    start_time: dt.datetime  # UTC
    footprint: list[tuple[float, float]]  # (lon, lat) ring, closed; empty when not given
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
    add_offsets: dict[str, float] = field(default_factory=dict)  # band → additive DN offset
    image_files: list[str] = field(default_factory=list)  # as listed, without ".jp2"

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


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


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
        return _utc(dt.datetime.fromisoformat(value))
    except ValueError:
        return None


def _float(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise MetadataError(f"{what} {text!r} is not a number") from None


def _band_ids(root: ET.Element) -> dict[str, str]:
    """band_id → B01…B12 from Spectral_Information (``physicalBand="B1"`` means ``B01``)."""
    names = {str(i): b for i, b in enumerate(BAND_NAMES)}
    for el in root.iter():
        if _local(el.tag) == "Spectral_Information":
            band_id, physical = el.get("bandId"), el.get("physicalBand")
            if band_id is None or not physical:
                continue
            m = re.match(r"^B(\d+)(A?)$", physical.strip().upper())
            if m:
                names[band_id] = "B8A" if m.group(2) else f"B{int(m.group(1)):02d}"
    return names


def baseline_from_name(name: str) -> str | None:
    """``02.06`` from a product name with ``_N0206_``."""
    m = re.search(r"_N(\d{2})(\d{2})(?=_|\.|$)", name)
    return f"{m.group(1)}.{m.group(2)}" if m else None


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
    """The fields of an ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` Candela uses.

    Read namespace-agnostic (the PSD-13/14/15 schema versions differ only in their namespace for
    these fields): ``PRODUCT_START_TIME`` (else ``DATATAKE_SENSING_START``), ``PRODUCT_URI`` /
    ``PRODUCT_TYPE``, ``PROCESSING_BASELINE``, ``GENERATION_TIME``, the datatake, orbit and
    spacecraft, ``IMAGE_FILE``, ``QUANTIFICATION_VALUE`` (L1C) or ``BOA_QUANTIFICATION_VALUE``
    (L2A) with the per-band ``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET`` (baseline ≥ 04.00),
    ``Global_Footprint/EXT_POS_LIST`` and ``Cloud_Coverage_Assessment``.
    """
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

    start = _time(_text(root, "PRODUCT_START_TIME") or _text(root, "DATATAKE_SENSING_START"))
    if start is None:
        raise MetadataError("PRODUCT_START_TIME is missing or not a date")
    ext = _text(root, "EXT_POS_LIST")
    uri = _text(root, "PRODUCT_URI") or product_name or ""
    uri = re.sub(r"\.(SAFE|zip)$", "", uri, flags=re.IGNORECASE)

    datatake = None
    datatake_type = None
    for el in root.iter():
        if _local(el.tag).upper().startswith("DATATAKE") and el.get("datatakeIdentifier"):
            datatake = el.get("datatakeIdentifier")
            datatake_type = _text(el, "DATATAKE_TYPE")
            break

    orbit = _text(root, "SENSING_ORBIT_NUMBER")
    names = _band_ids(root)
    q_tag, offset_tag = (
        ("BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET")
        if level == "L2A"
        else ("QUANTIFICATION_VALUE", "RADIO_ADD_OFFSET")
    )
    offsets: dict[str, float] = {}
    for el in root.iter():
        if _local(el.tag) == offset_tag and el.get("band_id") is not None:
            band_id = el.get("band_id", "")
            value = _float(el.text.strip() if el.text else None, offset_tag)
            if value is not None:
                offsets[names.get(band_id, f"band{band_id}")] = value

    images = [
        el.text.strip()
        for el in root.iter()
        if _local(el.tag) == "IMAGE_FILE" and el.text and el.text.strip()
    ]
    try:
        cloud = _float(_text(root, "Cloud_Coverage_Assessment"), "Cloud_Coverage_Assessment")
    except MetadataError:
        cloud = None

    return SafeMetadata(
        level=level,
        product_uri=uri,
        start_time=start,
        footprint=parse_footprint(ext) if ext else [],
        processing_baseline=_text(root, "PROCESSING_BASELINE") or baseline_from_name(uri),
        generation_time=_time(_text(root, "GENERATION_TIME")),
        product_type=product_type,
        datatake_id=datatake,
        datatake_type=datatake_type,
        spacecraft=_text(root, "SPACECRAFT_NAME"),
        relative_orbit=int(orbit) if orbit and orbit.isdigit() else None,
        orbit_direction=(_text(root, "SENSING_ORBIT_DIRECTION") or "").lower() or None,
        cloud_cover=cloud,
        quantification_value=_float(_text(root, q_tag), q_tag),
        add_offsets=offsets,
        image_files=images,
    )


def finest_images(paths: Iterable[str]) -> dict[str, tuple[int, str]]:
    """Band (``B02``, ``SCL``, ``TCI`` …) → (resolution in m, path) of its finest-resolution
    image among SAFE image paths (L1C names carry no resolution: 0)."""
    best: dict[str, tuple[int, str]] = {}
    for path in paths:
        m = SAFE_IMAGE.search(path.rsplit("/", 1)[-1])
        if not m:
            continue
        band, res = m.group("band").upper(), int(m.group("res") or 0)
        if band not in best or res < best[band][0]:
            best[band] = (res, path)
    return best
