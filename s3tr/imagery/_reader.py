"""Reading STAC item assets (COGs) onto a 20 m grid: the part the local and STAC API sources share.

One band of one asset is read once per call, in block-aligned strips of rows covering the
requested grid, and brought to the grid's resolution strip by strip: finer bands (10 m) are
averaged over k x k blocks (NaN when any of the k*k pixels is nodata), coarser bands (60 m)
repeated (nearest). A strip is decoded into a small reused buffer and reduced straight into the
caller's output plane while it is still in cache, so that no full-size copy of a band (stored
values, float32 intermediate) is ever made. The bands of a call are decoded in parallel threads
(GDAL and the numba kernels release the GIL).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

import numpy as np
import rasterio
import rasterio.errors
import xarray as xr
from pyproj import CRS, Transformer
from rasterio.windows import Window

from s3tr.errors import ImageryReadError, TransientError
from s3tr.grid import Grid
from s3tr.imagery._alloc import empty_planes
from s3tr.imagery._kernels import reduce_mean_scaled
from s3tr.imagery.base import (
    Acquisition,
    ScaleOffset,
    as_utc_bound,
    asset_grid,
    band_name,
    bbox_intersects,
    find_asset,
    imagery_read_error,
    normalise_tile,
    scale_offset,
    to_utc_naive64,
    window_of,
)

__all__ = ["StacItemReader", "block_mode", "filter_acquisitions"]

logger = logging.getLogger(__name__)

_CRS_CACHE: dict[str, CRS] = {}


def _crs(value: Any) -> CRS:
    key = value if isinstance(value, str) else value.to_wkt()
    crs = _CRS_CACHE.get(key)
    if crs is None:
        crs = CRS.from_user_input(key)
        _CRS_CACHE[key] = crs
    return crs


def _same_crs(a: Any, b: Any) -> bool:
    ea = b_epsg = None
    try:
        ea = a.to_epsg() if hasattr(a, "to_epsg") else None
        b_epsg = b.to_epsg() if hasattr(b, "to_epsg") else None
    except Exception:  # pragma: no cover - odd CRS objects
        ea = b_epsg = None
    if ea is not None and b_epsg is not None:
        return bool(ea == b_epsg)
    return bool(_crs(a) == _crs(b))


def block_mode(blocks: np.ndarray) -> np.ndarray:
    """Most frequent value over the last axis; ties go to the earliest pixel (row-major order).

    ``blocks`` is ``(h, w, n)``: the ``n`` fine pixels of each coarse pixel. Used to bring a 10 m
    classification (SCL) to 20 m.
    """
    n = blocks.shape[-1]
    counts = np.zeros(blocks.shape, dtype=np.uint8)
    for i in range(n):
        counts[..., i] = (blocks == blocks[..., i : i + 1]).sum(axis=-1)
    pick = counts.argmax(axis=-1)
    return np.take_along_axis(blocks, pick[..., None], axis=-1)[..., 0]


def _integer_ratio(a: float, b: float) -> int | None:
    """``a / b`` if it is (very nearly) a positive integer, else None."""
    q = a / b
    k = round(q)
    return k if k >= 1 and abs(q - k) < 1e-6 else None


# Rows of stored values decoded per strip: about this many, rounded to whole blocks. A 10 m
# strip of 1024 rows is 22 MB of uint16, small enough to be reduced from the cache.
_STRIP_ROWS = 1024

# Target windows of at most this many pixels read their bands in turn, not in threads.
_SEQUENTIAL_MAX_PIXELS = 256 * 256


def _strip_bounds(row0: int, nrows: int, block_h: int, k: int) -> list[int]:
    """Row boundaries ``[row0, ..., row0 + nrows]`` of the strips of a windowed read.

    Inner boundaries fall on the file's block rows (each block is decoded once) and on multiples
    of ``k`` from ``row0`` (a k x k block never straddles two strips). When no block row
    qualifies (a window offset by an odd number of rows with k = 2), the window is one strip.
    """
    end = row0 + nrows
    bounds = [row0]
    if block_h <= 0:
        return [row0, end]
    target = max(_STRIP_ROWS, block_h)
    m = (row0 // block_h + 1) * block_h
    while m < end:
        if (m - row0) % k == 0 and m - bounds[-1] >= target:
            bounds.append(m)
        m += block_h
    if end - bounds[-1] < target // 2 and len(bounds) > 1:
        bounds.pop()  # fold a short last strip into the previous one
    bounds.append(end)
    return bounds


def _nodata_args(nodata: float | None, dtype: np.dtype) -> tuple[float, bool]:
    """``(nodata value, has_nodata)`` for the reduction kernels."""
    nd = 0.0 if nodata is None or math.isnan(nodata) else float(nodata)
    has_nodata = nodata is not None and not math.isnan(nodata)
    if has_nodata and dtype.kind in "ui":
        # A nodata value the integer type cannot hold can never occur (and must not wrap around).
        info = np.iinfo(dtype)
        has_nodata = nd.is_integer() and info.min <= nd <= info.max
    return nd, has_nodata


def _read_reduce_strips(
    ds: Any,
    bidx: int,
    window: tuple[int, int, int, int],
    k: int,
    nodata: float | None,
    scale: float,
    offset: float,
    out: np.ndarray,
) -> None:
    """Decode ``window`` (row0, col0, nrows, ncols; inside the raster) strip by strip into ``out``."""
    row0, col0, nrows, ncols = window
    dtype = np.dtype(ds.dtypes[bidx - 1])
    nd, has_nodata = _nodata_args(nodata, dtype)
    block_h = int(ds.block_shapes[bidx - 1][0]) if ds.block_shapes else 0
    bounds = _strip_bounds(row0, nrows, block_h, k)
    tallest = max(b - a for a, b in itertools.pairwise(bounds))
    buf = np.empty((tallest, ncols), dtype=dtype)
    for a, b in itertools.pairwise(bounds):
        part = buf[: b - a]
        ds.read(bidx, window=Window(col0, a, ncols, b - a), out=part)
        lo = (a - row0) // k
        reduce_mean_scaled(part, k, nd, has_nodata, scale, offset, out[lo : lo + (b - a) // k])


def read_onto_grid(
    ds: Any,
    bidx: int,
    target: Grid,
    *,
    nodata: float | None,
    categorical: bool,
    scale: float = 1.0,
    offset: float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read band ``bidx`` of an open rasterio dataset onto ``target``.

    Returns an array of ``target``'s shape: for ``categorical=False`` the float32 k x k mean of the
    stored values times ``scale`` plus ``offset`` (NaN where any of the k x k pixels is nodata or
    outside the raster); for ``categorical=True`` the block mode in the stored dtype (0 where
    every pixel is nodata). Coarser rasters are repeated (nearest).
    ``out`` (float32, ``target``'s shape, only with ``categorical=False``) receives the values and
    is returned. Raises ``ValueError`` with a readable reason when the raster's grid cannot be
    aligned.
    """
    if out is not None and (categorical or out.shape != tuple(target.shape) or out.dtype != np.float32):
        raise ValueError("out must be a float32 array of the target's shape, for a non-categorical band")
    t = ds.transform
    if t.b != 0 or t.d != 0:
        raise ValueError(f"raster is rotated (transform {tuple(t)[:6]})")
    r, R = abs(t.a), target.resolution
    H, W = target.shape
    fine = _integer_ratio(R, r)
    coarse = None if fine is not None else _integer_ratio(r, R)
    if fine is None and coarse is None:
        raise ValueError(f"raster pixel size {r} m is not a multiple or divisor of the grid's {R} m")
    step = min(r, R)
    dx = (target.transform.c - t.c) / step
    dy = (t.f - target.transform.f) / step
    if abs(dx - round(dx)) > 1e-6 or abs(dy - round(dy)) > 1e-6:
        raise ValueError(
            f"raster origin ({t.c}, {t.f}) is not aligned with the grid origin "
            f"({target.transform.c}, {target.transform.f}) at {step} m"
        )
    dx, dy = round(dx), round(dy)
    if fine is not None:
        k = fine
        row0, col0, nrows, ncols = dy, dx, H * k, W * k
    else:
        m = coarse
        assert m is not None
        row0, col0 = dy // m, dx // m
        nrows = (dy + H - 1) // m - row0 + 1
        ncols = (dx + W - 1) // m - col0 + 1
    # Intersect with the raster so that a grid reaching past the file's edge reads as nodata.
    r_lo, c_lo = max(row0, 0), max(col0, 0)
    r_hi, c_hi = min(row0 + nrows, ds.height), min(col0 + ncols, ds.width)
    dtype = np.dtype(ds.dtypes[bidx - 1])
    inside = (r_lo, c_lo, r_hi, c_hi) == (row0, col0, row0 + nrows, col0 + ncols)
    if inside and fine is not None and not categorical:
        # The common case (a grid inside the raster, same or finer resolution): strips.
        if out is None:
            out = np.empty((H, W), dtype=np.float32)
        _read_reduce_strips(ds, bidx, (row0, col0, nrows, ncols), fine, nodata, scale, offset, out)
        return out
    if inside:
        arr = ds.read(bidx, window=Window(col0, row0, ncols, nrows))
        outside = None
    else:
        arr = np.zeros((nrows, ncols), dtype=dtype)
        outside = np.ones((nrows, ncols), dtype=bool)
        if r_hi > r_lo and c_hi > c_lo:
            window = Window(c_lo, r_lo, c_hi - c_lo, r_hi - r_lo)
            arr[r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0] = ds.read(bidx, window=window)
            outside[r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0] = False

    def bad_of(a: np.ndarray, out_of: np.ndarray | None) -> np.ndarray:
        """Invalid pixels of (a view of) the stored values."""
        if nodata is None:
            bad = np.zeros(a.shape, dtype=bool)
        elif math.isnan(nodata):
            bad = np.isnan(a)
        else:
            bad = a == nodata
        if a.dtype.kind == "f":
            bad |= ~np.isfinite(a)
        if out_of is not None:
            bad |= out_of
        return bad

    if not categorical:
        # One fused pass (numba): nodata mask, k x k mean, scale and offset. Every float path goes
        # through it so that a window and the full read give bit-identical values.
        nd, has_nodata = _nodata_args(nodata, arr.dtype)
        k = fine if fine is not None else 1
        vals = np.empty((arr.shape[0] // k, arr.shape[1] // k), dtype=np.float32)
        reduce_mean_scaled(arr, k, nd, has_nodata, scale, offset, vals)
        if outside is not None:
            gone = outside.reshape(vals.shape[0], k, vals.shape[1], k).any(axis=(1, 3))
            vals[gone] = np.nan
        if fine is None:  # coarser raster: repeat its pixels
            m = coarse
            assert m is not None
            vals = vals[np.ix_((dy + np.arange(H)) // m - row0, (dx + np.arange(W)) // m - col0)]
        if out is None:
            return vals
        out[...] = vals
        return out
    if fine is not None and fine > 1:
        k = fine
        views = [
            (arr[i::k, j::k], None if outside is None else outside[i::k, j::k])
            for i in range(k)
            for j in range(k)
        ]
        blocks = np.stack([v for v, _ in views], axis=-1)
        bblocks = np.stack([bad_of(v, o) for v, o in views], axis=-1)
        # Nodata never wins the vote while a valid class is present.
        invalid = bblocks.all(axis=-1)
        blocks[bblocks] = 0
        vals = block_mode(blocks)
        vals[invalid] = 0
        return vals.astype(dtype, copy=False)
    if fine is not None:  # same resolution
        invalid = bad_of(arr, outside)
        vals = arr  # a fresh array from ds.read (or the padded copy)
    else:
        m = coarse
        assert m is not None
        ri = (dy + np.arange(H)) // m - row0
        ci = (dx + np.arange(W)) // m - col0
        vals = arr[np.ix_(ri, ci)]
        invalid = bad_of(vals, None if outside is None else outside[np.ix_(ri, ci)])
    vals[invalid] = 0
    return vals.astype(dtype, copy=False)


def filter_acquisitions(
    acquisitions: Sequence[Acquisition],
    *,
    tile: str | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    bbox: Sequence[float] | None = None,
) -> list[Acquisition]:
    """Apply the :class:`~s3tr.imagery.base.ImagerySource` filters; sorted by time then id."""
    t0 = as_utc_bound(start, end=False)
    t1 = as_utc_bound(end, end=True)
    want_tile = normalise_tile(tile) if tile else None
    out = []
    for acq in acquisitions:
        if want_tile and acq.tile != want_tile:
            continue
        if t0 and acq.datetime < t0:
            continue
        if t1 and acq.datetime > t1:
            continue
        if bbox is not None and not bbox_intersects(acquisition_bbox(acq), bbox):
            continue
        out.append(acq)
    return sorted(out, key=lambda a: (a.datetime, a.id))


def acquisition_bbox(acq: Acquisition) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` in WGS84 of an acquisition (item bbox, else its grid)."""
    if acq.item is not None and acq.item.bbox and len(acq.item.bbox) >= 4:
        b = acq.item.bbox
        if len(b) == 6:
            return (b[0], b[1], b[3], b[4])
        return (b[0], b[1], b[2], b[3])
    tr = Transformer.from_crs(acq.grid.crs, "EPSG:4326", always_xy=True)
    return tr.transform_bounds(*acq.grid.bounds)


class StacItemReader:
    """Reads the band assets of STAC items (COGs) onto their 20 m grid.

    Subclasses say how an asset href becomes something rasterio opens (:meth:`_href`), which GDAL
    options apply (:attr:`gdal_options`) and how transient failures are retried
    (:meth:`_call_with_retries`).

    Parameters
    ----------
    max_workers
        Threads decoding bands in parallel (small: the machine's cores are shared).
    """

    gdal_options: dict[str, Any] = {}  # noqa: RUF012 - class-level default, replaced per instance

    def __init__(self, *, max_workers: int = 4) -> None:
        self.max_workers = max(1, int(max_workers))

    # -- hooks -------------------------------------------------------------------------------
    def _href(self, item: Any, key: str, asset: Any) -> str:
        href = asset.get_absolute_href() or asset.href
        return str(href)

    def _call_with_retries(self, fn: Callable[[int], Any], *, item_id: str, asset: str, path: str) -> Any:
        """Run ``fn(attempt)``; the local source does not retry."""
        return fn(0)

    def _gdal_options_for(self, href: str, attempt: int) -> dict[str, Any]:
        """GDAL configuration for reading ``href`` at try number ``attempt`` (0-based)."""
        return self.gdal_options

    def _classify(self, exc: BaseException) -> BaseException:
        """Map a reading exception to a TransientError (retry) or leave it (permanent)."""
        return exc

    # -- reading -----------------------------------------------------------------------------
    def _target(self, acquisition: Acquisition, grid: Grid | None) -> Grid:
        if grid is None:
            return acquisition.grid
        window_of(acquisition.grid, grid)
        return grid

    def _item(self, acquisition: Acquisition) -> Any:
        if acquisition.item is None:
            raise ImageryReadError(
                f"acquisition {acquisition.id!r} carries no STAC item; list it with this source's "
                "list_acquisitions() before reading it"
            )
        return acquisition.item

    def _read_one(
        self, acquisition: Acquisition, band: str, target: Grid, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, ScaleOffset]:
        (values,), so = self._read_targets(acquisition, band, [target], [out])
        return values, so

    def _read_targets(
        self,
        acquisition: Acquisition,
        band: str,
        targets: Sequence[Grid],
        outs: Sequence[np.ndarray | None],
    ) -> tuple[list[np.ndarray], ScaleOffset]:
        """``band`` on each of ``targets`` (windows of the acquisition grid), the file opened once."""
        item = self._item(acquisition)
        key, asset, bidx = find_asset(item, band)
        categorical = band == "SCL"
        # A classification has no scale or offset; only its nodata matters.
        so = scale_offset(item, asset, bidx, categorical=categorical)
        href = self._href(item, key, asset)
        expected = asset_grid(item, asset)

        def attempt(number: int) -> list[np.ndarray]:
            try:
                with rasterio.Env(**self._gdal_options_for(href, number)), rasterio.open(href) as ds:
                    # The targets are windows of one acquisition grid: one CRS, checked once.
                    self._check_raster(ds, item, key, href, expected, targets[0], bidx)
                    nodata = so.nodata if so.nodata is not None else ds.nodatavals[bidx - 1]
                    try:
                        return [
                            read_onto_grid(
                                ds,
                                bidx,
                                target,
                                nodata=nodata,
                                categorical=categorical,
                                scale=so.scale,
                                offset=so.offset,
                                out=None if categorical else out,
                            )
                            for target, out in zip(targets, outs, strict=True)
                        ]
                    except ValueError as exc:
                        raise imagery_read_error(
                            "raster cannot be aligned with the acquisition grid",
                            item_id=item.id,
                            asset=key,
                            path=href,
                            hint=str(exc),
                        ) from exc
            except ImageryReadError:
                raise
            except (rasterio.errors.RasterioError, OSError, RuntimeError, ValueError) as exc:
                classified = self._classify(exc)
                if isinstance(classified, TransientError):
                    raise classified from exc
                missing = "No such file" in str(exc) or "does not exist" in str(exc) or "404" in str(exc)
                raise imagery_read_error(
                    "cannot read the raster" + (" (file not found)" if missing else ""),
                    item_id=item.id,
                    asset=key,
                    path=href,
                    hint="the file is missing; fix the asset href or restore the file"
                    if missing
                    else "the COG may be truncated or corrupt; download it again (check file:size/checksum)",
                    cause=exc,
                ) from exc

        values = self._call_with_retries(attempt, item_id=item.id, asset=key, path=href)
        return values, so

    def _check_raster(
        self, ds: Any, item: Any, key: str, href: str, expected: Grid | None, target: Grid, bidx: int
    ) -> None:
        if bidx > ds.count:
            raise imagery_read_error(
                f"raster has {ds.count} band(s), the item says band {bidx}",
                item_id=item.id,
                asset=key,
                path=href,
                hint="fix eo:bands of the asset or the file",
            )
        if ds.crs is None or not _same_crs(ds.crs, _crs(target.crs)):
            raise imagery_read_error(
                f"raster CRS {ds.crs} differs from the acquisition grid CRS {target.crs}",
                item_id=item.id,
                asset=key,
                path=href,
                hint="the file is not of this tile or was reprojected; restore the original COG",
            )
        if expected is not None:
            same_tr = all(
                abs(a - b) <= 1e-6 * max(1.0, abs(b))
                for a, b in zip(tuple(ds.transform)[:6], tuple(expected.transform)[:6], strict=True)
            )
            same_shape = (ds.height, ds.width) == expected.shape
            same_crs = _same_crs(ds.crs, _crs(expected.crs))
            if not (same_tr and same_shape and same_crs):
                raise imagery_read_error(
                    "raster does not match the item's proj metadata "
                    f"(file: {ds.crs} {tuple(ds.transform)[:6]} {ds.height}x{ds.width}; "
                    f"item: {expected.crs} {tuple(expected.transform)[:6]} "
                    f"{expected.shape[0]}x{expected.shape[1]})",
                    item_id=item.id,
                    asset=key,
                    path=href,
                    hint="the file was replaced or resampled; restore it or regenerate the item's "
                    "proj:transform/proj:shape from the file",
                )

    def _read_many(
        self,
        acquisition: Acquisition,
        bands: Sequence[str],
        target: Grid,
        outs: Sequence[np.ndarray | None] | None = None,
    ) -> list[tuple[np.ndarray, ScaleOffset]]:
        """Read ``bands``; the reflectance of ``bands[i]`` goes into ``outs[i]`` when given."""
        plan = list(zip(bands, outs if outs is not None else [None] * len(bands), strict=True))
        # A small window (an image chip: a few COG tiles per band) decodes in about a millisecond
        # per band; starting threads for it costs more (measured under load: the demo's chips, 992
        # small reads, took 59 s with a thread pool per read and 26 s read in turn).
        small = target.shape[0] * target.shape[1] <= _SEQUENTIAL_MAX_PIXELS
        if len(bands) <= 1 or self.max_workers == 1 or small:
            return [self._read_one(acquisition, b, target, o) for b, o in plan]
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(bands))) as pool:
            futures = [pool.submit(self._read_one, acquisition, b, target, o) for b, o in plan]
            return [f.result() for f in futures]

    def _read_bands(
        self, acquisition: Acquisition, names: Sequence[str], target: Grid, *, with_scl: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """float32 ``(band, y, x)`` of ``names`` (each band decoded straight into its plane), and the SCL."""
        h, w = target.shape
        data = empty_planes((len(names), h, w), np.float32)
        wanted = [*names, "SCL"] if with_scl else list(names)
        outs: list[np.ndarray | None] = [data[i] for i in range(len(names))]
        results = self._read_many(acquisition, wanted, target, [*outs, None] if with_scl else outs)
        for i, (values, _) in enumerate(results[: len(names)]):
            if values is not data[i]:  # a subclass that ignores ``out``
                data[i] = values
        scl = results[-1][0].astype(np.uint8, copy=False) if with_scl else None
        return data, scl

    def _to_dataarray(
        self,
        acquisition: Acquisition,
        names: Sequence[str],
        arrays: list[np.ndarray] | np.ndarray,
        target: Grid,
    ) -> xr.DataArray:
        h, w = target.shape
        if isinstance(arrays, np.ndarray) and arrays.shape == (len(names), h, w):
            data = arrays  # already stacked (no copy)
        else:
            data = np.empty((len(names), h, w), dtype=np.float32)
            for i, arr in enumerate(arrays):
                data[i] = arr
        x, y = target.xy()
        return xr.DataArray(
            data,
            dims=("band", "y", "x"),
            coords={"band": list(names), "y": y, "x": x, "time": to_utc_naive64(acquisition.datetime)},
            attrs={
                "crs": target.crs,
                "transform": tuple(target.transform)[:6],
                "acquisition": acquisition.id,
                "tile": acquisition.tile,
                "units": "1",
                "long_name": "surface reflectance",
            },
            name="reflectance",
        )

    def read(
        self, acquisition: Acquisition, bands: Sequence[str], *, grid: Grid | None = None
    ) -> xr.DataArray:
        """Surface reflectance of ``bands`` (see :meth:`s3tr.imagery.base.ImagerySource.read`).

        Returns float32 ``(band, y, x)`` on ``grid`` (default ``acquisition.grid``), NaN where
        nodata; the ``band`` coordinate holds canonical names (``B04``...), ``time`` the UTC time.

        Raises
        ------
        ImageryReadError
            Missing asset, missing/truncated/corrupt file, or a raster not matching the item.
        GridMismatchError
            ``grid`` is not a window of the acquisition grid.
        """
        names = [band_name(b) for b in bands]
        if "SCL" in names:
            raise ValueError("SCL is a classification, not a reflectance band: use read_scl()")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate bands in {list(bands)}")
        target = self._target(acquisition, grid)
        data, _ = self._read_bands(acquisition, names, target, with_scl=False)
        return self._to_dataarray(acquisition, names, data, target)

    def read_scl(self, acquisition: Acquisition, *, grid: Grid | None = None) -> np.ndarray:
        """Scene classification, uint8 ``(y, x)`` on ``grid`` (0 = nodata; 10 m SCL -> 2x2 mode)."""
        target = self._target(acquisition, grid)
        values, _ = self._read_one(acquisition, "SCL", target)
        return values.astype(np.uint8, copy=False)

    def read_with_scl(
        self, acquisition: Acquisition, bands: Sequence[str], *, grid: Grid | None = None
    ) -> tuple[xr.DataArray, np.ndarray]:
        """:meth:`read` and :meth:`read_scl` in one call, all files decoded in one thread pool."""
        names = [band_name(b) for b in bands]
        if "SCL" in names or len(set(names)) != len(names):
            raise ValueError(f"bands must be distinct reflectance bands, got {list(bands)}")
        target = self._target(acquisition, grid)
        data, scl = self._read_bands(acquisition, names, target, with_scl=True)
        assert scl is not None
        return self._to_dataarray(acquisition, names, data, target), scl

    def read_windows_with_scl(
        self, acquisition: Acquisition, bands: Sequence[str], grids: Sequence[Grid]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Reflectance and SCL of many small windows of one acquisition, each file opened once.

        For image chips: opening a COG costs more than decoding a 30 x 30 pixel window of it, so the
        windows of all the parcels that want this acquisition are read through one opened file per band.

        Parameters
        ----------
        acquisition
            The acquisition to read.
        bands
            Distinct reflectance bands (canonical or alias names; not SCL).
        grids
            Windows of ``acquisition.grid``.

        Returns
        -------
        list of (numpy.ndarray, numpy.ndarray)
            Per window, in order: float32 ``(band, y, x)`` reflectance (NaN where nodata) and the uint8
            SCL ``(y, x)``; the same values as :meth:`read_with_scl` window by window.

        Raises
        ------
        ImageryReadError
            As :meth:`read`; one unreadable file fails the whole call.
        GridMismatchError
            A grid is not a window of the acquisition grid.
        """
        names = [band_name(b) for b in bands]
        if "SCL" in names or len(set(names)) != len(names):
            raise ValueError(f"bands must be distinct reflectance bands, got {list(bands)}")
        if not grids:
            return []
        targets = [self._target(acquisition, g) for g in grids]
        planes = [empty_planes((len(names), *t.shape), np.float32) for t in targets]
        for i, band in enumerate(names):
            values, _ = self._read_targets(acquisition, band, targets, [p[i] for p in planes])
            for p, v in zip(planes, values, strict=True):
                if v is not p[i]:  # a subclass that ignores ``out``
                    p[i] = v
        scl, _ = self._read_targets(acquisition, "SCL", targets, [None] * len(targets))
        return [(p, c.astype(np.uint8, copy=False)) for p, c in zip(planes, scl, strict=True)]
