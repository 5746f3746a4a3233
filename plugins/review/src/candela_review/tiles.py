"""How a run's layers are drawn on the review map, and their legends. The tiles themselves are
titiler-core's (``routers/cog``: ``/cog/…/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}.png``);
this module gives them Candela's look through titiler's own parameters:

- ``probability``: ``rescale=0,1`` and the registered colormap ``candela_probability``
  (yellow → dark red, transparent where low and where nodata);
- ``mask``: the registered colormap ``candela_mask`` (change red, the rest transparent); at
  another threshold (the page's slider) the probability through the registered algorithm
  ``candela_threshold`` (``algorithm_params={"threshold": t}``), then the same colormap;
- ``before`` / ``after``: ``bidx`` of B04/B03/B02 and one ``rescale`` per colour, a 2–98 %
  stretch shared by both dates (``rgb_stretch``).

Also the printable report's figures (``thumbnail``, ``location_map``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
from pydantic import Field

# imported once, at plugin load: a first import from two tile threads at once trips over
# rio_tiler.io's partially initialised module
from rio_tiler.colormap import cmap as default_cmap
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from titiler.core.algorithm import BaseAlgorithm
from titiler.core.algorithm import algorithms as default_algorithms
from titiler.core.dependencies import create_colormap_dependency

from candela.web_errors import Unprocessable
from candela_sdk.storage import version_stamp

log = logging.getLogger(__name__)

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


class ChangeAtThreshold(BaseAlgorithm):  # type: ignore[misc]
    """The change mask a threshold gives, from the change probability: 1 where the probability
    is at least ``threshold``, 0 below; nodata stays nodata (transparent)."""

    title: str = "Change at a threshold"
    description: str = "1 where the change probability >= threshold, else 0; nodata kept."
    threshold: float = Field(ge=0.0, le=1.0)

    input_nbands: int = 1
    output_nbands: int = 1
    output_dtype: str = "uint8"
    output_min: Sequence[int] = [0]
    output_max: Sequence[int] = [1]

    def __call__(self, img: ImageData) -> ImageData:
        prob = np.asarray(img.array.data[:1], dtype="float32")
        classes = np.where(prob >= self.threshold, 1, 0).astype("uint8")
        mask = np.ma.getmaskarray(img.array)[:1]
        return ImageData(
            np.ma.MaskedArray(classes, mask=mask),
            assets=img.assets,
            crs=img.crs,
            bounds=img.bounds,
            band_descriptions=["change_mask"],
            metadata=img.metadata,
        )


# titiler's dependencies with Candela's colormaps and algorithm registered (``routers/cog``)
COLORMAPS = default_cmap.register(
    {"candela_probability": PROBABILITY_CMAP, "candela_mask": MASK_CMAP}
)
colormap_dependency = create_colormap_dependency(COLORMAPS)
ALGORITHMS = default_algorithms.register({"candela_threshold": ChangeAtThreshold})  # type: ignore[dict-item]
process_dependency = ALGORITHMS.dependency


def tile_urls(
    cog: str, rgb: dict[str, tuple[tuple[int, int, int], list[tuple[float, float]]]] | None = None
) -> dict[str, str]:
    """titiler tile URL templates (Leaflet's ``{z}/{x}/{y}``) of each layer of a result whose
    titiler endpoints are ``cog`` (with a ``{layer}`` placeholder). ``rgb``: ``before`` /
    ``after`` → band indexes and the shared stretch (``shared_stretch``); without it the
    imagery is drawn with titiler's defaults. ``mask_at``: the mask at a threshold, to which the caller
    appends ``&algorithm_params=`` (URL-encoded JSON ``{"threshold": t}``)."""

    def url(layer: str, query: list[tuple[str, str]]) -> str:
        base = cog.replace("{layer}", quote(layer, safe=""))
        return f"{base}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?{urlencode(query)}"

    def image(layer: str) -> list[tuple[str, str]]:
        if not rgb or layer not in rgb:
            return []
        idx, ranges = rgb[layer]
        query = [("bidx", str(i)) for i in idx]
        return query + [("rescale", f"{lo:.6g},{hi:.6g}") for lo, hi in ranges]

    return {
        "probability": url(
            "probability", [("rescale", "0,1"), ("colormap_name", "candela_probability")]
        ),
        "mask": url("mask", [("colormap_name", "candela_mask")]),
        "mask_at": url(
            "probability", [("algorithm", "candela_threshold"), ("colormap_name", "candela_mask")]
        ),
        "before": url("before", image("before")),
        "after": url("after", image("after")),
    }


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


def shared_stretch(
    pair: tuple[str, str],
) -> dict[str, tuple[tuple[int, int, int], list[tuple[float, float]]]]:
    """``before`` / ``after`` (the stacks of ``pair``, URIs) → their B04/B03/B02 band indexes
    and the stretch both share (``rgb_stretch``)."""
    from candela_sdk import storage

    paths = tuple(storage.gdal_path(u) for u in pair)
    stretched = rgb_stretch(paths, tuple(version_stamp(u) for u in pair))
    return {"before": stretched[0], "after": stretched[1]}


def thumbnail(layer: str, pair: tuple[str, str], max_size: int = 480) -> bytes:
    """A PNG of a whole before/after stack (``layer``: ``before`` or ``after`` of ``pair``),
    with the pair's shared stretch (as the map tiles), for the printable report."""
    from candela_sdk import storage

    idx, ranges = shared_stretch(pair)[layer]
    uri = pair[0] if layer == "before" else pair[1]
    with storage.rasterio_env(), Reader(storage.gdal_path(uri)) as src:
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
