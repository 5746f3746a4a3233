"""Pure window and grid arithmetic (no I/O), property-tested in ``tests/test_gridmath.py``.

Everything works on whole pixels of a reference grid given by an affine transform (north-up,
no rotation) and a shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from affine import Affine

#: Bounds that land within this fraction of a pixel of a pixel edge snap to that edge.
SNAP = 1e-6


@dataclass(frozen=True)
class PixelWindow:
    """A window of whole pixels: column/row offset and size (rasterio ``Window`` compatible)."""

    col_off: int
    row_off: int
    width: int
    height: int

    def to_rasterio(self) -> object:
        from rasterio.windows import Window

        return Window(self.col_off, self.row_off, self.width, self.height)

    @property
    def size(self) -> int:
        return self.width * self.height


def block_windows(width: int, height: int, block: int) -> Iterator[PixelWindow]:
    """Row-major windows of at most ``block``×``block`` pixels tiling ``width``×``height`` once."""
    if block < 1:
        raise ValueError("block size must be at least 1")
    for row in range(0, height, block):
        h = min(block, height - row)
        for col in range(0, width, block):
            yield PixelWindow(col, row, min(block, width - col), h)


def is_north_up(transform: Affine) -> bool:
    return transform.b == 0 and transform.d == 0 and transform.a > 0 and transform.e < 0


def bounds_to_window(
    transform: Affine,
    width: int,
    height: int,
    bounds: tuple[float, float, float, float],
) -> PixelWindow | None:
    """The smallest window of whole grid pixels covering ``bounds`` (west, south, east, north),
    clipped to the grid; ``None`` when it does not overlap the grid. A point takes one pixel.

    Pixel edges are rounded outward, except that an edge within :data:`SNAP` of a pixel edge snaps
    to it (so bounds taken from the grid itself give back exactly those pixels).
    """
    if not is_north_up(transform):
        raise ValueError("only north-up grids are supported")
    west, south, east, north = bounds
    if east < west or north < south:
        return None
    inv = ~transform
    c0, r0 = inv @ (west, north)
    c1, r1 = inv @ (east, south)
    col0 = math.floor(c0 + SNAP)
    row0 = math.floor(r0 + SNAP)
    # a degenerate extent (a point, a horizontal or vertical line) still takes its pixel
    col1 = max(math.ceil(c1 - SNAP), col0 + 1)
    row1 = max(math.ceil(r1 - SNAP), row0 + 1)
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1, width), min(row1, height)
    if col1 <= col0 or row1 <= row0:
        return None
    return PixelWindow(col0, row0, col1 - col0, row1 - row0)


def window_transform(transform: Affine, window: PixelWindow) -> Affine:
    """The transform of the sub-grid starting at ``window``'s upper-left pixel."""
    return transform @ Affine.translation(window.col_off, window.row_off)


def integer_offset(src: Affine, dst: Affine, tol: float = SNAP) -> tuple[int, int] | None:
    """(col, row) of ``dst``'s origin on the ``src`` grid when both grids share pixel size and
    pixel edges (``dst`` is ``src`` shifted by whole pixels); ``None`` otherwise.

    When it is not ``None`` a band on ``src`` can be copied onto ``dst`` by a plain windowed read,
    with no resampling at all.
    """
    if not (is_north_up(src) and is_north_up(dst)):
        return None
    if abs(src.a - dst.a) > tol * abs(src.a) or abs(src.e - dst.e) > tol * abs(src.e):
        return None
    col, row = ~src @ (dst.c, dst.f)
    icol, irow = round(col), round(row)
    # the rounding error of the coordinates themselves, in pixels (large origins, tiny pixels)
    ulp = 8 * 2.0**-52
    tol_col = tol + ulp * (abs(src.c) + abs(dst.c)) / abs(src.a)
    tol_row = tol + ulp * (abs(src.f) + abs(dst.f)) / abs(src.e)
    if abs(col - icol) > tol_col or abs(row - irow) > tol_row:
        return None
    return icol, irow
