"""Recognise a Sentinel-2 product from its URI and find its band files.

Three layouts are recognised automatically:

``safe``
    A Sentinel-2 L1C or L2A SAFE folder (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` at its root) or
    the same zipped (``.zip``, read through GDAL's ``/vsizip/``). Band files are the JPEG 2000
    files of ``GRANULE/*/IMG_DATA`` (L1C: ``…_B02.jp2``; L2A: ``R10m/…_B02_10m.jp2``,
    ``R20m/…_B05_20m.jp2``, scene classification ``R20m/…_SCL_20m.jp2``). For each band the file at
    the finest resolution is used. The acquisition time is ``PRODUCT_START_TIME`` of the MTD, and
    the radiometric quantification value and offsets (processing baseline ≥ 04.00) come from it.
``oscd``
    A folder of one GeoTIFF per band named ``…_B02.tif`` (the Onera Satellite Change Detection
    dataset, ``<city>/imgs_1``). The acquisition date comes from ``../dates.txt`` (``date_1`` for
    ``imgs_1``, ``date_2`` for ``imgs_2``): OSCD file names carry processing dates. OSCD images are
    L1C with processing baselines before 04.00: quantification 10000, offset 0.
``bigearthnet``
    A BigEarthNet Sentinel-2 patch folder (one GeoTIFF per band plus
    ``<patch>_labels_metadata.json``, whose ``acquisition_date`` gives the time). L2A produced
    before baseline 04.00: quantification 10000, offset 0; there is no SCL band.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from candela_preprocess.bands import S2_BANDS
from candela_sdk import storage
from candela_sdk.errors import InputError

log = logging.getLogger(__name__)

MTD_NAMES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
_BAND_TIF = re.compile(r"^(?P<prefix>.*?)_?(?P<band>B0[1-9]|B1[0-2]|B8A)\.tiff?$", re.IGNORECASE)
_SAFE_IMG = re.compile(
    r"_(?P<band>B0[1-9]|B1[0-2]|B8A|SCL)(?:_(?P<res>10|20|60)m)?(?:\.jp2)?$", re.IGNORECASE
)


@dataclass
class Product:
    """A recognised input product."""

    uri: str
    layout: str  # "safe", "oscd" or "bigearthnet"
    product_id: str
    level: str  # "L1C" or "L2A"
    datetime: dt.datetime  # UTC
    datetime_precision: str  # "second" or "day"
    band_paths: dict[str, str]  # band name -> GDAL path
    scl_path: str | None = None
    quantification: float | None = None
    offsets: dict[str, float] = field(default_factory=dict)  # band name -> additive DN offset
    baseline: str | None = None
    radiometry_note: str = ""

    def band_path(self, band: str) -> str:
        try:
            return self.band_paths[band]
        except KeyError:
            have = ", ".join(sorted(self.band_paths)) or "none"
            raise InputError(
                f"band {band} missing from product {self.uri} (bands found: {have})"
            ) from None


def open_product(uri: str) -> Product:
    """Recognise the layout of the product at ``uri``; raise :class:`InputError` if unknown."""
    loc = storage.parse(uri)
    if loc.scheme == "file":
        path = Path(loc.path)
        if not path.exists():
            raise InputError(f"product not found: {loc.uri}")
        if path.is_file():
            if path.name in MTD_NAMES:
                return _safe_folder(storage.parse(str(path.parent)))
            if path.suffix.lower() == ".zip":
                return _safe_zip(path, loc.uri)
            raise InputError(
                f"unknown product layout: {loc.uri} is a file, expected a SAFE folder or .zip "
                "or a folder of per-band GeoTIFFs"
            )
    elif loc.path.lower().endswith(".zip"):
        raise InputError(
            f"zipped SAFE products are only read from local storage, not {loc.uri}: "
            "point --product at the unzipped SAFE folder"
        )
    try:
        names = storage.list_names(loc.uri)
    except InputError:
        raise InputError(f"product not found: {loc.uri}") from None
    if not names:
        raise InputError(f"product not found or empty: {loc.uri}")
    if any(n in MTD_NAMES for n in names):
        return _safe_folder(loc)
    band_files = {m.group("band").upper(): n for n in names if (m := _BAND_TIF.match(n))}
    if band_files:
        if any(n.endswith("_labels_metadata.json") for n in names):
            return _bigearthnet(loc, names, band_files)
        return _oscd(loc, band_files)
    raise InputError(
        f"unknown product layout at {loc.uri}: no MTD_MSIL1C.xml/MTD_MSIL2A.xml and no "
        "per-band GeoTIFFs named …_B02.tif"
    )


# --- per-band GeoTIFF folders -----------------------------------------------------------------


def _common_prefix(band_files: dict[str, str], fallback: str) -> str:
    prefixes = set()
    for name in band_files.values():
        m = _BAND_TIF.match(name)
        if m:
            prefixes.add(m.group("prefix").rstrip("_"))
    return prefixes.pop() if len(prefixes) == 1 and "" not in prefixes else fallback


def _oscd(loc: storage.Location, band_files: dict[str, str]) -> Product:
    folder = loc.name
    m = re.fullmatch(r"imgs_(\d+)", folder)
    parent = storage.parse(loc.uri.rstrip("/").rsplit("/", 1)[0])
    dates_uri = parent.join("dates.txt").uri
    if not m or not storage.exists(dates_uri):
        raise InputError(
            f"acquisition date unknown for band folder {loc.uri}: expected an OSCD layout "
            "(<city>/imgs_1 with <city>/dates.txt) or a BigEarthNet patch (…_labels_metadata.json)"
        )
    key = f"date_{m.group(1)}"
    dates = _parse_dates(storage.read_text(dates_uri))
    if key not in dates:
        raise InputError(f"{dates_uri} has no {key} line for {loc.uri}")
    when = dates[key]
    return Product(
        uri=loc.uri,
        layout="oscd",
        product_id=_common_prefix(band_files, f"{parent.name}_{folder}"),
        level="L1C",
        datetime=when,
        datetime_precision="day",
        band_paths={b: storage.gdal_path(loc.join(n).uri) for b, n in band_files.items()},
        quantification=10000.0,
        offsets={},
        baseline=None,
        radiometry_note="OSCD L1C (baseline < 04.00): quantification 10000, offset 0",
    )


def _parse_dates(text: str) -> dict[str, dt.datetime]:
    out: dict[str, dt.datetime] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, value = (p.strip() for p in line.split(":", 1))
        try:
            out[key] = dt.datetime.strptime(value, "%Y%m%d").replace(tzinfo=dt.UTC)
        except ValueError:
            raise InputError(f"bad date {value!r} for {key} in dates.txt") from None
    return out


def _bigearthnet(loc: storage.Location, names: list[str], band_files: dict[str, str]) -> Product:
    meta_name = next(n for n in names if n.endswith("_labels_metadata.json"))
    meta_uri = loc.join(meta_name).uri
    try:
        meta = json.loads(storage.read_text(meta_uri))
        when = dt.datetime.strptime(meta["acquisition_date"], "%Y-%m-%d %H:%M:%S")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"no valid acquisition_date in {meta_uri}: {exc}") from None
    level = "L2A" if "MSIL2A" in loc.name.upper() else "L1C"
    return Product(
        uri=loc.uri,
        layout="bigearthnet",
        product_id=loc.name,
        level=level,
        datetime=when.replace(tzinfo=dt.UTC),
        datetime_precision="second",
        band_paths={b: storage.gdal_path(loc.join(n).uri) for b, n in band_files.items()},
        quantification=10000.0,
        offsets={},
        radiometry_note="BigEarthNet (baseline < 04.00): quantification 10000, offset 0",
    )


# --- SAFE -------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_all(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if _local(e.tag) == name]


def _find_text(root: ET.Element, name: str) -> str | None:
    for e in _find_all(root, name):
        if e.text and e.text.strip():
            return e.text.strip()
    return None


@dataclass
class _Mtd:
    level: str
    product_id: str | None
    datetime: dt.datetime
    baseline: str | None
    quantification: float | None
    offsets: dict[str, float]
    image_files: list[str]  # relative paths without extension, as listed in the MTD


def parse_mtd(data: bytes, where: str) -> _Mtd:
    """The fields of ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` this service uses."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(f"product metadata {where} is not valid XML: {exc}") from None
    ptype = _find_text(root, "PRODUCT_TYPE") or ""
    plevel = _find_text(root, "PROCESSING_LEVEL") or ""
    tag = _local(root.tag)
    if "2A" in ptype or "2A" in plevel or "Level-2A" in tag:
        level = "L2A"
    elif "1C" in ptype or "1C" in plevel or "Level-1C" in tag:
        level = "L1C"
    else:
        raise InputError(f"cannot tell the processing level (L1C/L2A) from {where}")
    start = _find_text(root, "PRODUCT_START_TIME") or _find_text(root, "DATATAKE_SENSING_START")
    if not start:
        raise InputError(f"no PRODUCT_START_TIME in {where}")
    try:
        when = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"bad PRODUCT_START_TIME {start!r} in {where}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    q_name, off_name = (
        ("BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET")
        if level == "L2A"
        else ("QUANTIFICATION_VALUE", "RADIO_ADD_OFFSET")
    )
    q_text = _find_text(root, q_name)
    try:
        quant = float(q_text) if q_text else None
    except ValueError:
        raise InputError(f"bad {q_name} {q_text!r} in {where}") from None
    by_id = {info.band_id: name for name, info in S2_BANDS.items()}
    offsets: dict[str, float] = {}
    for e in _find_all(root, off_name):
        try:
            offsets[by_id[int(e.attrib["band_id"])]] = float((e.text or "").strip())
        except (KeyError, ValueError):
            raise InputError(f"bad {off_name} element in {where}") from None
    product_uri = _find_text(root, "PRODUCT_URI")
    pid = product_uri[: -len(".SAFE")] if product_uri and product_uri.endswith(".SAFE") else None
    return _Mtd(
        level=level,
        product_id=pid or product_uri,
        datetime=when.astimezone(dt.UTC),
        baseline=_find_text(root, "PROCESSING_BASELINE"),
        quantification=quant,
        offsets=offsets,
        image_files=[(e.text or "").strip() for e in _find_all(root, "IMAGE_FILE") if e.text],
    )


def _pick_images(rel_paths: list[str], where: str) -> tuple[dict[str, str], str | None]:
    """Band -> relative path of its finest-resolution JP2 under ``GRANULE/*/IMG_DATA``."""
    best: dict[str, tuple[int, str]] = {}
    granules: set[str] = set()
    for rel in rel_paths:
        p = PurePosixPath(rel)
        if "IMG_DATA" not in p.parts or "GRANULE" not in p.parts:
            continue
        m = _SAFE_IMG.search(p.name)
        if not m:
            continue
        granules.add(p.parts[p.parts.index("GRANULE") + 1])
        band = m.group("band").upper()
        res = int(m.group("res") or 0)
        if band not in best or res < best[band][0]:
            best[band] = (res, rel if rel.lower().endswith(".jp2") else rel + ".jp2")
    if len(granules) > 1:
        raise InputError(
            f"product {where} holds {len(granules)} granules; only single-tile SAFE products "
            "are supported"
        )
    scl = best.pop("SCL", None)
    return {b: r for b, (_, r) in best.items()}, (scl[1] if scl else None)


def _safe_product(
    uri: str,
    folder_name: str,
    mtd: _Mtd,
    bands: dict[str, str],
    scl: str | None,
) -> Product:
    pid = mtd.product_id or re.sub(r"\.(SAFE|zip)$", "", folder_name, flags=re.IGNORECASE)
    if mtd.quantification is None:
        note = "no quantification value in the MTD"
    else:
        note = f"MTD baseline {mtd.baseline or '?'}: quantification {mtd.quantification:g}"
        note += ", offsets from the MTD" if mtd.offsets else ", offset 0 (none in the MTD)"
    return Product(
        uri=uri,
        layout="safe",
        product_id=pid,
        level=mtd.level,
        datetime=mtd.datetime,
        datetime_precision="second",
        band_paths=bands,
        scl_path=scl,
        quantification=mtd.quantification,
        offsets=mtd.offsets,
        baseline=mtd.baseline,
        radiometry_note=note,
    )


def _safe_folder(loc: storage.Location) -> Product:
    names = storage.list_names(loc.uri)
    mtd_name = next(n for n in MTD_NAMES if n in names)
    mtd = parse_mtd(storage.read_bytes(loc.join(mtd_name).uri), loc.join(mtd_name).uri)
    rel = list(mtd.image_files)
    if not rel:
        rel = _walk_img_data(loc)
    bands_rel, scl_rel = _pick_images(rel, loc.uri)
    if loc.scheme == "file":
        # the MTD may list files that are not there: keep only what exists, so a missing band is
        # reported as missing rather than as unreadable
        bands_rel = {b: r for b, r in bands_rel.items() if Path(loc.path, r).is_file()}
        if scl_rel and not Path(loc.path, scl_rel).is_file():
            scl_rel = None
    bands = {b: storage.gdal_path(loc.join(r).uri) for b, r in bands_rel.items()}
    scl = storage.gdal_path(loc.join(scl_rel).uri) if scl_rel else None
    return _safe_product(loc.uri, loc.name, mtd, bands, scl)


def _walk_img_data(loc: storage.Location) -> list[str]:
    out: list[str] = []
    if "GRANULE" not in storage.list_names(loc.uri):
        return out
    for granule in storage.list_names(loc.join("GRANULE").uri):
        img = loc.join("GRANULE", granule, "IMG_DATA")
        try:
            entries = storage.list_names(img.uri)
        except InputError:
            continue
        for e in entries:
            if e.lower().endswith(".jp2"):
                out.append(f"GRANULE/{granule}/IMG_DATA/{e}")
            elif re.fullmatch(r"R\d+m", e):
                for f in storage.list_names(img.join(e).uri):
                    out.append(f"GRANULE/{granule}/IMG_DATA/{e}/{f}")
    return out


def _safe_zip(path: Path, uri: str) -> Product:
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.namelist()
            mtd_member = next(
                (m for m in members if PurePosixPath(m).name in MTD_NAMES and m.count("/") <= 1),
                None,
            )
            if mtd_member is None:
                raise InputError(
                    f"unknown product layout: {uri} holds no MTD_MSIL1C.xml/MTD_MSIL2A.xml"
                )
            data = zf.read(mtd_member)
    except zipfile.BadZipFile:
        raise InputError(f"product {uri} is not a valid zip file") from None
    mtd = parse_mtd(data, f"{uri}!{mtd_member}")
    root = str(PurePosixPath(mtd_member).parent)
    root = "" if root == "." else root + "/"
    rel_members = [m[len(root) :] for m in members if m.startswith(root)]
    present = set(rel_members)
    listed = [r + ".jp2" if not r.lower().endswith(".jp2") else r for r in mtd.image_files]
    rel = [r for r in listed if r in present] or rel_members
    bands_rel, scl_rel = _pick_images(rel, uri)
    prefix = f"/vsizip/{path}/{root}"
    bands = {b: prefix + r for b, r in bands_rel.items()}
    scl = prefix + scl_rel if scl_rel else None
    return _safe_product(uri, path.name, mtd, bands, scl)
