"""Property tests of the window/grid arithmetic."""

from __future__ import annotations

import numpy as np
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from candela_preprocess.gridmath import (
    block_windows,
    bounds_to_window,
    integer_offset,
    window_transform,
)

sizes = st.integers(min_value=1, max_value=300)
pixel = st.floats(min_value=1e-5, max_value=100.0, allow_nan=False)
origin = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(deadline=None)
@given(width=sizes, height=sizes, block=st.integers(min_value=1, max_value=128))
def test_block_windows_tile_the_grid_once(width: int, height: int, block: int) -> None:
    cover = np.zeros((height, width), dtype=int)
    for w in block_windows(width, height, block):
        assert 1 <= w.width <= block and 1 <= w.height <= block
        cover[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert (cover == 1).all()


@settings(max_examples=300, deadline=None)
@given(
    px=pixel,
    py=pixel,
    x0=origin,
    y0=origin,
    width=sizes,
    height=sizes,
    fx=st.tuples(st.floats(-0.5, 1.5), st.floats(-0.5, 1.5)),
    fy=st.tuples(st.floats(-0.5, 1.5), st.floats(-0.5, 1.5)),
)
def test_bounds_to_window_is_the_smallest_covering_window(
    px, py, x0, y0, width, height, fx, fy
) -> None:
    t = Affine(px, 0, x0, 0, -py, y0)
    xa, xb = sorted(x0 + f * width * px for f in fx)
    ya, yb = sorted(y0 - f * height * py for f in fy)
    win = bounds_to_window(t, width, height, (xa, ya, xb, yb))
    inside_x = min(xb, x0 + width * px) - max(xa, x0)
    inside_y = min(yb, y0) - max(ya, y0 - height * py)
    if win is None:
        # no overlap of positive area (allowing for the sub-pixel snap)
        assert inside_x <= 1e-5 * px or inside_y <= 1e-5 * py or xb <= xa or yb <= ya
        return
    assert 0 <= win.col_off and win.col_off + win.width <= width
    assert 0 <= win.row_off and win.row_off + win.height <= height
    wt = window_transform(t, win)
    left, top = wt.c, wt.f
    right, bottom = left + win.width * px, top - win.height * py
    tol_x, tol_y = 1e-5 * px + 1e-9 * abs(x0), 1e-5 * py + 1e-9 * abs(y0)
    # covers the part of the bounds that lies on the grid …
    assert left <= max(xa, x0) + tol_x and right >= min(xb, x0 + width * px) - tol_x
    assert top >= min(yb, y0) - tol_y and bottom <= max(ya, y0 - height * py) + tol_y
    # … and is minimal: dropping an edge column/row would uncover some of it
    assert left + px > max(xa, x0) - tol_x and right - px < min(xb, x0 + width * px) + tol_x
    assert top - py < min(yb, y0) + tol_y and bottom + py > max(ya, y0 - height * py) - tol_y


@given(
    px=pixel,
    py=pixel,
    x0=origin,
    y0=origin,
    dc=st.integers(-5000, 5000),
    dr=st.integers(-5000, 5000),
)
def test_integer_offset_finds_whole_pixel_shifts(px, py, x0, y0, dc, dr) -> None:
    src = Affine(px, 0, x0, 0, -py, y0)
    dst = src @ Affine.translation(dc, dr)
    assert integer_offset(src, dst) == (dc, dr)


@given(px=pixel, x0=origin, y0=origin, frac=st.floats(0.01, 0.99))
def test_integer_offset_refuses_sub_pixel_shifts_and_other_sizes(px, x0, y0, frac) -> None:
    src = Affine(px, 0, x0, 0, -px, y0)
    assert integer_offset(src, src @ Affine.translation(frac, 0)) is None
    assert integer_offset(src, Affine(px * 2, 0, x0, 0, -px * 2, y0)) is None
