"""Raster grids: a CRS, an affine transform and a shape, travelling together.

A :class:`Grid` is what every stage agrees on: parcels are reprojected and rasterized on it,
imagery is read onto it, statistics are reduced over it. The default working grid of s3tr is
the 20 m grid of a Sentinel-2 MGRS tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import CRS

__all__ = ["Grid"]


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid.

    Parameters
    ----------
    crs
        Coordinate reference system (anything :class:`pyproj.CRS` accepts, e.g. ``"EPSG:32631"``).
    transform
        Affine transform from pixel (col, row) to CRS coordinates of the pixel's upper-left corner.
    shape
        ``(height, width)`` in pixels.
    """

    crs: str
    transform: Affine
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        # Normalise the CRS once so that two grids in the same CRS compare equal.
        object.__setattr__(self, "crs", CRS.from_user_input(self.crs).to_string())
        object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))

    @property
    def resolution(self) -> float:
        """Pixel size in CRS units (metres for UTM)."""
        return float(abs(self.transform.a))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the grid's outer edges."""
        h, w = self.shape
        x0, y0 = self.transform @ (0, 0)
        x1, y1 = self.transform @ (w, h)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def window(self, row_off: int, col_off: int, height: int, width: int) -> Grid:
        """The sub-grid of ``height`` x ``width`` pixels starting at ``(row_off, col_off)``."""
        return Grid(self.crs, self.transform @ Affine.translation(col_off, row_off), (height, width))

    def coarsen(self, factor: int) -> Grid:
        """The grid with pixels ``factor`` times larger (e.g. 10 m -> 20 m with ``factor=2``)."""
        h, w = self.shape
        return Grid(self.crs, self.transform @ Affine.scale(factor), (h // factor, w // factor))

    def xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates: ``x`` of shape ``(width,)`` and ``y`` of shape ``(height,)``."""
        h, w = self.shape
        t = self.transform
        x = t.c + t.a * (np.arange(w) + 0.5)
        y = t.f + t.e * (np.arange(h) + 0.5)
        return x, y
