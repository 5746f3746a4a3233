"""XYZ map tiles (Web Mercator, 256 px PNG) of a run's COGs with rio-tiler, and their legends.

Layers: ``probability`` (change probability 0–1, colour ramp, transparent where low and where
nodata), ``mask`` (change in red, the rest transparent), ``before`` / ``after`` (true-colour
B04/B03/B02 of the input stacks with a 2–98 % stretch computed once per stack). A tile outside
the raster is a transparent PNG (200), never an error.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache
from typing import Any

import numpy as np

# imported once, at plugin load: a first import from two tile threads at once trips over
# rio_tiler.io's partially initialised module
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader

from candela.web_errors import BadRequest, Unprocessable
from candela_sdk.storage import version_stamp

log = logging.getLogger(__name__)

TILE_SIZE = 256
LAYERS = ("probability", "mask", "before", "after")
RGB_BANDS = ("B04", "B03", "B02")

# change probability: yellow → orange → red → dark red; alpha rises with the probability so
# the imagery shows through where nothing changed
_STOPS = [
    (0.0, (255, 255, 178), 0),
    (0.25, (254, 204, 92), 90),
    (0.5, (253, 141, 60), 190),
    (0.75, (240, 59, 32), 235),
    (1.0, (189, 0, 38), 255),
]


def _ramp() -> dict[int, tuple[int, int, int, int]]:
    cmap: dict[int, tuple[int, int, int, int]] = {}
    for i in range(256):
        v = i / 255
        for (v0, c0, a0), (v1, c1, a1) in zip(_STOPS, _STOPS[1:], strict=False):
            if v0 <= v <= v1:
                t = (v - v0) / (v1 - v0)
                rgb = [round(c0[k] + t * (c1[k] - c0[k])) for k in range(3)]
                cmap[i] = (rgb[0], rgb[1], rgb[2], round(a0 + t * (a1 - a0)))
                break
    return cmap


PROBABILITY_CMAP = _ramp()
MASK_CMAP: dict[int, tuple[int, int, int, int]] = {i: (0, 0, 0, 0) for i in range(256)}
MASK_CMAP[1] = (230, 0, 60, 255)

LEGENDS: dict[str, dict[str, Any]] = {
    "probability": {
        "title": "Change probability",
        "type": "ramp",
        "stops": [
            {"value": v, "color": "#{:02x}{:02x}{:02x}".format(*c), "alpha": round(a / 255, 3)}
            for v, c, a in _STOPS
        ],
        "nodata": "transparent",
    },
    "mask": {
        "title": "Change mask",
        "type": "classes",
        "classes": [
            {"value": 1, "label": "change", "color": "#e6003c"},
            {"value": 0, "label": "no change (transparent)", "color": "transparent"},
            {"value": 255, "label": "no data (transparent)", "color": "transparent"},
        ],
    },
    "before": {
        "title": "Before: true colour (B04, B03, B02), 2-98 % stretch shared by both dates",
        "type": "rgb",
    },
    "after": {
        "title": "After: true colour (B04, B03, B02), 2-98 % stretch shared by both dates",
        "type": "rgb",
    },
}


@lru_cache(maxsize=1)
def empty_tile() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (TILE_SIZE, TILE_SIZE), (0, 0, 0, 0)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def check_tile(z: int, x: int, y: int) -> None:
    if not 0 <= z <= 24:
        raise BadRequest(f"zoom {z} out of range 0-24")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise BadRequest(f"tile {z}/{x}/{y} does not exist (x and y must be in 0-{n - 1})")


def rgb_indexes(descriptions: tuple[str | None, ...]) -> tuple[int, int, int]:
    names = [d or "" for d in descriptions]
    try:
        return tuple(names.index(b) + 1 for b in RGB_BANDS)  # type: ignore[return-value]
    except ValueError:
        raise Unprocessable(
            f"the stack has no {'/'.join(RGB_BANDS)} bands (bands: {', '.join(names)})"
        ) from None


@lru_cache(maxsize=64)
def rgb_stretch(
    paths: tuple[str, ...], stamps: tuple[float, ...]
) -> list[tuple[tuple[int, int, int], list[tuple[float, float]]]]:
    """Per stack of ``paths``: band indexes of B04/B03/B02; and one 2–98 % range per colour
    shared by all the stacks (overviews of both dates pooled), so that before and after are
    drawn with the same stretch and a brightness difference on the map is a difference in the
    data, not in the display."""
    from candela_sdk import storage

    indexes: list[tuple[int, int, int]] = []
    pooled: list[list[np.ndarray]] = [[], [], []]
    for path in paths:
        with storage.rasterio_env(), Reader(path) as src:
            idx = rgb_indexes(tuple(src.dataset.descriptions))
            img = src.preview(indexes=idx, max_size=1024)
        indexes.append(idx)
        valid = ~np.ma.getmaskarray(img.array).any(axis=0)
        for b in range(3):
            vals = np.asarray(img.array[b])[valid]
            pooled[b].append(vals[np.isfinite(vals) & (vals > 0)])
    ranges = []
    for b in range(3):
        vals = np.concatenate(pooled[b]) if pooled[b] else np.empty(0)
        if vals.size == 0:
            ranges.append((0.0, 1.0))
            continue
        lo, hi = np.percentile(vals, [2, 98])
        ranges.append((float(lo), float(hi if hi > lo else lo + 1)))
    return [(idx, ranges) for idx in indexes]


def render_tile(
    uri: str,
    layer: str,
    z: int,
    x: int,
    y: int,
    pair: tuple[str, str] | None = None,
    threshold: float | None = None,
) -> bytes:
    """One PNG tile of ``layer`` from the COG at ``uri``. ``before``/``after``: ``pair`` (the
    before and after stacks) gives the shared stretch. ``mask`` with ``threshold``: ``uri`` is
    the probability, drawn as the mask it gives at that threshold."""
    from candela_sdk import storage

    check_tile(z, x, y)
    path = storage.gdal_path(uri)
    with storage.rasterio_env(), Reader(path) as src:
        if not src.tile_exists(x, y, z):
            return empty_tile()
        try:
            if layer in ("before", "after"):
                stacks = pair or (uri,)
                paths = tuple(storage.gdal_path(u) for u in stacks)
                stretched = rgb_stretch(paths, tuple(version_stamp(u) for u in stacks))
                idx, ranges = stretched[paths.index(path)] if path in paths else stretched[0]
                img = src.tile(x, y, z, tilesize=TILE_SIZE, indexes=idx)
                img.rescale(in_range=ranges, out_range=[(0, 255)])
                return bytes(img.render(img_format="PNG"))
            img = src.tile(x, y, z, tilesize=TILE_SIZE, indexes=1)
        except TileOutsideBounds:
            return empty_tile()
    if layer == "mask" and threshold is not None:
        prob = np.asarray(img.array[0], dtype="float32")
        nodata = np.ma.getmaskarray(img.array)[0]
        classes = np.where(prob >= threshold, 1, 0).astype("uint8")
        img.array = np.ma.MaskedArray(classes[np.newaxis], mask=nodata[np.newaxis])
        return bytes(img.render(img_format="PNG", colormap=MASK_CMAP))
    if layer == "probability":
        img.rescale(in_range=[(0.0, 1.0)], out_range=[(0, 255)])
        return bytes(img.render(img_format="PNG", colormap=PROBABILITY_CMAP))
    # mask: values are the classes themselves
    img.array = np.ma.MaskedArray(
        np.asarray(img.array).astype("uint8"), mask=np.ma.getmaskarray(img.array)
    )
    return bytes(img.render(img_format="PNG", colormap=MASK_CMAP))


def legend_png(layer: str) -> bytes:
    """A small colour bar (probability) or class swatches (mask) as PNG."""
    from PIL import Image, ImageDraw

    width = 220 if layer in ("probability", "mask") else 12 + 6 * len(LEGENDS[layer]["title"])
    img = Image.new("RGBA", (width, 46), (255, 255, 255, 230))
    d = ImageDraw.Draw(img)
    if layer == "probability":
        for i in range(200):
            r, g, b, a = PROBABILITY_CMAP[round(i * 255 / 199)]
            d.line([(10 + i, 6), (10 + i, 24)], fill=(r, g, b, max(a, 40)))
        for v in (0.0, 0.5, 1.0):
            xx = 10 + round(v * 199)
            d.line([(xx, 24), (xx, 28)], fill=(0, 0, 0, 255))
            d.text((max(0, xx - 8), 30), f"{v:g}", fill=(0, 0, 0, 255))
    elif layer == "mask":
        d.rectangle([10, 10, 30, 26], fill=(230, 0, 60, 255), outline=(0, 0, 0, 255))
        d.text((38, 12), "change", fill=(0, 0, 0, 255))
    else:
        d.text((6, 16), LEGENDS[layer]["title"], fill=(0, 0, 0, 255))  # whole title
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def thumbnail(uri: str, pair: tuple[str, str], max_size: int = 480) -> bytes:
    """A PNG of a whole before/after stack (``uri``, one of ``pair``), with the pair's shared
    stretch (as the map tiles), for the printable report."""
    from candela_sdk import storage

    paths = tuple(storage.gdal_path(u) for u in pair)
    path = storage.gdal_path(uri)
    stretched = rgb_stretch(paths, tuple(version_stamp(u) for u in pair))
    idx, ranges = stretched[paths.index(path)] if path in paths else stretched[0]
    with storage.rasterio_env(), Reader(path) as src:
        img = src.preview(indexes=idx, max_size=max_size)
    img.rescale(in_range=ranges, out_range=[(0, 255)])
    return bytes(img.render(img_format="PNG"))


def location_map(footprint: dict[str, Any], aoi: dict[str, Any] | None, size: int = 480) -> bytes:
    """A PNG locating the result: the requested area (blue outline) and the result's footprint
    (red, filled), lon/lat with the longitudes scaled by cos(latitude), a 10 % margin, and the
    corner coordinates written in. Drawn offline (no basemap): it locates, the map judges."""
    import math

    from PIL import Image, ImageDraw
    from shapely.geometry import shape

    foot = shape(footprint)
    area = shape(aoi) if aoi else None
    both = foot.union(area) if area is not None else foot
    w, s, e, n = both.bounds
    kx = math.cos(math.radians((s + n) / 2))
    span = max((e - w) * kx, n - s, 1e-9) * 1.2
    cx, cy = (w + e) / 2, (s + n) / 2
    scale = (size - 40) / span

    def px(lon: float, lat: float) -> tuple[float, float]:
        return (size / 2 + (lon - cx) * kx * scale, size / 2 - (lat - cy) * scale)

    def rings(geom: Any) -> list[list[tuple[float, float]]]:
        polys = list(getattr(geom, "geoms", [geom]))
        return [[px(x, y) for x, y in p.exterior.coords] for p in polys if hasattr(p, "exterior")]

    im = Image.new("RGBA", (size, size), (248, 248, 244, 255))
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for ring in rings(foot):
        draw.polygon(ring, fill=(220, 40, 30, 90), outline=(200, 20, 10, 255), width=2)
    if area is not None:
        for ring in rings(area):
            draw.line([*ring, ring[0]], fill=(30, 80, 200, 255), width=2)
    im = Image.alpha_composite(im, layer)
    text = ImageDraw.Draw(im)
    lo_w, lo_n = cx - span / 2 / kx, cy + span / 2
    lo_e, lo_s = cx + span / 2 / kx, cy - span / 2
    text.text((4, 2), f"{lo_n:.3f}°N {lo_w:.3f}°E", fill=(60, 60, 60, 255))
    text.text((size - 130, size - 14), f"{lo_s:.3f}°N {lo_e:.3f}°E", fill=(60, 60, 60, 255))
    text.rectangle([0, 0, size - 1, size - 1], outline=(150, 150, 150, 255))
    out = io.BytesIO()
    im.convert("RGB").save(out, "PNG")
    return out.getvalue()
