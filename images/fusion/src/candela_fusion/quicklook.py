"""The quicklook: land-cover map and source map side by side, each with its legend."""

from __future__ import annotations

from typing import Any

import numpy as np

from candela_fusion.classes import NODATA, ClassTable
from candela_fusion.predict import SOURCE_COLORS, SOURCES

MAX_SIDE = 512


def _colour(values: np.ndarray, cmap: dict[int, tuple[int, int, int, int]]) -> np.ndarray:
    rgb = np.full((*values.shape, 3), 255, np.uint8)
    for v, c in cmap.items():
        if v != NODATA:
            rgb[values == v] = c[:3]
    return rgb


def render(
    landcover: np.ndarray,
    source: np.ndarray,
    table: ClassTable,
    statistics: dict[str, Any],
    model: str,
) -> Any:
    from PIL import Image, ImageDraw

    k = max(1, int(np.ceil(max(landcover.shape) / MAX_SIDE)))
    lc, src = landcover[::k, ::k], source[::k, ::k]
    h, w = lc.shape
    scale = max(1, 256 // max(h, w))  # small inputs (a 120 px patch) are enlarged
    maps = [
        Image.fromarray(_colour(lc, table.colormap())).resize((w * scale, h * scale), 0),
        Image.fromarray(_colour(src, SOURCE_COLORS)).resize((w * scale, h * scale), 0),
    ]
    mw, mh = maps[0].size
    entries = len(table.classes)
    legend_h = 18 * max(entries, len(SOURCES) - 1) + 70
    img = Image.new("RGB", (2 * mw + 30, mh + legend_h), "white")
    draw = ImageDraw.Draw(img)
    title = f"Land cover ({model})"
    if statistics.get("optical_datetime"):
        title += f"  S2 {statistics['optical_datetime'][:10]}"
    if statistics.get("radar_datetime"):
        title += f"  S1 {statistics['radar_datetime'][:10]}"
    draw.text((10, 5), title, fill="black")
    for i, m in enumerate(maps):
        img.paste(m, (10 + i * (mw + 10), 22))
    y0 = 22 + mh + 8
    draw.text((10, y0), "Classes (area ha)", fill="black")
    by_value = {c["value"]: c for c in statistics["classes"]}
    for i, c in enumerate(table.classes):
        y = y0 + 16 + 18 * i
        draw.rectangle([10, y, 24, y + 12], fill=c.rgba()[:3], outline="black")
        area = by_value[c.value]["area_ha"]
        label = c.name if len(c.name) <= 40 else c.name[:38] + "…"
        draw.text((30, y), f"{label} ({area:,.1f})" if area is not None else label, fill="black")
    x0 = 10 + mw + 10
    draw.text((x0, y0), "Source of each pixel", fill="black")
    for i, v in enumerate((1, 2, 3)):
        y = y0 + 16 + 18 * i
        draw.rectangle([x0, y, x0 + 14, y + 12], fill=SOURCE_COLORS[v][:3], outline="black")
        n = statistics["source_pixels"][SOURCES[v]]
        draw.text((x0 + 20, y), f"{SOURCES[v]} ({n} px)", fill="black")
    return img
