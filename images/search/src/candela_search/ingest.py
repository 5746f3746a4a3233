"""Recognise products on disk and turn each into a :class:`ProductRecord` with its STAC item.

Recognised (tried in this order on every path):

* **OSCD city folder** – ``imgs_1/``, ``imgs_2/``, ``dates.txt`` (``date_1: 20160504``) and usually
  ``<city>.geojson``: two ``sentinel-2-l1c`` products ``oscd-<city>-<yyyymmdd>``. The date comes
  from ``dates.txt`` (the ``S2A_OPER_…`` file names of ``imgs_1`` carry *processing* dates); when
  the band files use the compact naming ``T30TXQ_20171026T110131_B02.tif`` and that date agrees,
  its sensing time is used too. Footprint from the B02 raster, href the band folder.
* **Sentinel-2 SAFE** folder or ``.zip`` with ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``
  (see :mod:`candela_sdk.sentinel2`).
* **BigEarthNet patch** folder with ``<patch>_labels_metadata.json`` (Sentinel-2 L2A patches
  ``S2A_MSIL2A_…_<row>_<col>`` and Sentinel-1 GRD patches ``S1A_IW_GRDH_1SDV_…_<tile>_<r>_<c>``).
* **STAC item** JSON file (a Feature, or a FeatureCollection of items).
* **GeoTIFF / COG** file: footprint and ``proj:*`` from the raster, collection and date from its
  tags or file name.

A folder that is none of these is searched below (up to :data:`MAX_DEPTH` levels). What cannot be
used is reported as :class:`Skipped` with one sentence saying why; nothing here raises for a bad
input (an unexpected error in a reader is reported as a skip too, and logged with its traceback).
Only local paths are read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from candela_sdk import stac
from candela_sdk.sentinel2 import (
    BAND_NAMES,
    BIGEARTHNET_S1,
    BIGEARTHNET_S2,
    MTD_NAMES,
    MetadataError,
    SafeMetadata,
    band_files,
    bigearthnet_time,
    finest_images,
    parse_mtd,
    parse_oscd_dates,
    resolution,
)
from candela_search.records import (
    COLLECTIONS,
    ProductRecord,
    Scan,
    Skipped,
    baseline_from_name,
    bbox_of,
    datatake_key,
    normalise_tile,
    platform_from_name,
    tile_from_name,
    utc,
)

log = logging.getLogger(__name__)

MAX_DEPTH = 6
SOFTWARE = stac.package_software("candela-search")


class Refused(Exception):
    """The path is of a recognised kind but cannot be catalogued; the message says why."""


Detector = Callable[[Path, list[Skipped]], list[ProductRecord] | None]


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


def _record(
    item_id: str,
    collection: str,
    when: dt.datetime,
    geometry: dict[str, Any],
    bbox: tuple[float, float, float, float],
    href: str,
    properties: dict[str, Any],
    assets: dict[str, dict[str, Any]],
    **fields: Any,
) -> ProductRecord:
    """A catalogue record and its STAC item, both from the same fields."""
    item = stac.build_item(
        item_id=item_id,
        collection=collection,
        datetime=when,
        geometry=geometry,
        bbox=bbox,
        properties=properties,
        assets=assets,
        software=SOFTWARE,
    )
    return ProductRecord(
        id=item_id,
        collection=collection,
        datetime=when,
        geometry=geometry,
        bbox=bbox,
        href=href,
        item=item,
        **fields,
    )


# --- public API ----------------------------------------------------------------------------


class Recognised(list[ProductRecord]):
    """The records found (the list itself, also ``.records``) and what was ``.skipped``."""

    def __init__(
        self, records: Iterable[ProductRecord] = (), skipped: Iterable[Skipped] = ()
    ) -> None:
        super().__init__(records)
        self.skipped: list[Skipped] = list(skipped)

    @property
    def records(self) -> list[ProductRecord]:
        return list(self)


def recognise(path: str | os.PathLike[str], skipped: list[Skipped] | None = None) -> Recognised:
    """The products found at ``path`` (a product, a file, or a folder searched below).

    The result is a list of :class:`ProductRecord`; what is not a product is in its
    ``.skipped`` (and appended to ``skipped`` when given) as :class:`Skipped` with its reason,
    and logged. This function does not raise for bad or unknown inputs.
    """
    found: list[ProductRecord] = []
    sink: list[Skipped] = []
    _walk(Path(path), 0, True, found, sink)
    for s in sink:
        log.info("skipped %s", s)
    if skipped is not None:
        skipped.extend(sink)
    return Recognised(found, sink)


def scan(paths: Iterable[str | os.PathLike[str]]) -> Scan:
    """:func:`recognise` over several paths: the records found and what was skipped."""
    result = Scan()
    seen: set[str] = set()
    for p in paths:
        for rec in recognise(p, result.skipped):
            if rec.id in seen:
                log.warning("product %s found twice; keeping the first (%s)", rec.id, rec.href)
                continue
            seen.add(rec.id)
            result.records.append(rec)
    return result


# --- walking -------------------------------------------------------------------------------


def _walk(
    path: Path, depth: int, explicit: bool, found: list[ProductRecord], skipped: list[Skipped]
) -> None:
    if not path.exists():
        skipped.append(Skipped(path, "does not exist"))
        return
    for name, detector in DETECTORS:
        try:
            records = detector(path, skipped)
        except Refused as exc:
            skipped.append(Skipped(path, str(exc)))
            return
        except Exception as exc:  # a reader bug must not stop a whole catalogue run
            log.exception("the %s reader failed on %s", name, path)
            skipped.append(Skipped(path, f"the {name} reader failed: {exc}"))
            return
        if records is not None:
            found.extend(records)
            return
    if path.is_dir():
        before = (len(found), len(skipped))
        if depth >= MAX_DEPTH:
            skipped.append(Skipped(path, f"not searched: deeper than {MAX_DEPTH} folders"))
            return
        for child in sorted(path.iterdir()):
            if child.name.startswith(".") or child.is_symlink() and child.is_dir():
                continue
            _walk(child, depth + 1, False, found, skipped)
        if (len(found), len(skipped)) == before:
            skipped.append(
                Skipped(
                    path,
                    "no product found (not an OSCD city folder, Sentinel-2 SAFE, "
                    "BigEarthNet patch, STAC item or GeoTIFF)",
                )
            )
        return
    if explicit:
        skipped.append(
            Skipped(
                path,
                "unknown kind of file (expected a SAFE .zip, a STAC item .json or a GeoTIFF)",
            )
        )
    else:
        log.debug("ignoring %s", path)


# --- OSCD ----------------------------------------------------------------------------------


def _band_files(folder: Path) -> dict[str, Path]:
    names = [f.name for f in folder.iterdir() if f.is_file()]
    return {band: folder / name for band, name in band_files(names).items()}


def _band_assets(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Assets of per-band GeoTIFFs (OSCD, BigEarthNet)."""
    return {
        band: {
            "href": _uri(f),
            "type": stac.GEOTIFF,
            "title": f"{band} ({resolution(band) or '?'} m)",
            "roles": ["data"],
            "gsd": float(resolution(band) or 0) or None,
        }
        for band, f in files.items()
    }


def detect_oscd(path: Path, skipped: list[Skipped]) -> list[ProductRecord] | None:
    if not (
        path.is_dir()
        and (path / "imgs_1").is_dir()
        and (path / "imgs_2").is_dir()
        and (path / "dates.txt").is_file()
    ):
        return None
    city = path.name
    try:
        dates = parse_oscd_dates((path / "dates.txt").read_text(errors="replace"))
    except MetadataError as exc:
        raise Refused(str(exc)) from None
    outline = path / f"{city}.geojson"
    for n in (1, 2):
        if f"date_{n}" not in dates:
            raise Refused(f"dates.txt of OSCD city {city} has no date_{n} line")
    records = []
    for n in (1, 2):
        folder = path / f"imgs_{n}"
        date = dates[f"date_{n}"]
        bands = _band_files(folder)
        if "B02" not in bands:
            raise Refused(f"OSCD folder {folder.name} of {city} has no B02 band file")
        b02 = bands["B02"].name
        when = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
        compact = re.match(r"^T\d{2}[A-Z]{3}_(\d{8}T\d{6})_", b02)
        if compact:
            sensed = utc(dt.datetime.strptime(compact.group(1), "%Y%m%dT%H%M%S"))
            if sensed.date() == date:
                when = sensed
            else:
                log.warning(
                    "%s: file names say %s, dates.txt says %s; using dates.txt",
                    folder,
                    sensed,
                    date,
                )
        try:
            fp = stac.raster_footprint(bands["B02"])
        except Exception as exc:
            raise Refused(f"cannot read the footprint of {b02}: {exc}") from None
        tile = tile_from_name(b02)
        platform = platform_from_name(b02)
        orbit = re.search(r"_A(\d{6})_", b02)
        assets = _band_assets(bands)
        if outline.is_file():
            assets["outline"] = {
                "href": _uri(outline),
                "type": stac.GEOJSON,
                "title": f"OSCD outline of {city}",
                "roles": ["metadata"],
            }
        item_id = f"oscd-{city}-{date:%Y%m%d}"
        props = {
            **fp["proj"],
            "platform": platform if platform != "unknown" else None,
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "s2:mgrs_tile": tile[1:] if tile else None,
            "grid:code": f"MGRS-{tile[1:]}" if tile else None,
            "sat:absolute_orbit": int(orbit.group(1)) if orbit else None,
            "processing:level": "L1C",
            "candela:source": f"OSCD {city} imgs_{n}",
        }
        records.append(
            _record(
                item_id,
                "sentinel-2-l1c",
                when,
                fp["geometry"],
                fp["bbox"],
                _uri(folder),
                props,
                assets,
                platform=platform,
                tile=tile,
                source="oscd",
            )
        )
    return records


# --- Sentinel-2 SAFE -----------------------------------------------------------------------


def _safe_metadata(path: Path) -> tuple[bytes, str, bool] | None:
    """(MTD bytes, product name, is_zip) when ``path`` is a SAFE folder or zip."""
    if path.is_dir():
        for name in MTD_NAMES:
            if (path / name).is_file():
                return (path / name).read_bytes(), path.name, False
        return None
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                members = [
                    m
                    for m in zf.namelist()
                    if m.rsplit("/", 1)[-1] in MTD_NAMES and m.count("/") <= 1
                ]
                if not members:
                    raise Refused("zip file without MTD_MSIL1C.xml or MTD_MSIL2A.xml at its top")
                member = sorted(members, key=len)[0]
                folder = member.rsplit("/", 1)[0] if "/" in member else path.stem
                return zf.read(member), folder, True
        except zipfile.BadZipFile:
            raise Refused("not a readable zip file") from None
    return None


def detect_safe(path: Path, skipped: list[Skipped]) -> list[ProductRecord] | None:
    found = _safe_metadata(path)
    if found is None:
        return None
    xml, name, is_zip = found
    try:
        md = parse_mtd(xml, name)
    except MetadataError as exc:
        raise Refused(str(exc)) from None
    from shapely.geometry import Polygon
    from shapely.geometry.polygon import orient
    from shapely.validation import make_valid

    if not md.footprint:
        raise Refused("the footprint (Global_Footprint/EXT_POS_LIST) is missing")
    poly = Polygon(md.footprint)
    if not poly.is_valid:
        poly = make_valid(poly)
    if poly.is_empty or poly.area == 0:
        raise Refused("the product footprint (EXT_POS_LIST) has no area")
    if poly.geom_type == "Polygon":
        poly = orient(poly, 1.0)  # RFC 7946: exterior ring counter-clockwise
    geometry = stac.geometry_dict(poly)
    item_id = md.product_uri or name.removesuffix(".SAFE")
    tile = tile_from_name(item_id)
    if tile is None:
        tile = next(
            (t for t in (tile_from_name(f.rsplit("/", 1)[-1]) for f in md.image_files) if t), None
        )
    base = None if is_zip else _uri(path)
    assets, bands = band_assets(md, base)
    if is_zip:
        assets["product"] = {
            "href": _uri(path),
            "type": stac.ZIP,
            "title": "SAFE product (zip)",
            "roles": ["data"],
        }
    else:
        mtd_name = "MTD_MSIL1C.xml" if md.level == "L1C" else "MTD_MSIL2A.xml"
        assets["product-metadata"] = {
            "href": _uri(path / mtd_name),
            "type": stac.XML,
            "title": "Product metadata",
            "roles": ["metadata"],
        }
    platform = md.platform if md.platform != "unknown" else platform_from_name(item_id)
    props = {
        "platform": platform if platform != "unknown" else None,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": md.cloud_cover,
        "s2:mgrs_tile": tile[1:] if tile else None,
        "grid:code": f"MGRS-{tile[1:]}" if tile else None,
        "s2:product_uri": f"{item_id}.SAFE",
        "s2:product_type": md.product_type,
        "s2:processing_baseline": md.processing_baseline,
        "s2:datatake_id": md.datatake_id,
        "s2:datatake_type": md.datatake_type,
        "s2:generation_time": md.generation_time.isoformat().replace("+00:00", "Z")
        if md.generation_time
        else None,
        "sat:relative_orbit": md.relative_orbit,
        "sat:absolute_orbit": md.absolute_orbit,
        "sat:orbit_state": md.orbit_direction,
        "processing:level": md.level,
        "processing:version": md.processing_baseline,
        "candela:quantification_value": md.quantification_value,
        "candela:add_offsets": md.add_offsets or None,
        "candela:bands": bands or None,
    }
    bbox = bbox_of(geometry)
    return [
        _record(
            item_id,
            md.collection,
            md.start_time,
            geometry,
            bbox,
            _uri(path),
            props,
            assets,
            platform=platform,
            tile=tile,
            cloud_cover=md.cloud_cover,
            processing_baseline=md.processing_baseline,
            datatake=datatake_key(md.datatake_id),
            source="safe-zip" if is_zip else "safe",
        )
    ]


def band_assets(
    md: SafeMetadata, base_href: str | None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Assets for the band files of a SAFE folder (finest resolution per band) + band names.

    ``base_href`` is the folder's ``file://`` URI; ``None`` (a zip) gives no band assets.
    """
    best = finest_images(md.image_files)
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
        if q and band in BAND_NAMES:
            spec["raster:scale"] = 1.0 / q
            spec["raster:offset"] = md.add_offsets.get(band, 0.0) / q
        assets[band] = spec
    return assets, bands


# --- BigEarthNet ---------------------------------------------------------------------------


def _ben_time(meta: dict[str, Any], *keys: str) -> dt.datetime:
    try:
        return bigearthnet_time(meta, *keys)
    except MetadataError as exc:
        raise Refused(str(exc)) from None


def detect_bigearthnet(path: Path, skipped: list[Skipped]) -> list[ProductRecord] | None:
    if not path.is_dir():
        return None
    meta_file = path / f"{path.name}_labels_metadata.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(f"{meta_file.name} is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise Refused(f"{meta_file.name} is not a JSON object")
    name = path.name
    labels = meta.get("labels") if isinstance(meta.get("labels"), list) else None
    s2 = BIGEARTHNET_S2.match(name)
    s1 = BIGEARTHNET_S1.match(name)
    if s2:
        collection = "sentinel-2-l2a"
        when = _ben_time(meta, "acquisition_date")
        source = str(meta.get("tile_source") or "")
        tile = tile_from_name(source.removesuffix(".SAFE"))
        baseline = baseline_from_name(source)
        rel = re.search(r"_R(\d{3})_", source)
        files = _band_files(path)
        main = "B02"
        assets = _band_assets(files)
        props: dict[str, Any] = {
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "sat:relative_orbit": int(rel.group(1)) if rel else None,
            "processing:level": "L2A",
            "processing:version": baseline,
            "s2:processing_baseline": baseline,
            "bigearthnet:source_product": source or None,
        }
        platform = platform_from_name(name)
    elif s1:
        collection = "sentinel-1-grd"
        when = _ben_time(meta, "acquisition_time", "acquisition_date")
        tile = "T" + s1.group(3)
        baseline = None
        scene = str(meta.get("scene_source") or "")
        fields = scene.split("_")
        files = {}
        for pol in ("VV", "VH"):
            f = path / f"{name}_{pol}.tif"
            if f.is_file():
                files[pol] = f
        main = "VV"
        assets = {
            pol: {
                "href": _uri(f),
                "type": stac.GEOTIFF,
                "title": f"{pol} backscatter (dB)",
                "roles": ["data"],
                "gsd": 10.0,
            }
            for pol, f in files.items()
        }
        absolute = next((int(x) for x in fields if re.fullmatch(r"\d{6}", x)), None)
        props = {
            "constellation": "sentinel-1",
            "instruments": ["c-sar"],
            "sar:instrument_mode": "IW",
            "sar:product_type": "GRD",
            "sar:frequency_band": "C",
            "sar:polarizations": sorted(files, reverse=True) or None,
            "sat:absolute_orbit": absolute,
            "processing:level": "L1",
            "bigearthnet:source_product": scene or None,
            "bigearthnet:corresponding_s2_patch": meta.get("corresponding_s2_patch"),
        }
        platform = platform_from_name(name)
    else:
        raise Refused(
            "has a BigEarthNet labels_metadata.json but its name is neither an S2 "
            "(S2A_MSIL2A_<time>_<r>_<c>) nor an S1 (S1A_IW_GRDH_1SDV_<time>_<tile>_<r>_<c>) patch"
        )
    if main not in files:
        raise Refused(f"BigEarthNet patch {name} has no {main} file")
    try:
        fp = stac.raster_footprint(files[main])
    except Exception as exc:
        raise Refused(f"cannot read the footprint of {files[main].name}: {exc}") from None
    props.update(fp["proj"])
    props.update(
        {
            "platform": platform if platform != "unknown" else None,
            "grid:code": f"MGRS-{tile[1:]}" if tile else None,
            "s2:mgrs_tile": tile[1:] if tile and collection.startswith("sentinel-2") else None,
            "bigearthnet:patch": name,
            "bigearthnet:labels": labels,
            "candela:source": "BigEarthNet",
        }
    )
    return [
        _record(
            name,
            collection,
            when,
            fp["geometry"],
            fp["bbox"],
            _uri(path),
            props,
            assets,
            platform=platform,
            tile=tile,
            processing_baseline=baseline,
            source="bigearthnet",
        )
    ]


# --- STAC items ----------------------------------------------------------------------------


def collection_of(item: dict[str, Any]) -> str | None:
    """One of :data:`COLLECTIONS` for a STAC item from another catalogue, or ``None``."""
    props = item.get("properties") or {}
    name = str(item.get("collection") or "").lower()
    if name in COLLECTIONS:
        return name
    s2 = "sentinel-2" in name or "sentinel-s2" in name or name.startswith("s2")
    s1 = "sentinel-1" in name or "sentinel-s1" in name or name.startswith("s1")
    if s2 and "l2a" in name:
        return "sentinel-2-l2a"
    if s2 and "l1c" in name:
        return "sentinel-2-l1c"
    if s1 and "grd" in name:
        return "sentinel-1-grd"
    ptype = str(props.get("s2:product_type") or "").upper()
    level = str(props.get("processing:level") or "").upper()
    constellation = str(props.get("constellation") or "").lower()
    if ptype.endswith("2A") or constellation == "sentinel-2" and level == "L2A":
        return "sentinel-2-l2a"
    if ptype.endswith("1C") or constellation == "sentinel-2" and level == "L1C":
        return "sentinel-2-l1c"
    if constellation == "sentinel-1" and str(props.get("sar:product_type", "")).upper() == "GRD":
        return "sentinel-1-grd"
    return None


def record_from_item(item: dict[str, Any], default_href: str | None = None) -> ProductRecord:
    """A record for a STAC item dict (asset hrefs must already be absolute).

    The product's href is its ``product`` asset, else its ``self`` link, else ``default_href``
    (the file the item was read from).
    """
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise Refused("STAC item without an id")
    props = item.get("properties") or {}
    collection = collection_of(item)
    if collection is None:
        raise Refused(
            f"STAC item {item_id}: collection {item.get('collection')!r} is not one of "
            f"{', '.join(COLLECTIONS)}"
        )
    when_text = props.get("datetime") or props.get("start_datetime")
    if not when_text:
        raise Refused(f"STAC item {item_id} has no datetime")
    try:
        when = utc(dt.datetime.fromisoformat(str(when_text).replace("Z", "+00:00")))
    except ValueError:
        raise Refused(f"STAC item {item_id}: datetime {when_text!r} is not a date") from None
    geometry = item.get("geometry")
    if not isinstance(geometry, dict):
        raise Refused(f"STAC item {item_id} has no geometry")
    try:
        bbox = bbox_of(geometry)
    except Exception as exc:
        raise Refused(f"STAC item {item_id}: geometry is not valid GeoJSON ({exc})") from None
    tile = (
        normalise_tile(props.get("s2:mgrs_tile"))
        or normalise_tile(props.get("grid:code"))
        or normalise_tile(
            "{}{}{}".format(
                props.get("mgrs:utm_zone", ""),
                props.get("mgrs:latitude_band", ""),
                props.get("mgrs:grid_square", ""),
            )
        )
        or tile_from_name(item_id)
    )
    baseline = (
        props.get("s2:processing_baseline")
        or props.get("processing:version")
        or baseline_from_name(item_id)
        or baseline_from_name(str(props.get("s2:product_uri") or ""))
    )
    cloud = props.get("eo:cloud_cover")
    platform = str(props.get("platform") or platform_from_name(item_id)).lower()
    product = (item.get("assets") or {}).get("product") or {}
    product_href = (
        product.get("href")
        or next(
            (
                link.get("href")
                for link in item.get("links", [])
                if link.get("rel") == "self" and link.get("href")
            ),
            None,
        )
        or default_href
    )
    if not product_href:
        raise Refused(f"STAC item {item_id} says nowhere where the product lives")
    return ProductRecord(
        id=item_id,
        collection=collection,
        datetime=when,
        geometry=geometry,
        bbox=bbox,
        href=product_href,
        item=item,
        platform=platform or "unknown",
        tile=tile,
        cloud_cover=float(cloud) if isinstance(cloud, int | float) else None,
        processing_baseline=str(baseline) if baseline else None,
        datatake=datatake_key(props.get("s2:datatake_id")),
        source="stac",
    )


def _absolute_item(d: dict[str, Any], path: Path) -> dict[str, Any]:
    import pystac

    item = pystac.Item.from_dict(d, preserve_dict=True)
    for asset in item.assets.values():
        if "://" not in asset.href and not asset.href.startswith("/"):
            asset.href = _uri(path.parent / asset.href)
        elif asset.href.startswith("/"):
            asset.href = Path(asset.href).as_uri()
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def detect_stac(path: Path, skipped: list[Skipped]) -> list[ProductRecord] | None:
    if not (path.is_file() and path.suffix.lower() in (".json", ".geojson")):
        return None
    if path.stat().st_size > 200 * 1024 * 1024:
        return None
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("type") == "Feature" and "stac_version" in doc:
        features = [doc]
        single = True
    elif doc.get("type") == "FeatureCollection" and any(
        isinstance(f, dict) and "stac_version" in f for f in doc.get("features", [])
    ):
        features = [f for f in doc["features"] if isinstance(f, dict)]
        single = False
    else:
        return None
    records = []
    for feature in features:
        try:
            self_href = next(
                (
                    link.get("href")
                    for link in feature.get("links") or []
                    if isinstance(link, dict) and link.get("rel") == "self" and link.get("href")
                ),
                None,
            )
            item = _absolute_item(feature, path)
            records.append(record_from_item(item, self_href or _uri(path)))
        except Refused as exc:
            if single:
                raise
            skipped.append(Skipped(path, str(exc)))
        except Exception as exc:
            reason = f"STAC item {feature.get('id', '?')} is not valid: {exc}"
            if single:
                raise Refused(reason) from None
            skipped.append(Skipped(path, reason))
    return records


# --- single GeoTIFF / COG ------------------------------------------------------------------

_DATE_TAGS = ("DATETIME", "ACQUISITION_DATE", "ACQUISITION_TIME", "SENSING_TIME", "START_DATETIME")


def _date_from(tags: dict[str, str], name: str) -> dt.datetime | None:
    upper = {k.upper(): v for k, v in tags.items()}
    for key in _DATE_TAGS:
        if upper.get(key):
            text = upper[key].strip().replace("Z", "+00:00").replace(" ", "T")
            try:
                return utc(dt.datetime.fromisoformat(text))
            except ValueError:
                continue
    m = re.search(r"(?<!\d)(\d{8}T\d{6})(?!\d)", name)
    if m:
        return utc(dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S"))
    m = re.search(r"(?<!\d)(20\d{6})(?!\d)", name)
    if m:
        try:
            return dt.datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=dt.UTC)
        except ValueError:
            return None
    return None


def _collection_from(tags: dict[str, str], name: str) -> str | None:
    upper = {k.upper(): v for k, v in tags.items()}
    for key in ("COLLECTION", "STAC_COLLECTION"):
        if upper.get(key, "").lower() in COLLECTIONS:
            return upper[key].lower()
    n = name.upper()
    if re.search(r"MSIL2A|(^|_)L2A(_|\.|$)", n):
        return "sentinel-2-l2a"
    if re.search(r"MSIL1C|(^|_)L1C(_|\.|$)", n):
        return "sentinel-2-l1c"
    if re.match(r"^S1[A-D]_", n) and "GRD" in n:
        return "sentinel-1-grd"
    return None


def detect_geotiff(path: Path, skipped: list[Skipped]) -> list[ProductRecord] | None:
    if not (path.is_file() and path.suffix.lower() in (".tif", ".tiff")):
        return None
    try:
        fp = stac.raster_footprint(path)
    except Exception as exc:
        raise Refused(f"not a georeferenced raster ({exc})") from None
    tags = fp["info"]["tags"]
    name = path.name
    collection = _collection_from(tags, name)
    if collection is None:
        raise Refused(
            "GeoTIFF whose collection cannot be told: no COLLECTION tag and no "
            "MSIL2A/MSIL1C/S1 GRD in its name"
        )
    when = _date_from(tags, name)
    if when is None:
        raise Refused(
            "GeoTIFF without an acquisition date: no DATETIME/ACQUISITION_DATE tag and no "
            "yyyymmddThhmmss in its name"
        )
    from candela_sdk.cog import is_cog

    cog, _ = is_cog(path)
    upper = {k.upper(): v for k, v in tags.items()}
    tile = normalise_tile(upper.get("TILE") or upper.get("MGRS_TILE")) or tile_from_name(name)
    try:
        cloud = float(upper["CLOUD_COVER"]) if "CLOUD_COVER" in upper else None
    except ValueError:
        cloud = None
    baseline = upper.get("PROCESSING_BASELINE") or baseline_from_name(name)
    platform = platform_from_name(name)
    item_id = path.stem
    props = {
        **fp["proj"],
        "platform": platform if platform != "unknown" else None,
        "eo:cloud_cover": cloud,
        "grid:code": f"MGRS-{tile[1:]}" if tile else None,
        "s2:mgrs_tile": tile[1:] if tile and collection.startswith("sentinel-2") else None,
        "processing:version": baseline,
        "candela:source": "GeoTIFF",
    }
    return [
        _record(
            item_id,
            collection,
            when,
            fp["geometry"],
            fp["bbox"],
            _uri(path),
            props,
            {
                "data": {
                    "href": _uri(path),
                    "type": stac.COG if cog else stac.GEOTIFF,
                    "title": name,
                    "roles": ["data"],
                }
            },
            platform=platform,
            tile=tile,
            cloud_cover=cloud,
            processing_baseline=baseline,
            source="cog" if cog else "geotiff",
        )
    ]


DETECTORS: list[tuple[str, Detector]] = [
    ("OSCD", detect_oscd),
    ("SAFE", detect_safe),
    ("BigEarthNet", detect_bigearthnet),
    ("STAC", detect_stac),
    ("GeoTIFF", detect_geotiff),
]
