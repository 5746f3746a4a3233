"""Block access to a pair of co-registered stacks, so memory stays bounded on large rasters.

Every model reads its inputs through a :class:`BlockSource`: an iterator over row windows
(full width, ``block_rows`` rows) that yields the before and after reflectances as float arrays
of shape ``(bands, rows, cols)`` and the validity mask ``(rows, cols)``. Models accumulate global
statistics in one or more passes and then score each block; since CVA and IRMAD are per-pixel
functions once their global statistics are known, the result is the same for any block size.

:class:`ArrayPair` serves in-memory arrays (tests, notebooks); :class:`RasterPair` reads two
rasterio datasets (and optional validity masks) window by window.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowWindow:
    """Rows ``[row_off, row_off + height)`` over the full width."""

    row_off: int
    height: int
    width: int

    def rasterio(self) -> Any:
        from rasterio.windows import Window

        return Window(0, self.row_off, self.width, self.height)  # type: ignore[no-untyped-call]

    @property
    def rows(self) -> slice:
        return slice(self.row_off, self.row_off + self.height)


@dataclass
class Block:
    window: RowWindow
    before: np.ndarray  # (bands, rows, cols) float32
    after: np.ndarray  # (bands, rows, cols) float32
    valid: np.ndarray  # (rows, cols) bool


def row_windows(height: int, width: int, block_rows: int) -> list[RowWindow]:
    step = max(1, int(block_rows))
    return [RowWindow(r, min(step, height - r), width) for r in range(0, height, step)]


class BlockSource(Protocol):
    """What a change model reads: the pair's shape, band names and its blocks."""

    height: int
    width: int
    band_names: list[str]

    def blocks(self) -> Iterator[Block]: ...

    def read_rows(self, row_off: int, height: int) -> Block:
        """Rows ``[row_off, row_off + height)`` (inside the raster) as one block.

        Models with spatial context (the encoder) read their neighbourhood (halo) this way.
        """
        ...


def invalid_pixels(stack: np.ndarray, nodata: float | None) -> np.ndarray:
    """Pixels where any band is nodata (or not finite): (bands, rows, cols) -> (rows, cols)."""
    bad = np.zeros(stack.shape[1:], dtype=bool)
    for band in stack:
        if nodata is not None and not np.isnan(nodata):
            bad |= band == nodata
        if np.issubdtype(band.dtype, np.floating):
            bad |= ~np.isfinite(band)
    return bad


class ArrayPair:
    """Two in-memory stacks ``(bands, rows, cols)`` plus an optional validity mask."""

    def __init__(
        self,
        before: np.ndarray,
        after: np.ndarray,
        valid: np.ndarray | None = None,
        *,
        nodata: float | None = 0,
        band_names: Sequence[str] = (),
        block_rows: int = 512,
    ) -> None:
        if before.shape != after.shape or before.ndim != 3:
            raise ValueError("before and after must be (bands, rows, cols) of the same shape")
        self._before = before
        self._after = after
        bad = invalid_pixels(before, nodata) | invalid_pixels(after, nodata)
        self._valid = ~bad if valid is None else (~bad & valid.astype(bool))
        self.height, self.width = before.shape[1:]
        self.band_names = list(band_names) or [f"band{i + 1}" for i in range(before.shape[0])]
        self.block_rows = block_rows

    def blocks(self) -> Iterator[Block]:
        for w in row_windows(self.height, self.width, self.block_rows):
            yield self.read_rows(w.row_off, w.height)

    def read_rows(self, row_off: int, height: int) -> Block:
        w = RowWindow(row_off, height, self.width)
        return Block(
            w,
            self._before[:, w.rows].astype(np.float32),
            self._after[:, w.rows].astype(np.float32),
            self._valid[w.rows],
        )


class RasterPair:
    """Two open rasterio datasets on the same grid, read window by window.

    ``after_indexes`` maps the before band order onto the after dataset (1-based band indexes),
    so stacks with the same bands in another order are compared band by band. Masks are
    single-band rasters on the same grid where 0 (or their nodata) marks invalid pixels.
    """

    def __init__(
        self,
        before: Any,
        after: Any,
        *,
        band_names: Sequence[str],
        after_indexes: Sequence[int] | None = None,
        before_mask: Any = None,
        after_mask: Any = None,
        block_rows: int = 512,
    ) -> None:
        self._before = before
        self._after = after
        self._after_indexes = list(after_indexes or range(1, after.count + 1))
        self._masks = [m for m in (before_mask, after_mask) if m is not None]
        self.height, self.width = before.height, before.width
        self.band_names = list(band_names)
        self.block_rows = block_rows

    @staticmethod
    def _nodata(ds: Any) -> float:
        return 0.0 if ds.nodata is None else float(ds.nodata)

    def blocks(self) -> Iterator[Block]:
        for w in row_windows(self.height, self.width, self.block_rows):
            yield self.read_rows(w.row_off, w.height)

    def read_rows(self, row_off: int, height: int) -> Block:
        w = RowWindow(row_off, height, self.width)
        win = w.rasterio()
        before = self._before.read(window=win)
        after = self._after.read(self._after_indexes, window=win)
        bad = invalid_pixels(before, self._nodata(self._before))
        bad |= invalid_pixels(after, self._nodata(self._after))
        for m in self._masks:
            arr = m.read(1, window=win)
            bad |= arr == 0
            if m.nodata is not None and not np.isnan(m.nodata):
                bad |= arr == m.nodata
            if np.issubdtype(arr.dtype, np.floating):
                bad |= ~np.isfinite(arr)
        return Block(w, before.astype(np.float32), after.astype(np.float32), ~bad)
