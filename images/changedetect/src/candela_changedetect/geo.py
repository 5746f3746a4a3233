"""Pixel sizes on a raster grid (pixel areas and zone statistics: :mod:`candela_sdk.zones`)."""

from __future__ import annotations

import math
from typing import Any

from candela_sdk.zones import EARTH_RADIUS_M


def ground_pixel_size_m(transform: Any, crs: Any, height: int) -> float | None:
    """Approximate east-west size of a pixel in metres at the grid's centre (scale bars)."""
    if crs is None:
        return None
    if crs.is_geographic:
        lat = transform.f + transform.e * height / 2
        return abs(transform.a) * math.pi / 180 * EARTH_RADIUS_M * math.cos(math.radians(lat))
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return abs(transform.a) * factor
