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
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from candela_sdk import storage
from candela_sdk.errors import InputError
from candela_sdk.sentinel2 import (
    BANDS,
    BIGEARTHNET_METADATA_SUFFIX,
    MTD_NAMES,
    MetadataError,
    SafeMetadata,
    band_file_prefix,
    band_files,
    bigearthnet_time,
    finest_images,
    parse_mtd,
    parse_oscd_dates,
)

log = logging.getLogger(__name__)


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
    files = band_files(names)
    if files:
        if any(n.endswith(BIGEARTHNET_METADATA_SUFFIX) for n in names):
            return _bigearthnet(loc, names, files)
        return _oscd(loc, files)
    raise InputError(
        f"unknown product layout at {loc.uri}: no MTD_MSIL1C.xml/MTD_MSIL2A.xml and no "
        "per-band GeoTIFFs named …_B02.tif"
    )


# --- per-band GeoTIFF folders -----------------------------------------------------------------


def _oscd(loc: storage.Location, files: dict[str, str]) -> Product:
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
    try:
        dates = parse_oscd_dates(storage.read_text(dates_uri))
    except MetadataError as exc:
        raise InputError(f"{dates_uri}: {exc}") from None
    if key not in dates:
        raise InputError(f"{dates_uri} has no {key} line for {loc.uri}")
    when = dt.datetime.combine(dates[key], dt.time(), tzinfo=dt.UTC)
    return Product(
        uri=loc.uri,
        layout="oscd",
        product_id=band_file_prefix(files, f"{parent.name}_{folder}"),
        level="L1C",
        datetime=when,
        datetime_precision="day",
        band_paths={b: storage.gdal_path(loc.join(n).uri) for b, n in files.items()},
        quantification=10000.0,
        offsets={},
        baseline=None,
        radiometry_note="OSCD L1C (baseline < 04.00): quantification 10000, offset 0",
    )


def _bigearthnet(loc: storage.Location, names: list[str], files: dict[str, str]) -> Product:
    meta_name = next(n for n in names if n.endswith(BIGEARTHNET_METADATA_SUFFIX))
    meta_uri = loc.join(meta_name).uri
    try:
        meta = json.loads(storage.read_text(meta_uri))
        when = bigearthnet_time(meta, "acquisition_date")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"no valid acquisition_date in {meta_uri}: {exc}") from None
    level = "L2A" if "MSIL2A" in loc.name.upper() else "L1C"
    return Product(
        uri=loc.uri,
        layout="bigearthnet",
        product_id=loc.name,
        level=level,
        datetime=when,
        datetime_precision="second",
        band_paths={b: storage.gdal_path(loc.join(n).uri) for b, n in files.items()},
        quantification=10000.0,
        offsets={},
        radiometry_note="BigEarthNet (baseline < 04.00): quantification 10000, offset 0",
    )


# --- SAFE -------------------------------------------------------------------------------------


def _parse_mtd(data: bytes, where: str, folder_name: str) -> SafeMetadata:
    try:
        return parse_mtd(data, re.sub(r"\.(SAFE|zip)$", "", folder_name, flags=re.IGNORECASE))
    except MetadataError as exc:
        raise InputError(f"product metadata {where}: {exc}") from None


def _pick_images(rel_paths: list[str], where: str) -> tuple[dict[str, str], str | None]:
    """Band -> relative path of its finest-resolution JP2 under ``GRANULE/*/IMG_DATA``."""
    images: list[str] = []
    granules: set[str] = set()
    for rel in rel_paths:
        p = PurePosixPath(rel)
        if "IMG_DATA" not in p.parts or "GRANULE" not in p.parts:
            continue
        granules.add(p.parts[p.parts.index("GRANULE") + 1])
        images.append(rel if rel.lower().endswith(".jp2") else rel + ".jp2")
    if len(granules) > 1:
        raise InputError(
            f"product {where} holds {len(granules)} granules; only single-tile SAFE products "
            "are supported"
        )
    best = finest_images(images)
    scl = best.get("SCL")
    return {b: r for b, (_, r) in best.items() if b in BANDS}, (scl[1] if scl else None)


def _safe_product(
    uri: str,
    folder_name: str,
    mtd: SafeMetadata,
    bands: dict[str, str],
    scl: str | None,
) -> Product:
    pid = mtd.product_uri or re.sub(r"\.(SAFE|zip)$", "", folder_name, flags=re.IGNORECASE)
    quant, baseline = mtd.quantification_value, mtd.processing_baseline
    if quant is None:
        note = "no quantification value in the MTD"
    else:
        note = f"MTD baseline {baseline or '?'}: quantification {quant:g}"
        note += ", offsets from the MTD" if mtd.add_offsets else ", offset 0 (none in the MTD)"
    return Product(
        uri=uri,
        layout="safe",
        product_id=pid,
        level=mtd.level,
        datetime=mtd.start_time,
        datetime_precision="second",
        band_paths=bands,
        scl_path=scl,
        quantification=quant,
        offsets=mtd.add_offsets,
        baseline=baseline,
        radiometry_note=note,
    )


def _safe_folder(loc: storage.Location) -> Product:
    names = storage.list_names(loc.uri)
    mtd_name = next(n for n in MTD_NAMES if n in names)
    mtd = _parse_mtd(storage.read_bytes(loc.join(mtd_name).uri), loc.join(mtd_name).uri, loc.name)
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
    mtd = _parse_mtd(data, f"{uri}!{mtd_member}", path.name)
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
