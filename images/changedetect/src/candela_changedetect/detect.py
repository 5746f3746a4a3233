"""``candela-changedetect detect``: the pure core of the change detection step.

Inputs are two stacks on the same grid with the same bands (names in the band descriptions);
a pixel is valid when no band is nodata (the stack's nodata, 0 when unset, or not finite) in
either date and both optional masks are non-zero there. Invalid pixels are nodata in every
output. The model is fitted in one or more passes over row blocks, then a last pass scores,
calibrates and thresholds each block and writes it, so memory is bounded by the block size.

Outputs (published together with :func:`candela_sdk.storage.writing_folder`; on failure nothing
appears in the output folder):

``change_probability.tif``  float32 COG, change probability 0–1, nodata −1
``change_mask.tif``         uint8 COG, 1 change (probability ≥ threshold), 0 no change, 255 nodata
``quicklook.png``           changes in red over the after image, legend and scale bar
``statistics.json``         pixel counts, areas (ha), changed share, thresholds, fitted model
``item.json``               STAC item of the outputs with provenance (``derived_from`` the inputs)
``zones.geojson``/``.csv``  changed area and share per zone: the ``--zones`` given, else the 1 km
                            grid cells (local UTM zone) that hold valid pixels

``statistics.json`` also holds the histogram of change probability over every valid pixel and
where the zones come from (``zones_source``): the review app only reads these, it computes none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from candela_changedetect import __version__

if TYPE_CHECKING:
    from candela_changedetect.params import DetectParams

log = logging.getLogger(__name__)

PROBABILITY_NODATA = -1.0
MASK_NODATA = 255
# QGIS's default style of change_mask.tif (read from the .qml beside it): "no change" and
# nodata transparent, change red, so the mask can lie over imagery
MASK_QML = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28" styleCategories="Symbology">
 <pipe>
  <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1">
   <rasterTransparency/>
   <colorPalette>
    <paletteEntry value="0" color="#000000" alpha="0" label="no change"/>
    <paletteEntry value="1" color="#e61919" alpha="255" label="change"/>
    <paletteEntry value="255" color="#000000" alpha="0" label="no data"/>
   </colorPalette>
  </rasterrenderer>
 </pipe>
</qgis>
"""
MAX_POLYGONS = 200_000  # more separate change areas than this: noise, no polygon outputs
# GDAL's palette (a GeoTIFF palette holds no alpha: QGIS reads change_mask.qml, MASK_QML)
MASK_COLORMAP = {0: (0, 0, 0, 0), 1: (230, 25, 25, 255), 255: (0, 0, 0, 0)}
SCORE_NAMES = {
    "cva": "change vector magnitude (standardised reflectances)",
    "irmad": "IRMAD chi-square statistic",
    "encoder": "cross-date translation residual of the self-supervised encoder",
}
HISTOGRAM_BINS = 20
SHORT_SCORE_NAMES = {"cva": "magnitude", "irmad": "chi-square", "encoder": "residual"}
DATETIME_TAGS = ("datetime", "DATETIME", "start_datetime", "ACQUISITION_DATETIME", "acquired")


def _require(uri: str, flag: str) -> None:
    from candela_sdk import storage
    from candela_sdk.errors import InputError

    if not storage.exists(uri):
        raise InputError(f"{flag} not found: {storage.to_uri(uri)}")


def _zones_text(uri: str) -> bytes:
    """The content of the ``--zones`` file, refused now (bad input) if it is not zones GeoJSON
    or a GeoPackage.

    Checked before any computing: a bad zones file must not cost a whole change map.
    """
    from candela_sdk import storage
    from candela_sdk.zones import load_zones

    _require(uri, "--zones")
    data = storage.read_bytes(uri)
    load_zones(data, uri)
    return data


def _check_grid(a: str, b: str, what: str) -> None:
    from candela_sdk.errors import InputError
    from candela_sdk.grids import grids_match

    ok, why = grids_match(a, b)
    if not ok:
        raise InputError(f"grids differ: {why} ({what})")


def band_mapping(before: Any, after: Any) -> tuple[list[str], list[int]]:
    """Band names (before's order) and the 1-based indexes of the same bands in ``after``."""
    from candela_sdk.errors import InputError

    bn = [d or "" for d in before.descriptions]
    an = [d or "" for d in after.descriptions]
    if all(bn) and all(an):
        if len(set(bn)) != len(bn) or len(set(an)) != len(an):
            raise InputError("band sets differ: a stack has duplicate band names")
        if set(bn) != set(an):
            only_b = sorted(set(bn) - set(an))
            only_a = sorted(set(an) - set(bn))
            raise InputError(
                f"band sets differ: only in --before {only_b or 'none'}, "
                f"only in --after {only_a or 'none'}"
            )
        return bn, [an.index(n) + 1 for n in bn]
    if before.count != after.count:
        raise InputError(
            f"band sets differ: --before has {before.count} bands, --after has {after.count}"
        )
    if any(bn) or any(an):
        raise InputError("band sets differ: band names are set in one stack but not in the other")
    log.warning("the stacks have no band names; comparing bands by position")
    return [f"band{i}" for i in range(1, before.count + 1)], list(range(1, before.count + 1))


def _acquired(ds: Any) -> dt.datetime | None:
    tags = ds.tags()
    for key in DATETIME_TAGS:
        if tags.get(key):
            try:
                value = dt.datetime.fromisoformat(tags[key].replace("Z", "+00:00"))
            except ValueError:
                continue
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


def _render_indexes(names: Sequence[str]) -> tuple[list[int], bool]:
    if all(b in names for b in ("B04", "B03", "B02")):
        return [names.index("B04"), names.index("B03"), names.index("B02")], True
    for grey in ("B08", "B04"):
        if grey in names:
            return [names.index(grey)], False
    return [0], False


def run_detect(params: DetectParams) -> dict[str, Any]:
    import rasterio

    from candela_changedetect.blocks import RasterPair
    from candela_changedetect.models import create_model
    from candela_sdk import storage
    from candela_sdk.errors import InputError, NoDataError

    _require(params.before, "--before")
    _require(params.after, "--after")
    _check_grid(params.before, params.after, f"--before {params.before}, --after {params.after}")
    for flag, uri in (("--before-mask", params.before_mask), ("--after-mask", params.after_mask)):
        if uri:
            _require(uri, flag)
            _check_grid(params.before, uri, f"--before and {flag} {uri}")
    zones_text = _zones_text(params.zones) if params.zones else None
    model = create_model(params.model, params.model_options)

    with storage.rasterio_env():
        try:
            bds = rasterio.open(storage.gdal_path(params.before))
            ads = rasterio.open(storage.gdal_path(params.after))
            masks = [
                rasterio.open(storage.gdal_path(u)) if u else None
                for u in (params.before_mask, params.after_mask)
            ]
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"cannot open an input raster: {exc}") from None
        try:
            names, after_idx = band_mapping(bds, ads)
            source = RasterPair(
                bds,
                ads,
                band_names=names,
                after_indexes=after_idx,
                before_mask=masks[0],
                after_mask=masks[1],
                block_rows=params.block_rows,
            )
            log.info(
                "detect: %s vs %s, %dx%d pixels, bands %s, model %s",
                params.before,
                params.after,
                bds.width,
                bds.height,
                ",".join(names),
                params.model,
            )
            model.fit(source)
            auto = params.threshold == "auto"
            threshold = model.auto_threshold() if auto else float(params.threshold)
            grid = {
                "crs": bds.crs,
                "transform": bds.transform,
                "width": bds.width,
                "height": bds.height,
            }
            times = (_acquired(bds), _acquired(ads))
            result = _write_outputs(
                params, model, source, names, grid, threshold, auto, times, zones_text
            )
        finally:
            for ds in (bds, ads, *masks):
                if ds is not None:
                    ds.close()
    if result["statistics"]["valid_pixels"] == 0:  # pragma: no cover - models raise earlier
        raise NoDataError("no valid pixel")
    return result["result"]  # type: ignore[no-any-return]


def _write_outputs(
    params: DetectParams,
    model: Any,
    source: Any,
    names: list[str],
    grid: dict[str, Any],
    threshold: float,
    auto: bool,
    times: tuple[dt.datetime | None, dt.datetime | None],
    zones_text: bytes | None,
) -> dict[str, Any]:
    import rasterio

    from candela_changedetect.calibration import FLAGGED_WARNING_SHARE
    from candela_changedetect.geo import ground_pixel_size_m
    from candela_changedetect.quicklook import QuicklookAccumulator, render
    from candela_sdk import storage
    from candela_sdk.cog import CogSpec, cog_writer
    from candela_sdk.errors import InputError, NoDataError
    from candela_sdk.vector import change_polygons, geojson_text, kml_text, write_geopackage
    from candela_sdk.zones import (
        grid_zones,
        load_zones,
        row_pixel_areas_m2,
        zone_statistics,
        zones_csv,
        zones_geojson,
    )

    crs, transform, width, height = grid["crs"], grid["transform"], grid["width"], grid["height"]
    score_threshold = model.score_at(threshold)
    tags = {
        "candela_model": params.model,
        "candela_threshold": repr(threshold),
        "candela_software": f"candela-changedetect {__version__}",
    }
    prob_spec = CogSpec(
        width=width, height=height, count=1, dtype="float32", crs=crs, transform=transform,
        nodata=PROBABILITY_NODATA, band_names=["change_probability"],
        tags={**tags, "description": "change probability 0-1, nodata -1"},
    )  # fmt: skip
    mask_spec = CogSpec(
        width=width, height=height, count=1, dtype="uint8", crs=crs, transform=transform,
        nodata=MASK_NODATA, band_names=["change_mask"], colormap=MASK_COLORMAP,
        overview_resampling="mode",
        tags={**tags, "description": "1 change, 0 no change, 255 nodata"},
    )  # fmt: skip
    render_idx, true_colour = _render_indexes(names)
    ql = QuicklookAccumulator(height, width, render_idx)
    counts = {"valid": 0, "changed": 0}
    areas = {"valid": 0.0, "changed": 0.0}
    hist_edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    has_area = crs is not None
    out_loc = storage.parse(params.output)

    with storage.writing_folder(params.output) as stage:
        prob_path, mask_path = stage / "change_probability.tif", stage / "change_mask.tif"
        with cog_writer(prob_path, prob_spec) as wp, cog_writer(mask_path, mask_spec) as wm:
            for blk in source.blocks():
                prob = model.probability(model.score(blk))
                valid = blk.valid & np.isfinite(prob)
                change = valid & (prob >= threshold)
                win = blk.window.rasterio()
                wp.write(
                    np.where(valid, prob, PROBABILITY_NODATA).astype(np.float32)[None], window=win
                )
                wm.write(np.where(valid, change, MASK_NODATA).astype(np.uint8)[None], window=win)
                counts["valid"] += int(valid.sum())
                counts["changed"] += int(change.sum())
                hist += np.histogram(prob[valid], bins=hist_edges)[0]
                row_areas = row_pixel_areas_m2(
                    transform, crs, blk.window.row_off, blk.window.height
                )
                if row_areas is not None:
                    areas["valid"] += float(valid.sum(axis=1) @ row_areas)
                    areas["changed"] += float(change.sum(axis=1) @ row_areas)
                ql.add(blk.window.row_off, blk.after, valid, change)
        if counts["valid"] == 0:
            raise NoDataError("no valid pixel is common to both dates (after nodata and masks)")

        valid_ha = areas["valid"] / 1e4 if has_area else None
        changed_ha = areas["changed"] / 1e4 if has_area else None
        fraction = (
            areas["changed"] / areas["valid"]
            if has_area and areas["valid"] > 0
            else counts["changed"] / counts["valid"]
        )
        pixel_area = row_pixel_areas_m2(transform, crs, height // 2, 1)
        warnings = []
        share = counts["changed"] / counts["valid"]
        if auto and share > FLAGGED_WARNING_SHARE:
            warnings.append(
                f"the automatic threshold flags {100 * share:.1f} % of the valid pixels (more "
                f"than {100 * FLAGGED_WARNING_SHARE:.0f} %): urban change between two dates is "
                "usually 0.3-5 %; check clouds, snow, season or misregistration"
            )
            log.warning("detect: %s", warnings[-1])
        statistics: dict[str, Any] = {
            "model": params.model,
            "threshold": threshold,
            "threshold_mode": "auto" if auto else "user",
            "score": SCORE_NAMES.get(params.model, "model score"),
            "score_threshold": score_threshold,
            "pixels": width * height,
            "valid_pixels": counts["valid"],
            "nodata_pixels": width * height - counts["valid"],
            "changed_pixels": counts["changed"],
            "unchanged_pixels": counts["valid"] - counts["changed"],
            "valid_area_ha": valid_ha,
            "changed_area_ha": changed_ha,
            "changed_fraction": fraction,
            "changed_pixel_fraction": counts["changed"] / counts["valid"],
            "pixel_area_m2_at_centre": None if pixel_area is None else float(pixel_area[0]),
            "bands": names,
            "crs": crs.to_string() if crs else None,
            "shape": [height, width],
            "inputs": {
                "before": storage.to_uri(params.before),
                "after": storage.to_uri(params.after),
                "before_mask": storage.to_uri(params.before_mask) if params.before_mask else None,
                "after_mask": storage.to_uri(params.after_mask) if params.after_mask else None,
                "zones": storage.to_uri(params.zones) if params.zones else None,
            },
            "model_fit": model.describe(),
            "histogram": {
                "edges": [round(float(e), 6) for e in hist_edges],
                "counts": [int(c) for c in hist],
                "pixels": int(hist.sum()),
                "of": "change probability of every valid pixel",
            },
            "warnings": warnings,
        }
        names_out = [
            "change_probability.tif",
            "change_mask.tif",
            "quicklook.png",
            "statistics.json",
        ]

        with rasterio.open(mask_path) as mds:
            if zones_text is not None and params.zones:
                given, zones_crs = load_zones(zones_text, params.zones)
                # only the zones the result covers (a valid pixel in them): a department's 538
                # communes over a city-sized result are otherwise 536 empty rows
                kept = [
                    (f, z)
                    for f, z in zip(
                        given,
                        zone_statistics(given, zones_crs, mds, params.block_rows),
                        strict=True,
                    )
                    if z["valid_pixels"]
                ]
                features, zstats = [f for f, _ in kept], [z for _, z in kept]
                statistics["zones_given"] = len(given)
                statistics["zones_outside"] = len(given) - len(kept)
                zones_source = (
                    f"zones given to the run ({params.zones.rstrip('/').rsplit('/', 1)[-1]}): "
                    f"the {len(kept)} of {len(given)} the result covers"
                )
            elif crs is not None:
                cells, zones_crs = grid_zones(crs, mds.bounds)
                kept = [
                    (f, z)
                    for f, z in zip(
                        cells,
                        zone_statistics(cells, zones_crs, mds, params.block_rows),
                        strict=True,
                    )
                    if z["valid_pixels"]
                ]
                features, zstats = [f for f, _ in kept], [z for _, z in kept]
                zones_source = f"1 km grid cells in {zones_crs} (the run was given no zones)"
            else:
                features, zstats = [], []
        if features:
            (stage / "zones.geojson").write_text(zones_geojson(features, zstats, zones_crs))
            (stage / "zones.csv").write_text(zones_csv(features, zstats))
            statistics["zones"] = len(zstats)
            statistics["zones_source"] = zones_source
            names_out += ["zones.geojson", "zones.csv"]

        (stage / "change_mask.qml").write_text(MASK_QML)
        # the changed areas as polygons (area, mean probability), for GIS tools
        try:
            polygons = change_polygons(mask_path, prob_path, max_polygons=MAX_POLYGONS)
        except InputError as exc:  # a noise-like mask: the rasters stand, no polygons
            warnings.append(f"no change polygons: {exc}")
            log.warning("detect: %s", warnings[-1])
        else:
            write_geopackage(stage / "change_polygons.gpkg", polygons)
            (stage / "change_polygons.geojson").write_text(geojson_text(polygons))
            (stage / "change_polygons.kml").write_text(kml_text(polygons))
            statistics["change_polygons"] = len(polygons)
            names_out += ["change_polygons.gpkg", "change_polygons.geojson", "change_polygons.kml"]

        area_text = (
            f"changed {changed_ha:,.1f} ha = {100 * fraction:.2f} % of {valid_ha:,.1f} ha valid"
            if has_area and changed_ha is not None and valid_ha is not None
            else f"changed {counts['changed']} px = {100 * fraction:.2f} % of valid pixels"
        )
        thr_text = f"threshold: change probability >= {threshold:g}" + (
            f" ({SHORT_SCORE_NAMES.get(params.model, 'score')} >= {score_threshold:.4g})"
            if score_threshold is not None
            else ""
        )
        img = render(
            ql,
            title=f"Change detection ({params.model}) {_date_span(times)}",
            lines=[area_text, thr_text, f"1 quicklook pixel = {ql.k}x{ql.k} raster pixels"],
            pixel_size_m=ground_pixel_size_m(transform, crs, height),
            true_colour=true_colour,
        )
        img.save(stage / "quicklook.png", optimize=True)
        (stage / "statistics.json").write_text(json.dumps(statistics, indent=2, default=str))

        outputs = {
            n.split(".")[0]
            if not n.startswith(("zones", "change_polygons"))
            else n.replace(".", "_"): out_loc.join(n).uri
            for n in names_out
        }
        outputs["item"] = out_loc.join("item.json").uri
        item = _stac_item(params, statistics, outputs, prob_path, times)
        (stage / "item.json").write_text(json.dumps(item, indent=2))

    result = {
        "outputs": outputs,
        "threshold": threshold,
        "score_threshold": score_threshold,
        "changed_area_ha": changed_ha,
        "changed_fraction": fraction,
        "changed_pixels": counts["changed"],
        "valid_pixels": counts["valid"],
        "model": params.model,
    }
    return {"result": result, "statistics": statistics}


def _date_span(times: tuple[dt.datetime | None, dt.datetime | None]) -> str:
    if times[0] and times[1]:
        return f"{times[0].date()} -> {times[1].date()}"
    return ""


def _stac_item(
    params: DetectParams,
    statistics: dict[str, Any],
    outputs: dict[str, str],
    footprint: Path,
    times: tuple[dt.datetime | None, dt.datetime | None],
) -> dict[str, Any]:
    from candela_sdk import stac, storage

    inputs = [storage.to_uri(params.before), storage.to_uri(params.after)]
    inputs += [storage.to_uri(u) for u in (params.before_mask, params.after_mask) if u]
    digest = hashlib.sha1(
        json.dumps(
            # the output is part of it: each run publishes its own item (its own prefix)
            [inputs, params.model_dump(mode="json")],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:12]
    media = {
        ".tif": stac.COG_MEDIA_TYPE,
        ".png": "image/png",
        ".json": "application/json",
        ".geojson": "application/geo+json",
        ".csv": "text/csv",
        ".gpkg": "application/geopackage+sqlite3",
        ".kml": "application/vnd.google-earth.kml+xml",
    }
    roles = {
        "change_probability": ["data"],
        "change_mask": ["data"],
        "quicklook": ["overview", "visual"],
    }
    titles = {
        "change_probability": "Change probability (float32 0-1, nodata -1)",
        "change_mask": "Change mask (1 change, 0 no change, 255 nodata)",
        "quicklook": "Quicklook: changes in red over the after image",
        "statistics": "Change statistics",
        "zones_geojson": "Changed share per zone (GeoJSON)",
        "zones_csv": "Changed share per zone (CSV)",
        "change_polygons_gpkg": "Changed areas as polygons: area, mean probability (GeoPackage)",
        "change_polygons_geojson": "Changed areas as polygons (GeoJSON)",
        "change_polygons_kml": "Changed areas as polygons (KML)",
    }
    assets = {
        key: {
            "href": href,
            "type": media.get(Path(href).suffix),
            "title": titles.get(key, key),
            "roles": roles.get(key, ["metadata"]),
        }
        for key, href in outputs.items()
        if key != "item"
    }
    start, end = times
    have_span = start is not None and end is not None
    return stac.make_item(
        item_id=f"changedetect-{params.model}-{digest}",
        footprint_of=str(footprint),
        datetime=None if have_span else dt.datetime.now(dt.UTC),
        start=min(start, end) if have_span else None,  # type: ignore[type-var]
        end=max(start, end) if have_span else None,  # type: ignore[type-var]
        assets=assets,
        properties={
            "candela:model": params.model,
            "candela:parameters": params.model_dump(mode="json"),
            "candela:model_fit": statistics["model_fit"],
            "candela:model_digest": (statistics["model_fit"].get("registered") or {}).get("sha256"),
            "candela:threshold": statistics["threshold"],
            "candela:changed_area_ha": statistics["changed_area_ha"],
            "candela:changed_fraction": statistics["changed_fraction"],
            "candela:valid_pixels": statistics["valid_pixels"],
        },
        derived_from=inputs,
        software={"candela-changedetect": __version__},
    )
