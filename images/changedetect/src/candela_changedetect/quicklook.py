"""Quicklook PNG: changes in red over the after image, with a legend and a scale bar.

The after image is rendered in true colour (B04, B03, B02) when those bands are present, else in
grey scale from the first band, reduced by a whole factor ``k`` (block means over k×k pixels,
accumulated block by block so memory stays bounded); a reduced cell is red when any of its pixels
changed, dark blue-grey when none is valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

CHANGE_RGB = (230, 25, 25)
NODATA_RGB = (40, 44, 52)


class QuicklookAccumulator:
    def __init__(
        self, height: int, width: int, render_indexes: Sequence[int], max_size: int = 1024
    ) -> None:
        self.k = max(1, math.ceil(max(height, width) / max_size))
        self.height, self.width = height, width
        self.rows = math.ceil(height / self.k)
        self.cols = math.ceil(width / self.k)
        self.indexes = list(render_indexes)
        nb = len(self.indexes)
        self.sums = np.zeros((nb, self.rows, self.cols))
        self.valid = np.zeros((self.rows, self.cols))
        self.changed = np.zeros((self.rows, self.cols))

    def _pool(self, arr: np.ndarray, row_off: int) -> tuple[np.ndarray, np.ndarray]:
        """Sum ``arr`` (rows, cols) over k×k cells; returns (cell rows, pooled)."""
        k = self.k
        pad = self.cols * k - arr.shape[1]
        if pad:
            arr = np.pad(arr, ((0, 0), (0, pad)))
        cols = arr.reshape(arr.shape[0], self.cols, k).sum(axis=2)
        cell = (np.arange(row_off, row_off + arr.shape[0])) // k
        starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        return cell[starts], np.add.reduceat(cols, starts, axis=0)

    def add(self, row_off: int, after: np.ndarray, valid: np.ndarray, change: np.ndarray) -> None:
        cells, v = self._pool(valid.astype(np.float64), row_off)
        self.valid[cells] += v
        cells, c = self._pool((change & valid).astype(np.float64), row_off)
        self.changed[cells] += c
        for j, band in enumerate(self.indexes):
            _, s = self._pool(np.where(valid, after[band], 0.0).astype(np.float64), row_off)
            self.sums[j, cells] += s

    def image(self) -> np.ndarray:
        """RGB uint8 array (rows, cols, 3)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.sums / self.valid
        has = self.valid > 0
        channels = []
        for band in mean:
            vals = band[has]
            if vals.size:
                lo, hi = np.percentile(vals, [2, 98])
            else:
                lo, hi = 0.0, 1.0
            scaled = np.clip((band - lo) / max(hi - lo, 1e-9), 0, 1) * 255
            channels.append(np.nan_to_num(scaled))
        if len(channels) == 1:
            channels = channels * 3
        rgb = np.stack(channels, axis=-1).astype(np.uint8)
        rgb[~has] = NODATA_RGB
        rgb[self.changed > 0] = CHANGE_RGB
        return rgb


def _nice_length(target_m: float) -> float:
    if target_m <= 0:
        return 0.0
    exp = 10 ** math.floor(math.log10(target_m))
    for m in (5, 2, 1):
        if m * exp <= target_m:
            return m * exp
    return exp


def render(
    acc: QuicklookAccumulator,
    *,
    title: str,
    lines: Sequence[str],
    pixel_size_m: float | None,
    true_colour: bool,
) -> Any:
    """A PIL image: the map, then a legend panel (swatches, text, scale bar)."""
    from PIL import Image, ImageDraw, ImageFont

    rgb = acc.image()
    map_img = Image.fromarray(rgb, "RGB")
    if map_img.width < 400:  # small rasters: enlarge so the legend fits and pixels stay visible
        f = math.ceil(400 / map_img.width)
        map_img = map_img.resize((map_img.width * f, map_img.height * f), Image.Resampling.NEAREST)
    scale = map_img.width / acc.cols  # quicklook pixels per reduced cell
    w = max(map_img.width, 400)
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow without FreeType
        font = ImageFont.load_default()
    line_h = 17
    panel_h = 10 + line_h * (3 + len(lines)) + 30
    out = Image.new("RGB", (w, map_img.height + panel_h), (255, 255, 255))
    out.paste(map_img, (0, 0))
    d = ImageDraw.Draw(out)
    y = map_img.height + 8
    d.text((8, y), title, fill=(0, 0, 0), font=font)
    y += line_h + 2
    x = 8
    background = "after image, true colour" if true_colour else "after image, grey scale"
    for colour, label in (
        (CHANGE_RGB, "change"),
        (NODATA_RGB, "no data"),
        ((150, 150, 150), background),
    ):
        d.rectangle([x, y + 2, x + 12, y + 14], fill=colour, outline=(0, 0, 0))
        d.text((x + 18, y), label, fill=(0, 0, 0), font=font)
        x += 18 + int(d.textlength(label, font=font)) + 18
    y += line_h + 2
    for line in lines:
        d.text((8, y), line, fill=(0, 0, 0), font=font)
        y += line_h
    if pixel_size_m:
        metres_per_qpx = pixel_size_m * acc.k / scale
        length = _nice_length(metres_per_qpx * w / 4)
        bar = int(round(length / metres_per_qpx)) if length else 0
        if bar > 0:
            y += 6
            d.rectangle([8, y, 8 + bar, y + 6], fill=(0, 0, 0))
            label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
            d.text((16 + bar, y - 5), label, fill=(0, 0, 0), font=font)
    return out
