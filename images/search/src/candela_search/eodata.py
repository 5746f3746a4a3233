"""Put catalogued products into an S3 bucket in the CREODIAS / CDSE ``eodata`` key layout.

On CREODIAS and the Copernicus Data Space Ecosystem every product is a prefix of the ``eodata``
bucket: ``Sentinel-2/MSI/L1C/2016/05/04/<product>.SAFE/…``, ``Sentinel-2/MSI/L2A/…``,
``Sentinel-1/SAR/GRD/…`` (acquisition date, UTC). :func:`mirror` uploads local products under
that layout (each file atomically, through :mod:`candela_sdk.storage`) and returns their records
with every ``file://`` href rewritten to its ``s3://`` key, ready for ``catalog.add``: the
catalogue then points at the object store and readers open the bands in place (GDAL
``/vsis3/``).

Key of each product: ``<root>/<mission>/<instrument>/<level>/<yyyy>/<mm>/<dd>/<name>/`` where
``name`` is the product's folder name (``….SAFE``, a BigEarthNet patch). OSCD samples are band
folders (``<city>/imgs_N``) read with their ``dates.txt``; they keep that shape under the
product id: ``…/<id>/imgs_N/…`` plus ``…/<id>/dates.txt``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from candela_sdk import storage
from candela_sdk.errors import InputError
from candela_search.records import ProductRecord

log = logging.getLogger(__name__)

COLLECTION_PREFIX = {
    "sentinel-2-l1c": "Sentinel-2/MSI/L1C",
    "sentinel-2-l2a": "Sentinel-2/MSI/L2A",
    "sentinel-1-grd": "Sentinel-1/SAR/GRD",
}


def product_prefix(record: ProductRecord, root: str = "s3://eodata") -> str:
    """The URI prefix (no trailing slash) the product lives under in the eodata layout."""
    try:
        coll = COLLECTION_PREFIX[record.collection]
    except KeyError:
        raise InputError(f"no eodata layout for collection {record.collection!r}") from None
    day = record.datetime.strftime("%Y/%m/%d")
    local = Path(storage.parse(record.href).path)
    name = record.id if record.source == "oscd" else local.name
    return f"{root.rstrip('/')}/{coll}/{day}/{name}"


def _files_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def mirror(records: Iterable[ProductRecord], root: str = "s3://eodata") -> list[ProductRecord]:
    """Upload each product under ``root`` in the eodata layout; return re-pointed records.

    Only local (``file://``) products are uploaded; a record already on S3 is returned as is.
    """
    out: list[ProductRecord] = []
    for rec in records:
        loc = storage.parse(rec.href)
        if loc.scheme != "file":
            out.append(rec)
            continue
        src = Path(loc.path)
        prefix = product_prefix(rec, root)
        mapping: dict[str, str] = {}  # local file/folder URI -> S3 URI
        if rec.source == "oscd":
            # <city>/imgs_N + <city>/dates.txt  ->  <prefix>/imgs_N/… + <prefix>/dates.txt
            dst_folder = f"{prefix}/{src.name}"
            mapping[src.as_uri()] = dst_folder
            dates = src.parent / "dates.txt"
            if dates.is_file():
                storage.upload_file(dates, f"{prefix}/dates.txt")
        else:
            dst_folder = prefix
            mapping[src.as_uri()] = prefix
        files = _files_below(src) if src.is_dir() else [src]
        for f in files:
            rel = f.relative_to(src).as_posix() if src.is_dir() else f.name
            mapping[f.as_uri()] = f"{dst_folder}/{rel}" if src.is_dir() else f"{prefix}/{f.name}"
        with ThreadPoolExecutor(max_workers=8) as pool:
            targets = [mapping[f.as_uri()] for f in files]
            list(pool.map(storage.upload_file, files, targets))
        item = copy.deepcopy(rec.item)
        for asset in (item.get("assets") or {}).values():
            href = asset.get("href", "")
            if href in mapping:
                asset["href"] = mapping[href]
            elif href.startswith("file://"):
                # a file beside the product (an outline): copied next to it
                local = Path(storage.parse(href).path)
                if local.is_file():
                    dst = f"{prefix}/{local.name}"
                    storage.upload_file(local, dst)
                    asset["href"] = dst
        for link in item.get("links") or []:
            if link.get("href") in mapping:
                link["href"] = mapping[link["href"]]
        new_href = mapping[src.as_uri()]
        props = item.setdefault("properties", {})
        props["candela:mirrored_from"] = rec.href
        out.append(dataclasses.replace(rec, href=new_href, item=item))
        log.info("mirrored %s to %s (%d files)", rec.id, new_href, len(files))
    return out


__all__ = ["COLLECTION_PREFIX", "mirror", "product_prefix"]
