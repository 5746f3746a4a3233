"""``candela-fusion classify``: land cover from a Sentinel-2 stack and a Sentinel-1 scene.

Every check that can refuse the input runs before any pixel is computed (model, class table,
zones, optical bands, radar polarisations and unit, acquisition dates within the window, grids
overlapping, mask on the optical grid). The radar is resampled onto the optical (B02) grid
(:func:`candela_sdk.sentinel1.to_grid`, co-registration reported); inference runs tile by tile
with a margin of context; the outputs are published together (nothing appears on failure):

``landcover.tif``   uint8 COG, class values of the class table, colour table, nodata 255
``confidence.tif``  uint8 COG, one band per class: probability in percent, nodata 255
``source.tif``      uint8 COG, which data classified the pixel: 1 radar, 2 optical,
                    3 optical + radar, 255 not classified
``classes.json``    the class table (value, name, colour, BigEarthNet-19 and CORINE codes)
``quicklook.png``   the land-cover map and the source map with their legends
``statistics.json`` class areas, source shares, dates, co-registration, model
``zones.geojson``/``.csv``  class areas per zone (the ``--zones`` given, else 1 km cells)
``item.json``       STAC item (classification and mlm extensions)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from candela_fusion import __version__
from candela_fusion.classes import NODATA, ClassTable, check_matches, from_json
from candela_fusion.nets import MARGIN
from candela_fusion.predict import SOURCE_COLORS, SOURCES, predict

if TYPE_CHECKING:
    from candela_fusion.params import ClassifyParams

log = logging.getLogger(__name__)

CLASSIFICATION_EXT = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
MLM_EXT = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
DATETIME_TAGS = ("ACQUISITION_DATETIME", "datetime", "DATETIME", "start_datetime")


def _time(text: str | None, what: str) -> dt.datetime | None:
    from candela_sdk.errors import InputError

    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{what} {text!r} is not an ISO date/time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _class_table(uri_or_name: str) -> ClassTable:
    from candela_sdk import storage

    if uri_or_name.strip().startswith("{") or uri_or_name in ("ben19", "water"):
        return from_json(uri_or_name)
    from candela_sdk.errors import InputError

    if not storage.exists(uri_or_name):
        raise InputError(f"--classes {uri_or_name}: not ben19, water or an existing JSON file")
    return from_json(json.loads(storage.read_text(uri_or_name)))


def run_classify(params: ClassifyParams) -> dict[str, Any]:
    import rasterio

    from candela_fusion import data as fdata
    from candela_fusion.models import load
    from candela_sdk import storage
    from candela_sdk.errors import InputError, NoDataError
    from candela_sdk.sentinel1 import TargetGrid, check_pair, read_s1, to_grid
    from candela_sdk.zones import load_zones

    for flag, uri in (
        ("--optical", params.optical),
        ("--radar", params.radar),
        ("--optical-mask", params.optical_mask),
        ("--zones", params.zones),
    ):
        if uri and not storage.exists(uri):
            raise InputError(f"{flag} not found: {storage.to_uri(uri)}")
    bundle = load(params.model)
    if bundle.task != "pixel":
        raise InputError(f"model {params.model!r} is a patch classifier, not a pixel model")
    if params.classes:
        check_matches(_class_table(params.classes), bundle.classes, params.model)
    zones_data = None
    if params.zones:
        zones_data = storage.read_bytes(params.zones)
        load_zones(zones_data, params.zones)

    with storage.rasterio_env():
        try:
            ods = rasterio.open(storage.gdal_path(params.optical))
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"cannot open --optical: {exc}") from None
        with ods:
            band_idx = fdata.optical_bands(list(ods.descriptions), ods.count, params.optical)
            grid = TargetGrid(ods.crs, ods.transform, ods.width, ods.height)
            tags = ods.tags()
            s2_time = _time(params.optical_datetime, "--optical-datetime") or next(
                (_time(tags[k], k) for k in DATETIME_TAGS if tags.get(k)), None
            )
            optical = fdata.reflectance(ods, indexes=band_idx)
        scene = read_s1(params.radar)  # polarisations and unit checked here
        s1_time = _time(params.radar_datetime, "--radar-datetime") or scene.acquired
        days_apart = check_pair(s2_time, s1_time, params.window_days)
        radar, coreg = to_grid(scene, grid, params.speckle)  # refuses no overlap
        valid = None
        if params.optical_mask:
            from candela_sdk.grids import grids_match

            ok, why = grids_match(params.optical, params.optical_mask)
            if not ok:
                raise InputError(f"--optical-mask is not on the --optical grid: {why}")
            with rasterio.open(storage.gdal_path(params.optical_mask)) as mds:
                valid = fdata.validity_from(mds.read(1), params.optical_mask_kind)
    if s2_time is None or s1_time is None:
        log.warning(
            "an acquisition date is unknown: the %g-day window is not checked", params.window_days
        )
    radar = np.moveaxis(radar, 0, -1)
    for note in coreg["notes"]:
        log.info("radar: %s", note)
    log.info(
        "classify: %dx%d px, model %s, S2 %s, S1 %s (%s days apart), co-registration %s",
        grid.width,
        grid.height,
        params.model,
        s2_time,
        s1_time,
        days_apart,
        {k: coreg[k] for k in ("reprojected", "overlap_fraction") if k in coreg},
    )

    n = len(bundle.classes.classes)
    h, w = grid.height, grid.width
    landcover = np.full((h, w), NODATA, np.uint8)
    confidence = np.full((n, h, w), NODATA, np.uint8)
    source = np.full((h, w), NODATA, np.uint8)
    t = params.tile
    for y in range(0, h, t):
        for x in range(0, w, t):
            y0, x0 = max(0, y - MARGIN), max(0, x - MARGIN)
            y1, x1 = min(h, y + t + MARGIN), min(w, x + t + MARGIN)
            probs, src = predict(
                bundle,
                optical[y0:y1, x0:x1],
                radar[y0:y1, x0:x1],
                None if valid is None else valid[y0:y1, x0:x1],
            )
            ys = slice(y - y0, y - y0 + min(t, h - y))
            xs = slice(x - x0, x - x0 + min(t, w - x))
            p, s = probs[ys, xs], src[ys, xs]
            done = s != NODATA
            out = slice(y, y + min(t, h - y)), slice(x, x + min(t, w - x))
            landcover[out] = np.where(done, p.argmax(-1), NODATA)
            confidence[:, out[0], out[1]] = np.where(
                done[None], np.round(np.moveaxis(p, -1, 0) * 100), NODATA
            ).astype(np.uint8)
            source[out] = s
    if not (source != NODATA).any():
        raise NoDataError("no pixel could be classified (no valid optical or radar pixel)")
    return _write_outputs(
        params,
        bundle,
        grid,
        landcover,
        confidence,
        source,
        s2_time,
        s1_time,
        days_apart,
        coreg,
        zones_data,
    )


def _write_outputs(
    params: ClassifyParams,
    bundle: Any,
    grid: Any,
    landcover: np.ndarray,
    confidence: np.ndarray,
    source: np.ndarray,
    s2_time: dt.datetime | None,
    s1_time: dt.datetime | None,
    days_apart: float | None,
    coreg: dict[str, Any],
    zones_data: bytes | None,
) -> dict[str, Any]:
    import rasterio

    from candela_sdk import storage
    from candela_sdk.cog import CogSpec, write_cog
    from candela_sdk.stac import package_software
    from candela_sdk.zones import (
        grid_zones,
        load_zones,
        row_pixel_areas_m2,
        zone_class_areas,
        zones_csv,
        zones_geojson,
    )

    table: ClassTable = bundle.classes
    h, w = landcover.shape
    common = dict(width=w, height=h, crs=grid.crs, transform=grid.transform, dtype="uint8")
    when = (s2_time or s1_time or dt.datetime.now(dt.UTC)).isoformat()
    out_loc = storage.parse(params.output)

    # class and source areas
    areas = {c.value: 0.0 for c in table.classes}
    pixels = {c.value: int((landcover == c.value).sum()) for c in table.classes}
    has_area = grid.crs is not None
    for r in range(0, h, 512):
        hh = min(512, h - r)
        row_areas = row_pixel_areas_m2(grid.transform, grid.crs, r, hh)
        if row_areas is None:
            has_area = False
            break
        for c in table.classes:
            areas[c.value] += float((landcover[r : r + hh] == c.value).sum(axis=1) @ row_areas)
    classified = int((source != NODATA).sum())
    statistics: dict[str, Any] = {
        "model": params.model,
        "model_kind": bundle.kind,
        "class_table": table.name,
        "classes": [
            {
                "value": c.value,
                "name": c.name,
                "pixels": pixels[c.value],
                "area_ha": round(areas[c.value] / 1e4, 4) if has_area else None,
                "share": round(pixels[c.value] / classified, 6) if classified else None,
            }
            for c in table.classes
        ],
        "pixels": h * w,
        "classified_pixels": classified,
        "source_pixels": {SOURCES[v]: int((source == v).sum()) for v in SOURCES},
        "optical_datetime": s2_time.isoformat() if s2_time else None,
        "radar_datetime": s1_time.isoformat() if s1_time else None,
        "days_apart": days_apart,
        "window_days": params.window_days,
        "coregistration": coreg,
        "inputs": {
            "optical": storage.to_uri(params.optical),
            "radar": storage.to_uri(params.radar),
            "optical_mask": storage.to_uri(params.optical_mask) if params.optical_mask else None,
            "optical_mask_kind": params.optical_mask_kind if params.optical_mask else None,
            "zones": storage.to_uri(params.zones) if params.zones else None,
        },
        "crs": grid.crs.to_string() if grid.crs else None,
        "shape": [h, w],
    }

    with storage.writing_folder(params.output) as stage:
        lc_path = stage / "landcover.tif"
        write_cog(
            lc_path,
            landcover[None],
            CogSpec(
                count=1,
                nodata=NODATA,
                band_names=["landcover"],
                colormap=table.colormap(),
                tags={"datetime": when, "CLASS_TABLE": json.dumps(table.to_json())},
                overview_resampling="nearest",
                **common,  # type: ignore[arg-type]
            ),
        )
        write_cog(
            stage / "confidence.tif",
            confidence,
            CogSpec(
                count=len(table.classes),
                nodata=NODATA,
                band_names=[f"p_{c.name}" for c in table.classes],
                tags={"datetime": when, "UNITS": "percent"},
                **common,  # type: ignore[arg-type]
            ),
        )
        write_cog(
            stage / "source.tif",
            source[None],
            CogSpec(
                count=1,
                nodata=NODATA,
                band_names=["source"],
                colormap=dict(SOURCE_COLORS),
                tags={"datetime": when, "VALUES": "1 radar, 2 optical, 3 optical+radar"},
                overview_resampling="nearest",
                **common,  # type: ignore[arg-type]
            ),
        )
        (stage / "classes.json").write_text(json.dumps(table.to_json(), indent=2))
        names_out = ["landcover.tif", "confidence.tif", "source.tif", "classes.json"]

        features: list[dict[str, Any]] = []
        zstats: list[dict[str, Any]] = []
        zones_crs = "EPSG:4326"
        with rasterio.open(lc_path) as cds:
            values = table.values
            if zones_data is not None and params.zones:
                features, zones_crs = load_zones(zones_data, params.zones)
                zstats = zone_class_areas(features, zones_crs, cds, values, NODATA)
                zones_source = f"zones given to the run ({params.zones.rsplit('/', 1)[-1]})"
            elif grid.crs is not None:
                cells, zones_crs = grid_zones(grid.crs, cds.bounds)
                all_stats = zone_class_areas(cells, zones_crs, cds, values, NODATA)
                kept = [(f, z) for f, z in zip(cells, all_stats, strict=True) if z["valid_pixels"]]
                features, zstats = [f for f, _ in kept], [z for _, z in kept]
                zones_source = f"1 km grid cells in {zones_crs} (the run was given no zones)"
        if features:
            flat = [_flat_zone(z, table) for z in zstats]
            (stage / "zones.geojson").write_text(zones_geojson(features, flat, zones_crs))
            (stage / "zones.csv").write_text(zones_csv(features, flat))
            statistics["zones"] = len(flat)
            statistics["zones_source"] = zones_source
            names_out += ["zones.geojson", "zones.csv"]

        from candela_fusion.quicklook import render

        render(landcover, source, table, statistics, params.model).save(
            stage / "quicklook.png", optimize=True
        )
        (stage / "statistics.json").write_text(json.dumps(statistics, indent=2, default=str))
        names_out += ["quicklook.png", "statistics.json"]
        outputs = {
            n.replace(".", "_") if n.startswith("zones") else n.split(".")[0]: out_loc.join(n).uri
            for n in names_out
        }
        outputs["item"] = out_loc.join("item.json").uri
        item = _stac_item(params, bundle, statistics, names_out, lc_path, s2_time, s1_time)
        item["stac_extensions"] = sorted({*item["stac_extensions"], CLASSIFICATION_EXT, MLM_EXT})
        (stage / "item.json").write_text(json.dumps(item, indent=2))
    _ = package_software  # imported for the item (see _stac_item)
    result = {
        "outputs": outputs,
        "model": params.model,
        "classes": statistics["classes"],
        "source_pixels": statistics["source_pixels"],
        "days_apart": days_apart,
        "coregistration": {k: v for k, v in coreg.items() if k != "notes"},
    }
    return result


def _flat_zone(z: dict[str, Any], table: ClassTable) -> dict[str, Any]:
    out: dict[str, Any] = {"zone_id": z["zone_id"], "classified_pixels": z["valid_pixels"]}
    for c in table.classes:
        key = c.name.lower().replace(" ", "_").replace(",", "")
        area = (z.get("class_area_ha") or {}).get(str(c.value))
        out[f"area_ha_{key}"] = area
        out[f"pixels_{key}"] = z["class_pixels"][str(c.value)]
    return out


def _stac_item(
    params: ClassifyParams,
    bundle: Any,
    statistics: dict[str, Any],
    names: list[str],
    footprint_of: Path,
    s2_time: dt.datetime | None,
    s1_time: dt.datetime | None,
) -> dict[str, Any]:
    from candela_sdk import storage
    from candela_sdk.stac import GEOTIFF, make_item, package_software

    table: ClassTable = bundle.classes
    cog = GEOTIFF + "; profile=cloud-optimized"
    source_classes = [
        {
            "value": v,
            "name": SOURCES[v].replace("+", "-"),
            "description": f"classified from {SOURCES[v]}",
        }
        for v in (1, 2, 3)
    ]
    assets: dict[str, dict[str, Any]] = {
        "landcover": {
            "href": "./landcover.tif",
            "type": cog,
            "title": f"Land cover ({table.name} classes)",
            "roles": ["data", "classification"],
            "classification:classes": table.stac_classes(),
            "nodata": NODATA,
        },
        "confidence": {
            "href": "./confidence.tif",
            "type": cog,
            "title": "Per-class probability (percent), one band per class",
            "roles": ["data"],
            "nodata": NODATA,
        },
        "source": {
            "href": "./source.tif",
            "type": cog,
            "title": "Source of each pixel's class (1 radar, 2 optical, 3 optical+radar)",
            "roles": ["data", "classification"],
            "classification:classes": source_classes,
            "nodata": NODATA,
        },
        "classes": {"href": "./classes.json", "type": "application/json", "roles": ["metadata"]},
        "quicklook": {
            "href": "./quicklook.png",
            "type": "image/png",
            "title": "Land cover and source with legends",
            "roles": ["overview", "visual"],
        },
        "statistics": {
            "href": "./statistics.json",
            "type": "application/json",
            "roles": ["metadata"],
        },
    }
    if "zones.geojson" in names:
        assets["zones"] = {
            "href": "./zones.geojson",
            "type": "application/geo+json",
            "title": "Class areas per zone",
            "roles": ["data"],
        }
    base = storage.parse(params.output)
    for asset in assets.values():  # absolute, as the other services' items
        asset["href"] = base.join(asset["href"].removeprefix("./")).uri
    meta = bundle.metadata
    mlm = {
        "mlm:name": f"candela-fusion-{params.model}",
        "mlm:architecture": f"two-encoder CNN, feature fusion ({bundle.kind})"
        if bundle.kind == "fused"
        else f"CNN ({bundle.kind})",
        "mlm:tasks": ["semantic-segmentation"],
        "mlm:framework": "Keras",
        "mlm:framework_version": _keras_version(),
        "mlm:accelerator": "amd64",
        "mlm:input": [
            {
                "name": "optical + radar" if bundle.kind == "fused" else bundle.kind,
                "bands": meta.get("bands", []),
                "input": {
                    "shape": [-1, -1, -1, len(meta.get("bands", []))],
                    "dim_order": ["batch", "height", "width", "bands"],
                    "data_type": "float32",
                },
                "norm_type": "z-score",
            }
        ],
        "mlm:output": [
            {
                "name": "landcover",
                "tasks": ["semantic-segmentation"],
                "result": {
                    "shape": [-1, -1, -1, len(table.classes)],
                    "dim_order": ["batch", "height", "width", "classes"],
                    "data_type": "float32",
                },
                "classification:classes": table.stac_classes(),
            }
        ],
    }
    start = min(t for t in (s2_time, s1_time) if t) if (s2_time or s1_time) else None
    end = max(t for t in (s2_time, s1_time) if t) if (s2_time or s1_time) else None
    when = s2_time or dt.datetime.now(dt.UTC)
    # the output is part of the id: each run publishes its own item (its own prefix), so a run
    # never replaces the land cover another run published for the same date
    digest = hashlib.sha1(
        json.dumps([params.model_dump(mode="json")], sort_keys=True).encode()
    ).hexdigest()[:12]
    item = make_item(
        item_id=f"landcover-{params.model}-{when:%Y%m%dT%H%M%S}-{digest}",
        footprint_of=str(footprint_of),
        datetime=None if start and end and start != end else (s2_time or dt.datetime.now(dt.UTC)),
        start=start if start and end and start != end else None,
        end=end if start and end and start != end else None,
        assets=assets,
        properties={
            "candela:product": "landcover",
            "candela:class_table": table.name,
            "candela:model": params.model,
            "candela:days_apart": statistics["days_apart"],
            **mlm,
        },
        derived_from=[storage.to_uri(params.optical), storage.to_uri(params.radar)],
        software=package_software("candela-fusion", "candela-sdk", "tensorflow", "keras"),
    )
    item["properties"].setdefault("processing:software", {})["candela-fusion"] = __version__
    return item


def _keras_version() -> str:
    import keras

    return str(keras.__version__)
