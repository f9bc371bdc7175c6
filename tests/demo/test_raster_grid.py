"""Grid maths of the demo rasters: tile windows and sub-pixel mixing weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from s3tr.demo.raster import TILE_ORIGIN, label_raster, mean2x2, mixing_matrix, tile_window


@settings(max_examples=60, deadline=None)
@given(
    x=st.floats(210_000, 290_000),
    y=st.floats(5_100_000, 5_180_000),
    size=st.floats(100, 15_000),
)
def test_tile_window_is_aligned_and_covers_the_area(x: float, y: float, size: float) -> None:
    bounds = (x, y, x + size, y + size)
    grid = tile_window(bounds, margin=200.0)
    t = grid.transform
    assert grid.resolution == 20.0 and grid.crs == "EPSG:32631"
    assert ((t.c - TILE_ORIGIN[0]) / 20).is_integer() and ((TILE_ORIGIN[1] - t.f) / 20).is_integer()
    minx, miny, maxx, maxy = grid.bounds
    assert minx <= bounds[0] - 200 and miny <= bounds[1] - 200
    assert maxx >= bounds[2] + 200 and maxy >= bounds[3] + 200
    assert maxx - minx < size + 400 + 40  # no more than one pixel of slack per side


def test_tile_window_outside_the_tile_is_refused() -> None:
    with pytest.raises(ValueError, match="31TBM"):
        tile_window((305_000, 5_150_000, 315_000, 5_160_000))


def test_mixing_weights_give_mixed_edge_pixels() -> None:
    grid = tile_window((250_000, 5_150_000, 250_400, 5_150_400), margin=0.0)
    x0, _, _, y1 = grid.bounds
    # One field whose edge runs through the middle of a column of 20 m pixels.
    field = box(x0 + 110, y1 - 400, x0 + 400, y1)
    labels5 = label_raster([(field, 1)], grid)
    a20 = mixing_matrix(labels5, 4, 2)
    a10 = mixing_matrix(labels5, 2, 2)
    np.testing.assert_allclose(np.asarray(a20.sum(axis=1)).ravel(), 1.0)
    np.testing.assert_allclose(np.asarray(a10.sum(axis=1)).ravel(), 1.0)
    share20 = np.asarray(a20[:, 1].todense()).reshape(grid.shape)
    # Column 5 (100-120 m) is half field, half outside: a mixed pixel, as a sensor footprint is.
    assert share20[0, 5] == pytest.approx(0.5) and share20[0, 4] == 0 and share20[0, 6] == 1
    # 10 m weights averaged 2 x 2 are exactly the 20 m weights.
    share10 = np.asarray(a10[:, 1].todense()).reshape(grid.shape[0] * 2, grid.shape[1] * 2)
    np.testing.assert_allclose(mean2x2(share10), share20, atol=1e-6)
