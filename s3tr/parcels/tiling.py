"""Group parcels by imagery tile, put them on the tile's grid, and tell which are monitorable.

Steps 2 of the flow (``DESIGN.md``): each parcel goes to one Sentinel-2 MGRS tile, is reprojected once to the
tile's UTM CRS, shrunk by an inward buffer that keeps mixed edge pixels out, and counted in full 20 m pixels:
a parcel with fewer than ``min_pixels`` (8, as the JRC recommends) is not monitorable by Sentinel-2.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import geopandas as gpd
import numba
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import CRS

from s3tr.errors import ConfigError, ParcelFileError
from s3tr.grid import Grid
from s3tr.parcels.load import STR_DTYPE

__all__ = ["assign_tiles", "inward_buffer", "monitorability", "to_grid_crs"]

logger = logging.getLogger(__name__)

# A pixel centre lying exactly on the buffered edge (common when parcels are aligned on the grid, e.g. in
# synthetic data) would be counted or not by GDAL's scan-line tie rule. Shrinking by one more millimetre makes
# the rule explicit: a pixel counts when its centre is *strictly* farther than the buffer from the edge.
_TIE_EPS_M = 1e-3

_MIN_BUFFER_M = 1e-6


def assign_tiles(
    parcels: gpd.GeoDataFrame | gpd.GeoSeries, footprints: Mapping[str, shapely.Geometry]
) -> pd.Series:
    """Choose one imagery tile per parcel.

    A parcel goes to the tile whose footprint contains its representative point (a point guaranteed to be
    inside the parcel). When several footprints contain it (MGRS tiles overlap by about 10 km), the tiles
    whose footprint contains the whole parcel are preferred, then the first tile id in sorted order.

    Parameters
    ----------
    parcels
        Parcels in any CRS (it must be set).
    footprints
        Tile id -> footprint polygon in EPSG:4326 (lon/lat), e.g. the ``geometry`` of STAC items.

    Returns
    -------
    pandas.Series
        Tile id per parcel (pandas' default string dtype), NaN for parcels in no footprint (logged as a
        warning); same index as ``parcels``, name ``tile``.
    """
    geoms = _geoseries(parcels)
    if geoms.crs is None:
        raise ParcelFileError("parcels have no CRS; load them with s3tr.parcels.load_parcels or set .crs")
    tiles = sorted(footprints)
    n = len(geoms)
    result = np.full(n, None, dtype=object)
    if n == 0 or not tiles:
        if n:
            logger.warning("no tile footprint given: %d parcel(s) assigned to no tile", n)
        return _tile_series(result, geoms.index)

    points = geoms.representative_point().to_crs("EPSG:4326")
    px, py = shapely.get_x(points.array), shapely.get_y(points.array)
    shapes = [footprints[t] for t in tiles]
    for shape in shapes:
        shapely.prepare(shape)
    # inside[i, j]: parcel i's representative point lies in tile j (tiles in sorted order).
    inside = np.column_stack([shapely.contains_xy(shape, px, py) for shape in shapes])
    hits = inside.sum(axis=1)

    single = hits == 1
    result[single] = np.asarray(tiles, dtype=object)[inside[single].argmax(axis=1)]

    several = np.flatnonzero(hits > 1)
    if len(several):
        # Only the ambiguous parcels need their whole polygon in lon/lat.
        polys = geoms.iloc[several].to_crs("EPSG:4326").array
        for k, i in enumerate(several):
            candidates = np.flatnonzero(inside[i])
            whole = [j for j in candidates if shapely.contains(shapes[j], polys[k])]
            result[i] = tiles[whole[0] if whole else candidates[0]]

    missing = hits == 0
    if missing.any():
        ids = _ids(parcels)
        sample = list(ids[missing][:10]) if ids is not None else list(geoms.index[missing][:10])
        logger.warning(
            "%d parcel(s) fall in no tile footprint and get no tile, e.g. %s", int(missing.sum()), sample
        )
    return _tile_series(result, geoms.index)


def to_grid_crs(parcels: gpd.GeoDataFrame, grid: Grid) -> gpd.GeoDataFrame:
    """Reproject parcels to the CRS of ``grid`` (once; a copy is returned even when already there).

    Parameters
    ----------
    parcels
        Parcels with a CRS.
    grid
        The working grid (its ``crs`` is used).
    """
    if parcels.crs is None:
        raise ParcelFileError("parcels have no CRS; load them with s3tr.parcels.load_parcels or set .crs")
    target = CRS.from_user_input(grid.crs)
    if CRS.from_user_input(parcels.crs) == target:
        return parcels.copy()
    return parcels.to_crs(target)


def inward_buffer(parcels: gpd.GeoDataFrame | gpd.GeoSeries, meters: float) -> gpd.GeoSeries:
    """Shrink every parcel by ``meters`` (a negative buffer, the erosion of the polygon by a disc).

    Parameters
    ----------
    parcels
        Parcels in a projected CRS with metre units (e.g. the tile's UTM CRS).
    meters
        Buffer distance, >= 0, in metres. Below a micrometre the geometries are returned unchanged.

    Returns
    -------
    geopandas.GeoSeries
        Same index and CRS; a parcel thinner than ``2 * meters`` becomes an empty polygon (never missing).
    """
    geoms = _geoseries(parcels)
    _require_metres(geoms.crs, "inward_buffer")
    _check_distance(meters)
    if meters < _MIN_BUFFER_M:
        # GEOS turns some polygons empty for sub-micrometre negative distances (1e-12 m erases a 14 m2
        # triangle at UTM magnitudes); such a buffer means no buffer.
        return geoms.copy()
    out = shapely.buffer(geoms.array, -float(meters))
    # shapely returns an empty polygon for an eroded-away parcel, but keep the rule explicit for None inputs.
    out = np.where(shapely.is_missing(out), shapely.Polygon(), out)
    return gpd.GeoSeries(out, index=geoms.index, crs=geoms.crs, name=geoms.name)


def monitorability(
    parcels_in_grid_crs: gpd.GeoDataFrame,
    grid: Grid,
    *,
    inward_buffer_m: float,
    min_pixels: int = 8,
) -> pd.DataFrame:
    """Count each parcel's full pixels on ``grid`` after the inward buffer.

    A pixel counts for a parcel when its centre lies strictly inside the buffered polygon (strictly farther
    than ``inward_buffer_m`` from the parcel's edge), as GDAL's rasterizer with ``all_touched=False``.
    Each parcel is counted on its own by a compiled scan-line pass over its edges (no raster is allocated;
    overlapping parcels are each counted in full). Pixels outside the grid do not count: they are not
    observable on this grid.

    Parameters
    ----------
    parcels_in_grid_crs
        Parcels (column ``id_parcel``) in the CRS of ``grid``, see :func:`to_grid_crs`.
    grid
        The working grid, typically the 20 m grid of a Sentinel-2 tile.
    inward_buffer_m
        Inward buffer in metres (5–10 m in practice).
    min_pixels
        Fewest full pixels a monitorable parcel has (8, as the JRC recommends).

    Returns
    -------
    pandas.DataFrame
        ``id_parcel`` (as given), ``n_pixels`` (int64), ``monitorable`` (bool: ``n_pixels >= min_pixels``),
        one row per parcel in input order, ``RangeIndex``.
    """
    if "id_parcel" not in parcels_in_grid_crs.columns:
        raise ParcelFileError(
            f"parcels lack the id_parcel column; columns: {list(parcels_in_grid_crs.columns)}"
        )
    if parcels_in_grid_crs.crs is None or CRS.from_user_input(parcels_in_grid_crs.crs) != CRS.from_user_input(
        grid.crs
    ):
        raise ConfigError(
            f"parcels are in {parcels_in_grid_crs.crs} but the grid is in {grid.crs}; "
            "reproject them first with s3tr.parcels.tiling.to_grid_crs"
        )
    if min_pixels < 0:
        raise ConfigError(f"min_pixels must be >= 0, got {min_pixels}")
    _require_metres(parcels_in_grid_crs.crs, "monitorability")
    _check_distance(inward_buffer_m)
    # One buffer call for both the inward buffer and the tie margin (buffering is the slow part).
    shrunk = shapely.buffer(parcels_in_grid_crs.geometry.array, -(float(inward_buffer_m) + _TIE_EPS_M))
    counts = _count_pixels(np.asarray(shrunk, dtype=object), grid)
    return pd.DataFrame(
        {
            "id_parcel": parcels_in_grid_crs["id_parcel"].to_numpy(),
            "n_pixels": counts,
            "monitorable": counts >= min_pixels,
        }
    )


def _count_pixels(geoms: np.ndarray, grid: Grid) -> np.ndarray:
    """Number of pixel centres of ``grid`` inside each (polygonal) geometry; int64, one per geometry.

    Each parcel is counted on its own by scan lines through the pixel-centre rows (even-odd rule; a centre
    exactly on an edge is decided by a half-open rule, and the 1 mm margin of monitorability keeps ties
    away), so overlapping parcels do not steal pixels from each other and no raster is allocated.
    """
    n = len(geoms)
    counts = np.zeros(n, dtype=np.int64)
    if n == 0:
        return counts
    t: Affine = grid.transform
    if t.b != 0 or t.d != 0 or t.a <= 0:
        raise ConfigError(
            f"grid {grid} is not north-up with positive pixel width; such grids are not supported"
        )
    usable = np.flatnonzero(~(shapely.is_missing(geoms) | shapely.is_empty(geoms)))
    if len(usable) == 0:
        return counts
    parts, part_owner = shapely.get_parts(geoms[usable], return_index=True)
    polygonal = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    parts, part_owner = parts[polygonal], part_owner[polygonal]
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    # An edge joins two consecutive vertices of the same (closed) ring; rings come in geometry order.
    edge = np.flatnonzero(coord_ring[:-1] == coord_ring[1:])
    edge_geom = usable[part_owner[ring_part[coord_ring[edge]]]]
    offsets = np.searchsorted(edge_geom, np.arange(n + 1)).astype(np.int64)
    height, width = grid.shape
    _scanline_count(
        np.ascontiguousarray(coords[edge, 0]),
        np.ascontiguousarray(coords[edge, 1]),
        np.ascontiguousarray(coords[edge + 1, 0]),
        np.ascontiguousarray(coords[edge + 1, 1]),
        offsets,
        float(t.c),
        float(t.a),
        float(t.f),
        float(t.e),
        int(width),
        int(height),
        counts,
    )
    return counts


@numba.njit(cache=True, nogil=True)
def _scanline_count(ex0, ey0, ex1, ey1, offsets, x_origin, dx, y_origin, dy, width, height, out):
    """For each geometry ``g`` (edges ``offsets[g]:offsets[g+1]``) count the pixel centres inside it."""
    n = len(offsets) - 1
    longest = 0
    for g in range(n):
        longest = max(longest, offsets[g + 1] - offsets[g])
    xs = np.empty(longest, dtype=np.float64)
    for g in range(n):
        a, b = offsets[g], offsets[g + 1]
        if a == b:
            continue
        ymin, ymax = np.inf, -np.inf
        for e in range(a, b):
            ymin = min(ymin, ey0[e], ey1[e])
            ymax = max(ymax, ey0[e], ey1[e])
        # Rows whose centre y = y_origin + dy * (row + 0.5) lies within [ymin, ymax].
        fa = (ymax - y_origin) / dy - 0.5
        fb = (ymin - y_origin) / dy - 0.5
        r_lo = max(0, int(np.ceil(min(fa, fb))))
        r_hi = min(height - 1, int(np.floor(max(fa, fb))))
        total = 0
        for r in range(r_lo, r_hi + 1):
            yc = y_origin + dy * (r + 0.5)
            m = 0
            for e in range(a, b):
                y0, y1 = ey0[e], ey1[e]
                # Half-open rule: an edge counts when the scan line passes in [lower end, upper end).
                if (y0 <= yc < y1) or (y1 <= yc < y0):
                    xs[m] = ex0[e] + (yc - y0) * (ex1[e] - ex0[e]) / (y1 - y0)
                    m += 1
            # Insertion sort: m is almost always 2, rarely more than a dozen.
            for i in range(1, m):
                v = xs[i]
                j = i - 1
                while j >= 0 and xs[j] > v:
                    xs[j + 1] = xs[j]
                    j -= 1
                xs[j + 1] = v
            for k in range(0, m - 1, 2):
                # Columns whose centre x = x_origin + dx * (col + 0.5) lies in [xs[k], xs[k + 1]).
                c_lo = max(0, int(np.ceil((xs[k] - x_origin) / dx - 0.5)))
                c_hi = min(width - 1, int(np.ceil((xs[k + 1] - x_origin) / dx - 0.5)) - 1)
                if c_hi >= c_lo:
                    total += c_hi - c_lo + 1
        out[g] = total


def _check_distance(meters: float) -> None:
    if not np.isfinite(meters) or meters < 0:
        raise ConfigError(f"inward buffer must be a finite distance >= 0 metres, got {meters!r}")


def _geoseries(parcels: gpd.GeoDataFrame | gpd.GeoSeries) -> gpd.GeoSeries:
    if isinstance(parcels, gpd.GeoDataFrame):
        return parcels.geometry
    if isinstance(parcels, gpd.GeoSeries):
        return parcels
    raise TypeError(f"expected a GeoDataFrame or GeoSeries of parcels, got {type(parcels).__name__}")


def _ids(parcels: gpd.GeoDataFrame | gpd.GeoSeries) -> np.ndarray | None:
    if isinstance(parcels, gpd.GeoDataFrame) and "id_parcel" in parcels.columns:
        return parcels["id_parcel"].to_numpy()
    return None


def _require_metres(crs: object, what: str) -> None:
    if crs is None:
        raise ParcelFileError(f"{what}: parcels have no CRS; set it or reproject with to_grid_crs")
    c = CRS.from_user_input(crs)
    units = {axis.unit_name for axis in c.axis_info}
    if not c.is_projected or not units <= {"metre", "meter"}:
        raise ConfigError(
            f"{what} needs parcels in a projected CRS in metres, got {c.to_string()}; "
            "reproject them first (to_grid_crs)"
        )


def _tile_series(values: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.array(values, dtype="string"), index=index, name="tile").astype(STR_DTYPE)
