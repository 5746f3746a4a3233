"""Pixel grids: what a raster's grid is and whether two rasters share one.

Change detection compares two products pixel by pixel, so both must be on exactly the same grid
(same CRS, same geotransform, same shape). :func:`grids_match` says whether they are, and if not,
why — in one sentence that can go straight into an :class:`~candela_sdk.errors.InputError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from candela_sdk import storage
from candela_sdk.errors import InputError

#: Two geotransform coefficients are "equal" when they differ by less than this fraction of a pixel.
PIXEL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS (WKT or ``EPSG:n``), affine geotransform (6 coefficients) and shape."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def affine(self) -> Any:
        from affine import Affine

        return Affine(*self.transform)

    def compare(self, other: Grid) -> tuple[bool, str]:
        """``(True, "")`` when the grids are the same, else ``(False, why)``."""
        from rasterio.crs import CRS

        if CRS.from_user_input(self.crs) != CRS.from_user_input(other.crs):
            return False, f"CRS differ ({_crs_name(self.crs)} vs {_crs_name(other.crs)})"
        if (self.width, self.height) != (other.width, other.height):
            return False, (
                f"shapes differ ({self.width}x{self.height} vs {other.width}x{other.height} pixels)"
            )
        a, b, c, d, e, f = self.transform
        a2, b2, c2, d2, e2, f2 = other.transform
        px = max(abs(a), abs(e), 1e-300)
        if any(abs(u - v) > PIXEL_TOLERANCE * px for u, v in ((a, a2), (b, b2), (d, d2), (e, e2))):
            return False, f"pixel sizes differ ({a:.10g}, {e:.10g} vs {a2:.10g}, {e2:.10g})"
        if abs(c - c2) > PIXEL_TOLERANCE * px or abs(f - f2) > PIXEL_TOLERANCE * px:
            return False, f"origins differ (({c:.10g}, {f:.10g}) vs ({c2:.10g}, {f2:.10g}))"
        return True, ""


def _crs_name(crs: str) -> str:
    from rasterio.crs import CRS

    c = CRS.from_user_input(crs)
    code = c.to_epsg()
    return f"EPSG:{code}" if code else c.to_wkt()[:60]


def grid_of(uri: str | os.PathLike[str]) -> Grid:
    """The grid of the raster at ``uri`` (any GDAL-readable raster, local or S3)."""
    import rasterio

    try:
        with storage.rasterio_env(), rasterio.open(storage.gdal_path(uri)) as ds:
            if ds.crs is None:
                raise InputError(
                    f"raster has no coordinate reference system: {storage.to_uri(uri)}"
                )
            return Grid(
                crs=ds.crs.to_string(),
                transform=tuple(ds.transform)[:6],  # type: ignore[arg-type]
                width=ds.width,
                height=ds.height,
            )
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot open raster {storage.to_uri(uri)}: {exc}") from None


def grids_match(uri_a: str | os.PathLike[str], uri_b: str | os.PathLike[str]) -> tuple[bool, str]:
    """Whether two rasters are on exactly the same grid; the reason when they are not.

    >>> ok, why = grids_match("t1.tif", "t2.tif")  # doctest: +SKIP
    >>> if not ok: raise InputError(f"t1.tif and t2.tif are not on the same grid: {why}")
    """
    ok, why = grid_of(uri_a).compare(grid_of(uri_b))
    return ok, why
