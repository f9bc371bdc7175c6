"""Parcel→pixel index built once per grid, and the fused per-parcel reduction over it.

The rule for "pixel belongs to parcel" is exactly the one of
``rasterio.features.rasterize(all_touched=False)`` applied to that parcel alone: the pixel's
centre is inside the (buffered) polygon, with GDAL's half-open handling of centres lying on an edge.

The index is built by our own scan-line rasterizer (:mod:`s3tr.extract._scanline`, numba), which
reproduces GDAL's decision operation for operation (ties included) but computes every parcel on
its own, in parallel: overlapping parcels each keep their shared pixels, and a full tile with
100,000 parcels is indexed in about a second instead of one GDAL pass per group of non-touching
parcels.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import geopandas as gpd
import numba
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS

from s3tr.extract._kernels import chunk_slots, reduce_runs
from s3tr.extract._scanline import gdal_inverse, polygon_runs
from s3tr.extract.errors import ExtractParcelsError, ExtractValueError
from s3tr.grid import Grid

__all__ = ["ParcelRaster", "find_column"]

log = logging.getLogger(__name__)

# Planes converted to float32 at a time when the input is not already a C-contiguous float array
# (dask, float16, int...): bounds the extra memory to about this many bytes on a full tile.
_CHUNK_BYTES = 512 * 2**20
# Planes reduced per kernel call: each run is read in every plane of the call, so they are as
# many forward memory streams per thread; about a dozen keeps the hardware prefetchers on track
# and bounds the accumulators (32 bytes per parcel and plane).
_MAX_PLANES_PER_CALL = 12

# Shapely type ids of polygonal geometries (Polygon, MultiPolygon) and of GeometryCollection.
_POLYGONAL = (3, 6)
_COLLECTION = 7


def find_column(frame: pd.DataFrame, name: str, *, source: str = "parcels") -> str:
    """The column of ``frame`` named ``name``, matched exactly first, then case-insensitively.

    Raises
    ------
    ExtractParcelsError
        When no column matches; the message lists the available columns.
    """
    if name in frame.columns:
        return name
    matches = [c for c in frame.columns if str(c).lower() == name.lower()]
    if len(matches) == 1:
        return str(matches[0])
    available = ", ".join(str(c) for c in frame.columns if c != "geometry")
    raise ExtractParcelsError(
        f"{source}: no id column {name!r} (columns: {available}); pass the right one with id_column="
    )


def _polygonal_only(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygonal parts of geometry collections (``make_valid`` may add lines/points).

    Lines would be burnt by ``rasterize`` as touched pixels, which is not the pixel-centre rule.
    Non-polygonal geometries become empty polygons (zero pixels).
    """
    types = shapely.get_type_id(geoms)
    out = geoms.copy()
    for i in np.flatnonzero(types == _COLLECTION):
        parts = shapely.get_parts(geoms[i])
        parts = parts[np.isin(shapely.get_type_id(parts), _POLYGONAL)]
        out[i] = shapely.multipolygons(shapely.get_parts(parts)) if len(parts) else shapely.Polygon()
    other = ~np.isin(types, (*_POLYGONAL, _COLLECTION))
    out[other] = shapely.Polygon()
    return out


class ParcelRaster:
    """A parcel→pixel index on one grid and the reductions over it.

    The index is a list of *runs* — horizontal stretches of pixels of one parcel within one row —
    in raster order: ``run_start`` (flat row-major index of the first pixel), ``run_length`` and
    ``run_parcel`` (position of the parcel in :attr:`ids`). It is a compressed form of the CSR
    parcel→pixel index (a full tile with 100,000 parcels holds about 2 million runs for 30 million
    pixels) that lets the reduction stream each plane in raster order. A pixel shared by
    overlapping parcels appears in one run of each. Build it with :meth:`from_parcels`; it holds
    only numpy arrays and is cheap to pickle to worker processes.

    Parameters
    ----------
    ids
        Parcel ids in input order (any hashable dtype, unique).
    grid
        The grid the index refers to.
    run_start, run_length, run_parcel
        int64, int32, int32 arrays of equal length (see above); reordered to raster order here.
    """

    def __init__(
        self,
        ids: np.ndarray,
        grid: Grid,
        run_start: np.ndarray,
        run_length: np.ndarray,
        run_parcel: np.ndarray,
    ) -> None:
        ids = np.asarray(ids)
        if not (len(run_start) == len(run_length) == len(run_parcel)):
            raise ExtractValueError("ParcelRaster: run arrays differ in length")
        if len(run_parcel) and (run_parcel.min() < 0 or run_parcel.max() >= len(ids)):
            raise ExtractValueError("ParcelRaster: run parcel positions outside the ids")
        order = np.argsort(run_start, kind="stable")
        self._ids = ids
        self._grid = grid
        self._run_start = np.ascontiguousarray(run_start[order], dtype=np.int64)
        self._run_length = np.ascontiguousarray(run_length[order], dtype=np.int32)
        self._run_parcel = np.ascontiguousarray(run_parcel[order], dtype=np.int32)
        self._chunks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._pixel_counts = np.bincount(
            self._run_parcel, weights=self._run_length, minlength=len(ids)
        ).astype(np.int64)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_parcels(
        cls,
        parcels: gpd.GeoDataFrame,
        *,
        transform: Affine,
        shape: tuple[int, int],
        crs: Any,
        id_column: str,
        inward_buffer_m: float = 0.0,
    ) -> ParcelRaster:
        """Build the index of ``parcels`` on the grid ``(crs, transform, shape)``.

        Parameters
        ----------
        parcels
            Polygons in any CRS (reprojected to ``crs``); null, empty and non-polygonal geometries
            get zero pixels. Polygonal parts of geometry collections are kept.
        transform
            Affine transform of the grid (pixel corner to CRS coordinates).
        shape
            ``(height, width)`` of the grid in pixels.
        crs
            CRS of the grid (anything :class:`pyproj.CRS` accepts); must be projected in metres
            when ``inward_buffer_m > 0``.
        id_column
            Column holding unique, non-null parcel ids (matched case-insensitively if needed).
        inward_buffer_m
            Distance in metres (>= 0) by which each polygon is shrunk before rasterizing, to keep
            mixed edge pixels out. A parcel that the buffer empties keeps zero pixels.

        Returns
        -------
        ParcelRaster
            Pixel ``(row, col)`` belongs to a parcel when its centre is inside the buffered
            polygon, exactly as ``rasterio.features.rasterize(all_touched=False)`` decides for that
            polygon alone; a pixel may belong to several overlapping parcels.

        Raises
        ------
        ExtractParcelsError
            Missing id column, null or duplicate ids, parcels without a CRS.
        ExtractValueError
            Negative buffer, or a buffer on a grid whose CRS is not in metres.
        """
        t0 = _time.perf_counter()
        grid = Grid(crs, transform, shape)
        if not isinstance(parcels, gpd.GeoDataFrame):
            raise ExtractValueError(f"parcels must be a GeoDataFrame, got {type(parcels).__name__}")
        if inward_buffer_m < 0 or not np.isfinite(inward_buffer_m):
            raise ExtractValueError(
                f"inward_buffer_m={inward_buffer_m!r}: give the inward distance as a positive number of "
                "metres (e.g. 5 for a 5 m inward buffer)"
            )
        col = find_column(parcels, id_column)
        ids = parcels[col].to_numpy()
        if pd.isna(ids).any():
            raise ExtractParcelsError(
                f"parcels: {int(pd.isna(ids).sum())} null value(s) in id column {col!r}"
            )
        dup = pd.Index(ids).duplicated()
        if dup.any():
            raise ExtractParcelsError(
                f"parcels: duplicate ids in column {col!r}, e.g. {ids[dup][:5].tolist()}; ids must be unique"
            )
        grid_crs = CRS.from_user_input(crs)
        if len(parcels) and parcels.crs is None:
            raise ExtractParcelsError("parcels have no CRS; set one (GeoDataFrame.set_crs) before indexing")
        if len(parcels) and CRS.from_user_input(parcels.crs) != grid_crs:
            parcels = parcels.to_crs(grid_crs)
        geoms = np.asarray(parcels.geometry.values, dtype=object)
        geoms = np.where(pd.isna(geoms), shapely.Polygon(), geoms)
        geoms = _polygonal_only(geoms)
        if inward_buffer_m > 0:
            unit = grid_crs.axis_info[0].unit_name if grid_crs.axis_info else ""
            if not grid_crs.is_projected or unit not in ("metre", "meter"):
                raise ExtractValueError(
                    "an inward buffer in metres needs a projected grid CRS in metres, "
                    f"got {grid_crs.to_string()}"
                )
            geoms = shapely.buffer(geoms, -float(inward_buffer_m))
        pr = cls(ids, grid, *_build_runs(geoms, grid))
        log.info(
            "parcel index: %d parcels, %d pixel memberships on %s grid %dx%d in %.2f s",
            len(ids),
            int(pr.pixel_counts.sum()),
            grid.crs,
            grid.shape[0],
            grid.shape[1],
            _time.perf_counter() - t0,
        )
        return pr

    def __getstate__(self) -> dict[str, Any]:
        # The per-thread chunking is cheap to rebuild and depends on the receiving process's
        # thread count: do not ship it to worker processes.
        state = self.__dict__.copy()
        state["_chunks"] = {}
        return state

    # ------------------------------------------------------------------ accessors
    @property
    def ids(self) -> np.ndarray:
        """Parcel ids in input order."""
        return self._ids

    @property
    def grid(self) -> Grid:
        """The grid the index refers to."""
        return self._grid

    @property
    def pixel_counts(self) -> np.ndarray:
        """int64 ``(n_parcels,)``: pixels belonging to each parcel (after the buffer)."""
        return self._pixel_counts

    @property
    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(run_start int64, run_length int32, run_parcel int32)`` in raster order (see class doc)."""
        return self._run_start, self._run_length, self._run_parcel

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        h, w = self._grid.shape
        n_px = int(self._pixel_counts.sum())
        return f"ParcelRaster({len(self)} parcels, {n_px} pixels, {self._grid.crs} {h}x{w})"

    def parcel_pixels(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)`` of the pixels of the parcel at position ``i``, row-major order."""
        sel = np.flatnonzero(self._run_parcel == i)
        if len(sel) == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy()
        starts = self._run_start[sel]
        lengths = self._run_length[sel].astype(np.int64)
        # Expand runs to pixels: start of each run repeated, plus 0..length-1 within the run.
        flat = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        flat.sort()
        return np.divmod(flat, self._grid.shape[1])

    # ------------------------------------------------------------------ reductions
    def _chunk_slots(self, n_threads: int) -> tuple[np.ndarray, ...]:
        """The runs split in one band of rows per thread, with chunk-local parcel slots (cached)."""
        n_chunks = max(1, n_threads)
        if n_chunks not in self._chunks:
            self._chunks[n_chunks] = chunk_slots(
                self._run_start, self._run_length, self._run_parcel, len(self._ids), n_chunks
            )
        return self._chunks[n_chunks]

    def _reduce(self, planes: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reduce ``(N, H, W)`` planes; returns mean, std (float64) and count (int32), each ``(P, N)``."""
        h, w = self._grid.shape
        shape = tuple(np.shape(planes))
        if len(shape) != 3 or shape[1:] != (h, w):
            raise ExtractValueError(f"values of shape {shape} do not match the parcel grid (N, {h}, {w})")
        n = shape[0]
        p = len(self._ids)
        mean = np.empty((p, n), dtype=np.float64)
        std = np.empty((p, n), dtype=np.float64)
        count = np.zeros((p, n), dtype=np.int32)
        bounds, slot, slot_off, owner, split, absent = self._chunk_slots(numba.get_num_threads())
        direct = (
            isinstance(planes, np.ndarray)
            and planes.dtype in (np.float32, np.float64)
            and planes.flags.c_contiguous
        )
        # Planes per kernel call, spread evenly (10 planes: one call of 10, not 8 + 2, since each
        # call pays the walk over the runs); for inputs that need converting, it also bounds the
        # float32 copy (about _CHUNK_BYTES).
        cap = _MAX_PLANES_PER_CALL
        if not direct:
            cap = max(1, min(cap, _CHUNK_BYTES // (4 * h * w)))
        n_calls = -(-n // cap)
        step = -(-n // n_calls) if n else 1
        for i0 in range(0, n, step):
            if direct:
                chunk = planes[i0 : i0 + step]
            else:
                chunk = planes[i0 : i0 + step]
                chunk = chunk.values if isinstance(chunk, xr.DataArray) else np.asarray(chunk)
                chunk = np.ascontiguousarray(
                    chunk, dtype=np.float64 if chunk.dtype == np.float64 else np.float32
                )
            reduce_runs(
                chunk.reshape(chunk.shape[0], h * w),
                self._run_start,
                self._run_length,
                slot,
                bounds,
                slot_off,
                owner,
                split,
                absent,
                mean,
                std,
                count,
                i0,
            )
        return mean, std, count

    def _valid_fraction(self, count: np.ndarray) -> np.ndarray:
        npx = self._pixel_counts[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(npx > 0, count / np.maximum(npx, 1), 0.0)
        return frac

    def statistics(self, values: np.ndarray | xr.DataArray) -> xr.Dataset:
        """Per-parcel statistics of each plane of ``values`` in one fused pass.

        Parameters
        ----------
        values
            float32 (float64 accepted) array or DataArray ``(time, y, x)`` on this grid, NaN for
            invalid pixels; a ``(y, x)`` array counts as one plane. Dask-backed DataArrays are read
            a few planes at a time.

        Returns
        -------
        xarray.Dataset
            On dims ``("parcel", "time")``: ``mean`` and ``std`` (float64, population std with
            ddof 0; NaN when the parcel has no valid pixel), ``count`` (int32, valid pixels) and
            ``valid_fraction`` (float64, ``count / pixel_counts``; 0 for a parcel without any pixel,
            so that it never passes a validity threshold). Coordinates: ``parcel`` = ids in input
            order, ``time`` = the DataArray's leading coordinate, else ``0..T-1``.
        """
        planes, time = _as_planes(values)
        mean, std, count = self._reduce(planes)
        return xr.Dataset(
            {
                "mean": (("parcel", "time"), mean),
                "std": (("parcel", "time"), std),
                "count": (("parcel", "time"), count),
                "valid_fraction": (("parcel", "time"), self._valid_fraction(count)),
            },
            coords={"parcel": self._ids, "time": time},
        )

    def statistics_many(
        self,
        values: xr.DataArray | np.ndarray | Mapping[str, Any],
        *,
        names: Sequence[str] | None = None,
        time: Any = None,
    ) -> xr.Dataset:
        """Statistics of several variables (indices) at once, in the layout of the series store.

        The fast path is the nightly one: a float32 DataArray ``(index, y, x)`` of one acquisition
        (``index`` coordinate = names such as ``ndvi, ndmi, ndwi, bsi``), reduced in a single
        kernel call without copying.

        Parameters
        ----------
        values
            One of: a DataArray ``(index, y, x)`` or ``(index, time, y, x)``; an ndarray of the same
            shapes with ``names``; a mapping ``name -> (y, x) or (time, y, x)`` array. NaN marks
            invalid pixels.
        names
            Variable names for an ndarray input (ignored otherwise).
        time
            Time coordinate (a scalar for one acquisition, or a sequence). Defaults to the
            DataArray's ``time`` coordinate (scalar or dimension), else ``0..T-1``.

        Returns
        -------
        xarray.Dataset
            Dims ``("parcel", "time")``; for each name ``n``: ``n`` (mean) and ``n_std`` (float32);
            ``count`` (int32) and ``valid_fraction`` (float32) of the **first** name (the indices of
            one acquisition share the SCL mask, so their counts agree except where a band itself is
            nodata).
        """
        h, w = self._grid.shape
        default_time = None
        blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if isinstance(values, Mapping):
            keys = [str(k) for k in values]
            for k in values:
                planes, t = _as_planes(values[k])
                blocks.append(self._reduce(planes))
                if default_time is None and isinstance(values[k], xr.DataArray) and values[k].ndim == 3:
                    default_time = t
            n_time = blocks[0][0].shape[1] if blocks else 1
        else:
            if isinstance(values, xr.DataArray):
                dim0 = values.dims[0]
                keys = [str(k) for k in values[dim0].values] if dim0 in values.coords else list(names or [])
                if "time" in values.coords:
                    default_time = np.atleast_1d(values["time"].values)
                arr: Any = values.data if isinstance(values.data, np.ndarray) else values
            else:
                arr = np.asarray(values)
                keys = list(names or [])
            shape = tuple(np.shape(arr))
            if len(shape) not in (3, 4) or shape[-2:] != (h, w):
                raise ExtractValueError(
                    f"statistics_many: values of shape {shape}; expected (index, [time,] {h}, {w})"
                )
            n_var = shape[0]
            n_time = 1 if len(shape) == 3 else shape[1]
            if len(keys) != n_var:
                raise ExtractValueError(f"statistics_many: {n_var} variables but names {keys!r}")
            if isinstance(arr, np.ndarray):
                # One kernel call over every (variable, time) plane; a view when contiguous.
                mean, std, count = self._reduce(arr.reshape(n_var * n_time, h, w))
                for i in range(n_var):
                    sl = slice(i * n_time, (i + 1) * n_time)
                    blocks.append((mean[:, sl], std[:, sl], count[:, sl]))
            else:
                for i in range(n_var):
                    blocks.append(self._reduce(arr[i] if len(shape) == 4 else arr[i : i + 1]))
        if time is None:
            time = default_time if default_time is not None else np.arange(n_time)
        time = np.atleast_1d(np.asarray(time))
        if len(time) != n_time:
            raise ExtractValueError(
                f"statistics_many: {len(time)} time value(s) for {n_time} plane(s) per variable"
            )
        data: dict[Hashable, Any] = {}
        for key, (mean, std, _count) in zip(keys, blocks, strict=True):
            data[key] = (("parcel", "time"), mean.astype(np.float32))
            data[f"{key}_std"] = (("parcel", "time"), std.astype(np.float32))
        if blocks:
            count0 = blocks[0][2]
            data["count"] = (("parcel", "time"), count0.astype(np.int32))
            data["valid_fraction"] = (("parcel", "time"), self._valid_fraction(count0).astype(np.float32))
        return xr.Dataset(data, coords={"parcel": self._ids, "time": time})


def _as_planes(values: Any) -> tuple[Any, np.ndarray]:
    """``(planes (N, H, W), time coordinate)`` of a statistics input."""
    if isinstance(values, xr.DataArray):
        if values.ndim == 2:
            values = values.expand_dims("time", 0)
        if values.ndim != 3:
            raise ExtractValueError(f"values have dims {values.dims}; expected (time, y, x)")
        dim0 = values.dims[0]
        time = values[dim0].values if dim0 in values.coords else np.arange(values.shape[0])
        data = values.data if isinstance(values.data, np.ndarray) else values
        return data, np.asarray(time)
    arr = values if hasattr(values, "shape") and hasattr(values, "__getitem__") else np.asarray(values)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ExtractValueError(f"values of shape {arr.shape}; expected (time, y, x)")
    return arr, np.arange(arr.shape[0])


def _build_runs(geoms: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs ``(start, length, parcel)`` of polygonal ``geoms`` (grid CRS) by scan-line rasterization."""
    h, w = grid.shape
    empty = (np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int32))
    # Only geometries whose bounds reach the grid can hold a pixel centre.
    minx, miny, maxx, maxy = grid.bounds
    live = ~shapely.is_empty(geoms)
    if live.any():
        b = shapely.bounds(geoms)
        live &= (b[:, 2] >= minx) & (b[:, 0] <= maxx) & (b[:, 3] >= miny) & (b[:, 1] <= maxy)
    live_idx = np.flatnonzero(live)
    if len(live_idx) == 0:
        return empty
    kind, coords, offsets = shapely.to_ragged_array(geoms[live_idx], include_z=False)
    if kind == shapely.GeometryType.POLYGON:
        ring_off, part_off = offsets
        geom_off = np.arange(len(live_idx) + 1, dtype=np.int64)
    elif kind == shapely.GeometryType.MULTIPOLYGON:
        ring_off, part_off, geom_off = offsets
    else:  # _polygonal_only leaves nothing else
        raise ExtractValueError(f"parcel index: unexpected geometry type {kind!r}")
    return polygon_runs(
        np.ascontiguousarray(coords[:, 0], dtype=np.float64),
        np.ascontiguousarray(coords[:, 1], dtype=np.float64),
        np.ascontiguousarray(ring_off, dtype=np.int64),
        np.ascontiguousarray(part_off, dtype=np.int64),
        np.ascontiguousarray(geom_off, dtype=np.int64),
        live_idx.astype(np.int32),
        gdal_inverse(grid.transform),
        h,
        w,
    )
